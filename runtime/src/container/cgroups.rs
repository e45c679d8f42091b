//! The container's cgroup, through cgroups-rs: v1, hybrid (v1 controllers beside an empty
//! unified mount, like this VM) and v2 are told apart by cgroups-rs at run time. Device access
//! goes through the v1 devices controller, or on v2 through an eBPF program ([`device_filter`]).

mod device_filter;

use anyhow::{anyhow, Context, Result};
use std::path::Path;

use cgroups_rs::devices::{DevicePermissions, DeviceType};
use cgroups_rs::hierarchies::UNIFIED_MOUNTPOINT;
use cgroups_rs::{
    cgroup::Cgroup as Cg, memory::MemController, CgroupPid, Controller, DeviceResource, MaxValue,
    Resources,
};
use nix::unistd::Pid;

/// Resource limits from `--memory`, `--cpus` and `--pids-limit`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub memory: Option<i64>,
    /// CFS quota in microseconds per [`CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    pub pids: Option<i64>,
    /// Restrict device access to the nodes a container's /dev holds (v1 devices controller, v2
    /// eBPF program). Off for `--privileged`.
    pub restrict_devices: bool,
}

pub const CPU_PERIOD: u64 = 100_000;

/// runc's default device rules: nothing but mknod in general (so images can carry device nodes)
/// and the usual character devices. Without them CAP_MKNOD would open the host's disks.
fn default_devices() -> Vec<DeviceResource> {
    use DevicePermissions::{MkNod, Read, Write};
    let rule = |allow, devtype, major, minor, access: &[DevicePermissions]| DeviceResource {
        allow,
        devtype,
        major,
        minor,
        access: access.to_vec(),
    };
    let rwm = [Read, Write, MkNod];
    let mut rules = vec![
        rule(false, DeviceType::All, -1, -1, &rwm),
        rule(true, DeviceType::Char, -1, -1, &[MkNod]),
        rule(true, DeviceType::Block, -1, -1, &[MkNod]),
    ];
    // null, zero, full, random, urandom, tty, ptmx, the pts slaves, tun.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 2),
        (136, -1),
        (10, 200),
    ] {
        rules.push(rule(true, DeviceType::Char, major, minor, &rwm));
    }
    rules
}

pub struct Cgroup {
    cg: Cg,
    path: String,
}

impl Cgroup {
    /// The path `create` will use, checked (recorded before the cgroup is made).
    pub fn path_for(parent: &str, id: &str) -> Result<String> {
        let parent = parent.trim_matches('/');
        if parent.split('/').any(|c| c == ".." || c == ".") {
            return Err(anyhow!("invalid --cgroup-parent {parent:?}"));
        }
        Ok(if parent.is_empty() {
            id.to_string()
        } else {
            format!("{parent}/{id}")
        })
    }

    /// Creates `<parent>/<id>` with the limits applied; nothing is left behind on failure.
    pub fn create(parent: &str, id: &str, limits: &Limits) -> Result<Self> {
        let path = Self::path_for(parent, id)?;
        let cg = Cg::new(cgroups_rs::hierarchies::auto(), &path)
            .with_context(|| format!("creating cgroup {path}"))?;
        let this = Self { cg, path };
        let mut res = Resources::default();
        res.memory.memory_hard_limit = limits.memory;
        if let Some(q) = limits.cpu_quota {
            res.cpu.quota = Some(q);
            res.cpu.period = Some(CPU_PERIOD);
        }
        res.pid.maximum_number_of_processes = limits.pids.map(MaxValue::Value);
        let v2_devices = limits.restrict_devices && this.cg.v2();
        if limits.restrict_devices && !v2_devices {
            res.devices.devices = default_devices();
        }
        if let Err(e) = this.cg.apply(&res) {
            this.delete();
            return Err(e).with_context(|| format!("setting the limits of cgroup {}", this.path));
        }
        if v2_devices {
            let dir = Path::new(UNIFIED_MOUNTPOINT).join(&this.path);
            if let Err(e) = device_filter::attach(&dir, &default_devices()) {
                this.delete();
                return Err(e).with_context(|| {
                    format!(
                        "restricting device access in cgroup {} (--privileged goes without it)",
                        this.path
                    )
                });
            }
        }
        Ok(this)
    }

    /// The cgroup at `path` (relative to the hierarchies' roots), created earlier, perhaps by a
    /// process that has died since: enough to kill what it holds and remove it.
    pub fn open(path: &str) -> Self {
        let cg = Cg::load(cgroups_rs::hierarchies::auto(), path);
        Self {
            cg,
            path: path.to_string(),
        }
    }

    /// Thaws the cgroup if it is frozen (v1 `freezer.state`, v2 `cgroup.freeze`), and waits
    /// (up to a second) until it is: a frozen process acts on no signal, not even SIGKILL.
    pub fn thaw(&self) -> Result<()> {
        use cgroups_rs::freezer::{FreezerController, FreezerState};
        let Some(freezer) = self.cg.controller_of::<FreezerController>() else {
            return Ok(());
        };
        for _ in 0..100 {
            match freezer.state() {
                Ok(FreezerState::Thawed) | Err(_) => return Ok(()),
                Ok(_) => {
                    freezer
                        .thaw()
                        .with_context(|| format!("thawing cgroup {}", self.path))?;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(anyhow!(
            "cgroup {} stays frozen: something freezes it again as it is thawed",
            self.path
        ))
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
        Err(anyhow!(
            "cgroup {}: its processes survive SIGKILL (stuck in the kernel?)",
            self.path
        ))
    }

    /// Moves the process into every hierarchy of the cgroup.
    pub fn add(&self, pid: Pid) -> Result<()> {
        self.cg
            .add_task_by_tgid(CgroupPid::from(pid.as_raw() as u64))
            .with_context(|| format!("moving the container into cgroup {}", self.path))
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
