//! Commands on existing containers: `ps`, `inspect`, `logs`, `stop`, `kill`, `rm`, `start`,
//! `restart`, `wait`, `system prune`, `system boot`, `healthcheck`. Each finds containers by name, full id or unique id
//! prefix, reads their state files (cheap: `ps` reads two small files per container), and
//! changes a container only under its lock.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::resolve;
use crate::cli::{KillArgs, LogsArgs, PsArgs, RmArgs, StopArgs};
use crate::container::lifecycle::{self, Container};
use crate::container::log::LogReader;
use crate::container::process::Signals;
use crate::container::state::{self, Config, State, Status};
use crate::container::{clock, events, health, image, signal, start};
use crate::paths::Paths;

fn load(paths: &Paths, id: &str) -> Result<(Config, State)> {
    Ok((
        state::load_config(paths, id)?,
        state::load_state(paths, id)?,
    ))
}

/// Docker's `ps`.
pub fn ps(paths: &Paths, args: &PsArgs) -> Result<u8> {
    let mut rows: Vec<(state::Summary, State)> = state::ids(paths)
        .iter()
        .filter_map(|id| {
            Some((
                state::load_summary(paths, id).ok()?,
                state::load_state(paths, id).ok()?,
            ))
        })
        .filter(|(_, st)| args.all || st.status == Status::Running)
        .collect();
    rows.sort_by(|a, b| b.0.created.cmp(&a.0.created).then(a.0.id.cmp(&b.0.id)));
    let short = |id: &str| {
        if args.no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for (c, _) in &rows {
            writeln!(out, "{}", short(&c.id))?;
        }
        return Ok(0);
    }
    let now = clock::now_secs();
    let mut table = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)];
    for (c, st) in &rows {
        let mut command = c.args.join(" ");
        if !args.no_trunc && command.chars().count() > 20 {
            command = command.chars().take(19).collect::<String>() + "…";
        }
        let status = match st.status {
            Status::Running => format!(
                "Up {}{}",
                clock::human(now.saturating_sub(st.started_at.unwrap_or(0) / 1_000_000_000)),
                match health::load(paths, &c.id).map(|h| h.status) {
                    Some(s) if s == "starting" => " (health: starting)".to_string(),
                    Some(s) => format!(" ({s})"),
                    None => String::new(),
                }
            ),
            Status::Exited if st.restarting => format!(
                "Restarting ({}) {} ago",
                st.exit_code.unwrap_or(0),
                clock::human(now.saturating_sub(st.finished_at.unwrap_or(0) / 1_000_000_000))
            ),
            Status::Exited => format!(
                "Exited ({}) {} ago",
                st.exit_code.unwrap_or(0),
                clock::human(now.saturating_sub(st.finished_at.unwrap_or(0) / 1_000_000_000))
            ),
            Status::Created => "Created".into(),
        };
        let ports = match (&st.attachment, st.status) {
            (Some(a), Status::Running) => a.ports_column(),
            _ => String::new(),
        };
        table.push([
            short(&c.id),
            c.image_name.clone(),
            format!("\"{command}\""),
            format!("{} ago", clock::human(now.saturating_sub(c.created))),
            status,
            ports,
            c.name.clone().unwrap_or_default(),
        ]);
    }
    write!(out, "{}", super::table::render(&table))?;
    Ok(0)
}

fn time_or_zero(ns: Option<u64>) -> String {
    ns.map_or("0001-01-01T00:00:00Z".into(), clock::rfc3339)
}

/// Docker's `inspect` document for one container.
fn document(paths: &Paths, c: &Config, st: &State) -> Value {
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
    let mut networks = serde_json::Map::new();
    if let Some(b) = bridge {
        networks.insert(
            b.network.clone(),
            json!({"IPAddress": ip, "Gateway": gateway, "IPPrefixLen": prefix, "MacAddress": mac}),
        );
    }
    let process = c.spec.as_ref().and_then(|s| s.process().as_ref());
    let resources = c
        .spec
        .as_ref()
        .and_then(|s| s.linux().as_ref())
        .and_then(|l| l.resources().as_ref());
    json!({
        "Id": c.id,
        "Created": clock::rfc3339(c.created * 1_000_000_000),
        "Path": c.args.first().cloned().unwrap_or_default(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": if st.restarting && !running { "restarting" } else { st.status.as_str() },
            "Running": running,
            "Paused": false,
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
        "HostConfig": {
            "NetworkMode": c.network,
            "AutoRemove": c.rm,
            "Privileged": c.privileged,
            "SecurityOpt": (!c.security_opt.is_empty()).then_some(&c.security_opt),
            "Memory": resources.and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).unwrap_or(0),
            "PidsLimit": resources.and_then(|r| r.pids().as_ref()).map_or(0, |p| p.limit()),
            "CgroupParent": c.cgroup_parent,
            "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": c.restart.max_retries()},
        },
        "Config": {
            "Hostname": c.hostname,
            "User": c.user,
            "Tty": c.tty(),
            "OpenStdin": c.interactive,
            "Env": process.and_then(|p| p.env().clone()).unwrap_or_default(),
            "Cmd": c.args,
            "Image": c.image_name,
            "WorkingDir": process.map(|p| p.cwd().clone()).unwrap_or_default(),
            "ExposedPorts": c.exposed.iter().map(|e| (e.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
            "StopSignal": c.stop_signal,
            "StopTimeout": c.stop_timeout,
            "Healthcheck": c.healthcheck,
        },
        "NetworkSettings": {
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "MacAddress": mac,
            "Ports": ports,
            "Networks": networks,
        },
    })
}

pub fn inspect(paths: &Paths, explain: bool, containers: &[String]) -> Result<u8> {
    let mut docs = Vec::new();
    for what in containers {
        let id = resolve(paths, explain, what)?;
        let (c, st) = load(paths, &id).with_context(|| format!("container {what}"))?;
        docs.push(document(paths, &c, &st));
    }
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(0)
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
    let path = state::log_path(paths, &id);
    let kept = state::load_config(paths, &id).map_or(1, |c| c.log.max_file);
    let (mut reader, records) = LogReader::open(&path, kept)?;
    let skip = tail.map_or(0, |n| records.len().saturating_sub(n));
    for r in &records[skip..] {
        print_record(r, args.timestamps)?;
    }
    if !args.follow {
        return Ok(0);
    }
    loop {
        let done = state::load_state(paths, &id).map_or(true, |s| s.status == Status::Exited);
        for r in reader.more()? {
            print_record(&r, args.timestamps)?;
        }
        if done {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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
        match id.map_err(anyhow::Error::from).and_then(|id| {
            lifecycle::remove(paths, explain, &id, args.force)
                .with_context(|| format!("cannot remove container {what}"))
        }) {
            Ok(()) => println!("{what}"),
            Err(err) if failure.is_none() => failure = Some(err),
            Err(err) => eprintln!("minibox: {err:#}"),
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

pub fn start(paths: &Paths, explain: bool, containers: &[String]) -> Result<u8> {
    let signals = Signals::block().context("blocking signals")?;
    for what in containers {
        let id = state::resolve(paths, what)?;
        start_one(paths, explain, &id, &signals)?;
        println!("{what}");
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
                eprintln!("minibox: starting container {name}: {e:#}");
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
