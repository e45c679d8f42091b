//! The supervisor: one small process per detached container, the container's parent. It copies
//! the container's output into its log with timestamps, starts its health probes, waits for it,
//! records how it ended (exit code, time, OOM kill), releases its network and cgroup, and removes
//! it all with `--rm`, or starts it again when its restart policy says so (after Docker's
//! backoff, and unless the user stopped it meanwhile), becoming the new container's supervisor.
//!
//! The set-up happens in a fork of `minibox run -d` (or `start`), which then execs the binary
//! afresh in this mode: the container stays its child, the lock and pipes stay open, and all the
//! memory the set-up used is gone. Nothing here starts a thread or an async runtime; `main` is
//! reached before the command line is parsed. Once running it keeps only the pages its loop
//! needs mapped ([`serve`]): about 0.55 MiB RSS, most of it the binary's relocated read-only
//! data (position-independent code); about 0.7 MiB with a container writing all it can, 0.8
//! MiB while its log rotates every few milliseconds (release build, measured).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::time::Timespec;

use super::cgroups::Cgroup;
use super::error::SetupError;
use super::lifecycle;
use super::log::{LogFile, LogOptions, Stream};
use super::process;
use super::state::{self, Lock, State};
use super::{events, health, restart, start};
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
    pub log: LogOptions,
    /// How often to probe the container's health, if it has a check.
    pub health: Option<Duration>,
    /// The writing side of the container's stdin (`-i` without `-t`), kept open, never used.
    pub input: Option<BorrowedFd<'a>>,
}

/// Replaces this process with a fresh supervisor. Returns only on failure.
pub fn exec(h: &Handoff) -> SetupError {
    let mut fds = vec![h.lock, h.out];
    fds.extend(h.err);
    fds.extend(h.input);
    for fd in fds {
        if let Err(e) = inherit(fd) {
            return SetupError::sys("passing fds to the supervisor", e);
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
        h.log.max_size.to_string().into(),
        h.log.max_file.to_string().into(),
        h.health.map_or(0, |d| d.as_millis()).to_string().into(),
        raw(h.input).into(),
    ];
    exec_self(args, "starting the supervisor")
}

/// Replaces this process with a fresh run of the binary with `args`. Returns only on failure.
fn exec_self(args: Vec<Vec<u8>>, what: &str) -> SetupError {
    let Ok(argv) = args
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return SetupError::new("a path contains a NUL byte");
    };
    let err = nix::unistd::execv(c"/proc/self/exe", &argv).unwrap_err();
    SetupError::sys(what, err)
}

/// Keeps `fd` open across the exec into the next process of this container.
fn inherit(fd: BorrowedFd) -> nix::Result<()> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map(drop)
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
    log: LogOptions,
    health: Option<Duration>,
    /// Held open for the container's stdin (see [`super::input`]), never used.
    _input: Option<OwnedFd>,
}

fn parse(args: Vec<OsString>) -> Option<Args> {
    let [root, runroot, id, pid, lock, out, err, explain, max_size, max_file, health, input]: [OsString;
        12] = args.try_into().ok()?;
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
        log: LogOptions {
            max_size: max_size.to_str()?.parse().ok()?,
            max_file: max_file.to_str()?.parse().ok()?,
        },
        health: match health.to_str()?.parse().ok()? {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        _input: fd(&input),
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
    let Ok(log) = LogFile::open(&log_path, a.log) else {
        return finish(a, None);
    };
    // SIGCHLD is blocked already (inherited across exec); read it from a signalfd.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    else {
        return finish(a, None);
    };
    let dup = |fd: &OwnedFd| fd.try_clone().ok();
    let mut streams = [
        dup(&a.out).map(|fd| Stream::new(fd, b"stdout", None)),
        a.err
            .as_ref()
            .and_then(dup)
            .map(|fd| Stream::new(fd, b"stderr", None)),
    ];
    let mut status = reap(a.pid);
    // The first calls look the clocks up in the vDSO: done here, not in the loop.
    let _ = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let now = || rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let due = |from: Timespec, every: Duration| Timespec {
        tv_sec: from.tv_sec
            + every.as_secs() as i64
            + (from.tv_nsec + i64::from(every.subsec_nanos())) / 1_000_000_000,
        tv_nsec: (from.tv_nsec + i64::from(every.subsec_nanos())) % 1_000_000_000,
    };
    let mut next = a.health.map(|every| due(now(), every));
    let mut probe: Option<Child> = None;
    let clean = clean_pages();
    loop {
        // SAFETY: plain call; it hands the heap's free pages back to the kernel.
        unsafe { libc::malloc_trim(0) };
        let probe_due;
        (status, probe_due) = serve(
            &mut streams,
            &sfd,
            &log,
            a.pid,
            status,
            &clean,
            next.as_ref(),
        );
        if !probe_due {
            break;
        }
        // One probe at a time: a slow one (up to its timeout) makes the next one wait.
        if probe
            .as_mut()
            .is_none_or(|p| !matches!(p.try_wait(), Ok(None)))
        {
            probe = health::spawn(&a.paths, &a.id);
        }
        next = a.health.map(|every| due(now(), every));
    }
    drop(clean);
    if let Some(mut p) = probe {
        let _ = p.kill();
        let _ = p.wait();
    }
    finish(a, status)
}

/// Drops the pages [`clean_pages`] found from this process's page tables.
#[inline(always)]
fn drop_pages(clean: &[(usize, usize)]) {
    for &(start, len) in clean {
        // SAFETY: the range lies within a read-only private file mapping and holds only
        // pages identical to the file: dropping them changes no content.
        let _ =
            unsafe { rustix::mm::madvise(start as *mut _, len, rustix::mm::Advice::LinuxDontNeed) };
    }
}

/// Sleeps for `wait` in short steps, false as soon as the user's stop mark (a `stop` or `rm -f`)
/// appears. Like [`serve`], it drops the pages [`clean_pages`] found and then makes its system
/// calls directly, so a crash-looping container's supervisor is as small while it waits.
#[inline(never)]
fn sleep_unless_stopped(mark: &std::ffi::CStr, wait: Duration, clean: &[(usize, usize)]) -> bool {
    use rustix::time::{clock_gettime, ClockId};
    drop_pages(clean);
    let start = clock_gettime(ClockId::Monotonic);
    let step = Timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    loop {
        let now = clock_gettime(ClockId::Monotonic);
        let waited = (now.tv_sec - start.tv_sec) * 1_000_000_000 + now.tv_nsec - start.tv_nsec;
        if waited >= wait.as_nanos() as i64 {
            return true;
        }
        let _ = rustix::event::poll(&mut [], Some(&step));
        if rustix::fs::access(mark, rustix::fs::Access::EXISTS).is_ok() {
            return false;
        }
    }
}

/// The supervisor's steady state: drops the pages [`clean_pages`] found, then logs the
/// container's output until it is gone. Nothing here calls out of this function while the
/// container runs: what it needs is inlined and the system calls are made directly (rustix, no
/// libc), so the code this process keeps mapped is this function's pages, whatever the
/// container writes. Each place of code or constants touched costs 64 to 256 KiB of RSS: the
/// kernel maps the file pages around a faulting one (fault-around), in whole page-cache folios.
#[inline(never)]
fn serve(
    streams: &mut [Option<Stream>; 2],
    sfd: &SignalFd,
    log: &LogFile,
    pid: Pid,
    mut status: Option<WaitStatus>,
    clean: &[(usize, usize)],
    due: Option<&Timespec>,
) -> (Option<WaitStatus>, bool) {
    drop_pages(clean);
    let open = |s: &Option<Stream>| s.as_ref().is_some_and(Stream::is_open);
    while status.is_none() || streams.iter().any(open) {
        let mut fds = [
            PollFd::new(sfd, PollFlags::IN),
            PollFd::new(sfd, PollFlags::IN),
            PollFd::new(sfd, PollFlags::IN),
        ];
        // Where each stream sits in `fds`, if open.
        let (mut slot, mut n) = ([0; 2], 1);
        for (s, slot) in streams.iter().zip(&mut slot) {
            if let Some(fd) = s.as_ref().and_then(|s| s.fd.as_ref()) {
                fds[n] = PollFd::new(fd, PollFlags::IN);
                *slot = n;
                n += 1;
            }
        }
        // Once PID 1 is gone only what the pipes still hold is drained; until then, a health
        // probe that is due ends the wait.
        let mut wait = Timespec {
            tv_sec: 0,
            tv_nsec: 500_000_000,
        };
        let timeout = match (status, due) {
            (Some(_), _) => Some(&wait),
            (None, Some(due)) => {
                let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
                let left = (due.tv_sec - now.tv_sec) * 1_000_000_000 + due.tv_nsec - now.tv_nsec;
                if left <= 0 {
                    return (status, true);
                }
                wait = Timespec {
                    tv_sec: left / 1_000_000_000,
                    tv_nsec: left % 1_000_000_000,
                };
                Some(&wait)
            }
            (None, None) => None,
        };
        match rustix::event::poll(&mut fds[..n], timeout) {
            Ok(0) if status.is_none() => return (status, true),
            Ok(0) => break,
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => break,
        }
        let ready = |i: usize| i > 0 && !fds[i].revents().is_empty();
        let (out, err, child) = (ready(slot[0]), ready(slot[1]), !fds[0].revents().is_empty());
        for (s, ready) in streams.iter_mut().zip([out, err]) {
            if let (Some(s), true) = (s, ready) {
                s.pump(Some(log));
            }
        }
        if child {
            while let Ok(Some(_)) = sfd.read_signal() {}
            status = status.or_else(|| reap(pid));
        }
    }
    for s in streams.iter_mut().flatten() {
        while s.pump(Some(log)) {}
    }
    (status, false)
}

/// The clean file-backed pages of this process, as runs of addresses and lengths for
/// [`serve`] to drop from its page tables. Starting a process (dynamic loading, Rust's
/// runtime, the set-up above) touches far more code than the loop runs: without this, most of
/// the supervisor's RSS would be code it never runs again. Only pages still identical to the
/// file qualify (read-only private file mappings, pages not copied on write, per
/// /proc/self/pagemap): they come back from the page cache when touched. Written pages
/// (relocations, data) are anonymous and stay; a mapping without any is taken whole.
fn clean_pages() -> Vec<(usize, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    const PAGE: usize = 4096;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE: u64 = 1 << 61;
    let mut runs = Vec::new();
    let (Ok(maps), Ok(mut pagemap)) = (
        std::fs::read_to_string("/proc/self/maps"),
        File::open("/proc/self/pagemap"),
    ) else {
        return runs;
    };
    let mut entries = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(inode)) = (f.next(), f.next(), f.nth(2)) else {
            continue;
        };
        let perms = perms.as_bytes();
        if perms.len() < 4 || perms[1] == b'w' || perms[3] != b'p' || inode == "0" {
            continue;
        }
        let Some((start, end)) = range.split_once('-').and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        }) else {
            continue;
        };
        let pages = (end - start) / PAGE;
        entries.resize(pages * 8, 0);
        if pagemap
            .seek(SeekFrom::Start((start / PAGE * 8) as u64))
            .is_err()
            || pagemap.read_exact(&mut entries).is_err()
        {
            continue;
        }
        let entry =
            |i: usize| u64::from_le_bytes(entries[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let clean = |i: usize| entry(i) & PRESENT != 0 && entry(i) & FILE != 0;
        // Anonymous now, or swapped out: copied on write.
        let written =
            |i: usize| entry(i) & SWAPPED != 0 || (entry(i) & PRESENT != 0 && entry(i) & FILE == 0);
        if !(0..pages).any(written) {
            // Never written (code, constants): all of it, including what is run from here
            // until the drop.
            runs.push((start, end - start));
            continue;
        }
        let mut i = 0;
        while i < pages {
            let run = i;
            while i < pages && clean(i) {
                i += 1;
            }
            if i > run {
                runs.push((start + run * PAGE, (i - run) * PAGE));
            } else {
                i += 1;
            }
        }
    }
    runs
}

/// Records how the container ended and ends it ([`lifecycle::finish`]); a crash from here on
/// leaves a container the next command recovers, its exit code kept. Then applies its restart
/// policy.
fn finish(a: Args, status: Option<WaitStatus>) {
    if status.is_none() {
        let _ = nix::sys::signal::kill(a.pid, Signal::SIGKILL);
        let _ = waitpid(a.pid, None);
    }
    let code = status.map_or(process::EXIT_RUNTIME, process::exit_code);
    let mut st = state::load_state(&a.paths, &a.id).unwrap_or_default();
    let oom = code == 137
        && st
            .cgroup
            .as_deref()
            .is_some_and(|p| Cgroup::open(p).oom_killed());
    let end = lifecycle::End::Exited { code, oom };
    if let Err(e) = lifecycle::finish(&a.paths, a.explain, &a.id, &mut st, end) {
        tracing::error!(
            "ending container {:.12}: {}",
            a.id,
            crate::error::one_line(&e)
        );
        return;
    }
    // The old input, pipes and lock go with this supervisor; a restart makes its own.
    let Args {
        paths,
        explain,
        id,
        lock,
        ..
    } = a;
    restart(&paths, explain, &id, lock, st, code);
}

/// Starts the container again if its restart policy says so, once its backoff is over: this
/// process then becomes the new container's supervisor. Returns when it is not restarted.
pub fn restart(paths: &Paths, explain: bool, id: &str, lock: Lock, mut st: State, code: u8) {
    let Ok(config) = state::load_config(paths, id) else {
        return; // removed (--rm)
    };
    if !config
        .restart
        .restarts(code, st.restart_count, state::stopped_by_user(paths, id))
    {
        return;
    }
    let ran = Duration::from_nanos(
        st.finished_at
            .unwrap_or(0)
            .saturating_sub(st.started_at.unwrap_or(0)),
    );
    let wait = restart::backoff(Duration::from_millis(st.backoff_ms), ran);
    st.restarting = true;
    st.backoff_ms = wait.as_millis() as u64;
    if state::save_state(paths, id, &st).is_err() {
        return;
    }
    // The backoff is waited in a fresh exec of the binary: the pages the teardown (or, after a
    // foreground run, the whole command) touched are dropped, so a crash-looping container's
    // supervisor stays as small as a running one's. In place only if that exec fails.
    let err = exec_waiter(paths, explain, id, &lock, wait);
    tracing::warn!("waiting to restart container {id:.12} in place: {err}");
    wait_and_start(paths, explain, id, lock, wait);
}

/// The first argument of the mode that waits out a restart's backoff, then starts the container.
pub const WAIT_FLAG: &str = "--restart-after";

fn exec_waiter(paths: &Paths, explain: bool, id: &str, lock: &Lock, wait: Duration) -> SetupError {
    use std::os::fd::AsFd;
    if let Err(e) = inherit(lock.as_fd()) {
        return SetupError::sys("passing the lock to the restart", e);
    }
    let args: Vec<Vec<u8>> = vec![
        b"minibox".to_vec(),
        WAIT_FLAG.into(),
        absolute(&paths.root),
        absolute(&paths.runroot),
        id.into(),
        lock.as_fd().as_raw_fd().to_string().into(),
        (if explain { "1" } else { "0" }).into(),
        wait.as_millis().to_string().into(),
    ];
    exec_self(args, "waiting to restart")
}

/// The waiting mode's whole life; called from `main` with the arguments after [`WAIT_FLAG`].
pub fn wait_main(args: Vec<OsString>) -> ! {
    let _ = std::env::set_current_dir("/");
    let parsed = (|| {
        let [root, runroot, id, lock, explain, wait]: [OsString; 6] = args.try_into().ok()?;
        let lock = lock.to_str()?.parse::<i32>().ok()?;
        let wait = wait.to_str()?.parse::<u64>().ok()?;
        Some((
            root,
            runroot,
            String::from_utf8(id.into_vec()).ok()?,
            lock,
            explain,
            wait,
        ))
    })();
    let Some((root, runroot, id, lock, explain, wait)) = parsed else {
        // SAFETY: plain exit; nothing is left to flush.
        unsafe { libc::_exit(125) }
    };
    // The old container's streams were passed to the supervisor that exec'd us: not ours.
    let _ = super::security::close_inherited(&[lock]);
    let paths = Paths::new(root.as_ref(), runroot.as_ref());
    // SAFETY: the supervisor passed this descriptor to us, open, for us alone.
    let lock = unsafe { Lock::from_raw_fd(lock) };
    let explain = explain.as_bytes() == b"1";
    wait_and_start(&paths, explain, &id, lock, Duration::from_millis(wait));
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// Waits out the backoff unless the user stops the container meanwhile, then starts it again:
/// this process becomes its supervisor.
fn wait_and_start(paths: &Paths, explain: bool, id: &str, lock: Lock, wait: Duration) {
    let Ok(mark) = CString::new(state::stopped_mark(paths, id).into_os_string().into_vec()) else {
        return;
    };
    let clean = clean_pages();
    if !sleep_unless_stopped(&mark, wait, &clean) {
        if let Ok(mut st) = state::load_state(paths, id) {
            st.restarting = false;
            let _ = state::save_state(paths, id, &st);
        }
        return;
    }
    let Ok(mut st) = state::load_state(paths, id) else {
        return; // removed meanwhile
    };
    st.restart_count += 1;
    events::record(paths, id, "restart", &[]);
    let failure = start::again(paths, explain, id, lock, st);
    tracing::error!("restarting container {id:.12}: {failure}");
}
