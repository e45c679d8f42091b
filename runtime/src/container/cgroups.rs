//! The container's cgroup, through cgroups-rs: v1, hybrid (v1 controllers beside an empty
//! unified mount, like this VM) and v2 are told apart by cgroups-rs at run time. Device access
//! goes through the v1 devices controller, or on v2 through an eBPF program ([`device_filter`]).
//! The v1 controllers' mount points are found without reading mountinfo ([`hierarchy`]).

mod device_filter;
mod hierarchy;

use std::path::Path;

use cgroups_rs::blkio::BlkIoController;
use cgroups_rs::cpu::CpuController;
use cgroups_rs::cpuacct::CpuAcctController;
use cgroups_rs::devices::{DevicePermissions, DeviceType};
use cgroups_rs::freezer::{FreezerController, FreezerState};
use cgroups_rs::hierarchies::UNIFIED_MOUNTPOINT;
use cgroups_rs::pid::PidController;
use cgroups_rs::{
    cgroup::Cgroup as Cg, memory::MemController, CgroupPid, Controller, DeviceResource, MaxValue,
    Resources,
};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// What can go wrong with a cgroup; each reads `what failed: why`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --cgroup-parent {0:?}")]
    InvalidParent(String),
    /// What was being done to which cgroup; cgroups-rs says why.
    #[error("{what} cgroup {path}")]
    Op {
        what: &'static str,
        path: String,
        #[source]
        source: cgroups_rs::error::Error,
    },
    #[error("restricting device access in cgroup {path} (--privileged goes without it)")]
    Devices {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("opening {path} to move the container in")]
    Entry {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup {0} stays frozen: something freezes it again as it is thawed")]
    StaysFrozen(String),
    #[error("cgroup {0}: its processes survive SIGKILL (stuck in the kernel?)")]
    Unkillable(String),
    #[error("cgroup {0} has no freezer")]
    NoFreezer(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The Spec's device rules in cgroups-rs's terms (the v1 controller's, and the source of the v2
/// program).
fn device_rules(rules: &[LinuxDeviceCgroup]) -> Vec<DeviceResource> {
    rules
        .iter()
        .map(|r| DeviceResource {
            allow: r.allow(),
            devtype: match r.typ() {
                Some(LinuxDeviceType::C) => DeviceType::Char,
                Some(LinuxDeviceType::B) => DeviceType::Block,
                _ => DeviceType::All,
            },
            major: r.major().unwrap_or(-1),
            minor: r.minor().unwrap_or(-1),
            access: r
                .access()
                .as_deref()
                .unwrap_or("rwm")
                .chars()
                .filter_map(|c| match c {
                    'r' => Some(DevicePermissions::Read),
                    'w' => Some(DevicePermissions::Write),
                    'm' => Some(DevicePermissions::MkNod),
                    _ => None,
                })
                .collect(),
        })
        .collect()
}

/// The Spec's memory, cpu and pids limits in cgroups-rs's terms (devices apart). The Spec speaks
/// v1 (memory.swap is memory plus swap, cpu.shares a weight around 1024): on v2 they become
/// `memory.swap.max` (swap alone) and `cpu.weight`, as runc converts them.
fn limits(resources: &LinuxResources, v2: bool) -> Resources {
    let mut res = Resources::default();
    if let Some(m) = resources.memory() {
        res.memory.memory_hard_limit = m.limit();
        res.memory.memory_swap_limit = match (v2, m.swap(), m.limit()) {
            (true, Some(swap), Some(limit)) if swap > 0 => Some((swap - limit).max(0)),
            (_, swap, _) => swap,
        };
        res.memory.memory_soft_limit = m.reservation();
    }
    if let Some(c) = resources.cpu() {
        res.cpu.shares = match v2 {
            true => c
                .shares()
                .map(|s| 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142),
            false => c.shares(),
        };
        res.cpu.quota = c.quota();
        res.cpu.period = c.period();
        res.cpu.cpus = c.cpus().clone();
        res.cpu.mems = c.mems().clone();
    }
    if let Some(p) = resources.pids() {
        res.pid.maximum_number_of_processes = Some(match p.limit() {
            n if n > 0 => MaxValue::Value(n),
            _ => MaxValue::Max,
        });
    }
    res
}

/// Whether the host keeps swap accounts (v1 `memory.memsw.*`, v2 `memory.swap.max`): without
/// them a swap limit cannot be set.
pub fn swap_accounted() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        // The root cgroup has no memory files: any child with memory.max tells.
        return std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.path().join("memory.max").exists() && e.path().join("memory.swap.max").exists()
            });
    }
    root.join("memory/memory.memsw.limit_in_bytes").exists()
}

/// Moves this process into the cgroup whose `tasks` files [`Cgroup::entries`] opened: the
/// process must be single-threaded (its one thread is all of it).
pub fn enter(tasks: &[std::os::fd::OwnedFd]) -> nix::Result<()> {
    for t in tasks {
        nix::unistd::write(t, b"0")?;
    }
    Ok(())
}

pub struct Cgroup {
    cg: Cg,
    path: String,
}

/// A cgroup's use of memory, cpu, block I/O and processes ([`Cgroup::usage`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub memory: u64,
    /// The memory limit the kernel applies now (`update` may have changed it), if any.
    pub memory_limit: Option<u64>,
    pub cpu_ns: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

impl Error {
    fn op(what: &'static str, path: &str, source: cgroups_rs::error::Error) -> Self {
        Error::Op {
            what,
            path: path.to_string(),
            source,
        }
    }
}

impl Cgroup {
    /// The path `create` will use, checked (recorded before the cgroup is made).
    pub fn path_for(parent: &str, id: &str) -> Result<String> {
        let parent = parent.trim_matches('/');
        if parent.split('/').any(|c| c == ".." || c == ".") {
            return Err(Error::InvalidParent(parent.to_string()));
        }
        Ok(if parent.is_empty() {
            id.to_string()
        } else {
            format!("{parent}/{id}")
        })
    }

    /// Creates the cgroup at `path` (relative to the hierarchies' roots) with the Spec's
    /// resources (memory, cpu, pids, devices) applied; nothing is left behind on failure.
    pub fn create(path: &str, resources: &LinuxResources) -> Result<Self> {
        hierarchy::inherit_cpuset(path);
        let cg = Cg::new(hierarchy::auto(), path)
            .map_err(|source| Error::op("creating", path, source))?;
        let this = Self {
            cg,
            path: path.to_string(),
        };
        let mut res = limits(resources, this.cg.v2());
        // No rules (as for `--privileged`) restrict nothing.
        let devices = resources
            .devices()
            .as_deref()
            .filter(|rules| !rules.is_empty())
            .map(device_rules);
        let v2_devices = devices.is_some() && this.cg.v2();
        if let (Some(rules), false) = (&devices, v2_devices) {
            res.devices.devices = rules.clone();
        }
        if let Err(e) = this.cg.apply(&res) {
            this.delete();
            return Err(Error::op("setting the limits of", &this.path, e));
        }
        if v2_devices {
            let dir = Path::new(UNIFIED_MOUNTPOINT).join(&this.path);
            let rules = devices.as_deref().unwrap_or_default();
            if let Err(source) = device_filter::attach(&dir, rules) {
                this.delete();
                return Err(Error::Devices {
                    path: this.path.clone(),
                    source,
                });
            }
        }
        Ok(this)
    }

    /// The cgroup at `path` (relative to the hierarchies' roots), created earlier, perhaps by a
    /// process that has died since: enough to kill what it holds and remove it.
    pub fn open(path: &str) -> Self {
        let cg = Cg::load(hierarchy::auto(), path);
        Self {
            cg,
            path: path.to_string(),
        }
    }

    /// Thaws the cgroup if it is frozen (v1 `freezer.state`, v2 `cgroup.freeze`), and waits
    /// (up to a second) until it is: a frozen process acts on no signal, not even SIGKILL.
    pub fn thaw(&self) -> Result<()> {
        let Some(freezer) = self.cg.controller_of::<FreezerController>() else {
            return Ok(());
        };
        for _ in 0..100 {
            match freezer.state() {
                Ok(FreezerState::Thawed) | Err(_) => return Ok(()),
                Ok(_) => {
                    freezer
                        .thaw()
                        .map_err(|e| Error::op("thawing", &self.path, e))?;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(Error::StaysFrozen(self.path.clone()))
    }

    /// Kills every process of the cgroup (thawed first) and waits (up to a second) until none
    /// is left.
    pub fn kill_all(&self) -> Result<()> {
        let thawed = self.thaw();
        for _ in 0..100 {
            let procs = self.cg.procs();
            if procs.is_empty() {
                return Ok(());
            }
            for p in procs {
                let _ = nix::sys::signal::kill(
                    Pid::from_raw(p.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        thawed?;
        Err(Error::Unkillable(self.path.clone()))
    }

    /// On cgroup v1, the `tasks` file of every hierarchy of the cgroup, opened for a
    /// single-threaded process to move itself in with [`enter`]: a process that moves itself
    /// by writing `0` there skips the kernel's global threadgroup lock, whose write side waits
    /// for an RCU grace period (5 to 15 ms on this VM) at every move by pid, as [`Self::add`]
    /// makes. `None` on v2, where `cgroup.procs` takes that lock either way.
    pub fn entries(&self) -> Result<Option<Vec<std::os::fd::OwnedFd>>> {
        if self.cg.v2() {
            return Ok(None);
        }
        let mut dirs: Vec<&Path> = self
            .cg
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path())
            .collect();
        // Co-mounted controllers (`cpu,cpuacct`) share a directory.
        dirs.sort();
        dirs.dedup();
        dirs.iter()
            .map(|dir| {
                let tasks = dir.join("tasks");
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&tasks)
                    .map(std::os::fd::OwnedFd::from)
                    .map_err(|source| Error::Entry {
                        path: tasks.display().to_string(),
                        source,
                    })
            })
            .collect::<Result<_>>()
            .map(Some)
    }

    /// Moves the process into every hierarchy of the cgroup.
    pub fn add(&self, pid: Pid) -> Result<()> {
        self.cg
            .add_task_by_tgid(CgroupPid::from(pid.as_raw() as u64))
            .map_err(|e| Error::op("moving the container into", &self.path, e))
    }

    /// Changes the memory, cpu and pids limits of a running container (`update`). Memory is
    /// written here, each failure reported (cgroups-rs ignores them): on v1 the kernel keeps
    /// `memory.limit_in_bytes` at most `memory.memsw.limit_in_bytes`, so which of the two goes
    /// first depends on whether they grow or shrink.
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let mut res = limits(resources, self.cg.v2());
        let (limit, swap) = (
            res.memory.memory_hard_limit.take(),
            res.memory.memory_swap_limit.take(),
        );
        let failed = |e| Error::op("updating the limits of", &self.path, e);
        if let (Some(mem), true) = (
            self.cg.controller_of::<MemController>(),
            limit.is_some() || swap.is_some(),
        ) {
            let set_limit = || limit.map_or(Ok(()), |l| mem.set_limit(l));
            let set_swap = || swap.map_or(Ok(()), |s| mem.set_memswap_limit(s));
            if set_limit().is_err() {
                set_swap().and_then(|()| set_limit())
            } else {
                set_swap()
            }
            .map_err(failed)?;
        }
        self.cg.apply(&res).map_err(failed)
    }

    /// The processes in the cgroup.
    pub fn procs(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self
            .cg
            .procs()
            .iter()
            .map(|p| Pid::from_raw(p.pid as i32))
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }

    /// Freezes every process of the cgroup (`pause`; [`Cgroup::thaw`] resumes).
    pub fn freeze(&self) -> Result<()> {
        self.cg
            .controller_of::<FreezerController>()
            .ok_or_else(|| Error::NoFreezer(self.path.clone()))?
            .freeze()
            .map_err(|e| Error::op("freezing", &self.path, e))
    }

    /// Whether the cgroup is frozen (or freezing).
    pub fn frozen(&self) -> bool {
        self.cg
            .controller_of::<FreezerController>()
            .and_then(|f| f.state().ok())
            .is_some_and(|s| !matches!(s, FreezerState::Thawed))
    }

    /// Memory usage, cpu time and process count, as `events --stats` reports them.
    pub fn stats(&self) -> (u64, u64, u64) {
        let memory = self
            .cg
            .controller_of::<MemController>()
            .map(|m| m.memory_stat().usage_in_bytes)
            .unwrap_or(0);
        let cpu = self
            .cg
            .controller_of::<CpuAcctController>()
            .map(|c| c.cpuacct().usage)
            .unwrap_or(0);
        let pids = self
            .cg
            .controller_of::<PidController>()
            .and_then(|p| p.get_pid_current().ok())
            .unwrap_or(0);
        (memory, cpu, pids)
    }

    /// What `stats` shows: memory in use (less the inactive page cache, as Docker counts it),
    /// cpu time, block I/O and processes, from cgroup v1 or v2 files alike.
    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Some(m) = self.cg.controller_of::<MemController>() {
            let stat = m.memory_stat();
            let inactive = if self.cg.v2() {
                stat.stat.inactive_file
            } else {
                stat.stat.total_inactive_file
            };
            u.memory = stat.usage_in_bytes.saturating_sub(inactive);
            // No limit reads as "max" (v2) or a page-rounded i64::MAX (v1).
            u.memory_limit = u64::try_from(stat.limit_in_bytes)
                .ok()
                .filter(|l| *l > 0 && *l < 1 << 62);
        }
        u.cpu_ns = match self.cg.controller_of::<CpuAcctController>() {
            Some(c) => c.cpuacct().usage,
            // v2: cpu.stat's usage_usec.
            None => self
                .cg
                .controller_of::<CpuController>()
                .and_then(|c| {
                    c.cpu()
                        .stat
                        .lines()
                        .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok())
                })
                .map_or(0, |us| us * 1000),
        };
        if let Some(b) = self.cg.controller_of::<BlkIoController>() {
            let io = b.blkio();
            if self.cg.v2() {
                u.block_read = io.io_stat.iter().map(|s| s.rbytes).sum();
                u.block_write = io.io_stat.iter().map(|s| s.wbytes).sum();
            } else {
                let bytes = &io.throttle.io_service_bytes_recursive;
                u.block_read = bytes.iter().map(|s| s.read).sum();
                u.block_write = bytes.iter().map(|s| s.write).sum();
            }
        }
        u.pids = self
            .cg
            .controller_of::<PidController>()
            .and_then(|p| p.get_pid_current().ok())
            .unwrap_or(0);
        u
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let Some(mem) = self.cg.controller_of::<MemController>() else {
            return false;
        };
        if self.cg.v2() {
            std::fs::read_to_string(mem.path().join("memory.events"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
                })
                .is_some_and(|n| n > 0)
        } else {
            mem.memory_stat().oom_control.oom_kill > 0
        }
    }

    /// Removes the cgroup (its processes are gone by now); failures are only logged. On v1
    /// every hierarchy is tried, whatever failed before (cgroups-rs stops at the first error).
    pub fn delete(&self) {
        if self.cg.v2() {
            if let Err(e) = self.cg.delete() {
                tracing::warn!("removing cgroup {}: {e}", self.path);
            }
            return;
        }
        for sub in self.cg.subsystems() {
            if let Err(e) = sub.to_controller().delete() {
                tracing::warn!(
                    "removing cgroup {} ({}): {e}",
                    self.path,
                    sub.controller_name()
                );
            }
        }
    }
}
