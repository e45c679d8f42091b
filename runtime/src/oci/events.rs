//! `events --stats`: the container's memory, cpu and pids figures from its cgroup, in runc's
//! event shape.

use super::{OciError, Result, Root};
use crate::container::cgroups::Cgroup;

pub fn stats(root: &Root, id: &str) -> Result<serde_json::Value> {
    let record = root.load(id)?;
    if !record.alive() {
        return Err(OciError::NotRunning);
    }
    let (memory, cpu, pids) = Cgroup::open(&record.cgroup).stats();
    Ok(serde_json::json!({
        "type": "stats",
        "id": id,
        "data": {
            "cpu": { "usage": { "total": cpu } },
            "memory": { "usage": { "usage": memory } },
            "pids": { "current": pids }
        }
    }))
}
