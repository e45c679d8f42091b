//! `stats`: each running container's cpu, memory, network, block I/O and processes, from its
//! cgroup (v1 or v2) and its network namespace's counters. CPU % needs two readings: they are
//! half a second apart for `--no-stream`, a second apart while streaming.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use super::{template, units};
use crate::cli::StatsArgs;
use crate::container::cgroups::{Cgroup, Usage};
use crate::container::lifecycle;
use crate::container::state::{self, Status};
use crate::paths::Paths;

/// Docker's default `stats` table.
const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Name": "NAME", "Container": "CONTAINER", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// One container being watched.
struct Watched {
    id: String,
    given: String,
    name: String,
    cgroup: Cgroup,
    pid: i32,
}

pub fn stats(paths: &Paths, explain: bool, args: &StatsArgs) -> Result<u8> {
    let format = args.format.as_deref().unwrap_or(TABLE);
    // Checked before anything is measured.
    template::render_rows(format, &[], &headers())?;
    let host_memory = host_memory();
    let ids: Vec<(String, String)> = if args.containers.is_empty() {
        state::ids(paths)
            .into_iter()
            .map(|id| (id.clone(), id))
            .collect()
    } else {
        let mut found = Vec::new();
        for what in &args.containers {
            found.push((super::resolve(paths, explain, what)?, what.clone()));
        }
        found
    };
    let watched: Vec<Watched> = ids
        .into_iter()
        .filter_map(|(id, given)| {
            let st = state::load_state(paths, &id).ok()?;
            let config = state::load_config(paths, &id).ok()?;
            // Only running containers have a cgroup to read.
            if st.status != Status::Running || !lifecycle::running(&st) {
                return None;
            }
            Some(Watched {
                name: config.name.clone().unwrap_or_default(),
                cgroup: Cgroup::open(st.cgroup.as_deref()?),
                pid: st.pid,
                id,
                given,
            })
        })
        .collect();
    let mut before = sample(&watched);
    let mut out = std::io::stdout().lock();
    loop {
        std::thread::sleep(Duration::from_millis(if args.no_stream {
            500
        } else {
            1000
        }));
        let now = sample(&watched);
        let rows: Vec<Value> = watched
            .iter()
            .map(|w| row(w, &before[&w.id], &now[&w.id], args.no_trunc, host_memory))
            .collect();
        let table = template::render_rows(format, &rows, &headers())?;
        if args.no_stream {
            write!(out, "{table}")?;
            return Ok(0);
        }
        // Docker's screen: cleared and drawn again every second.
        write!(out, "\x1b[2J\x1b[H{table}")?;
        out.flush()?;
        before = now;
    }
}

/// One reading of every watched container: when, what its cgroup used, its network's bytes.
type Reading = (Instant, Usage, (u64, u64));

fn sample(watched: &[Watched]) -> HashMap<String, Reading> {
    watched
        .iter()
        .map(|w| {
            let reading = (Instant::now(), w.cgroup.usage(), net_io(w.pid));
            (w.id.clone(), reading)
        })
        .collect()
}

fn row(w: &Watched, before: &Reading, now: &Reading, no_trunc: bool, host_memory: u64) -> Value {
    let (t0, u0, _) = before;
    let (t1, u, (rx, tx)) = now;
    let wall = t1.duration_since(*t0).as_nanos().max(1) as f64;
    // Percent of one CPU, as Docker's (cpu delta / system delta × CPUs).
    let cpu = u.cpu_ns.saturating_sub(u0.cpu_ns) as f64 / wall * 100.0;
    // The kernel's limit now, else the host's memory (as Docker shows it).
    let limit = u.memory_limit.unwrap_or(host_memory);
    let mem = u.memory as f64 / limit.max(1) as f64 * 100.0;
    let id = if no_trunc { &w.id[..] } else { &w.id[..12] };
    json!({
        "ID": id,
        "Name": w.name,
        "Container": w.given,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", units::binary(u.memory), units::binary(limit)),
        "MemPerc": format!("{mem:.2}%"),
        "NetIO": format!("{} / {}", units::decimal(*rx), units::decimal(*tx)),
        "BlockIO": format!("{} / {}", units::decimal(u.block_read), units::decimal(u.block_write)),
        "PIDs": u.pids.to_string(),
    })
}

/// Bytes received and sent on the container's interfaces but loopback, from its network
/// namespace's `/proc/net/dev` (seen through its PID 1).
fn net_io(pid: i32) -> (u64, u64) {
    let Ok(dev) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    dev.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, counters) = l.split_once(':')?;
            let c: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            (name.trim() != "lo" && c.len() > 8).then(|| (c[0], c[8]))
        })
        .fold((0, 0), |(r, t), (rx, tx)| (r + rx, t + tx))
}

/// The host's memory, the limit of a container without `--memory` (as Docker shows it).
pub(super) fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
