//! minibox-runc: minibox as an OCI runtime, with runc's command line, for containerd's shim,
//! Podman's conmon and Kubernetes' CRI. Thin: it parses, calls `minibox::oci` and prints.
//! Errors go to stderr and, with `--log`, to that file (`--log-format json`: the JSON lines the
//! callers read back).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use minibox::oci::{self, OciError, Root};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

#[derive(Parser)]
#[command(
    name = "minibox-runc",
    about = "minibox as an OCI runtime (runc's command line)",
    disable_version_flag = true
)]
struct Cli {
    /// Where containers' state is kept.
    #[arg(long, global = true, default_value = oci::state::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and with --debug, everything) to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[arg(long, global = true)]
    debug: bool,
    /// Refused: minibox-runc manages cgroups itself (cgroupfs).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc's callers (rootless mode is decided by the caller's uid).
    #[arg(long, global = true)]
    rootless: Option<String>,
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's process, or to all of them.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container (a running one with --force).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// List a container's processes.
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print what this runtime supports, as JSON.
    Features,
    /// List containers.
    #[command(alias = "ls")]
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create and start a container, and (unless --detach) wait for it and delete it.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
    },
    /// Write a starting config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// A container's resource usage (with --stats once, else every --interval).
    Events {
        #[arg(long)]
        stats: bool,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        id: String,
    },
}

#[derive(Args)]
struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long)]
    no_pivot: bool,
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Args)]
struct ExecArgs {
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    cwd: Option<PathBuf>,
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct UpdateArgs {
    /// LinuxResources JSON: a file, or - for stdin.
    #[arg(short, long)]
    resources: Option<String>,
    /// Bytes, or with a k, m or g suffix.
    #[arg(short, long)]
    memory: Option<String>,
    #[arg(long)]
    memory_swap: Option<String>,
    #[arg(long)]
    cpu_shares: Option<u64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    id: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = Log::open(&cli);
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&e);
            ExitCode::from(1)
        }
    }
}

/// Where errors go besides stderr.
struct Log {
    file: Option<std::fs::File>,
    json: bool,
}

impl Log {
    fn open(cli: &Cli) -> Self {
        let file = cli.log.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        let level = if cli.debug { "debug" } else { "warn" };
        let filter = tracing_subscriber::EnvFilter::new(level);
        match file.as_ref().and_then(|f| f.try_clone().ok()) {
            Some(f) => tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::sync::Mutex::new(f))
                .with_ansi(false)
                .init(),
            None => tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .without_time()
                .init(),
        }
        Self {
            file,
            json: cli.log_format == LogFormat::Json,
        }
    }

    fn error(&self, msg: &str) {
        eprintln!("minibox: {msg}");
        let Some(mut file) = self.file.as_ref() else {
            return;
        };
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now());
        let line = match self.json {
            true => serde_json::json!({"level": "error", "msg": msg, "time": time.to_string()})
                .to_string(),
            false => format!("time=\"{time}\" level=error msg={msg:?}"),
        };
        let _ = writeln!(file, "{line}");
    }
}

/// Runs the command; an error is one line, `<what failed>: <why>`.
fn dispatch(cli: &Cli) -> Result<u8, String> {
    if cli.version {
        println!(
            "minibox-runc version {}\ncommit: minibox\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            oci::state::OCI_VERSION
        );
        return Ok(0);
    }
    let Some(command) = &cli.command else {
        return Err("no command: see minibox-runc --help".into());
    };
    if cli.systemd_cgroup {
        return Err(
            "--systemd-cgroup: not supported: minibox-runc manages cgroups itself; drop the \
             flag (containerd: SystemdCgroup = false; Podman: --cgroup-manager cgroupfs)"
                .into(),
        );
    }
    let root = Root::new(&cli.root);
    match command {
        Command::Create(a) => {
            oci::create::create(&root, &a.id, &create_options(a)).map_err(ctx("create", &a.id))?;
        }
        Command::Start { id } => oci::start::start(&root, id).map_err(ctx("start", id))?,
        Command::State { id } => {
            let record = root.load(id).map_err(ctx("state", id))?;
            print_json(&root.document(&record));
        }
        Command::Kill { all, id, signal } => {
            let sig = oci::kill::parse_signal(signal).map_err(ctx("kill", id))?;
            oci::kill::kill(&root, id, sig, *all).map_err(ctx("kill", id))?;
        }
        Command::Delete { force, id } => {
            oci::delete::delete(&root, id, *force).map_err(ctx("delete", id))?
        }
        Command::Exec(a) => {
            let opts = oci::exec::Options {
                process: a.process.clone(),
                args: a.command.clone(),
                tty: a.tty,
                cwd: a.cwd.clone(),
                env: a.env.clone(),
                user: a.user.clone(),
                additional_gids: a.additional_gids.clone(),
                no_new_privs: a.no_new_privs,
                detach: a.detach,
                pid_file: a.pid_file.clone(),
                console_socket: a.console_socket.clone(),
                preserve_fds: a.preserve_fds,
            };
            let code = oci::exec::exec(&root, &a.id, &opts).map_err(ctx("exec", &a.id))?;
            return Ok(code as u8);
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = oci::ps::pids(&root, id).map_err(ctx("ps", id))?;
            match format.as_str() {
                "json" => print_json(&pids.iter().map(|p| p.as_raw()).collect::<Vec<_>>()),
                "table" => print!("{}", oci::ps::table(&pids, ps_args).map_err(ctx("ps", id))?),
                f => return Err(format!("ps: unknown --format {f:?}: use table or json")),
            }
        }
        Command::Pause { id } => oci::pause::pause(&root, id).map_err(ctx("pause", id))?,
        Command::Resume { id } => oci::pause::resume(&root, id).map_err(ctx("resume", id))?,
        Command::Update(a) => {
            let resources = update_resources(a).map_err(ctx("update", &a.id))?;
            oci::update::update(&root, &a.id, &resources).map_err(ctx("update", &a.id))?;
        }
        Command::Features => print_json(&oci::features::document()),
        Command::List { format, quiet } => {
            let all = oci::list::list(&root);
            match (format.as_str(), quiet) {
                (_, true) => all
                    .iter()
                    .for_each(|s| println!("{}", s["id"].as_str().unwrap_or(""))),
                ("json", _) => print_json(&all),
                ("table", _) => print!("{}", list_table(&all)),
                (f, _) => return Err(format!("list: unknown --format {f:?}: use table or json")),
            }
        }
        Command::Run { create, detach } => {
            let code = oci::run::run(&root, &create.id, &create_options(create), *detach)
                .map_err(ctx("run", &create.id))?;
            return Ok(code as u8);
        }
        Command::Spec { bundle } => oci::spec::write(bundle).map_err(|e| format!("spec: {e}"))?,
        Command::Events {
            stats,
            interval,
            id,
        } => loop {
            let event = oci::events::stats(&root, id).map_err(ctx("events", id))?;
            println!("{event}");
            if *stats {
                break;
            }
            std::thread::sleep(*interval);
        },
    }
    Ok(0)
}

/// Puts the operation and the container in front of an error: `kill ID: container not running`.
fn ctx<'a>(what: &'a str, id: &'a str) -> impl Fn(OciError) -> String + 'a {
    move |e| format!("{what} {id}: {}", minibox::error::one_line(&e))
}

fn create_options(a: &CreateArgs) -> oci::create::Options {
    oci::create::Options {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

/// `--resources` JSON with the flags on top.
fn update_resources(a: &UpdateArgs) -> Result<LinuxResources, OciError> {
    let mut r = match &a.resources {
        Some(source) => oci::update::read_resources(source)?,
        None => LinuxResources::default(),
    };
    if a.memory.is_some() || a.memory_swap.is_some() {
        let mut m: LinuxMemory = r.memory().unwrap_or_default();
        if let Some(v) = &a.memory {
            m.set_limit(Some(bytes(v)?));
        }
        if let Some(v) = &a.memory_swap {
            m.set_swap(Some(bytes(v)?));
        }
        r.set_memory(Some(m));
    }
    let cpu_flags = a.cpu_shares.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_flags {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if a.cpu_shares.is_some() {
            c.set_shares(a.cpu_shares);
        }
        if a.cpu_quota.is_some() {
            c.set_quota(a.cpu_quota);
        }
        if a.cpu_period.is_some() {
            c.set_period(a.cpu_period);
        }
        if a.cpuset_cpus.is_some() {
            c.set_cpus(a.cpuset_cpus.clone());
        }
        if a.cpuset_mems.is_some() {
            c.set_mems(a.cpuset_mems.clone());
        }
        r.set_cpu(Some(c));
    }
    if let Some(limit) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    Ok(r)
}

/// `64m` and the like; -1 is unlimited.
fn bytes(text: &str) -> Result<i64, OciError> {
    let bad = || OciError::Invalid(format!("{text:?}: give bytes, or a number with k, m or g"));
    let lower = text.to_ascii_lowercase();
    let lower = lower.trim_end_matches('b');
    let (num, unit) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    let n: i64 = num.parse().map_err(|_| bad())?;
    Ok(if n < 0 { n } else { n * unit })
}

fn list_table(all: &[serde_json::Value]) -> String {
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|s| {
            let f = |k: &str| match &s[k] {
                serde_json::Value::String(v) => v.clone(),
                v => v.to_string(),
            };
            [
                f("id"),
                f("pid"),
                f("status"),
                f("bundle"),
                f("created"),
                f("owner"),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serialises")
    );
}
