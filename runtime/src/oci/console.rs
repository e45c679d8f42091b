//! The console socket protocol: with `process.terminal`, the pty's master is sent over the
//! caller's unix socket (`--console-socket`) with SCM_RIGHTS, as runc does; the caller (the
//! shim, conmon) relays it.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use super::{OciError, Result};

pub fn send(socket: &Path, master: &OwnedFd) -> Result<()> {
    let fail = |e: std::io::Error| {
        OciError::io(
            format!(
                "sending the terminal to the console socket {}",
                socket.display()
            ),
            e,
        )
    };
    let stream = UnixStream::connect(socket).map_err(fail)?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| fail(e.into()))?;
    Ok(())
}
