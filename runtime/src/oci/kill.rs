//! `kill`: a signal to the container's process (checked by pid and start time), or with
//! `--all` to every process of its cgroup.

use std::str::FromStr;

use nix::sys::signal::{kill as send, Signal};

use super::{OciError, Result, Root, Status};
use crate::container::cgroups::Cgroup;

/// A signal as runc takes it: a number, `KILL` or `SIGKILL`.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let bad = || {
        OciError::Invalid(format!(
            "unknown signal {text:?}: give a number or a name such as SIGTERM"
        ))
    };
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    Signal::from_str(&name).map_err(|_| bad())
}

pub fn kill(root: &Root, id: &str, signal: Signal, all: bool) -> Result<()> {
    let record = root.load(id)?;
    let status = root.status(&record);
    let cgroup = Cgroup::open(&record.cgroup);
    if all {
        // Whatever is left of the container, even once its PID 1 has exited (containerd sends
        // `kill --all ID 9` then).
        for pid in cgroup.procs() {
            let _ = send(pid, signal);
        }
        if status == Status::Paused && signal == Signal::SIGKILL {
            cgroup.thaw().map_err(OciError::from)?;
        }
        return Ok(());
    }
    if status == Status::Stopped {
        return Err(OciError::NotRunning);
    }
    let sent = record
        .init()
        .signal(signal)
        .map_err(|e| OciError::io(format!("sending {signal}"), e))?;
    if !sent {
        return Err(OciError::NotRunning);
    }
    // A frozen process only acts on a signal once thawed; SIGKILL must not wait for `resume`.
    if status == Status::Paused && signal == Signal::SIGKILL {
        cgroup.thaw().map_err(OciError::from)?;
    }
    Ok(())
}
