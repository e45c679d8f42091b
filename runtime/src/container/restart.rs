//! Restart policies (`--restart`), with Docker's semantics: which exits start the container
//! again, and how long its supervisor waits first. The supervisor applies them
//! ([`super::supervisor`]); `system boot` starts what should run after a reboot.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A `--restart` value that is none of Docker's.
#[derive(Debug, thiserror::Error)]
#[error("invalid restart policy {0:?}: use no, always, unless-stopped, on-failure or on-failure:N")]
pub struct Error(String);

/// What to do when the container's PID 1 exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Policy {
    /// Never restart (the default).
    #[default]
    No,
    /// Whatever the exit code, until the user stops it; started again at boot.
    Always,
    /// After a non-zero exit, at most `max` times (unbounded when none).
    OnFailure { max: Option<u32> },
    /// As `Always`, but not started at boot when the user had stopped it.
    UnlessStopped,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, Error> {
        let bad = || Error(s.to_string());
        Ok(match s.split_once(':') {
            None | Some((_, "")) => match s.trim_end_matches(':') {
                "" | "no" => Policy::No,
                "always" => Policy::Always,
                "unless-stopped" => Policy::UnlessStopped,
                "on-failure" => Policy::OnFailure { max: None },
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => Policy::OnFailure {
                max: Some(n.parse().map_err(|_| bad())?),
            },
            Some(_) => return Err(bad()),
        })
    }

    /// Docker's name, as `inspect` shows it under `HostConfig.RestartPolicy.Name`.
    pub fn name(self) -> &'static str {
        match self {
            Policy::No => "no",
            Policy::Always => "always",
            Policy::OnFailure { .. } => "on-failure",
            Policy::UnlessStopped => "unless-stopped",
        }
    }

    /// `MaximumRetryCount` (0: no limit).
    pub fn max_retries(self) -> u32 {
        match self {
            Policy::OnFailure { max } => max.unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether an exit with `code`, after `restarts` restarts already, starts the container
    /// again. A container the user stopped (or killed) is never restarted.
    pub fn restarts(self, code: u8, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max } => code != 0 && max.is_none_or(|m| restarts < m),
        }
    }

    /// Whether `system boot` starts the container.
    pub fn at_boot(self, stopped_by_user: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !stopped_by_user,
            Policy::No | Policy::OnFailure { .. } => false,
        }
    }
}

impl TryFrom<String> for Policy {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Policy::parse(&s)
    }
}

impl From<Policy> for String {
    fn from(p: Policy) -> String {
        match p {
            Policy::OnFailure { max: Some(n) } => format!("on-failure:{n}"),
            p => p.name().to_string(),
        }
    }
}

/// The first wait before a restart, doubled after each restart that follows a short run.
const FIRST: Duration = Duration::from_millis(100);
/// A container that ran this long before it exited starts the doubling again from [`FIRST`].
const STEADY: Duration = Duration::from_secs(10);
/// The longest wait.
const LONGEST: Duration = Duration::from_secs(60);

/// How long to wait before the next restart, given the previous wait (zero before the first)
/// and how long the container ran: Docker's backoff.
pub fn backoff(previous: Duration, ran: Duration) -> Duration {
    if previous.is_zero() || ran >= STEADY {
        FIRST
    } else {
        (previous * 2).min(LONGEST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_values() {
        assert_eq!(Policy::parse("no").unwrap(), Policy::No);
        assert_eq!(Policy::parse("always").unwrap(), Policy::Always);
        assert_eq!(
            Policy::parse("unless-stopped").unwrap(),
            Policy::UnlessStopped
        );
        assert_eq!(
            Policy::parse("on-failure").unwrap(),
            Policy::OnFailure { max: None }
        );
        assert_eq!(
            Policy::parse("on-failure:3").unwrap(),
            Policy::OnFailure { max: Some(3) }
        );
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        let p = Policy::OnFailure { max: Some(3) };
        assert_eq!(Policy::parse(&String::from(p)).unwrap(), p);
    }

    #[test]
    fn decides_as_docker() {
        let three = Policy::OnFailure { max: Some(3) };
        assert!(three.restarts(1, 0, false));
        assert!(three.restarts(1, 2, false));
        assert!(!three.restarts(1, 3, false));
        assert!(!three.restarts(0, 0, false));
        assert!(Policy::Always.restarts(0, 100, false));
        assert!(!Policy::Always.restarts(1, 0, true));
        assert!(!Policy::No.restarts(1, 0, false));
        assert!(Policy::Always.at_boot(true));
        assert!(!Policy::UnlessStopped.at_boot(true));
        assert!(Policy::UnlessStopped.at_boot(false));
        assert!(!three.at_boot(false));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let short = Duration::from_secs(1);
        let mut d = backoff(Duration::ZERO, short);
        assert_eq!(d, Duration::from_millis(100));
        d = backoff(d, short);
        assert_eq!(d, Duration::from_millis(200));
        d = backoff(d, short);
        assert_eq!(d, Duration::from_millis(400));
        assert_eq!(
            backoff(d, Duration::from_secs(10)),
            Duration::from_millis(100)
        );
        assert_eq!(backoff(Duration::from_secs(50), short), LONGEST);
    }
}
