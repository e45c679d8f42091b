//! `start`: releases a created container's process by reading its exec fifo (the process is
//! blocked opening it for writing), then runs the poststart hooks.

use std::io::Read;
use std::os::fd::AsFd;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::hooks::{self, Point};
use super::{OciError, Result, Root, Status};

pub fn start(root: &Root, id: &str) -> Result<()> {
    let record = root.load(id)?;
    match root.status(&record) {
        Status::Created => {}
        Status::Stopped => return Err(OciError::WrongState("stopped", "it cannot be started")),
        _ => return Err(OciError::WrongState("running", "it was started already")),
    }
    let spec = root.config(id)?;
    hooks::run(&spec, Point::StartContainer, &root.document(&record))?;
    let path = root.fifo(id);
    // Non-blocking, so that a process that died meanwhile does not leave us waiting.
    let fifo = std::fs::File::from(
        nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| OciError::io("opening the exec fifo", e.into()))?,
    );
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::Error::EINTR) => {}
            Ok(_) => {
                let mut byte = [0u8; 1];
                if matches!((&fifo).read(&mut byte), Ok(1)) {
                    break;
                }
            }
            Err(e) => return Err(OciError::io("waiting on the exec fifo", e.into())),
        }
        if !record.alive() {
            let _ = std::fs::remove_file(&path);
            return Err(OciError::WrongState(
                "stopped",
                "its process exited before it was started",
            ));
        }
    }
    let _ = std::fs::remove_file(&path);
    let state = root.document(&record);
    if let Err(e) = hooks::run(&spec, Point::Poststart, &state) {
        tracing::warn!("{e}");
    }
    Ok(())
}
