//! `load` and `save`: docker-archive (the classic `manifest.json` form and Docker 25+'s form with
//! an OCI layout inside) and OCI archives (as `skopeo copy ... oci-archive:` writes them).
//!
//! Loading reads the outer tar's table of contents first (manifest.json may come last), then each
//! blob straight from its offset: every blob's digest and every layer's diff_id are checked while
//! it streams into the store. Layers already unpacked are only verified, or skipped entirely when
//! their blob is already stored too.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;

use crate::compress::{self, Compression};
use crate::digest::{self, hex_of};
use crate::error::IoContext;
use crate::layout::{
    host_arch, Descriptor, Index, Manifest, CONFIG_V1, CONTAINERD_NAME, DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2, INDEX_V1, MANIFEST_V1, OCI_LAYOUT, REF_NAME,
};
use crate::store::{stream_error, Txn};
use crate::{reference, Error, Store};

/// Read buffers: large reads of archives and blobs cost fewer system calls.
const BUF: usize = 256 * 1024;

/// Layer media types minibox can read (compression is still told by magic).
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

/// `manifest.json` of a docker-archive.
#[derive(Debug, Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Where each member of the outer tar lies in the file.
struct Toc {
    file: File,
    name: String,
    entries: HashMap<String, (u64, u64)>,
}

impl Toc {
    fn read(path: &Path, name: &str) -> Result<Toc, Error> {
        let file = File::open(path).at(path)?;
        let mut archive = tar::Archive::new(file.try_clone().at(path)?);
        let bad = |e: io::Error| Error::invalid(format!("{name}: not a valid archive: {e}"));
        let mut entries = HashMap::new();
        let mut links = Vec::new();
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    entries.insert(path, (entry.raw_file_position(), entry.size()));
                }
                // Docker 25+ links `<id>/layer.tar` to the blob.
                kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    let target =
                        String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                            .into_owned();
                    let target = if kind == tar::EntryType::Symlink {
                        let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
                        clean(&dir.join(&target).to_string_lossy())
                    } else {
                        clean(&target)
                    };
                    links.push((path, target));
                }
                _ => {}
            }
        }
        for _ in 0..8 {
            for (path, target) in &links {
                if let Some(&e) = entries.get(target) {
                    entries.insert(path.clone(), e);
                }
            }
        }
        Ok(Toc {
            file,
            name: name.to_string(),
            entries,
        })
    }

    fn has(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    fn open(&self, path: &str) -> Result<(impl Read + '_, u64), Error> {
        let &(offset, size) = self.entries.get(path).ok_or_else(|| {
            Error::invalid(format!("{}: {path} is missing from the archive", self.name))
        })?;
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset)).with(|| self.name.clone())?;
        Ok((BufReader::with_capacity(BUF, f.take(size)), size))
    }

    fn read_small(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (mut r, size) = self.open(path)?;
        if size > 64 << 20 {
            return Err(Error::invalid(format!(
                "{}: {path} is implausibly large",
                self.name
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .with(|| format!("{}: {path}", self.name))?;
        Ok(buf)
    }

    /// Reads a blob and checks it against `digest` (and `size` when given).
    fn read_verified(&self, path: &str, digest: &str, size: Option<u64>) -> Result<Vec<u8>, Error> {
        let bytes = self.read_small(path)?;
        let actual = digest::sha256(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("{}: {path}", self.name),
                expected: digest.to_string(),
                actual,
            });
        }
        if size.is_some_and(|s| s != bytes.len() as u64) {
            return Err(Error::invalid(format!(
                "{}: {path}: size differs from its descriptor",
                self.name
            )));
        }
        Ok(bytes)
    }
}

/// `./a//b` → `a/b`.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// The digest a path like `blobs/sha256/<hex>` or `<hex>.json` implies.
fn digest_in_name(path: &str) -> Option<String> {
    let base = Path::new(path).file_name()?.to_str()?;
    let base = base.strip_suffix(".json").unwrap_or(base);
    let d = format!("sha256:{base}");
    hex_of(&d).is_some().then_some(d)
}

impl Store {
    /// Loads every image of a docker-archive or OCI archive read from `reader` (`name` names it
    /// in messages). Returns the loaded images' names (or ids, for unnamed ones).
    pub fn load(
        &self,
        reader: &mut dyn Read,
        path: Option<&Path>,
        name: &str,
    ) -> Result<Vec<String>, Error> {
        let mut txn = self.begin()?;
        // Random access is needed: spool pipes and compressed archives to a file first.
        let (kind, mut head) = compress::sniff(BufReader::with_capacity(BUF, reader), name)?;
        let archive_path: PathBuf = match (kind, path) {
            (Compression::None, Some(p)) => p.to_path_buf(),
            _ => {
                let tmp = txn.tmp_path("archive");
                let mut out = File::create(&tmp).at(&tmp)?;
                let mut dec =
                    compress::decoder(kind, &mut head).map_err(|e| stream_error(name, e))?;
                io::copy(&mut dec, &mut out).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                        stream_error(name, e)
                    }
                    _ => Error::path(&tmp, e),
                })?;
                tmp
            }
        };
        let toc = Toc::read(&archive_path, name)?;
        let loaded = if toc.has("manifest.json") {
            load_docker(&mut txn, &toc)?
        } else if toc.has("index.json") {
            load_oci(&mut txn, &toc)?
        } else {
            return Err(Error::invalid(format!(
                "{name}: not a docker-archive or OCI archive (no manifest.json or index.json)"
            )));
        };
        txn.commit()?;
        Ok(loaded)
    }

    /// Writes the images to `out` as a tar that is both a docker-archive (`manifest.json`) and
    /// an OCI archive (`oci-layout`, `index.json`), like `docker save` since Docker 25. Layers are
    /// written uncompressed, named by their diff_id.
    pub fn save(&self, references: &[String], out: &mut dyn Write) -> Result<(), Error> {
        // Resolve everything first: an unknown name writes nothing.
        let mut images: Vec<(crate::Image, Vec<String>)> = Vec::new();
        for r in references {
            let image = self.image(r)?;
            let names = match reference::normalize(r) {
                Ok(n) if image.names.contains(&n) => vec![n],
                _ => image.names.clone(),
            };
            match images.iter_mut().find(|(i, _)| i.id == image.id) {
                Some((_, n)) => {
                    for x in names {
                        if !n.contains(&x) {
                            n.push(x);
                        }
                    }
                }
                None => images.push((image, names)),
            }
        }
        let mut tar = tar::Builder::new(out);
        let mut written = HashSet::new();
        let mut docker_manifest = Vec::new();
        let mut index = Index::default();
        let w = |e: io::Error| Error::io("writing the archive", e);
        for (image, names) in &images {
            let config = self.read_blob(&image.id)?;
            put(
                &mut tar,
                &mut written,
                &image.id,
                &config[..],
                config.len() as u64,
            )
            .map_err(w)?;
            let stored = self.read_manifest(&image.manifest)?;
            let chains = digest::chain_ids(image.diff_ids());
            let mut layers = Vec::new();
            for ((diff_id, chain), blob) in image.diff_ids().iter().zip(&chains).zip(&stored.layers)
            {
                let meta = self.layer_meta(chain)?;
                let path = self.blob_path(&blob.digest)?;
                let file = File::open(&path).at(&path)?;
                let file = BufReader::with_capacity(BUF, file);
                let (kind, head) = compress::sniff(file, &path.display().to_string())?;
                let dec = compress::decoder(kind, head).map_err(|e| Error::path(&path, e))?;
                put(&mut tar, &mut written, diff_id, dec, meta.tar_size).map_err(w)?;
                layers.push(Descriptor::new(
                    Compression::None.layer_media_type(),
                    diff_id,
                    meta.tar_size,
                ));
            }
            let manifest = Manifest::new(
                Descriptor::new(CONFIG_V1, &image.id, config.len() as u64),
                layers.clone(),
            );
            let mbytes = serde_json::to_vec(&manifest).expect("serializable");
            let mdigest = digest::sha256(&mbytes);
            put(
                &mut tar,
                &mut written,
                &mdigest,
                &mbytes[..],
                mbytes.len() as u64,
            )
            .map_err(w)?;
            let desc = Descriptor::new(MANIFEST_V1, &mdigest, mbytes.len() as u64);
            if names.is_empty() {
                index.manifests.push(desc.clone());
            }
            for n in names {
                let mut d = desc.clone();
                d.annotations.insert(REF_NAME.into(), n.clone());
                d.annotations.insert(CONTAINERD_NAME.into(), n.clone());
                index.manifests.push(d);
            }
            docker_manifest.push(serde_json::json!({
                "Config": blob_name(&image.id),
                "RepoTags": names,
                "Layers": image.diff_ids().iter().map(|d| blob_name(d)).collect::<Vec<_>>(),
            }));
        }
        let docs: [(&str, Vec<u8>); 3] = [
            ("oci-layout", OCI_LAYOUT.as_bytes().to_vec()),
            (
                "index.json",
                serde_json::to_vec(&index).expect("serializable"),
            ),
            (
                "manifest.json",
                serde_json::to_vec(&docker_manifest).expect("serializable"),
            ),
        ];
        for (name, bytes) in docs {
            append(&mut tar, name, &bytes[..], bytes.len() as u64).map_err(w)?;
        }
        tar.into_inner().map_err(w)?.flush().map_err(w)
    }
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", hex_of(digest).unwrap_or_default())
}

fn append(
    tar: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    data: impl Read,
    size: u64,
) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data)
}

fn put(
    tar: &mut tar::Builder<&mut dyn Write>,
    written: &mut HashSet<String>,
    digest: &str,
    data: impl Read,
    size: u64,
) -> io::Result<()> {
    if written.insert(digest.to_string()) {
        if written.len() == 1 {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            tar.append_data(&mut h.clone(), "blobs/", io::empty())?;
            tar.append_data(&mut h, "blobs/sha256/", io::empty())?;
        }
        append(tar, &blob_name(digest), data, size)?;
    }
    Ok(())
}

fn config_diff_ids(config: &[u8], what: &str) -> Result<Vec<String>, Error> {
    let c: ImageConfiguration = serde_json::from_slice(config)
        .map_err(|e| Error::invalid(format!("{what}: invalid image config: {e}")))?;
    Ok(c.rootfs().diff_ids().clone())
}

/// Reads one layer (unless its blob and unpacked form are both already here).
fn load_layer(
    txn: &mut Txn<'_>,
    toc: &Toc,
    path: &str,
    parent: Option<&str>,
    expect_blob: Option<&str>,
    diff_id: &str,
    media_type: Option<&str>,
) -> Result<(Descriptor, String), Error> {
    let chain = match parent {
        None => diff_id.to_string(),
        Some(p) => digest::chain_ids(&[p.to_string(), diff_id.to_string()])[1].clone(),
    };
    // A docker-archive's layer.tar is usually uncompressed: its digest is then its diff_id.
    let known = expect_blob.unwrap_or(diff_id);
    if txn.has_layer(&chain) && txn.has_blob(known) {
        let (_, size) = toc.open(path)?;
        let mt = media_type.map(str::to_string).unwrap_or_else(|| {
            if known == diff_id {
                Compression::None.layer_media_type().to_string()
            } else {
                Compression::Gzip.layer_media_type().to_string()
            }
        });
        return Ok((Descriptor::new(&mt, known, size), chain));
    }
    let (mut r, _) = toc.open(path)?;
    let what = format!("{}: {path}", toc.name);
    let info = txn.add_layer(&mut r, &what, parent, expect_blob, Some(diff_id))?;
    Ok((info.blob, chain))
}

fn load_docker(txn: &mut Txn<'_>, toc: &Toc) -> Result<Vec<String>, Error> {
    let manifests: Vec<DockerManifest> = serde_json::from_slice(&toc.read_small("manifest.json")?)
        .map_err(|e| Error::invalid(format!("{}: manifest.json: {e}", toc.name)))?;
    let mut loaded = Vec::new();
    for m in manifests {
        let config_path = clean(&m.config);
        let config = match digest_in_name(&config_path) {
            Some(d) => toc.read_verified(&config_path, &d, None)?,
            None => toc.read_small(&config_path)?,
        };
        let what = format!("{}: {config_path}", toc.name);
        let diff_ids = config_diff_ids(&config, &what)?;
        if diff_ids.len() != m.layers.len() {
            return Err(Error::invalid(format!(
                "{what}: the config lists {} layers, manifest.json {}",
                diff_ids.len(),
                m.layers.len()
            )));
        }
        let mut layers = Vec::new();
        let mut parent: Option<String> = None;
        for (path, diff_id) in m.layers.iter().zip(&diff_ids) {
            let path = clean(path);
            let expect = digest_in_name(&path);
            let (desc, chain) = load_layer(
                txn,
                toc,
                &path,
                parent.as_deref(),
                expect.as_deref(),
                diff_id,
                None,
            )?;
            layers.push(desc);
            parent = Some(chain);
        }
        let names = m
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|n| reference::normalize(n))
            .collect::<Result<Vec<_>, _>>()?;
        let id = txn.add_image(&config, layers, &names)?;
        loaded.extend(if names.is_empty() { vec![id] } else { names });
    }
    Ok(loaded)
}

fn load_oci(txn: &mut Txn<'_>, toc: &Toc) -> Result<Vec<String>, Error> {
    let index: Index = serde_json::from_slice(&toc.read_small("index.json")?)
        .map_err(|e| Error::invalid(format!("{}: index.json: {e}", toc.name)))?;
    let mut loaded = Vec::new();
    for desc in &index.manifests {
        let name = desc
            .annotations
            .get(CONTAINERD_NAME)
            .or_else(|| desc.annotations.get(REF_NAME))
            .map(|n| reference::normalize(n))
            .transpose()?;
        let manifest_desc = resolve_platform(toc, desc)?;
        let path = blob_name(&manifest_desc.digest);
        let manifest: Manifest = serde_json::from_slice(&toc.read_verified(
            &path,
            &manifest_desc.digest,
            Some(manifest_desc.size),
        )?)
        .map_err(|e| Error::invalid(format!("{}: {path}: {e}", toc.name)))?;
        let config_path = blob_name(&manifest.config.digest);
        let config = toc.read_verified(
            &config_path,
            &manifest.config.digest,
            Some(manifest.config.size),
        )?;
        let diff_ids = config_diff_ids(&config, &format!("{}: {config_path}", toc.name))?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::invalid(format!(
                "{}: {path}: the manifest lists {} layers, the config {}",
                toc.name,
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        let mut parent: Option<String> = None;
        for (l, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            if !LAYER_TYPES.contains(&l.media_type.as_str()) {
                return Err(Error::invalid(format!(
                    "{}: layer {}: unsupported media type {:?}",
                    toc.name, l.digest, l.media_type
                )));
            }
            let lpath = blob_name(&l.digest);
            if hex_of(&l.digest).is_none() {
                return Err(Error::invalid(format!(
                    "{}: unsupported digest {:?}",
                    toc.name, l.digest
                )));
            }
            let (desc, chain) = load_layer(
                txn,
                toc,
                &lpath,
                parent.as_deref(),
                Some(&l.digest),
                diff_id,
                Some(&l.media_type),
            )?;
            layers.push(desc);
            parent = Some(chain);
        }
        let names: Vec<String> = name.into_iter().collect();
        let id = txn.add_image(&config, layers, &names)?;
        loaded.extend(if names.is_empty() { vec![id] } else { names });
    }
    Ok(loaded)
}

/// An index entry may be an image index (multi-platform): pick this machine's image.
fn resolve_platform(toc: &Toc, desc: &Descriptor) -> Result<Descriptor, Error> {
    let mut desc = desc.clone();
    for _ in 0..4 {
        if hex_of(&desc.digest).is_none() {
            return Err(Error::invalid(format!(
                "{}: unsupported digest {:?}",
                toc.name, desc.digest
            )));
        }
        match desc.media_type.as_str() {
            MANIFEST_V1 | DOCKER_MANIFEST_V2 => return Ok(desc),
            INDEX_V1 | DOCKER_MANIFEST_LIST => {
                let path = blob_name(&desc.digest);
                let inner: Index = serde_json::from_slice(&toc.read_verified(
                    &path,
                    &desc.digest,
                    Some(desc.size),
                )?)
                .map_err(|e| Error::invalid(format!("{}: {path}: {e}", toc.name)))?;
                let pick = inner
                    .manifests
                    .iter()
                    .find(|d| {
                        d.platform
                            .as_ref()
                            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
                    })
                    .or_else(|| (inner.manifests.len() == 1).then(|| &inner.manifests[0]))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{}: no image for linux/{} in {path}",
                            toc.name,
                            host_arch()
                        ))
                    })?;
                desc = pick.clone();
            }
            other => {
                return Err(Error::invalid(format!(
                    "{}: manifest {}: unsupported media type {other:?}",
                    toc.name, desc.digest
                )))
            }
        }
    }
    Err(Error::invalid(format!(
        "{}: image indexes nested too deeply",
        toc.name
    )))
}
