//! Health checks, with Docker's semantics and shapes: the check (`--health-*`, or the image's
//! HEALTHCHECK) is recorded in the container's config; its supervisor starts a probe every
//! interval ([`spawn`]), a separate `minibox healthcheck` process that runs the test inside the
//! container through `minibox exec` and records the result in `health.json` ([`probe`]), so
//! the supervisor itself stays small and never waits on a test.
//!
//! Status: `starting` until the first success (failures during the start period do not count),
//! `healthy` after a success, `unhealthy` after `retries` failures in a row.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::state::{self, Status};
use super::{clock, events};
use crate::paths::Paths;

/// A `--health-*` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {flag} {value:?}: give a duration such as 30s, 1m30s or 500ms")]
    Duration { flag: &'static str, value: String },
    #[error("--no-healthcheck conflicts with the other --health-* options")]
    Conflict,
    #[error(transparent)]
    State(#[from] state::Error),
    #[error("starting the health check")]
    Spawn(#[source] std::io::Error),
}

/// The check, as Docker records it (`Config.Healthcheck`; durations in nanoseconds, 0 for the
/// default). `Test`: `["CMD", args...]`, `["CMD-SHELL", line]` or `["NONE"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub retries: u32,
}

impl Healthcheck {
    fn or(value: u64, default: Duration) -> Duration {
        if value == 0 {
            default
        } else {
            Duration::from_nanos(value)
        }
    }
    pub fn interval(&self) -> Duration {
        Self::or(self.interval, Duration::from_secs(30))
    }
    pub fn timeout(&self) -> Duration {
        Self::or(self.timeout, Duration::from_secs(30))
    }
    pub fn start_period(&self) -> Duration {
        Self::or(self.start_period, Duration::ZERO)
    }
    pub fn retries(&self) -> u32 {
        if self.retries == 0 {
            3
        } else {
            self.retries
        }
    }

    /// The command a probe runs in the container; none for `NONE` (or nothing).
    fn command(&self) -> Option<Vec<String>> {
        match self.test.split_first()? {
            (kind, args) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
            (kind, [line]) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
            }
            _ => None,
        }
    }
}

/// The `--health-*` flags as given.
#[derive(Debug, Default)]
pub struct Flags<'a> {
    pub cmd: Option<&'a str>,
    pub interval: Option<&'a str>,
    pub timeout: Option<&'a str>,
    pub start_period: Option<&'a str>,
    pub retries: Option<u32>,
    pub none: bool,
}

/// The container's check: the image's, with what the flags give instead (Docker merges them
/// field by field); none when there is no test, or `--no-healthcheck` / a `NONE` test.
pub fn resolve(image: Option<Healthcheck>, flags: &Flags) -> Result<Option<Healthcheck>, Error> {
    let given = flags.cmd.is_some()
        || flags.interval.is_some()
        || flags.timeout.is_some()
        || flags.start_period.is_some()
        || flags.retries.is_some();
    if flags.none {
        return if given {
            Err(Error::Conflict)
        } else {
            Ok(None)
        };
    }
    let mut hc = image.unwrap_or_default();
    if let Some(cmd) = flags.cmd {
        hc.test = vec!["CMD-SHELL".into(), cmd.into()];
    }
    let duration = |flag, value: Option<&str>, into: &mut u64| -> Result<(), Error> {
        if let Some(v) = value {
            let d = humantime::parse_duration(v).map_err(|_| Error::Duration {
                flag,
                value: v.into(),
            })?;
            *into = d.as_nanos() as u64;
        }
        Ok(())
    };
    duration("--health-interval", flags.interval, &mut hc.interval)?;
    duration("--health-timeout", flags.timeout, &mut hc.timeout)?;
    duration(
        "--health-start-period",
        flags.start_period,
        &mut hc.start_period,
    )?;
    if let Some(r) = flags.retries {
        hc.retries = r;
    }
    Ok(hc.command().is_some().then_some(hc))
}

/// The image's HEALTHCHECK, from its config as Docker writes it (`config.Healthcheck`).
pub fn from_image(config: &serde_json::Value) -> Option<Healthcheck> {
    serde_json::from_value(config.get("config")?.get("Healthcheck")?.clone()).ok()
}

/// What `health.json` records, in Docker's shape (`State.Health`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<Probe>,
}

/// One probe's result (the last five are kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Probe {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        }
    }
}

fn path(paths: &Paths, id: &str) -> PathBuf {
    state::state_dir(paths, id).join("health.json")
}

/// The container's health, if it has a check.
pub fn load(paths: &Paths, id: &str) -> Option<Health> {
    serde_json::from_slice(&std::fs::read(path(paths, id)).ok()?).ok()
}

/// Starts the record afresh (`starting`), as each start of the container does.
pub fn reset(paths: &Paths, id: &str) -> Result<(), Error> {
    save(paths, id, &Health::default())
}

fn save(paths: &Paths, id: &str, h: &Health) -> Result<(), Error> {
    let json = serde_json::to_vec(h).expect("records serialise");
    Ok(state::write_atomic(&path(paths, id), &json)?)
}

/// Starts a probe of container `id` (the supervisor's part): this binary's `healthcheck`
/// command, with signals unblocked (the supervisor blocks them) and no stdio.
pub fn spawn(paths: &Paths, id: &str) -> Option<Child> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(&paths.root)
        .arg("--runroot")
        .arg(&paths.runroot)
        .args(["healthcheck", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let empty = nix::sys::signal::SigSet::empty();
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&empty),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
    cmd.spawn().ok()
}

/// How many bytes of a probe's output are kept (Docker's limit).
const OUTPUT_LIMIT: usize = 4096;

/// One probe of container `id`: runs its test through `minibox exec` (killed after the
/// timeout), then records the result and the new status, with a `health_status` event when it
/// changed.
pub fn probe(paths: &Paths, id: &str) -> Result<(), Error> {
    let config = state::load_config(paths, id)?;
    let Some(hc) = config.healthcheck.as_ref() else {
        return Ok(());
    };
    let Some(command) = hc.command() else {
        return Ok(());
    };
    let st = state::load_state(paths, id)?;
    if st.status != Status::Running {
        return Ok(());
    }
    let start = state::now_ns();
    let (mut reader, writer) = std::io::pipe().map_err(Error::Spawn)?;
    let mut child = Command::new("/proc/self/exe")
        .arg("--root")
        .arg(&paths.root)
        .arg("--runroot")
        .arg(&paths.runroot)
        .args(["exec", id])
        .args(&command)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().map_err(Error::Spawn)?)
        .stderr(writer)
        .spawn()
        .map_err(Error::Spawn)?;
    let output = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    });
    let deadline = Instant::now() + hc.timeout();
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
        }
    };
    let mut text = String::from_utf8_lossy(&output.join().unwrap_or_default()).into_owned();
    if code == -1 {
        text = format!(
            "Health check exceeded timeout ({})",
            humantime::format_duration(hc.timeout())
        );
    }
    let mut h = load(paths, id).unwrap_or_default();
    let before = h.status.clone();
    let ran = Duration::from_nanos(start.saturating_sub(st.started_at.unwrap_or(0)));
    if code == 0 {
        h.failing_streak = 0;
        h.status = "healthy".into();
    } else if ran >= hc.start_period() || h.status != "starting" {
        h.failing_streak += 1;
        if h.failing_streak >= hc.retries() {
            h.status = "unhealthy".into();
        }
    }
    h.log.push(Probe {
        start: clock::rfc3339(start),
        end: clock::rfc3339(state::now_ns()),
        exit_code: code,
        output: text,
    });
    let excess = h.log.len().saturating_sub(5);
    h.log.drain(..excess);
    // Only while the container still runs the start this probe was for.
    let now = state::load_state(paths, id)?;
    if now.status != Status::Running || now.started_at != st.started_at {
        return Ok(());
    }
    save(paths, id, &h)?;
    if h.status != before {
        events::record(paths, id, &format!("health_status: {}", h.status), &[]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_image_field_by_field() {
        let image = Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let hc = resolve(
            Some(image.clone()),
            &Flags {
                interval: Some("1s"),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(hc.test, image.test);
        assert_eq!(hc.interval(), Duration::from_secs(1));
        assert_eq!(hc.retries(), 2);
        assert_eq!(hc.timeout(), Duration::from_secs(30));
        let none = Flags {
            none: true,
            ..Default::default()
        };
        assert!(resolve(Some(image), &none).unwrap().is_none());
        assert!(resolve(None, &Flags::default()).unwrap().is_none());
        let conflict = Flags {
            none: true,
            cmd: Some("true"),
            ..Default::default()
        };
        assert!(resolve(None, &conflict).is_err());
        let bad = Flags {
            cmd: Some("true"),
            interval: Some("soon"),
            ..Default::default()
        };
        assert!(resolve(None, &bad).is_err());
    }

    #[test]
    fn reads_dockers_image_config() {
        let config = serde_json::json!({"config": {"Healthcheck": {
            "Test": ["CMD-SHELL", "test -e /ok"], "Interval": 1_000_000_000u64, "Retries": 1}}});
        let hc = from_image(&config).unwrap();
        assert_eq!(
            hc.command().unwrap(),
            ["/bin/sh", "-c", "test -e /ok"].map(String::from)
        );
        assert_eq!(hc.interval(), Duration::from_secs(1));
    }
}
