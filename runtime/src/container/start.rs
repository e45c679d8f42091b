//! A container's start: set it up from its records (root filesystem, cgroup, process, network,
//! each recorded before it is made), then either hand it to the caller (a foreground `run`) or
//! to a supervisor process ([`detach`]), which can start it again from the same records when
//! its restart policy says so ([`again`]). `run`, `create`/`start` and `system boot` are thin
//! callers of this.
//!
//! The start path is kept lean (no process spawned, no thread, no async runtime): the clone needs
//! a single-threaded parent, and the whole start aims at a few milliseconds.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use minibox_netns::DnsServer;
use nix::unistd::Pid;

use super::cgroups::Cgroup;
use super::error::SetupError;
use super::lifecycle::{self, fault, Container};
use super::log::Output;
use super::process::{self, Launch, Signals, Started, Stdio};
use super::spec::Share;
use super::state::{self, Config, Lock, State};
use super::{health, image, input, supervisor, tty};
use crate::network::{self, Mode, Request};
use crate::paths::Paths;

/// Where the container's /etc files are: the directory its Spec binds /etc/hosts from (the Spec
/// is the container's description). That is [`state::etc_dir`], in its volatile dir; a Spec
/// written by an older minibox names `etc` in its persistent dir, whose removal unmounts it too.
fn etc_dir(paths: &Paths, id: &str, spec: &super::spec::Spec) -> std::path::PathBuf {
    let hosts = std::path::Path::new("/etc/hosts");
    spec.mounts()
        .iter()
        .flatten()
        .filter(|m| m.destination() == hosts)
        .find_map(|m| Some(m.source().as_deref()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| state::etc_dir(paths, id))
}

/// Mounts the container's small tmpfs for its /etc files on `dir`, unless an earlier start did:
/// bound writable into the container, they cannot grow the host's memory by more than its size.
/// Whoever removes the directory holding `dir` unmounts it.
fn etc_files(dir: &std::path::Path) -> Result<(), SetupError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| SetupError::io(format!("creating {}", dir.display()), &e))?;
    let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
    if dev(dir) == dir.parent().and_then(dev) {
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some("size=1m,nr_inodes=16,mode=755"),
        )
        .map_err(|e| SetupError::sys(format!("mounting a tmpfs on {}", dir.display()), e))?;
    }
    Ok(())
}

/// Starts the container in a forked process that becomes its supervisor, and returns once the
/// container runs, or why it failed. Used by `run -d`, `start` and `system boot`.
pub fn detach(
    container: Container,
    found: &image::Found,
    config: &Config,
    signals: &Signals,
) -> Result<(), SetupError> {
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SetupError::sys("creating a pipe", e))?;
    // SAFETY: the process is single-threaded.
    match unsafe { nix::unistd::fork() }
        .map_err(|e| SetupError::sys("starting the supervisor", e))?
    {
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
                Some((0, _)) => Ok(()),
                Some(_) => Err(SetupError::decode(&report)
                    .unwrap_or_else(|| SetupError::new("the supervisor's report is garbled"))),
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
                    Err(SetupError::new(format!(
                        "the supervisor of {:.12} died while starting it",
                        config.id
                    )))
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
    type Made = (Pid, Started, Output, Option<OwnedFd>);
    let result = (|| -> Result<Made, SetupError> {
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
        let input = input::pipe(config).map_err(|e| fail("creating a pipe", e))?;
        let (pid, started) = setup(
            &mut container,
            found,
            config,
            signals,
            output.write_ends(),
            input.as_ref().map(|(r, _)| r.as_fd()),
        )?;
        Ok((pid, started, output, input.map(|(_, w)| w)))
    })();
    let mut report = std::fs::File::from(report);
    match result {
        Ok((pid, started, output, input)) => {
            let (out, err) = output.read_ends(started.pty);
            if let Err(e) = keep_input(&mut container, config, &out, input.as_ref()) {
                // Undone before the report, as a failed set-up is.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                drop(container);
                let _ = report.write_all(&e.encode());
                // SAFETY: leaving the forked process without the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            let _ = report.write_all(&[0]);
            drop(report);
            let failure = hand_over(&container, config, pid, out, err, input);
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
    input: Option<BorrowedFd>,
) -> Result<(Pid, Started), SetupError> {
    let paths = c.paths.clone();
    let spec = &rejoin(&paths, config).map_err(rt)?;
    let id = config.id.clone();
    let dir = state::dir(&paths, &id);
    let rootfs = image::prepare(found, &dir, config.rm).map_err(rt)?;
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
    if config.healthcheck.is_some() {
        health::reset(&paths, &id).map_err(rt)?;
    }

    // The child bind-mounts these files early; the address line is added once the network is
    // wired (written in place, so the mounts see it).
    let request = request(&c.state, config);
    let host_network = request.mode == Mode::Host;
    let etc = etc_dir(&paths, &id, spec);
    etc_files(&etc)?;
    fault("etc");
    state::write_etc(&etc, &config.hostname(), host_network, &config.names).map_err(rt)?;

    let launch = Launch {
        spec,
        rootfs: Some(&rootfs),
        mount_ns_base: &paths.mount_ns_base(),
        signals,
        stdio: Stdio {
            input,
            keep_stdin: config.interactive,
            output,
        },
        init: config.init,
        seccomp_cache: &paths.seccomp_cache(),
        detached: None,
    };
    let child = process::spawn(&launch)?;
    fault("spawned");

    // The child sets up its filesystem while its cgroup is made (the two take about as long:
    // on two cores they overlap) and its network is wired; it waits for `go` before it goes
    // further, moves itself into its cgroup (on v1: see `Cgroup::entries`) and makes its cgroup
    // namespace only then.
    let mut prepared = (|| -> Result<(Vec<OwnedFd>, Vec<DnsServer>), crate::Error> {
        let cgroup = c.cgroup.insert(Cgroup::create(&cgroup, &resources)?);
        fault("cgroup");
        let tasks = cgroup.entries()?;
        if tasks.is_none() {
            cgroup.add(child.pid)?;
        }
        c.spawned(child.pid.as_raw());
        if let Mode::Bridge(name) = &request.mode {
            c.state.network = Some(name.clone());
        }
        c.save()?;
        let (attachment, servers) = network::attach(&paths, c.explain, &id, child.pid, &request)?;
        if let (Some(address), Some(gateway)) = (attachment.address, attachment.gateway()) {
            let names = state::host_names(&config.hostname(), config.name.as_deref(), &id);
            let mut extra = String::new();
            if let Some(v6) = attachment.bridge.as_ref().and_then(|b| b.ipv6) {
                extra.push_str(&format!("{}\t{names}\n", v6.address));
            }
            extra.push_str(&config.names.hosts_lines(gateway));
            if let Mode::Bridge(net) = &request.mode {
                let resolve = |n: &str| state::resolve(&paths, n).ok();
                extra.push_str(&network::link_lines(
                    &paths,
                    &config.names.links,
                    net,
                    resolve,
                )?);
            }
            state::write_hosts(&etc, &names, address, &extra)?;
            let server = attachment.dns_server();
            state::write_resolv_conf(&etc, &config.names, server, false)?;
        }
        c.state.ports = published(&attachment);
        c.state.attachment = Some(attachment);
        c.save()?;
        fault("attached");
        Ok((tasks.unwrap_or_default(), servers))
    })();
    // A child that already failed cannot take `go`: its report follows on the channel.
    if let Ok((tasks, servers)) = prepared.as_mut() {
        if let Err(e) = child.go(if config.tty() { tty::size() } else { None }, tasks) {
            tracing::debug!("sending go: {e}");
        }
        // Its networks' DNS servers (port 53 bound since the attach, so no query is lost) fork
        // while the container goes on to its exec, rather than before it.
        for server in servers.drain(..) {
            server.start();
        }
    }
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
                .map(|m| format!("{}:{}/{}", m.host(), m.container_port, m.proto))
                .collect()
        } else {
            config.publish.clone()
        },
        publish_all: config.publish_all && !reuse,
        exposed: config.exposed.clone(),
        dns: Some(config.names.endpoint(config.name.as_deref(), &config.id)),
        ip: config.names.ip,
        ip6: config.names.ip6,
        mac: config.names.mac_bytes(),
        more: config.names.more(),
    }
}

/// Replaces this process with the container's supervisor, which keeps the lock and reads the
/// container's output from `out` (and `err`). Returns only if the exec failed.
fn hand_over(
    c: &Container,
    config: &Config,
    pid: Pid,
    out: OwnedFd,
    err: Option<OwnedFd>,
    input: Option<OwnedFd>,
) -> SetupError {
    supervisor::exec(&supervisor::Handoff {
        paths: &c.paths,
        explain: c.explain,
        id: &c.id,
        pid,
        lock: c.lock(),
        out: out.as_fd(),
        err: err.as_ref().map(|e| e.as_fd()),
        log: config.log,
        health: config.healthcheck.as_ref().map(|h| h.interval()),
        input: input.as_ref().map(|i| i.as_fd()),
    })
}

/// Records where the container's input is (with `-i`): the pty's master with `-t`, else the
/// writing side of its stdin's pipe, both kept by the supervisor this process becomes.
fn keep_input(
    c: &mut Container,
    config: &Config,
    out: &OwnedFd,
    pipe: Option<&OwnedFd>,
) -> Result<(), SetupError> {
    let kept = if config.tty() { Some(out) } else { pipe };
    c.state.input = input::record(config, kept);
    c.save()
        .map_err(|e| SetupError::new(format!("recording the container's input: {e}")))
}

/// In the supervisor of a container that exited, when its restart policy says so: starts it
/// again from its records, then becomes the new container's supervisor (this process is
/// replaced). Returns only if that failed; the container is then left exited.
pub fn again(paths: &Paths, explain: bool, id: &str, lock: Lock, mut st: State) -> SetupError {
    let config = match state::load_config(paths, id) {
        Ok(c) => c,
        Err(e) => return rt(e),
    };
    let found = match image::find(paths, &config.image) {
        Ok(f) => f,
        Err(e) => return rt(e),
    };
    let signals = match Signals::block() {
        Ok(s) => s,
        Err(e) => return SetupError::sys("blocking signals", e),
    };
    st.status = state::Status::Created;
    st.exit_code = None;
    let mut container = Container::new(paths, explain, &config, lock, st);
    let output = match Output::new(config.tty()) {
        Ok(o) => o,
        Err(e) => return SetupError::sys("creating a pipe", e),
    };
    let pipe = match input::pipe(&config) {
        Ok(p) => p,
        Err(e) => return SetupError::sys("creating a pipe", e),
    };
    let (pid, started) = match setup(
        &mut container,
        &found,
        &config,
        &signals,
        output.write_ends(),
        pipe.as_ref().map(|(r, _)| r.as_fd()),
    ) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (out, err) = output.read_ends(started.pty);
    let input = pipe.map(|(_, w)| w);
    let failure = match keep_input(&mut container, &config, &out, input.as_ref()) {
        Ok(()) => hand_over(&container, &config, pid, out, err, input),
        Err(e) => e,
    };
    // Not reached unless the exec failed: the container must not run unsupervised.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    failure
}

/// After a foreground `run`'s container exited, when its restart policy says so: a process of
/// its own (a new session, no stdio) takes the container's lock over, waits the policy's
/// backoff and becomes its supervisor, as Docker's daemon goes on restarting a container whose
/// `docker run` returned. `run` itself ends with the first exit's code.
pub fn take_over(paths: &Paths, explain: bool, id: &str, lock: Lock, code: u8) {
    let (Ok(config), Ok(st)) = (state::load_config(paths, id), state::load_state(paths, id)) else {
        return;
    };
    if !config
        .restart
        .restarts(code, st.restart_count, state::stopped_by_user(paths, id))
    {
        return;
    }
    // SAFETY: the foreground `run` is single-threaded.
    if let Ok(nix::unistd::ForkResult::Child) = unsafe { nix::unistd::fork() } {
        let _ = nix::unistd::setsid();
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for to in 0..3 {
                // SAFETY: dup2 onto the standard descriptors.
                unsafe { libc::dup2(null.as_raw_fd(), to) };
            }
        }
        supervisor::restart(paths, explain, id, lock, st, code);
        // SAFETY: leaving the forked process without the parent's exit handlers.
        unsafe { libc::_exit(0) }
    }
}

/// A failure of the runtime's own steps as a set-up failure (Docker's 125), in its one line.
fn rt(e: impl std::error::Error + 'static) -> SetupError {
    SetupError::new(crate::error::one_line(&e))
}

/// The ports an attachment published.
fn published(att: &network::Attachment) -> Vec<minibox_netns::PortMapping> {
    att.bridge
        .iter()
        .flat_map(|b| b.ports.iter().copied())
        .collect()
}

/// The `typ` namespace (`pid`, `ipc`, `uts`) of container `id`'s PID 1, which must be running
/// (its pid verified, so a reused pid is never taken for it).
pub fn namespace_of(paths: &Paths, id: &str, typ: &str) -> lifecycle::Result<std::path::PathBuf> {
    let st = state::load_state(paths, id)?;
    if !lifecycle::running(&st) {
        return Err(lifecycle::Error::NotJoinable {
            typ: typ.to_string(),
            id: id.to_string(),
        });
    }
    Ok(format!("/proc/{}/ns/{typ}", st.pid).into())
}

/// The Spec with the namespaces joined from other containers (`--pid container:NAME`...) looked
/// up again: their PID 1 may have changed since the Spec was built (a restart).
fn rejoin<'a>(paths: &Paths, config: &'a Config) -> lifecycle::Result<Cow<'a, super::spec::Spec>> {
    let spec = config.runtime_spec()?;
    if config.joins.is_empty() {
        // Borrowed: a Spec is big (its seccomp profile), and most containers join nothing.
        return Ok(Cow::Borrowed(spec));
    }
    let mut spec = spec.clone();
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    for (typ, id) in &config.joins {
        let path = namespace_of(paths, id, typ)?;
        for ns in namespaces
            .iter_mut()
            .filter(|n| n.typ().to_string() == *typ)
        {
            ns.set_path(Some(path.clone()));
        }
        if typ == "ipc" {
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            for m in mounts
                .iter_mut()
                .filter(|m| m.destination() == std::path::Path::new("/dev/shm"))
            {
                m.set_source(Some(Share::shm_of(&path)));
            }
            spec.set_mounts(Some(mounts));
        }
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(Cow::Owned(spec))
}
