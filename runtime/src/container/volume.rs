//! Volumes: directories minibox keeps apart from any container, under `<root>/volumes/<name>/`
//! (`_data`, mounted into containers, and `volume.json`), as Docker's `local` driver lays them
//! out. A volume is in use while a container's config names it; `rm` and `prune` check that
//! under the volumes' lock, which `run` takes to make its volumes, so neither removes a volume a
//! container just started to use.

use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::state;
use crate::paths::Paths;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid volume name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]* (or an absolute host path to bind)")]
    BadName(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("volume {name} is in use by container {container:.12}: remove that container first")]
    InUse { name: String, container: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// What `volume.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Made for an image's VOLUME or a `-v /path` without a name: removed with its container
    /// by `rm -v` and `run --rm`.
    pub anonymous: bool,
}

/// Where volumes live.
pub fn dir(paths: &Paths) -> PathBuf {
    paths.root.join("volumes")
}

/// Where a volume's content lives (what is mounted into containers).
pub fn data(paths: &Paths, name: &str) -> PathBuf {
    dir(paths).join(name).join("_data")
}

/// Checks a volume name as Docker does (a name never contains '/', so it is not a host path).
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// A new anonymous volume's name: 64 hex digits, as Docker's.
pub fn anonymous_name() -> Result<String> {
    state::new_id().map_err(|e| Error::Io {
        what: "generating a volume name",
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The volumes' lock, held while volumes are made or removed.
pub fn lock(paths: &Paths) -> Result<Flock<File>> {
    let d = dir(paths);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .map_err(io("creating", &d))?;
    let path = d.join("lock");
    let file = File::create(&path).map_err(io("creating", &path))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::Io {
        what: "locking",
        path,
        source: e.into(),
    })
}

/// Makes the volume unless it exists (call with [`lock`] held). Returns it, and whether it was
/// made now.
pub fn create(paths: &Paths, name: &str, anonymous: bool) -> Result<(Volume, bool)> {
    check_name(name)?;
    if let Ok(v) = get(paths, name) {
        return Ok((v, false));
    }
    let top = dir(paths).join(name);
    let tmp = dir(paths).join(format!(".{name}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    // Made aside and renamed into place: a crash leaves no half-made volume under its name.
    fs::DirBuilder::new()
        .mode(0o701)
        .create(&tmp)
        .map_err(io("creating", &tmp))?;
    let data = tmp.join("_data");
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&data)
        .map_err(io("creating", &data))?;
    let volume = Volume {
        name: name.to_string(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        anonymous,
    };
    let meta = tmp.join("volume.json");
    let json = serde_json::to_vec_pretty(&volume).expect("a volume serialises");
    fs::write(&meta, json).map_err(io("writing", &meta))?;
    fs::rename(&tmp, &top).map_err(io("creating", &top))?;
    Ok((volume, true))
}

pub fn get(paths: &Paths, name: &str) -> Result<Volume> {
    check_name(name)?;
    let path = dir(paths).join(name).join("volume.json");
    let text = fs::read(&path).map_err(|_| Error::NoSuchVolume(name.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| Error::Io {
        what: "parsing",
        path,
        source: e.into(),
    })
}

/// Every volume, by name.
pub fn list(paths: &Paths) -> Vec<Volume> {
    let mut all: Vec<Volume> = fs::read_dir(dir(paths))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| get(paths, &e.file_name().to_string_lossy()).ok())
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The containers (ids) whose config names the volume.
pub fn users(paths: &Paths, name: &str) -> Vec<String> {
    state::ids(paths)
        .into_iter()
        .filter(|id| {
            state::load_config(paths, id).is_ok_and(|c| c.volumes.iter().any(|v| v == name))
        })
        .collect()
}

/// Removes the volume (call with [`lock`] held), refused while a container uses it unless
/// `force` (Docker's `volume rm -f` also refuses a volume in use: only a missing one is fine).
pub fn remove(paths: &Paths, name: &str) -> Result<()> {
    get(paths, name)?;
    if let Some(container) = users(paths, name).into_iter().next() {
        return Err(Error::InUse {
            name: name.to_string(),
            container,
        });
    }
    let top = dir(paths).join(name);
    // Renamed away first: a crash in the middle leaves no half-removed volume under its name.
    let gone = dir(paths).join(format!(".{name}.tmp"));
    fs::rename(&top, &gone).map_err(io("removing", &top))?;
    fs::remove_dir_all(&gone).map_err(io("removing", &gone))
}

/// Docker's copy-up: what the image holds at `path` (a directory, resolved inside the image, its
/// symlinks included) is copied into the new volume's `data`, with owners and modes, the
/// directory's own too. The image's layers are mounted read-only in a mount namespace of a
/// forked process's own, gone with it, so nothing stays mounted whatever happens.
pub fn copy_up(paths: &Paths, layers: &[&Path], path: &str, data: &Path) -> Result<(), String> {
    let mnt = dir(paths).join(".image");
    let empty = dir(paths).join(".empty");
    for d in [&mnt, &empty] {
        fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("creating a pipe: {e}"))?;
    // SAFETY: minibox is single-threaded here; the child only makes system calls, copies and
    // leaves with _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("forking: {e}"))? {
        nix::unistd::ForkResult::Child => {
            drop(read);
            let code = match copy_up_here(layers, &empty, &mnt, path, data) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = nix::unistd::write(&write, e.as_bytes());
                    1
                }
            };
            // SAFETY: leaving the forked process without the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write);
            let mut why = String::new();
            let _ = std::io::Read::read_to_string(&mut File::from(read), &mut why);
            let status = nix::sys::wait::waitpid(child, None);
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !why.is_empty() => Err(why),
                other => Err(format!("the copying process ended as {other:?}")),
            }
        }
    }
}

/// The forked side of [`copy_up`].
fn copy_up_here(
    layers: &[&Path],
    empty: &Path,
    mnt: &Path,
    path: &str,
    data: &Path,
) -> Result<(), String> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use nix::mount::{mount, MsFlags};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("creating a mount namespace: {e}"))?;
    super::mounts::make_private().map_err(|e| e.to_string())?;
    // Read-only overlay needs two lower dirs at least: an empty one at the bottom.
    let lower: Vec<String> = layers
        .iter()
        .copied()
        .chain([empty])
        .map(|p| p.display().to_string())
        .collect();
    let options = format!("lowerdir={}", lower.join(":"));
    mount(
        Some("overlay"),
        mnt,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting the image: {e}"))?;
    let root = File::open(mnt).map_err(|e| format!("opening the image: {e}"))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let Ok(source) = openat2(&root, path.trim_start_matches('/'), how) else {
        return Ok(()); // The image has no directory there: nothing to copy.
    };
    let source_path = PathBuf::from(format!("/proc/self/fd/{}", source.as_raw_fd()));
    minibox_images::apply_layer(&source_path, data).map_err(|e| e.to_string())?;
    let meta = fs::metadata(&source_path).map_err(|e| e.to_string())?;
    nix::unistd::chown(data, Some(meta.uid().into()), Some(meta.gid().into()))
        .map_err(|e| format!("chown {}: {e}", data.display()))?;
    fs::set_permissions(data, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| format!("chmod {}: {e}", data.display()))
}

/// Removes the anonymous ones among `names` (the volumes of a container that is gone), each
/// failure only logged: `run --rm`, `rm -v` and a container that never started.
pub fn remove_anonymous(paths: &Paths, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let _lock = match lock(paths) {
        Ok(l) => l,
        Err(e) => return tracing::warn!("{e}"),
    };
    for name in names {
        if get(paths, name).is_ok_and(|v| v.anonymous) {
            if let Err(e) = remove(paths, name) {
                tracing::warn!("removing volume {name}: {e}");
            }
        }
    }
}
