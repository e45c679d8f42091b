//! `update`: new memory, cpu and pids limits for a container's cgroup (what containerd's shim
//! and the CRI send as JSON on stdin), kept in its config as well.

use oci_spec::runtime::LinuxResources;

use super::{OciError, Result, Root, Status};
use crate::container::cgroups::Cgroup;
use crate::container::state::write_atomic;

/// Reads LinuxResources JSON (`--resources FILE`, or `-` for stdin).
pub fn read_resources(source: &str) -> Result<LinuxResources> {
    let text = match source {
        "-" => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| OciError::io("reading the resources from stdin", e))?;
            buf
        }
        path => std::fs::read(path).map_err(|e| OciError::io(format!("reading {path}"), e))?,
    };
    serde_json::from_slice(&text)
        .map_err(|e| OciError::Invalid(format!("--resources: not OCI linux.resources JSON: {e}")))
}

pub fn update(root: &Root, id: &str, resources: &LinuxResources) -> Result<()> {
    let record = root.load(id)?;
    if root.status(&record) == Status::Stopped {
        return Err(OciError::NotRunning);
    }
    Cgroup::open(&record.cgroup)
        .update(resources)
        .map_err(OciError::from)?;
    let mut spec = root.config(id)?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(resources.clone()));
    spec.set_linux(Some(linux));
    let data = serde_json::to_vec(&spec).expect("a Spec serialises");
    write_atomic(&root.dir(id).join("config.json"), &data)
        .map_err(|e| OciError::Invalid(crate::error::one_line(&e)))
}
