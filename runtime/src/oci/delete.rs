//! `delete`: removes a stopped (or created) container, and with `--force` a running one:
//! whatever runs in its cgroup is killed, the cgroup removed, the poststop hooks run, its
//! records removed. An id already gone is no error with `--force` (a second shim may race).

use std::fs;

use super::hooks::{self, Point};
use super::{OciError, Result, Root, Status};
use crate::container::cgroups::Cgroup;

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let record = match root.load(id) {
        Ok(r) => r,
        Err(OciError::NotExist(_)) if force => {
            // A create that died before it wrote its record may have left the directory.
            let _ = fs::remove_dir_all(root.dir(id));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let status = root.status(&record);
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(OciError::WrongState(
            status.as_str(),
            "stop it first, or delete it with --force",
        ));
    }
    let cgroup = Cgroup::open(&record.cgroup);
    cgroup.kill_all().map_err(OciError::from)?;
    cgroup.delete();
    let spec = root.config(id).ok();
    let state = root.document(&record);
    if let Some(spec) = &spec {
        if let Err(e) = hooks::run(spec, Point::Poststop, &state) {
            tracing::warn!("{e}");
        }
    }
    fs::remove_dir_all(root.dir(id))
        .map_err(|e| OciError::io(format!("removing {}", root.dir(id).display()), e))
}
