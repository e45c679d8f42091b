//! `pause` and `resume`: the container's cgroup frozen and thawed (v1 freezer, v2 cgroup.freeze).

use super::{OciError, Result, Root, Status};
use crate::container::cgroups::Cgroup;

pub fn pause(root: &Root, id: &str) -> Result<()> {
    let record = root.load(id)?;
    match root.status(&record) {
        Status::Running | Status::Created => {}
        Status::Paused => return Ok(()),
        Status::Stopped => return Err(OciError::NotRunning),
    }
    Cgroup::open(&record.cgroup)
        .freeze()
        .map_err(OciError::from)
}

pub fn resume(root: &Root, id: &str) -> Result<()> {
    let record = root.load(id)?;
    match root.status(&record) {
        Status::Paused => {}
        Status::Stopped => return Err(OciError::NotRunning),
        _ => return Err(OciError::WrongState("not paused", "nothing to resume")),
    }
    Cgroup::open(&record.cgroup).thaw().map_err(OciError::from)
}
