//! The child's filesystem, as the Spec's `mounts`, `root`, `linux.devices`, `maskedPaths` and
//! `readonlyPaths` describe it: a private mount tree, pivot_root into the root filesystem, the
//! mounts in order, the device nodes, the masks.
//!
//! Every mount is made before pivot_root as a detached mount tree, in the Spec's order (a bind's
//! source cloned with open_tree, a kernel filesystem made with fsopen/fsmount): the kernel lists
//! mounts in the order they were made, and proc and sysfs can only be made in a user namespace
//! while the host's are in view. They are attached after the pivot, with the container's rootfs
//! as `/` and the host's tree detached, so no mount target (symlinks included) can resolve
//! outside the container. Cgroup mounts wait until the process is in its cgroup and cgroup
//! namespace ([`cgroups`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{fchdir, pivot_root};
use oci_spec::runtime::{Linux, LinuxDevice, LinuxDeviceType, Mount};

use super::error::{Result as R, SetupError};

/// The Spec's mounts as detached mount trees, made before pivot_root: one per mount (with
/// whether it is a directory; `None` for cgroup mounts), and one per device that is bound from
/// the host's rather than made (in a user namespace, which cannot make device nodes).
pub struct Prepared {
    mounts: Vec<Option<(OwnedFd, bool)>>,
    devices: Vec<Option<OwnedFd>>,
}

/// What a mount's options ask for: mount flags, propagation, and the rest as the mount's data.
struct Options {
    flags: MsFlags,
    propagation: MsFlags,
    data: String,
}

impl Options {
    fn parse(options: Option<&Vec<String>>) -> Self {
        let mut o = Options {
            flags: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        };
        for opt in options.into_iter().flatten() {
            let (set, clear, prop) = match opt.as_str() {
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
                "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
                "rbind" => (
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    MsFlags::empty(),
                    MsFlags::empty(),
                ),
                "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
                "rprivate" => (
                    MsFlags::empty(),
                    MsFlags::empty(),
                    MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                ),
                "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
                "rshared" => (
                    MsFlags::empty(),
                    MsFlags::empty(),
                    MsFlags::MS_SHARED | MsFlags::MS_REC,
                ),
                "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
                "rslave" => (
                    MsFlags::empty(),
                    MsFlags::empty(),
                    MsFlags::MS_SLAVE | MsFlags::MS_REC,
                ),
                "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
                "runbindable" => (
                    MsFlags::empty(),
                    MsFlags::empty(),
                    MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
                ),
                data => {
                    if !o.data.is_empty() {
                        o.data.push(',');
                    }
                    o.data.push_str(data);
                    continue;
                }
            };
            o.flags = (o.flags | set) & !clear;
            o.propagation |= prop;
        }
        o
    }

    fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || Options::parse(m.options().as_ref()).is_bind()
}

/// Why a bind mount may not go to `dest` (a path inside the container), as runc refuses it: over
/// /proc, /sys or /dev themselves, or anywhere below /proc, where it could replace what the
/// kernel shows (a /proc/self/attr or /proc/sys file, say) with a file the container controls.
pub fn forbidden_destination(dest: &Path) -> Option<&'static str> {
    let under_proc = dest.starts_with("/proc");
    if under_proc || dest == Path::new("/sys") || dest == Path::new("/dev") {
        return Some("mounting over /proc, /sys, /dev or anything below /proc is not allowed");
    }
    None
}

/// Stops mounts made from now on from propagating to the host.
pub fn make_private() -> R<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| SetupError::sys("making the mount tree private", e))
}

/// Clones the root filesystem given as a directory (an OCI bundle's `root.path`), to be
/// attached where pivot_root takes it ([`attach_root`]).
pub fn clone_root(root: &Path) -> R<OwnedFd> {
    let within = |e: SetupError| e.within(format!("the root {}", root.display()));
    let tree = open_tree(root, true).map_err(within)?;
    set_attributes(&tree, MsFlags::empty(), true).map_err(within)?;
    Ok(tree)
}

/// Attaches the root's tree on `target`, a mount point for pivot_root.
pub fn attach_root(tree: &OwnedFd, target: &Path) -> R<()> {
    attach_tree(tree, &open_target(target)?)
        .map_err(|e| e.within(format!("mounting the root on {}", target.display())))
}

/// Makes every mount of the Spec as a detached tree, in order ([`setup`] attaches them inside
/// the container once the host's tree is gone): bind sources cloned with their attributes (ro,
/// nosuid, nodev, noexec, atime), kernel filesystems made with their options. With `bind_devices`
/// (a user namespace), the devices are cloned from the host's nodes of the same path, as runc
/// does.
pub fn prepare(mounts: &[Mount], devices: &[LinuxDevice], bind_devices: bool) -> R<Prepared> {
    let mounts = mounts
        .iter()
        .map(|m| {
            let within = |e: SetupError| e.within(format!("mount {}", m.destination().display()));
            if m.typ().as_deref() == Some("cgroup") {
                return Ok(None);
            }
            if !is_bind(m) {
                return new_fs(m).map(|fs| Some((fs, true))).map_err(within);
            }
            let source = m.source().clone().unwrap_or_default();
            let opts = Options::parse(m.options().as_ref());
            let is_dir = fs::metadata(&source)
                .map_err(|e| within(SetupError::io(format!("{}", source.display()), &e)))?
                .is_dir();
            let recursive = opts.flags.contains(MsFlags::MS_REC);
            let tree = clone_tree(&source, recursive).map_err(within)?;
            set_attributes(&tree, opts.flags, recursive).map_err(within)?;
            Ok(Some((tree, is_dir)))
        })
        .collect::<R<Vec<_>>>()?;
    let devices = devices
        .iter()
        .map(|d| match bind_devices {
            true => clone_tree(d.path(), false).map(Some),
            false => Ok(None),
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Prepared { mounts, devices })
}

/// The mount attributes (mount_setattr, fsmount) for mount flags.
fn attributes(flags: MsFlags) -> u64 {
    let mut attr = 0;
    for (flag, a) in [
        (MsFlags::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, libc::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
        (MsFlags::MS_NOATIME, libc::MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, libc::MOUNT_ATTR_STRICTATIME),
    ] {
        if flags.contains(flag) {
            attr |= a;
        }
    }
    attr
}

/// A new kernel filesystem (proc, sysfs, tmpfs, devpts, mqueue...) as a detached mount: its
/// source, its options (`key=value` and bare flags, as mount(2) would parse them) and
/// superblock flags through fsconfig, the per-mount flags through fsmount.
fn new_fs(m: &Mount) -> R<OwnedFd> {
    let opts = Options::parse(m.options().as_ref());
    let typ = m.typ().clone().unwrap_or_default();
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.clone());
    let c = |s: &str| {
        std::ffi::CString::new(s).map_err(|_| SetupError::new(format!("{s:?} contains a NUL byte")))
    };
    // SAFETY: fsopen with a valid C string; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c(&typ)?.as_ptr(), libc::FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(SetupError::last(format!("making a {typ} filesystem")));
    }
    // SAFETY: the kernel just returned this descriptor.
    let context = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let config = |cmd: libc::c_uint, key: Option<&str>, value: Option<&str>| -> R<()> {
        let (key, value) = (key.map(c).transpose()?, value.map(c).transpose()?);
        let ptr =
            |s: &Option<std::ffi::CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: fsconfig on our context with C strings (or null) that outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                cmd,
                ptr(&key),
                ptr(&value),
                0,
            )
        };
        if r < 0 {
            let what = match (&key, &value) {
                (Some(k), Some(v)) => format!("{}={}", k.to_string_lossy(), v.to_string_lossy()),
                (Some(k), None) => k.to_string_lossy().into_owned(),
                _ => "creating it".into(),
            };
            return Err(SetupError::last(format!("mounting {typ}: {what}")));
        }
        Ok(())
    };
    config(libc::FSCONFIG_SET_STRING, Some("source"), Some(&source))?;
    for (flag, name) in [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
    ] {
        if opts.flags.contains(flag) {
            config(libc::FSCONFIG_SET_FLAG, Some(name), None)?;
        }
    }
    for item in opts.data.split(',').filter(|i| !i.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) => config(libc::FSCONFIG_SET_STRING, Some(k), Some(v))?,
            None => config(libc::FSCONFIG_SET_FLAG, Some(item), None)?,
        }
    }
    config(libc::FSCONFIG_CMD_CREATE, None, None)?;
    // SAFETY: fsmount on our created context; the returned fd is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attributes(opts.flags),
        )
    };
    if fd < 0 {
        return Err(SetupError::last(format!("mounting {typ}")));
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Clones the mount at `path`. A path into another process's root (`/proc/PID/root/...`: a
/// container's /dev/shm for `--ipc container:NAME`) is cloned from within that process's mount
/// namespace, the only place open_tree clones it from; the detached tree then comes back here.
fn clone_tree(path: &Path, recursive: bool) -> R<OwnedFd> {
    let Some((pid, inner)) = in_other_root(path) else {
        return open_tree(path, recursive);
    };
    let open = |p: &str| {
        File::open(p).map_err(|e| SetupError::io(format!("opening the mount namespace {p}"), &e))
    };
    let (ours, theirs) = (
        open("/proc/self/ns/mnt")?,
        open(&format!("/proc/{pid}/ns/mnt"))?,
    );
    let enter = |ns: &File, whose: &str| {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| SetupError::sys(format!("entering {whose} mount namespace"), e))
    };
    enter(&theirs, "the other container's")?;
    let tree = open_tree(&inner, recursive);
    enter(&ours, "its own")?;
    tree
}

/// `/proc/PID/root/REST` as (PID, `/REST`).
fn in_other_root(path: &Path) -> Option<(u32, PathBuf)> {
    let rest = path.strip_prefix("/proc").ok()?;
    let mut parts = rest.components();
    let pid = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    let inner = parts.as_path().strip_prefix("root").ok()?;
    Some((pid, Path::new("/").join(inner)))
}

fn open_tree(path: &Path, recursive: bool) -> R<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| SetupError::new(format!("{}: path contains a NUL byte", path.display())))?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree with a valid C string; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(SetupError::last(format!(
            "cloning the mount of {}",
            path.display()
        )));
    }
    // SAFETY: the kernel just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets a detached tree's ro, nosuid, nodev, noexec and atime as `flags` ask (submounts
/// included when `recursive`), and makes it private: a clone of a shared mount of the host's
/// would stay its peer, and what the container mounts in it would show on the host.
fn set_attributes(tree: &OwnedFd, flags: MsFlags, recursive: bool) -> R<()> {
    let attr_set = attributes(flags);
    // An atime mode (relatime is 0) replaces the one the source has.
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME | MsFlags::MS_RELATIME;
    let attr_clr = match flags.intersects(atime) {
        true => libc::MOUNT_ATTR__ATIME,
        false => 0,
    };
    let attr = libc::mount_attr {
        attr_set,
        attr_clr,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let mut at = libc::AT_EMPTY_PATH;
    if recursive {
        at |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr on our own fd with a properly sized mount_attr.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(SetupError::last("setting its attributes (ro, nosuid...)"));
    }
    Ok(())
}

/// Attaches a detached tree onto the object `target` (an O_PATH fd) refers to.
fn attach_tree(tree: &OwnedFd, target: &OwnedFd) -> R<()> {
    // SAFETY: move_mount between two of our own fds, with empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(SetupError::last("move_mount"));
    }
    Ok(())
}

/// Opens `path` (resolved in the current root, the container's) as an O_PATH fd.
fn open_target(path: &Path) -> R<OwnedFd> {
    File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| SetupError::io(format!("opening {}", path.display()), &e))
}

/// Makes `new_root` the root and detaches the old one; with `no_pivot` (runc's `--no-pivot`,
/// for a root on a ramdisk, which pivot_root refuses), moves it onto `/` and chroots into it
/// instead: the host's tree then stays underneath, out of sight but in the namespace.
pub fn pivot(new_root: &Path, no_pivot: bool) -> R<()> {
    if no_pivot {
        let fail = |what: &str, e: nix::Error| {
            SetupError::sys(format!("entering {} ({what})", new_root.display()), e)
        };
        nix::unistd::chdir(new_root).map_err(|e| fail("chdir", e))?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| fail("moving it onto /", e))?;
        nix::unistd::chroot(".").map_err(|e| fail("chroot", e))?;
        return nix::unistd::chdir("/").map_err(|e| SetupError::sys("chdir /", e));
    }
    let fail = |what: &str, e: nix::Error| {
        SetupError::sys(format!("pivot_root into {}: {what}", new_root.display()), e)
    };
    let fd = open(
        new_root,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("open", e))?;
    fchdir(&fd).map_err(|e| fail("fchdir", e))?;
    pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| fail("detaching the old root", e))?;
    nix::unistd::chdir("/").map_err(|e| SetupError::sys("chdir /", e))
}

/// Attaches the prepared mounts in order (after [`pivot`]; cgroup mounts are left to
/// [`cgroups`]), each with its propagation, then makes (or binds) the device nodes and /dev's
/// usual symlinks.
pub fn setup(mounts: &[Mount], prepared: &Prepared, devices: &[LinuxDevice]) -> R<()> {
    for (m, tree) in mounts.iter().zip(&prepared.mounts) {
        let Some((tree, is_dir)) = tree else {
            continue;
        };
        let dest = m.destination();
        let within = |e: SetupError| e.within(format!("mount {}", dest.display()));
        let (target, at) = match is_bind(m) {
            true => mount_point(dest, *is_dir),
            false => fs_mount_point(dest),
        }
        .map_err(within)?;
        attach_tree(tree, &target).map_err(within)?;
        let propagation = Options::parse(m.options().as_ref()).propagation;
        propagate(&at, propagation).map_err(within)?;
    }
    for (d, bound) in devices.iter().zip(&prepared.devices) {
        match bound {
            Some(tree) => {
                let (target, _) = mount_point(d.path(), false)?;
                attach_tree(tree, &target)
                    .map_err(|e| e.within(format!("binding {}", d.path().display())))?;
            }
            None => device(d)?,
        }
    }
    if Path::new("/dev").is_dir() {
        for (link, target) in [
            ("/dev/ptmx", "pts/ptmx"),
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            match symlink(target, link) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(SetupError::io(format!("creating {link}"), &e))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A kernel filesystem's mount point: its destination resolved in the container, created
/// when missing, opened; and the resolved path.
fn fs_mount_point(dest: &Path) -> R<(OwnedFd, PathBuf)> {
    let dest = resolve(dest)?;
    fs::create_dir_all(&dest).map_err(|e| SetupError::io("creating it", &e))?;
    Ok((open_target(&dest)?, dest))
}

fn propagate(dest: &Path, propagation: MsFlags) -> R<()> {
    if propagation.is_empty() {
        return Ok(());
    }
    mount(None::<&str>, dest, None::<&str>, propagation, None::<&str>)
        .map_err(|e| SetupError::sys("setting its propagation", e))
}

/// A device node (mode, owner) as the Spec lists it.
fn device(d: &LinuxDevice) -> R<()> {
    let path = resolve(d.path())?;
    let fail = |e: nix::Error| SetupError::sys(format!("creating {}", path.display()), e);
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| SetupError::io("creating /dev", &e))?;
    }
    let mode = Mode::from_bits_truncate(d.file_mode().unwrap_or(0o666));
    let dev = makedev(d.major() as u64, d.minor() as u64);
    match mknod(&path, kind, mode, dev) {
        Err(nix::Error::EEXIST) => {}
        r => r.map_err(fail)?,
    }
    let (uid, gid) = (d.uid().unwrap_or(0), d.gid().unwrap_or(0));
    if uid != 0 || gid != 0 {
        nix::unistd::chown(
            &path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// Masks the Spec's `maskedPaths` and makes its `readonlyPaths` read-only.
pub fn protect(linux: &Linux) -> R<()> {
    let mut hidden_dir = None;
    for path in linux.masked_paths().iter().flatten() {
        mask(path, &mut hidden_dir)?;
    }
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for path in linux.readonly_paths().iter().flatten() {
        if Path::new(path).exists() {
            bind(path, path)?;
            remount_ro(path, nosuid)?;
        }
    }
    Ok(())
}

/// Makes the root read-only (`root.readonly`): the last mount step.
pub fn readonly_root() -> R<()> {
    remount_ro("/", MsFlags::empty())
}

fn bind(source: &str, target: &str) -> R<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| SetupError::sys(format!("bind mounting onto {target}"), e))
}

/// Remounts `target` read-only with `keep`, and the flags it has: in a user namespace a mount
/// copied from the host's keeps them locked, and a remount that would clear one fails.
fn remount_ro(target: &str, keep: MsFlags) -> R<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let has = statvfs(target)
        .map(|s| s.flags())
        .unwrap_or(FsFlags::empty());
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if has.contains(f) {
            flags |= m;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| SetupError::sys(format!("making {target} read-only"), e))
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory. One tmpfs
/// hides every directory (`hidden_dir`: the first one it hides), bound read-only on the
/// others: a filesystem each would be a superblock each, and the kernel walks every
/// superblock's lists at each cgroup's removal.
fn mask<'a>(path: &'a str, hidden_dir: &mut Option<&'a str>) -> R<()> {
    match fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => match hidden_dir {
            Some(empty) => {
                bind(empty, path)?;
                remount_ro(path, MsFlags::empty())
            }
            None => {
                mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                )
                .map_err(|e| SetupError::sys(format!("masking {path}"), e))?;
                *hidden_dir = Some(path);
                Ok(())
            }
        },
        Ok(_) => bind("/dev/null", path),
    }
}

/// The container's own cgroups at each `cgroup` mount of the Spec, read-only unless the mount
/// says `rw`. Called once the process is in its cgroup namespace, whose root is its own
/// cgroup: a fresh cgroup mount there shows that cgroup as the root, limits included. On v1,
/// a tmpfs holds one mount per hierarchy (named as the host names them, `cpu` and `cpuacct`
/// linking to `cpu,cpuacct`); on v2, cgroup2 itself is mounted.
pub fn cgroups(mounts: &[Mount]) -> R<()> {
    for m in mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("cgroup"))
    {
        let dest = m.destination();
        cgroup_mount(m).map_err(|e| e.within(format!("mount {}", dest.display())))?;
    }
    Ok(())
}

fn cgroup_mount(m: &Mount) -> R<()> {
    let opts = Options::parse(m.options().as_ref());
    let dest = resolve(m.destination())?;
    fs::create_dir_all(&dest).map_err(|e| SetupError::io("creating it", &e))?;
    let mine = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| SetupError::io("reading /proc/self/cgroup", &e))?;
    // `ID:CONTROLLERS:PATH`; v1 hierarchies have controllers (or a name), cgroup2 has none.
    let v1: Vec<&str> = mine
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .filter(|c| !c.is_empty())
        .collect();
    let flags = opts.flags;
    let fs_mount = |typ: &str, at: &Path, data: Option<&str>| {
        mount(Some(typ), at, Some(typ), flags, data)
            .map_err(|e| SetupError::sys(format!("mounting {typ} on {}", at.display()), e))
    };
    if v1.is_empty() {
        return fs_mount("cgroup2", &dest, None);
    }
    let rw = flags & !MsFlags::MS_RDONLY;
    mount(Some("tmpfs"), &dest, Some("tmpfs"), rw, Some("mode=755"))
        .map_err(|e| SetupError::sys("mounting a tmpfs", e))?;
    for controllers in &v1 {
        let name = controllers.strip_prefix("name=").unwrap_or(controllers);
        let at = dest.join(name);
        fs::create_dir(&at).map_err(|e| SetupError::io(format!("creating {name}"), &e))?;
        fs_mount("cgroup", &at, Some(controllers))?;
        if name.contains(',') {
            for one in name.split(',') {
                let _ = symlink(name, dest.join(one));
            }
        }
    }
    if mine.lines().any(|l| l.starts_with("0::")) {
        let at = dest.join("unified");
        fs::create_dir(&at).map_err(|e| SetupError::io("creating unified", &e))?;
        fs_mount("cgroup2", &at, None)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let dest = dest.to_string_lossy();
        remount_ro(&dest, flags & !MsFlags::MS_RDONLY)?;
    }
    Ok(())
}

/// Creates an empty file at `path` unless something is there.
fn ensure_file(path: &Path) -> R<()> {
    if fs::symlink_metadata(path).is_err() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map_err(|e| SetupError::io(format!("creating {}", path.display()), &e))?;
    }
    Ok(())
}

/// Resolves a bind mount's target inside the container, refuses a forbidden one, creates it (a
/// directory or an empty file, of the source's kind) when missing, checks its kind and opens it
/// as an O_PATH fd to mount on; and the resolved path.
fn mount_point(path: &Path, is_dir: bool) -> R<(OwnedFd, PathBuf)> {
    let resolved = resolve(path)?;
    if let Some(why) = forbidden_destination(&resolved) {
        return Err(SetupError::new(format!("{}: {why}", resolved.display())));
    }
    let mkdir = |p: &Path| {
        fs::create_dir_all(p).map_err(|e| SetupError::io(format!("creating {}", p.display()), &e))
    };
    if is_dir {
        mkdir(&resolved)?;
    } else {
        if let Some(parent) = resolved.parent() {
            mkdir(parent)?;
        }
        ensure_file(&resolved)?;
    }
    let target = open_target(&resolved)?;
    let kind_ok = fs::metadata(&resolved).is_ok_and(|m| m.is_dir() == is_dir);
    if !kind_ok {
        return Err(SetupError::new(format!(
            "{} is not a {}",
            resolved.display(),
            if is_dir { "directory" } else { "file" }
        )));
    }
    Ok((target, resolved))
}

/// Resolves `path` in the container's root, following symlinks the way the container will see
/// them (absolute ones from its root), and refuses one that climbs out of the root with `..`.
fn resolve(path: &Path) -> R<PathBuf> {
    let mut done: Vec<OsString> = Vec::new();
    let mut todo: VecDeque<OsString> = components(path);
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if done.pop().is_none() {
                return Err(SetupError::new(
                    "a symlink on the way points outside the container",
                ));
            }
            continue;
        }
        let here: PathBuf = std::iter::once(OsString::from("/"))
            .chain(done.iter().cloned())
            .chain([c.clone()])
            .collect();
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(SetupError::new("too many levels of symbolic links"));
                }
                let target = fs::read_link(&here)
                    .map_err(|e| SetupError::io(format!("{}", here.display()), &e))?;
                if target.is_absolute() {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
            _ => done.push(c),
        }
    }
    Ok(std::iter::once(OsString::from("/")).chain(done).collect())
}

/// The normal and `..` components of a path.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Brings `lo` up in the container's own network namespace.
pub fn loopback_up() -> R<()> {
    let fail = |what: &str| SetupError::last(format!("bringing lo up: {what}"));
    // SAFETY: a datagram socket for interface ioctls; `req` is a properly sized ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(fail("socket"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
        let ok = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) == 0
        };
        let err = fail("ioctl");
        libc::close(sock);
        if ok {
            Ok(())
        } else {
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options() {
        let opts = |o: &[&str]| Options::parse(Some(&o.iter().map(|s| s.to_string()).collect()));
        let o = opts(&[
            "nosuid", "ro", "rw", "noexec", "mode=755", "size=64k", "rprivate",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(o.data, "mode=755,size=64k");
        assert!(opts(&["rbind", "ro"]).is_bind() && !opts(&["ro"]).is_bind());
        assert!(opts(&[]).data.is_empty());
    }

    #[test]
    fn paths_into_another_root() {
        assert_eq!(
            super::in_other_root(Path::new("/proc/42/root/dev/shm")),
            Some((42, PathBuf::from("/dev/shm")))
        );
        assert_eq!(super::in_other_root(Path::new("/proc/self/root/x")), None);
        assert_eq!(super::in_other_root(Path::new("/srv/proc/42/root")), None);
    }

    #[test]
    fn forbidden_destinations() {
        for bad in ["/proc", "/proc/sys", "/proc/self/attr/exec", "/sys", "/dev"] {
            assert!(forbidden_destination(Path::new(bad)).is_some(), "{bad}");
        }
        for ok in ["/procs", "/sys/x", "/dev/shm/x", "/data"] {
            assert!(forbidden_destination(Path::new(ok)).is_none(), "{ok}");
        }
    }
}
