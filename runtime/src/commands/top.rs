//! `top CONTAINER [ps OPTIONS]`: the host's `ps` (default `-ef`), as Docker runs it, keeping the
//! header and the rows of the processes in the container's cgroup.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::container::cgroups::Cgroup;
use crate::container::lifecycle;
use crate::container::state;
use crate::paths::Paths;

pub fn top(paths: &Paths, explain: bool, container: &str, options: &[String]) -> Result<u8> {
    let id = super::resolve(paths, explain, container)?;
    let st = state::load_state(paths, &id)?;
    let (true, Some(cgroup)) = (lifecycle::running(&st), st.cgroup.as_deref()) else {
        bail!("container {container} is not running: start it first");
    };
    let pids: Vec<String> = Cgroup::open(cgroup)
        .procs()
        .iter()
        .map(|p| p.to_string())
        .collect();
    let options = if options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        options.to_vec()
    };
    let out = Command::new("ps")
        .args(&options)
        .output()
        .context("running ps (from procps)")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<&str> = header.split_whitespace().collect();
    let Some(at) = titles.iter().position(|t| *t == "PID") else {
        bail!(
            "ps {}: its output has no PID column: add one (-o pid,...)",
            options.join(" ")
        );
    };
    // The last column (the command) keeps its spaces.
    let cells = |line: &str| -> Vec<String> {
        let mut cells = Vec::new();
        let mut rest = line.trim_start();
        for _ in 1..titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            cells.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        cells.push(rest.to_string());
        cells
    };
    let mut rows = vec![titles.iter().map(|t| t.to_string()).collect::<Vec<_>>()];
    rows.extend(
        lines
            .map(cells)
            .filter(|row| row.get(at).is_some_and(|pid| pids.contains(pid))),
    );
    print!("{}", super::table::render(&rows));
    Ok(0)
}
