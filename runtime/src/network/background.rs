//! Finishing a network teardown in a detached process: it waits on the kernel (an nf_tables
//! commit that deletes costs a grace period), and the user need not wait with it. The process
//! keeps holding the network lock, so whoever needs the same port or address next waits for it.

use std::os::fd::RawFd;

use anyhow::Result;
use minibox_netns::{Detaching, Store};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult};

use crate::container::lifecycle::fault;
use crate::container::security::close_inherited;

/// Hands `teardown` to a detached process that finishes it, and returns at once; finishes it
/// here when no process can be forked.
pub fn finish(teardown: Detaching, store: &Store) -> Result<()> {
    match fork_detached(teardown.lock_fd()) {
        Ok(true) => {
            fault("detaching");
            let done = teardown.finish(store);
            exit(i32::from(done.is_err()))
        }
        Ok(false) => {
            teardown.hand_over();
            Ok(())
        }
        Err(e) => {
            tracing::debug!("finishing a network teardown here: cannot fork: {e}");
            Ok(teardown.finish(store)?)
        }
    }
}

/// Forks a grandchild of this process that is detached from it (its own session, stdio on
/// /dev/null, every other descriptor closed but `keep`). Returns `true` in that grandchild,
/// which must end with [`exit`], and `false` in the caller once the grandchild exists.
fn fork_detached(keep: RawFd) -> nix::Result<bool> {
    // SAFETY: the child only forks again or exits; the grandchild runs the caller's teardown,
    // which needs no lock another thread could have held (the runtime forks single-threaded).
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            // The intermediate child exits at once: 0 once the grandchild exists.
            match waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) | Err(nix::Error::ECHILD) => Ok(false),
                Ok(_) => Err(nix::Error::EAGAIN),
                Err(e) => Err(e),
            }
        }
        ForkResult::Child => {
            let _ = setsid();
            // SAFETY: as above.
            match unsafe { fork() } {
                Ok(ForkResult::Parent { .. }) => exit(0),
                Ok(ForkResult::Child) => {
                    detach_fds(keep);
                    Ok(true)
                }
                Err(_) => exit(1),
            }
        }
    }
}

/// Stdio to /dev/null (no reader of our output waits for this process), the rest closed (no
/// lock of the caller's outlives it here).
fn detach_fds(keep: RawFd) {
    // SAFETY: plain descriptor calls on descriptors this process owns.
    let keep = unsafe {
        // A lock on a stdio number (a caller started with stdio closed) moves up first: the
        // lock stays held through the copy until this process exits.
        let keep = if keep < 3 {
            libc::fcntl(keep, libc::F_DUPFD_CLOEXEC, 3)
        } else {
            keep
        };
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        keep
    };
    let _ = close_inherited(keep);
}

/// Ends a process made by [`fork_detached`] without running the caller's exit handlers.
fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once, which is the point.
    unsafe { libc::_exit(code) }
}
