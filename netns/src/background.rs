//! Work in detached processes. Finishing a teardown: it waits on the kernel (an nf_tables
//! commit that deletes costs a grace period), and the user need not wait with it; the process
//! keeps holding the network lock, so whoever needs the same port or address next waits for
//! it. The runtime forks the same way to remove a `--rm` container once its user has its exit
//! code. And minibox's small servers, which run as long as what they serve (see [`claim`]).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, setsid, ForkResult, Pid};

use crate::error::{io, Error, Result};

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

/// [`fork_detached`] for a caller that exits next (the end of a foreground `run`): one fork, and
/// nothing waited for, which halves what the caller pays. The child, detached the same way, is
/// the caller's until the caller exits, then init's: the caller must wait for no child after
/// this (it would reap this one).
pub fn fork_detached_at_exit(keep: &[RawFd]) -> nix::Result<bool> {
    // SAFETY: as in `fork_detached`.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => Ok(false),
        ForkResult::Child => {
            let _ = setsid();
            detach_fds(keep);
            Ok(true)
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

/// A server of minibox's own (a network's DNS server, a container's `[::1]` proxy): a detached
/// process that runs for as long as it holds its lock file, with its pid in it. Whether it runs
/// is whether the lock is held, so that nothing is left to clean up when it dies.
///
/// [`claim`] takes the lock unless a server holds it; [`serve`] hands it to a new server.
pub fn claim(path: &Path) -> Result<Option<Flock<File>>> {
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => {
            // The pid of a server that is gone: [`stop`] must not take it for the holder's (and
            // kill whatever has that pid now) until a new server writes its own.
            let _ = held.set_len(0);
            Ok(Some(held))
        }
        Err((_, nix::Error::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// Runs `serve` in a detached process that keeps `held` (and the descriptors in `keep`, its
/// sockets bound beforehand so that the first client finds them) until it exits.
pub fn serve(held: Flock<File>, keep: &[RawFd], serve: impl FnOnce()) -> Result<()> {
    let mut fds = vec![held.as_raw_fd()];
    fds.extend_from_slice(keep);
    match fork_detached(&fds) {
        Ok(true) => {
            let _ = held.set_len(0);
            let _ = (&*held).write_all(std::process::id().to_string().as_bytes());
            serve();
            exit(0)
        }
        Ok(false) => {
            // The server holds the lock through its copy of the descriptor.
            let fd = held.as_raw_fd();
            std::mem::forget(held);
            // SAFETY: the descriptor belongs to the forgotten lock and is used nowhere else.
            unsafe { libc::close(fd) };
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Stops the server that holds the lock at `path`, if one does; returns once it is gone.
pub fn stop(path: &Path) -> Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("opening {}", path.display()))(e)),
    };
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        // Nobody serves: nothing to stop.
        Ok(_) => {
            let _ = std::fs::remove_file(path);
            return Ok(());
        }
        Err((file, nix::Error::EWOULDBLOCK)) => file,
        Err((_, e)) => return Err(e.into()),
    };
    // The lock's holder writes its pid before serving; the lock proves it is still that
    // process. A server forked a moment ago may not have written it yet: wait for it (or for
    // the server's end), else the wait below would outlast a server that serves on.
    let start = std::time::Instant::now();
    let mut file = file;
    loop {
        let mut pid = [0u8; 16];
        let n = file.read_at(&mut pid, 0).unwrap_or(0);
        let pid = std::str::from_utf8(&pid[..n]).ok();
        if let Some(pid) = pid.and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            break;
        }
        file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_) => {
                let _ = std::fs::remove_file(path);
                return Ok(());
            }
            Err((file, nix::Error::EWOULDBLOCK)) if start.elapsed().as_secs() < 10 => file,
            Err((_, nix::Error::EWOULDBLOCK)) => {
                let what = format!("stopping the server of {}: it gave no pid", path.display());
                return Err(io(what)(ErrorKind::TimedOut.into()));
            }
            Err((_, e)) => return Err(e.into()),
        };
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // Returns when the server has exited (its descriptor of the lock closed with it).
    let _gone = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::from(e))?;
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// A server stopped before it wrote its pid (one forked a moment ago) is stopped all the
    /// same: `stop` waits for the pid, not for the end of a server that would serve on.
    #[test]
    fn stop_waits_for_a_new_servers_pid() {
        let dir = std::env::temp_dir().join(format!("minibox-background-{}", std::process::id()));
        let path = dir.join("server.lock");
        let held = super::claim(&path).unwrap().expect("nobody serves yet");
        // SAFETY: the child only sleeps, writes and pauses (async-signal-safe calls).
        let server = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                libc::usleep(300_000);
                let pid = std::process::id().to_string();
                libc::pwrite(held.as_raw_fd(), pid.as_ptr().cast(), pid.len(), 0);
                loop {
                    libc::pause();
                }
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        // The child holds the lock through its copy of the descriptor (an unlock would free it).
        let fd = held.as_raw_fd();
        std::mem::forget(held);
        // SAFETY: the descriptor belongs to the forgotten lock and is used nowhere else.
        unsafe { libc::close(fd) };
        let (done, stopped) = std::sync::mpsc::channel();
        let stopping = path.clone();
        std::thread::spawn(move || done.send(super::stop(&stopping).is_ok()));
        let result = stopped.recv_timeout(Duration::from_secs(5));
        let _ = nix::sys::signal::kill(server, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(server, None);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            result,
            Ok(true),
            "stop did not stop a server that had no pid yet"
        );
    }
}
