//! import, load, save, images, rmi, image inspect: thin wrappers around minibox-images.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use minibox_images::{reference, Image, ImportOptions, Store};
use serde_json::{json, Value};

use super::{template, units};
use crate::cli::{
    HistoryArgs, ImagePruneArgs, ImagesArgs, ImportArgs, LoadArgs, RmiArgs, SaveArgs,
};
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

/// Docker's `images` table, and its `--digests` form.
const TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Docker's column titles for the fields an `images` template can name.
fn headers() -> Value {
    json!({
        "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS",
    })
}

/// Docker's `images`: one row per name (dangling images as `<none>`), newest first; `-q` the
/// ids once each; `REPOSITORY[:TAG]` only that repository (or that tag of it).
pub fn list(paths: &Paths, args: &ImagesArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let mut images = store.images()?;
    images.sort_by_key(|i| std::cmp::Reverse(i.created_secs().unwrap_or(0)));
    let wanted_name = args
        .reference
        .as_deref()
        .map(|r| reference::normalize(r).unwrap_or_else(|_| r.to_string()));
    let wanted = wanted_name.as_deref().map(reference::split);
    // `images busybox` lists every tag of busybox; `images busybox:1` that one.
    let tag_given = args
        .reference
        .as_deref()
        .is_some_and(|r| r.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/')));
    let now = clock::now_secs();
    let mut rows = Vec::new();
    for image in &images {
        let created = image.created_secs().map(|t| t.max(0) as u64);
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
            if let Some((want_repo, want_tag)) = wanted {
                if repo != want_repo || (tag_given && tag != want_tag) {
                    continue;
                }
            }
            let digest = image
                .repo_digests
                .iter()
                .find_map(|d| d.strip_prefix(repo)?.strip_prefix('@'))
                .unwrap_or("<none>");
            rows.push(json!({
                "Repository": repo,
                "Tag": tag,
                "ID": image.short_id(),
                "Digest": digest,
                "CreatedSince": created
                    .map_or("N/A".into(), |t| format!("{} ago", clock::human(now.saturating_sub(t)))),
                "CreatedAt": created.map_or(String::new(), clock::docker_time),
                "Size": units::decimal(image.size),
                "Containers": "N/A",
            }));
        }
    }
    if args.quiet {
        // Docker's -q: each image once, as its short id.
        let mut seen = std::collections::HashSet::new();
        for id in rows.iter().filter_map(|r| r["ID"].as_str()) {
            if seen.insert(id) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let format = match (&args.format, args.digests) {
        (Some(f), _) => f.as_str(),
        (None, true) => TABLE_DIGESTS,
        (None, false) => TABLE,
    };
    print!("{}", template::render_rows(format, &rows, &headers())?);
    Ok(0)
}

/// Whether a container uses an image. Convention shared with `run`: each container has a
/// directory `<root>/containers/<id>/` holding a file `image` with the image id (`sha256:...`).
/// Each container with the image it was made from.
fn users(paths: &Paths) -> Vec<(String, String)> {
    let mut users = Vec::new();
    if let Ok(entries) = fs::read_dir(paths.containers()) {
        for e in entries.flatten() {
            if let Ok(image) = fs::read_to_string(e.path().join("image")) {
                let id = e.file_name().to_string_lossy().into_owned();
                users.push((id, image.trim().to_string()));
            }
        }
    }
    users
}

fn in_use(paths: &Paths) -> impl Fn(&str) -> bool {
    let used: Vec<String> = users(paths).into_iter().map(|(_, image)| image).collect();
    move |id: &str| used.iter().any(|u| u == id)
}

pub fn remove(paths: &Paths, explain: bool, args: RmiArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    // A container whose owner died holds its image until it is recovered (a `--rm` one is
    // removed then): those of the images named are recovered first.
    let named: Vec<String> = args
        .images
        .iter()
        .filter_map(|r| store.image(r).ok().map(|i| i.id))
        .collect();
    for (id, image) in users(paths) {
        if named.contains(&image) {
            crate::container::lifecycle::settle_removed(paths, explain, &id);
        }
    }
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

/// Docker's `image inspect` document. Its `Config` is the stored one, with what oci-spec's
/// type drops (`Healthcheck`).
pub(super) fn document(store: &Store, image: &Image) -> Value {
    let c = &image.config;
    let stored = store
        .config_blob(image)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|mut v| v.get_mut("config").map(Value::take));
    let config = stored.unwrap_or_else(|| serde_json::to_value(c.config()).unwrap_or(Value::Null));
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

/// Docker's `history` table.
const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// `history IMAGE`: the image's history entries, newest first, each non-empty one beside the
/// size of its layer; the newest row carries the image id, the others `<missing>` (their own
/// images are not in the store), as Docker shows a pulled image.
pub fn history(paths: &Paths, args: &HistoryArgs) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let image = store.image(&args.image)?;
    let now = clock::now_secs();
    let mut layers = image.layers.iter();
    let entries = image.config.history().clone().unwrap_or_default();
    let mut rows: Vec<Value> = Vec::new();
    let seconds = |t: Option<&String>| {
        t.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    let layer_size =
        |layer: Option<&std::path::PathBuf>| layer.map_or(0, |l| super::system::disk_usage(l));
    if entries.is_empty() {
        // An image without a history: one row per layer.
        for layer in image.layers.iter() {
            rows.push(
                json!({"CreatedSince": "N/A", "CreatedAt": "", "CreatedBy": "",
                             "Size": units::decimal(layer_size(Some(layer))), "Comment": ""}),
            );
        }
    }
    for h in &entries {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty { 0 } else { layer_size(layers.next()) };
        let created = seconds(h.created().as_ref());
        let mut by = h.created_by().clone().unwrap_or_default();
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(json!({
            "CreatedSince": created.map_or("N/A".into(), |t| format!("{} ago", clock::human(now.saturating_sub(t)))),
            "CreatedAt": created.map_or(String::new(), clock::docker_time),
            "CreatedBy": by,
            "Size": units::decimal(size),
            "Comment": h.comment().clone().unwrap_or_default(),
        }));
    }
    rows.reverse();
    for (i, row) in rows.iter_mut().enumerate() {
        let id = match (i, args.no_trunc) {
            (0, true) => image.id.clone(),
            (0, false) => image.short_id().to_string(),
            _ => "<missing>".into(),
        };
        row["ID"] = id.into();
    }
    let format = match (&args.format, args.quiet) {
        (_, true) => "{{.ID}}",
        (Some(f), false) => f.as_str(),
        (None, false) => HISTORY_TABLE,
    };
    let headers = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                         "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    print!("{}", template::render_rows(format, &rows, &headers)?);
    Ok(0)
}

/// `image prune`: removes the images no container uses that have no name (`-a`: every image
/// no container uses).
pub fn prune(paths: &Paths, args: &ImagePruneArgs) -> Result<u8> {
    let warning = if args.all {
        "This will remove all images without at least one container associated to them."
    } else {
        "This will remove all dangling images."
    };
    if !super::container::confirmed(warning, args.force) {
        return Ok(0);
    }
    let store = Store::open(&paths.images())?;
    let used = in_use(paths);
    let mut lines = Vec::new();
    let mut reclaimed = 0;
    for image in store.images()? {
        if used(&image.id) || (!args.all && !image.names.is_empty()) {
            continue;
        }
        // Each of its names, then the image itself once the last is gone.
        let mut names = image.names.clone();
        if names.is_empty() {
            names.push(image.id.clone());
        }
        for name in names {
            match store.remove(&name, false, &used) {
                // Docker's prune words: "untagged: NAME", "deleted: ID".
                Ok(removed) => lines.extend(removed.iter().map(|l| {
                    l.replacen("Untagged:", "untagged:", 1)
                        .replacen("Deleted:", "deleted:", 1)
                })),
                Err(e) => eprintln!("minibox: removing image {name}: {e}"),
            }
        }
        if store.image(&image.id).is_err() {
            reclaimed += image.size;
        }
    }
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", units::decimal(reclaimed));
    Ok(0)
}
