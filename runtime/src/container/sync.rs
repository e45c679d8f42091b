//! The parent-child channel: a SOCK_SEQPACKET socketpair (message boundaries kept, fds passed
//! with SCM_RIGHTS). The child's end is close-on-exec, so a successful exec shows as EOF.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// Child to parent: running, the first thing it does (see [`super::process::spawn`]).
pub const RUNNING: u8 = b'S';
/// Parent to child: go on (with the terminal size for `-t`: rows, cols).
pub const GO: u8 = b'G';
/// Parent to child: its user namespace's uid and gid maps are written.
pub const MAPPED: u8 = b'M';
/// Child to parent (OCI `create` with createContainer hooks): the mounts are made, the root is
/// not entered yet; it waits for [`RESUME`].
pub const FS_READY: u8 = b'F';
/// Parent to child: the createContainer hooks ran, go on.
pub const RESUME: u8 = b'C';
/// Child to parent: the pty's master fd.
pub const PTY: u8 = b'T';
/// Child to parent (OCI `create`): set up, now waiting for `start` on the exec fifo.
pub const READY: u8 = b'R';
/// Child to parent: a failure, as [`super::error::SetupError::encode`] writes it.
pub const FAIL: u8 = b'E';

pub struct Channel(OwnedFd);

/// At most this many descriptors go with one message.
const MAX_FDS: usize = 16;

/// A received message: its bytes (empty at EOF) and the descriptors passed with it.
pub struct Message {
    pub data: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Channel {
    pub fn pair() -> nix::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    /// Whether the other end is closed (its process died), without waiting or consuming.
    pub fn peer_gone(&self) -> bool {
        let mut byte = [0u8; 1];
        // SAFETY: a non-blocking peek into a buffer we own.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n == 0
    }

    pub fn send(&self, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
        if fds.len() > MAX_FDS {
            return Err(nix::Error::E2BIG);
        }
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs = if fds.is_empty() { &[][..] } else { &rights[..] };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(data)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    pub fn recv(&self) -> nix::Result<Message> {
        let mut buf = vec![0u8; 4096];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (len, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let fds: Vec<RawFd> = msg
                        .cmsgs()?
                        .flat_map(|c| match c {
                            ControlMessageOwned::ScmRights(fds) => fds,
                            _ => Vec::new(),
                        })
                        .collect();
                    break (msg.bytes, fds);
                }
                // ECONNRESET: the peer exited without reading our last message (a child that
                // failed before `go`). Reported once; what it sent is still queued behind it.
                Err(nix::Error::EINTR | nix::Error::ECONNRESET) => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(len);
        // SAFETY: the kernel installed these descriptors for us with SCM_RIGHTS.
        let fds = fds
            .into_iter()
            .map(|f| unsafe { OwnedFd::from_raw_fd(f) })
            .collect();
        Ok(Message { data: buf, fds })
    }
}
