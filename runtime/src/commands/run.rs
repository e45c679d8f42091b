//! `minibox run`.

use anyhow::{bail, Result};

use crate::cli::{Global, RunArgs};
use crate::paths::Paths;

pub fn run(_paths: &Paths, _global: &Global, _args: RunArgs) -> Result<u8> {
    bail!("run: not implemented yet")
}
