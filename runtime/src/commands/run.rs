//! `minibox run` and `create`: check everything, turn the image and the flags into the
//! container's records (an OCI Spec and what minibox adds), then start it through the library
//! (`container::start`): attached to this process, or under its supervisor with `-d`.
//!
//! Every resource is recorded in the container's state before it is made (write-ahead), under
//! the container's lock, so that whatever dies when, the next command can undo it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::{Global, RunArgs, ServiceArgs};
use crate::container::cgroups::Cgroup;
use crate::container::health::{self, Healthcheck};
use crate::container::lifecycle::{self, fault, Container, End};
use crate::container::log::{LogFile, LogOptions, LogReader, Output, Stream};
use crate::container::process::{self, Signals};
use crate::container::restart::Policy;
use crate::container::spec::{self, Spec};
use crate::container::state::{self, Config, Lock, State};
use crate::container::{events, image, security_opt, signal, start, tty, user, volume};
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
    service: Service,
    joins: Vec<(String, String)>,
    storage: Storage,
    labels: BTreeMap<String, String>,
}

/// Which of the container's streams a foreground `run` shows (`-a`; all by default).
#[derive(Clone, Copy)]
struct Attach {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

impl Attach {
    fn parse(given: &[String], detach: bool) -> Result<Self> {
        if given.is_empty() {
            return Ok(Attach {
                stdin: true,
                stdout: true,
                stderr: true,
            });
        }
        if detach {
            bail!("conflicting options: cannot specify both --attach and --detach");
        }
        let mut a = Attach {
            stdin: false,
            stdout: false,
            stderr: false,
        };
        for s in given {
            match s.to_ascii_lowercase().as_str() {
                "stdin" => a.stdin = true,
                "stdout" => a.stdout = true,
                "stderr" => a.stderr = true,
                _ => bail!("invalid argument {s:?} for -a: use STDIN, STDOUT or STDERR"),
            }
        }
        Ok(a)
    }
}

/// The lines of an `--env-file` or `--label-file` as Docker reads them: blank lines and `#`
/// comments skipped, leading white space dropped.
fn lines_of(path: &Path, flag: &str) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `--label-file`s, then `--label`s over them: `KEY=VALUE`, or `KEY` for an empty value.
fn labels(args: &RunArgs) -> Result<BTreeMap<String, String>> {
    let mut all = Vec::new();
    for file in &args.label_files {
        all.extend(lines_of(file, "--label-file")?);
    }
    all.extend(args.labels.iter().cloned());
    let mut labels = BTreeMap::new();
    for l in all {
        let (k, v) = l.split_once('=').unwrap_or((&l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: give KEY=VALUE");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

/// `--cidfile`: the id, in a file made now (one that appeared since the check is not
/// overwritten).
fn write_cidfile(file: &Path, id: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .with_context(|| format!("--cidfile {}", file.display()))?;
    f.write_all(id.as_bytes())
        .with_context(|| format!("--cidfile {}", file.display()))
}

/// `-v`, `--mount`, `--tmpfs` and the image's VOLUMEs, planned: the Spec's mounts, and what
/// `run` makes once the container is recorded.
struct Storage {
    mounts: Vec<spec::storage::Mount>,
    /// Volumes to make unless they exist (copied up from the image when new, unless `nocopy`).
    volumes: Vec<NewVolume>,
    /// Host directories `-v` binds, made when missing (as Docker).
    host_dirs: Vec<std::path::PathBuf>,
}

struct NewVolume {
    name: String,
    anonymous: bool,
    /// The container path whose image content goes into the volume when it is new and empty.
    copy_from: Option<String>,
}

fn storage(
    paths: &Paths,
    args: &crate::cli::StorageArgs,
    image: &spec::ImageConfig,
) -> Result<Storage> {
    use spec::storage::{self as st, Kind, Source};
    let mut wanted = Vec::new();
    for v in &args.volumes {
        wanted.push(st::volume(v)?);
    }
    for m in &args.mounts {
        wanted.push(st::mount(m)?);
    }
    for t in &args.tmpfs {
        wanted.push(st::tmpfs(t)?);
    }
    let mut targets = std::collections::HashSet::new();
    for w in &wanted {
        if !targets.insert(w.target.clone()) {
            bail!("invalid mounts: {} is the target of two mounts", w.target);
        }
    }
    // Each VOLUME of the image that no mount covers gets an anonymous volume, as in Docker.
    for path in &image.volumes {
        if let Ok(target) = st::target("VOLUME", path, path) {
            if targets.insert(target.clone()) {
                wanted.push(st::Wanted {
                    source: Source::Anonymous,
                    target,
                    readonly: false,
                    nocopy: false,
                });
            }
        }
    }
    let mut plan = Storage {
        mounts: Vec::new(),
        volumes: Vec::new(),
        host_dirs: Vec::new(),
    };
    for w in wanted {
        let kind = match w.source {
            Source::Host { path, create } => {
                if create {
                    plan.host_dirs.push(path.clone());
                }
                Kind::Bind(path)
            }
            Source::Tmpfs(data) => Kind::Tmpfs(data),
            Source::Named(_) | Source::Anonymous => {
                let (name, anonymous) = match w.source {
                    Source::Named(name) => (name, false),
                    _ => (volume::anonymous_name()?, true),
                };
                plan.volumes.push(NewVolume {
                    name: name.clone(),
                    anonymous,
                    copy_from: (!w.nocopy).then(|| w.target.clone()),
                });
                Kind::Bind(volume::data(paths, &name))
            }
        };
        plan.mounts.push(st::Mount {
            kind,
            target: w.target,
            readonly: w.readonly,
        });
    }
    Ok(plan)
}

/// Makes what the container's mounts need, once it is recorded (so that whatever fails, its
/// end removes its anonymous volumes): host directories for `-v`, volumes, and a new volume's
/// copy of the image's content at its path.
fn make_storage(paths: &Paths, found: &image::Found, storage: &Storage) -> Result<()> {
    for dir in storage.host_dirs.iter().filter(|d| !d.exists()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the host directory {}", dir.display()))?;
    }
    if storage.volumes.is_empty() {
        return Ok(());
    }
    let _lock = volume::lock(paths)?;
    let layers = image::layers(found);
    for v in &storage.volumes {
        volume::create(paths, &v.name, v.anonymous)?;
        let data = volume::data(paths, &v.name);
        let empty = std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_none());
        if let (Some(path), true) = (&v.copy_from, empty) {
            volume::copy_up(paths, &layers, path, &data).map_err(|e| {
                anyhow::anyhow!("copying the image's {path} into volume {}: {e}", v.name)
            })?;
        }
    }
    Ok(())
}

/// How the container runs as a service: `--restart`, `--stop-*`, `--health-*` checked, merged
/// with the image's STOPSIGNAL and HEALTHCHECK.
struct Service {
    restart: Policy,
    stop_signal: Option<String>,
    stop_timeout: Option<u64>,
    healthcheck: Option<Healthcheck>,
}

fn service(args: &ServiceArgs, rm: bool, image: &spec::ImageConfig) -> Result<Service> {
    let restart = Policy::parse(&args.restart)?;
    if rm && restart != Policy::No {
        anyhow::bail!(
            "conflicting options: --restart and --rm: a removed container cannot be restarted"
        );
    }
    let stop_signal = args.stop_signal.clone().or(image.stop_signal.clone());
    if let Some(s) = &stop_signal {
        signal::parse(s)?;
    }
    let healthcheck = health::resolve(
        image.healthcheck.clone(),
        &health::Flags {
            cmd: args.health_cmd.as_deref(),
            interval: args.health_interval.as_deref(),
            timeout: args.health_timeout.as_deref(),
            start_period: args.health_start_period.as_deref(),
            retries: args.health_retries,
            none: args.no_healthcheck,
        },
    )?;
    Ok(Service {
        restart,
        stop_signal,
        stop_timeout: args.stop_timeout,
        healthcheck,
    })
}

fn plan(paths: &Paths, global: &Global, args: &RunArgs) -> Result<Plan> {
    if let Some(file) = args.cidfile.as_deref().filter(|f| f.exists()) {
        bail!(
            "container ID file found, make sure the other container isn't running or delete {}",
            file.display()
        );
    }
    let labels = labels(args)?;
    // `--env-file`s first, `-e` over them, as Docker.
    let mut env = Vec::new();
    for file in &args.env_files {
        env.extend(lines_of(file, "--env-file")?);
    }
    env.extend(args.process.env.iter().cloned());
    let memory = args.memory.as_deref().map(spec::memory).transpose()?;
    let cpu_quota = args.cpus.as_deref().map(spec::cpu_quota).transpose()?;
    let caps = spec::capabilities(&args.cap_add, &args.cap_drop, args.privileged)?;
    let security = security_opt::parse(&args.security_opt)?;
    let seccomp = security.seccomp_for(&caps, args.privileged)?;
    if let Some(name) = &args.name {
        state::check_name(name)?;
    }
    let mode = Mode::parse(&args.network[0]);
    let more = more_networks(&args.network)?;
    let n = &args.names;
    let flags = network::Flags {
        aliases: &n.network_alias,
        links: &n.link,
        add_hosts: &n.add_host,
        dns: &n.dns,
        dns_search: &n.dns_search,
        dns_options: &n.dns_option,
        ip: n.ip.as_deref(),
        ip6: n.ip6.as_deref(),
        mac_address: n.mac_address.as_deref(),
    };
    let names = Names {
        more_networks: more.clone(),
        ..Names::parse(&flags, &mode)?
    };
    // Linked containers must be running on the network now, as Docker has it.
    if let Mode::Bridge(net) = &mode {
        network::link_lines(paths, &names.links, net, |n| state::resolve(paths, n).ok())?;
    }
    super::registry::ensure(
        paths,
        global,
        &args.image,
        args.pull,
        args.platform.as_deref(),
        args.quiet,
    )?;
    let found = image::find(paths, &args.image)?;
    let service = service(&args.service, args.rm, &found.config)?;
    let storage = storage(paths, &args.storage, &found.config)?;
    let id = state::new_id()?;
    let (mut limits, joins) = limits(paths, args, memory, mode.new_netns())?;
    let own_uts = limits.uts.private();
    if let (Some(_), false) = (&args.hostname, own_uts) {
        bail!(
            "conflicting options: --hostname needs the container's own UTS namespace (not --uts {})",
            args.limits.uts
        );
    }
    // Docker's defaults: the short id, or the host's name with the host's network.
    let hostname = match (&args.hostname, &mode) {
        (Some(h), _) => h.clone(),
        (None, _) if !own_uts => state::host_hostname(&id),
        (None, Mode::Host) => state::host_hostname(&id),
        (None, _) => id[..12].to_string(),
    };
    let user_spec = args
        .process
        .user
        .clone()
        .unwrap_or_else(|| found.config.user.clone());
    let layers = image::layers(&found);
    let mut user = user::lookup(&user_spec, &layers).map_err(anyhow::Error::msg)?;
    for group in &args.limits.group_add {
        let gid = user::group(group, &layers).map_err(anyhow::Error::msg)?;
        if gid != user.gid && !user.groups.contains(&gid) {
            user.groups.push(gid);
        }
    }
    limits.rlimits = spec::limits::rlimits(&args.limits.ulimits)?;
    let dir = state::dir(paths, &id);
    let process = spec::Process {
        args: spec::command(&found.config, args.entrypoint.as_deref(), &args.command)?,
        env: spec::environment(&found.config, &hostname, args.process.tty, &env)?,
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
        etc: &state::etc_dir(paths, &id),
        volumes: &storage.mounts,
        readonly_root: args.storage.read_only,
        privileged: args.privileged,
        own_netns: mode.new_netns(),
        cgroup: Cgroup::path_for(&args.cgroup_parent, &id)?,
        memory,
        cpu_quota,
        pids: args.pids_limit.filter(|n| *n > 0),
        seccomp,
        limits,
    })?;
    let request = Request {
        mode,
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: found.config.exposed.clone(),
        dns: None,
        ip: names.ip,
        ip6: names.ip6,
        mac: None,
        more: more.into_iter().map(|n| (n, Default::default())).collect(),
    };
    let ports = network::check(paths, &request)?;
    for holder in network::holders(paths, &request, &ports)? {
        lifecycle::settle(paths, global.explain, &holder);
    }
    Ok(Plan {
        id,
        found,
        spec,
        request,
        security_opt: security.given,
        names,
        service,
        joins,
        storage,
        labels,
    })
}

/// `run`'s further limits, checked (rlimits are filled in by the caller), and the namespaces
/// joined from other containers (type, container id).
fn limits(
    paths: &Paths,
    args: &RunArgs,
    memory: Option<i64>,
    own_net: bool,
) -> Result<(spec::Limits, Vec<(String, String)>)> {
    let l = &args.limits;
    let mut joins = Vec::new();
    let mut share = |flag: &str, value: &str| -> Result<spec::Share> {
        match spec::Share::parse(flag, value)? {
            spec::Share::Container(name) => {
                let id = state::resolve(paths, &name)?;
                let path = start::namespace_of(paths, &id, flag)?;
                joins.push((flag.to_string(), id));
                Ok(spec::Share::Path(path))
            }
            share => Ok(share),
        }
    };
    let (pid, ipc, uts) = (
        share("pid", &l.pid)?,
        share("ipc", &l.ipc)?,
        share("uts", &l.uts)?,
    );
    let limits = spec::Limits {
        rlimits: Vec::new(),
        memory_swap: spec::limits::memory_swap(
            l.memory_swap.as_deref(),
            memory,
            crate::container::cgroups::swap_accounted(),
        )?,
        cpu_shares: l.cpu_shares.map(spec::limits::cpu_shares).transpose()?,
        cpuset_cpus: l
            .cpuset_cpus
            .as_deref()
            .map(spec::limits::cpuset)
            .transpose()?,
        shm_size: l
            .shm_size
            .as_deref()
            .map(spec::limits::shm_size)
            .transpose()?,
        devices: l
            .devices
            .iter()
            .map(|d| spec::limits::device(d))
            .collect::<spec::Result<_>>()?,
        sysctls: spec::limits::sysctls(&l.sysctls, own_net, &ipc, &uts)?,
        pid,
        ipc,
        uts,
    };
    Ok((limits, joins))
}

/// Checks everything, then records the new container (under its lock, which the caller holds).
fn record(
    paths: &Paths,
    global: &Global,
    args: &RunArgs,
) -> Result<(Config, image::Found, Lock, Storage)> {
    let Plan {
        id,
        found,
        spec,
        request,
        security_opt,
        names,
        service,
        joins,
        storage,
        labels,
    } = plan(paths, global, args)?;
    if global.explain {
        explain_spec(&spec)?;
    }
    let mut config = Config {
        id: id.clone(),
        name: args.name.clone(),
        image: found.id.clone(),
        image_name: args.image.clone(),
        version: state::SCHEMA,
        old_args: Vec::new(),
        old_hostname: String::new(),
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
        network: args.network[0].clone(),
        publish: request.publish.clone(),
        publish_all: request.publish_all,
        exposed: request.exposed.clone(),
        rm: args.rm,
        log: LogOptions::parse(&args.log_opts)?,
        security_opt,
        names,
        restart: service.restart,
        stop_signal: service.stop_signal,
        stop_timeout: service.stop_timeout,
        healthcheck: service.healthcheck,
        joins,
        volumes: storage.volumes.iter().map(|v| v.name.clone()).collect(),
        labels,
    };
    let lock = match &args.name {
        Some(name) => create_as(paths, global.explain, &id, name)?,
        None => create_named(paths, &mut config)?,
    };
    fault("created");
    if let Some(file) = &args.cidfile {
        write_cidfile(file, &id)?;
    }
    Ok((config, found, lock, storage))
}

pub fn run(paths: &Paths, global: &Global, args: RunArgs) -> Result<u8> {
    if !args.detach {
        super::check_tty(&args.process)?;
    }
    let attach = Attach::parse(&args.attach, args.detach)?;
    // From here on a signal must not kill minibox halfway: they wait, and go to the container.
    let signals = Signals::block().context("blocking signals")?;
    let (config, found, lock, storage) = record(paths, global, &args)?;
    let container = Container::new(paths, global.explain, &config, lock, State::default());
    state::write_config(paths, &config)?;
    fault("config");
    if let Err(e) = make_storage(paths, &found, &storage) {
        drop(container);
        return Err(e);
    }
    events::record_as(paths, &config.id, &config.actor(), "create", &[]);
    if args.detach {
        start::detach(container, &found, &config, &signals).map_err(minibox::Error::from)?;
        println!("{}", config.id);
        return Ok(0);
    }
    if !args.sig_proxy {
        // Its supervisor owns it and this minibox only attaches: a signal to this one (ctrl-c)
        // leaves the container running, as Docker's --sig-proxy=false does.
        let what = config.name.clone().unwrap_or_else(|| config.id.clone());
        let kept = config.log.max_file;
        // The log made now and held open: an `--rm` container's goes as it exits.
        let log_path = state::log_path(paths, &config.id);
        drop(LogFile::open(&log_path, config.log)?);
        let reader = LogReader::open(&log_path, kept)?.0;
        let lock_file = state::lock_file(paths, &config.id)?;
        start::detach(container, &found, &config, &signals).map_err(minibox::Error::from)?;
        // Signals act on this process again: ctrl-c ends it, not the container.
        let _ = signals.set.thread_unblock();
        let stdin = args.process.interactive && attach.stdin;
        return super::container::attached(
            paths,
            global.explain,
            &config.id,
            &what,
            reader,
            stdin,
            Some(lock_file),
        );
    }
    foreground(
        container,
        &found,
        &config,
        &signals,
        args.process.interactive && attach.stdin,
        attach,
    )
}

/// `create`: the container's records, made as `run` makes them, left for `start`.
pub fn create(paths: &Paths, global: &Global, args: RunArgs) -> Result<u8> {
    let (config, found, lock, storage) = record(paths, global, &args)?;
    let mut container = Container::new(paths, global.explain, &config, lock, State::default());
    state::write_config(paths, &config)?;
    // Until its volumes are made, a failure removes it (nothing half-made); then it is created.
    if let Err(e) = make_storage(paths, &found, &storage) {
        drop(container);
        return Err(e);
    }
    container.state.unstarted = true;
    container.save()?;
    events::record_as(paths, &config.id, &config.actor(), "create", &[]);
    container.disarm();
    println!("{}", config.id);
    Ok(0)
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
/// Records a container under `name`; a name still held by a container whose owner died is
/// freed by recovering that one first.
fn create_as(paths: &Paths, explain: bool, id: &str, name: &str) -> Result<Lock> {
    match state::create(paths, id, Some(name)) {
        Err(state::Error::NameInUse { owner, .. }) if lifecycle::settle(paths, explain, &owner) => {
            Ok(state::create(paths, id, Some(name))?)
        }
        made => Ok(made?),
    }
}

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
    attach: Attach,
) -> Result<u8> {
    let log_path = state::log_path(&container.paths, &config.id);
    let log = LogFile::open(&log_path, config.log)?;
    let tty = config.tty();
    let output = Output::new(tty).context("creating a pipe")?;
    let (pid, started) = match start::setup(
        &mut container,
        found,
        config,
        signals,
        output.write_ends(),
        None,
    ) {
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
    // Streams not attached (`-a`) are still logged.
    let mut streams = [
        Some(Stream::new(
            out,
            b"stdout",
            attach.stdout.then(|| stdout.as_fd()),
        )),
        err.map(|e| Stream::new(e, b"stderr", attach.stderr.then(|| stderr.as_fd()))),
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
    // A copy of the lock outlives `finish`, for whoever applies the restart policy.
    let kept = (config.restart != Policy::No)
        .then(|| container.lock_clone().ok())
        .flatten();
    let (paths, explain) = (container.paths.clone(), container.explain);
    if let Err(e) = container.finish(End::Exited { code, oom }) {
        eprintln!(
            "minibox: ending container {:.12}: {}",
            config.id,
            minibox::error::one_line(&e)
        );
    }
    if let Some(lock) = kept {
        start::take_over(&paths, explain, &config.id, lock, code);
    }
    Ok(code)
}

/// The `--network`s after the first: bridge networks, each once, at most
/// [`network::MAX_NETWORKS`] in all.
fn more_networks(all: &[String]) -> Result<Vec<String>> {
    if all.len() == 1 {
        return Ok(Vec::new());
    }
    if all.len() > network::MAX_NETWORKS {
        bail!("too many --network: at most {}", network::MAX_NETWORKS);
    }
    for (i, n) in all.iter().enumerate() {
        if n == "none" || n == "host" {
            bail!("--network {n} cannot be combined with other networks");
        }
        if all[..i].contains(n) {
            bail!("--network {n} is given twice");
        }
    }
    Ok(all[1..].to_vec())
}
