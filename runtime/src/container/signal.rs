//! Signals by the names users give them (`TERM`, `SIGTERM`, `15`), for `kill -s`, `stop -s`,
//! `--stop-signal` and an image's STOPSIGNAL.

use nix::sys::signal::Signal;

/// A signal that is none of Linux's.
#[derive(Debug, thiserror::Error)]
#[error("invalid signal {0:?}: give a name like TERM or a number")]
pub struct Error(String);

pub fn parse(s: &str) -> Result<Signal, Error> {
    let bad = || Error(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// The signal that stops the container: its `--stop-signal` or image's STOPSIGNAL, else
/// SIGTERM.
pub fn stop_signal(given: Option<&str>) -> Signal {
    given.and_then(|s| parse(s).ok()).unwrap_or(Signal::SIGTERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("INT").unwrap(), Signal::SIGINT);
        assert_eq!(parse("sigquit").unwrap(), Signal::SIGQUIT);
        assert_eq!(parse("2").unwrap(), Signal::SIGINT);
        assert!(parse("NOPE").is_err());
        assert_eq!(stop_signal(None), Signal::SIGTERM);
        assert_eq!(stop_signal(Some("SIGINT")), Signal::SIGINT);
    }
}
