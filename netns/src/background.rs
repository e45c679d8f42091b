//! Finishing work in a detached process: teardown waits on the kernel (an nf_tables commit that
//! deletes costs a grace period), and the user need not wait with it. The process keeps holding
//! the network lock, so whoever needs the same port or address next waits for it.

use std::os::fd::RawFd;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult};

/// Forks a grandchild of this process that is detached from it (its own session, stdio on
/// /dev/null, every other descriptor closed but those in `keep`). Returns `true` in that
/// grandchild, which must end with [`exit`], and `false` in the caller once the grandchild exists.
pub fn fork_detached(keep: &[RawFd]) -> nix::Result<bool> {
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
/// lock of the caller's outlives it here). A kept descriptor on a stdio number (a caller
/// started with stdio closed) stays where it is.
fn detach_fds(keep: &[RawFd]) {
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for fd in (0..3).filter(|fd| !keep.contains(fd)) {
                libc::dup2(null, fd);
            }
        }
        let close = |first: RawFd, last: RawFd| {
            if first <= last {
                libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0);
            }
        };
        let mut kept: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd >= 3).collect();
        kept.sort_unstable();
        let mut first = 3;
        for fd in kept {
            close(first, fd - 1);
            first = fd + 1;
        }
        close(first, RawFd::MAX);
    }
}

/// Ends a process made by [`fork_detached`] without running the caller's exit handlers.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once, which is the point.
    unsafe { libc::_exit(code) }
}
