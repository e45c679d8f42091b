//! Container root filesystems: an overlay of the image's layers with a per-container upper and
//! work dir, or, where the store's filesystem refuses overlay, a private copy of the layers.
//!
//! Everything lives under `<container_dir>/fs/`: `upper/`, `work/`, `l/<n>` (short symlinks to
//! the layer dirs, so that the overlay's options stay short for many layers; a short list of
//! layers is given as it is) or `copy/`.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, fchdir};
use rustix::fs::{statx, AtFlags, FileType, OFlags, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use crate::error::IoContext;
use crate::store::write_atomic;
use crate::{Error, Image};

/// The cached answer of the overlay probe, in the store: `overlay` or `copy`.
/// Writing `copy` there forces the copy fallback.
pub const DRIVER_FILE: &str = "rootfs-driver";

/// A prepared root filesystem, ready to be mounted in the container's mount namespace.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// `<container_dir>/fs`, absolute.
    dir: CString,
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    /// The lower dirs (`l/N:...`, relative to `dir`), top first; with `volatile` (see
    /// [`Rootfs::volatile`]).
    Overlay { lower: String, volatile: bool },
    /// A bind mount of this directory.
    Copy { source: CString },
}

impl Rootfs {
    /// Whether this root filesystem is an overlay (else a private copy).
    pub fn is_overlay(&self) -> bool {
        matches!(self.how, How::Overlay { .. })
    }

    /// Mounts the overlay with its `volatile` option: its upper filesystem is never synced, not
    /// even when the container's mount namespace dies with it, which made most of a short
    /// container's exit. For a writable layer that nothing keeps after a crash: a `--rm`
    /// container's. The kernel marks such an upper and refuses to mount it again: a mark made
    /// since this boot (a start that failed after its mount) is cleared, as unsynced data is
    /// lost only by a crash; one from before the boot is an error (the layer may be torn).
    pub fn volatile(mut self) -> Result<Self, Error> {
        let How::Overlay { volatile, .. } = &mut self.how else {
            return Ok(self);
        };
        let fs = Path::new(std::ffi::OsStr::from_bytes(self.dir.as_bytes()));
        let mark = fs.join("work/work/incompat");
        if let Ok(meta) = fs::symlink_metadata(&mark) {
            use std::os::unix::fs::MetadataExt;
            if boot_time().is_some_and(|boot| meta.ctime() < boot) {
                return Err(Error::invalid(format!(
                    "{}: the writable layer was mounted volatile (--rm) before the host went \
                     down, and may have lost writes: remove the container",
                    fs.display()
                )));
            }
            fs::remove_dir_all(&mark).at(&mark)?;
        }
        *volatile = true;
        Ok(self)
    }

    /// Mounts the root filesystem on `target` (an absolute path), in this mount namespace.
    pub fn mount(&self, target: &Path) -> Result<(), Error> {
        self.open()?.mount(target)
    }

    /// Makes the root filesystem as a detached mount, while the store is in view: it can then
    /// be mounted in a mount namespace that does not hold the store ([`Source::mount`]).
    pub fn open(&self) -> Result<Source, Error> {
        let dir = Path::new(std::ffi::OsStr::from_bytes(self.dir.as_bytes()));
        let tree = match &self.how {
            How::Overlay { lower, volatile } => {
                // The lower dirs are relative to `dir`: work from there for the calls.
                let cwd = open(
                    ".",
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .at(dir)?;
                chdir(dir).at(dir)?;
                let made = match overlay(lower, *volatile) {
                    // A kernel older than `volatile` (5.10) refuses it.
                    Err(Errno::INVAL) if *volatile => overlay(lower, false),
                    made => made,
                };
                let back = fchdir(&cwd);
                let tree = made.with(|| format!("mounting the overlay of {}", dir.display()))?;
                back.at(dir)?;
                tree
            }
            How::Copy { source } => {
                let flags = OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE;
                open_tree(CWD, source.as_c_str(), flags).at(dir)?
            }
        };
        Ok(Source(tree))
    }
}

/// The layers' own absolute paths as overlay's lower dirs (top layer first), when they fit in
/// one option and hold none of the characters overlay would read as separators or escapes: no
/// links to make (each a new inode, which a filesystem without a journal is slow to find once
/// many were deleted recently).
fn direct_lower(layers: &[std::path::PathBuf]) -> Option<String> {
    let mut paths = Vec::new();
    for layer in layers.iter().rev() {
        let path = layer
            .to_str()
            .filter(|p| layer.is_absolute() && !p.contains([':', ',', '\\']))?;
        paths.push(path);
    }
    let lower = paths.join(":");
    (!lower.is_empty() && lower.len() <= 256).then_some(lower)
}

/// The overlay as a detached mount, its dirs relative to the working directory. An option's
/// value may be at most 256 bytes: more layers than fit (about 50) are given one by one, as
/// kernels from 6.8 take them.
fn overlay(lower: &str, volatile: bool) -> rustix::io::Result<OwnedFd> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", "overlay")?;
    match lower.len() {
        0..=256 => fsconfig_set_string(&fs, "lowerdir", lower)?,
        _ => {
            for layer in lower.split(':') {
                fsconfig_set_string(&fs, "lowerdir+", layer)?;
            }
        }
    }
    fsconfig_set_string(&fs, "upperdir", "upper")?;
    fsconfig_set_string(&fs, "workdir", "work")?;
    if volatile {
        fsconfig_set_flag(&fs, "volatile")?;
    }
    fsconfig_create(&fs)?;
    fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
}

/// A root filesystem made by [`Rootfs::open`]: a detached mount.
#[derive(Debug)]
pub struct Source(OwnedFd);

impl Source {
    /// Mounts the root filesystem on `target` (an absolute path), in this mount namespace.
    pub fn mount(&self, target: &Path) -> Result<(), Error> {
        let what = || {
            format!(
                "mounting the container's root filesystem on {}",
                target.display()
            )
        };
        move_mount(
            &self.0,
            c"",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .with(what)?;
        // A copy's clone stays a peer of the store's mount when that is shared: private, so
        // that nothing mounted in the container shows on the host.
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        mount(None::<&str>, target, None::<&str>, private, None::<&str>).with(what)
    }
}

/// Creates the container's upper/work dirs (or its copy of the layers) under `container_dir`.
/// Calling it again for the same container keeps what the container wrote.
pub fn prepare(image: &Image, container_dir: &Path) -> Result<Rootfs, Error> {
    fs::create_dir_all(container_dir).at(container_dir)?;
    let container_dir = fs::canonicalize(container_dir).at(container_dir)?;
    let dir = container_dir.join("fs");
    fs::create_dir_all(&dir).at(&dir)?;
    let dir_c = cpath(&dir)?;
    if overlay_supported(image, &dir)? {
        for d in ["upper", "work"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).at(&p)?;
        }
        if let Some(lower) = direct_lower(&image.layers) {
            return Ok(Rootfs {
                dir: dir_c,
                how: How::Overlay {
                    lower,
                    volatile: false,
                },
            });
        }
        let links = dir.join("l");
        if links.exists() {
            fs::remove_dir_all(&links).at(&links)?;
        }
        fs::create_dir(&links).at(&links)?;
        let mut lower = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let link = links.join(i.to_string());
            symlink(layer, &link).at(&link)?;
            lower.push(format!("l/{i}"));
        }
        if lower.is_empty() {
            // An image without layers: overlay still needs one lower dir.
            let empty = links.join("empty");
            fs::create_dir(&empty).at(&empty)?;
            lower.push("l/empty".into());
        }
        lower.reverse(); // overlay lists the top layer first
        let lower = lower.join(":");
        Ok(Rootfs {
            dir: dir_c,
            how: How::Overlay {
                lower,
                volatile: false,
            },
        })
    } else {
        let copy = dir.join("copy");
        if !copy.exists() {
            let tmp = dir.join("copy.tmp");
            if tmp.exists() {
                fs::remove_dir_all(&tmp).at(&tmp)?;
            }
            fs::create_dir(&tmp).at(&tmp)?;
            for layer in &image.layers {
                crate::copy::apply_layer(layer, &tmp)?;
            }
            fs::rename(&tmp, &copy).at(&copy)?;
        }
        Ok(Rootfs {
            dir: dir_c,
            how: How::Copy {
                source: cpath(&copy)?,
            },
        })
    }
}

/// The container's writable layer, overlay's upper directory, once [`prepare`] made one (the
/// copy fallback has none: its changes are mixed into its copy).
pub fn upper(container_dir: &Path) -> Option<PathBuf> {
    let upper = container_dir.join("fs").join("upper");
    upper.is_dir().then_some(upper)
}

/// Unmounts anything still mounted at or under `container_dir` (in this mount namespace) and
/// removes what [`prepare`] made. Idempotent. Nothing is removed while a mount stays there.
pub fn remove(container_dir: &Path) -> Result<(), Error> {
    let Ok(container_dir) = fs::canonicalize(container_dir) else {
        return Ok(());
    };
    unmount_under(&container_dir)?;
    let dir = container_dir.join("fs");
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::path(&dir, e)),
        _ => Ok(()),
    }
}

/// When this boot began, in seconds since the epoch (`btime` of /proc/stat).
fn boot_time() -> Option<i64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find_map(|l| l.strip_prefix("btime "))?;
    line.trim().parse().ok()
}

/// Detaches every mount at or under `dir`. They are found by walking its directories and
/// comparing each one's mount with the mount `dir` sits on, never from /proc/self/mountinfo,
/// whose size (and the time to make and read it) grows with every container running.
fn unmount_under(dir: &Path) -> Result<(), Error> {
    let base = mount_of(dir.parent().unwrap_or(Path::new("/"))).at(dir)?;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        // Mounts stacked on one directory come off one by one.
        let mut stacked = 0;
        while mount_of(&d).at(&d)? != base {
            stacked += 1;
            let done = umount2(&d, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
            if done.is_err() || stacked > 64 {
                return Err(Error::invalid(format!(
                    "{}: still mounted ({}), not removing {}: unmount it first",
                    d.display(),
                    done.err()
                        .map_or("stacked too deep".into(), |e| e.to_string()),
                    dir.display()
                )));
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(&d, flags, rustix::fs::Mode::empty()) {
            Ok(fd) => fd,
            // Not a directory (a d_type the filesystem did not tell), or gone.
            Err(Errno::NOTDIR | Errno::LOOP | Errno::NOENT) => continue,
            Err(e) => return Err(e).at(&d),
        };
        for entry in rustix::fs::Dir::read_from(&fd).at(&d)? {
            let entry = entry.at(&d)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                if let FileType::Directory | FileType::Unknown = entry.file_type() {
                    todo.push(d.join(std::ffi::OsStr::from_bytes(name)));
                }
            }
        }
    }
    Ok(())
}

/// The id of the mount `path` is on (its device on kernels before 5.8, which give none).
fn mount_of(path: &Path) -> io::Result<u64> {
    let st = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID)?;
    Ok(
        match StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::MNT_ID) {
            true => st.stx_mnt_id,
            false => u64::from(st.stx_dev_major) << 32 | u64::from(st.stx_dev_minor),
        },
    )
}

fn cpath(p: &Path) -> Result<CString, Error> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::invalid(format!("{}: NUL in path", p.display())))
}

/// Whether overlay works with this store's layers and this container dir's filesystem. Probed
/// once with a real mount; the answer is cached in the store.
fn overlay_supported(image: &Image, dir: &Path) -> Result<bool, Error> {
    let cache = image.store.join(DRIVER_FILE);
    if let Ok(answer) = fs::read_to_string(&cache) {
        return Ok(answer.trim() == "overlay");
    }
    let probe = dir.join("probe");
    let _ = fs::remove_dir_all(&probe);
    for d in ["lower", "upper", "work", "merged"] {
        let p = probe.join(d);
        fs::create_dir_all(&p).at(&p)?;
    }
    let lower = image
        .layers
        .first()
        .cloned()
        .unwrap_or_else(|| probe.join("lower"));
    let data = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        probe.join("lower").display(),
        lower.display(),
        probe.join("upper").display(),
        probe.join("work").display()
    );
    let merged = probe.join("merged");
    let res = mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    );
    let ok = res.is_ok();
    if ok {
        let _ = umount2(&merged, MntFlags::MNT_DETACH);
    } else {
        tracing::info!(
            "overlay refused ({:?}): container root filesystems will be copies",
            res
        );
    }
    let _ = fs::remove_dir_all(&probe);
    // Only a cache: a failed write means probing again next time.
    let _ = write_atomic(&cache, if ok { b"overlay\n" } else { b"copy\n" });
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::direct_lower;
    use std::path::PathBuf;

    /// A short list of absolute layer paths is overlay's lower dirs as it is, top layer first;
    /// anything overlay could misread, or too long for one option, goes through links.
    #[test]
    fn short_layer_lists_are_given_as_they_are() {
        let p = |s: &str| PathBuf::from(s);
        let two = [p("/var/lib/minibox/a/diff"), p("/var/lib/minibox/b/diff")];
        assert_eq!(
            direct_lower(&two).as_deref(),
            Some("/var/lib/minibox/b/diff:/var/lib/minibox/a/diff")
        );
        assert_eq!(direct_lower(&[]), None);
        assert_eq!(direct_lower(&[p("relative/diff")]), None);
        for odd in ["/a:b/diff", "/a,b/diff", "/a\\b/diff"] {
            assert_eq!(direct_lower(&[p(odd)]), None, "{odd}");
        }
        let long = p(&format!("/{}", "x".repeat(200)));
        assert!(direct_lower(std::slice::from_ref(&long)).is_some());
        assert_eq!(direct_lower(&[long.clone(), long]), None);
    }
}
