//! The executor: creates the container's process as a Spec says (its namespaces, created or
//! joined by path, its root filesystem and mounts, devices, cgroup namespace, rlimits, identity,
//! capabilities, no_new_privs) and runs it, synchronised with the parent over a [`Channel`]. A
//! failure of the child travels back as a [`SetupError`] (kind, errno, context), whose kind
//! decides the exit code (125 runtime, 126 not executable, 127 not found).
//!
//! What minibox adds (the network attachment, the /etc files, logging, the supervisor) is the
//! caller's: the executor follows the Spec and nothing else.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use super::error::{Kind, SetupError};
pub use super::error::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_RUNTIME};
use super::log::{LogFile, Stream};
use super::seccomp::{self, Program};
use super::sync::{Channel, Message, FAIL, FS_READY, GO, MAPPED, PTY, READY, RESUME, RUNNING};
use super::{image, init, mntns, mounts, security, tty};

/// Signals `minibox run` forwards to the container's PID 1.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

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

/// What the child needs besides the Spec: how its root and stdio come about, and minibox's
/// `--init`.
pub struct Launch<'a> {
    pub spec: &'a Spec,
    /// The root filesystem (an image's); without, `root.path` is a directory that is bound
    /// (an OCI bundle's rootfs).
    pub rootfs: Option<&'a image::Rootfs>,
    /// Where the base of containers' mount namespaces is pinned (see [`mntns`]).
    pub mount_ns_base: &'a Path,
    pub signals: &'a Signals,
    pub stdio: Stdio<'a>,
    /// minibox's `--init`: PID 1 stays a small init that forks the command.
    pub init: bool,
    /// Where compiled seccomp filters are kept (see [`seccomp::compile_cached`]).
    pub seccomp_cache: &'a Path,
    /// The OCI runtime's `create`: the process outlives the runtime and waits for `start`.
    pub detached: Option<Detached>,
}

/// How a container made by the OCI runtime's `create` differs: it is not tied to the runtime
/// (no parent-death signal; its parent is the caller's shim), it waits on an exec fifo until
/// `start` reads it, and it may keep descriptors the caller passes.
#[derive(Clone, Copy)]
pub struct Detached {
    /// The directory that holds the exec fifo ([`EXEC_FIFO`]), opened O_PATH: the child opens
    /// the fifo for writing through it, which blocks until `start` opens it for reading.
    pub fifo_dir: std::os::fd::RawFd,
    /// `--preserve-fds N`: fds 3 to 3+N-1 stay open in the container.
    pub preserve_fds: u32,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// `--no-pivot`: enter the root with MS_MOVE and chroot rather than pivot_root.
    pub no_pivot: bool,
    /// Stop once the mounts are made, before the root is entered, for the createContainer
    /// hooks ([`Child::filesystem_ready`], [`Child::resume`]).
    pub create_container_hooks: bool,
}

/// Where the container's standard descriptors come from (without a terminal).
#[derive(Clone, Copy, Default)]
pub struct Stdio<'a> {
    /// Its stdin: this pipe's read end; without, /dev/null unless `keep_stdin`.
    pub input: Option<BorrowedFd<'a>>,
    /// Keep the stdin inherited from the runtime (a foreground `run -i`).
    pub keep_stdin: bool,
    /// Its stdout and stderr (the write ends of the pipes its output is read from).
    pub output: Option<(BorrowedFd<'a>, BorrowedFd<'a>)>,
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

/// The namespaces the Spec asks to create (no path) and to join (a path).
fn namespaces(spec: &Spec) -> Result<(Vec<LinuxNamespaceType>, Vec<&LinuxNamespace>), SetupError> {
    let linux = spec.linux().as_ref();
    let all = linux
        .and_then(|l| l.namespaces().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut new = Vec::new();
    let mut join = Vec::new();
    for ns in all {
        if ns.typ() == LinuxNamespaceType::Time {
            return Err(SetupError::new("time namespaces are not supported"));
        }
        match ns.path() {
            Some(_) => join.push(ns),
            None => new.push(ns.typ()),
        }
    }
    let mapped = linux.is_some_and(|l| l.uid_mappings().is_some() || l.gid_mappings().is_some());
    let user = all.iter().any(|ns| ns.typ() == LinuxNamespaceType::User);
    if mapped && !user {
        return Err(SetupError::new(
            "linux.uidMappings/gidMappings are given but no user namespace: add one to \
             linux.namespaces, or remove the mappings",
        ));
    }
    Ok((new, join))
}

/// A new user namespace's maps, as `/proc/PID/uid_map` and `gid_map` take them.
fn id_maps(spec: &Spec) -> Result<[(&'static str, String); 2], SetupError> {
    let linux = spec.linux().clone().unwrap_or_default();
    let text = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let (uid, gid) = (text(linux.uid_mappings()), text(linux.gid_mappings()));
    if uid.is_empty() || gid.is_empty() {
        return Err(SetupError::new(
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    Ok([("uid_map", uid), ("gid_map", gid)])
}

/// Writes a new user namespace's maps from here, its parent namespace (as root, no newuidmap
/// is needed), then lets the child go on.
fn write_maps(pid: i32, maps: &[(&str, String)], channel: &Channel) -> Result<(), SetupError> {
    for (file, text) in maps {
        fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|e| SetupError::io(format!("writing the user namespace's {file}"), &e))?;
    }
    channel
        .send(&[MAPPED], &[])
        .map_err(|e| SetupError::sys("reporting the user namespace mapped", e))
}

/// Namespaces given by path, joined by this process for the child to be born in them (a child
/// in a new user namespace could no longer join those of the host's), left after the clone.
/// A user namespace is joined by the process that clones ([`clone_in_user_ns`]).
struct Joined {
    own: Vec<(fs::File, LinuxNamespaceType)>,
    cwd: Option<std::os::fd::OwnedFd>,
}

impl Joined {
    /// Joins the namespaces of `join` but a user one (and a PID one unless `pid`).
    fn enter(join: &[&LinuxNamespace], pid: bool) -> Result<Self, SetupError> {
        let mut join: Vec<_> = join
            .iter()
            .filter(|ns| match ns.typ() {
                LinuxNamespaceType::User => false,
                LinuxNamespaceType::Pid => pid,
                _ => true,
            })
            .collect();
        // The mount namespace last; every descriptor is opened before it changes what paths mean.
        join.sort_by_key(|ns| ns.typ() == LinuxNamespaceType::Mount);
        let mut targets = Vec::new();
        let mut own = Vec::new();
        for ns in &join {
            targets.push(open_ns(ns)?);
            let mine = fs::File::open(format!("/proc/self/ns/{}", ns.typ()))
                .map_err(|e| SetupError::io(format!("opening our {} namespace", ns.typ()), &e))?;
            own.push((mine, ns.typ()));
        }
        let cwd = join
            .iter()
            .any(|ns| ns.typ() == LinuxNamespaceType::Mount)
            .then(|| {
                nix::fcntl::open(
                    ".",
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| SetupError::sys("opening the working directory", e))
            })
            .transpose()?;
        let mut joined = Joined {
            own: Vec::new(),
            cwd,
        };
        for ((target, (mine, typ)), ns) in targets.iter().zip(own).zip(&join) {
            if let Err(e) = setns(target, ns.typ()) {
                joined.leave()?;
                return Err(e);
            }
            joined.own.push((mine, typ));
        }
        Ok(joined)
    }

    fn leave(self) -> Result<(), SetupError> {
        for (mine, typ) in self.own.iter().rev() {
            setns(mine, *typ)?;
        }
        if let Some(cwd) = &self.cwd {
            nix::unistd::fchdir(cwd)
                .map_err(|e| SetupError::sys("returning to our directory", e))?;
        }
        Ok(())
    }
}

/// Opens a namespace to join: a path from the Spec, checked to be a namespace.
fn open_ns(ns: &LinuxNamespace) -> Result<fs::File, SetupError> {
    let path = ns.path().clone().unwrap_or_default();
    fs::File::open(&path).map_err(|e| {
        SetupError::io(
            format!("opening the {} namespace {}", ns.typ(), path.display()),
            &e,
        )
    })
}

fn setns(file: &fs::File, typ: LinuxNamespaceType) -> Result<(), SetupError> {
    nix::sched::setns(file, CloneFlags::from_bits_truncate(typ as i32))
        .map_err(|e| SetupError::sys(format!("joining the {typ} namespace"), e))
}

/// The Spec's `linux.seccomp` compiled, here in the runtime: the child only loads it.
fn seccomp_program(spec: &Spec, cache: &Path) -> Result<Option<Program>, SetupError> {
    let filter = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    filter
        .map(|f| seccomp::compile_cached(f, cache))
        .transpose()
        .map_err(|e| SetupError::new(e.to_string()))
}

/// Clones the child into the Spec's new namespaces, in the namespaces it gives by path (joined
/// here first, for the child to be born in them). A new user namespace comes first (the
/// clone's others are its own) and its maps are written from here. The parent must be
/// single-threaded: the child is a fork-like copy that goes on running Rust code.
pub fn spawn(launch: &Launch) -> Result<Child, SetupError> {
    let (new, join) = namespaces(launch.spec)?;
    let maps = match new.contains(&LinuxNamespaceType::User) {
        true => Some(id_maps(launch.spec)?),
        false => None,
    };
    let seccomp = seccomp_program(launch.spec, launch.seccomp_cache)?;
    // Without a base (a kernel that refuses its pin), the host's namespace is copied as before.
    let base = match from_base(launch, &new, &join) {
        true => mntns::base(launch.mount_ns_base)
            .inspect_err(|e| tracing::warn!("{e}: copying the host's mount namespace instead"))
            .ok(),
        false => None,
    };
    // The Spec's root is where the root filesystem is mounted only without the base (`run`
    // makes no directory for it otherwise: an inode fewer per set-up).
    if let (None, Some(root)) = (&base, launch.spec.root()) {
        fs::create_dir_all(root.path())
            .map_err(|e| SetupError::io(format!("creating {}", root.path().display()), &e))?;
    }
    let (parent_end, child_end) =
        Channel::pair().map_err(|e| SetupError::sys("creating a socket pair", e))?;
    // The cgroup namespace is made once the child is in its cgroup (after `go`).
    let flags = new
        .iter()
        .filter(|t| **t != LinuxNamespaceType::Cgroup)
        .filter(|t| base.is_none() || **t != LinuxNamespaceType::Mount)
        .fold(CloneFlags::empty(), |f, t| {
            f | CloneFlags::from_bits_truncate(*t as i32)
        });
    let find = |typ| join.iter().find(|ns| ns.typ() == typ).map(|ns| open_ns(ns));
    let user_ns = find(LinuxNamespaceType::User).transpose()?;
    // Joined here, a PID namespace would make the helper report the child's pid in it.
    let helper_pid_ns = match user_ns {
        Some(_) => find(LinuxNamespaceType::Pid).transpose()?,
        None => None,
    };
    let joined = Joined::enter(&join, helper_pid_ns.is_none())?;
    let ret = match &user_ns {
        None => raw_clone(flags.bits()),
        Some(ns) => clone_in_user_ns(ns, helper_pid_ns.as_ref(), flags.bits()),
    };
    if ret == 0 {
        drop(parent_end);
        child(launch, &child_end, seccomp.as_ref(), base.as_ref())
    }
    let failed = SetupError::last("creating the container's process");
    joined.leave()?;
    if ret < 0 {
        return Err(failed);
    }
    let child = Child {
        pid: Pid::from_raw(ret as i32),
        channel: parent_end,
    };
    if let Err(e) = child.running() {
        abort(child.pid);
        return Err(e);
    }
    if let Some(maps) = maps {
        if let Err(e) = write_maps(ret as i32, &maps, &child.channel) {
            abort(child.pid);
            return Err(e);
        }
    }
    Ok(child)
}

/// Whether the child's mount namespace is made from the base one ([`mntns`]) rather than
/// cloned with the host's: when it is a new one with a root, and none of what needs the host's
/// tree inside it is asked for: a user namespace (which may not enter the base: it is owned by
/// the host's), or createContainer hooks (which run in the namespace, the host's tree in view).
fn from_base(launch: &Launch, new: &[LinuxNamespaceType], join: &[&LinuxNamespace]) -> bool {
    new.contains(&LinuxNamespaceType::Mount)
        && !new.contains(&LinuxNamespaceType::User)
        && join
            .iter()
            .all(|ns| ns.typ() != LinuxNamespaceType::User && ns.typ() != LinuxNamespaceType::Mount)
        && launch.spec.root().is_some()
        && !launch.detached.is_some_and(|d| d.create_container_hooks)
}

/// clone(2) as fork with `flags`: 0 in the child, its pid (or -1) in the parent.
fn raw_clone(flags: libc::c_int) -> libc::c_long {
    // SAFETY: a raw clone without a new stack behaves like fork; the process is
    // single-threaded, so the child inherits no lock held by another thread.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// Clones from inside the user namespace `ns` (which owns the clone's new namespaces): a
/// helper process joins it (and `pid_ns`, for the child to be born there) and clones the child
/// as this process's own (CLONE_PARENT), reports its pid (as this process sees it: the helper's
/// own PID namespace is ours) on a pipe and exits. Returns as [`raw_clone`] does.
fn clone_in_user_ns(ns: &fs::File, pid_ns: Option<&fs::File>, flags: libc::c_int) -> libc::c_long {
    let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return -1;
    };
    match raw_clone(0) {
        0 => {
            drop(read);
            let joined = pid_ns
                .map_or(Ok(()), |p| setns(p, LinuxNamespaceType::Pid))
                .and_then(|()| setns(ns, LinuxNamespaceType::User));
            let ret = match joined {
                Ok(()) => raw_clone(flags | libc::CLONE_PARENT),
                Err(_) => -1,
            };
            if ret == 0 {
                drop(write);
                return 0;
            }
            let _ = nix::unistd::write(&write, &(ret as i32).to_le_bytes());
            // SAFETY: the helper leaves without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        -1 => -1,
        helper => {
            drop(write);
            let mut pid = [0u8; 4];
            let n = nix::unistd::read(&read, &mut pid).unwrap_or(0);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(helper as i32), None);
            match (n, i32::from_le_bytes(pid)) {
                (4, pid) if pid > 0 => pid as libc::c_long,
                _ => {
                    nix::errno::Errno::set(nix::errno::Errno::EPERM);
                    -1
                }
            }
        }
    }
}

impl Child {
    /// Waits for the child's first message. A new child is queued on the CPU of the parent,
    /// which would keep running its own share of the set-up (the cgroup, the network) for a
    /// millisecond or more before the child gets a turn; sleeping here hands the CPU over, and
    /// the child's message wakes the parent where a CPU is idle, so the two work side by side.
    fn running(&self) -> Result<(), SetupError> {
        let msg = self
            .channel
            .recv()
            .map_err(|e| SetupError::sys("waiting for the container's process", e))?;
        match msg.data.first() {
            Some(&RUNNING) => Ok(()),
            _ => Err(SetupError::new(
                "the container's process ended before its set-up",
            )),
        }
    }

    /// Waits until the child made its mounts and stopped before entering its root
    /// ([`Detached::create_container_hooks`]).
    pub fn filesystem_ready(&self) -> Result<(), SetupError> {
        let msg = self
            .channel
            .recv()
            .map_err(|e| SetupError::sys("waiting for the container's filesystem", e))?;
        match msg.data.split_first() {
            Some((&FS_READY, _)) => Ok(()),
            Some((&FAIL, rest)) => Err(SetupError::decode(rest).unwrap_or_else(|| {
                SetupError::new("the container reported a failure it could not encode")
            })),
            _ => Err(SetupError::new("the container ended its set-up early")),
        }
    }

    /// Lets a child stopped at [`Child::filesystem_ready`] go on.
    pub fn resume(&self) -> nix::Result<()> {
        self.channel.send(&[RESUME], &[])
    }

    /// Lets the child go on: its network is wired, and it is in its cgroup, or moves itself
    /// in first through `cgroup_tasks` (see [`super::cgroups::Cgroup::entries`]).
    pub fn go(&self, winsize: Option<(u16, u16)>, cgroup_tasks: &[OwnedFd]) -> nix::Result<()> {
        let (rows, cols) = winsize.unwrap_or((0, 0));
        let mut msg = vec![GO];
        msg.extend(rows.to_le_bytes());
        msg.extend(cols.to_le_bytes());
        let fds: Vec<_> = cgroup_tasks.iter().map(|f| f.as_raw_fd()).collect();
        self.channel.send(&msg, &fds)
    }

    /// Waits until the child exec'd (EOF on the channel) or failed.
    pub fn started(&self) -> Result<Started, SetupError> {
        let mut pty = None;
        loop {
            let Message { data, fds } = self
                .channel
                .recv()
                .map_err(|e| SetupError::sys("waiting for the container to start", e))?;
            match data.split_first() {
                // Exec'd, or (detached) waiting on its exec fifo.
                None | Some((&READY, _)) => return Ok(Started { pty }),
                Some((&PTY, _)) => pty = fds.into_iter().next(),
                Some((&FAIL, rest)) => {
                    return Err(SetupError::decode(rest).unwrap_or_else(|| {
                        SetupError::new("the container reported a failure it could not encode")
                    }))
                }
                Some(_) => return Err(SetupError::new("unexpected message from the container")),
            }
        }
    }
}

/// The child: runs the setup and reports a failure; never returns.
fn child(
    launch: &Launch,
    channel: &Channel,
    seccomp: Option<&Program>,
    base: Option<&fs::File>,
) -> ! {
    // First of all (see `Child::running`); a failed send shows to the parent as the channel's end.
    let _ = channel.send(&[RUNNING], &[]);
    run_child(channel, || setup_and_exec(launch, channel, seccomp, base))
}

fn run_child(channel: &Channel, f: impl FnOnce() -> Result<Infallible, SetupError>) -> ! {
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let failure = match result {
        Ok(Err(f)) => f,
        Ok(Ok(never)) => match never {},
        Err(_) => SetupError::new("the container's setup panicked"),
    };
    let mut msg = vec![FAIL];
    msg.extend(failure.encode());
    let _ = channel.send(&msg, &[]);
    // SAFETY: leaving the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(failure.exit_code().into()) }
}

fn setup_and_exec(
    launch: &Launch,
    channel: &Channel,
    seccomp: Option<&Program>,
    base: Option<&fs::File>,
) -> Result<Infallible, SetupError> {
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
    redirect(&launch.stdio)?;
    let mut keep = vec![channel.as_raw_fd()];
    keep.extend(base.map(|b| b.as_raw_fd()));
    if let Some(d) = &launch.detached {
        keep.push(d.fifo_dir);
        keep.extend((0..d.preserve_fds as i32).map(|i| 3 + i));
    }
    security::close_inherited(&keep)?;
    // Device nodes and the like get exact modes; the container's umask is set before exec.
    nix::sys::stat::umask(Mode::empty());

    let (new, join) = namespaces(spec)?;
    let in_user_ns = new.contains(&LinuxNamespaceType::User)
        || join.iter().any(|ns| ns.typ() == LinuxNamespaceType::User);
    if new.contains(&LinuxNamespaceType::User) {
        let mapped = channel
            .recv()
            .map_err(|e| SetupError::sys("waiting for the user namespace's maps", e))?;
        if mapped.data.first() != Some(&MAPPED) {
            // SAFETY: see `child`; the parent failed and reports it.
            unsafe { libc::_exit(EXIT_RUNTIME.into()) }
        }
    }
    if in_user_ns {
        security::become_namespace_root()?;
        security::die_with_parent()?;
    }
    if !launch.detached.is_some_and(|d| d.no_new_keyring) {
        security::new_session_keyring()?;
    }
    let linux = spec.linux().clone().unwrap_or_default();
    // The filesystem is set up while the parent makes the cgroup and wires the network.
    if let Some(hostname) = spec.hostname() {
        nix::unistd::sethostname(hostname)
            .map_err(|e| SetupError::sys(format!("setting the hostname {hostname:?}"), e))?;
    }
    let no_mounts = Vec::new();
    let mounts = spec.mounts().as_ref().unwrap_or(&no_mounts);
    let root = spec.root().as_ref();
    // A mount namespace of its own, or one joined by path (as runc, the root is set up there
    // too); without either, the host's mount tree is left alone and the root only chroot'ed to.
    let own_mounts = new.contains(&LinuxNamespaceType::Mount)
        || join.iter().any(|ns| ns.typ() == LinuxNamespaceType::Mount);
    if let (false, Some(root)) = (own_mounts, root) {
        nix::unistd::chroot(root.path())
            .and_then(|()| nix::unistd::chdir("/"))
            .map_err(|e| SetupError::sys(format!("chroot to {}", root.path().display()), e))?;
    }
    if let (true, Some(root)) = (own_mounts, root) {
        // The root and the mounts are opened while the host's tree is in view; then the mount
        // namespace becomes the container's own: a copy of the base one, or (cloned with the
        // host's) made private.
        let source = match launch.rootfs {
            Some(fs) => Root::Image(fs.open().map_err(SetupError::new)?),
            None => Root::Tree(mounts::clone_root(root.path())?),
        };
        let devices = linux.devices().clone().unwrap_or_default();
        let prepared = mounts::prepare(mounts, &devices, in_user_ns)?;
        let target = match base {
            Some(base) => {
                mntns::enter(base)?;
                Path::new(mntns::ROOT)
            }
            None => {
                mounts::make_private()?;
                root.path()
            }
        };
        match &source {
            Root::Image(fs) => fs.mount(target).map_err(SetupError::new)?,
            Root::Tree(tree) => mounts::attach_root(tree, target)?,
        }
        if launch.detached.is_some_and(|d| d.create_container_hooks) {
            channel
                .send(&[FS_READY], &[])
                .map_err(|e| SetupError::sys("reporting the filesystem ready", e))?;
            let resume = channel
                .recv()
                .map_err(|e| SetupError::sys("waiting for the createContainer hooks", e))?;
            if resume.data.first() != Some(&RESUME) {
                // SAFETY: see `child`; the parent failed and reports it.
                unsafe { libc::_exit(EXIT_RUNTIME.into()) }
            }
        }
        mounts::pivot(target, launch.detached.is_some_and(|d| d.no_pivot))?;
        mounts::setup(mounts, &prepared, &devices)?;
        drop(prepared);
    }
    if new.contains(&LinuxNamespaceType::Network) {
        mounts::loopback_up()?;
    }
    for (key, value) in linux.sysctl().iter().flatten() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        fs::write(&path, value).map_err(|e| SetupError::io(format!("setting sysctl {key}"), &e))?;
    }
    if own_mounts {
        mounts::protect(&linux)?;
    }

    let go = channel
        .recv()
        .map_err(|e| SetupError::sys("waiting for the runtime", e))?;
    if go.data.first() != Some(&GO) || go.data.len() < 5 {
        // The parent failed (and is cleaning up): nothing to report.
        // SAFETY: see `child`.
        unsafe { libc::_exit(EXIT_RUNTIME.into()) }
    }
    let rows = u16::from_le_bytes([go.data[1], go.data[2]]);
    let cols = u16::from_le_bytes([go.data[3], go.data[4]]);
    super::cgroups::enter(&go.fds)
        .map_err(|e| SetupError::sys("moving into the container's cgroup", e))?;
    drop(go);
    // In its cgroup by now: make that cgroup the root of its view, and mount it.
    if new.contains(&LinuxNamespaceType::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| SetupError::sys("creating the cgroup namespace", e))?;
    }
    if own_mounts {
        mounts::cgroups(mounts)?;
        if root.and_then(|r| r.readonly()) == Some(true) {
            mounts::readonly_root()?;
        }
    }
    let process = spec.process().clone().unwrap_or_default();
    if let Some(adj) = process.oom_score_adj() {
        security::set_oom_score_adj(adj)?;
    }
    let keep_stdin = launch.stdio.keep_stdin || launch.stdio.input.is_some();
    let init = launch.init.then_some(&launch.signals.set);
    let end = match &launch.detached {
        Some(d) => End::Detached(d),
        None => End::WithParent(init),
    };
    finish_and_exec(spec, channel, (rows, cols), keep_stdin, end, seccomp)
}

/// The container's root filesystem, opened before its mount namespace is entered.
enum Root {
    /// An image's (an overlay of its layers, or a copy).
    Image(image::Source),
    /// A clone of a directory's tree (an OCI bundle's rootfs).
    Tree(OwnedFd),
}

/// How the process ends its set-up.
enum End<'a> {
    /// `run`: dies with the runtime (after forking `--init`'s PID 1 when asked).
    WithParent(Option<&'a SigSet>),
    /// `exec`: a process of the container that outlives the runtime, keeping the caller's
    /// descriptors 3 to 3+N-1 (`--preserve-fds N`).
    Free(u32),
    /// OCI `create`: outlives the runtime, reports ready, then waits for `start`.
    Detached(&'a Detached),
}

/// Points stdin, stdout and stderr where `stdio` says.
fn redirect(stdio: &Stdio) -> Result<(), SetupError> {
    let pairs = stdio
        .input
        .map(|i| (i, 0))
        .into_iter()
        .chain(stdio.output.into_iter().flat_map(|(o, e)| [(o, 1), (e, 2)]));
    for (from, to) in pairs {
        // SAFETY: dup2 onto a standard descriptor of this process.
        if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
            return Err(SetupError::last("redirecting the standard descriptors"));
        }
    }
    Ok(())
}

/// The common end of `run` and `exec`: working directory, terminal, rlimits, identity and
/// capabilities, no_new_privs, umask, seccomp, then exec (after forking `init`'s PID 1 when
/// asked, which the filter confines too, or waiting for the OCI `start`).
fn finish_and_exec(
    spec: &Spec,
    channel: &Channel,
    (rows, cols): (u16, u16),
    keep_stdin: bool,
    end: End,
    seccomp: Option<&Program>,
) -> Result<Infallible, SetupError> {
    let process = spec.process().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    enter_workdir(process.cwd())?;
    let Some(name) = args.first() else {
        return Err(SetupError::new("the Spec gives no process args"));
    };
    let program = find_executable(name, &env)?;

    nix::unistd::setsid().map_err(|e| SetupError::sys("setsid", e))?;
    let tty = process.terminal() == Some(true);
    if tty {
        let master = tty::open_in_container(rows, cols)?;
        channel
            .send(&[PTY], &[master.as_raw_fd()])
            .map_err(|e| SetupError::sys("passing the terminal to the runtime", e))?;
    } else if !keep_stdin {
        redirect_stdin_to_null()?;
    }

    security::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    // Without no_new_privs, loading a filter takes CAP_SYS_ADMIN, which the switch of user
    // drops: then it is loaded before, as runc does (the profile must allow the steps after).
    // With it, it is loaded last, so that a profile constrains the container, not its set-up.
    let nnp = process.no_new_privileges() == Some(true);
    let (early, last) = if nnp {
        (None, seccomp)
    } else {
        (seccomp, None)
    };
    let load = |p: Option<&Program>| {
        p.map_or(Ok(()), Program::load)
            .map_err(|e| SetupError::new(e.to_string()))
    };
    let preserved = match end {
        End::Detached(d) => d.preserve_fds,
        End::Free(n) => n,
        End::WithParent(_) => 0,
    };
    // Before any filter: a profile that predates close_range (runtime-tools' own) refuses it.
    security::cloexec_from(3 + preserved)?;
    load(early)?;
    let user = process.user();
    security::switch_user(user, process.capabilities().as_ref())?;
    match end {
        End::WithParent(_) => security::die_with_parent()?,
        End::Detached(_) => security::keep_after_parent()?,
        End::Free(_) => {}
    }
    if nnp {
        security::set_no_new_privs()?;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
    if let End::Detached(d) = end {
        // What exec would find wrong later is reported now, to `create`; the wait comes before
        // the filter, as runc's, so that a profile need not allow it.
        check_executable(&program)?;
        wait_for_start(channel, d.fifo_dir)?;
    }
    load(last)?;

    if let End::WithParent(Some(blocked)) = end {
        init::start(tty, blocked);
    }
    reset_signals();
    Err(exec(&program, &args, &env))
}

/// `exec`: a new process in the namespaces (those the Spec lists, joined through the
/// container's PID 1, `target`) and cgroup of a running container, set up as the Spec's
/// `process` says. The process is non-dumpable before it is born in the container's PID
/// namespace (this process makes itself so before forking), so nothing in the container can
/// ptrace it or open its /proc files while it still runs the runtime's code (CVE-2019-5736).
pub fn spawn_exec(
    target: Pid,
    cgroup: &str,
    spec: &Spec,
    stdio: Stdio,
    seccomp_cache: &Path,
    preserve_fds: u32,
) -> Result<Child, SetupError> {
    let seccomp = seccomp_program(spec, seccomp_cache)?;
    let open = |typ: LinuxNamespaceType| {
        fs::File::open(format!("/proc/{target}/ns/{typ}"))
            .map_err(|e| SetupError::io(format!("opening the container's {typ} namespace"), &e))
    };
    let (new, joined) = namespaces(spec)?;
    let mut join = Vec::new();
    let mut pid_ns = None;
    for typ in new.into_iter().chain(joined.iter().map(|ns| ns.typ())) {
        match typ {
            LinuxNamespaceType::Pid => pid_ns = Some(open(typ)?),
            // The mount namespace last: the others are opened by path in the host's /proc.
            LinuxNamespaceType::Mount => {}
            // The user namespace first: it owns the others.
            LinuxNamespaceType::User => join.insert(0, (open(typ)?, typ)),
            _ => join.push((open(typ)?, typ)),
        }
    }
    join.push((open(LinuxNamespaceType::Mount)?, LinuxNamespaceType::Mount));
    let tty = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let size = if tty {
        tty::size().unwrap_or((0, 0))
    } else {
        (0, 0)
    };
    let cg = super::cgroups::Cgroup::open(cgroup);
    let (parent_end, child_end) =
        Channel::pair().map_err(|e| SetupError::sys("creating a socket pair", e))?;
    security::set_non_dumpable()?;
    // The PID namespace applies to children: join it here, then fork into it.
    if let Some(ns) = &pid_ns {
        setns(ns, LinuxNamespaceType::Pid)?;
    }
    // SAFETY: the process is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(|e| SetupError::sys("creating the process", e))? {
        nix::unistd::ForkResult::Child => {
            drop(parent_end);
            run_child(&child_end, || {
                redirect(&stdio)?;
                cg.add(nix::unistd::getpid())
                    .map_err(|e| SetupError::new(crate::error::one_line(&e)))?;
                for (fd, typ) in &join {
                    setns(fd, *typ)?;
                }
                security::new_session_keyring()?;
                let keep_stdin = stdio.input.is_some() || stdio.keep_stdin;
                finish_and_exec(
                    spec,
                    &child_end,
                    size,
                    keep_stdin,
                    End::Free(preserve_fds),
                    seccomp.as_ref(),
                )
            })
        }
        nix::unistd::ForkResult::Parent { child } => Ok(Child {
            pid: child,
            channel: parent_end,
        }),
    }
}

/// Whether the program can be exec'd by this process (its final identity), with exec's errors.
fn check_executable(program: &CString) -> Result<(), SetupError> {
    nix::unistd::access(program.as_c_str(), nix::unistd::AccessFlags::X_OK).map_err(|e| {
        let kind = match e {
            nix::Error::ENOENT | nix::Error::ENOTDIR => Kind::NotFound,
            _ => Kind::NotExecutable,
        };
        SetupError::sys(format!("exec: {:?}", program.to_string_lossy()), e).with_kind(kind)
    })
}

/// The exec fifo's name in the OCI runtime's directory of the container.
pub const EXEC_FIFO: &str = "exec.fifo";

/// OCI `create`'s last step: tell the runtime the container is made, then block on the exec
/// fifo until `start` opens it. It is reached through a descriptor of its directory taken
/// before pivot_root (close-on-exec: the container never holds it), so no /proc is needed.
fn wait_for_start(channel: &Channel, dir: std::os::fd::RawFd) -> Result<(), SetupError> {
    channel
        .send(&[READY], &[])
        .map_err(|e| SetupError::sys("reporting the container created", e))?;
    // SAFETY: the descriptor stays open in this process until exec.
    let dir = unsafe { BorrowedFd::borrow_raw(dir) };
    let fd = nix::fcntl::openat(
        dir,
        EXEC_FIFO,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SetupError::sys("opening the exec fifo", e))?;
    nix::unistd::write(&fd, b"0").map_err(|e| SetupError::sys("writing the exec fifo", e))?;
    Ok(())
}

/// Enters the working directory, creating it when missing, and checks it is inside the root.
fn enter_workdir(cwd: &Path) -> Result<(), SetupError> {
    let shown = cwd.display();
    match fs::metadata(cwd) {
        Ok(m) if !m.is_dir() => {
            return Err(SetupError::new(format!(
                "working directory {shown} is not a directory"
            )))
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(cwd)
            .map_err(|e| SetupError::io(format!("creating the working directory {shown}"), &e))?,
    }
    nix::unistd::chdir(cwd)
        .map_err(|e| SetupError::sys(format!("entering the working directory {shown}"), e))?;
    let here =
        nix::unistd::getcwd().map_err(|e| SetupError::sys("checking the working directory", e))?;
    if !here.starts_with("/") {
        return Err(SetupError::new(format!(
            "working directory {shown} is outside the container"
        )));
    }
    Ok(())
}

fn redirect_stdin_to_null() -> Result<(), SetupError> {
    let null = fs::File::open("/dev/null").map_err(|e| SetupError::io("opening /dev/null", &e))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| SetupError::sys("dup2", e))?;
    Ok(())
}

/// Finds the program as Go's LookPath does (which is what Docker users see): a name with a
/// slash is used as is, others are searched in the container's PATH.
fn find_executable(name: &str, env: &[String]) -> Result<CString, SetupError> {
    let not_found =
        |why: &str| SetupError::new(format!("exec: {name:?}: {why}")).with_kind(Kind::NotFound);
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

fn exec(program: &CString, args: &[String], env: &[String]) -> SetupError {
    let to_c = |v: &[String]| -> Option<Vec<CString>> {
        v.iter().map(|s| CString::new(s.as_bytes()).ok()).collect()
    };
    let (Some(argv), Some(envp)) = (to_c(args), to_c(env)) else {
        return SetupError::new("an argument or environment variable contains a NUL byte");
    };
    let err = nix::unistd::execve(program, &argv, &envp).unwrap_err();
    let kind = match err {
        nix::Error::ENOENT | nix::Error::ENOTDIR => Kind::NotFound,
        _ => Kind::NotExecutable,
    };
    SetupError::sys(format!("exec: {:?}", program.to_string_lossy()), err).with_kind(kind)
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
    log: Option<&LogFile>,
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
        let (mut in_at, mut out_at) = (None, None);
        if relay.as_ref().is_some_and(|r| r.wants_input()) && status.is_none() {
            in_at = Some(fds.len());
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if let Some(fd) = relay.as_ref().and_then(|r| r.waiting()) {
            out_at = Some(fds.len());
            fds.push(PollFd::new(fd, PollFlags::POLLOUT));
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
        let (sig_ready, in_ready, taken) = (ready(Some(0)), ready(in_at), ready(out_at));
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
        if let (Some(r), true) = (relay.as_mut(), taken) {
            r.flush();
        }
        if sig_ready {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    // Once reaped, a later SIGCHLD (another child of this process, or a
                    // tracer's second report) has nothing to do with the container.
                    Signal::SIGCHLD if status.is_none() => {
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
