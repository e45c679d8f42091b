//! Sizes as Docker prints them (go-units): decimal with 3 significant digits (`images`,
//! `stats` I/O: `4.26MB`) and binary with 4 (`stats` memory: `1.177MiB`).

/// go-units `HumanSizeWithPrecision(size, 3)`.
pub fn decimal(size: u64) -> String {
    scaled(size, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// go-units `BytesSize`: `%.4g` of powers of 1024.
pub fn binary(size: u64) -> String {
    scaled(size, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

fn scaled(size: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut v = size as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    // %g: `digits` significant digits, trailing zeros dropped.
    let whole = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let decimals = digits.saturating_sub(whole);
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(decimal(4_261_000), "4.26MB");
        assert_eq!(decimal(12_340_000), "12.3MB");
        assert_eq!(decimal(123_400_000), "123MB");
        assert_eq!(decimal(1_500), "1.5kB");
        assert_eq!(decimal(742), "742B");
        assert_eq!(decimal(0), "0B");
        assert_eq!(binary(64 << 20), "64MiB");
        assert_eq!(binary(1_234_567), "1.177MiB");
        assert_eq!(binary(1000), "1000B");
    }
}
