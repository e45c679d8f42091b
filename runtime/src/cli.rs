//! The command line, with Docker's names and conventions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "minibox",
    version,
    about = "A small container runtime: a process in its own namespaces, network stack and cgroup",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Persistent data: images and container directories.
    #[arg(
        long,
        global = true,
        env = "MINIBOX_ROOT",
        default_value = "/var/lib/minibox"
    )]
    pub root: PathBuf,
    /// Volatile state: container state, IP allocations, locks.
    #[arg(
        long,
        global = true,
        env = "MINIBOX_RUNROOT",
        default_value = "/run/minibox"
    )]
    pub runroot: PathBuf,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "MINIBOX_LOG", default_value = "warn")]
    pub log_level: String,
    /// Print each network plumbing step as the equivalent `ip`/`iptables`/`sysctl` command.
    #[arg(long, global = true)]
    pub explain: bool,
    /// A registry (HOST[:PORT]) that may be reached over plain HTTP (loopback ones always may).
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "MINIBOX_INSECURE_REGISTRY",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Where registry certificates are (DIR/HOST[:PORT]/ca.crt); default /etc/docker/certs.d and
    /// /etc/containers/certs.d.
    #[arg(
        long = "certs-dir",
        global = true,
        env = "MINIBOX_CERTS_DIR",
        value_delimiter = ':'
    )]
    pub certs_dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create an image from a rootfs tarball (FILE or - for stdin).
    Import(ImportArgs),
    /// Load images from a `docker save` or OCI archive.
    Load(LoadArgs),
    /// Save images to a docker-archive tarball.
    Save(SaveArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to its registry.
    Push(PushArgs),
    /// Give an image another name: SOURCE[:TAG] TARGET[:TAG].
    Tag { source: String, target: String },
    /// Log in to a registry (default Docker Hub); credentials go to Docker's config.json.
    Login(LoginArgs),
    /// Log out from a registry (default Docker Hub).
    Logout { registry: Option<String> },
    /// Run a command in a new container.
    Run(Box<RunArgs>),
    /// Create a container without starting it (then `start` it); takes `run`'s options.
    Create(Box<RunArgs>),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// List a container's published ports, or where one port is published.
    Port(PortArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show containers, images or networks as JSON (or by --format).
    Inspect(InspectArgs),
    /// Show a container's output.
    Logs(LogsArgs),
    /// Stop containers: SIGTERM, then SIGKILL after the grace period.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Start created or stopped containers.
    Start(StartArgs),
    /// Show what happens to containers, from the event journal, and follow it.
    Events(EventsArgs),
    /// Probe a container's health once (its supervisor runs this every interval).
    #[command(hide = true)]
    Healthcheck { container: String },
    /// Stop then start containers.
    Restart(StopArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List what a container changed in its filesystem: A added, C changed, D deleted.
    Diff { container: String },
    /// Write a container's filesystem as a tar archive.
    Export {
        /// The file to write (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Make an image from a container's changes: a new layer on top of its image's.
    Commit(CommitArgs),
    /// Copy files between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST.
    Cp { source: String, destination: String },
    /// Change containers' memory, cpu and pids limits (running ones at once).
    Update(UpdateArgs),
    /// Manage minibox itself.
    #[command(subcommand)]
    System(SystemCommand),
    /// Explain why a published port (or outbound traffic) does not work, each finding with the
    /// command that fixes it.
    Doctor(DoctorArgs),
    /// Show the processes of a running container (the host's `ps`, default -ef).
    Top {
        container: String,
        /// Options for ps.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Show running containers' cpu, memory, network, block I/O and processes.
    Stats(StatsArgs),
    /// Freeze every process of containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Give a container another name.
    Rename { container: String, name: String },
    /// Show an image's history.
    History(HistoryArgs),
    /// Show minibox's version.
    Version {
        /// A Go template ({{.Client.Version}}).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show what minibox runs on and holds.
    Info {
        /// A Go template ({{.ContainersRunning}}).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Show a running container's output until it exits, and end with its exit code.
    Attach {
        /// Do not pass our input to the container (ctrl-p ctrl-q detaches otherwise).
        #[arg(long)]
        no_stdin: bool,
        container: String,
    },
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemCommand {
    /// Undo what containers whose supervisor died still hold.
    Prune {
        /// Do not ask for confirmation (accepted for Docker's users: prune asks nothing).
        #[arg(short, long)]
        force: bool,
    },
    /// Remove everything minibox made on this host: containers, networks (bridges, firewall
    /// chains and rules), and put back the host settings it changed; asks first.
    Reset(ResetArgs),
    /// After a reboot: start the containers that should run (--restart always, and
    /// unless-stopped unless the user stopped them). Run by contrib/minibox-restart.service.
    Boot,
    /// Show the space images and containers take.
    Df {
        /// A Go template per row ('table ...' for a table).
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Remove every stopped container.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Show the container's output until it exits, and end with its exit code.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach, and pass our input to the container (run with -i).
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one reading and exit (default: redraw every second).
    #[arg(long)]
    pub no_stream: bool,
    /// 'table TEMPLATE', a Go template per container, or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// The containers (default: every running one).
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only the ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// 'table TEMPLATE', a Go template per entry, or json.
    #[arg(long)]
    pub format: Option<String>,
    pub image: String,
}

#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Every image no container uses, not only those without a name.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// What can be inspected by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectType {
    Container,
    Image,
    Network,
    Volume,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template for each object (e.g. '{{.State.Pid}}', '{{json .Config}}').
    #[arg(short, long)]
    pub format: Option<String>,
    /// Look only for this kind of object (default: a container, else an image, a network, a
    /// volume).
    #[arg(long = "type", value_enum)]
    pub kind: Option<ObjectType>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Also remove the store: images, and every record under --root and --runroot.
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events from this time on: RFC 3339, Unix seconds, or a duration before now (10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only events until this time (and then stop following): same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// KEY=VALUE: container (id or name), event (an action), image, type, label, name.
    #[arg(short, long = "filter")]
    pub filters: Vec<String>,
    /// `json`, or a Go template such as `{{.Action}} {{.Actor.Attributes.name}}`.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show every container (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Only the ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only containers that match KEY=VALUE: name, id, label, status, ancestor, network,
    /// publish, exited (the same key twice: either value).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// 'table TEMPLATE', a Go template per container, or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Only the N most recently created containers, in any state.
    #[arg(short = 'n', long)]
    pub last: Option<usize>,
    /// Only the most recently created container, in any state.
    #[arg(short, long)]
    pub latest: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep following the output until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (or "all").
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only output from this time on: 2026-11-26T10:00:00Z, a Unix time, or a duration ago
    /// (10m, 1h30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only output before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (default: the container's --stop-timeout, else 10).
    #[arg(short = 't', long = "time")]
    pub time: Option<u64>,
    /// The signal to stop with (default: the container's stop signal, else TERM).
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal (name or number).
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove running containers too.
    #[arg(short, long)]
    pub force: bool,
    /// Remove the container's anonymous volumes too.
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// How the container's process runs: what `run` and `exec` share.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Keep standard input open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable (K=V, or K to take it from minibox's environment).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// UID[:GID] or NAME[:GROUP].
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Leave the command running in the background (its output is discarded).
    #[arg(short = 'd', long)]
    pub detach: bool,
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        name: String,
        /// The subnet in CIDR form, e.g. 10.88.0.0/16; with --ipv6, once more for the IPv6
        /// one, e.g. fd00:88::/64.
        #[arg(long, required = true)]
        subnet: Vec<String>,
        /// The gateway (the bridge's address; default: the subnet's first address); one per
        /// subnet.
        #[arg(long)]
        gateway: Vec<String>,
        /// Dual stack: IPv6 beside IPv4 (an address per container, NAT66, ports on [::]).
        #[arg(long)]
        ipv6: bool,
    },
    /// List networks.
    Ls,
    /// Show networks as JSON (or by --format).
    Inspect {
        /// A Go template for each network.
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (refused while containers use them).
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a running container to one more network.
    Connect {
        network: String,
        container: String,
        /// Another name for the container on this network's DNS.
        #[arg(long)]
        alias: Vec<String>,
        /// Its IPv4 address there.
        #[arg(long)]
        ip: Option<String>,
        /// Its IPv6 address there (a dual-stack network's).
        #[arg(long)]
        ip6: Option<String>,
    },
    /// Disconnect a running container from a network it was connected to.
    Disconnect { network: String, container: String },
    /// Remove every user-defined network no container uses.
    Prune {
        /// Accepted for Docker's command line: minibox never asks.
        #[arg(short, long)]
        force: bool,
    },
    /// Draw the host, bridges, veth pairs, namespaces, addresses and published ports.
    Topology {
        /// text, dot (Graphviz: `| dot -Tsvg`), or svg (drawn by minibox).
        #[arg(long, default_value = "text", value_parser = ["text", "dot", "svg"])]
        format: String,
    },
    /// Rebuild minibox's firewall rules, bridges, veth attachments and sysctls from the records
    /// (after a firewall restart, `iptables -F`, `nft flush ruleset`, a deleted bridge).
    Reload {
        /// Only these networks' bridges (the firewall is rebuilt whole); default: all in use.
        networks: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The container (id, id prefix or name); without one, every network's host side.
    pub container: Option<String>,
    /// A published port (host or container side); without one, all of the container's.
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container (id, id prefix or name).
    pub container: String,
    /// PORT[/PROTO]: show only where this container port is published.
    pub port: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tarball (plain, gzip or zstd), or - to read standard input.
    pub file: String,
    /// The name to give the image: NAME[:TAG].
    pub reference: Option<String>,
    /// A Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, USER or VOLUME.
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive, or - to read standard input.
    #[arg(short = 'i', long = "input", default_value = "-")]
    pub input: String,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Where to write the archive (- for standard output).
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: String,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove even when a container uses the image.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show the registry digest each name was pulled or pushed as.
    #[arg(long)]
    pub digests: bool,
    /// Only the image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// 'table TEMPLATE', a Go template per image, or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this REPOSITORY[:TAG].
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// OS/ARCH[/VARIANT] to pull from a multi-platform image (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST], e.g. busybox, localhost:5000/app:1.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Print only the result.
    #[arg(short, long)]
    pub quiet: bool,
    /// REGISTRY/NAME[:TAG] (name the image so with `tag` first).
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry, HOST[:PORT] (default: Docker Hub).
    pub registry: Option<String>,
}

/// `run`'s mounts and root filesystem.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// A bind or volume: HOST-PATH:CONTAINER[:ro], NAME:CONTAINER[:ro], or CONTAINER (anonymous).
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy][,tmpfs-size=…].
    #[arg(long = "mount")]
    pub mounts: Vec<String>,
    /// A tmpfs: CONTAINER[:OPTIONS] (e.g. /run:size=64m).
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
}

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given).
    Create { name: Option<String> },
    /// List volumes.
    Ls {
        /// Only the names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volumes as JSON.
    Inspect {
        /// A Go template for each volume (e.g. '{{.Mountpoint}}').
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (refused while a container uses them).
    Rm {
        /// A missing volume is no error.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove the anonymous volumes no container uses (all unused ones with -a).
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask (minibox never asks).
        #[arg(short, long)]
        force: bool,
    },
}

/// `run`'s further limits, devices, sysctls and shared namespaces.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// An rlimit: NAME=SOFT[:HARD], e.g. nofile=1024:2048 (-1: unlimited).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Memory plus swap (e.g. 128m; -1: unlimited swap). Default: twice --memory.
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// CPU weight relative to other containers (default 1024).
    #[arg(long, short = 'c')]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (e.g. 0-1, 0,2).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Size of /dev/shm (default 64m).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// A host device: HOST[:CONTAINER[:PERMISSIONS]] (permissions from rwm).
    #[arg(long = "device")]
    pub devices: Vec<String>,
    /// A namespaced kernel parameter: KEY=VALUE (IPC ones, net.*, kernel.domainname).
    #[arg(long = "sysctl")]
    pub sysctls: Vec<String>,
    /// A supplementary group (name or GID) for the process.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// PID namespace: host or container:NAME (default: its own).
    #[arg(long, default_value = "")]
    pub pid: String,
    /// IPC namespace: host or container:NAME (default: its own).
    #[arg(long, default_value = "")]
    pub ipc: String,
    /// UTS namespace (hostname): host (default: its own).
    #[arg(long, default_value = "")]
    pub uts: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// A commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// The author.
    #[arg(short, long)]
    pub author: Option<String>,
    /// A Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, USER or VOLUME.
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    pub container: String,
    /// NAME[:TAG] for the new image.
    pub reference: Option<String>,
}

/// `update`: new limits for containers, running or not.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap (-1: unlimited swap).
    #[arg(long, allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU weight relative to other containers.
    #[arg(long, short = 'c')]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on.
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// When `run` pulls its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// When the store does not have it.
    Missing,
    /// Every time (it downloads only what changed).
    Always,
    /// Never: fail when the store does not have it.
    Never,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Show images as JSON (or by --format).
    Inspect {
        /// A Go template for each image.
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images.
    Ls(ImagesArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Remove images without a name that no container uses (-a: every unused image).
    Prune(ImagePruneArgs),
    /// Show an image's history.
    History(HistoryArgs),
}

/// How the container finds others by name (see README, "Names").
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Another name for the container on its network's DNS.
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Docker's legacy link: ALIAS (default: NAME) names the running container NAME in this
    /// container's /etc/hosts.
    #[arg(long = "link", value_name = "NAME[:ALIAS]")]
    pub link: Vec<String>,
    /// Add NAME:IP (or NAME:host-gateway, the host) to the container's /etc/hosts.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// A DNS server for names outside the container's networks (default: the host's).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// A search domain for the container's resolv.conf (default: the host's).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option for the container (default: the host's).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// The container's IPv4 address on its (user-defined) network.
    #[arg(long = "ip", value_name = "IPV4")]
    pub ip: Option<String>,
    /// The container's IPv6 address on its (user-defined, dual-stack) network.
    #[arg(long = "ip6", value_name = "IPV6")]
    pub ip6: Option<String>,
    /// The container's MAC address (default: one derived from its IPv4 address).
    #[arg(long = "mac-address", value_name = "MAC")]
    pub mac_address: Option<String>,
}

/// `-h` is `--hostname` here, as in Docker: help is `--help` only.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The container's name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Override the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The container's hostname (default: the short id).
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The parent cgroup.
    #[arg(long, env = "MINIBOX_CGROUP_PARENT", default_value = "minibox")]
    pub cgroup_parent: String,
    /// Run minibox's own init as PID 1 (forwards signals, reaps zombies).
    #[arg(long)]
    pub init: bool,
    /// none, host, or a network's name; again for more networks (eth1, eth2, ...).
    #[arg(long, default_value = "minibox")]
    pub network: Vec<String>,
    /// Publish a port: [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a random host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    #[command(flatten)]
    pub names: NamesArgs,
    /// Add a capability (e.g. NET_ADMIN, or ALL).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability (e.g. CHOWN, or ALL).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Keep every capability and skip the masked paths (and seccomp).
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined|builtin|PROFILE.json (Docker's format), no-new-privileges.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Pull the image: missing (when not in the store), always, never.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// OS/ARCH[/VARIANT] of the image to pull (default: this machine's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Bound the log as Docker's json-file driver: max-size=SIZE (rotate at), max-file=N
    /// (files kept). Default: max-size=20m, max-file=5.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Set a label KEY=VALUE (or KEY, empty).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Read labels from a file: KEY=VALUE lines (# comments).
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_files: Vec<PathBuf>,
    /// Read environment variables from a file: K=V lines, or K to take it from minibox's
    /// environment (# comments).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Write the container's id to this file (refused if it exists).
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Attach only these streams: STDIN, STDOUT, STDERR (default: all).
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Send the signals minibox receives to the container (the default; false: the container
    /// runs under a supervisor of its own, and a signal ends only this attached minibox).
    #[arg(long = "sig-proxy", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Do not show the pull's progress.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The image.
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// How a container runs as a service: restarts, stop, health (`run` and `create`).
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// no, always, unless-stopped, on-failure[:MAX-RETRIES].
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// The signal `stop` sends (default: the image's STOPSIGNAL, else TERM).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10).
    #[arg(long)]
    pub stop_timeout: Option<u64>,
    /// Command run in the container to check its health (shell form).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s, 1m).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Consecutive failures that make it unhealthy.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// How long one check may run.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Start-up time during which failures do not count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable the image's HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command, NetworkCommand};

    /// Each subcommand's arguments are only built when it is used (`defer`): building them all
    /// still yields a consistent command line.
    #[test]
    fn every_subcommand_builds() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deferred_subcommands_parse_their_options_and_the_global_ones() {
        let cli = Cli::try_parse_from([
            "minibox",
            "--root",
            "/r",
            "run",
            "--runroot",
            "/x",
            "--rm",
            "-p",
            "8080:80",
            "busybox",
            "true",
        ])
        .unwrap();
        assert_eq!(cli.global.root.to_str(), Some("/r"));
        assert_eq!(cli.global.runroot.to_str(), Some("/x"));
        let Command::Run(run) = cli.command else {
            panic!("not run: {:?}", cli.command)
        };
        assert!(run.rm);
        assert_eq!(run.publish, ["8080:80"]);
        assert_eq!(run.image, "busybox");
        let cli = Cli::try_parse_from([
            "minibox",
            "network",
            "create",
            "--subnet",
            "10.9.0.0/24",
            "n1",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Create { name, subnet, .. }) = cli.command else {
            panic!("not network create: {:?}", cli.command)
        };
        assert_eq!(
            (name.as_str(), subnet),
            ("n1", vec!["10.9.0.0/24".to_string()])
        );
    }

    #[test]
    fn a_deferred_subcommand_shows_its_options_in_its_help() {
        let err = Cli::try_parse_from(["minibox", "run", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(err.to_string().contains("--publish"), "{err}");
        let err = Cli::try_parse_from(["minibox", "run", "--publsh", "80", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}
