//! `cp` between the host and a container's filesystem, safe against what the container plants:
//! every path inside it is resolved by the kernel *within* the container's root (openat2
//! RESOLVE_IN_ROOT: `..` and absolute symlinks stop at its root, magic links refused), and below
//! that everything is done relative to directory descriptors with O_NOFOLLOW, so a symlink
//! swapped in while the copy runs (CVE-2018-15664) can only send it elsewhere inside the
//! container, never onto the host. Nothing of the container is ever executed or loaded
//! (CVE-2019-14271 was `docker cp` loading the container's libnss).

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: Errno,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn sys(what: impl std::fmt::Display) -> impl FnOnce(Errno) -> Error {
    let what = what.to_string();
    move |source| Error::Sys { what, source }
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Error {
    let what = what.to_string();
    move |source| Error::Io { what, source }
}

/// Opens `path` inside the root `root` (a directory descriptor), every symlink resolved within
/// it. `follow`: whether a symlink as the last component is followed.
fn open_in(root: &OwnedFd, path: &Path, flags: OFlag, follow: bool) -> Result<OwnedFd> {
    let resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let mut flags = flags | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let rel = relative(path);
    let how = OpenHow::new().flags(flags).resolve(resolve);
    openat2(root, rel.as_path(), how).map_err(sys(format!("{} in the container", path.display())))
}

/// `path` without its leading `/` (`.` for the root itself).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The parent directory (resolved in the root) and the last name of `path`.
fn parent_in(root: &OwnedFd, path: &Path) -> Result<(OwnedFd, OsString)> {
    let name = path
        .file_name()
        .map(OsStr::to_os_string)
        .ok_or_else(|| Error::Invalid(format!("{}: no file name", path.display())))?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = open_in(root, parent, OFlag::O_PATH | OFlag::O_DIRECTORY, true)?;
    Ok((dir, name))
}

fn cstr(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).unwrap_or_default()
}

fn stat_at(dir: &OwnedFd, name: &OsStr) -> Result<FileStat, Errno> {
    fstatat(dir, cstr(name).as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Copies `src` (a path in the container) to `dest` on the host, as `docker cp` does: into
/// `dest` when it is a directory, else as `dest`; a symlink is copied as a symlink. A source
/// ending in `/.` copies the directory's content.
pub fn copy_out(root: &OwnedFd, src: &str, dest: &Path) -> Result<()> {
    let contents = src.ends_with("/.");
    let path = Path::new(src);
    let (dir, name) = if contents || path.file_name().is_none() {
        (
            open_in(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY, true)?,
            OsString::from("."),
        )
    } else {
        parent_in(root, path)?
    };
    let st = stat_at(&dir, &name).map_err(sys(format!("{src} in the container")))?;
    let target = match fs::metadata(dest) {
        Ok(m) if m.is_dir() && !contents => dest.join(if name == "." {
            OsStr::new("root")
        } else {
            name.as_os_str()
        }),
        Ok(m) if !m.is_dir() && kind(&st) == SFlag::S_IFDIR => {
            return Err(Error::Invalid(format!(
                "cannot copy the directory {src} onto the file {}",
                dest.display()
            )))
        }
        _ => dest.to_path_buf(),
    };
    out_entry(&dir, &name, &st, &target)
}

fn out_entry(dir: &OwnedFd, name: &OsStr, st: &FileStat, to: &Path) -> Result<()> {
    let mode = st.st_mode & 0o7777;
    match kind(st) {
        SFlag::S_IFDIR => {
            let fd = openat(
                dir,
                cstr(name).as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(sys(format!("opening {}", name.to_string_lossy())))?;
            match fs::symlink_metadata(to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(to).map_err(io_err(format!("replacing {}", to.display())))?
                }
                Err(_) => {
                    fs::create_dir(to).map_err(io_err(format!("creating {}", to.display())))?
                }
            }
            for entry in entries(&fd)? {
                let Ok(child) = stat_at(&fd, &entry) else {
                    continue; // Gone since it was listed.
                };
                out_entry(&fd, &entry, &child, &to.join(&entry))?;
            }
            fs::set_permissions(to, fs::Permissions::from_mode(mode))
                .map_err(io_err(format!("chmod {}", to.display())))
        }
        SFlag::S_IFREG => {
            let fd = openat(
                dir,
                cstr(name).as_c_str(),
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
                Mode::empty(),
            )
            .map_err(sys(format!("opening {}", name.to_string_lossy())))?;
            let mut from = File::from(fd);
            // A regular file still (it may have been swapped for a fifo since the stat).
            let meta = from.metadata().map_err(io_err("reading the source"))?;
            if !meta.is_file() {
                return Err(Error::Invalid(format!(
                    "{} changed while being copied",
                    name.to_string_lossy()
                )));
            }
            let _ = fs::remove_file(to);
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(to)
                .map_err(io_err(format!("creating {}", to.display())))?;
            io::copy(&mut from, &mut out).map_err(io_err(format!("writing {}", to.display())))?;
            fs::set_permissions(to, fs::Permissions::from_mode(mode))
                .map_err(io_err(format!("chmod {}", to.display())))
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(dir, cstr(name).as_c_str())
                .map_err(sys(format!("reading the link {}", name.to_string_lossy())))?;
            let _ = fs::remove_file(to);
            symlink(&target, to).map_err(io_err(format!("creating {}", to.display())))
        }
        // Devices, fifos and sockets are not copied, as with `docker cp`.
        _ => Ok(()),
    }
}

/// The names in a directory (its descriptor), `.` and `..` left out.
fn entries(dir: &OwnedFd) -> Result<Vec<OsString>> {
    let dup = dir
        .try_clone()
        .map_err(io_err("duplicating a descriptor"))?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(sys("reading a directory"))?;
    Ok(d.iter()
        .flatten()
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect())
}

/// Copies `src` on the host into the container at `dest`: into `dest` when it is a directory
/// there, else as `dest` (whose parent must exist). What is written replaces what was there,
/// symlinks included (the link itself, never what it points to).
pub fn copy_in(root: &OwnedFd, src: &Path, dest: &str) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(io_err(src.display()))?;
    let contents = src.as_os_str().as_bytes().ends_with(b"/.");
    let path = Path::new(dest);
    let into = open_in(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY, true);
    let (dir, name) = match into {
        Ok(dir) if contents => return in_dir_contents(src, &dir),
        Ok(dir) => {
            let name = src
                .file_name()
                .map(OsStr::to_os_string)
                .ok_or_else(|| Error::Invalid(format!("{}: no file name", src.display())))?;
            (dir, name)
        }
        Err(_) if dest.ends_with('/') => {
            return Err(Error::Invalid(format!(
                "{dest} is not a directory in the container"
            )))
        }
        Err(_) => parent_in(root, path)?,
    };
    if contents {
        mkdir_at(&dir, &name, 0o755)?;
        let sub = open_dir_at(&dir, &name)?;
        return in_dir_contents(src, &sub);
    }
    in_entry(src, &meta, &dir, &name)
}

fn in_dir_contents(src: &Path, dir: &OwnedFd) -> Result<()> {
    for entry in fs::read_dir(src).map_err(io_err(src.display()))? {
        let entry = entry.map_err(io_err(src.display()))?;
        let meta = entry.metadata().map_err(io_err(entry.path().display()))?;
        in_entry(&entry.path(), &meta, dir, &entry.file_name())?;
    }
    Ok(())
}

/// Opens a directory named `name` in `dir`, refusing a symlink.
fn open_dir_at(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd> {
    openat(
        dir,
        cstr(name).as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(format!(
        "opening {} in the container",
        name.to_string_lossy()
    )))
}

/// Makes a directory `name` in `dir` unless one is there (anything else there is replaced).
fn mkdir_at(dir: &OwnedFd, name: &OsStr, mode: u32) -> Result<()> {
    let c = cstr(name);
    match stat_at(dir, name) {
        Ok(st) if kind(&st) == SFlag::S_IFDIR => return Ok(()),
        Ok(_) => remove_at(dir, name)?,
        Err(_) => {}
    }
    mkdirat(dir, c.as_c_str(), Mode::from_bits_truncate(mode)).map_err(sys(format!(
        "creating {} in the container",
        name.to_string_lossy()
    )))
}

fn remove_at(dir: &OwnedFd, name: &OsStr) -> Result<()> {
    unlinkat(dir, cstr(name).as_c_str(), UnlinkatFlags::NoRemoveDir).map_err(sys(format!(
        "replacing {} in the container",
        name.to_string_lossy()
    )))
}

fn in_entry(src: &Path, meta: &fs::Metadata, dir: &OwnedFd, name: &OsStr) -> Result<()> {
    let mode = meta.mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_dir() {
        mkdir_at(dir, name, 0o700)?;
        let sub = open_dir_at(dir, name)?;
        in_dir_contents(src, &sub)?;
        return fchmod(sub.as_fd(), Mode::from_bits_truncate(mode))
            .map_err(sys(format!("chmod {}", name.to_string_lossy())));
    }
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err(src.display()))?;
        if stat_at(dir, name).is_ok() {
            remove_at(dir, name)?;
        }
        return symlinkat(target.as_path(), dir, cstr(name).as_c_str()).map_err(sys(format!(
            "creating {} in the container",
            name.to_string_lossy()
        )));
    }
    if !ft.is_file() {
        return Ok(()); // Devices, fifos, sockets: not copied.
    }
    let mut from = File::open(src).map_err(io_err(src.display()))?;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let c = cstr(name);
    // What is there (a file, or a symlink planted to redirect the write) is replaced, never
    // written through.
    if let Ok(st) = stat_at(dir, name) {
        if kind(&st) == SFlag::S_IFDIR {
            return Err(Error::Invalid(format!(
                "cannot overwrite the directory {} with a file",
                name.to_string_lossy()
            )));
        }
        remove_at(dir, name)?;
    }
    let fd = openat(dir, c.as_c_str(), flags, Mode::from_bits_truncate(0o600)).map_err(sys(
        format!("creating {} in the container", name.to_string_lossy()),
    ))?;
    let mut out = File::from(fd);
    io::copy(&mut from, &mut out).map_err(io_err(format!("writing {}", name.to_string_lossy())))?;
    fchmod(out.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(sys(format!("chmod {}", name.to_string_lossy())))
}

/// A directory descriptor for a path (the container's root as its PID 1 sees it, or a mounted
/// root filesystem).
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    let file = File::open(path).map_err(io_err(path.display()))?;
    Ok(OwnedFd::from(file))
}
