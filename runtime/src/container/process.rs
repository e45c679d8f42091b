//! Creating the container's process: clone into new namespaces, then the child's whole setup up
//! to exec, synchronised with the parent over a [`Channel`]. Any failure of the child travels
//! back as an exit code (125 runtime, 126 not executable, 127 not found) and a message.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::log::Stream;
use super::seccomp::Program;
use super::spec::Spec;
use super::sync::{Channel, Message, FAIL, GO, PTY};
use super::{init, mounts, security, tty, user};

pub const EXIT_RUNTIME: u8 = 125;
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
pub const EXIT_NOT_FOUND: u8 = 127;

/// Signals `minibox run` forwards to the container's PID 1.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// A failure of the container's setup, with the exit code `run` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

impl Failure {
    pub fn runtime(msg: impl Into<String>) -> Self {
        Self {
            code: EXIT_RUNTIME,
            msg: msg.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::runtime(msg)
    }
}

/// The signals `run` handles itself, blocked before the clone so none is lost, read from a
/// signalfd; the container's process starts with a clean signal state ([`reset_signals`]).
pub struct Signals {
    pub fd: SignalFd,
    pub set: SigSet,
}

impl Signals {
    pub fn block() -> nix::Result<Self> {
        let mut set = SigSet::empty();
        FORWARDED.iter().for_each(|s| set.add(*s));
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGWINCH);
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Self { fd, set })
    }
}

/// What the child needs besides the spec.
pub struct Launch<'a> {
    pub spec: &'a Spec,
    /// The directory the rootfs is mounted on.
    pub rootfs_target: &'a Path,
    /// The container's volatile state (the generated /etc files).
    pub state_dir: &'a Path,
    /// Mounts the image's rootfs on the target, in the child's mount namespace.
    pub mount_rootfs: &'a dyn Fn(&Path) -> Result<(), String>,
    pub signals: &'a Signals,
    /// Where the container's stdout and stderr go (the write ends of the pipes its output is
    /// logged from), unless it has a terminal.
    pub output: Option<(BorrowedFd<'a>, BorrowedFd<'a>)>,
    /// The seccomp filter, compiled.
    pub seccomp: Option<&'a Program>,
}

/// The parent's handle on the cloned child.
pub struct Child {
    pub pid: Pid,
    channel: Channel,
}

/// What the child reported once it exec'd.
pub struct Started {
    /// The master side of the container's pty (`-t`).
    pub pty: Option<std::os::fd::OwnedFd>,
}

/// Clones the child into new PID, mount, UTS, IPC (and network) namespaces. The parent must be
/// single-threaded: the child is a fork-like copy that goes on running Rust code.
pub fn spawn(launch: &Launch) -> anyhow::Result<Child> {
    let (parent_end, child_end) = Channel::pair()?;
    let mut flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if launch.spec.own_netns {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    // SAFETY: a raw clone without a new stack behaves like fork; the process is
    // single-threaded, so the child inherits no lock held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match ret {
        -1 => Err(anyhow::anyhow!(
            "creating the container's process: {}",
            std::io::Error::last_os_error()
        )),
        0 => {
            drop(parent_end);
            child(launch, &child_end)
        }
        pid => Ok(Child {
            pid: Pid::from_raw(pid as i32),
            channel: parent_end,
        }),
    }
}

impl Child {
    /// Lets the child go on: it is in its cgroup and its network is wired.
    pub fn go(&self, winsize: Option<(u16, u16)>) -> nix::Result<()> {
        let (rows, cols) = winsize.unwrap_or((0, 0));
        let mut msg = vec![GO];
        msg.extend(rows.to_le_bytes());
        msg.extend(cols.to_le_bytes());
        self.channel.send(&msg, None)
    }

    /// Waits until the child exec'd (EOF on the channel) or failed.
    pub fn started(&self) -> Result<Started, Failure> {
        let mut pty = None;
        loop {
            let Message { data, fd } = self.channel.recv().map_err(|e| {
                Failure::runtime(format!("waiting for the container to start: {e}"))
            })?;
            match data.first() {
                None => return Ok(Started { pty }),
                Some(&PTY) => pty = fd,
                Some(&FAIL) if data.len() >= 2 => {
                    return Err(Failure {
                        code: data[1],
                        msg: String::from_utf8_lossy(&data[2..]).into_owned(),
                    })
                }
                Some(_) => return Err(Failure::runtime("unexpected message from the container")),
            }
        }
    }
}

/// The child: runs the setup and reports a failure; never returns.
fn child(launch: &Launch, channel: &Channel) -> ! {
    run_child(channel, || setup_and_exec(launch, channel))
}

fn run_child(channel: &Channel, f: impl FnOnce() -> Result<Infallible, Failure>) -> ! {
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let failure = match result {
        Ok(Err(f)) => f,
        Ok(Ok(never)) => match never {},
        Err(_) => Failure::runtime("the container's setup panicked"),
    };
    let mut msg = vec![FAIL, failure.code];
    msg.extend(failure.msg.as_bytes());
    let _ = channel.send(&msg, None);
    // SAFETY: leaving the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(failure.code.into()) }
}

fn setup_and_exec(launch: &Launch, channel: &Channel) -> Result<Infallible, Failure> {
    let spec = launch.spec;
    security::set_non_dumpable()?;
    // Set again after the identity changes (which clears it); until then the set-up must not
    // outlive a runtime that died, not even one that died before this line: then the channel
    // is closed already. Otherwise a recovery could be removing what this goes on to make.
    security::die_with_parent()?;
    if channel.peer_gone() {
        // SAFETY: see `child`; nobody is left to report to.
        unsafe { libc::_exit(EXIT_RUNTIME.into()) }
    }
    if let Some((out, err)) = launch.output {
        for (from, to) in [(out, 1), (err, 2)] {
            // SAFETY: dup2 onto a standard descriptor of this process.
            if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!("redirecting the output: {e}").into());
            }
        }
    }
    security::close_inherited(channel.as_raw_fd())?;
    // Device nodes and the like get exact modes; the container's umask is set before exec.
    nix::sys::stat::umask(Mode::empty());

    // The filesystem is set up while the parent places this process in its cgroup (a v1
    // migration waits for an RCU grace period, milliseconds) and wires its network.
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| format!("setting the hostname {:?}: {e}", spec.hostname))?;
    mounts::make_private()?;
    let sources = mounts::open_sources(launch.state_dir, &spec.volumes)?;
    (launch.mount_rootfs)(launch.rootfs_target)?;
    mounts::pivot(launch.rootfs_target)?;
    mounts::setup(&sources, spec.privileged)?;
    drop(sources);
    if spec.own_netns {
        mounts::loopback_up()?;
    }

    let go = channel
        .recv()
        .map_err(|e| format!("waiting for the runtime: {e}"))?;
    if go.data.first() != Some(&GO) || go.data.len() < 5 {
        // The parent failed (and is cleaning up): nothing to report.
        // SAFETY: see `child`.
        unsafe { libc::_exit(EXIT_RUNTIME.into()) }
    }
    let rows = u16::from_le_bytes([go.data[1], go.data[2]]);
    let cols = u16::from_le_bytes([go.data[3], go.data[4]]);
    // Placed in its cgroup by now: make that cgroup the root of its view.
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| format!("creating the cgroup namespace: {e}"))?;

    finish_and_exec(
        spec,
        channel,
        launch.signals,
        (rows, cols),
        true,
        launch.seccomp,
    )
}

/// The common end of `run` and `exec`: working directory, identity, terminal, limits,
/// capabilities, no_new_privs, seccomp, then exec.
fn finish_and_exec(
    spec: &Spec,
    channel: &Channel,
    signals: &Signals,
    (rows, cols): (u16, u16),
    die_with_parent: bool,
    seccomp: Option<&Program>,
) -> Result<Infallible, Failure> {
    let who = user::lookup(&spec.user)?;
    enter_workdir(&spec.cwd)?;
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", who.home));
    }
    let program = find_executable(&spec.args[0], &env)?;

    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if spec.tty {
        let master = tty::open_in_container(rows, cols)?;
        channel
            .send(&[PTY], Some(master.as_raw_fd()))
            .map_err(|e| format!("passing the terminal to the runtime: {e}"))?;
    } else if !spec.interactive {
        redirect_stdin_to_null()?;
    }

    security::set_rlimits()?;
    // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, which the switch of user
    // drops: then it is loaded before, as runc does (the profile must allow the steps after).
    // With it, it is loaded last, so a profile constrains the container and not its set-up.
    let (early, last) = match spec.no_new_privileges {
        true => (None, seccomp),
        false => (seccomp, None),
    };
    let load = |p: Option<&Program>| p.map_or(Ok(()), |p| p.load()).map_err(|e| e.to_string());
    load(early)?;
    security::switch_user(&who, &spec.caps)?;
    if die_with_parent {
        security::die_with_parent()?;
    }
    if spec.no_new_privileges {
        security::set_no_new_privs()?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    security::cloexec_from_3()?;
    load(last)?;

    if spec.init {
        init::start(spec.tty, &signals.set);
    }
    reset_signals();
    Err(exec(&program, &spec.args, &env))
}

/// `exec`: a new process in the namespaces and cgroup of the container whose PID 1 is `target`,
/// set up as the container's own (user, capabilities, no_new_privs, seccomp), non-dumpable until
/// exec.
pub fn spawn_exec(
    target: Pid,
    cgroup: &str,
    spec: &Spec,
    signals: &Signals,
    seccomp: Option<&Program>,
) -> anyhow::Result<Child> {
    use anyhow::Context;
    let open = |ns: &str| {
        fs::File::open(format!("/proc/{target}/ns/{ns}"))
            .with_context(|| format!("opening the container's {ns} namespace"))
    };
    // The PID namespace applies to children: join it here, then fork into it.
    nix::sched::setns(open("pid")?, CloneFlags::CLONE_NEWPID)
        .context("joining the container's PID namespace")?;
    let others = [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ]
    .into_iter()
    .map(|(n, f)| Ok((n, open(n)?, f)))
    .collect::<anyhow::Result<Vec<_>>>()?;
    let size = if spec.tty {
        tty::size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    let cg = super::cgroups::Cgroup::open(cgroup);
    let (parent_end, child_end) = Channel::pair()?;
    // SAFETY: the process is single-threaded.
    match unsafe { nix::unistd::fork() }.context("creating the process")? {
        nix::unistd::ForkResult::Child => {
            drop(parent_end);
            run_child(&child_end, || {
                security::set_non_dumpable()?;
                cg.add(nix::unistd::getpid())
                    .map_err(|e| Failure::runtime(format!("{e:#}")))?;
                for (name, fd, flag) in &others {
                    nix::sched::setns(fd, *flag)
                        .map_err(|e| format!("joining the container's {name} namespace: {e}"))?;
                }
                finish_and_exec(spec, &child_end, signals, size, false, seccomp)
            })
        }
        nix::unistd::ForkResult::Parent { child } => Ok(Child {
            pid: child,
            channel: parent_end,
        }),
    }
}

/// Enters the working directory, creating it when missing, and checks it is inside the root.
fn enter_workdir(cwd: &str) -> Result<(), Failure> {
    match fs::metadata(cwd) {
        Ok(m) if !m.is_dir() => {
            return Err(Failure::runtime(format!(
                "working directory {cwd} is not a directory"
            )))
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(cwd)
            .map_err(|e| format!("creating the working directory {cwd}: {e}"))?,
    }
    nix::unistd::chdir(cwd).map_err(|e| format!("entering the working directory {cwd}: {e}"))?;
    let here = nix::unistd::getcwd().map_err(|e| format!("checking the working directory: {e}"))?;
    if !here.starts_with("/") {
        return Err(Failure::runtime(format!(
            "working directory {cwd} is outside the container"
        )));
    }
    Ok(())
}

fn redirect_stdin_to_null() -> Result<(), Failure> {
    let null = fs::File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| Failure::runtime(format!("dup2: {e}")))?;
    Ok(())
}

/// Finds the program as Go's LookPath does (which is what Docker users see): a name with a
/// slash is used as is, others are searched in the container's PATH.
fn find_executable(name: &str, env: &[String]) -> Result<CString, Failure> {
    let not_found = |why: &str| Failure {
        code: EXIT_NOT_FOUND,
        msg: format!("exec: {name:?}: {why}"),
    };
    if name.is_empty() {
        return Err(not_found("executable file not found in $PATH"));
    }
    let path = if name.contains('/') {
        name.to_string()
    } else {
        let search = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or_default();
        search
            .split(':')
            .map(|dir| format!("{}/{name}", if dir.is_empty() { "." } else { dir }))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| not_found("executable file not found in $PATH"))?
    };
    CString::new(path).map_err(|_| not_found("the name contains a NUL byte"))
}

fn exec(program: &CString, args: &[String], env: &[String]) -> Failure {
    let to_c = |v: &[String]| -> Option<Vec<CString>> {
        v.iter().map(|s| CString::new(s.as_bytes()).ok()).collect()
    };
    let (Some(argv), Some(envp)) = (to_c(args), to_c(env)) else {
        return Failure::runtime("an argument or environment variable contains a NUL byte");
    };
    let err = nix::unistd::execve(program, &argv, &envp).unwrap_err();
    let name = program.to_string_lossy();
    let code = match err {
        nix::Error::ENOENT | nix::Error::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    };
    Failure {
        code,
        msg: format!("exec: {name:?}: {}", err.desc().to_lowercase()),
    }
}

/// Gives the container's process the clean signal state a daemon-started container has:
/// every disposition default and nothing blocked. exec keeps ignored dispositions, and what
/// started `minibox run` may have ignored some (a shell ignores SIGINT in a job started with
/// `&`), which would leave the container's shell unable to trap them.
pub fn reset_signals() {
    // The kernel's own call: libc refuses the two real-time signals it reserves, which may
    // be ignored too. An all-zero kernel sigaction is SIG_DFL, no flags, nothing masked.
    let default = [0u64; 4];
    for signo in 1..=libc::SIGRTMAX() {
        if signo != libc::SIGKILL && signo != libc::SIGSTOP {
            // SAFETY: a valid new action, no old one asked for, the kernel's sigset size.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signo,
                    default.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Waits for the container's PID 1 to exit, forwarding signals to it, copying its output
/// (logged as it goes) and, with a terminal, relaying the user's input and size to it.
pub fn wait(
    pid: Pid,
    signals: &Signals,
    mut relay: Option<tty::Relay>,
    streams: &mut [Option<Stream>; 2],
    log: Option<BorrowedFd>,
) -> nix::Result<WaitStatus> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;

    let stdin = std::io::stdin();
    let open = |s: &Option<Stream>| s.as_ref().is_some_and(Stream::is_open);
    let mut status = None;
    loop {
        if let (Some(st), false) = (status, streams.iter().any(open)) {
            return Ok(st);
        }
        let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
        let mut slots = [None, None];
        for (s, slot) in streams.iter().zip(&mut slots) {
            if let Some(fd) = s.as_ref().and_then(|s| s.fd.as_ref()) {
                *slot = Some(fds.len());
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        let mut in_at = None;
        if relay.as_ref().is_some_and(|r| r.stdin_open) && status.is_none() {
            in_at = Some(fds.len());
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once PID 1 is gone (and with it every process of the container), only drain what
        // the pipes still hold.
        let timeout = if status.is_some() {
            PollTimeout::from(200u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, in_ready) = (ready(Some(0)), ready(in_at));
        let out_ready = slots.map(ready);
        drop(fds);
        for (s, ready) in streams.iter_mut().zip(out_ready) {
            if let (Some(s), true) = (s, ready) {
                s.pump(log);
            }
        }
        if let (Some(r), true) = (relay.as_mut(), in_ready) {
            r.pump_input();
        }
        if sig_ready {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {
                        if let Some(st) = reap(pid)? {
                            status = Some(st);
                        }
                    }
                    Signal::SIGWINCH => {
                        if let Some(r) = &relay {
                            r.resize();
                        }
                    }
                    sig if status.is_none() => {
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                    _ => {}
                }
            }
        }
    }
    for s in streams.iter_mut().flatten() {
        while s.pump(log) {}
    }
    Ok(status.expect("the loop ends after the exit"))
}

fn reap(pid: Pid) -> nix::Result<Option<WaitStatus>> {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return Ok(Some(st)),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The exit code Docker reports for a wait status: the code, or 128 + the signal.
pub fn exit_code(status: WaitStatus) -> u8 {
    match status {
        WaitStatus::Exited(_, c) => c as u8,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as u8,
        _ => EXIT_RUNTIME,
    }
}

/// Kills and reaps a child that will not be started after all.
pub fn abort(pid: Pid) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// Reaps a child that reported a failure (it exits by itself).
pub fn reap_blocking(pid: Pid) {
    let _ = nix::sys::wait::waitpid(pid, None);
}
