//! import, load, save, images, rmi, image inspect.

use anyhow::{bail, Result};

use crate::cli::{ImportArgs, LoadArgs, RmiArgs, SaveArgs};
use crate::paths::Paths;

pub fn import(_paths: &Paths, _args: ImportArgs) -> Result<u8> {
    bail!("import: not implemented yet")
}

pub fn load(_paths: &Paths, _args: LoadArgs) -> Result<u8> {
    bail!("load: not implemented yet")
}

pub fn save(_paths: &Paths, _args: SaveArgs) -> Result<u8> {
    bail!("save: not implemented yet")
}

pub fn list(_paths: &Paths) -> Result<u8> {
    bail!("images: not implemented yet")
}

pub fn remove(_paths: &Paths, _args: RmiArgs) -> Result<u8> {
    bail!("rmi: not implemented yet")
}

pub fn inspect(_paths: &Paths, _images: &[String]) -> Result<u8> {
    bail!("image inspect: not implemented yet")
}
