//! `inspect`: containers, images and networks by name, as Docker's JSON documents or each
//! through a `--format` template. `image inspect` and `network inspect` are the same with the
//! kind fixed.

use std::io::Write;

use anyhow::{anyhow, Result};
use minibox_images::Store;
use serde_json::Value;

use super::template::Template;
use crate::cli::ObjectType;
use crate::container::state;
use crate::paths::Paths;

/// Prints the documents of `names` (of `kind`, or whatever each name names first: a container,
/// an image, a network), then fails on the first name that named nothing, as Docker does.
pub fn inspect(
    paths: &Paths,
    explain: bool,
    kind: Option<ObjectType>,
    names: &[String],
    format: Option<&str>,
) -> Result<u8> {
    // A template that does not parse is refused before anything is printed.
    let template = format.map(Template::parse).transpose()?;
    let mut docs = Vec::new();
    let mut failure = None;
    for name in names {
        match document(paths, explain, kind, name) {
            Ok(doc) => docs.push(doc),
            Err(e) => {
                if failure.is_some() {
                    eprintln!("minibox: {}", minibox::error::one_line(e.as_ref()));
                } else {
                    failure = Some(e);
                }
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match template {
        Some(t) => {
            for doc in &docs {
                writeln!(out, "{}", t.render(doc)?)?;
            }
        }
        // Docker's indentation: four spaces.
        None => {
            let mut ser = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(&docs, &mut ser)?;
            writeln!(out)?;
        }
    }
    failure.map_or(Ok(0), Err)
}

fn document(paths: &Paths, explain: bool, kind: Option<ObjectType>, name: &str) -> Result<Value> {
    match kind {
        Some(ObjectType::Container) => container(paths, explain, name),
        Some(ObjectType::Image) => image(paths, name),
        Some(ObjectType::Network) => super::network::document(paths, name),
        None => {
            for kind in [
                ObjectType::Container,
                ObjectType::Image,
                ObjectType::Network,
            ] {
                match document(paths, explain, Some(kind), name) {
                    Err(e) if names_nothing(&e) => continue,
                    found => return found,
                }
            }
            Err(anyhow!("no such object: {name}"))
        }
    }
}

/// Whether a look-up found nothing of its kind (a name that is no image reference is no image).
fn names_nothing(e: &anyhow::Error) -> bool {
    use minibox_images::Error as Image;
    matches!(e.downcast_ref(), Some(state::Error::NoSuchContainer(_)))
        || matches!(
            e.downcast_ref(),
            Some(Image::NoSuchImage(_) | Image::Invalid(_))
        )
        || matches!(
            e.downcast_ref(),
            Some(minibox_netns::Error::UnknownNetwork(_))
        )
}

fn container(paths: &Paths, explain: bool, name: &str) -> Result<Value> {
    let id = super::resolve(paths, explain, name)?;
    super::container::document(paths, &id)
}

fn image(paths: &Paths, name: &str) -> Result<Value> {
    let image = Store::open(&paths.images())?.image(name)?;
    Ok(super::image::document(&image))
}
