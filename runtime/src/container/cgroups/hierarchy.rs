//! Where the cgroup v1 controllers are mounted, found as runc finds them: each controller the
//! process is in (`/proc/self/cgroup`, a line per hierarchy) at `/sys/fs/cgroup/<name>`, checked
//! to be a cgroup mount with statfs. cgroups-rs's own v1 hierarchy reads the whole of
//! /proc/self/mountinfo instead, whose size grows with every container running (each has its
//! `/run/netns` pin and its /etc tmpfs in the host's mount namespace); it stays the fallback for
//! hosts that mount the controllers elsewhere. Found once per process. v2 (cgroup2 on
//! /sys/fs/cgroup) is cgroups-rs's own, as before.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cgroups_rs::blkio::BlkIoController;
use cgroups_rs::cgroup::Cgroup;
use cgroups_rs::cpu::CpuController;
use cgroups_rs::cpuacct::CpuAcctController;
use cgroups_rs::cpuset::CpuSetController;
use cgroups_rs::devices::DevicesController;
use cgroups_rs::freezer::FreezerController;
use cgroups_rs::hierarchies::{self, UNIFIED_MOUNTPOINT, V1, V2};
use cgroups_rs::hugetlb::HugeTlbController;
use cgroups_rs::memory::MemController;
use cgroups_rs::net_cls::NetClsController;
use cgroups_rs::net_prio::NetPrioController;
use cgroups_rs::perf_event::PerfEventController;
use cgroups_rs::pid::PidController;
use cgroups_rs::rdma::RdmaController;
use cgroups_rs::systemd::SystemdController;
use cgroups_rs::{Controllers, Hierarchy, Subsystem};
use nix::sys::statfs::{statfs, CGROUP_SUPER_MAGIC};

/// The v1 controllers in cgroups-rs's order (blkio before memory: cgroup writeback wants a
/// process in its blkio cgroup first).
const ORDER: [Controllers; 14] = [
    Controllers::BlkIo,
    Controllers::Mem,
    Controllers::Pids,
    Controllers::CpuSet,
    Controllers::CpuAcct,
    Controllers::Cpu,
    Controllers::Devices,
    Controllers::Freezer,
    Controllers::NetCls,
    Controllers::PerfEvent,
    Controllers::NetPrio,
    Controllers::HugeTlb,
    Controllers::Rdma,
    Controllers::Systemd,
];

/// The hierarchy a cgroup of this host lives in: cgroup2 alone, or the v1 controllers (a hybrid
/// host's empty unified mount apart, as cgroups-rs does).
pub fn auto() -> Box<dyn Hierarchy> {
    if hierarchies::is_cgroup2_unified_mode() {
        return Box::new(V2::new());
    }
    Box::new(V1_MOUNTS.get_or_init(Mounts::find).clone())
}

/// On v1, has the cpuset cgroup that will hold `path` (`PARENT/ID`) give its CPUs and memory
/// nodes to each new child (`cgroup.clone_children`), when it exists and is not the root. A
/// new cpuset cgroup is otherwise empty, and the writes that fill it (cgroups-rs's) rebuild
/// the scheduler's domains, walking every task on the host: over a millisecond with 1000
/// containers running. LXC does the same.
pub fn inherit_cpuset(path: &str) {
    if hierarchies::is_cgroup2_unified_mode() {
        return;
    }
    let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return;
    };
    let mounts = V1_MOUNTS.get_or_init(Mounts::find);
    let Some((_, root)) = mounts.0.iter().find(|(c, _)| *c == Controllers::CpuSet) else {
        return;
    };
    let flag = root.join(parent).join("cgroup.clone_children");
    if std::fs::read(&flag).is_ok_and(|v| v.starts_with(b"0")) {
        // Best effort: without it, cgroups-rs fills the new cgroup as before.
        let _ = std::fs::write(&flag, "1");
    }
}

static V1_MOUNTS: OnceLock<Mounts> = OnceLock::new();

/// The v1 controllers this host has, each with its mount point.
#[derive(Debug, Clone)]
struct Mounts(Vec<(Controllers, PathBuf)>);

impl Mounts {
    fn find() -> Self {
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Self::at_default_paths(&mine).unwrap_or_else(|| {
            let v1 = V1::new();
            Self(
                ORDER
                    .iter()
                    .filter_map(|c| Some((c.clone(), v1.get_mount_point(c.clone())?)))
                    .collect(),
            )
        })
    }

    /// Every v1 controller named in `proc_self_cgroup` (`ID:CONTROLLERS:PATH` lines) at
    /// /sys/fs/cgroup/<name>, or `None` when one is not there.
    fn at_default_paths(proc_self_cgroup: &str) -> Option<Self> {
        let names: Vec<&str> = proc_self_cgroup
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .flat_map(|c| c.split(','))
            .filter(|c| !c.is_empty())
            .collect();
        let mut found = Vec::new();
        for c in ORDER
            .iter()
            .filter(|c| names.contains(&c.to_string().as_str()))
        {
            let name = c.to_string();
            let mut dir = Path::new(UNIFIED_MOUNTPOINT).join(name.trim_start_matches("name="));
            // Co-mounted controllers: `cpu` links to `cpu,cpuacct`; one directory for both,
            // as in mountinfo.
            if let Ok(target) = std::fs::read_link(&dir) {
                if target.components().count() != 1 {
                    return None;
                }
                dir = Path::new(UNIFIED_MOUNTPOINT).join(target);
            }
            match statfs(&dir) {
                Ok(s) if s.filesystem_type() == CGROUP_SUPER_MAGIC => found.push((c.clone(), dir)),
                _ => return None,
            }
        }
        Some(Self(found))
    }
}

impl Hierarchy for Mounts {
    fn v2(&self) -> bool {
        false
    }

    fn subsystems(&self) -> Vec<Subsystem> {
        self.0
            .iter()
            .map(|(c, p)| {
                let p = p.clone();
                match c {
                    Controllers::BlkIo => Subsystem::BlkIo(BlkIoController::new(p, false)),
                    Controllers::Mem => Subsystem::Mem(MemController::new(p, false)),
                    Controllers::Pids => Subsystem::Pid(PidController::new(p, false)),
                    Controllers::CpuSet => Subsystem::CpuSet(CpuSetController::new(p, false)),
                    Controllers::CpuAcct => Subsystem::CpuAcct(CpuAcctController::new(p)),
                    Controllers::Cpu => Subsystem::Cpu(CpuController::new(p, false)),
                    Controllers::Devices => Subsystem::Devices(DevicesController::new(p)),
                    Controllers::Freezer => Subsystem::Freezer(FreezerController::new(p, false)),
                    Controllers::NetCls => Subsystem::NetCls(NetClsController::new(p)),
                    Controllers::PerfEvent => Subsystem::PerfEvent(PerfEventController::new(p)),
                    Controllers::NetPrio => Subsystem::NetPrio(NetPrioController::new(p)),
                    Controllers::HugeTlb => Subsystem::HugeTlb(HugeTlbController::new(p, false)),
                    Controllers::Rdma => Subsystem::Rdma(RdmaController::new(p)),
                    Controllers::Systemd => Subsystem::Systemd(SystemdController::new(p, false)),
                }
            })
            .collect()
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(UNIFIED_MOUNTPOINT)
    }

    fn root_control_group(&self) -> Cgroup {
        Cgroup::load(Box::new(self.clone()), "")
    }

    fn parent_control_group(&self, path: &str) -> Cgroup {
        let parent = Path::new(path).parent().unwrap_or(Path::new(""));
        Cgroup::load(Box::new(self.clone()), parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this host's layout, the controllers found at their default paths are the ones
    /// mountinfo names, at the same directories.
    #[test]
    fn default_paths_match_mountinfo() {
        if hierarchies::is_cgroup2_unified_mode() {
            return;
        }
        let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let fast = Mounts::at_default_paths(&mine).expect("controllers at /sys/fs/cgroup");
        let v1 = V1::new();
        for c in ORDER {
            let at = fast.0.iter().find(|(m, _)| *m == c).map(|(_, p)| p.clone());
            assert_eq!(at, v1.get_mount_point(c.clone()), "{c}");
        }
    }
}
