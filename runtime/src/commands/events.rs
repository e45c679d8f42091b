//! `minibox events`: the event journal (`container::events`), filtered and formatted as
//! Docker's `events` does. Without `--since` it shows what happens from now on; `--until`
//! stops it (at once when that time is past); otherwise it follows until interrupted.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::Value;

use super::template::Template;
use crate::cli::EventsArgs;
use crate::container::{clock, events, state};
use crate::paths::Paths;

/// The keys `--filter` knows.
const KEYS: [&str; 5] = ["container", "event", "image", "name", "type"];

pub fn events(paths: &Paths, args: &EventsArgs) -> Result<u8> {
    let now = state::now_ns();
    let since = args.since.as_deref().map(|s| time(s, now)).transpose()?;
    let until = args.until.as_deref().map(|s| time(s, now)).transpose()?;
    let mut filters: Vec<(String, String)> = Vec::new();
    for f in &args.filters {
        match f.split_once('=') {
            Some((k, v)) if KEYS.contains(&k) => filters.push((k.into(), v.into())),
            _ => bail!(
                "invalid filter {f:?}: use KEY=VALUE with KEY one of {}",
                KEYS.join(", ")
            ),
        }
    }
    let show = |event: &Value| -> bool {
        let t = events::time_ns(event);
        since.is_none_or(|s| t >= s)
            && until.is_none_or(|u| t <= u)
            && KEYS.iter().all(|key| {
                let mut wanted = filters.iter().filter(|(k, _)| k == key).peekable();
                wanted.peek().is_none() || wanted.any(|(_, v)| matches(event, key, v))
            })
    };
    let template = match args.format.as_deref() {
        Some(f) if f != "json" => Some(Template::parse(f)?),
        _ => None,
    };
    let mut out = std::io::stdout().lock();
    let mut print = |event: &Value| -> bool {
        let line = match (args.format.as_deref(), &template) {
            (_, Some(t)) => t.render(event).unwrap_or_else(|e| format!("minibox: {e}")),
            (Some(_), None) => event.to_string(),
            (None, None) => plain(event),
        };
        // A closed pipe (`events | head`) ends it quietly.
        writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
    };
    let [old, current] = events::files(paths);
    // The past, when asked for: the rotated file, then the current one up to now.
    if since.is_some() {
        if let Ok(f) = std::fs::File::open(&old) {
            for event in BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter_map(parse)
            {
                if show(&event) && !print(&event) {
                    return Ok(0);
                }
            }
        }
    }
    let mut offset = 0;
    if let Ok(mut f) = std::fs::File::open(&current) {
        let mut reader = BufReader::new(&mut f);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if !line.ends_with('\n') {
                break; // being written: read it when whole
            }
            offset += line.len() as u64;
            if let Some(event) = parse(&line) {
                if since.is_some() && show(&event) && !print(&event) {
                    return Ok(0);
                }
            }
            line.clear();
        }
    }
    // Live, until --until (or forever).
    loop {
        if until.is_some_and(|u| state::now_ns() > u) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
        let Ok(mut f) = std::fs::File::open(&current) else {
            continue;
        };
        let len = f.metadata().map_or(0, |m| m.len());
        if len < offset {
            offset = 0; // rotated: the new file from its start
        }
        if len == offset || f.seek(SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut reader = BufReader::new(f);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if !line.ends_with('\n') {
                break;
            }
            offset += line.len() as u64;
            if let Some(event) = parse(&line) {
                if show(&event) && !print(&event) {
                    return Ok(0);
                }
            }
            line.clear();
        }
    }
}

fn parse(line: impl AsRef<str>) -> Option<Value> {
    serde_json::from_str(line.as_ref()).ok()
}

/// Whether `event` matches one `--filter KEY=VALUE`.
fn matches(event: &Value, key: &str, value: &str) -> bool {
    let attr = |k: &str| event["Actor"]["Attributes"][k].as_str().unwrap_or("");
    let id = event["Actor"]["ID"].as_str().unwrap_or("");
    match key {
        "container" => (!value.is_empty() && id.starts_with(value)) || attr("name") == value,
        "name" => attr("name") == value,
        "image" => attr("image") == value,
        "type" => event["Type"] == value,
        // `health_status` matches `health_status: healthy` too.
        "event" => {
            let action = event["Action"].as_str().unwrap_or("");
            action == value || action.split(':').next() == Some(value)
        }
        _ => false,
    }
}

/// Docker's default line: `TIME container ACTION ID (k=v, ...)`.
fn plain(event: &Value) -> String {
    let mut attrs: Vec<String> = event["Actor"]["Attributes"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    attrs.sort();
    format!(
        "{} {} {} {} ({})",
        clock::rfc3339(events::time_ns(event)),
        event["Type"].as_str().unwrap_or(""),
        event["Action"].as_str().unwrap_or(""),
        event["Actor"]["ID"].as_str().unwrap_or(""),
        attrs.join(", ")
    )
}

/// A `--since`/`--until` time in nanoseconds since the epoch.
fn time(s: &str, now: u64) -> Result<u64> {
    clock::parse_time(s, now).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid time {s:?}: give an RFC 3339 time, Unix seconds, or a duration such as 10m"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Value {
        serde_json::json!({"Type": "container", "Action": "health_status: healthy",
            "Actor": {"ID": "abcdef", "Attributes": {"name": "web", "image": "busybox"}},
            "timeNano": 5_000_000_000u64})
    }

    #[test]
    fn filters_and_formats() {
        let e = event();
        assert!(matches(&e, "container", "abc"));
        assert!(matches(&e, "container", "web"));
        assert!(!matches(&e, "container", "db"));
        assert!(matches(&e, "event", "health_status"));
        assert!(!matches(&e, "event", "die"));
        let render = |t: &str| Template::parse(t).unwrap().render(&e).unwrap();
        assert_eq!(
            render("{{.Action}} {{.Actor.Attributes.name}}"),
            "health_status: healthy web"
        );
        assert_eq!(render("{{json .Actor.ID}}"), "\"abcdef\"");
        assert!(plain(&e)
            .ends_with("container health_status: healthy abcdef (image=busybox, name=web)"));
    }

    #[test]
    fn times() {
        let now = 100_000_000_000;
        assert_eq!(time("5", now).unwrap(), 5_000_000_000);
        assert_eq!(time("10s", now).unwrap(), 90_000_000_000);
        assert_eq!(time("1970-01-01T00:00:07Z", now).unwrap(), 7_000_000_000);
        assert!(time("yesterday", now).is_err());
    }
}
