//! `minibox run`: validate, create the container's records, rootfs and cgroup, clone its process,
//! wire its network, let it exec, supervise it, then tear everything down.
//!
//! The start path is kept lean (no process spawned, no thread, no async runtime): the clone needs
//! a single-threaded parent, and the whole run aims at a few milliseconds.
//!
//! Every resource is recorded in the container's state before it is made (write-ahead), under
//! the container's lock, so that whatever dies when, the next command can undo it
//! (`container::recover`). With `-d` the set-up runs in a forked process that then becomes the
//! container's supervisor (`container::supervisor`); `start` goes the same way.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::unistd::Pid;

use crate::cli::{Global, RunArgs};
use crate::container::cgroups::{Cgroup, Limits};
use crate::container::log::{Output, Stream};
use crate::container::process::{self, Failure, Launch, Signals, Started};
use crate::container::recover::{self, fault};
use crate::container::spec::{self, Spec};
use crate::container::state::{self, Config, Lock, State, Status};
use crate::container::{image, seccomp, security_opt, supervisor, teardown, tty};
use crate::network::{self, Mode, Request};
use crate::paths::Paths;

/// Everything `run` will do, checked before anything is created.
struct Plan {
    id: String,
    found: image::Found,
    limits: Limits,
    spec: Spec,
    request: Request,
    security_opt: Vec<String>,
}

fn plan(paths: &Paths, args: &RunArgs) -> Result<Plan> {
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
    let security = security_opt::parse(&args.security_opt)?;
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
        env: spec::environment(
            &found.config,
            &hostname,
            args.process.tty,
            &args.process.env,
        )?,
        cwd: spec::workdir(&found.config, args.process.workdir.as_deref())?,
        user: args
            .process
            .user
            .clone()
            .unwrap_or_else(|| found.config.user.clone()),
        hostname,
        volumes,
        seccomp: security.seccomp_for(&caps, args.privileged)?,
        // Today's default, on unless --privileged.
        no_new_privileges: security.no_new_privileges || !args.privileged,
        caps,
        privileged: args.privileged,
        tty: args.process.tty,
        interactive: args.process.interactive,
        init: args.init,
        own_netns: mode.new_netns(),
    };
    let request = Request {
        mode,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: found.config.exposed.clone(),
    };
    network::check(paths, &request)?;
    Ok(Plan {
        id,
        found,
        limits,
        spec,
        request,
        security_opt: security.given,
    })
}

pub fn run(paths: &Paths, global: &Global, args: RunArgs) -> Result<u8> {
    let Plan {
        id,
        found,
        limits,
        spec,
        request,
        security_opt,
    } = plan(paths, &args)?;
    let mut config = Config {
        id: id.clone(),
        name: args.name.clone(),
        image: found.id.clone(),
        image_name: args.image.clone(),
        args: spec.args.clone(),
        hostname: spec.hostname.clone(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        spec,
        limits,
        cgroup_parent: args.cgroup_parent.clone(),
        network: args.network.clone(),
        publish: request.publish.clone(),
        publish_all: request.publish_all,
        exposed: request.exposed.clone(),
        rm: args.rm,
        memory: args.memory.clone(),
        security_opt,
    };

    // From here on a signal must not kill minibox halfway: they wait, and go to the container.
    let signals = Signals::block().context("blocking signals")?;
    let lock = match &args.name {
        Some(name) => state::create(paths, &id, Some(name))?,
        None => create_named(paths, &mut config)?,
    };
    fault("created");
    let container = Container::new(paths, global.explain, &config, lock, State::default());
    state::write_config(paths, &config)?;
    fault("config");
    if args.detach {
        let code = detach(container, &found, &config, &signals)?;
        if code == 0 {
            println!("{id}");
        }
        return Ok(code);
    }
    foreground(
        container,
        &found,
        &config,
        &signals,
        args.process.interactive,
    )
}

/// Records a container run without `--name` under a generated name (retrying on a collision).
fn create_named(paths: &Paths, config: &mut Config) -> Result<Lock> {
    let mut attempt = 0;
    loop {
        let name = state::generate_name(&config.id, attempt);
        match state::create(paths, &config.id, Some(&name)) {
            Ok(lock) => {
                config.name = Some(name);
                return Ok(lock);
            }
            Err(_) if attempt < 40 && state::name_taken(paths, &name) => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Runs the container attached to this process: its output is copied to ours (and logged, as
/// Docker keeps a foreground container's logs too), our signals are its own.
fn foreground(
    mut container: Container,
    found: &image::Found,
    config: &Config,
    signals: &Signals,
    interactive: bool,
) -> Result<u8> {
    let log_path = state::log_path(&container.paths, &config.id);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let output = Output::new(config.spec.tty).context("creating a pipe")?;
    let (pid, started) = match setup(&mut container, found, config, signals, output.write_ends()) {
        Ok(s) => s,
        Err(Failure { code, msg }) => {
            drop(container);
            eprintln!("minibox: {msg}");
            return Ok(code);
        }
    };
    let raw = (config.spec.tty && interactive).then(tty::RawMode::enter);
    let relay = match &started.pty {
        Some(master) => Some(tty::Relay::new(
            master.try_clone().context("duplicating the terminal")?,
            interactive,
        )),
        None => None,
    };
    let (out, err) = output.read_ends(started.pty);
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let mut streams = [
        Some(Stream::new(out, b"stdout", Some(stdout.as_fd()))),
        err.map(|e| Stream::new(e, b"stderr", Some(stderr.as_fd()))),
    ];
    let status = process::wait(pid, signals, relay, &mut streams, Some(log.as_fd()));
    drop(raw);
    let status = status.context("waiting for the container")?;
    let code = process::exit_code(status);
    let oom = container.oom_killed();
    if code == 137 && oom {
        eprintln!(
            "minibox: the container was killed by the OOM killer: it reached its memory limit{}",
            config
                .memory
                .as_deref()
                .map(|m| format!(" (--memory {m})"))
                .unwrap_or_default()
        );
    }
    container.exited(code, oom);
    drop(container);
    Ok(code)
}

/// Starts the container in a forked process that becomes its supervisor, and returns once the
/// container runs (0) or failed (its code, with why printed). Used by `run -d` and `start`.
pub fn detach(
    container: Container,
    found: &image::Found,
    config: &Config,
    signals: &Signals,
) -> Result<u8> {
    let (report_r, report_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    // SAFETY: the process is single-threaded.
    match unsafe { nix::unistd::fork() }.context("starting the supervisor")? {
        nix::unistd::ForkResult::Child => {
            drop(report_r);
            in_supervisor(container, found, config, signals, report_w)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(report_w);
            // The lock stays with the supervisor (closing our descriptor keeps it locked).
            let (paths, explain) = (container.paths.clone(), container.explain);
            container.disarm();
            let mut report = Vec::new();
            let _ = std::fs::File::from(report_r).read_to_end(&mut report);
            match report.split_first() {
                Some((0, _)) => Ok(0),
                Some((code, msg)) => {
                    eprintln!("minibox: {}", String::from_utf8_lossy(msg));
                    Ok(*code)
                }
                None => {
                    // It died: once it is gone, and the container's process it may have
                    // started (which lets go of the lock as it begins), undo what it left.
                    let _ = nix::sys::wait::waitpid(child, None);
                    let deadline = Instant::now() + Duration::from_secs(2);
                    loop {
                        match state::try_lock(&paths, &config.id) {
                            Ok(Some(lock)) => {
                                let st = state::load_state(&paths, &config.id).unwrap_or_default();
                                recover::recover(&paths, explain, &config.id, st, lock);
                            }
                            Ok(None) if Instant::now() < deadline => {
                                std::thread::sleep(Duration::from_millis(5));
                                continue;
                            }
                            _ => {}
                        }
                        break;
                    }
                    anyhow::bail!("the supervisor of {:.12} died while starting it", config.id)
                }
            }
        }
    }
}

/// The forked process: sets the container up with its output going to the log pipes, reports
/// to the parent, then execs the lean supervisor (keeping the lock and the pipes).
fn in_supervisor(
    mut container: Container,
    found: &image::Found,
    config: &Config,
    signals: &Signals,
    report: OwnedFd,
) -> ! {
    let _ = nix::unistd::setsid();
    let result = (|| -> Result<(Pid, Started, Output), Failure> {
        let fail = |what: &str, e: nix::Error| Failure::runtime(format!("{what}: {e}"));
        // `--explain` lines are for the user; this process's own stdio goes nowhere.
        let user_stderr =
            nix::fcntl::fcntl(std::io::stderr(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .map_err(|e| fail("duplicating stderr", e))?;
        network::explain_to(user_stderr);
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| Failure::runtime(format!("opening /dev/null: {e}")))?;
        for to in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), to) };
        }
        let output = Output::new(config.spec.tty).map_err(|e| fail("creating a pipe", e))?;
        let (pid, started) = setup(&mut container, found, config, signals, output.write_ends())?;
        Ok((pid, started, output))
    })();
    let mut report = std::fs::File::from(report);
    match result {
        Ok((pid, started, output)) => {
            let _ = report.write_all(&[0]);
            drop(report);
            let (out, err) = output.read_ends(started.pty);
            let failure = container.hand_over(pid, out, err);
            // Not reached unless the exec failed: the container must not run unsupervised.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            tracing::error!("{}", failure.msg);
        }
        Err(Failure { code, msg }) => {
            // Undone before the report, so that `run` returns with nothing left.
            drop(container);
            let mut out = vec![code];
            out.extend(msg.as_bytes());
            let _ = report.write_all(&out);
            drop(report);
            // SAFETY: leaving the forked process without the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
    }
    drop(container);
    // SAFETY: leaving the forked process without the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

/// Sets the container up, recording each resource before making it: root filesystem, cgroup,
/// process, network; then lets it exec. Returns its PID 1 once it runs.
pub fn setup(
    c: &mut Container,
    found: &image::Found,
    config: &Config,
    signals: &Signals,
    output: Option<(BorrowedFd, BorrowedFd)>,
) -> Result<(Pid, Started), Failure> {
    let rt = |e: anyhow::Error| Failure::runtime(format!("{e:#}"));
    let paths = c.paths.clone();
    let id = config.id.clone();
    let dir = state::dir(&paths, &id);
    let state_dir = state::state_dir(&paths, &id);
    let target = dir.join("rootfs");
    std::fs::create_dir_all(&target)
        .map_err(|e| Failure::runtime(format!("creating {}: {e}", target.display())))?;
    let rootfs = image::prepare(found, &dir).map_err(rt)?;
    fault("rootfs");
    c.state.cgroup = Some(Cgroup::path_for(&config.cgroup_parent, &id).map_err(rt)?);
    c.save().map_err(rt)?;
    c.cgroup = Some(Cgroup::create(&config.cgroup_parent, &id, &config.limits).map_err(rt)?);
    fault("cgroup");

    // The child bind-mounts these files early; the address line is added once the network is
    // wired (written in place, so the mounts see it).
    let request = c.request(config);
    let host_network = request.mode == Mode::Host;
    let spec = &config.spec;
    state::write_etc(&state_dir, &spec.hostname, host_network).map_err(rt)?;

    let seccomp = (spec.seccomp.as_ref())
        .map(|s| seccomp::compile_cached(s, &paths.seccomp_cache()))
        .transpose()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let mount_rootfs = |t: &std::path::Path| rootfs.mount(t);
    let launch = Launch {
        spec,
        rootfs_target: &target,
        state_dir: &state_dir,
        mount_rootfs: &mount_rootfs,
        signals,
        output,
        seccomp: seccomp.as_ref(),
    };
    let child = process::spawn(&launch).map_err(rt)?;
    fault("spawned");

    // The child sets up its filesystem while it is placed in its cgroup and its network is
    // wired; it waits for `go` before it goes further.
    let prepared = (|| -> Result<()> {
        c.cgroup.as_ref().expect("created above").add(child.pid)?;
        c.state.pid = child.pid.as_raw();
        if let Mode::Bridge(name) = &request.mode {
            c.state.network = Some(name.clone());
        }
        c.save()?;
        let attachment = network::attach(&paths, c.explain, &id, child.pid, &request)?;
        if let (Some(address), false) = (attachment.address, host_network) {
            let names = state::host_names(&spec.hostname, config.name.as_deref(), &id);
            state::write_hosts(&state_dir, &names, Some(address))?;
        }
        c.state.ports = published(&attachment);
        c.state.attachment = Some(attachment);
        c.save()?;
        fault("attached");
        // A child that already failed cannot take `go`: its report follows on the channel.
        if let Err(e) = child.go(if spec.tty { tty::size() } else { None }) {
            tracing::debug!("sending go: {e}");
        }
        Ok(())
    })();
    if let Err(e) = prepared {
        process::abort(child.pid);
        // A child that failed first (and so broke the step above) has the root cause.
        child.started()?;
        return Err(rt(e));
    }
    let started = match child.started() {
        Ok(s) => s,
        Err(f) => {
            process::reap_blocking(child.pid);
            return Err(f);
        }
    };
    c.state.status = Status::Running;
    c.state.started_at = Some(state::now_ns());
    c.state.finished_at = None;
    c.state.exit_code = None;
    c.state.oom_killed = false;
    if let Err(e) = c.save() {
        process::abort(child.pid);
        return Err(rt(e));
    }
    fault("running");
    Ok((child.pid, started))
}

/// A container this process is in charge of (it holds the lock). On drop everything it holds
/// on the host is released, and its records removed when it never started or has `--rm`;
/// otherwise they stay, as exited.
pub struct Container {
    paths: Paths,
    explain: bool,
    id: String,
    rm: bool,
    pub state: State,
    cgroup: Option<Cgroup>,
    lock: Option<Lock>,
    armed: bool,
}

impl Container {
    pub fn new(paths: &Paths, explain: bool, config: &Config, lock: Lock, state: State) -> Self {
        let mut state = state;
        state.name = config.name.clone();
        Self {
            paths: paths.clone(),
            explain,
            id: config.id.clone(),
            rm: config.rm,
            state,
            cgroup: None,
            lock: Some(lock),
            armed: true,
        }
    }

    fn save(&self) -> Result<()> {
        state::save_state(&self.paths, &self.id, &self.state)
    }

    /// What to ask of the network: the ports published last time when there were (`start`
    /// keeps them), else what `run` asked.
    fn request(&self, config: &Config) -> Request {
        let reuse = !self.state.ports.is_empty();
        Request {
            mode: Mode::parse(&config.network),
            publish: if reuse {
                self.state.ports.clone()
            } else {
                config.publish.clone()
            },
            publish_all: config.publish_all && !reuse,
            exposed: config.exposed.clone(),
        }
    }

    fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_killed())
    }

    /// Records the exit (teardown follows on drop).
    pub fn exited(&mut self, code: u8, oom: bool) {
        self.state.exit_code = Some(code);
        self.state.oom_killed = oom;
        self.state.finished_at = Some(state::now_ns());
        if let Err(e) = self.save() {
            eprintln!("minibox: recording the exit of {:.12}: {e:#}", self.id);
        }
    }

    /// Forgets the container without undoing anything: someone else is in charge now.
    fn disarm(mut self) {
        self.armed = false;
    }

    /// Replaces this process with the container's supervisor, which keeps the lock and reads
    /// the container's output from `out` (and `err`). Returns only if the exec failed.
    fn hand_over(&mut self, pid: Pid, out: OwnedFd, err: Option<OwnedFd>) -> Failure {
        let lock = self.lock.as_ref().expect("held");
        supervisor::exec(&supervisor::Handoff {
            paths: &self.paths,
            explain: self.explain,
            id: &self.id,
            pid,
            lock: lock.as_fd(),
            out: out.as_fd(),
            err: err.as_ref().map(|e| e.as_fd()),
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        teardown::release_quickly(&self.paths, self.explain, &self.id, &mut self.state);
        if self.rm || self.state.started_at.is_none() {
            teardown::remove(&self.paths, &self.id, &self.state);
        } else {
            self.state.status = Status::Exited;
            if self.state.exit_code.is_none() {
                self.state.exit_code = Some(process::EXIT_RUNTIME);
                self.state.finished_at = Some(state::now_ns());
            }
            if let Err(e) = self.save() {
                eprintln!("minibox: recording the exit of {:.12}: {e:#}", self.id);
            }
        }
        drop(self.lock.take());
    }
}

/// The ports an attachment published, as `-p` values that publish them again.
fn published(att: &network::Attachment) -> Vec<String> {
    att.bridge
        .iter()
        .flat_map(|b| b.ports.iter())
        .map(|m| {
            format!(
                "{}:{}:{}/{}",
                m.host_ip, m.host_port, m.container_port, m.proto
            )
        })
        .collect()
}
