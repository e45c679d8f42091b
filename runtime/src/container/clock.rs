//! Times as users read them: RFC 3339 in UTC (logs, inspect) and Docker's "5 minutes" (ps).

/// `2026-11-22T18:24:37.123456789Z` for `ns` nanoseconds since the epoch.
pub fn rfc3339(ns: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_nanos(time).to_string()
}

/// Docker's `ps`/`images` CreatedAt, `2026-11-22 18:24:37 +0000 UTC`, for `secs` since the
/// epoch.
pub fn docker_time(secs: u64) -> String {
    let t = rfc3339(secs * 1_000_000_000);
    format!("{} {} +0000 UTC", &t[..10], &t[11..19])
}

/// A point in time as `--since` and `--until` take it (`logs`, `events`), in nanoseconds since
/// the epoch: a Unix time (seconds, maybe fractional), a duration before `now` (`10m`, `1h30m`),
/// or RFC 3339.
pub fn parse_time(value: &str, now: u64) -> Option<u64> {
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0).then_some((secs * 1e9) as u64);
    }
    if let Ok(ago) = humantime::parse_duration(value) {
        return Some(now.saturating_sub(ago.as_nanos() as u64));
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    super::state::now_ns() / 1_000_000_000
}

/// Docker's human duration (go-units `HumanDuration`).
pub fn human(secs: u64) -> String {
    let (minutes, hours) = (secs / 60, (secs as f64 / 3600.0).round() as u64);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_890_277_000_000_005),
            "2026-11-28T18:24:37.000000005Z"
        );
        assert_eq!(docker_time(1_795_890_277), "2026-11-28 18:24:37 +0000 UTC");
        assert_eq!(parse_time("0", 9), Some(0));
        assert_eq!(parse_time("1.5", 9), Some(1_500_000_000));
        assert_eq!(parse_time("2s", 5_000_000_000), Some(3_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:07Z", 0), Some(7_000_000_000));
        assert_eq!(parse_time("yesterday", 0), None);
        assert_eq!(human(0), "Less than a second");
        assert_eq!(human(61), "About a minute");
        assert_eq!(human(7200), "2 hours");
    }
}
