//! The copy fallback of [`crate::rootfs`]: applies unpacked layers one over the other into a
//! directory, with overlay's semantics (whiteouts delete, opaque directories hide what is below,
//! a directory replaces a lower non-directory). The destination only ever holds what this code
//! made, walked top-down, so every parent on a path is a real directory, never a symlink.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{lchown, symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::error::IoContext;
use crate::unpack::OPAQUE_XATTR;
use crate::Error;

/// Applies the unpacked layer `layer` on top of `dest`: for a plain directory tree (no
/// whiteouts), a copy that keeps owners, modes, times, hard links and file capabilities.
pub fn apply_layer(layer: &Path, dest: &Path) -> Result<(), Error> {
    let mut links = HashMap::new();
    copy_dir(layer, dest, &mut links)?;
    Ok(())
}

fn copy_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<(), Error> {
    for entry in fs::read_dir(src).at(src)? {
        let entry = entry.at(src)?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&s).at(&s)?;
        let existing = fs::symlink_metadata(&d).ok();
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            // A whiteout: the name is gone from here on.
            if let Some(e) = existing {
                remove(&d, &e)?;
            }
            continue;
        }
        if ft.is_dir() {
            match existing {
                Some(e) if e.is_dir() => {
                    if get_xattr(&s, OPAQUE_XATTR).as_deref() == Some(b"y") {
                        fs::remove_dir_all(&d).at(&d)?;
                        fs::create_dir(&d).at(&d)?;
                    }
                }
                Some(e) => {
                    remove(&d, &e)?;
                    fs::create_dir(&d).at(&d)?;
                }
                None => fs::create_dir(&d).at(&d)?,
            }
            copy_dir(&s, &d, links)?;
            set_meta(&s, &d, &meta)?;
            continue;
        }
        if let Some(e) = existing {
            remove(&d, &e)?;
        }
        if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    fs::hard_link(first, &d).at(&d)?;
                    continue;
                }
                links.insert(key, d.clone());
            }
            fs::copy(&s, &d).at(&d)?;
            set_meta(&s, &d, &meta)?;
            copy_xattr(&s, &d, "security.capability");
        } else if ft.is_symlink() {
            let target = fs::read_link(&s).at(&s)?;
            symlink(&target, &d).at(&d)?;
            lchown(&d, Some(meta.uid()), Some(meta.gid())).at(&d)?;
            set_times(&d, &meta)?;
        } else {
            let kind = SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            mknod(&d, kind, Mode::empty(), meta.rdev()).with(|| d.display().to_string())?;
            set_meta(&s, &d, &meta)?;
        }
    }
    Ok(())
}

fn remove(path: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    if meta.is_dir() {
        fs::remove_dir_all(path).at(path)
    } else {
        fs::remove_file(path).at(path)
    }
}

/// Owner, then mode (chown clears setuid), then times. Never called on symlinks.
fn set_meta(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    lchown(dst, Some(meta.uid()), Some(meta.gid())).at(dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).at(dst)?;
    for name in list_xattrs(src) {
        if name.starts_with("user.") {
            copy_xattr(src, dst, &name);
        }
    }
    set_times(dst, meta)
}

fn set_times(path: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    let t = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .with(|| path.display().to_string())
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = cpath(path);
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid C strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

fn list_xattrs(path: &Path) -> Vec<String> {
    let p = cpath(path);
    let mut buf = vec![0u8; 4096];
    // SAFETY: as above.
    let len = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len <= 0 {
        return Vec::new();
    }
    buf[..len as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

fn copy_xattr(src: &Path, dst: &Path, name: &str) {
    let Some(value) = get_xattr(src, name) else {
        return;
    };
    let (p, n) = (cpath(dst), CString::new(name).unwrap_or_default());
    // SAFETY: as above.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        tracing::warn!(
            "{}: setting {name}: {}",
            dst.display(),
            io::Error::last_os_error()
        );
    }
}
