//! `ps`: containers as Docker lists them, filtered (`--filter`) and shaped (`--format`, `-q`,
//! `-n`, `-l`). Each row is a JSON object with Docker's field names, so the default table,
//! `-q` and a user's template all go through the one template module.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::template;
use crate::cli::PsArgs;
use crate::container::cgroups::Cgroup;
use crate::container::state::{self, State, Status, Summary};
use crate::container::{clock, health};
use crate::paths::Paths;

/// Docker's default `ps` table.
const TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Docker's column titles for the fields a `ps` template can name.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "State": "STATE",
        "Names": "NAMES", "Labels": "LABELS", "Networks": "NETWORKS", "Mounts": "MOUNTS",
        "Size": "SIZE", "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// One container as `ps` sees it.
struct Row {
    summary: Summary,
    state: State,
    /// Docker's State: the status, "paused" for a frozen running container, "restarting"
    /// while its supervisor waits to start it again.
    status: &'static str,
    /// Its health check's status, when it has one.
    health: Option<String>,
}

pub fn ps(paths: &Paths, args: &PsArgs) -> Result<u8> {
    let filters = Filters::parse(&args.filters)?;
    let format = match (&args.format, args.quiet) {
        (_, true) => "{{.ID}}".to_string(),
        (Some(f), false) => f.clone(),
        (None, false) => TABLE.to_string(),
    };
    let every = args.all || args.latest || args.last.is_some() || filters.has("status");
    let mut rows: Vec<Row> = state::ids(paths)
        .iter()
        .filter_map(|id| {
            let summary = state::load_summary(paths, id).ok()?;
            let state = state::load_state(paths, id).ok()?;
            let status = status_of(&state);
            let health = health::load(paths, id).map(|h| h.status);
            Some(Row {
                summary,
                state,
                status,
                health,
            })
        })
        .filter(|r| every || r.state.status == Status::Running || r.state.restarting)
        .filter(|r| filters.matches(r))
        .collect();
    // Newest first; `created` is in seconds, so within one the later start comes first.
    rows.sort_by(|a, b| {
        (b.summary.created.cmp(&a.summary.created))
            .then(b.state.started_at.cmp(&a.state.started_at))
            .then(a.summary.id.cmp(&b.summary.id))
    });
    if let Some(n) = args.last.or(args.latest.then_some(1)) {
        rows.truncate(n);
    }
    let now = clock::now_secs();
    let values: Vec<Value> = rows.iter().map(|r| row(r, now, args.no_trunc)).collect();
    print!("{}", template::render_rows(&format, &values, &headers())?);
    Ok(0)
}

fn status_of(st: &State) -> &'static str {
    let frozen = || {
        st.cgroup
            .as_deref()
            .is_some_and(|c| Cgroup::open(c).frozen())
    };
    match st.status {
        Status::Running if frozen() => "paused",
        Status::Exited if st.restarting => "restarting",
        s => s.as_str(),
    }
}

fn row(r: &Row, now: u64, no_trunc: bool) -> Value {
    let (c, st) = (&r.summary, &r.state);
    let mut command = c.command().join(" ");
    if !no_trunc && command.chars().count() > 20 {
        command = command.chars().take(19).collect::<String>() + "…";
    }
    let ago = |ns: Option<u64>| clock::human(now.saturating_sub(ns.unwrap_or(0) / 1_000_000_000));
    let health = match r.health.as_deref() {
        Some("starting") => " (health: starting)".to_string(),
        Some(h) => format!(" ({h})"),
        None => String::new(),
    };
    let status = match st.status {
        Status::Running if r.status == "paused" => format!("Up {} (Paused)", ago(st.started_at)),
        Status::Running => format!("Up {}{health}", ago(st.started_at)),
        Status::Exited if st.restarting => format!(
            "Restarting ({}) {} ago",
            st.exit_code.unwrap_or(0),
            ago(st.finished_at)
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            st.exit_code.unwrap_or(0),
            ago(st.finished_at)
        ),
        Status::Created => "Created".into(),
    };
    let ports = match (&st.attachment, st.status) {
        (Some(a), Status::Running) => a.ports_column(),
        _ => String::new(),
    };
    let id = if no_trunc {
        &c.id[..]
    } else {
        &c.id[..12.min(c.id.len())]
    };
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "ID": id,
        "Image": c.image_name,
        "Command": format!("\"{command}\""),
        "CreatedAt": clock::docker_time(c.created),
        "RunningFor": format!("{} ago", clock::human(now.saturating_sub(c.created))),
        "Ports": ports,
        "Status": status,
        "State": r.status,
        "Names": c.name.clone().unwrap_or_default(),
        "Labels": labels.join(","),
        "Networks": if c.network == "none" { "none".to_string() } else { c.network.clone() },
        "Mounts": "",
        "Size": "",
        "LocalVolumes": "0",
    })
}

/// `--filter KEY=VALUE`s: the values of one key are alternatives, the keys must all match.
struct Filters(Vec<(String, Vec<String>)>);

const KEYS: [&str; 8] = [
    "name", "id", "label", "status", "ancestor", "network", "publish", "exited",
];

impl Filters {
    fn parse(given: &[String]) -> Result<Self> {
        let mut all: Vec<(String, Vec<String>)> = Vec::new();
        for f in given {
            let Some((key, value)) = f.split_once('=') else {
                bail!("bad format of filter {f:?}: expected KEY=VALUE");
            };
            let key = key.to_ascii_lowercase();
            if !KEYS.contains(&key.as_str()) {
                bail!("invalid filter {key:?}: use one of {}", KEYS.join(", "));
            }
            if key == "status"
                && ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&value)
            {
                bail!("invalid filter 'status={value}': use created, running, paused or exited");
            }
            if key == "exited" && value.parse::<i32>().is_err() {
                bail!("invalid filter 'exited={value}': give an exit code");
            }
            match all.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value.to_string()),
                None => all.push((key, vec![value.to_string()])),
            }
        }
        Ok(Filters(all))
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn matches(&self, r: &Row) -> bool {
        self.0
            .iter()
            .all(|(key, values)| values.iter().any(|v| matches(key, v, r)))
    }
}

fn matches(key: &str, value: &str, r: &Row) -> bool {
    let (c, st) = (&r.summary, &r.state);
    match key {
        "name" => c.name.as_deref().is_some_and(|n| pattern(value, n)),
        "id" => c.id.starts_with(value),
        "label" => match value.split_once('=') {
            Some((k, v)) => c.labels.get(k).is_some_and(|x| x == v),
            None => c.labels.contains_key(value),
        },
        "status" => r.status == value,
        "ancestor" => {
            let hex = c.image.strip_prefix("sha256:").unwrap_or(&c.image);
            let short = value.strip_prefix("sha256:").unwrap_or(value);
            c.image_name == value
                || c.image_name == format!("{value}:latest")
                || (short.len() >= 4 && hex.starts_with(short))
        }
        "network" => c.network == value,
        "publish" => {
            let (port, proto) = value.split_once('/').unwrap_or((value, "tcp"));
            st.status == Status::Running
                && st.attachment.iter().flat_map(|a| a.bridge.iter()).any(|b| {
                    b.ports
                        .iter()
                        .any(|m| m.host_port.to_string() == port && m.proto.to_string() == proto)
                })
        }
        "exited" => {
            st.status == Status::Exited && st.exit_code.map(i32::from) == value.parse().ok()
        }
        _ => false,
    }
}

/// Docker's name filter is a regular expression; the forms used are a plain substring, maybe
/// anchored with `^` and `$`.
fn pattern(pattern: &str, name: &str) -> bool {
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => name == p,
        (true, false) => name.starts_with(p),
        (false, true) => name.ends_with(p),
        (false, false) => name.contains(p),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn name_patterns() {
        assert!(super::pattern("web", "my-web-1"));
        assert!(super::pattern("^web", "web-1"));
        assert!(!super::pattern("^web$", "web-1"));
        assert!(super::pattern("1$", "web-1"));
    }
}
