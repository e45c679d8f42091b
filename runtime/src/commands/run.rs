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
use crate::container::cgroups::Cgroup;
use crate::container::error::SetupError;
use crate::container::lifecycle::{self, fault, Container, End};
use crate::container::log::{LogFile, LogOptions, Output, Stream};
use crate::container::process::{self, Launch, Signals, Started, Stdio};
use crate::container::spec::{self, Spec};
use crate::container::state::{self, Config, Lock, State};
use crate::container::user;
use crate::container::{image, security_opt, supervisor, tty};
use crate::network::{self, Mode, Names, Request};
use crate::paths::Paths;

/// Everything `run` will do, checked before anything is created.
struct Plan {
    id: String,
    found: image::Found,
    spec: Spec,
    request: Request,
    security_opt: Vec<String>,
    names: Names,
}

fn plan(paths: &Paths, global: &Global, args: &RunArgs) -> Result<Plan> {
    let memory = args.memory.as_deref().map(spec::memory).transpose()?;
    let cpu_quota = args.cpus.as_deref().map(spec::cpu_quota).transpose()?;
    let volumes = args
        .volumes
        .iter()
        .map(|v| spec::volume(v))
        .collect::<Result<Vec<_>>>()?;
    let caps = spec::capabilities(&args.cap_add, &args.cap_drop, args.privileged)?;
    let security = security_opt::parse(&args.security_opt)?;
    let seccomp = security.seccomp_for(&caps, args.privileged)?;
    if let Some(name) = &args.name {
        state::check_name(name)?;
    }
    let mode = Mode::parse(&args.network);
    let n = &args.names;
    let names = Names::parse(
        &mode,
        &n.network_alias,
        &n.add_host,
        &n.dns,
        &n.dns_search,
        &n.dns_option,
    )?;
    super::registry::ensure(
        paths,
        global,
        &args.image,
        args.pull,
        args.platform.as_deref(),
    )?;
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
    let user_spec = args
        .process
        .user
        .clone()
        .unwrap_or_else(|| found.config.user.clone());
    let layers = image::layers(&found);
    let user = user::lookup(&user_spec, &layers).map_err(anyhow::Error::msg)?;
    let dir = state::dir(paths, &id);
    let process = spec::Process {
        args: spec::command(&found.config, args.entrypoint.as_deref(), &args.command)?,
        env: spec::environment(
            &found.config,
            &hostname,
            args.process.tty,
            &args.process.env,
        )?,
        cwd: spec::workdir(&found.config, args.process.workdir.as_deref())?,
        user,
        caps,
        tty: args.process.tty,
        // Off unless asked for, as in Docker: setuid programs and file capabilities keep
        // working for a non-root user (the bounding set still limits what they grant).
        no_new_privileges: security.no_new_privileges,
    };
    let spec = spec::build(&spec::Options {
        process,
        hostname,
        root: &dir.join("rootfs"),
        etc: &etc_dir(&dir),
        volumes: &volumes,
        privileged: args.privileged,
        own_netns: mode.new_netns(),
        cgroup: Cgroup::path_for(&args.cgroup_parent, &id)?,
        memory,
        cpu_quota,
        pids: args.pids_limit.filter(|n| *n > 0),
        seccomp,
    })?;
    let request = Request {
        mode,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: found.config.exposed.clone(),
        dns: None,
    };
    network::check(paths, &request)?;
    Ok(Plan {
        id,
        found,
        spec,
        request,
        security_opt: security.given,
        names,
    })
}

/// Where a container's /etc/hostname, /etc/hosts and /etc/resolv.conf live on the host: a
/// small tmpfs of its own (see [`etc_files`]).
fn etc_dir(container_dir: &std::path::Path) -> std::path::PathBuf {
    container_dir.join("etc")
}

/// Mounts the container's small tmpfs for its /etc files, unless an earlier start did: bound
/// writable into the container, they cannot grow the host's memory by more than its size. It
/// lives in the container's directory, whose removal unmounts it.
fn etc_files(container_dir: &std::path::Path) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = etc_dir(container_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(&dir) == dev(container_dir) {
        nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some("size=1m,nr_inodes=16,mode=755"),
        )
        .with_context(|| format!("mounting a tmpfs on {}", dir.display()))?;
    }
    Ok(dir)
}

pub fn run(paths: &Paths, global: &Global, args: RunArgs) -> Result<u8> {
    if !args.detach {
        super::check_tty(&args.process)?;
    }
    let Plan {
        id,
        found,
        spec,
        request,
        security_opt,
        names,
    } = plan(paths, global, &args)?;
    if global.explain {
        explain_spec(&spec)?;
    }
    let mut config = Config {
        id: id.clone(),
        name: args.name.clone(),
        image: found.id.clone(),
        image_name: args.image.clone(),
        version: state::SCHEMA,
        args: spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default(),
        hostname: spec.hostname().clone().unwrap_or_default(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        spec: Some(spec),
        user: args
            .process
            .user
            .clone()
            .unwrap_or(found.config.user.clone()),
        privileged: args.privileged,
        interactive: args.process.interactive,
        init: args.init,
        cgroup_parent: args.cgroup_parent.clone(),
        network: args.network.clone(),
        publish: request.publish.clone(),
        publish_all: request.publish_all,
        exposed: request.exposed.clone(),
        rm: args.rm,
        log: LogOptions::parse(&args.log_opts)?,
        security_opt,
        names,
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

/// `--explain`: the container's side (namespaces, mounts, pivot_root, cgroups, capabilities,
/// seccomp) as the OCI runtime config the executor follows, in comment lines, apart from the
/// network's commands that follow (so the whole stays a script that can be replayed).
fn explain_spec(spec: &Spec) -> Result<()> {
    let json = serde_json::to_string_pretty(spec)?;
    let mut out = String::from(
        "# ---- The container: its OCI runtime config (config.json), which minibox follows as runc\n\
         # would: namespaces, mounts, pivot_root into root.path, cgroups (linux.resources under\n\
         # linux.cgroupsPath), capabilities, rlimits and the seccomp profile. Shown, not replayed.\n",
    );
    for line in json.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# ---- The network, as a script: each line is what minibox does, in order.\n");
    eprint!("{out}");
    Ok(())
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
            Err(state::Error::NameInUse { .. }) if attempt < 40 => attempt += 1,
            Err(e) => return Err(e.into()),
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
    let log = LogFile::open(&log_path, config.log)?;
    let tty = config.tty();
    let output = Output::new(tty).context("creating a pipe")?;
    let (pid, started) = match setup(&mut container, found, config, signals, output.write_ends()) {
        Ok(s) => s,
        Err(e) => {
            drop(container);
            return Err(minibox::Error::from(e).into());
        }
    };
    let raw = (tty && interactive).then(tty::RawMode::enter);
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
    let status = process::wait(pid, signals, relay, &mut streams, Some(&log));
    drop(raw);
    let status = status.context("waiting for the container")?;
    let code = process::exit_code(status);
    let oom = code == 137 && container.oom_killed();
    if oom {
        eprintln!(
            "minibox: the container was killed by the OOM killer: it reached its memory limit{}",
            config
                .memory()
                .map(|m| match m % (1 << 20) {
                    0 => format!(" (--memory {}m)", m >> 20),
                    _ => format!(" (--memory {m})"),
                })
                .unwrap_or_default()
        );
    }
    if let Err(e) = container.finish(End::Exited { code, oom }) {
        eprintln!("minibox: ending container {:.12}: {e:#}", config.id);
    }
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
                Some(_) => {
                    let e = SetupError::decode(&report)
                        .unwrap_or_else(|| SetupError::new("the supervisor's report is garbled"));
                    Err(minibox::Error::from(e).into())
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
                                lifecycle::recover(&paths, explain, &config.id, st, lock);
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
    let result = (|| -> Result<(Pid, Started, Output), SetupError> {
        let fail = SetupError::sys;
        // `--explain` lines are for the user; this process's own stdio goes nowhere.
        let user_stderr =
            nix::fcntl::fcntl(std::io::stderr(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .map_err(|e| fail("duplicating stderr", e))?;
        network::explain_to(user_stderr);
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| SetupError::io("opening /dev/null", &e))?;
        for to in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), to) };
        }
        let output = Output::new(config.tty()).map_err(|e| fail("creating a pipe", e))?;
        let (pid, started) = setup(&mut container, found, config, signals, output.write_ends())?;
        Ok((pid, started, output))
    })();
    let mut report = std::fs::File::from(report);
    match result {
        Ok((pid, started, output)) => {
            let _ = report.write_all(&[0]);
            drop(report);
            let (out, err) = output.read_ends(started.pty);
            let failure = hand_over(&container, config.log, pid, out, err);
            // Not reached unless the exec failed: the container must not run unsupervised.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            tracing::error!("{failure}");
        }
        Err(e) => {
            // Undone before the report, so that `run` returns with nothing left.
            drop(container);
            let _ = report.write_all(&e.encode());
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
) -> Result<(Pid, Started), SetupError> {
    fn rt(e: impl Into<anyhow::Error>) -> SetupError {
        SetupError::new(format!("{:#}", e.into()))
    }
    let spec = config.runtime_spec().map_err(rt)?;
    let paths = c.paths.clone();
    let id = config.id.clone();
    let dir = state::dir(&paths, &id);
    let target = dir.join("rootfs");
    std::fs::create_dir_all(&target)
        .map_err(|e| SetupError::io(format!("creating {}", target.display()), &e))?;
    let rootfs = image::prepare(found, &dir).map_err(rt)?;
    fault("rootfs");
    let linux = spec.linux().clone().unwrap_or_default();
    let cgroup = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| SetupError::new("the Spec gives no cgroupsPath"))?;
    c.state.cgroup = Some(cgroup.clone());
    c.save().map_err(rt)?;
    let resources = linux.resources().clone().unwrap_or_default();
    c.cgroup = Some(Cgroup::create(&cgroup, &resources).map_err(rt)?);
    fault("cgroup");

    // The child bind-mounts these files early; the address line is added once the network is
    // wired (written in place, so the mounts see it).
    let request = request(&c.state, config);
    let host_network = request.mode == Mode::Host;
    let etc = etc_files(&dir).map_err(rt)?;
    state::write_etc(&etc, &config.hostname, host_network, &config.names).map_err(rt)?;

    let mount_rootfs = |t: &std::path::Path| rootfs.mount(t).map_err(SetupError::new);
    let launch = Launch {
        spec,
        mount_rootfs: Some(&mount_rootfs),
        signals,
        stdio: Stdio {
            input: None,
            keep_stdin: config.interactive,
            output,
        },
        init: config.init,
        seccomp_cache: &paths.seccomp_cache(),
        detached: None,
    };
    let child = process::spawn(&launch)?;
    fault("spawned");

    // The child sets up its filesystem while it is placed in its cgroup and its network is
    // wired; it waits for `go` before it goes further.
    let prepared = (|| -> Result<()> {
        c.cgroup.as_ref().expect("created above").add(child.pid)?;
        c.spawned(child.pid.as_raw());
        if let Mode::Bridge(name) = &request.mode {
            c.state.network = Some(name.clone());
        }
        c.save()?;
        let attachment = network::attach(&paths, c.explain, &id, child.pid, &request)?;
        if let (Some(address), Some(gateway)) = (attachment.address, attachment.gateway()) {
            let names = state::host_names(&config.hostname, config.name.as_deref(), &id);
            let extra = config.names.hosts_lines(gateway);
            state::write_hosts(&etc, &names, address, &extra)?;
            let server = attachment.dns_server();
            state::write_resolv_conf(&etc, &config.names, server, false)?;
        }
        c.state.ports = published(&attachment);
        c.state.attachment = Some(attachment);
        c.save()?;
        fault("attached");
        // A child that already failed cannot take `go`: its report follows on the channel.
        if let Err(e) = child.go(if config.tty() { tty::size() } else { None }) {
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
    if let Err(e) = c.running() {
        process::abort(child.pid);
        return Err(rt(e));
    }
    fault("running");
    Ok((child.pid, started))
}

/// What to ask of the network: the ports published last time when there were (`start` keeps
/// them), else what `run` asked.
fn request(st: &State, config: &Config) -> Request {
    let reuse = !st.ports.is_empty();
    Request {
        mode: Mode::parse(&config.network),
        // As `-p` values that publish them again.
        publish: if reuse {
            st.ports
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}:{}/{}",
                        m.host_ip, m.host_port, m.container_port, m.proto
                    )
                })
                .collect()
        } else {
            config.publish.clone()
        },
        publish_all: config.publish_all && !reuse,
        exposed: config.exposed.clone(),
        dns: Some(config.names.endpoint(config.name.as_deref(), &config.id)),
    }
}

/// Replaces this process with the container's supervisor, which keeps the lock and reads the
/// container's output from `out` (and `err`). Returns only if the exec failed.
fn hand_over(
    c: &Container,
    log: LogOptions,
    pid: Pid,
    out: OwnedFd,
    err: Option<OwnedFd>,
) -> SetupError {
    supervisor::exec(&supervisor::Handoff {
        paths: &c.paths,
        explain: c.explain,
        id: &c.id,
        pid,
        lock: c.lock(),
        out: out.as_fd(),
        err: err.as_ref().map(|e| e.as_fd()),
        log,
    })
}

/// The ports an attachment published.
fn published(att: &network::Attachment) -> Vec<minibox_netns::PortMapping> {
    att.bridge
        .iter()
        .flat_map(|b| b.ports.iter().copied())
        .collect()
}
