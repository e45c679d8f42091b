//! import, load, save, images, rmi, image inspect: thin wrappers around minibox-images.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use minibox_images::{reference, Image, ImportOptions, Store};
use serde_json::{json, Value};

use crate::cli::{ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs};
use crate::container::clock;
use crate::paths::Paths;

fn open_input(file: &str) -> Result<Box<dyn Read>> {
    Ok(if file == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| format!("cannot open {file}"))?)
    })
}

pub fn import(paths: &Paths, args: ImportArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let mut input = open_input(&args.file).context("import")?;
    let opts = ImportOptions {
        name: args.reference,
        changes: args.changes,
        source: args.file,
    };
    let image = store.import(&mut input, &opts).context("import")?;
    println!("{}", image.id);
    Ok(0)
}

pub fn load(paths: &Paths, args: LoadArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let mut input = open_input(&args.input).context("load")?;
    let path = (args.input != "-").then(|| Path::new(&args.input));
    for name in store.load(&mut input, path, &args.input).context("load")? {
        if name.starts_with("sha256:") {
            println!("Loaded image ID: {name}");
        } else {
            println!("Loaded image: {name}");
        }
    }
    Ok(0)
}

/// Writes to a temporary name beside the output and renames it: no half-written archive.
pub fn save(paths: &Paths, args: SaveArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    if args.output == "-" {
        let mut out = io::BufWriter::new(io::stdout().lock());
        store.save(&args.images, &mut out).context("save")?;
        out.flush().context("save")?;
        return Ok(0);
    }
    let dest = Path::new(&args.output);
    let tmp = dest.with_file_name(format!(
        ".{}.tmp-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let res = (|| -> Result<()> {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = io::BufWriter::new(file);
        store.save(&args.images, &mut out)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", args.output))?;
        fs::rename(&tmp, dest).with_context(|| format!("writing {}", args.output))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.context("save")?;
    Ok(0)
}

/// Docker's `images`: one row per name (dangling images as `<none>`), newest first; with
/// `--digests`, the registry digest of each row's repository.
pub fn list(paths: &Paths, args: &ImagesArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let mut images = store.images()?;
    images.sort_by_key(|i| std::cmp::Reverse(i.created_secs().unwrap_or(0)));
    let now = clock::now_secs();
    let mut header = vec!["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
    if args.digests {
        header.insert(2, "DIGEST");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for image in &images {
        let created = image
            .created_secs()
            .map(|t| format!("{} ago", clock::human(now.saturating_sub(t.max(0) as u64))))
            .unwrap_or_else(|| "N/A".into());
        let mut names: Vec<(&str, &str)> =
            image.names.iter().map(|n| reference::split(n)).collect();
        // An image known only by digest is listed under its repository.
        for d in &image.repo_digests {
            let repo = d.split_once('@').map_or(d.as_str(), |(r, _)| r);
            if !names.iter().any(|(r, _)| *r == repo) && image.names.is_empty() {
                names.push((repo, "<none>"));
            }
        }
        if names.is_empty() {
            names.push(("<none>", "<none>"));
        }
        for (repo, tag) in names {
            let mut row = vec![
                repo.to_string(),
                tag.to_string(),
                image.short_id().to_string(),
                created.clone(),
                human_size(image.size),
            ];
            if args.digests {
                let digest = image
                    .repo_digests
                    .iter()
                    .find_map(|d| d.strip_prefix(repo)?.strip_prefix('@'))
                    .unwrap_or("<none>");
                row.insert(2, digest.to_string());
            }
            rows.push(row);
        }
    }
    print!("{}", super::table::render(&rows));
    Ok(0)
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits.
fn human_size(size: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// Whether a container uses an image. Convention shared with `run`: each container has a
/// directory `<root>/containers/<id>/` holding a file `image` with the image id (`sha256:...`).
fn in_use(paths: &Paths) -> impl Fn(&str) -> bool {
    let mut used = Vec::new();
    if let Ok(entries) = fs::read_dir(paths.containers()) {
        for e in entries.flatten() {
            if let Ok(id) = fs::read_to_string(e.path().join("image")) {
                used.push(id.trim().to_string());
            }
        }
    }
    move |id: &str| used.iter().any(|u| u == id)
}

pub fn remove(paths: &Paths, args: RmiArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let used = in_use(paths);
    let mut failed = None;
    for reference in &args.images {
        match store.remove(reference, args.force, &used) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("minibox: rmi {reference}: {e}");
                failed = Some(e);
            }
        }
    }
    // Docker's code for a failure outside `run`.
    Ok(u8::from(failed.is_some()))
}

/// Docker's `image inspect`: a JSON array, one object per image found.
pub fn inspect(paths: &Paths, images: &[String]) -> Result<u8> {
    if images.is_empty() {
        bail!("image inspect: name at least one image");
    }
    let store = Store::open(&paths.images())?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for reference in images {
        match store.image(reference) {
            Ok(image) => out.push(inspect_json(&image)),
            Err(e) => missing.push(e.to_string()),
        }
    }
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&out, &mut ser)?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(&buf)?;
    stdout.write_all(b"\n")?;
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    Ok(0)
}

fn inspect_json(image: &Image) -> Value {
    let c = &image.config;
    let config = serde_json::to_value(c.config()).unwrap_or(Value::Null);
    json!({
        "Id": image.id,
        "RepoTags": image.names,
        "RepoDigests": image.repo_digests,
        "Created": c.created(),
        "Author": c.author().clone().unwrap_or_default(),
        "Config": config,
        "Architecture": c.architecture().to_string(),
        "Os": c.os().to_string(),
        "Size": image.size,
        "RootFS": {
            "Type": "layers",
            "Layers": image.diff_ids(),
        },
        "Metadata": { "Manifest": image.manifest },
        "GraphDriver": {
            "Name": "overlay",
            "Data": { "LowerDirs": image.layers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>() },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(human_size(123_400_000), "123MB");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(742), "742B");
    }
}
