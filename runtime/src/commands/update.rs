//! `minibox update`: new memory, swap, cpu and pids limits for containers. A running container's
//! cgroup changes at once; the config keeps them for its next start.

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::cli::UpdateArgs;
use crate::container::cgroups::{self, Cgroup};
use crate::container::spec::{self, CPU_PERIOD};
use crate::container::{lifecycle, state};
use crate::paths::Paths;

pub fn update(paths: &Paths, explain: bool, args: &UpdateArgs) -> Result<u8> {
    let mut code = 0;
    for name in &args.containers {
        match update_one(paths, explain, name, args) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!(
                    "minibox: updating {name}: {}",
                    minibox::error::one_line(e.as_ref())
                );
                code = 1;
            }
        }
    }
    Ok(code)
}

fn update_one(paths: &Paths, explain: bool, name: &str, args: &UpdateArgs) -> Result<()> {
    let id = super::resolve(paths, explain, name)?;
    let mut config = state::load_config(paths, &id)?;
    let mut spec = config.runtime_spec()?.clone();
    let mut linux = spec.linux().clone().unwrap_or_default();
    let resources = resources(linux.resources().clone().unwrap_or_default(), args)?;
    let st = state::load_state(paths, &id)?;
    if let (true, Some(cgroup)) = (lifecycle::running(&st), st.cgroup.as_deref()) {
        Cgroup::open(cgroup).update(&resources)?;
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    config.spec = Some(spec);
    state::write_config(paths, &config).context("recording the new limits")?;
    Ok(())
}

/// The container's resources with the asked changes, checked as `run` checks them.
fn resources(mut r: LinuxResources, args: &UpdateArgs) -> Result<LinuxResources> {
    let mut memory = r.memory().unwrap_or_default();
    if let Some(m) = &args.memory {
        let limit = spec::memory(m)?;
        memory.set_limit(Some(limit));
        // Swap that no longer covers the new limit goes back to Docker's default.
        if args.memory_swap.is_none() && memory.swap().is_some_and(|s| s >= 0 && s < limit) {
            memory.set_swap(Some(limit.saturating_mul(2)));
        }
    }
    if let Some(s) = &args.memory_swap {
        let swap = spec::limits::memory_swap(Some(s), memory.limit(), cgroups::swap_accounted())?;
        memory.set_swap(swap);
    }
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if let Some(c) = &args.cpus {
        cpu.set_quota(Some(spec::cpu_quota(c)?));
        cpu.set_period(Some(CPU_PERIOD));
    }
    if let Some(s) = args.cpu_shares {
        cpu.set_shares(Some(spec::limits::cpu_shares(s)?));
    }
    if let Some(c) = &args.cpuset_cpus {
        cpu.set_cpus(Some(spec::limits::cpuset(c)?));
    }
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(n) = args.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(if n > 0 { n } else { -1 });
        r.set_pids(Some(pids));
    }
    Ok(r)
}
