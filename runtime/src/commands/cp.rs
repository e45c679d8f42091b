//! `minibox cp CONTAINER:SRC DEST` and `minibox cp SRC CONTAINER:DEST`: through the running
//! container's own root (`/proc/PID/root`, its volumes included), or a stopped container's root
//! filesystem mounted in this process's own mount namespace (gone when it exits). The copy
//! itself is `container::copy`'s, safe against the container's symlinks.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::container::{copy, image, lifecycle, state};
use crate::paths::Paths;

pub fn cp(paths: &Paths, explain: bool, source: &str, destination: &str) -> Result<u8> {
    match (split(source), split(destination)) {
        (Some((c, path)), None) => {
            in_root(paths, explain, c, |root| copy::copy_out(root, &path, Path::new(destination)))
        }
        (None, Some((c, path))) => {
            in_root(paths, explain, c, |root| copy::copy_in(root, Path::new(source), &path))
        }
        _ => bail!(
            "invalid cp {source} {destination}: name one container path, CONTAINER:PATH, and one host path"
        ),
    }
    .with_context(|| format!("copying {source} to {destination}"))?;
    Ok(0)
}

/// `CONTAINER:PATH` as (container, absolute path); a host path (absolute or starting with `.`)
/// gives none, as in Docker.
fn split(arg: &str) -> Option<(&str, String)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (container, path) = arg.split_once(':')?;
    Some((container, format!("/{}", path.trim_start_matches('/'))))
}

/// Runs `f` on a descriptor of the container's root.
fn in_root(
    paths: &Paths,
    explain: bool,
    what: &str,
    f: impl FnOnce(&std::os::fd::OwnedFd) -> Result<(), copy::Error>,
) -> Result<()> {
    let id = super::resolve(paths, explain, what)?;
    let st = state::load_state(paths, &id)?;
    if lifecycle::running(&st) {
        let root = copy::open_root(Path::new(&format!("/proc/{}/root", st.pid)))?;
        // Still its PID 1 once opened: a pid reused since would be a stranger's root.
        if !lifecycle::running(&state::load_state(paths, &id)?) {
            bail!("container {what} stopped while cp started: try again");
        }
        return Ok(f(&root)?);
    }
    // Stopped: its lock keeps a `start` away while its root filesystem is mounted here.
    let Some(_lock) = state::try_lock(paths, &id)? else {
        bail!("container {what} is starting or stopping: try again");
    };
    let config = state::load_config(paths, &id)?;
    let found = image::find(paths, &config.image)?;
    let dir = state::dir(paths, &id);
    // As the container mounts it: a volatile layer may not be mounted otherwise.
    let rootfs = image::prepare(&found, &dir, config.rm)?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("creating a mount namespace")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making the mounts private")?;
    // A container never started (`create`, then `cp` before `start`) has no mount point yet.
    let target = dir.join("rootfs");
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    rootfs.mount(&target).map_err(anyhow::Error::msg)?;
    let root = copy::open_root(&target)?;
    Ok(f(&root)?)
}
