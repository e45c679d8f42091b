//! `minibox diff`, `export` and `commit`: a container's writable layer read back, through the
//! image store (`minibox_images::{diff, export}`, `Store::commit`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minibox_images::{rootfs, CommitOptions, Image, Store};

use crate::cli::CommitArgs;
use crate::container::state;
use crate::paths::Paths;

/// The container's image and writable layer.
fn layers(paths: &Paths, explain: bool, what: &str) -> Result<(Store, Image, PathBuf)> {
    let id = super::resolve(paths, explain, what)?;
    let config = state::load_config(paths, &id)?;
    let store = Store::open(&paths.images()).context("opening the image store")?;
    let image = store
        .image(&config.image)
        .with_context(|| format!("the image of container {what}"))?;
    let upper = rootfs::upper(&state::dir(paths, &id)).with_context(|| {
        format!("container {what} has no writable layer of its own (never started, or its root filesystem is a copy)")
    })?;
    Ok((store, image, upper))
}

pub fn diff(paths: &Paths, explain: bool, what: &str) -> Result<u8> {
    let (_, image, upper) = layers(paths, explain, what)?;
    let mut out = std::io::stdout().lock();
    for (kind, path) in minibox_images::diff(&image, &upper)? {
        writeln!(out, "{kind} {path}")?;
    }
    Ok(0)
}

pub fn export(paths: &Paths, explain: bool, what: &str, output: Option<&Path>) -> Result<u8> {
    let (_, image, upper) = layers(paths, explain, what)?;
    match output {
        Some(path) => {
            // Written aside and renamed: a failed export leaves no partial archive.
            let tmp = path.with_extension("minibox-tmp");
            let mut file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let done = minibox_images::export(&image, &upper, &mut file)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
            if done.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            done.with_context(|| format!("writing {}", path.display()))?;
        }
        None => minibox_images::export(&image, &upper, &mut std::io::stdout().lock())?,
    }
    Ok(0)
}

pub fn commit(paths: &Paths, explain: bool, args: &CommitArgs) -> Result<u8> {
    let (store, image, upper) = layers(paths, explain, &args.container)?;
    let opts = CommitOptions {
        name: args.reference.clone(),
        comment: args.message.clone(),
        author: args.author.clone(),
        changes: args.changes.clone(),
    };
    let new = store.commit(&image, &upper, &opts)?;
    println!("{}", new.id);
    Ok(0)
}
