//! The image side of `run`, through minibox-images: find the image, read its config, prepare,
//! mount and remove the container's root filesystem.

use std::path::Path;

use minibox_images::{rootfs, Image, Store};

use super::spec::ImageConfig;
use crate::paths::Paths;

/// What can go wrong; the image library says why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the image store")]
    Store(#[source] minibox_images::Error),
    #[error("image {0:?}")]
    Image(String, #[source] minibox_images::Error),
    #[error("preparing the root filesystem")]
    Prepare(#[source] minibox_images::Error),
    #[error("removing the root filesystem")]
    Remove(#[source] minibox_images::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct Found {
    pub id: String,
    pub config: ImageConfig,
    image: Image,
}

/// The prepared root filesystem; `mount` runs in the child, before pivot_root.
pub struct Rootfs(rootfs::Rootfs);

pub fn find(paths: &Paths, reference: &str) -> Result<Found> {
    let store = Store::open(&paths.images()).map_err(Error::Store)?;
    let image = store
        .image(reference)
        .map_err(|e| Error::Image(reference.to_string(), e))?;
    let mut config = ImageConfig::default();
    if let Some(c) = image.config.config() {
        let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        config.entrypoint = list(c.entrypoint());
        config.cmd = list(c.cmd());
        config.env = list(c.env());
        config.working_dir = c.working_dir().clone().unwrap_or_default();
        config.user = c.user().clone().unwrap_or_default();
        config.exposed = list(c.exposed_ports());
        config.stop_signal = c.stop_signal().clone();
        config.volumes = list(c.volumes());
    }
    config.healthcheck = store
        .config_blob(&image)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .and_then(|v| super::health::from_image(&v));
    Ok(Found {
        id: image.id.clone(),
        config,
        image,
    })
}

/// The image's layer directories, top first: where its files are looked up (the first layer
/// that has a path, or a whiteout for it, decides).
pub fn layers(found: &Found) -> Vec<&Path> {
    found
        .image
        .layers
        .iter()
        .rev()
        .map(|p| p.as_path())
        .collect()
}

/// The container's root filesystem, made ready to mount; `volatile` (a `--rm` container's, which
/// nothing keeps after a crash): its writable layer is never synced (see `Rootfs::volatile`).
pub fn prepare(found: &Found, container_dir: &Path, volatile: bool) -> Result<Rootfs> {
    let fs = rootfs::prepare(&found.image, container_dir).map_err(Error::Prepare)?;
    match volatile {
        true => fs.volatile().map(Rootfs).map_err(Error::Prepare),
        false => Ok(Rootfs(fs)),
    }
}

impl Rootfs {
    pub fn mount(&self, target: &Path) -> Result<(), String> {
        self.open()?.mount(target)
    }

    /// Opens what it is mounted from, while the store is in view (see `rootfs::Rootfs::open`).
    pub fn open(&self) -> Result<Source, String> {
        self.0
            .open()
            .map(Source)
            .map_err(|e| crate::error::one_line(&e))
    }
}

/// An opened root filesystem, mounted where the store may be out of view.
pub struct Source(rootfs::Source);

impl Source {
    pub fn mount(&self, target: &Path) -> Result<(), String> {
        self.0.mount(target).map_err(|e| crate::error::one_line(&e))
    }
}

pub fn remove(container_dir: &Path) -> Result<()> {
    rootfs::remove(container_dir).map_err(Error::Remove)
}
