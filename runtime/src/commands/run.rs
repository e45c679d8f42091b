//! `minibox run`: validate, create the container's records, rootfs and cgroup, clone its process,
//! wire its network, let it exec, supervise it, then tear everything down.
//!
//! The start path is kept lean (no process spawned, no thread, no async runtime): the clone needs
//! a single-threaded parent, and the whole run aims at a few milliseconds.

use anyhow::{bail, Context, Result};
use nix::sys::wait::WaitStatus;

use crate::cli::{Global, RunArgs};
use crate::container::cgroups::{Cgroup, Limits};
use crate::container::process::{self, Failure, Launch, Signals};
use crate::container::spec::{self, Spec};
use crate::container::{image, state, tty};
use crate::network::{self, Attachment, Mode, Request};
use crate::paths::Paths;

/// Everything `run` will do, checked before anything is created.
struct Plan {
    id: String,
    found: image::Found,
    limits: Limits,
    spec: Spec,
    request: Request,
}

fn plan(paths: &Paths, args: &RunArgs) -> Result<Plan> {
    if args.detach {
        bail!("-d is not supported yet: run the container in the foreground");
    }
    let limits = Limits {
        memory: args.memory.as_deref().map(spec::memory).transpose()?,
        cpu_quota: args.cpus.as_deref().map(spec::cpu_quota).transpose()?,
        pids: args.pids_limit.filter(|n| *n > 0),
        restrict_devices: !args.privileged,
    };
    let volumes = args
        .volumes
        .iter()
        .map(|v| spec::volume(v))
        .collect::<Result<Vec<_>>>()?;
    let caps = spec::capabilities(&args.cap_add, &args.cap_drop, args.privileged)?;
    if let Some(name) = &args.name {
        state::check_name(name)?;
    }
    let mode = Mode::parse(&args.network);
    let found = image::find(paths, &args.image)?;
    let id = state::new_id()?;
    // Docker's defaults: the short id, or the host's name with the host's network.
    let hostname = match (&args.hostname, &mode) {
        (Some(h), _) => h.clone(),
        (None, Mode::Host) => nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| id[..12].to_string()),
        (None, _) => id[..12].to_string(),
    };
    let spec = Spec {
        args: spec::command(&found.config, args.entrypoint.as_deref(), &args.command)?,
        env: spec::environment(&found.config, &hostname, args.tty, &args.env)?,
        cwd: spec::workdir(&found.config, args.workdir.as_deref())?,
        user: args
            .user
            .clone()
            .unwrap_or_else(|| found.config.user.clone()),
        hostname,
        volumes,
        caps,
        privileged: args.privileged,
        tty: args.tty,
        interactive: args.interactive,
        init: args.init,
        own_netns: mode.new_netns(),
    };
    let request = Request {
        mode,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: found.config.exposed.clone(),
    };
    Ok(Plan {
        id,
        found,
        limits,
        spec,
        request,
    })
}

pub fn run(paths: &Paths, global: &Global, args: RunArgs) -> Result<u8> {
    let Plan {
        id,
        found,
        limits,
        spec,
        request,
    } = plan(paths, &args)?;

    // From here on a signal must not kill minibox halfway: they wait, and go to the container.
    let signals = Signals::block().context("blocking signals")?;
    let mut container = Container {
        paths: paths.clone(),
        explain: global.explain,
        id: id.clone(),
        name: None,
        cgroup: None,
        attachment: None,
        rootfs_prepared: false,
        keep: false,
    };
    if let Some(name) = &args.name {
        state::claim_name(paths, name, &id)?;
        container.name = Some(name.clone());
    }
    state::create(
        paths,
        &state::Config {
            id: id.clone(),
            name: args.name.clone(),
            image: found.id.clone(),
            image_name: args.image.clone(),
            args: spec.args.clone(),
            hostname: spec.hostname.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
    )?;
    let dir = state::dir(paths, &id);
    let state_dir = state::state_dir(paths, &id);
    let target = dir.join("rootfs");
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    container.rootfs_prepared = true;
    let rootfs = image::prepare(&found, &dir)?;
    container.cgroup = Some(Cgroup::create(&args.cgroup_parent, &id, &limits)?);

    // The child bind-mounts these files early; the address line is added once the network is
    // wired (written in place, so the mounts see it).
    let host_network = request.mode == Mode::Host;
    state::write_etc(&state_dir, &spec.hostname, host_network)?;

    let mount_rootfs = |t: &std::path::Path| rootfs.mount(t);
    let launch = Launch {
        spec: &spec,
        rootfs_target: &target,
        state_dir: &state_dir,
        mount_rootfs: &mount_rootfs,
        signals: &signals,
    };
    let child = process::spawn(&launch)?;

    // The child sets up its filesystem while it is placed in its cgroup and its network is
    // wired; it waits for `go` before it goes further.
    let prepared = (|| -> Result<()> {
        let cgroup = container.cgroup.as_ref().expect("created above");
        cgroup.add(child.pid)?;
        let attachment = network::attach(paths, global.explain, &id, child.pid, &request)?;
        if let (Some(address), false) = (attachment.address, host_network) {
            state::write_hosts(&state_dir, &spec.hostname, Some(address))?;
        }
        container.attachment = Some(attachment);
        state::save_state(
            paths,
            &id,
            &state::State {
                status: "running".into(),
                pid: child.pid.as_raw(),
                exit_code: None,
                cgroup: cgroup.path().to_string(),
                network: container.attachment.clone().unwrap_or_default(),
            },
        )?;
        // A child that already failed cannot take `go`: its report follows on the channel.
        if let Err(e) = child.go(if spec.tty { tty::size() } else { None }) {
            tracing::debug!("sending go: {e}");
        }
        Ok(())
    })();
    if let Err(e) = prepared {
        process::abort(child.pid);
        // A child that failed first (and so broke the step above) has the root cause.
        if let Err(Failure { code, msg }) = child.started() {
            drop(container);
            eprintln!("minibox: {msg}");
            return Ok(code);
        }
        return Err(e);
    }

    let started = match child.started() {
        Ok(s) => s,
        Err(Failure { code, msg }) => {
            process::reap_blocking(child.pid);
            drop(container);
            eprintln!("minibox: {msg}");
            return Ok(code);
        }
    };
    let raw = (spec.tty && args.interactive).then(tty::RawMode::enter);
    let relay = started.pty.map(|m| tty::Relay::new(m, args.interactive));
    let status = process::wait(child.pid, &signals, relay);
    drop(raw);
    let status = status.context("waiting for the container")?;
    let code = match status {
        WaitStatus::Exited(_, c) => c as u8,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as u8,
        _ => process::EXIT_RUNTIME,
    };
    if code == 137 && container.cgroup.as_ref().is_some_and(|c| c.oom_killed()) {
        eprintln!(
            "minibox: the container was killed by the OOM killer: it reached its memory limit{}",
            args.memory
                .as_deref()
                .map(|m| format!(" (--memory {m})"))
                .unwrap_or_default()
        );
    }
    if !args.rm {
        container.keep(code);
    }
    drop(container);
    Ok(code)
}

/// What a container holds on the host; torn down on drop: network and cgroup always, the
/// rootfs and records unless `keep` was called (a container run without `--rm`).
struct Container {
    paths: Paths,
    explain: bool,
    id: String,
    name: Option<String>,
    cgroup: Option<Cgroup>,
    attachment: Option<Attachment>,
    rootfs_prepared: bool,
    keep: bool,
}

impl Container {
    /// Keeps the records, with the exit code, for a container run without `--rm`.
    fn keep(&mut self, code: u8) {
        self.keep = true;
        let state = state::State {
            status: "exited".into(),
            exit_code: Some(code),
            ..Default::default()
        };
        if let Err(e) = state::save_state(&self.paths, &self.id, &state) {
            eprintln!("minibox: recording the exit of {:.12}: {e:#}", self.id);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(a) = self.attachment.take() {
            if let Err(e) = network::detach(&self.paths, self.explain, &self.id, &a) {
                eprintln!("minibox: removing the network of {:.12}: {e:#}", self.id);
            }
        }
        if let Some(cg) = self.cgroup.take() {
            cg.delete();
        }
        if self.keep {
            return;
        }
        if self.rootfs_prepared {
            if let Err(e) = image::remove(&state::dir(&self.paths, &self.id)) {
                eprintln!(
                    "minibox: removing the root filesystem of {:.12}: {e:#}",
                    self.id
                );
            }
        }
        state::remove_state(&self.paths, &self.id);
        state::remove_dir(&self.paths, &self.id);
        if let Some(name) = self.name.take() {
            state::release_name(&self.paths, &name);
        }
    }
}
