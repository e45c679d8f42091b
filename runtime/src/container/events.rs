//! The event journal, `<root>/events.log`: one JSON line per event in Docker's shape (`Type`,
//! `Action`, `Actor.ID`, `Actor.Attributes`, `time`, `timeNano`), appended by whichever minibox
//! process acts on a container (create, start, die, kill, stop, restart, destroy,
//! `health_status: …`). Each line is one `write` to a file opened for appending, so concurrent
//! writers never interleave. Bounded: past 1 MiB it moves to `events.log.1`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::state;
use crate::paths::Paths;

/// Where the journal moves to `events.log.1`.
const ROTATE_AT: u64 = 1 << 20;

/// The journal, older file first.
pub fn files(paths: &Paths) -> [PathBuf; 2] {
    [
        paths.root.join("events.log.1"),
        paths.root.join("events.log"),
    ]
}

/// Whom an event is about: the container's image and name, as its attributes show them.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub image: Option<String>,
    pub name: Option<String>,
}

impl Actor {
    /// Read from the container's config (without its Spec).
    pub fn of(paths: &Paths, id: &str) -> Self {
        state::load_summary(paths, id)
            .map(|c| Actor {
                image: Some(c.image_name),
                name: c.name,
            })
            .unwrap_or_default()
    }
}

/// Records `action` on container `id` (its name and image come from its config), with `extra`
/// attributes (`exitCode`, `signal`). Best effort: an event that cannot be written is dropped.
pub fn record(paths: &Paths, id: &str, action: &str, extra: &[(&str, String)]) {
    record_as(paths, id, &Actor::of(paths, id), action, extra)
}

/// [`record`] by a caller that has the container's config at hand (`actor`).
pub fn record_as(paths: &Paths, id: &str, actor: &Actor, action: &str, extra: &[(&str, String)]) {
    let mut attributes = Map::new();
    if let Some(image) = &actor.image {
        attributes.insert("image".into(), image.clone().into());
    }
    if let Some(name) = &actor.name {
        attributes.insert("name".into(), name.clone().into());
    }
    for (k, v) in extra {
        attributes.insert((*k).into(), v.clone().into());
    }
    let now = state::now_ns();
    let event = json!({
        "status": action,
        "id": id,
        "from": attributes.get("image").cloned().unwrap_or_default(),
        "Type": "container",
        "Action": action,
        "Actor": {"ID": id, "Attributes": attributes},
        "scope": "local",
        "time": now / 1_000_000_000,
        "timeNano": now,
    });
    let mut line = serde_json::to_vec(&event).expect("events serialise");
    line.push(b'\n');
    let [old, path] = files(paths);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= ROTATE_AT) {
        let _ = std::fs::rename(&path, old);
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path);
    if let Ok(mut f) = file {
        let _ = f.write_all(&line);
    }
}

/// An event's time in nanoseconds since the epoch.
pub fn time_ns(event: &Value) -> u64 {
    event["timeNano"].as_u64().unwrap_or(0)
}
