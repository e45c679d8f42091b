//! What the OCI mode keeps of a container, under `--root` (default /run/minibox-runc, apart from
//! `minibox`'s own state so that neither lists or sweeps the other's containers): `<id>/state.json`
//! (this record), `<id>/config.json` (the Spec as created), `<id>/exec.fifo` (until `start`).
//!
//! The status is read from the process itself, never from a record of it: its pid *and* start
//! time (a reused pid is not the container), the exec fifo (created), the freezer (paused).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::{OciError, Result};
use crate::container::cgroups::Cgroup;
use crate::container::liveness::{self, Init};
use crate::container::process::EXEC_FIFO;
use crate::container::state::{check_name, write_atomic};

/// The default `--root`.
pub const DEFAULT_ROOT: &str = "/run/minibox-runc";

/// The OCI version `state` reports.
pub const OCI_VERSION: &str = "1.0.2";

/// The directory that holds the OCI mode's containers.
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

/// One container's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// The container's process (its PID 1) as the host sees it.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat), which tells it from a later process that
    /// got the same pid.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    /// The cgroup, relative to the hierarchies' roots.
    pub cgroup: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl Root {
    pub fn new(dir: &Path) -> Self {
        Self(dir.to_path_buf())
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.0.join(id)
    }

    /// Compiled seccomp filters, shared by the containers (see `seccomp::compile_cached`).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.0.join("seccomp")
    }

    /// Where the base of containers' mount namespaces is pinned (see `container::mntns`).
    pub fn mount_ns_base(&self) -> PathBuf {
        self.0.join("mntns")
    }

    pub fn fifo(&self, id: &str) -> PathBuf {
        self.dir(id).join(EXEC_FIFO)
    }

    /// Checks an id given on the command line (it names a directory).
    pub fn check_id(id: &str) -> Result<()> {
        check_name(id).map_err(|e| OciError::Invalid(crate::error::one_line(&e)))
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        Self::check_id(id)?;
        let path = self.dir(id).join("state.json");
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::NotExist(id.to_string()))
            }
            Err(e) => return Err(OciError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text)
            .map_err(|e| OciError::Invalid(format!("{}: {e}", path.display())))
    }

    pub fn save(&self, record: &Record) -> Result<()> {
        let data = serde_json::to_vec(record).expect("a record serialises");
        write_atomic(&self.dir(&record.id).join("state.json"), &data)
            .map_err(|e| OciError::Invalid(crate::error::one_line(&e)))
    }

    /// The Spec the container was created with.
    pub fn config(&self, id: &str) -> Result<Spec> {
        let path = self.dir(id).join("config.json");
        Spec::load(&path).map_err(|e| OciError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The ids of every container, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(&self.0)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("state.json").exists())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Where the container is in its life, from its process.
    pub fn status(&self, record: &Record) -> Status {
        if !record.alive() {
            return Status::Stopped;
        }
        if self.fifo(&record.id).exists() {
            return Status::Created;
        }
        if Cgroup::open(&record.cgroup).frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The `state` document: ociVersion, id, status, pid (while it lives), bundle, rootfs,
    /// created, owner, annotations.
    pub fn document(&self, record: &Record) -> serde_json::Value {
        let status = self.status(record);
        let pid = if status == Status::Stopped {
            0
        } else {
            record.pid
        };
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": record.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": record.bundle,
            "rootfs": record.rootfs,
            "created": record.created,
            "owner": "",
            "annotations": record.annotations,
        })
    }
}

impl Record {
    /// Whether the container's process still runs (not a zombie, not another process that got
    /// its pid since).
    pub fn alive(&self) -> bool {
        self.init().alive() && !liveness::zombie(self.pid)
    }

    /// The process as the liveness check knows it (signals go through a pidfd checked by it).
    pub fn init(&self) -> Init<'static> {
        Init {
            pid: self.pid,
            start: Some(self.start_time),
            cgroup: None,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.pid)
    }
}
