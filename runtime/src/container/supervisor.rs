//! The supervisor: one small process per detached container, the container's parent. It copies
//! the container's output into its log with timestamps, waits for it, records how it ended (exit
//! code, time, OOM kill), releases its network and cgroup, and removes it all with `--rm`.
//!
//! The set-up happens in a fork of `minibox run -d` (or `start`), which then execs the binary
//! afresh in this mode: the container stays its child, the lock and pipes stay open, and all the
//! memory the set-up used is gone. Nothing here starts a thread or an async runtime; `main` is
//! reached before the command line is parsed.

use std::ffi::{CString, OsString};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::cgroups::Cgroup;
use super::process::{self, Failure};
use super::state::{self, Lock, Status};
use super::{clock, teardown};
use crate::paths::Paths;

/// The first argument that selects this mode.
pub const FLAG: &str = "--supervise";

/// What the set-up process hands over.
pub struct Handoff<'a> {
    pub paths: &'a Paths,
    pub explain: bool,
    pub id: &'a str,
    pub pid: Pid,
    pub lock: BorrowedFd<'a>,
    /// The container's stdout (or its pty's master with `-t`) and stderr.
    pub out: BorrowedFd<'a>,
    pub err: Option<BorrowedFd<'a>>,
}

/// Replaces this process with a fresh supervisor. Returns only on failure.
pub fn exec(h: &Handoff) -> Failure {
    let mut fds = vec![h.lock, h.out];
    fds.extend(h.err);
    for fd in fds {
        if let Err(e) = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        ) {
            return Failure::runtime(format!("passing fds to the supervisor: {e}"));
        }
    }
    let raw = |fd: Option<BorrowedFd>| fd.map_or(-1, |f| f.as_raw_fd()).to_string();
    let args: Vec<Vec<u8>> = vec![
        b"minibox".to_vec(),
        FLAG.into(),
        absolute(&h.paths.root),
        absolute(&h.paths.runroot),
        h.id.into(),
        h.pid.to_string().into(),
        raw(Some(h.lock)).into(),
        raw(Some(h.out)).into(),
        raw(h.err).into(),
        (if h.explain { "1" } else { "0" }).into(),
    ];
    let Ok(argv) = args
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return Failure::runtime("a path contains a NUL byte");
    };
    let err = nix::unistd::execv(c"/proc/self/exe", &argv).unwrap_err();
    Failure::runtime(format!("starting the supervisor: {err}"))
}

/// The supervisor works from `/` (it must not keep the user's directory busy).
fn absolute(p: &std::path::Path) -> Vec<u8> {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .into_os_string()
        .into_vec()
}

struct Args {
    paths: Paths,
    explain: bool,
    id: String,
    pid: Pid,
    lock: Lock,
    out: OwnedFd,
    err: Option<OwnedFd>,
}

fn parse(args: Vec<OsString>) -> Option<Args> {
    let [root, runroot, id, pid, lock, out, err, explain]: [OsString; 8] = args.try_into().ok()?;
    let num = |s: &OsString| s.to_str()?.parse::<i32>().ok();
    let fd = |s: &OsString| {
        // SAFETY: the set-up process passed these descriptors to us, open, for us alone.
        num(s)
            .filter(|n| *n >= 0)
            .map(|n| unsafe { OwnedFd::from_raw_fd(n) })
    };
    Some(Args {
        paths: Paths::new(root.as_ref(), runroot.as_ref()),
        explain: explain.as_bytes() == b"1",
        id: String::from_utf8(id.into_vec()).ok()?,
        pid: Pid::from_raw(num(&pid)?),
        // SAFETY: as above.
        lock: unsafe { Lock::from_raw_fd(num(&lock)?) },
        out: fd(&out)?,
        err: fd(&err),
    })
}

/// The supervisor's whole life; called from `main` with the arguments after [`FLAG`].
pub fn main(args: Vec<OsString>) -> ! {
    let _ = std::env::set_current_dir("/");
    let code = match parse(args) {
        Some(a) => {
            supervise(a);
            0
        }
        None => 125,
    };
    // SAFETY: plain exit; nothing is left to flush.
    unsafe { libc::_exit(code) }
}

/// One of the container's output streams and the line it has not finished yet, in a buffer
/// allocated once: the steady state allocates nothing (no allocator code to keep resident).
struct Stream {
    fd: File,
    name: &'static [u8],
    buf: Box<[u8]>,
    len: usize,
    open: bool,
}

/// Longest line kept whole; longer ones are split into partial (`P`) records.
const MAX_LINE: usize = 16 * 1024;

impl Stream {
    fn new(fd: OwnedFd, name: &'static [u8]) -> Self {
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Self {
            fd: fd.into(),
            name,
            buf: vec![0u8; MAX_LINE].into_boxed_slice(),
            len: 0,
            open: true,
        }
    }

    /// Reads what is there and logs every complete line.
    fn pump(&mut self, log: &File) {
        while self.open {
            if self.len == MAX_LINE {
                record(log, self.name, b'P', &self.buf[..self.len]);
                self.len = 0;
            }
            match nix::unistd::read(self.fd.as_fd(), &mut self.buf[self.len..]) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    let (mut from, end) = (0, self.len + n);
                    for i in self.len..end {
                        if self.buf[i] == b'\n' {
                            record(log, self.name, b'F', &self.buf[from..i]);
                            from = i + 1;
                        }
                    }
                    self.buf.copy_within(from..end, 0);
                    self.len = end - from;
                }
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => return,
                // EIO: the pty's other side is closed.
                Err(_) => self.open = false,
            }
        }
        if self.len > 0 {
            record(log, self.name, b'P', &self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// Appends one log record, `<time> <stream> <F|P> <text>`, with one write.
fn record(log: &File, stream: &[u8], tag: u8, text: &[u8]) {
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let time = clock::rfc3339_bytes(state::now_ns());
    let tag = [b' ', tag, b' '];
    let parts = [
        std::io::IoSlice::new(&time),
        std::io::IoSlice::new(b" "),
        std::io::IoSlice::new(stream),
        std::io::IoSlice::new(&tag),
        std::io::IoSlice::new(text),
        std::io::IoSlice::new(b"\n"),
    ];
    let _ = nix::sys::uio::writev(log, &parts);
}

fn reap(pid: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Some(st),
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            // ECHILD: nothing to wait for any more.
            Err(_) => return Some(WaitStatus::Exited(pid, process::EXIT_RUNTIME.into())),
        }
    }
}

fn supervise(a: Args) {
    let log_path = state::log_path(&a.paths, &a.id);
    let Ok(log) = OpenOptions::new().create(true).append(true).open(&log_path) else {
        return finish(&a, None);
    };
    // SIGCHLD is blocked already (inherited across exec); read it from a signalfd.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        return finish(&a, None);
    };
    let dup = |fd: &OwnedFd| fd.try_clone().ok();
    let mut streams = [
        dup(&a.out).map(|fd| Stream::new(fd, b"stdout")),
        a.err
            .as_ref()
            .and_then(dup)
            .map(|fd| Stream::new(fd, b"stderr")),
    ];
    let mut status = reap(a.pid);
    let scratch = trim(Trim::default());
    loop {
        let open = |s: &Option<Stream>| s.as_ref().is_some_and(|s| s.open);
        if status.is_some() && !streams.iter().any(open) {
            break;
        }
        // A negative fd is skipped by poll: closed or absent streams.
        let entry = |fd: i32| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let stream_fd = |s: &Option<Stream>| match s {
            Some(s) if s.open => s.fd.as_raw_fd(),
            _ => -1,
        };
        let mut fds = [
            entry(sfd.as_raw_fd()),
            entry(stream_fd(&streams[0])),
            entry(stream_fd(&streams[1])),
        ];
        // Once PID 1 is gone only what the pipes still hold is drained.
        let timeout = if status.is_some() { 500 } else { -1 };
        // SAFETY: poll on an array we own.
        match unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) } {
            0 => break,
            n if n < 0 && nix::Error::last() != nix::Error::EINTR => break,
            _ => {}
        }
        for (s, fd) in streams.iter_mut().zip(&fds[1..]) {
            if let (Some(s), true) = (s, fd.revents != 0) {
                s.pump(&log);
            }
        }
        if fds[0].revents != 0 {
            while let Ok(Some(_)) = sfd.read_signal() {}
            status = status.or_else(|| reap(a.pid));
        }
    }
    for s in streams.iter_mut().flatten() {
        s.pump(&log);
    }
    drop(scratch);
    finish(&a, status)
}

/// Drops this process's clean file-backed pages from its page tables. Starting a process
/// (dynamic loading, Rust's runtime, the argument parsing) touches far more code than the loop
/// runs, and the kernel maps it in 64 KiB chunks: most of the supervisor's RSS would be code it
/// never runs again. Only pages still identical to the file are dropped (read-only private
/// file mappings, pages not copied on write, per /proc/self/pagemap): they come back from the
/// page cache when touched. Written pages (relocations, data) are anonymous and stay.
///
/// The buffers it used are handed back, to be freed at the end: freeing them now would touch
/// the allocator's code again.
fn trim(mut t: Trim) -> Trim {
    use std::io::{Read, Seek, SeekFrom};
    const PAGE: usize = 4096;
    const PRESENT: u64 = 1 << 63;
    const FILE: u64 = 1 << 61;
    let (Ok(maps), Ok(mut pagemap)) = (
        std::fs::read_to_string("/proc/self/maps"),
        File::open("/proc/self/pagemap"),
    ) else {
        return t;
    };
    // First the candidate mappings and the buffer, so that the dropping itself allocates
    // nothing (the allocator's pages would come straight back).
    let ranges: Vec<(usize, usize)> = maps
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, inode) = (f.next()?, f.next()?.as_bytes(), f.nth(2)?);
            if perms.len() < 4 || perms[1] == b'w' || perms[3] != b'p' || inode == "0" {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        })
        .collect();
    let most = ranges
        .iter()
        .map(|(s, e)| (e - s) / PAGE)
        .max()
        .unwrap_or(0);
    t.entries.resize(most * 8, 0);
    for &(start, end) in &ranges {
        let pages = (end - start) / PAGE;
        let entries = &mut t.entries[..pages * 8];
        if pagemap
            .seek(SeekFrom::Start((start / PAGE * 8) as u64))
            .is_err()
            || pagemap.read_exact(entries).is_err()
        {
            continue;
        }
        let clean = |i: usize| {
            let e = u64::from_le_bytes(entries[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            e & PRESENT != 0 && e & FILE != 0
        };
        let mut i = 0;
        while i < pages {
            if !clean(i) {
                i += 1;
                continue;
            }
            let run = i;
            while i < pages && clean(i) {
                i += 1;
            }
            // SAFETY: the range lies within a read-only private file mapping and holds only
            // pages identical to the file: dropping them changes no content.
            unsafe {
                libc::madvise(
                    (start + run * PAGE) as *mut libc::c_void,
                    (i - run) * PAGE,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }
    t.maps = maps;
    t.ranges = ranges;
    t.pagemap = Some(pagemap);
    t
}

/// What `trim` allocated and opened.
#[derive(Default)]
struct Trim {
    maps: String,
    ranges: Vec<(usize, usize)>,
    entries: Vec<u8>,
    pagemap: Option<File>,
}

/// Records the end, releases the network and cgroup, and removes everything with `--rm`. The
/// exit is recorded first while the state still says running, so a supervisor killed halfway
/// through leaves a container the next command recovers.
fn finish(a: &Args, status: Option<WaitStatus>) {
    if status.is_none() {
        let _ = nix::sys::signal::kill(a.pid, Signal::SIGKILL);
        let _ = waitpid(a.pid, None);
    }
    let code = status.map_or(process::EXIT_RUNTIME, process::exit_code);
    let mut st = state::load_state(&a.paths, &a.id).unwrap_or_default();
    st.exit_code = Some(code);
    st.finished_at = Some(state::now_ns());
    st.oom_killed = code == 137
        && st
            .cgroup
            .as_deref()
            .is_some_and(|p| Cgroup::open(p).oom_killed());
    let _ = state::save_state(&a.paths, &a.id, &st);
    super::recover::fault("finishing");
    teardown::release(&a.paths, a.explain, &a.id, &mut st);
    let rm = state::load_config(&a.paths, &a.id).is_ok_and(|c| c.rm);
    if rm {
        teardown::remove(&a.paths, &a.id, st.name.as_deref());
    } else {
        st.status = Status::Exited;
        let _ = state::save_state(&a.paths, &a.id, &st);
    }
    let _ = &a.lock;
}
