//! `-t`: the container gets a pty from its own devpts instance (so `tty` names /dev/pts/0
//! inside); the master travels to the parent, which puts the user's terminal in raw mode and
//! relays bytes both ways. Ctrl-C reaches the container as a byte its line discipline turns into
//! SIGINT; SIGWINCH resizes the pty.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use super::error::SetupError;

/// In the child, after /dev is mounted: opens a pty, makes its slave the controlling terminal
/// and stdin/stdout/stderr, and returns the master.
pub fn open_in_container(rows: u16, cols: u16) -> Result<OwnedFd, SetupError> {
    let fail = |what: &str| SetupError::last(what);
    // SAFETY: plain open/ioctl/dup2 calls on descriptors we own.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(fail("opening /dev/ptmx"));
        }
        let master = OwnedFd::from_raw_fd(master);
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(fail("unlocking the pty"));
        }
        if rows > 0 && cols > 0 {
            set_size(master.as_fd(), rows, cols);
        }
        let slave = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        );
        if slave < 0 {
            return Err(fail("opening the pty's slave"));
        }
        let slave = OwnedFd::from_raw_fd(slave);
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) < 0 {
            return Err(fail("making the pty the controlling terminal"));
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(fail("dup2"));
            }
        }
        Ok(master)
    }
}

pub fn set_size(fd: BorrowedFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// The size of the user's terminal (stdin, else stdout), if there is one.
pub fn size() -> Option<(u16, u16)> {
    [0, 1].into_iter().find_map(|fd| {
        // SAFETY: TIOCGWINSZ fills a winsize.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0;
        (ok && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
    })
}

/// The user's terminal in raw mode for as long as this lives.
pub struct RawMode(Option<Termios>);

impl RawMode {
    pub fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// The user's side of the container's pty (their input and their terminal's size), or of the
/// pipe its stdin is (`exec -i` without `-t`). The output is read as a log stream, see
/// [`super::log`]. Input is written without blocking: what the container does not take yet
/// waits here (and the user's stdin is not read meanwhile), so a container that neither reads
/// its input nor stops writing output never stalls the runtime that copies that output.
pub struct Relay {
    /// Where the input goes, until the user's stdin ends and all of it went: closed then, so
    /// that a pipe's reader sees the end too.
    to: Option<std::fs::File>,
    /// Read from the user, not taken by the container yet.
    pending: Vec<u8>,
    /// Whether stdin is still relayed (`-i`, until EOF).
    pub stdin_open: bool,
}

impl Relay {
    pub fn new(to: OwnedFd, interactive: bool) -> Self {
        let _ = nix::fcntl::fcntl(
            &to,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Self {
            to: Some(to.into()),
            pending: Vec::new(),
            stdin_open: interactive,
        }
    }

    pub fn resize(&self) {
        if let (Some((rows, cols)), Some(to)) = (size(), &self.to) {
            set_size(to.as_fd(), rows, cols);
        }
    }

    /// Whether the user's stdin is to be read now (nothing is waiting for the container).
    pub fn wants_input(&self) -> bool {
        self.stdin_open && self.pending.is_empty()
    }

    /// What to wait on until the container takes the input waiting here.
    pub fn waiting(&self) -> Option<BorrowedFd<'_>> {
        self.to
            .as_ref()
            .filter(|_| !self.pending.is_empty())
            .map(|f| f.as_fd())
    }

    /// Reads what the user typed and passes it on.
    pub fn pump_input(&mut self) {
        let mut buf = [0u8; 4096];
        // Unbuffered: poll(2) must see everything that is pending.
        match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
        }
        self.flush();
    }

    /// Writes as much of the waiting input as the container takes now.
    pub fn flush(&mut self) {
        while let (Some(to), false) = (&mut self.to, self.pending.is_empty()) {
            match to.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.stdin_open = false;
                    self.pending.clear();
                }
            }
        }
        if !self.stdin_open && self.pending.is_empty() {
            self.to = None;
        }
    }
}
