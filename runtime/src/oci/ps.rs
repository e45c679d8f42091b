//! `ps`: the container's processes: their pids as JSON, or the lines of `ps(1)` (with the given
//! options) that are theirs.

use std::process::Command;

use nix::unistd::Pid;

use super::{OciError, Result, Root};
use crate::container::cgroups::Cgroup;

pub fn pids(root: &Root, id: &str) -> Result<Vec<Pid>> {
    let record = root.load(id)?;
    Ok(Cgroup::open(&record.cgroup).procs())
}

/// The table: ps(1)'s header and the lines whose PID column is one of the container's.
pub fn table(pids: &[Pid], ps_args: &[String]) -> Result<String> {
    let args: Vec<String> = match ps_args.is_empty() {
        true => vec!["-ef".into()],
        false => ps_args.to_vec(),
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| OciError::io("running ps", e))?;
    if !out.status.success() {
        return Err(OciError::Invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| OciError::Invalid("ps printed no PID column".into()))?;
    let mut table = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&Pid::from_raw(p))) {
            table.push_str(line);
            table.push('\n');
        }
    }
    Ok(table)
}
