//! The input of a container run in the background with `-i`, as Docker keeps it: its stdin
//! stays open after `run -d -i` returns, and `attach` (`start -i`, `run --sig-proxy=false`)
//! types into it. Its stdin is a pipe (with `-t`, its pty) whose writing side the supervisor
//! holds and never touches; `attach` takes a copy of that descriptor out of the supervisor
//! with pidfd_getfd(2). The supervisor runs no code for it, so it stays as small as it was.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::process::{pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};

use super::lifecycle;
use super::state::{Config, State};

/// Docker's default detach keys: ctrl-p ctrl-q.
const DETACH: [u8; 2] = [0x10, 0x11];

/// The pipe a background container without a terminal reads its stdin from (with `-i`):
/// (read end, for the container; write end, for the supervisor to keep).
pub fn pipe(config: &Config) -> nix::Result<Option<(OwnedFd, OwnedFd)>> {
    if !config.interactive || config.tty() {
        return Ok(None);
    }
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map(Some)
}

/// What the state records of the container's input: this process (about to become its
/// supervisor) and the descriptor it keeps, when the container has `-i`.
pub fn record(config: &Config, kept: Option<&OwnedFd>) -> Option<(i32, i32)> {
    let fd = kept.filter(|_| config.interactive)?;
    Some((std::process::id() as i32, fd.as_raw_fd()))
}

/// A copy of the running container's input, taken from its supervisor; `None` when it was not
/// run with `-i` (or its supervisor is not the one recorded: then nothing is taken).
pub fn open(st: &State) -> Result<Option<OwnedFd>> {
    let Some((supervisor, fd)) = st.input else {
        return Ok(None);
    };
    if !lifecycle::running(st) || parent_of(st.pid) != Some(supervisor) {
        return Ok(None);
    }
    let pid = rustix::process::Pid::from_raw(supervisor).context("the supervisor's pid")?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).context("opening the supervisor's pidfd")?;
    // Checked again with the pidfd held: the pid cannot be another process's any more.
    if parent_of(st.pid) != Some(supervisor) {
        return Ok(None);
    }
    let input = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty())
        .context("taking the container's input from its supervisor")?;
    Ok(Some(input))
}

/// The parent of process `pid`, from /proc/PID/stat (the field after the command's `)`).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Copies the user's stdin into the container's input until stdin ends (the container's stays
/// open, as Docker's does for `run -d -i`) or the user types ctrl-p ctrl-q. Returns whether they
/// did: detached.
pub fn forward(to: OwnedFd) -> bool {
    let mut to = std::fs::File::from(to);
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    // A ctrl-p held back until the next byte says whether it starts the detach keys.
    let mut held = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 1);
        let mut detach = false;
        for &b in &buf[..n] {
            match (held, b) {
                // What came before the keys still goes in.
                (true, b) if b == DETACH[1] => {
                    detach = true;
                    break;
                }
                (true, b) if b == DETACH[0] => out.push(DETACH[0]),
                (true, b) => {
                    out.extend([DETACH[0], b]);
                    held = false;
                }
                (false, b) if b == DETACH[0] => held = true,
                (false, b) => out.push(b),
            }
        }
        if to.write_all(&out).is_err() {
            return false;
        }
        if detach {
            return true;
        }
    }
}

/// The container's terminal sized as the user's, when both are terminals.
pub fn size_terminal(input: &OwnedFd, tty: bool) {
    if let (true, Some((rows, cols))) = (tty, super::tty::size()) {
        super::tty::set_size(input.as_fd(), rows, cols);
    }
}
