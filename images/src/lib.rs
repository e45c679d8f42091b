//! minibox's image store: import, load and save images, unpack layers safely, and mount
//! container root filesystems. Independent of the runtime and of networking.
//!
//! What the runtime uses to run a container:
//! ```no_run
//! # fn main() -> Result<(), minibox_images::Error> {
//! # let (root, container_dir, target) = (std::path::Path::new("/r"), std::path::Path::new("/c"), std::path::Path::new("/c/rootfs"));
//! use minibox_images::{rootfs, Store};
//! let image = Store::open(&root.join("images"))?.image("busybox")?; // NAME[:TAG] or (short) id
//! let fs = rootfs::prepare(&image, container_dir)?; // in the parent: dirs, option data
//! fs.mount(target)?; // in the container's mount namespace, before pivot_root
//! rootfs::remove(container_dir)?; // on teardown: unmount, remove <container_dir>/fs
//! # Ok(()) }
//! ```
//! `rmi` asks the caller whether a container uses an image (`Store::remove`'s `in_use`); the
//! runtime records that as a file `<root>/containers/<id>/image` holding the image id.

mod archive;
mod changes;
mod compress;
mod copy;
pub mod digest;
mod error;
mod import;
mod layout;
pub mod reference;
pub mod registry;
pub mod rootfs;
mod staging;
mod store;
mod tee;
mod unpack;
mod upper;

pub use copy::apply_layer;
pub use error::Error;
pub use import::ImportOptions;
pub use store::{Image, Store};
pub use upper::{diff, export, CommitOptions};
