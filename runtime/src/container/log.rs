//! The container's log: one record per line, `<RFC 3339 time> <stdout|stderr> <F|P> <text>`
//! (`P` for a partial line), the format `logs` reads. Written by the supervisor of a detached
//! container and by a foreground `run`, which also copies the output to its own.
//!
//! The supervisor runs [`Stream::pump`] in its lean loop: it is inlined into the caller and
//! makes its system calls directly (rustix), touching no constants of the binary.
//!
//! The log is bounded as Docker's json-file driver bounds it ([`LogOptions`], [`LogFile`]):
//! `container.log` is rotated to `container.log.1` (and `.1` to `.2`, ...) once it reached
//! `max-size`, and `max-file` files are kept in all.

use std::cell::Cell;
use std::ffi::CString;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::buffer::spare_capacity;
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// What can go wrong with a container's log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --log-opt {opt:?}: {hint}")]
    BadOption { opt: String, hint: &'static str },
    #[error("opening {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `--log-opt max-size=… --log-opt max-file=…`, with Docker's meaning; the default bounds a
/// container's log to 100 MiB, as Docker's `local` driver does (20m × 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// The size at which the log is rotated, in bytes.
    pub max_size: u64,
    /// How many files are kept, the one being written included (1: it is truncated instead).
    pub max_file: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            max_size: 20 << 20,
            max_file: 5,
        }
    }
}

impl LogOptions {
    /// Parses `--log-opt KEY=VALUE` values.
    pub fn parse(opts: &[String]) -> Result<Self, Error> {
        let mut o = Self::default();
        for opt in opts {
            let bad = |hint| Error::BadOption {
                opt: opt.clone(),
                hint,
            };
            match opt.split_once('=') {
                Some(("max-size", v)) => {
                    o.max_size = super::spec::size(v).ok_or(bad("give a size such as 10m"))?;
                }
                Some(("max-file", v)) => {
                    o.max_file = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=100).contains(n))
                        .ok_or(bad("give a number from 1 to 100"))?;
                }
                _ => return Err(bad("minibox knows max-size and max-file")),
            }
        }
        Ok(o)
    }
}

/// `path`, then its rotated files `path.1`, `path.2`, ... up to `n` in all.
pub fn log_files(path: &Path, n: u32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| match i {
            0 => path.to_path_buf(),
            i => {
                let mut p = path.as_os_str().to_owned();
                p.push(format!(".{i}"));
                PathBuf::from(p)
            }
        })
        .collect()
}

/// The log being written: rotated before a record when it reached `max_size` (so a file exceeds
/// it by one record at most, as Docker's do). Shared by a container's two streams, so its
/// state is in cells. The paths are made once: rotating allocates nothing.
pub struct LogFile {
    fd: Cell<RawFd>,
    size: Cell<u64>,
    max_size: u64,
    /// `container.log`, `.1`, ... as C strings, `max_file` of them.
    paths: Vec<CString>,
}

impl LogFile {
    /// Opens (appends to) the log at `path`, readable by root only (0640, as Docker's).
    pub fn open(path: &Path, opts: LogOptions) -> Result<Self, Error> {
        let err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let paths = log_files(path, opts.max_file.max(1))
            .iter()
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.into()))?;
        let fd = open_log(&paths[0]).map_err(|e| err(e.into()))?;
        let size = rustix::fs::fstat(&fd).map_or(0, |st| st.st_size as u64);
        Ok(Self {
            fd: Cell::new(fd.into_raw_fd()),
            size: Cell::new(size),
            max_size: opts.max_size,
            paths,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is open as long as self (replaced only in `rotate`).
        unsafe { BorrowedFd::borrow_raw(self.fd.get()) }
    }

    /// Writes one record with one system call, rotating first when the log is full.
    #[inline(always)]
    fn write(&self, parts: &[IoSlice]) {
        if self.size.get() >= self.max_size {
            self.rotate();
        }
        if let Ok(n) = rustix::io::writev(self.fd(), parts) {
            self.size.set(self.size.get() + n as u64);
        }
    }

    /// Docker's rotation: each file moves one up (the last one is overwritten), the log starts
    /// anew; with a single file it is truncated.
    #[inline(never)]
    fn rotate(&self) {
        let paths = &self.paths;
        if paths.len() == 1 {
            let _ = rustix::fs::ftruncate(self.fd(), 0);
        } else {
            for i in (1..paths.len()).rev() {
                let _ = rustix::fs::rename(&paths[i - 1], &paths[i]);
            }
            match open_log(&paths[0]) {
                Ok(new) => {
                    let old = self.fd.replace(new.into_raw_fd());
                    // SAFETY: the previous descriptor, owned here and used no more.
                    drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(old) });
                }
                // Unable to start a new file: keep writing the moved one (nothing is lost).
                Err(_) => return,
            }
        }
        self.size.set(0);
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        // SAFETY: the descriptor this log owns.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(self.fd.get()) });
    }
}

/// Reads a container's log as `logs` shows it: the rotated files oldest first, then the one
/// being written; following, what is appended to it, across rotations and truncations. Yields
/// complete records only (a record being written is picked up once whole).
pub struct LogReader {
    path: PathBuf,
    file: Option<std::fs::File>,
    pending: String,
}

impl LogReader {
    /// The reader, and every complete record so far (`max_file`: how many files are kept).
    pub fn open(path: &Path, max_file: u32) -> Result<(Self, Vec<String>), Error> {
        let mut records = Vec::new();
        for rotated in log_files(path, max_file).iter().skip(1).rev() {
            if let Ok(text) = std::fs::read_to_string(rotated) {
                records.extend(text.lines().map(str::to_string));
            }
        }
        let file = match std::fs::File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                let path = path.to_path_buf();
                return Err(Error::Read { path, source });
            }
        };
        let mut reader = Self {
            path: path.to_path_buf(),
            file,
            pending: String::new(),
        };
        records.extend(reader.more()?);
        Ok((reader, records))
    }

    /// The complete records written since the last call.
    pub fn more(&mut self) -> Result<Vec<String>, Error> {
        use std::io::{Read, Seek};
        use std::os::unix::fs::MetadataExt;
        let err = |source| Error::Read {
            path: self.path.clone(),
            source,
        };
        let mut records = Vec::new();
        // A log its supervisor had not made yet when this reader was opened.
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        let Some(file) = &mut self.file else {
            return Ok(records);
        };
        loop {
            file.read_to_string(&mut self.pending).map_err(err)?;
            while let Some(end) = self.pending.find('\n') {
                records.push(self.pending[..end].to_string());
                self.pending.drain(..=end);
            }
            // Rotated: the rest of the old file is read; go on with the new one.
            let ino = file.metadata().map_or(0, |m| m.ino());
            match std::fs::File::open(&self.path) {
                Ok(new) if new.metadata().is_ok_and(|m| m.ino() != ino) => {
                    *file = new;
                    self.pending.clear();
                    continue;
                }
                _ => {}
            }
            // Truncated (a single file kept): from its beginning again.
            let at = file.stream_position().map_err(err)?;
            if file.metadata().is_ok_and(|m| m.len() < at) {
                file.rewind().map_err(err)?;
                self.pending.clear();
                continue;
            }
            return Ok(records);
        }
    }
}

fn open_log(path: &std::ffi::CStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    )
}

/// The pipes a container without a terminal writes its stdout and stderr into, read by whoever
/// logs them (its supervisor, or a foreground `run`). With a terminal, its pty's master is read.
pub struct Output {
    /// (read end, write end) of stdout's pipe and of stderr's.
    pipes: Option<[(OwnedFd, OwnedFd); 2]>,
}

impl Output {
    pub fn new(tty: bool) -> nix::Result<Self> {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC);
        let pipes = if tty { None } else { Some([pipe()?, pipe()?]) };
        Ok(Self { pipes })
    }

    /// What the container's stdout and stderr become.
    pub fn write_ends(&self) -> Option<(BorrowedFd<'_>, BorrowedFd<'_>)> {
        let [out, err] = self.pipes.as_ref()?;
        Some((out.1.as_fd(), err.1.as_fd()))
    }

    /// Once the container runs, what its output is read from: stdout's and stderr's pipes (the
    /// write ends closed here, so that reading ends when the container's side closes), or the
    /// master of its pty.
    pub fn read_ends(self, pty: Option<OwnedFd>) -> (OwnedFd, Option<OwnedFd>) {
        match (self.pipes, pty) {
            (Some([out, err]), _) => (out.0, Some(err.0)),
            (None, Some(master)) => (master, None),
            (None, None) => unreachable!("a container without pipes has a terminal"),
        }
    }
}

/// One of the container's output streams and the line it has not finished yet, in a buffer
/// allocated once (and never zeroed, so that only the pages output reaches are touched): the
/// steady state allocates nothing.
pub struct Stream<'a> {
    /// Until the stream ends (closed here, so that a writer whose output has nowhere to go
    /// gets EPIPE, as it would writing to a closed pipe itself).
    pub fd: Option<OwnedFd>,
    /// Where the output is also copied as it comes (a foreground `run`'s own stdout/stderr).
    echo: Option<BorrowedFd<'a>>,
    /// `stdout` or `stderr`, kept here so that a record reads none of the binary's constants.
    name: [u8; 6],
    buf: Vec<u8>,
}

/// Longest line kept whole; longer ones are split into partial (`P`) records.
const MAX_LINE: usize = 16 * 1024;

impl<'a> Stream<'a> {
    /// A stream read from `fd`, logged as `name` and, with `echo`, copied there.
    pub fn new(fd: OwnedFd, name: &[u8; 6], echo: Option<BorrowedFd<'a>>) -> Self {
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Self {
            fd: Some(fd),
            echo,
            name: *name,
            buf: Vec::with_capacity(MAX_LINE),
        }
    }

    pub fn is_open(&self) -> bool {
        self.fd.is_some()
    }

    /// Reads once and logs every complete line. The rest of a line is logged as partial when
    /// the read drained the stream; when the read filled the buffer, more is waiting: it is
    /// kept (moved to the front, the only copy, which ordinary output never needs).
    /// Returns whether it read anything.
    #[inline(always)]
    pub fn pump(&mut self, log: Option<&LogFile>) -> bool {
        if self.buf.len() == MAX_LINE {
            record_in(log, &self.name, b'P', &self.buf);
            self.buf.clear();
        }
        let Some(fd) = &self.fd else {
            return false;
        };
        let held = self.buf.len();
        let n = match rustix::io::read(fd, spare_capacity(&mut self.buf)) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return false,
            // EIO: the pty's other side is closed.
            Err(_) => 0,
        };
        if n == 0
            || self
                .echo
                .is_some_and(|to| !write_all(to, &self.buf[held..]))
        {
            self.fd = None;
        }
        let (mut from, end) = (0, self.buf.len());
        for i in held..end {
            if self.buf[i] == b'\n' {
                record_in(log, &self.name, b'F', &self.buf[from..i]);
                from = i + 1;
            }
        }
        if from < end && (end < MAX_LINE || self.fd.is_none()) {
            record_in(log, &self.name, b'P', &self.buf[from..end]);
            from = end;
        }
        if from > 0 && from < end {
            self.buf.copy_within(from..end, 0);
        }
        self.buf.truncate(end - from);
        n > 0
    }
}

/// Writes all of `data` to a descriptor that may be non-blocking; false when it cannot.
#[inline(always)]
fn write_all(to: BorrowedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(to, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(&to, PollFlags::OUT)];
                let _ = rustix::event::poll(&mut fds, None);
            }
            Err(_) => return false,
        }
    }
    true
}

/// [`record`] when there is a log.
#[inline(always)]
fn record_in(log: Option<&LogFile>, stream: &[u8; 6], tag: u8, text: &[u8]) {
    if let Some(log) = log {
        record(log, stream, tag, text);
    }
}

/// Appends one log record, `<time> <stream> <F|P> <text>`, with one write.
#[inline(always)]
fn record(log: &LogFile, stream: &[u8; 6], tag: u8, text: &[u8]) {
    let text = match text {
        [line @ .., b'\r'] => line,
        _ => text,
    };
    // Filled piecewise: a constant template would be read from the binary's data.
    let mut head = [0u8; 40];
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    head[..30].copy_from_slice(&rfc3339(now.tv_sec, now.tv_nsec));
    head[31..37].copy_from_slice(stream);
    (head[30], head[37], head[38], head[39]) = (b' ', b' ', tag, b' ');
    let newline = [b'\n'];
    let parts = [
        IoSlice::new(&head),
        IoSlice::new(text),
        IoSlice::new(&newline),
    ];
    log.write(&parts);
}

/// [`super::clock::rfc3339`] by arithmetic alone: formatting machinery would take the
/// supervisor's loop to code pages far from its own.
#[inline(always)]
fn rfc3339(secs: i64, nanos: i64) -> [u8; 30] {
    fn digits(out: &mut [u8], mut v: u64) {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let secs = secs.max(0) as u64;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, years from March).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    let mut out = [0u8; 30];
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], rest / 3600);
    digits(&mut out[14..16], rest / 60 % 60);
    digits(&mut out[17..19], rest % 60);
    digits(&mut out[20..29], nanos as u64);
    (out[4], out[7], out[10], out[13], out[16], out[19], out[29]) =
        (b'-', b'-', b'T', b':', b':', b'.', b'Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options_as_docker_reads_them() {
        let o =
            |v: &[&str]| LogOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(o(&[]).unwrap(), LogOptions::default());
        let got = o(&["max-size=1m", "max-file=2"]).unwrap();
        assert_eq!((got.max_size, got.max_file), (1 << 20, 2));
        assert!(o(&["max-size=lots"]).is_err());
        assert!(o(&["max-file=0"]).is_err());
        assert!(o(&["mode=non-blocking"]).is_err());
    }

    #[test]
    fn rotation_keeps_max_file_files_of_about_max_size() {
        let dir = std::env::temp_dir().join(format!("minibox-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("container.log");
        let opts = LogOptions {
            max_size: 1000,
            max_file: 3,
        };
        let log = LogFile::open(&path, opts).unwrap();
        for i in 0..500 {
            record(&log, b"stdout", b'F', format!("line {i}").as_bytes());
        }
        drop(log);
        let files = log_files(&path, 4);
        assert!(!files[3].exists(), "more than max-file files");
        for f in &files[..3] {
            let len = std::fs::metadata(f).unwrap().len();
            assert!(len < 1000 + 60, "{} has {len} bytes", f.display());
        }
        let newest = std::fs::read_to_string(&files[0]).unwrap();
        assert!(newest.trim_end().ends_with("line 499"), "{newest}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn times_as_clock_formats_them() {
        // Leap days, ends of months and years, the 2100 non-leap year, nanosecond padding.
        let days = [
            0, 59, 60, 365, 789, 10_956, 11_016, 20_414, 47_541, 47_540, 47_482,
        ];
        for d in days {
            for (s, n) in [(0, 0), (86_399, 999_999_999), (45_296, 7)] {
                let secs = d * 86_400 + s;
                let ns = secs as u64 * 1_000_000_000 + n as u64;
                assert_eq!(
                    &rfc3339(secs, n)[..],
                    super::super::clock::rfc3339(ns).as_bytes(),
                    "{secs}.{n}"
                );
            }
        }
    }
}
