//! Safe application of a layer tarball to a directory.
//!
//! Every entry is created relative to a directory fd opened with `openat2(RESOLVE_BENEATH)`, so
//! no path, parent symlink or hardlink target can reach outside the layer; the final component is
//! never followed. Whiteouts are stored in overlayfs' own form (a 0:0 character device, and the
//! `trusted.overlay.opaque` xattr for `.wh..wh..opq`), so the unpacked layer can be an overlay
//! lower directory as it is, and [`crate::rootfs`]'s copy fallback applies them the same way.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::store::stream_error;
use crate::Error;

pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What applying a layer found.
#[derive(Debug, Default)]
pub struct Applied {
    /// Bytes of regular-file content (what `images` reports as SIZE).
    pub size: u64,
    /// Where the last entry's data ended in the tar stream, to detect a missing end marker.
    pub end: u64,
}

/// Unpacks the tar stream `reader` into the existing, empty directory `root`.
/// `what` names the layer in error messages.
pub fn apply(reader: &mut dyn Read, root: &Path, what: &str) -> Result<Applied, Error> {
    let root_fd = openat(
        nix::fcntl::AT_FDCWD,
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::path(root, e.into()))?;
    let mut ctx = Ctx {
        root,
        root_fd,
        parent: None,
        dirs: Vec::new(),
        buf: vec![0; 256 * 1024],
        applied: Applied::default(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| Error::invalid(format!("{what}: not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(what, e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        ctx.entry(&mut entry).map_err(|e| match e {
            Error::Io { what: w, source } => Error::Io {
                what: format!("{what}: {name}: {w}"),
                source,
            },
            Error::Invalid(m) => Error::Invalid(format!("{what}: {name}: {m}")),
            other => other,
        })?;
        let end = entry.raw_file_position() + entry.size();
        ctx.applied.end = end.div_ceil(512) * 512;
    }
    ctx.parent = None;
    // Directory times last: creating children changes them. Deepest first.
    for (path, time) in ctx.dirs.iter().rev() {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = if path.as_os_str().is_empty() {
            ctx.root_fd.try_clone().map_err(|e| Error::path(root, e))?
        } else {
            match openat2(&ctx.root_fd, path, how) {
                Ok(fd) => fd,
                Err(_) => continue, // replaced by a later entry
            }
        };
        futimens(&fd, time, time).map_err(|e| Error::path(&root.join(path), e.into()))?;
    }
    Ok(ctx.applied)
}

struct Ctx<'a> {
    root: &'a Path,
    root_fd: OwnedFd,
    /// The last parent directory opened, reused for its siblings.
    parent: Option<(PathBuf, Rc<OwnedFd>)>,
    dirs: Vec<(PathBuf, TimeSpec)>,
    buf: Vec<u8>,
    applied: Applied,
}

/// The entry's path as components, refusing absolute paths and `..`.
fn components(raw: &[u8], entry: &str) -> Result<Vec<Vec<u8>>, Error> {
    if raw.starts_with(b"/") {
        return Err(unsafe_entry(entry, "absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry(entry, "path contains `..`")),
            _ => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn unsafe_entry(entry: &str, why: &str) -> Error {
    Error::Unsafe {
        entry: entry.to_string(),
        why: why.to_string(),
    }
}

fn cstr(bytes: &[u8]) -> Result<CString, Error> {
    CString::new(bytes).map_err(|_| Error::invalid("NUL byte in a name"))
}

fn join(comps: &[Vec<u8>]) -> PathBuf {
    let mut p = PathBuf::new();
    for c in comps {
        p.push(OsStr::from_bytes(c));
    }
    p
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl<'a> Ctx<'a> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), Error> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let comps = components(&raw, &name)?;
        let meta = self.meta(entry)?;
        let Some((last, parent)) = comps.split_last() else {
            // The layer root itself: only a directory may describe it.
            if kind != EntryType::Directory {
                return Err(unsafe_entry(&name, "would replace the layer root"));
            }
            let fd = self
                .root_fd
                .try_clone()
                .map_err(|e| Error::path(self.root, e))?;
            self.set_meta(&fd, &meta)?;
            self.dirs.push((PathBuf::new(), meta.mtime));
            return Ok(());
        };
        let parent_fd = self.open_parent(parent, &name, true)?;
        if let Some(target) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if last == OPAQUE_MARKER.as_bytes() {
                set_xattr(&parent_fd, OPAQUE_XATTR, b"y").map_err(|e| {
                    Error::io(format!("marking {} opaque", join(parent).display()), e)
                })?;
            } else if target.starts_with(b".wh.") {
                // Other aufs metadata (.wh..wh.plnk etc.) has no meaning here.
            } else if target.is_empty() || target == b"." || target == b".." {
                return Err(unsafe_entry(
                    &name,
                    "whiteout names no file in its directory",
                ));
            } else {
                let target = cstr(target)?;
                self.replacing(&parent_fd, &target, parent, "creating whiteout", || {
                    mknodat(
                        &parent_fd,
                        target.as_c_str(),
                        SFlag::S_IFCHR,
                        Mode::empty(),
                        0,
                    )
                })?;
            }
            return Ok(());
        }

        let file = cstr(last)?;
        match kind {
            EntryType::Directory => {
                let mkdir =
                    || mkdirat(&parent_fd, file.as_c_str(), Mode::from_bits_truncate(0o700));
                match mkdir() {
                    // A directory already there (from an earlier entry) is kept, as tar does.
                    Err(Errno::EEXIST) if is_dir_at(&parent_fd, &file) => {}
                    Err(Errno::EEXIST) => {
                        self.remove_existing(&parent_fd, &file, parent)?;
                        mkdir().map_err(|e| Error::io("mkdir", e.into()))?;
                    }
                    r => r.map_err(|e| Error::io("mkdir", e.into()))?,
                }
                let fd = openat(
                    &parent_fd,
                    file.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open directory", e.into()))?;
                self.set_meta(&fd, &meta)?;
                self.dirs.push((join(&comps), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = self.replacing(&parent_fd, &file, parent, "create", || {
                    openat(
                        &parent_fd,
                        file.as_c_str(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                })?;
                let mut out = File::from(fd);
                let expected = entry.size();
                let mut copied = 0u64;
                loop {
                    let n = entry
                        .read(&mut self.buf)
                        .map_err(|e| stream_error("read", e))?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&self.buf[..n])
                        .map_err(|e| Error::io("write", e))?;
                    copied += n as u64;
                }
                if copied != expected {
                    return Err(Error::invalid(format!(
                        "truncated archive: {copied} of {expected} bytes"
                    )));
                }
                self.applied.size += copied;
                self.set_meta(out.as_fd(), &meta)?;
                futimens(&out, &meta.mtime, &meta.mtime)
                    .map_err(|e| Error::io("set times", e.into()))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Error::invalid("symlink without a target"))?;
                let target = cstr(&target)?;
                self.replacing(&parent_fd, &file, parent, "symlink", || {
                    symlinkat(target.as_c_str(), &parent_fd, file.as_c_str())
                })?;
                set_meta_at(&parent_fd, &file, &meta, false)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::invalid("hardlink without a target"))?
                    .into_owned();
                let target_name = String::from_utf8_lossy(&target).into_owned();
                let tcomps = components(&target, &name).map_err(|_| {
                    unsafe_entry(
                        &name,
                        &format!("hardlink target {target_name:?} is outside the layer"),
                    )
                })?;
                let Some((tlast, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_entry(&name, "hardlink to the layer root"));
                };
                let tparent_fd = self.open_dir(tparent, &name, false)?;
                let tfile = cstr(tlast)?;
                if tcomps == comps {
                    return Ok(());
                }
                let what = format!("hardlink to {target_name:?}");
                self.replacing(&parent_fd, &file, parent, &what, || {
                    linkat(
                        &tparent_fd,
                        tfile.as_c_str(),
                        &parent_fd,
                        file.as_c_str(),
                        AtFlags::empty(),
                    )
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                        let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                        // Linux dev_t holds a 12-bit major and a 20-bit minor.
                        if major > 0xfff || minor > 0xfffff {
                            return Err(Error::invalid(format!(
                                "device number {major}:{minor} out of range"
                            )));
                        }
                        let sflag = if kind == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (sflag, libc::makedev(major, minor))
                    }
                };
                self.replacing(&parent_fd, &file, parent, "mknod", || {
                    mknodat(&parent_fd, file.as_c_str(), sflag, Mode::empty(), dev)
                })?;
                set_meta_at(&parent_fd, &file, &meta, true)?;
            }
            other => {
                return Err(Error::invalid(format!(
                    "unsupported tar entry type {other:?}"
                )))
            }
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>) -> Result<Meta, Error> {
        let h = entry.header();
        let bad = |e: io::Error| Error::invalid(format!("corrupt tar header: {e}"));
        let mut meta = Meta {
            mode: h.mode().map_err(bad)? & 0o7777,
            uid: h.uid().map_err(bad)? as u32,
            gid: h.gid().map_err(bad)? as u32,
            mtime: TimeSpec::new(h.mtime().map_err(bad)? as i64, 0),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for ext in pax {
                let ext = ext.map_err(bad)?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                    "gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                    "mtime" => meta.mtime = parse_pax_time(text).unwrap_or(meta.mtime),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            // trusted.* (overlay's own metadata) and others are not the image's to set.
                            if name.starts_with("user.") || name == "security.capability" {
                                meta.xattrs.push((cstr(name.as_bytes())?, value.to_vec()));
                            } else {
                                tracing::debug!("ignoring xattr {name}");
                            }
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Owner, then mode (chown clears setuid), then xattrs (chown clears file capabilities).
    fn set_meta(&self, fd: impl AsFd, meta: &Meta) -> Result<(), Error> {
        fchown(
            &fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| Error::io("chown", e.into()))?;
        fchmod(&fd, Mode::from_bits_truncate(meta.mode))
            .map_err(|e| Error::io("chmod", e.into()))?;
        for (name, value) in &meta.xattrs {
            set_xattr(&fd, name.to_str().unwrap_or_default(), value)
                .map_err(|e| Error::io(format!("setting xattr {name:?}"), e))?;
        }
        Ok(())
    }

    /// Opens (creating missing directories when `create`) the directory `comps` beneath the root.
    fn open_parent(
        &mut self,
        comps: &[Vec<u8>],
        entry: &str,
        create: bool,
    ) -> Result<Rc<OwnedFd>, Error> {
        let path = join(comps);
        if let Some((p, fd)) = &self.parent {
            if *p == path {
                return Ok(Rc::clone(fd));
            }
        }
        let fd = Rc::new(self.open_dir(comps, entry, create)?);
        self.parent = Some((path, Rc::clone(&fd)));
        Ok(fd)
    }

    fn open_dir(&mut self, comps: &[Vec<u8>], entry: &str, create: bool) -> Result<OwnedFd, Error> {
        if comps.is_empty() {
            return self.root_fd.try_clone().map_err(|e| Error::io("dup", e));
        }
        match self.beneath(&join(comps), entry) {
            Err(Errno::ENOENT) if create => {
                let parent = self.open_dir(&comps[..comps.len() - 1], entry, true)?;
                let last = cstr(&comps[comps.len() - 1])?;
                match mkdirat(&parent, last.as_c_str(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::io("mkdir", e.into())),
                }
                self.beneath(&join(comps), entry)
                    .map_err(|e| self.resolve_error(comps, entry, e))
            }
            r => r.map_err(|e| self.resolve_error(comps, entry, e)),
        }
    }

    fn beneath(&self, path: &Path, _entry: &str) -> Result<OwnedFd, Errno> {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(&self.root_fd, path, how)
    }

    fn resolve_error(&self, comps: &[Vec<u8>], entry: &str, e: Errno) -> Error {
        let dir = join(comps);
        match e {
            Errno::EXDEV | Errno::ELOOP => unsafe_entry(
                entry,
                &format!("{} is a symlink leading outside the layer", dir.display()),
            ),
            Errno::ENOENT => unsafe_entry(
                entry,
                &format!("{} does not exist in the layer", dir.display()),
            ),
            e => Error::io(dir.display(), e.into()),
        }
    }

    /// Runs `make`, which creates `name` in `parent_fd`; when something is in the way (an earlier
    /// entry of the same name), removes it, as this entry replaces it, and runs `make` again.
    /// Trying first costs nothing when the name is free, as it nearly always is.
    fn replacing<T>(
        &mut self,
        parent_fd: &OwnedFd,
        name: &CString,
        parent: &[Vec<u8>],
        what: &str,
        mut make: impl FnMut() -> nix::Result<T>,
    ) -> Result<T, Error> {
        let made = match make() {
            Err(Errno::EEXIST) => {
                self.remove_existing(parent_fd, name, parent)?;
                make()
            }
            r => r,
        };
        made.map_err(|e| Error::io(what, e.into()))
    }

    /// Removes whatever this layer already has at `parent/name`, so the entry replaces it.
    fn remove_existing(
        &mut self,
        parent_fd: &OwnedFd,
        name: &CString,
        parent: &[Vec<u8>],
    ) -> Result<(), Error> {
        match fstatat(parent_fd, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(_) => Ok(()),
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                // The cached parent may be this directory or below it.
                self.parent = None;
                // The parent resolved beneath the root and nothing else writes here: the path is safe.
                let path = self
                    .root
                    .join(join(parent))
                    .join(OsStr::from_bytes(name.as_bytes()));
                std::fs::remove_dir_all(&path).map_err(|e| Error::path(&path, e))
            }
            Ok(_) => unlinkat(parent_fd, name.as_c_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| Error::io("unlink", e.into())),
        }
    }
}

fn is_dir_at(dir: &OwnedFd, name: &CStr) -> bool {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Ownership, mode (`chmod`: not for symlinks, whose mode means nothing) and times of `file`
/// in `dir`, never following it.
fn set_meta_at(dir: &OwnedFd, file: &CStr, meta: &Meta, chmod: bool) -> Result<(), Error> {
    fchownat(
        dir,
        file,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io("chown", e.into()))?;
    if chmod {
        // A node just made, not a symlink: following is harmless.
        fchmodat(
            dir,
            file,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| Error::io("chmod", e.into()))?;
    }
    utimensat(
        dir,
        file,
        &meta.mtime,
        &meta.mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| Error::io("set times", e.into()))
}

fn parse_pax_time(text: &str) -> Option<TimeSpec> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
        if secs < 0 {
            nanos = -nanos;
        }
    }
    Some(TimeSpec::new(secs, nanos))
}

pub(crate) fn set_xattr(fd: impl AsFd, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: valid fd, NUL-terminated name, value pointer and length from a slice.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_fd().as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(kind: EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o640);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    #[test]
    fn later_entries_replace_earlier_ones_of_the_same_name() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: unpacking gives entries their owners (chown), which needs root");
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |kind: EntryType, name: &str, data: &[u8], link: Option<&str>| {
            let mut h = header(kind, data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, name, data).unwrap();
        };
        add(EntryType::Regular, "f", b"old", None);
        add(EntryType::Regular, "f", b"new", None); // file over file
        add(EntryType::Directory, "d", b"", None);
        add(EntryType::Regular, "d/inner", b"x", None);
        add(EntryType::Regular, "d", b"file now", None); // file over a directory
        add(EntryType::Regular, "s", b"was a file", None);
        add(EntryType::Symlink, "s", b"", Some("f")); // symlink over file
        add(EntryType::Symlink, "t", b"", Some("/nowhere"));
        add(EntryType::Directory, "t", b"", None); // directory over a dangling symlink
        add(EntryType::Directory, "k", b"", None);
        add(EntryType::Regular, "k/kept", b"k", None);
        add(EntryType::Directory, "k", b"", None); // directory over directory: merged
        add(EntryType::Regular, "h", b"old", None);
        add(EntryType::Link, "h", b"", Some("f")); // hardlink over file
        add(EntryType::Fifo, "p", b"", None);
        add(EntryType::Fifo, "p", b"", None); // node over node
        add(EntryType::Regular, "gone", b"x", None);
        add(EntryType::Regular, ".wh.gone", b"", None); // whiteout over file
        let tar = b.into_inner().unwrap();

        let dir = tempfile::tempdir().unwrap();
        apply(&mut &tar[..], dir.path(), "test").unwrap();
        let p = |n: &str| dir.path().join(n);
        assert_eq!(fs::read(p("f")).unwrap(), b"new");
        assert_eq!(fs::read(p("d")).unwrap(), b"file now");
        assert_eq!(fs::read_link(p("s")).unwrap(), Path::new("f"));
        assert!(fs::symlink_metadata(p("t")).unwrap().is_dir());
        assert_eq!(fs::read(p("k/kept")).unwrap(), b"k");
        assert_eq!(
            fs::metadata(p("h")).unwrap().ino(),
            fs::metadata(p("f")).unwrap().ino()
        );
        assert!(fs::metadata(p("p")).unwrap().file_type().is_fifo());
        let gone = fs::symlink_metadata(p("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(fs::metadata(p("f")).unwrap().mode() & 0o7777, 0o640);
    }
}
