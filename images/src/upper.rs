//! A container's writable layer (the overlay upper directory over an image's layers) read back:
//! what it changed (`diff`), the whole filesystem it sees as a tar (`export`), and its changes as
//! a new layer on top of the image's (`commit`). Whiteouts are overlay's (a 0:0 character
//! device, the `trusted.overlay.opaque` xattr) in the upper and the unpacked layers alike, and
//! become the OCI `.wh.` entries in a committed layer.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::image::HistoryBuilder;

use crate::error::IoContext;
use crate::unpack::{OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::{Error, Image, Store};

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
    let name = std::ffi::CString::new(OPAQUE_XATTR).expect("no NUL");
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings and a buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn sorted_entries(dir: &Path) -> Result<Vec<OsString>, Error> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .at(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .at(dir)?;
    names.sort();
    Ok(names)
}

/// Whether `rel` is in the image, as overlay merges its layers (top first): the top layer that
/// has it, or hides it, decides. A whiteout hides its name, an opaque directory what lower layers
/// hold below it, and a non-directory anything below its name. Nothing is followed: a symlink in
/// a layer is a non-directory here, never a way out of it.
fn in_image(image: &Image, rel: &Path) -> bool {
    let names: Vec<_> = rel.components().collect();
    for layer in image.layers.iter().rev() {
        let mut path = layer.clone();
        let mut opaque = false;
        for (i, name) in names.iter().enumerate() {
            path.push(name);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                if opaque {
                    return false;
                }
                break;
            };
            if is_whiteout(&meta) {
                return false;
            }
            if i + 1 == names.len() {
                return true;
            }
            if !meta.is_dir() {
                return false;
            }
            opaque |= is_opaque(&path);
        }
    }
    false
}

/// The names the image has in its directory `rel`.
fn image_children(image: &Image, rel: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = image
        .layers
        .iter()
        .flat_map(|layer| sorted_entries(&layer.join(rel)).unwrap_or_default())
        .collect();
    names.sort();
    names.dedup();
    names.retain(|name| in_image(image, &rel.join(name)));
    names
}

/// What the upper directory changed, as Docker's `diff` prints it: `A` added, `C` changed (a
/// directory whose content changed too), `D` deleted, each path once, in path order. Whether a
/// path is new is decided against the image as overlay merges it (lower layers' whiteouts and
/// opaque directories count). A directory the container emptied and made again (opaque in the
/// upper) hides all the image had in it: each such name it does not hold again reads `D`.
pub fn diff(image: &Image, upper: &Path) -> Result<Vec<(char, String)>, Error> {
    let mut out = Vec::new();
    walk_diff(image, upper, Path::new(""), false, &mut out)?;
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Walks the upper directory `rel`; `replaced`: it hides what the image has below it.
fn walk_diff(
    image: &Image,
    upper: &Path,
    rel: &Path,
    replaced: bool,
    out: &mut Vec<(char, String)>,
) -> Result<(), Error> {
    for name in sorted_entries(&upper.join(rel))? {
        let rel = rel.join(&name);
        let path = upper.join(&rel);
        let meta = fs::symlink_metadata(&path).at(&path)?;
        let shown = format!("/{}", rel.display());
        if is_whiteout(&meta) {
            out.push(('D', shown));
            continue;
        }
        let old = in_image(image, &rel);
        out.push((if old { 'C' } else { 'A' }, shown));
        if !meta.is_dir() {
            continue;
        }
        let replaced = replaced || is_opaque(&path);
        if replaced && old {
            let kept = sorted_entries(&path)?;
            for gone in image_children(image, &rel) {
                if !kept.contains(&gone) {
                    out.push(('D', format!("/{}", rel.join(gone).display())));
                }
            }
        }
        walk_diff(image, upper, &rel, replaced, out)?;
    }
    Ok(())
}

/// Writes the filesystem the container sees (the upper over the image's layers, volumes and
/// kernel filesystems apart) as a tar to `out`.
pub fn export(image: &Image, upper: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut layers: Vec<PathBuf> = vec![upper.to_path_buf()];
    layers.extend(image.layers.iter().rev().cloned());
    merge(&mut tar, &layers, Path::new(""))?;
    tar.finish().map_err(|e| Error::io("writing the tar", e))
}

/// Adds the merged directory `rel` to the tar, from the same directory in each layer that
/// counts (top first): for each name the top layer that has it wins and a whiteout hides it; a
/// directory is merged with the directories below it until an opaque one or a non-directory.
fn merge(
    tar: &mut tar::Builder<&mut dyn Write>,
    dirs: &[PathBuf],
    rel: &Path,
) -> Result<(), Error> {
    // Per name: None once hidden or added as a non-directory; else the directories that make
    // it up and whether lower ones may still join.
    let mut decided: BTreeMap<OsString, Option<(Vec<PathBuf>, bool)>> = BTreeMap::new();
    for dir in dirs {
        for name in sorted_entries(dir).unwrap_or_default() {
            let path = dir.join(&name);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            match decided.get_mut(&name) {
                None if is_whiteout(&meta) => {
                    decided.insert(name, None);
                }
                None if meta.is_dir() => {
                    let open = !is_opaque(&path);
                    decided.insert(name, Some((vec![path], open)));
                }
                None => {
                    let entry = rel.join(&name);
                    tar.append_path_with_name(&path, &entry)
                        .map_err(|e| Error::io(format!("adding {}", entry.display()), e))?;
                    decided.insert(name, None);
                }
                Some(Some((paths, open))) if *open => {
                    if meta.is_dir() && !is_whiteout(&meta) {
                        *open = !is_opaque(&path);
                        paths.push(path);
                    } else {
                        *open = false;
                    }
                }
                Some(_) => {}
            }
        }
    }
    for (name, found) in decided {
        let Some((paths, _)) = found else {
            continue;
        };
        let entry = rel.join(&name);
        tar.append_path_with_name(&paths[0], &entry)
            .map_err(|e| Error::io(format!("adding {}", entry.display()), e))?;
        merge(tar, &paths, &entry)?;
    }
    Ok(())
}

/// Writes the upper directory as an OCI layer tar: its whiteouts as `.wh.NAME`, its opaque
/// directories with a `.wh..wh..opq` entry.
fn layer_tar(upper: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    add_upper(&mut tar, upper, Path::new(""))?;
    tar.finish().map_err(|e| Error::io("writing the layer", e))
}

fn add_upper(
    tar: &mut tar::Builder<&mut dyn Write>,
    upper: &Path,
    rel: &Path,
) -> Result<(), Error> {
    for name in sorted_entries(&upper.join(rel))? {
        let entry = rel.join(&name);
        let path = upper.join(&entry);
        let meta = fs::symlink_metadata(&path).at(&path)?;
        let add = |tar: &mut tar::Builder<&mut dyn Write>, name: &Path| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(meta.mtime().max(0) as u64);
            tar.append_data(&mut h, name, std::io::empty())
                .map_err(|e| Error::io(format!("adding {}", name.display()), e))
        };
        if is_whiteout(&meta) {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(&name);
            add(tar, &rel.join(wh))?;
            continue;
        }
        tar.append_path_with_name(&path, &entry)
            .map_err(|e| Error::io(format!("adding {}", entry.display()), e))?;
        if meta.is_dir() {
            if is_opaque(&path) {
                add(tar, &entry.join(OPAQUE_MARKER))?;
            }
            add_upper(tar, upper, &entry)?;
        }
    }
    Ok(())
}

/// What `commit` records besides the layer.
#[derive(Debug, Default)]
pub struct CommitOptions {
    /// NAME[:TAG] for the new image.
    pub name: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Dockerfile instructions applied to the config (as `import --change`).
    pub changes: Vec<String>,
}

impl Store {
    /// A new image: `base`'s layers and config, and the upper directory's changes as one more
    /// layer on top, with a history entry saying so.
    pub fn commit(&self, base: &Image, upper: &Path, opts: &CommitOptions) -> Result<Image, Error> {
        let names = match &opts.name {
            Some(n) => vec![crate::reference::normalize(n)?],
            None => vec![],
        };
        let mut config = base.config.clone();
        let mut inner = config.config().clone().unwrap_or_default();
        // What the base's config holds beyond oci-spec's fields (its HEALTHCHECK) is kept.
        let mut extra = crate::changes::extra_of(&self.read_blob(&base.id)?, &inner);
        for change in &opts.changes {
            crate::changes::apply(&mut inner, &mut extra, change)?;
        }
        config.set_config(Some(inner));
        let mut txn = self.begin()?;
        // The layer is written to a file in the store's tmp first, then read as any layer.
        let tmp = txn.tmp_path("commit");
        {
            let mut file = fs::File::create(&tmp).at(&tmp)?;
            layer_tar(upper, &mut file)?;
        }
        let parent = base
            .diff_ids()
            .iter()
            .fold(None, |chain: Option<String>, d| {
                Some(crate::store::chain_of(chain.as_deref(), d))
            });
        let mut reader = fs::File::open(&tmp).at(&tmp)?;
        let layer = txn.add_layer(
            &mut reader,
            "the container's changes",
            parent.as_deref(),
            None,
            None,
        )?;
        let _ = fs::remove_file(&tmp);
        let mut rootfs = config.rootfs().clone();
        let mut diff_ids = rootfs.diff_ids().clone();
        diff_ids.push(layer.diff_id.clone());
        rootfs.set_diff_ids(diff_ids);
        config.set_rootfs(rootfs);
        let now = crate::import::created(std::time::SystemTime::now());
        config.set_created(Some(now.clone()));
        let mut history = config.history().clone().unwrap_or_default();
        let mut entry = HistoryBuilder::default()
            .created(now)
            .created_by("minibox commit");
        if let Some(c) = &opts.comment {
            entry = entry.comment(c.clone());
        }
        if let Some(a) = &opts.author {
            entry = entry.author(a.clone());
            config.set_author(Some(a.clone()));
        }
        history.push(entry.build().map_err(|e| Error::invalid(e.to_string()))?);
        config.set_history(Some(history));
        let mut layers = self.read_manifest(&base.manifest)?.layers;
        layers.push(layer.blob);
        let bytes = crate::import::config_bytes(&config, &extra);
        let id = txn.add_image(&bytes, layers, &names)?;
        txn.commit()?;
        self.image(&id)
    }
}
