//! Named network namespaces, as `ip netns` keeps them: a file under /run/netns with the
//! namespace bind-mounted on it, so `ip netns exec minibox-<id12> ...` works on a running
//! container, and the network library is handed a path that outlives the container's process.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use minibox_netns::Explain;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::Pid;

use super::{Error, Result};

const NETNS_DIR: &str = "/run/netns";

/// A container's netns name: `minibox-<id12>`.
pub fn name(id: &str) -> String {
    format!("minibox-{}", minibox_netns::short(id))
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// `ip netns attach NAME PID`: names the netns that process `pid` lives in. Explained as
/// `ip netns add NAME` (a new netns by that name), which is what a replay on another host needs:
/// the pid means nothing there.
pub fn attach(ex: &Explain, name: &str, pid: Pid) -> Result<PathBuf> {
    ex.say(|| {
        format!(
            "ip netns add {name}  # minibox names the container's own: ip netns attach {name} {pid}"
        )
    });
    prepare_dir()?;
    let target = path(name);
    // A stale file from a crash is replaced (a mount left on it goes first).
    let _ = umount2(&target, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(&target);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|source| Error::Io {
            what: format!("creating {}", target.display()),
            source,
        })?;
    let source = format!("/proc/{pid}/ns/net");
    let bound = mount(
        Some(source.as_str()),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if let Err(e) = bound {
        let _ = fs::remove_file(&target);
        return Err(Error::Sys {
            what: format!("bind-mounting {source} on {}", target.display()),
            source: e,
        });
    }
    Ok(target)
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
        Err(source) => {
            return Err(Error::Sys {
                what: format!("unmounting {}", target.display()),
                source,
            })
        }
    }
    match fs::remove_file(&target) {
        Err(source) if source.kind() != ErrorKind::NotFound => Err(Error::Io {
            what: format!("removing {}", target.display()),
            source,
        }),
        _ => Ok(()),
    }
}

/// Like iproute2: /run/netns is a shared mount of itself, so that the names made later show up
/// (and go away) in every mount namespace that shares it.
fn prepare_dir() -> Result<()> {
    let dir = Path::new(NETNS_DIR);
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: format!("creating {NETNS_DIR}"),
        source,
    })?;
    // Not recursive once it is a mount point: the names below it are made while it is shared,
    // and walking every container's mount on each run would cost more the more there are.
    let shared = mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    );
    if shared.is_err() {
        // Not a mount point yet: make it one, then shared.
        let rec = MsFlags::MS_BIND | MsFlags::MS_REC;
        mount(Some(dir), dir, None::<&str>, rec, None::<&str>)
            .and_then(|_| {
                let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
                mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)
            })
            .map_err(|source| Error::Sys {
                what: format!("making {NETNS_DIR} a shared mount"),
                source,
            })?;
    }
    Ok(())
}
