//! The base of containers' mount namespaces.
//!
//! A new mount namespace starts as a copy of its creator's. Copied from the host's, it would
//! duplicate every host mount, two per running container (its /run/netns pin and its /etc), only
//! for pivot_root to detach them all again: with a thousand containers running that was most
//! of a set-up. So a container's namespace is copied instead from a base namespace that holds one
//! empty, read-only tmpfs, made once and pinned under the runroot. Whatever the container needs
//! from the host's tree is made before it enters its copy, as detached mounts: its root
//! filesystem (an image's overlay made with fsmount, or a directory's clone) and the Spec's
//! mounts (see `mounts::prepare`).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{sched_getaffinity, sched_setaffinity, setns, unshare, CloneFlags, CpuSet};
use nix::unistd::Pid;

use super::error::{Result as R, SetupError};

/// The directory of the base namespace's tmpfs that a container's root filesystem is mounted
/// on, in the container's copy, before pivot_root.
pub const ROOT: &str = "/root";

/// Opens the base namespace pinned in `dir` (a directory of the runroot), making it first when
/// there is none (the first set-up after a boot or a `system reset`). `dir` is made a private
/// bind mount of itself: a mount namespace may only be pinned where the pin cannot propagate.
pub fn base(dir: &Path) -> R<File> {
    let pin = dir.join("base");
    if let Some(ns) = open_pinned(&pin) {
        return Ok(ns);
    }
    make_pinned(dir, &pin).map_err(|e| {
        e.within(format!(
            "making the base mount namespace in {}",
            dir.display()
        ))
    })
}

fn make_pinned(dir: &Path, pin: &Path) -> R<File> {
    fs::create_dir_all(dir).map_err(|e| SetupError::io("creating it", &e))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("lock"))
        .map_err(|e| SetupError::io("its lock", &e))?;
    // Set-ups that find none at once make one, one after the other.
    let _locked = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| SetupError::sys("locking it", e))?;
    if let Some(ns) = open_pinned(pin) {
        return Ok(ns);
    }
    if !is_mount_root(dir) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| SetupError::sys("binding it onto itself", e))?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| SetupError::sys("making it private", e))?;
    File::create(pin).map_err(|e| SetupError::io("creating its pin", &e))?;
    // A namespace may only be pinned in one made before it, by id; this kernel hands out ids
    // in per-CPU batches (6.18), so one made on another CPU than the caller's was may rank
    // lower. Then it is made again, on each CPU in turn.
    let cpus =
        sched_getaffinity(Pid::from_raw(0)).map_err(|e| SetupError::sys("reading its CPUs", e))?;
    let mut on = (0..CpuSet::count()).filter(|&c| cpus.is_set(c).unwrap_or(false));
    let mut cpu = None;
    loop {
        match make(dir, pin, cpu) {
            Ok(()) => break,
            Err(("pinning it", nix::Error::EINVAL)) => match on.next() {
                Some(next) => cpu = Some(next),
                None => return Err(SetupError::sys("pinning it", nix::Error::EINVAL)),
            },
            Err((step, e)) => return Err(SetupError::sys(step, e)),
        }
    }
    open_pinned(pin).ok_or_else(|| SetupError::sys("opening it", nix::Error::ENOENT))
}

/// The namespace pinned at `pin`, when one is (a file there that is not a mount namespace's
/// is a pin that was never made, or was unmounted).
fn open_pinned(pin: &Path) -> Option<File> {
    let ns = File::open(pin).ok()?;
    let fs = nix::sys::statfs::fstatfs(&ns).ok()?;
    (fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC).then_some(ns)
}

fn is_mount_root(path: &Path) -> bool {
    rustix::fs::statx(
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::empty(),
    )
    .is_ok_and(|st| {
        st.stx_attributes
            .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
    })
}

/// Makes the base namespace in a helper process and pins it at `pin`: the helper copies the
/// host's namespace once, pivots into a fresh tmpfs (mounted on `dir` in its copy) holding only
/// [`ROOT`], detaches the rest, and reports; its namespace is then bound onto the pin. A failure
/// is the step and the errno. With `cpu`, the helper runs on that CPU.
fn make(dir: &Path, pin: &Path, cpu: Option<usize>) -> Result<(), (&'static str, nix::Error)> {
    let pipe = |step| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (step, e));
    let (read, write) = pipe("a pipe")?;
    // The helper's namespace lives as long as the helper: it waits for this pipe's end.
    let (pinned_read, pinned_write) = pipe("a pipe")?;
    // SAFETY: the helper only makes system calls before it exits with _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| ("fork", e))? {
        nix::unistd::ForkResult::Child => {
            drop((read, pinned_write));
            let made = (|| -> Result<(), (u8, nix::Error)> {
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
                let ro = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                let tmpfs = (
                    Some("minibox-base"),
                    Some("tmpfs"),
                    Some("mode=755,size=4k"),
                );
                if let Some(cpu) = cpu {
                    let mut set = CpuSet::new();
                    set.set(cpu).map_err(|e| (0, e))?;
                    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| (0, e))?;
                }
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (0, e))?;
                mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
                    .map_err(|e| (1, e))?;
                mount(tmpfs.0, dir, tmpfs.1, flags, tmpfs.2).map_err(|e| (2, e))?;
                nix::unistd::chdir(dir).map_err(|e| (2, e))?;
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o755);
                nix::unistd::mkdir(&ROOT[1..], mode).map_err(|e| (2, e))?;
                mount(None::<&str>, ".", None::<&str>, ro, None::<&str>).map_err(|e| (2, e))?;
                nix::unistd::pivot_root(".", ".").map_err(|e| (3, e))?;
                umount2(".", MntFlags::MNT_DETACH).map_err(|e| (3, e))?;
                nix::unistd::chdir("/").map_err(|e| (3, e))
            })();
            let report = match made {
                Ok(()) => [0, 0, 0, 0, 0],
                Err((step, e)) => {
                    let [a, b, c, d] = (e as i32).to_le_bytes();
                    [step + 1, a, b, c, d]
                }
            };
            if nix::unistd::write(&write, &report) == Ok(5) && report[0] == 0 {
                let _ = nix::unistd::read(&pinned_read, &mut [0u8; 1]);
            }
            // SAFETY: leaves without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop((write, pinned_read));
            let mut report = [0u8; 5];
            let steps = [
                "unshare",
                "making its tree private",
                "its tmpfs",
                "pivot_root",
            ];
            let pinned = match nix::unistd::read(&read, &mut report) {
                Ok(5) if report[0] == 0 => {
                    let ns = format!("/proc/{child}/ns/mnt");
                    let bind = MsFlags::MS_BIND;
                    mount(Some(ns.as_str()), pin, None::<&str>, bind, None::<&str>)
                        .map_err(|e| ("pinning it", e))
                }
                Ok(5) => {
                    let errno = i32::from_le_bytes([report[1], report[2], report[3], report[4]]);
                    let step = steps.get(usize::from(report[0]) - 1).copied();
                    Err((step.unwrap_or("?"), nix::Error::from_raw(errno)))
                }
                Ok(_) => Err(("its helper", nix::Error::EIO)),
                Err(e) => Err(("its helper", e)),
            };
            drop(pinned_write);
            let _ = nix::sys::wait::waitpid(child, None);
            pinned
        }
    }
}

/// Enters a copy of the base namespace `base` (the calling process must be single-threaded).
pub fn enter(base: &File) -> R<()> {
    setns(base, CloneFlags::CLONE_NEWNS)
        .map_err(|e| SetupError::sys("entering the base mount namespace", e))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| SetupError::sys("creating the mount namespace", e))
}

/// Unpins the base namespace (`system reset`): the next set-up makes a new one.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
