//! `--init`: a tiny init built into minibox, in the spirit of tini. PID 1 forks the command,
//! forwards the signals it receives to it, reaps every zombie reparented to it, and exits with the
//! command's status once the command exits.
//!
//! PID 1 is the cloned runtime process itself and never execs: it stays non-dumpable, with the
//! container's user, capabilities and no_new_privs already applied.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setpgid, tcsetpgrp, ForkResult, Pid};

/// Forks the command. Returns in the command's process (which keeps the sync socket to report an
/// exec failure); PID 1 stays here for good. `blocked` are the signals the runtime blocked: PID 1
/// receives them with sigwait.
pub fn start(tty: bool, blocked: &SigSet) {
    // SAFETY: the process is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // Its own process group, in the foreground of the terminal if there is one, so
            // Ctrl-C reaches it once rather than through init as well.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
        }
        Ok(ForkResult::Parent { child }) => {
            // Init never execs, so close-on-exec does not apply: close every fd >= 3 (the sync
            // socket included, which only the command keeps) so none of the runtime's stays.
            let _ = super::security::close_range(3, u32::MAX, false);
            let _ = setpgid(child, child);
            if tty {
                let _ = tcsetpgrp(std::io::stdin(), child);
            }
            supervise(child, blocked)
        }
        Err(e) => {
            eprintln!("minibox-init: fork: {e}");
            // SAFETY: leaving without the parent's exit handlers.
            unsafe { libc::_exit(125) }
        }
    }
}

fn supervise(child: Pid, blocked: &SigSet) -> ! {
    loop {
        let Ok(sig) = blocked.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => exit(128 + sig as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(nix::Error::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: leaving without the parent's exit handlers; the kernel kills what is left.
    unsafe { libc::_exit(code) }
}
