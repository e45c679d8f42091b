//! The image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) that skopeo
//! and umoci can read, plus unpacked layers under `layers/<chain id>/diff`, shared between images.
//!
//! Writers (import, load, rmi) hold an exclusive flock on `lock` for their whole run, create every
//! file under `tmp/` and rename it into place, and write `index.json` last. The `incomplete` marker
//! exists while a writer runs: finding it with the lock free means a writer died, and whatever it
//! left (tmp files, blobs and layers no image references) is removed. Readers take no lock: every
//! file they read is replaced by rename, never rewritten in place.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::compress;
use crate::digest::{self, hex_of, HashReader};
use crate::error::IoContext;
use crate::layout::{
    Descriptor, Index, Manifest, CONFIG_V1, MANIFEST_V1, OCI_LAYOUT, REF_NAME, REPO_DIGESTS,
};
use crate::reference;
use crate::tee::BlobTee;
use crate::unpack;
use crate::Error;

/// An image as the runtime sees it.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:<hex>` of the config blob, as Docker names images.
    pub id: String,
    /// `busybox:latest` etc.; empty for a dangling image.
    pub names: Vec<String>,
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// The manifest's digest.
    pub manifest: String,
    /// `REPO@sha256:...` for each registry reference it was pulled or pushed as.
    pub repo_digests: Vec<String>,
    /// Uncompressed content size, as `images` shows it.
    pub size: u64,
    pub(crate) store: PathBuf,
}

impl Image {
    pub fn short_id(&self) -> &str {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &hex[..hex.len().min(12)]
    }

    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }

    /// Seconds since the epoch of the config's `created`, if it has one.
    pub fn created_secs(&self) -> Option<i64> {
        self.config
            .created()
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    }
}

/// What `layers/<chain>/meta.json` records about an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerMeta {
    pub diff_id: String,
    /// Bytes of file content.
    pub size: u64,
    /// Bytes of the uncompressed tar (what `save` writes).
    pub tar_size: u64,
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens the store at `dir` (`<root>/images`). Cheap: reads nothing unless a writer died.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        let store = Store {
            dir: dir.to_path_buf(),
        };
        if store.path("staging").exists() {
            store.sweep_staging();
        }
        if store.path("incomplete").exists() {
            if let Ok(lock) = store.lock(FlockArg::LockExclusiveNonblock) {
                // The lock is free, so the writer that made the marker is gone.
                store.recover()?;
                drop(lock);
            }
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        let hex = hex_of(digest)
            .ok_or_else(|| Error::invalid(format!("unsupported digest {digest:?}")))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    pub(crate) fn layer_dir(&self, chain: &str) -> Result<PathBuf, Error> {
        let hex = hex_of(chain).ok_or_else(|| Error::invalid(format!("bad chain id {chain:?}")))?;
        Ok(self.dir.join("layers").join(hex))
    }

    /// An image's config as stored, with what the OCI types leave out (Docker's `Healthcheck`).
    pub fn config_blob(&self, image: &Image) -> Result<Vec<u8>, Error> {
        self.read_blob(&image.id)
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest)?;
        fs::read(&path).at(&path)
    }

    pub(crate) fn read_index(&self) -> Result<Index, Error> {
        let path = self.path("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(Error::path(&path, e)),
        }
    }

    pub(crate) fn read_manifest(&self, digest: &str) -> Result<Manifest, Error> {
        serde_json::from_slice(&self.read_blob(digest)?)
            .map_err(|e| Error::invalid(format!("manifest {digest}: {e}")))
    }

    pub(crate) fn layer_meta(&self, chain: &str) -> Result<LayerMeta, Error> {
        let path = self.layer_dir(chain)?.join("meta.json");
        let bytes = fs::read(&path).at(&path)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
    }

    /// Loads the image whose manifest is `manifest_digest`, with what `index` says of it.
    fn load_image(&self, index: &Index, manifest_digest: &str) -> Result<Image, Error> {
        let entries = || {
            index
                .manifests
                .iter()
                .filter(|d| d.digest == manifest_digest)
        };
        let names = entries()
            .filter_map(|d| d.ref_name().map(str::to_string))
            .collect();
        let mut repo_digests: Vec<String> = Vec::new();
        for r in entries().flat_map(|d| d.repo_digests()) {
            if !repo_digests.iter().any(|x| x == r) {
                repo_digests.push(r.to_string());
            }
        }
        let manifest = self.read_manifest(manifest_digest)?;
        let id = manifest.config.digest.clone();
        let config: ImageConfiguration = serde_json::from_slice(&self.read_blob(&id)?)
            .map_err(|e| Error::invalid(format!("image config {id}: {e}")))?;
        let mut layers = Vec::new();
        let mut size = 0;
        for chain in digest::chain_ids(config.rootfs().diff_ids()) {
            let dir = self.layer_dir(&chain)?;
            let meta = self.layer_meta(&chain).map_err(|_| {
                Error::invalid(format!(
                    "image {id} is damaged: layer {chain} is missing (remove the image and load it again)"
                ))
            })?;
            size += meta.size;
            layers.push(dir.join("diff"));
        }
        Ok(Image {
            id,
            names,
            config,
            layers,
            manifest: manifest_digest.to_string(),
            repo_digests,
            size,
            store: self.dir.clone(),
        })
    }

    /// Every image, each once, with all its names.
    pub fn images(&self) -> Result<Vec<Image>, Error> {
        let index = self.read_index()?;
        let mut order: Vec<&str> = Vec::new();
        for d in &index.manifests {
            if !order.contains(&d.digest.as_str()) {
                order.push(&d.digest);
            }
        }
        order
            .into_iter()
            .map(|m| self.load_image(&index, m))
            .collect()
    }

    /// Finds an image by `NAME[:TAG]` (tag `latest` by default), by `NAME@DIGEST` (a digest it
    /// was pulled or pushed as) or by full or short id.
    pub fn image(&self, reference: &str) -> Result<Image, Error> {
        let index = self.read_index()?;
        if let Ok(name) = reference::normalize(reference) {
            if let Some(d) = index.manifests.iter().find(|d| d.ref_name() == Some(&name)) {
                return self.load_image(&index, &d.digest);
            }
        }
        if let Some(wanted) = reference::repo_digest(reference) {
            if let Some(d) = index
                .manifests
                .iter()
                .find(|d| d.repo_digests().any(|r| r == wanted))
            {
                return self.load_image(&index, &d.digest);
            }
        }
        if let Some(prefix) = reference::id_prefix(reference) {
            let mut found: Vec<Image> = self
                .images()?
                .into_iter()
                .filter(|i| i.id["sha256:".len()..].starts_with(prefix))
                .collect();
            match found.len() {
                1 => return Ok(found.remove(0)),
                0 => {}
                _ => {
                    return Err(Error::invalid(format!(
                        "image id prefix {reference:?} is ambiguous: give more digits"
                    )))
                }
            }
        }
        Err(Error::NoSuchImage(reference.to_string()))
    }

    /// The image whose manifest is `manifest`, if the store has it.
    pub(crate) fn image_by_manifest(&self, manifest: &str) -> Result<Option<Image>, Error> {
        let index = self.read_index()?;
        if !index.manifests.iter().any(|d| d.digest == manifest) {
            return Ok(None);
        }
        self.load_image(&index, manifest).map(Some)
    }

    /// Gives the image `source` the name `target` (Docker's `tag`).
    pub fn tag(&self, source: &str, target: &str) -> Result<(), Error> {
        let target = reference::normalize(target)?;
        let mut txn = self.begin()?;
        let image = self.image(source)?;
        let entry = txn
            .index
            .manifests
            .iter()
            .find(|d| d.digest == image.manifest)
            .cloned()
            .expect("a found image is in the index");
        txn.tag(&entry, &[target]);
        txn.commit()
    }

    /// Removes an image (Docker's `rmi`). By name, drops that name, and the image with its last
    /// name; by id, the image with all its names (several names need `force`). An image that
    /// `in_use(id)` says a container uses is refused unless `force`, and then only untagged: its
    /// layers stay until no container needs them. Returns Docker's `Untagged:`/`Deleted:` lines.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, Error> {
        let mut txn = self.begin()?;
        let image = self.image(reference)?;
        let by_name = reference::normalize(reference)
            .ok()
            .filter(|n| image.names.contains(n));
        let mut out = Vec::new();
        let used = in_use(&image.id);
        let untag: Vec<String> = match &by_name {
            Some(name) if image.names.len() > 1 => vec![name.clone()],
            _ => {
                if by_name.is_none() && image.names.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        image.short_id()
                    )));
                }
                if used && !force {
                    return Err(Error::Conflict(format!(
                        "unable to remove image {reference} ({}): a container uses it (remove the container first, or use -f)",
                        image.short_id()
                    )));
                }
                image.names.clone()
            }
        };
        let delete = untag.len() == image.names.len() && !used;
        for name in &untag {
            out.push(format!("Untagged: {name}"));
        }
        let manifests = &mut txn.index.manifests;
        manifests.retain(|d| {
            d.digest != image.manifest
                || (!delete && d.ref_name().is_some_and(|n| !untag.iter().any(|u| u == n)))
        });
        if !delete && !manifests.iter().any(|d| d.digest == image.manifest) {
            // Untagged but kept (in use): stays as a dangling image.
            manifests.push(Descriptor::new(MANIFEST_V1, &image.manifest, 0));
            txn.fix_size(&image.manifest)?;
        }
        if delete {
            out.push(format!("Deleted: {}", image.id));
        }
        txn.commit()?;
        Ok(out)
    }

    fn lock(&self, arg: FlockArg) -> Result<Flock<File>, Error> {
        fs::create_dir_all(&self.dir).at(&self.dir)?;
        let path = self.path("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        Flock::lock(file, arg).map_err(|(_, e)| Error::path(&path, e.into()))
    }

    /// Starts a write: takes the lock, recovers from a dead writer, sets the incomplete marker.
    pub(crate) fn begin(&self) -> Result<Txn<'_>, Error> {
        let lock = self.lock(FlockArg::LockExclusive)?;
        let marker = self.path("incomplete");
        if marker.exists() {
            self.recover()?;
        }
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = self.path(d);
            fs::create_dir_all(&p).at(&p)?;
        }
        let layout = self.path("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, OCI_LAYOUT.as_bytes())?;
        }
        File::create(&marker).at(&marker)?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.path("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&tmp).at(&tmp)?;
        Ok(Txn {
            store: self,
            _lock: lock,
            index: self.read_index()?,
            tmp,
            seq: 0,
            done: false,
        })
    }

    /// Removes what a failed writer left: tmp files, and blobs and layers no image references.
    fn recover(&self) -> Result<(), Error> {
        let tmp = self.path("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        // write_atomic's temporaries (index.json's) that were never renamed.
        for e in fs::read_dir(&self.dir).at(&self.dir)?.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        self.collect_garbage()?;
        let marker = self.path("incomplete");
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::path(&marker, e)),
            _ => Ok(()),
        }
    }

    /// Deletes blobs and unpacked layers that no image in `index.json` references.
    fn collect_garbage(&self) -> Result<(), Error> {
        let index = self.read_index()?;
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        for d in &index.manifests {
            blobs.insert(d.digest.clone());
            let Ok(m) = self.read_manifest(&d.digest) else {
                continue;
            };
            blobs.insert(m.config.digest.clone());
            blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
            if let Ok(bytes) = self.read_blob(&m.config.digest) {
                if let Ok(c) = serde_json::from_slice::<ImageConfiguration>(&bytes) {
                    chains.extend(digest::chain_ids(c.rootfs().diff_ids()));
                }
            }
        }
        let sweep = |dir: PathBuf, keep: &BTreeSet<String>| -> Result<(), Error> {
            let Ok(entries) = fs::read_dir(&dir) else {
                return Ok(());
            };
            for e in entries {
                let e = e.at(&dir)?;
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&format!("sha256:{name}")) {
                    let p = e.path();
                    tracing::debug!("removing unreferenced {}", p.display());
                    if e.file_type().at(&p)?.is_dir() {
                        fs::remove_dir_all(&p).at(&p)?;
                    } else {
                        fs::remove_file(&p).at(&p)?;
                    }
                }
            }
            Ok(())
        };
        sweep(self.path("blobs/sha256"), &blobs)?;
        sweep(self.path("layers"), &chains)
    }
}

/// Writes a file by writing a temporary sibling and renaming it over.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let res = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.at(path)
}

/// What reading one layer blob found.
#[derive(Debug, Clone)]
pub(crate) struct LayerInfo {
    pub blob: Descriptor,
    pub diff_id: String,
}

/// One write to the store, under its lock. Dropped without `commit`, it undoes itself.
pub(crate) struct Txn<'s> {
    store: &'s Store,
    _lock: Flock<File>,
    pub index: Index,
    tmp: PathBuf,
    seq: u64,
    done: bool,
}

impl Txn<'_> {
    /// A fresh name under this write's tmp directory.
    pub fn tmp_path(&mut self, what: &str) -> PathBuf {
        self.seq += 1;
        self.tmp.join(format!("{what}-{}", self.seq))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.store.blob_path(digest).is_ok_and(|p| p.exists())
    }

    pub fn has_layer(&self, chain: &str) -> bool {
        self.store
            .layer_dir(chain)
            .is_ok_and(|p| p.join("meta.json").exists())
    }

    /// Stores a small blob (manifest, config) and returns its digest.
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<String, Error> {
        let digest = digest::sha256(bytes);
        if !self.has_blob(&digest) {
            let tmp = self.tmp_path("blob");
            fs::write(&tmp, bytes).at(&tmp)?;
            self.place_blob(&tmp, &digest)?;
        }
        Ok(digest)
    }

    /// Moves a blob written elsewhere in the store into place (or drops it when it is there).
    pub fn place_blob(&self, tmp: &Path, digest: &str) -> Result<(), Error> {
        let dest = self.store.blob_path(digest)?;
        if dest.exists() {
            fs::remove_file(tmp).at(tmp)
        } else {
            fs::rename(tmp, &dest).at(&dest)
        }
    }

    /// Reads one layer blob from `reader` in a single pass: keeps its bytes as a blob, unpacks it
    /// (unless the same chain is already unpacked), and computes both its digest and its diff_id,
    /// which must match `expect_blob`/`expect_diff` when given. `what` names it in errors.
    pub fn add_layer(
        &mut self,
        reader: &mut dyn Read,
        what: &str,
        parent_chain: Option<&str>,
        expect_blob: Option<&str>,
        expect_diff: Option<&str>,
    ) -> Result<LayerInfo, Error> {
        let blob_tmp = self.tmp_path("blob");
        // With the diff_id known up front, a layer already unpacked is only verified.
        let unpack_dir = match expect_diff {
            Some(d) if self.has_layer(&chain_of(parent_chain, d)) => None,
            _ => Some(self.tmp_path("layer")),
        };
        let info = stream_layer(
            reader,
            what,
            &blob_tmp,
            unpack_dir.as_deref(),
            expect_blob,
            expect_diff,
        )?;
        if let Some(dir) = unpack_dir {
            self.place_layer(&dir, &chain_of(parent_chain, &info.diff_id))?;
        }
        self.place_blob(&blob_tmp, &info.blob.digest)?;
        Ok(info)
    }

    /// Moves an unpacked layer made by [`stream_layer`] into place, unless the chain is here.
    pub fn place_layer(&self, dir: &Path, chain: &str) -> Result<(), Error> {
        if self.has_layer(chain) {
            fs::remove_dir_all(dir).at(dir)
        } else {
            let dest = self.store.layer_dir(chain)?;
            fs::rename(dir, &dest).at(&dest)
        }
    }

    /// Records an image: stores its config and an OCI manifest for it and gives it `names`
    /// (taken from any image that had them). An image with the same config (id) is reused.
    /// Returns the image id.
    pub fn add_image(
        &mut self,
        config: &[u8],
        layers: Vec<Descriptor>,
        names: &[String],
    ) -> Result<String, Error> {
        let parsed: ImageConfiguration = serde_json::from_slice(config)
            .map_err(|e| Error::invalid(format!("image config: {e}")))?;
        if parsed.rootfs().diff_ids().len() != layers.len() {
            return Err(Error::invalid(format!(
                "image config lists {} layers, the manifest {}",
                parsed.rootfs().diff_ids().len(),
                layers.len()
            )));
        }
        let id = self.put_blob(config)?;
        // Same id already here (e.g. loaded before with other compression): keep its manifest.
        let mut existing = None;
        for d in &self.index.manifests {
            if self
                .store
                .read_manifest(&d.digest)
                .is_ok_and(|m| m.config.digest == id)
            {
                existing = Some(d.clone());
                break;
            }
        }
        let manifest_desc = match existing {
            Some(d) => Descriptor::new(&d.media_type, &d.digest, d.size),
            None => {
                let manifest =
                    Manifest::new(Descriptor::new(CONFIG_V1, &id, config.len() as u64), layers);
                let bytes = serde_json::to_vec(&manifest).expect("serializable");
                let digest = self.put_blob(&bytes)?;
                Descriptor::new(MANIFEST_V1, &digest, bytes.len() as u64)
            }
        };
        self.tag(&manifest_desc, names);
        Ok(id)
    }

    /// Records an image as pulled (or pushed) as `repo_digest`: its manifest `manifest` (stored
    /// already) takes over from any other manifest of the same image, gets `name`, and
    /// `repo_digest` joins its RepoDigests.
    pub fn record_remote(
        &mut self,
        manifest: &Descriptor,
        config: &str,
        name: Option<&str>,
        repo_digest: &str,
    ) -> Result<(), Error> {
        let mut digests: Vec<String> = vec![repo_digest.to_string()];
        for d in &mut self.index.manifests {
            let same_image = d.digest == manifest.digest
                || self
                    .store
                    .read_manifest(&d.digest)
                    .is_ok_and(|m| m.config.digest == config);
            if same_image {
                for r in d.repo_digests() {
                    if !digests.iter().any(|x| x == r) {
                        digests.push(r.to_string());
                    }
                }
                d.digest = manifest.digest.clone();
                d.media_type = manifest.media_type.clone();
                d.size = manifest.size;
            }
        }
        let mut entry = manifest.clone();
        entry.annotations.clear();
        entry
            .annotations
            .insert(REPO_DIGESTS.to_string(), digests.join(","));
        let names: Vec<String> = name.map(str::to_string).into_iter().collect();
        self.tag(&entry, &names);
        // Several entries may now stand for the same image: one per name, none nameless if named.
        let named: BTreeSet<String> = self
            .index
            .manifests
            .iter()
            .filter(|d| d.ref_name().is_some())
            .map(|d| d.digest.clone())
            .collect();
        let mut seen = BTreeSet::new();
        self.index.manifests.retain(|d| {
            (d.ref_name().is_some() || !named.contains(&d.digest))
                && seen.insert((d.digest.clone(), d.ref_name().map(str::to_string)))
        });
        Ok(())
    }

    /// Points each name at `manifest`; images losing their last name stay as dangling ones.
    fn tag(&mut self, manifest: &Descriptor, names: &[String]) {
        let manifests = &mut self.index.manifests;
        for name in names {
            if let Some(pos) = manifests.iter().position(|d| d.ref_name() == Some(name)) {
                let old = manifests.remove(pos);
                if old.digest != manifest.digest
                    && !manifests.iter().any(|d| d.digest == old.digest)
                {
                    let mut dangling = old.clone();
                    dangling.annotations.clear();
                    manifests.push(dangling);
                }
            }
            let mut d = manifest.clone();
            d.annotations.insert(REF_NAME.to_string(), name.clone());
            manifests.push(d);
        }
        if let Some(digests) = manifest.annotations.get(REPO_DIGESTS) {
            for d in manifests.iter_mut().filter(|d| d.digest == manifest.digest) {
                d.annotations
                    .insert(REPO_DIGESTS.to_string(), digests.clone());
            }
        }
        // A named image needs no nameless entry.
        if !names.is_empty() {
            manifests.retain(|d| d.digest != manifest.digest || d.ref_name().is_some());
        } else if !manifests.iter().any(|d| d.digest == manifest.digest) {
            manifests.push(manifest.clone());
        }
    }

    fn fix_size(&mut self, manifest: &str) -> Result<(), Error> {
        let size = fs::metadata(self.store.blob_path(manifest)?)
            .map(|m| m.len())
            .unwrap_or(0);
        for d in &mut self.index.manifests {
            if d.digest == manifest {
                d.size = size;
            }
        }
        Ok(())
    }

    /// Publishes the new index.json, then deletes what no image references any more.
    pub fn commit(mut self) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&self.index).expect("serializable");
        write_atomic(&self.store.path("index.json"), &bytes)?;
        self.done = true;
        self.store.recover()
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = self.store.recover() {
                tracing::warn!("cleaning up the image store: {e}");
            }
        }
    }
}

/// The chain ID of a layer `diff` over `parent` (the layer's own diff_id at the bottom).
pub(crate) fn chain_of(parent: Option<&str>, diff: &str) -> String {
    match parent {
        None => diff.to_string(),
        Some(p) => digest::chain_ids(&[p.to_string(), diff.to_string()])[1].clone(),
    }
}

/// Reads one layer blob from `reader` in a single pass: writes its bytes to `blob_path`, unpacks
/// it into `unpack_dir/diff` (with the layer's `meta.json` beside) when given, and checks its
/// digest and diff_id against `expect_blob`/`expect_diff`. Leaves cleaning up to the caller.
pub(crate) fn stream_layer(
    reader: &mut dyn Read,
    what: &str,
    blob_path: &Path,
    unpack_dir: Option<&Path>,
    expect_blob: Option<&str>,
    expect_diff: Option<&str>,
) -> Result<LayerInfo, Error> {
    if let Some(dir) = unpack_dir {
        let diff = dir.join("diff");
        fs::create_dir_all(&diff).at(&diff)?;
    }
    let blob_file = File::create(blob_path).at(blob_path)?;
    // The blob is written and hashed on a second thread while this one unpacks.
    let mut tee = BlobTee::new(reader, blob_file).at(blob_path)?;
    let streamed = unpack_stream(&mut tee, what, unpack_dir);
    if streamed.is_err() && expect_blob.is_some() {
        // A damaged blob fails to decompress: its digest says so more plainly.
        let _ = tee.drain();
    }
    // A failed blob write (a full disk) is why anything after it failed: it comes first.
    let stored = tee.finish().at(blob_path)?;
    let blob_digest = stored.digest;
    if let Some(expected) = expect_blob {
        if expected != blob_digest {
            return Err(mismatch(what, expected, &blob_digest));
        }
    }
    let (kind, diff_digest, tar_size, applied) = streamed?;
    // An uncompressed layer is its own diff.
    let diff_id = if kind == compress::Compression::None {
        blob_digest.clone()
    } else {
        diff_digest
    };
    if let Some(expected) = expect_diff {
        if expected != diff_id {
            return Err(mismatch(
                &format!("{what} (uncompressed)"),
                expected,
                &diff_id,
            ));
        }
    }
    if let Some(dir) = unpack_dir {
        if tar_size < applied.end + 1024 {
            return Err(Error::invalid(format!(
                "{what}: truncated archive (no end-of-archive marker)"
            )));
        }
        let meta = LayerMeta {
            diff_id: diff_id.clone(),
            size: applied.size,
            tar_size,
        };
        let meta_path = dir.join("meta.json");
        fs::write(&meta_path, serde_json::to_vec(&meta).expect("serializable")).at(&meta_path)?;
    }
    Ok(LayerInfo {
        blob: Descriptor::new(kind.layer_media_type(), &blob_digest, stored.size),
        diff_id,
    })
}

fn mismatch(what: &str, expected: &str, actual: &str) -> Error {
    Error::DigestMismatch {
        what: what.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// Reads one layer's raw stream from `tee` to its end: decompresses it, unpacks it into `dir`
/// (or only reads it), and hashes the uncompressed tar unless it is the raw stream itself.
/// Returns the compression, that digest (empty for an uncompressed layer), the tar's size and
/// what unpacking found.
fn unpack_stream(
    tee: &mut BlobTee<&mut dyn Read>,
    what: &str,
    dir: Option<&Path>,
) -> Result<(compress::Compression, String, u64, unpack::Applied), Error> {
    let (kind, prefixed) = compress::sniff(&mut *tee, what)?;
    let dec = compress::decoder(kind, prefixed).map_err(|e| stream_error(what, e))?;
    // The raw stream's digest comes from the blob writer: hashing it twice would only cost time.
    let mut diff = if kind == compress::Compression::None {
        HashReader::counting(dec)
    } else {
        HashReader::new(dec)
    };
    let applied = match dir {
        Some(dir) => unpack::apply(&mut diff, &dir.join("diff"), what)?,
        None => unpack::Applied::default(),
    };
    // What follows the tar's end (or all of it, when only verifying) counts for the digests too.
    diff.drain().map_err(|e| stream_error(what, e))?;
    let (diff_digest, tar_size, _) = diff.finish();
    tee.drain().map_err(|e| stream_error(what, e))?;
    Ok((kind, diff_digest, tar_size, applied))
}

/// Decoder and tar errors are the input's fault; others (a full disk) are the system's.
pub(crate) fn stream_error(what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            Error::invalid(format!("{what}: corrupt or truncated data: {e}"))
        }
        _ => Error::io(what, e),
    }
}
