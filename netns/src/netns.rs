//! Named network namespaces, as `ip netns` keeps them: a file under /run/netns with the
//! namespace bind-mounted on it, so `ip netns exec NAME ...` works on a running container.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, CloneFlags};

use crate::error::{io, Error, Result};
use crate::explain::Explain;

pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Names the network namespace `source` (`/proc/PID/ns/net`, or another netns file): `ip netns
/// attach NAME PID`, or its bind-mount form for a file.
pub fn attach(ex: &Explain, name: &str, source: &Path) -> Result<()> {
    let pid = source
        .strip_prefix("/proc")
        .ok()
        .and_then(|rest| rest.to_str()?.strip_suffix("/ns/net")?.parse::<u32>().ok());
    match pid {
        Some(pid) => ex.say(|| format!("ip netns attach {name} {pid}")),
        None => ex.say(|| {
            format!(
                "touch {NETNS_DIR}/{name} && mount --bind {} {NETNS_DIR}/{name}",
                source.display()
            )
        }),
    }
    prepare_dir()?;
    let target = path(name);
    // A stale file from a crash is replaced; a live mount on it is left alone by O_EXCL failing
    // only when the file exists, so detach first.
    let _ = umount2(&target, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(&target);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(io(format!("creating {}", target.display())))?;
    mount(
        Some(source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        let _ = fs::remove_file(&target);
        Error::Io {
            what: format!("bind-mounting {} on {}", source.display(), target.display()),
            source: e.into(),
        }
    })
}

/// `ip netns delete NAME`; a name already gone is fine.
pub fn delete(ex: &Explain, name: &str) -> Result<()> {
    let target = path(name);
    if !target.exists() {
        return Ok(());
    }
    ex.say(|| format!("ip netns delete {name}"));
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(Error::Io {
                what: format!("unmounting {}", target.display()),
                source: e.into(),
            })
        }
    }
    match fs::remove_file(&target) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(io(format!("removing {}", target.display()))(e))
        }
        _ => Ok(()),
    }
}

/// Like iproute2: /run/netns is a shared mount of itself, so that the names made later show up
/// (and go away) in every mount namespace that shares it.
fn prepare_dir() -> Result<()> {
    let dir = Path::new(NETNS_DIR);
    fs::create_dir_all(dir).map_err(io(format!("creating {NETNS_DIR}")))?;
    // Not recursive once it is a mount point: the names below it are made while it is shared,
    // and walking every container's mount on each run would cost more the more there are.
    if mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .is_err()
    {
        // Not a mount point yet: make it one, then shared.
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
        let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
        mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)?;
    }
    Ok(())
}

/// Runs `f` on a dedicated thread that has entered the netns at `ns` (a file such as
/// /run/netns/NAME or /proc/PID/ns/net): never switch the caller's own thread.
pub fn inside<T: Send>(ns: &Path, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let file = File::open(ns).map_err(io(format!("opening {}", ns.display())))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                what: format!("entering {}", ns.display()),
                source: e.into(),
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                what: "netns thread".into(),
                source: std::io::Error::other("panicked"),
            })
        })
    })
}
