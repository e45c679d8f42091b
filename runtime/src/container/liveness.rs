//! Whether a container's PID 1 is still the process minibox started, asked of the process
//! itself: its pid and its start time (field 22 of `/proc/PID/stat`, clock ticks since boot, as
//! runc records it). A pid the kernel handed to another process since has another start time,
//! so a signal never reaches a stranger: it goes through a pidfd opened on the pid and checked
//! *after* opening (the pidfd pins that one process, whatever happens to the pid).

use std::os::fd::OwnedFd;

use nix::sys::signal::Signal;
use rustix::process::{Pid, PidfdFlags, Signal as RSignal};

/// The start time of process `pid`, if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a `/proc/PID/stat` line. The command name (field 2) may hold spaces and
/// parentheses: the fields are counted from its closing parenthesis.
fn parse_start(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// What identifies a container's PID 1: its pid and start time, or, in state written before
/// start times were recorded, membership of the container's cgroup.
#[derive(Debug, Clone, Copy)]
pub struct Init<'a> {
    pub pid: i32,
    pub start: Option<u64>,
    pub cgroup: Option<&'a str>,
}

impl Init<'_> {
    /// A pidfd on the process, when it is still the container's PID 1.
    pub fn open(&self) -> Option<OwnedFd> {
        let pid = Pid::from_raw(self.pid)?;
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok()?;
        self.is_ours().then_some(fd)
    }

    /// Whether the process that now has the pid is the container's PID 1.
    fn is_ours(&self) -> bool {
        match (self.start, self.cgroup) {
            (Some(start), _) => start_time(self.pid) == Some(start),
            (None, Some(cgroup)) => std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid))
                .is_ok_and(|s| in_cgroup(&s, cgroup)),
            (None, None) => false,
        }
    }

    pub fn alive(&self) -> bool {
        self.open().is_some()
    }

    /// Sends `sig` to the container's PID 1; false when that process is gone.
    pub fn signal(&self, sig: Signal) -> std::io::Result<bool> {
        let Some(fd) = self.open() else {
            return Ok(false);
        };
        let sig = RSignal::from_named_raw(sig as i32).expect("a named signal");
        match rustix::process::pidfd_send_signal(&fd, sig) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::SRCH) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a `/proc/PID/cgroup` text places the process in `cgroup` (a path relative to the
/// hierarchies' roots) in some hierarchy.
fn in_cgroup(proc_cgroup: &str, cgroup: &str) -> bool {
    let cgroup = cgroup.trim_matches('/');
    proc_cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|p| p.trim_start_matches('/') == cgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_past_an_odd_command_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start(stat), Some(987654));
        assert_eq!(parse_start("42 (x"), None);
    }

    #[test]
    fn this_process_is_found_and_a_changed_start_time_is_not() {
        let me = std::process::id() as i32;
        let start = start_time(me);
        assert!(start.is_some());
        let ours = Init {
            pid: me,
            start,
            cgroup: None,
        };
        assert!(ours.alive());
        let reused = Init {
            start: start.map(|s| s + 1),
            ..ours
        };
        assert!(!reused.alive());
        assert!(!reused.signal(Signal::SIGCONT).unwrap());
    }

    #[test]
    fn cgroup_membership() {
        let text = "12:freezer:/ci/abc\n4:memory:/ci/abc\n0::/\n";
        assert!(in_cgroup(text, "ci/abc"));
        assert!(!in_cgroup(text, "ci/ab"));
        assert!(in_cgroup("0::/x/y\n", "/x/y"));
    }
}
