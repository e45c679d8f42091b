//! Commands on existing containers: `inspect`'s document, `logs`, `stop`, `kill`, `rm`,
//! `start`, `restart`, `wait`, `attach`, `pause`, `rename`, `container prune`, `system prune`,
//! `system boot`, `healthcheck`. Each finds containers by name, full id or unique id
//! prefix, reads their state files, and
//! changes a container only under its lock.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::resolve;
use crate::cli::{KillArgs, LogsArgs, RmArgs, StartArgs, StopArgs};
use crate::container::cgroups::Cgroup;
use crate::container::lifecycle::{self, Container};
use crate::container::log::LogReader;
use crate::container::process::Signals;
use crate::container::spec::DEFAULT_CAPS;
use crate::container::state::{self, Config, State, Status};
use crate::container::{clock, events, health, image, input, signal, start, tty, volume};
use crate::paths::Paths;
use minibox_netns::HostPort;

fn load(paths: &Paths, id: &str) -> Result<(Config, State)> {
    Ok((
        state::load_config(paths, id)?,
        state::load_state(paths, id)?,
    ))
}

fn time_or_zero(ns: Option<u64>) -> String {
    ns.map_or("0001-01-01T00:00:00Z".into(), clock::rfc3339)
}

/// Docker's `inspect` document for one container.
fn container_document(paths: &Paths, c: &Config, st: &State) -> Value {
    let running = st.status == Status::Running;
    let bridge = st
        .attachment
        .as_ref()
        .and_then(|a| a.bridge.as_ref())
        .filter(|_| running);
    let mut ports = serde_json::Map::new();
    for e in &c.exposed {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        ports.insert(key, Value::Null);
    }
    for m in bridge.iter().flat_map(|b| b.ports.iter()) {
        let key = format!("{}/{}", m.container_port, m.proto);
        let entry = json!({"HostIp": m.host_ip.to_string(), "HostPort": m.host_port.to_string()});
        match ports.get_mut(&key) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                ports.insert(key, json!([entry]));
            }
        }
    }
    let (ip, gateway, mac, prefix) =
        bridge.map_or((String::new(), String::new(), String::new(), 0), |b| {
            (
                b.address.to_string(),
                b.gateway.to_string(),
                b.mac.clone(),
                b.prefix_len,
            )
        });
    // Docker's IPv6 fields: empty strings and 0 without IPv6.
    let (ip6, gateway6, prefix6) =
        bridge
            .and_then(|b| b.ipv6)
            .map_or((String::new(), String::new(), 0), |v6| {
                (
                    v6.address.to_string(),
                    v6.gateway.to_string(),
                    v6.prefix_len,
                )
            });
    let mut networks = serde_json::Map::new();
    if let Some(b) = bridge {
        networks.insert(
            b.network.clone(),
            json!({"IPAddress": ip, "Gateway": gateway, "IPPrefixLen": prefix, "MacAddress": mac,
                   "GlobalIPv6Address": ip6, "GlobalIPv6PrefixLen": prefix6,
                   "IPv6Gateway": gateway6}),
        );
    }
    let process = c.spec.as_ref().and_then(|s| s.process().as_ref());
    let resources = c
        .spec
        .as_ref()
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| l.resources().as_ref());
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    // `--cpus` in billionths of a CPU, as Docker records it (its CpuQuota is for --cpu-quota).
    let nano_cpus = cpu
        .and_then(|c| Some((c.quota()?, c.period()?)))
        .map_or(0, |(quota, period)| {
            quota * 1_000_000_000 / period.max(1) as i64
        });
    let mounts = mounts(paths, c);
    let (cap_add, cap_drop) = cap_changes(c);
    let paused = running
        && st
            .cgroup
            .as_deref()
            .is_some_and(|p| Cgroup::open(p).frozen());
    let host_config = json!({
        // Docker lists binds and named volumes here; anonymous ones are the image's VOLUMEs.
        "Binds": binds(&mounts),
        "NetworkMode": c.network,
        "PortBindings": port_bindings(&c.publish),
        "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": c.restart.max_retries()},
        "AutoRemove": c.rm,
        "CapAdd": cap_add,
        "CapDrop": cap_drop,
        "Privileged": c.privileged,
        "SecurityOpt": (!c.security_opt.is_empty()).then_some(&c.security_opt),
        "Memory": resources.and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).unwrap_or(0),
        "NanoCpus": nano_cpus,
        "CpuQuota": 0,
        "CpuPeriod": 0,
        "CpuShares": cpu.and_then(|c| c.shares()).unwrap_or(0),
        "PidsLimit": resources.and_then(|r| r.pids().as_ref()).map_or(0, |p| p.limit()),
        "CgroupParent": c.cgroup_parent,
    });
    let mounts: Vec<Value> = mounts.iter().map(Mount::document).collect();
    let mut doc = json!({
        "Id": c.id,
        "Created": clock::rfc3339(c.created * 1_000_000_000),
        "Path": c.command().first().cloned().unwrap_or_default(),
        "Args": c.command().iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": match (paused, st.restarting && !running) {
                (true, _) => "paused",
                (false, true) => "restarting",
                (false, false) => st.status.as_str(),
            },
            "Running": running,
            "Paused": paused,
            "Restarting": st.restarting && !running,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": if running { st.pid } else { 0 },
            "ExitCode": st.exit_code.unwrap_or(0),
            "StartedAt": time_or_zero(st.started_at),
            "FinishedAt": time_or_zero(st.finished_at),
            "Health": c.healthcheck.as_ref().map(|_| health::load(paths, &c.id).unwrap_or_default()),
        },
        "RestartCount": st.restart_count,
        "Image": c.image,
        "Name": c.name.as_ref().map(|n| format!("/{n}")).unwrap_or_default(),
        "LogPath": state::log_path(paths, &c.id).display().to_string(),
        "HostConfig": host_config,
        "Mounts": mounts,
        "Config": {
            "Hostname": c.hostname(),
            "User": c.user,
            "Tty": c.tty(),
            "OpenStdin": c.interactive,
            "Env": process.and_then(|p| p.env().clone()).unwrap_or_default(),
            "Cmd": c.command(),
            "Image": c.image_name,
            "WorkingDir": process.map(|p| p.cwd().clone()).unwrap_or_default(),
            "ExposedPorts": c.exposed.iter().map(|e| (e.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
            "Labels": c.labels,
            "StopSignal": c.stop_signal,
            "StopTimeout": c.stop_timeout,
            "Healthcheck": c.healthcheck,
        },
        "NetworkSettings": {
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "GlobalIPv6Address": ip6,
            "GlobalIPv6PrefixLen": prefix6,
            "IPv6Gateway": gateway6,
            "MacAddress": mac,
            "Ports": ports,
            "Networks": networks,
        },
    });
    // Docker leaves these out when the container has none.
    for (section, key) in [
        ("State", "Health"),
        ("Config", "StopSignal"),
        ("Config", "StopTimeout"),
        ("Config", "Healthcheck"),
    ] {
        if let Some(m) = doc[section].as_object_mut() {
            if m.get(key).is_some_and(Value::is_null) {
                m.remove(key);
            }
        }
    }
    doc
}

/// A mount of the user's (`-v`, `--mount` of a bind or a volume), as `inspect` shows it.
pub(super) struct Mount {
    /// The volume's name; none for a bind.
    pub volume: Option<String>,
    /// An anonymous volume (an image's VOLUME, `-v /path`).
    pub anonymous: bool,
    pub source: String,
    pub destination: String,
    pub rw: bool,
}

impl Mount {
    /// Docker's `Mounts` entry.
    fn document(&self) -> Value {
        match &self.volume {
            Some(name) => json!({"Type": "volume", "Name": name, "Source": self.source,
                "Destination": self.destination, "Driver": "local", "Mode": "z", "RW": self.rw,
                "Propagation": ""}),
            None => json!({"Type": "bind", "Source": self.source,
                "Destination": self.destination, "Mode": "", "RW": self.rw,
                "Propagation": "rprivate"}),
        }
    }
}

/// The container's binds and volumes. A volume is a bind of its `_data` directory; minibox's
/// own files (/etc/hosts, ...) come from the container's volatile dir (or, made by an older
/// minibox, its persistent dir) and are not the user's.
pub(super) fn mounts(paths: &Paths, c: &Config) -> Vec<Mount> {
    let own = [state::state_dir(paths, &c.id), state::dir(paths, &c.id)];
    let volumes = volume::dir(paths);
    let mounts = c.spec.as_ref().and_then(|s| s.mounts().as_ref());
    mounts
        .into_iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("bind"))
        .filter_map(|m| {
            let source = m.source().as_ref()?;
            if own.iter().any(|dir| source.starts_with(dir)) {
                return None;
            }
            let volume = source
                .strip_prefix(&volumes)
                .ok()
                .and_then(|rest| rest.parent())
                .map(|name| name.display().to_string())
                .filter(|name| c.volumes.contains(name));
            let anonymous = volume
                .as_deref()
                .is_some_and(|name| volume::get(paths, name).is_ok_and(|v| v.anonymous));
            Some(Mount {
                volume,
                anonymous,
                source: source.display().to_string(),
                destination: m.destination().display().to_string(),
                rw: !m.options().iter().flatten().any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Docker's HostConfig.Binds: `SOURCE:DEST[:ro]`, a named volume's SOURCE its name.
fn binds(mounts: &[Mount]) -> Option<Vec<String>> {
    let binds: Vec<String> = mounts
        .iter()
        .filter_map(|m| {
            let source = match &m.volume {
                Some(_) if m.anonymous => return None,
                Some(name) => name,
                None => &m.source,
            };
            let ro = if m.rw { "" } else { ":ro" };
            Some(format!("{source}:{}{ro}", m.destination))
        })
        .collect();
    (!binds.is_empty()).then_some(binds)
}

/// Docker's CapAdd and CapDrop, from the container's bounding set against the default one.
fn cap_changes(c: &Config) -> (Option<Vec<String>>, Option<Vec<String>>) {
    let given: std::collections::BTreeSet<String> = c
        .spec
        .as_ref()
        .and_then(|s| s.process().as_ref())
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|caps| caps.bounding().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|cap| serde_json::to_value(cap).ok()?.as_str().map(String::from))
        .collect();
    let default: std::collections::BTreeSet<String> =
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
    if c.privileged {
        return (None, None);
    }
    (
        list(given.difference(&default).cloned().collect()),
        list(default.difference(&given).cloned().collect()),
    )
}

/// Docker's HostConfig.PortBindings: what `-p` asked for, by container port.
fn port_bindings(publish: &[String]) -> Value {
    let mut bindings = serde_json::Map::new();
    for request in publish
        .iter()
        .filter_map(|p| minibox_netns::PortSpec::parse(p).ok())
        .flat_map(|spec| spec.requests())
    {
        let host_port = match request.host {
            HostPort::Fixed(p) => p.to_string(),
            HostPort::AnyIn(r) => format!("{}-{}", r.first, r.last),
            HostPort::Random => String::new(),
        };
        let entry = json!({
            "HostIp": request.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "HostPort": host_port,
        });
        let key = format!("{}/{}", request.container, request.proto);
        match bindings.get_mut(&key) {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                bindings.insert(key, json!([entry]));
            }
        }
    }
    Value::Object(bindings)
}

/// The `inspect` document of container `id`.
pub(super) fn document(paths: &Paths, id: &str) -> Result<Value> {
    let (c, st) = load(paths, id)?;
    Ok(container_document(paths, &c, &st))
}

/// One record of the log: `<time> <stream> <F|P> <text>`.
fn print_record(line: &str, timestamps: bool) -> Result<()> {
    let mut parts = line.splitn(4, ' ');
    let (Some(ts), Some(stream), Some(tag), text) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next().unwrap_or(""),
    ) else {
        return Ok(());
    };
    let end = if tag == "F" { "\n" } else { "" };
    let prefix = if timestamps {
        format!("{ts} ")
    } else {
        String::new()
    };
    let s = format!("{prefix}{text}{end}");
    // A closed pipe (`logs | head`) is not an error worth reporting.
    let _ = if stream == "stderr" {
        std::io::stderr().write_all(s.as_bytes())
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(s.as_bytes()).and_then(|_| out.flush())
    };
    Ok(())
}

pub fn logs(paths: &Paths, args: &LogsArgs) -> Result<u8> {
    let id = state::resolve(paths, &args.container)?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| anyhow::anyhow!("--tail {n:?}: give a number of lines or \"all\""))?,
        ),
    };
    let now = state::now_ns();
    let since = args
        .since
        .as_deref()
        .map(|t| instant("--since", t, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| instant("--until", t, now))
        .transpose()?;
    // A record's time is its first field, RFC 3339 in UTC.
    let within = |r: &String| {
        let t = r
            .split(' ')
            .next()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
    };
    let path = state::log_path(paths, &id);
    let kept = state::load_config(paths, &id).map_or(1, |c| c.log.max_file);
    let (reader, records) = LogReader::open(&path, kept)?;
    let records: Vec<String> = records.into_iter().filter(within).collect();
    let skip = tail.map_or(0, |n| records.len().saturating_sub(n));
    for r in &records[skip..] {
        print_record(r, args.timestamps)?;
    }
    if args.follow {
        follow(paths, &id, reader, args.timestamps, within, None)?;
    }
    Ok(0)
}

/// The container's log, opened at its end: what it writes from now on.
fn log_from_now(paths: &Paths, id: &str) -> Result<LogReader> {
    let kept = state::load_config(paths, id).map_or(1, |c| c.log.max_file);
    Ok(LogReader::open(&state::log_path(paths, id), kept)?.0)
}

/// Prints the records `reader` gets (those `within` says) until the container has exited, or
/// until `detached` is set (the user typed the detach keys).
fn follow(
    paths: &Paths,
    id: &str,
    mut reader: LogReader,
    timestamps: bool,
    within: impl Fn(&String) -> bool,
    detached: Option<&AtomicBool>,
) -> Result<()> {
    loop {
        let done = state::load_state(paths, id).map_or(true, |s| s.status == Status::Exited)
            || detached.is_some_and(|d| d.load(Ordering::Relaxed));
        for r in reader.more()?.into_iter().filter(&within) {
            print_record(&r, timestamps)?;
        }
        if done {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Shows a running container's output from `reader` on until it exits, and answers with its
/// exit code (`attach`, `start -a`, `run --sig-proxy=false`). With `stdin`, the user's input
/// goes into the container's (when it was run with `-i`) until they type ctrl-p ctrl-q, which
/// leaves it running, as Docker's detach keys do.
pub(super) fn attached(
    paths: &Paths,
    explain: bool,
    id: &str,
    what: &str,
    reader: LogReader,
    stdin: bool,
    lock_file: Option<std::fs::File>,
) -> Result<u8> {
    // Waiting from now on, so that the exit code of a container removed as it exits is kept.
    let lock_file = match lock_file {
        Some(f) => Some(f),
        None => state::lock_file(paths, id).ok(),
    };
    let waiter = {
        let (paths, id) = (paths.clone(), id.to_string());
        std::thread::spawn(move || lifecycle::wait_from(&paths, explain, &id, lock_file))
    };
    let st = state::load_state(paths, id)?;
    let to = if stdin { input::open(&st)? } else { None };
    let tty = state::load_config(paths, id).is_ok_and(|c| c.tty());
    if to.is_some() && tty && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Err(super::NotATty.into());
    }
    let detached = Arc::new(AtomicBool::new(false));
    let _raw = to.as_ref().filter(|_| tty).map(|to| {
        input::size_terminal(to, tty);
        tty::RawMode::enter()
    });
    if let Some(to) = to {
        let detached = detached.clone();
        // Blocked on the user's stdin: left behind when the container exits.
        std::thread::spawn(move || {
            if input::forward(to) {
                detached.store(true, Ordering::Relaxed);
            }
        });
    }
    follow(paths, id, reader, false, |_| true, Some(&detached))?;
    if detached.load(Ordering::Relaxed) {
        drop(_raw);
        // Docker's words and code for a detach.
        eprintln!("minibox: read escape sequence: detached from {what}, which goes on running");
        return Ok(1);
    }
    let code = waiter.join().ok().flatten();
    code.ok_or_else(|| {
        anyhow::anyhow!("container {what} was removed as it exited: its exit code is gone")
    })
}

/// `attach CONTAINER`: its output until it exits, then its exit code; its input from ours
/// unless `no_stdin`.
pub fn attach(paths: &Paths, explain: bool, what: &str, no_stdin: bool) -> Result<u8> {
    let id = resolve(paths, explain, what)?;
    let st = state::load_state(paths, &id)?;
    if !lifecycle::running(&st) {
        bail!("cannot attach to a stopped container, start it first");
    }
    let reader = log_from_now(paths, &id)?;
    attached(paths, explain, &id, what, reader, !no_stdin, None)
}

/// A `logs --since/--until` time in nanoseconds since the epoch.
fn instant(flag: &str, value: &str, now: u64) -> Result<u64> {
    clock::parse_time(value, now).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid value {value:?} for {flag}: give a time (2026-11-26T10:00:00Z), a Unix time \
             or a duration (10m)"
        )
    })
}

/// Stops one container: `-s`, else its stop signal; `-t`, else its stop timeout, else 10 s.
fn stop_one(paths: &Paths, explain: bool, id: &str, args: &StopArgs) -> Result<()> {
    let config = state::load_config(paths, id)?;
    let sig = match &args.signal {
        Some(s) => signal::parse(s)?,
        None => signal::stop_signal(config.stop_signal.as_deref()),
    };
    let secs = args.time.or(config.stop_timeout).unwrap_or(10);
    lifecycle::stop(paths, explain, id, sig, Duration::from_secs(secs))?;
    Ok(())
}

pub fn stop(paths: &Paths, explain: bool, args: &StopArgs) -> Result<u8> {
    if let Some(s) = &args.signal {
        signal::parse(s)?;
    }
    for what in &args.containers {
        let id = resolve(paths, explain, what)?;
        stop_one(paths, explain, &id, args)
            .with_context(|| format!("stopping container {what}"))?;
        println!("{what}");
    }
    Ok(0)
}

pub fn kill(paths: &Paths, explain: bool, args: &KillArgs) -> Result<u8> {
    let sig = signal::parse(&args.signal)?;
    for what in &args.containers {
        let id = resolve(paths, explain, what)?;
        lifecycle::kill(paths, explain, &id, sig).with_context(|| format!("container {what}"))?;
        println!("{what}");
    }
    Ok(0)
}

/// Docker's `rm`: every container it can, then the first failure; with `-f` a name that names
/// nothing is no failure (the container is gone, as asked).
pub fn rm(paths: &Paths, explain: bool, args: &RmArgs) -> Result<u8> {
    let mut failure = None;
    for what in &args.containers {
        let id = match state::resolve(paths, what) {
            Err(state::Error::NoSuchContainer(_)) if args.force => continue,
            found => found,
        };
        let volumes = match (&id, args.volumes) {
            (Ok(id), true) => state::load_config(paths, id)
                .map(|c| c.volumes)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        match id.map_err(anyhow::Error::from).and_then(|id| {
            lifecycle::remove(paths, explain, &id, args.force)
                .with_context(|| format!("cannot remove container {what}"))
        }) {
            Ok(()) => {
                crate::container::volume::remove_anonymous(paths, &volumes);
                println!("{what}")
            }
            Err(err) if failure.is_none() => failure = Some(err),
            Err(err) => eprintln!("minibox: {}", minibox::error::one_line(err.as_ref())),
        }
    }
    failure.map_or(Ok(0), Err)
}

/// Starts container `id` under its supervisor, unless it runs already.
fn start_one(paths: &Paths, explain: bool, id: &str, signals: &Signals) -> Result<()> {
    let config = state::load_config(paths, id)?;
    let found = image::find(paths, &config.image)?;
    let Some((lock, st)) = lifecycle::restart(paths, explain, id)? else {
        return Ok(()); // running already
    };
    let container = Container::new(paths, explain, &config, lock, st);
    start::detach(container, &found, &config, signals).map_err(minibox::Error::from)?;
    Ok(())
}

pub fn start(paths: &Paths, explain: bool, args: &StartArgs) -> Result<u8> {
    // `-i` attaches too, as Docker's does.
    let attach = args.attach || args.interactive;
    if attach && args.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let signals = Signals::block().context("blocking signals")?;
    for what in &args.containers {
        let id = state::resolve(paths, what)?;
        // Opened before the start, so that nothing the container writes is missed.
        let reader = attach.then(|| log_from_now(paths, &id)).transpose()?;
        start_one(paths, explain, &id, &signals)?;
        match reader {
            Some(reader) => {
                return attached(paths, explain, &id, what, reader, args.interactive, None)
            }
            None => println!("{what}"),
        }
    }
    Ok(0)
}

pub fn restart(paths: &Paths, explain: bool, args: &StopArgs) -> Result<u8> {
    let signals = Signals::block().context("blocking signals")?;
    for what in &args.containers {
        let id = resolve(paths, explain, what)?;
        stop_one(paths, explain, &id, args)
            .with_context(|| format!("stopping container {what}"))?;
        start_one(paths, explain, &id, &signals)?;
        events::record(paths, &id, "restart", &[]);
        println!("{what}");
    }
    Ok(0)
}

/// `system boot`, after a reboot: the runroot is empty, the containers' records under the root
/// are what is left. Each container gets its volatile record back (as created: nothing of it
/// runs), and those whose restart policy says so are started (`always`; `unless-stopped`
/// unless the user had stopped it). Run again, it starts only what does not run.
pub fn boot(paths: &Paths, explain: bool) -> Result<u8> {
    let signals = Signals::block().context("blocking signals")?;
    let mut failed = 0;
    for entry in std::fs::read_dir(paths.containers())
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = entry.file_name().to_string_lossy().into_owned();
        let Ok(config) = state::load_config(paths, &id) else {
            continue;
        };
        if state::load_state(paths, &id).is_err() {
            state::restore(paths, &config)?;
        }
        if !config.restart.at_boot(state::stopped_by_user(paths, &id)) {
            continue;
        }
        let name = config.name.as_deref().unwrap_or(&id);
        match start_one(paths, explain, &id, &signals) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                // One that cannot start does not keep the others down.
                eprintln!(
                    "minibox: starting container {name}: {}",
                    minibox::error::one_line(e.as_ref())
                );
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

/// `healthcheck` (run by a container's supervisor): one probe of its health.
pub fn healthcheck(paths: &Paths, what: &str) -> Result<u8> {
    let id = state::resolve(paths, what)?;
    health::probe(paths, &id)?;
    Ok(0)
}

pub fn wait(paths: &Paths, explain: bool, containers: &[String]) -> Result<u8> {
    for what in containers {
        let id = state::resolve(paths, what)?;
        match lifecycle::wait(paths, explain, &id) {
            Some(code) => println!("{code}"),
            None => bail!("container {what} was removed as it exited: its exit code is gone"),
        }
    }
    Ok(0)
}

/// `system prune`: recovers containers whose owner died, and removes records no container
/// owns any more.
pub fn prune(paths: &Paths, explain: bool) -> Result<u8> {
    let pruned = lifecycle::prune(paths, explain);
    for id in pruned.recovered {
        println!("recovered {id}");
    }
    for id in pruned.removed {
        println!("removed {id}");
    }
    Ok(0)
}

/// The cgroup of a running container, for `pause` and `unpause`.
fn running_cgroup(paths: &Paths, id: &str, what: &str) -> Result<Cgroup> {
    let st = state::load_state(paths, id)?;
    match (lifecycle::running(&st), st.cgroup.as_deref()) {
        (true, Some(path)) => Ok(Cgroup::open(path)),
        _ => bail!("container {what} is not running"),
    }
}

/// `pause`: freezes every process of the containers (the cgroup freezer). `stop`, `kill` and
/// `rm -f` still work on a paused container: they thaw it first.
pub fn pause(paths: &Paths, explain: bool, containers: &[String]) -> Result<u8> {
    for what in containers {
        let id = resolve(paths, explain, what)?;
        let cgroup = running_cgroup(paths, &id, what)?;
        if cgroup.frozen() {
            bail!("container {what} is already paused");
        }
        cgroup.freeze()?;
        println!("{what}");
    }
    Ok(0)
}

pub fn unpause(paths: &Paths, explain: bool, containers: &[String]) -> Result<u8> {
    for what in containers {
        let id = resolve(paths, explain, what)?;
        let cgroup = running_cgroup(paths, &id, what)?;
        if !cgroup.frozen() {
            bail!("container {what} is not paused");
        }
        cgroup.thaw()?;
        println!("{what}");
    }
    Ok(0)
}

/// `rename OLD NEW`: the new name is taken first, so two renames cannot both win it.
pub fn rename(paths: &Paths, explain: bool, old: &str, new: &str) -> Result<u8> {
    state::check_name(new)?;
    let id = resolve(paths, explain, old)?;
    let mut config = state::load_config(paths, &id)?;
    if config.name.as_deref() == Some(new) {
        bail!("renaming container {old}: it is named {new} already");
    }
    state::claim_name(paths, new, &id)?;
    let previous = config.name.replace(new.to_string());
    if let Err(e) = state::write_config(paths, &config) {
        state::release_name(paths, new, &id);
        return Err(e.into());
    }
    if let Some(previous) = previous {
        state::release_name(paths, &previous, &id);
    }
    Ok(0)
}

/// Docker's confirmation for the prune commands (skipped with `-f`): a line from standard
/// input that starts with y.
pub(super) fn confirmed(warning: &str, force: bool) -> bool {
    if force {
        return true;
    }
    eprint!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    if !std::io::stdin().is_terminal() {
        // No echo of the answer ends the line: what follows starts one of its own.
        eprintln!();
    }
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    answer.trim_start().starts_with(['y', 'Y'])
}

/// `container prune`: removes every container that is not running (one in use, being set up
/// or running, holds its lock and is left alone).
pub fn container_prune(paths: &Paths, explain: bool, force: bool) -> Result<u8> {
    if !confirmed("This will remove all stopped containers.", force) {
        return Ok(0);
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for id in state::ids(paths) {
        let stopped = state::load_state(paths, &id).is_ok_and(|s| s.status != Status::Running);
        if !stopped {
            continue;
        }
        let size = super::system::disk_usage(&state::dir(paths, &id).join("fs/upper"));
        match lifecycle::remove(paths, explain, &id, false) {
            Ok(()) => {
                deleted.push(id);
                reclaimed += size;
            }
            Err(lifecycle::Error::Running) => {}
            Err(e) => eprintln!("minibox: removing container {id:.12}: {e}"),
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        super::units::decimal(reclaimed)
    );
    Ok(0)
}
