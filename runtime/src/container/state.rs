//! A container's records: the persistent dir `<root>/containers/<id>/` (the `image` file that
//! keeps rmi away, `config.json`, the rootfs) and the volatile dir `<runroot>/containers/<id>/`
//! (the generated /etc files bind-mounted into the container, `state.json`).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::health::Healthcheck;
use super::log::LogOptions;
use super::restart::Policy;
use super::spec::Spec;
use crate::network::{Attachment, Names};
use crate::paths::Paths;
use minibox_netns::PortMapping;

/// What can go wrong with a container's records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system step on `path` failed: `what` is "reading", "writing", "creating"...
    #[error("{what} {}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("locking the container")]
    Lock(#[source] std::io::Error),
    #[error("waiting for the container")]
    Wait(#[source] std::io::Error),
    #[error("invalid container name {0:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")]
    BadName(String),
    #[error("the container name {name:?} is already in use by container {owner:.12}: remove that container or choose another name")]
    NameInUse { name: String, owner: String },
    #[error("no container given")]
    NoContainer,
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("{what} is ambiguous: it is the start of {count} container ids; give more of the id or the name")]
    Ambiguous { what: String, count: usize },
    #[error("container {0:.12} was recorded by an earlier minibox, without an OCI runtime spec: remove it (minibox rm) and run it again")]
    NoSpec(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error of a file system step `what` ("reading", ...) on `path`.
fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// Reads and parses a JSON record.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let data = fs::read(path).map_err(io("reading", path))?;
    serde_json::from_slice(&data).map_err(|source| Error::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// A record as JSON (these types always serialise).
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("records serialise")
}

/// The version of the records this minibox writes. Version 0 (no `version` field) is what
/// minibox wrote before records were versioned, version 1 kept the command line and hostname
/// beside the Spec: both still load (see the tests below).
pub const SCHEMA: u32 = 2;

/// What `config.json` records: what was asked for, enough to start the container again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub version: u32,
    pub id: String,
    pub name: Option<String>,
    /// The image's id (`sha256:...`) and the reference the user gave.
    pub image: String,
    pub image_name: String,
    /// The command line and hostname as records before version 2 kept them, beside the Spec
    /// that has them. Empty in what `run` records now (the Spec is the one truth); kept for a
    /// container recorded before Specs, which [`Config::command`] and [`Config::hostname`]
    /// fall back on.
    #[serde(default, rename = "args", skip_serializing_if = "Vec::is_empty")]
    pub old_args: Vec<String>,
    #[serde(default, rename = "hostname", skip_serializing_if = "String::is_empty")]
    pub old_hostname: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The container as an OCI runtime Spec, which the executor follows. A container recorded
    /// by an earlier minibox has none (it can be listed, inspected and removed, not started).
    #[serde(default, deserialize_with = "spec_if_readable")]
    pub spec: Option<Spec>,
    /// What `run` was asked beyond the Spec: `-u` (or the image's User) as given,
    /// `--privileged`, `-i`, `--init`.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub init: bool,
    pub cgroup_parent: String,
    /// `--network`, `-p` (as given), `-P` and the image's EXPOSE entries.
    pub network: String,
    pub publish: Vec<String>,
    pub publish_all: bool,
    pub exposed: Vec<String>,
    /// `--rm`: remove everything once it exits.
    pub rm: bool,
    /// `--log-opt`: how its log is bounded.
    #[serde(default)]
    pub log: LogOptions,
    /// `--security-opt` as given, a seccomp profile's path replaced by its content (as Docker).
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// `--network-alias`, `--add-host`, `--dns*`.
    #[serde(default)]
    pub names: Names,
    /// `--restart`: what its supervisor does when it exits, and whether `system boot` starts it.
    #[serde(default)]
    pub restart: Policy,
    /// The signal `stop` sends (`--stop-signal`, else the image's STOPSIGNAL; none: SIGTERM)
    /// and how long it waits before SIGKILL (`--stop-timeout`; none: 10 s).
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// The health check (`--health-*`, else the image's HEALTHCHECK).
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// `--pid/--ipc/--uts container:NAME`: the namespace's type (`pid`) and the other
    /// container's id. Its PID 1's namespace is looked up again at every start.
    #[serde(default)]
    pub joins: Vec<(String, String)>,
    /// `--label-file`, and `--label` over it.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The volumes it mounts (names), which keep `volume rm` away.
    #[serde(default)]
    pub volumes: Vec<String>,
}

impl Config {
    /// Whom its events are about.
    pub fn actor(&self) -> super::events::Actor {
        super::events::Actor {
            image: Some(self.image_name.clone()),
            name: self.name.clone(),
        }
    }

    /// The container's Spec, or why there is none.
    pub fn runtime_spec(&self) -> Result<&Spec> {
        self.spec
            .as_ref()
            .ok_or_else(|| Error::NoSpec(self.id.clone()))
    }

    /// The command line (the Spec's process args).
    pub fn command(&self) -> &[String] {
        let process = self.spec.as_ref().and_then(|s| s.process().as_ref());
        match process.and_then(|p| p.args().as_deref()) {
            Some(args) => args,
            None => &self.old_args,
        }
    }

    /// The container's hostname: the Spec's, else (its UTS namespace is the host's or another
    /// container's) the host's.
    pub fn hostname(&self) -> String {
        match &self.spec {
            None => self.old_hostname.clone(),
            Some(spec) => spec
                .hostname()
                .clone()
                .unwrap_or_else(|| host_hostname(&self.id)),
        }
    }

    /// `--memory` in bytes, from the Spec.
    pub fn memory(&self) -> Option<i64> {
        let linux = self.spec.as_ref()?.linux().as_ref()?;
        linux.resources().as_ref()?.memory().as_ref()?.limit()
    }

    /// Whether the container's process has a terminal.
    pub fn tty(&self) -> bool {
        let process = self.spec.as_ref().and_then(|s| s.process().as_ref());
        process.and_then(|p| p.terminal()) == Some(true)
    }
}

/// The host's name (a container in the host's UTS namespace has it), else the container's
/// short id.
pub fn host_hostname(id: &str) -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| id[..12.min(id.len())].to_string())
}

/// An earlier minibox stored its own description under `spec`: that reads as none. It would
/// parse as an OCI Spec (every field of which is optional) holding nothing: an OCI Spec is told
/// by its `ociVersion`.
fn spec_if_readable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Spec>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    if value.get("ociVersion").is_none() {
        return Ok(None);
    }
    Ok(serde_json::from_value(value).ok())
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being set up (or torn down after a failed setup).
    #[default]
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// Who supervises a container, and so who tells whether it lost its owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    /// minibox itself (a foreground `run` or a supervisor process): it holds the container's
    /// lock while alive, so a free lock on a container not exited means it died.
    #[default]
    Minibox,
    /// Another process (a containerd shim, conmon) drives the container through the OCI
    /// commands: never recovered as an orphan.
    External,
}

/// What `state.json` records: what is happening, and every resource *before* it is made
/// (write-ahead), so whoever finds the owner dead can undo it all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub version: u32,
    pub status: Status,
    pub name: Option<String>,
    /// The container's PID 1 as the host sees it (0 when none).
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat): with the pid, what identifies the process
    /// (a pid reused by another process has another start time).
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// Who supervises the container.
    #[serde(default)]
    pub supervisor: Supervisor,
    pub exit_code: Option<u8>,
    #[serde(default)]
    pub oom_killed: bool,
    /// The cgroup, recorded before it is created.
    pub cgroup: Option<String>,
    /// The network asked for, recorded before attaching (when there is something to attach).
    pub network: Option<String>,
    /// What the network attachment made.
    pub attachment: Option<Attachment>,
    /// The ports published by the last attachment (`start` publishes the same again).
    #[serde(default, deserialize_with = "ports_any_version")]
    pub ports: Vec<PortMapping>,
    /// Nanoseconds since the epoch.
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// How often its restart policy started it again since the user last started it, whether
    /// its supervisor waits to do so now, and how long it waited last (the backoff doubles).
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub restarting: bool,
    #[serde(default)]
    pub backoff_ms: u64,
    /// Made by `create` and never started: nobody owns it, and there is nothing to recover.
    #[serde(default)]
    pub unstarted: bool,
    /// Its input (`-d -i`): the supervisor's pid and its descriptor that writes the container's
    /// stdin (see [`super::input`]).
    #[serde(default)]
    pub input: Option<(i32, i32)>,
}

/// `ports` as written now, or as version 0 wrote them: `-p` values `IP:HOSTPORT:PORT/PROTO`.
fn ports_any_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PortMapping>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Mapping(PortMapping),
        Flag(String),
    }
    let parse = |s: &str| -> Option<PortMapping> {
        let (addr, rest) = s.split_once(':')?;
        let (host, rest) = rest.split_once(':')?;
        let (port, proto) = rest.split_once('/')?;
        Some(PortMapping {
            host_ip: addr.parse().ok()?,
            host_port: host.parse().ok()?,
            container_port: port.parse().ok()?,
            proto: proto.parse().ok()?,
        })
    };
    Vec::<Port>::deserialize(d)?
        .into_iter()
        .map(|p| match p {
            Port::Mapping(m) => Ok(m),
            Port::Flag(s) => parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("bad published port {s:?}"))),
        })
        .collect()
}

/// A container's lock (`flock` on `<state dir>/lock`), held by whoever is in charge of it: the
/// foreground `run`, the supervisor, or a command removing or recovering it. Released when the
/// last descriptor of the open file closes, so a dead owner never holds it: a free lock on a
/// container that should be running means its owner died.
#[derive(Debug)]
pub struct Lock(OwnedFd);

impl std::os::fd::AsFd for Lock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Lock {
    /// Another descriptor of the same lock: it stays held while either is open.
    pub fn try_clone(&self) -> std::io::Result<Lock> {
        Ok(Lock(self.0.try_clone()?))
    }

    /// Opens the lock file; only `create` makes it (a command must never re-create it in a
    /// directory being removed).
    fn open(path: &Path, create: bool) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io("opening", path))
    }

    /// Takes the lock without waiting: `None` when someone holds it.
    fn take(file: File) -> Result<Option<Lock>> {
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Some(Lock(file.into())));
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(None),
                _ => return Err(Error::Lock(err)),
            }
        }
    }

    /// Takes over a lock passed as a descriptor (the supervisor's, across exec).
    ///
    /// # Safety
    /// `fd` must be an open descriptor this process owns.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Lock {
        Lock(OwnedFd::from_raw_fd(fd))
    }
}

/// Takes the lock of container `id` without waiting: `None` when its owner holds it.
pub fn try_lock(paths: &Paths, id: &str) -> Result<Option<Lock>> {
    try_lock_at(&state_dir(paths, id))
}

/// [`try_lock`] for a state directory by path (a half-made one, too).
pub fn try_lock_at(dir: &Path) -> Result<Option<Lock>> {
    Lock::take(Lock::open(&dir.join("lock"), false)?)
}

/// Records a container's exit code in its lock file just before the container is removed:
/// a `wait`er holds that file open, so it reads the code once the owner lets go, even though
/// the directory is gone by then (`--rm`).
pub fn record_exit(paths: &Paths, id: &str, code: u8) {
    let path = state_dir(paths, id).join("lock");
    if let Ok(file) = Lock::open(&path, false) {
        let _ = file.write_all_at(format!("{code}\n").as_bytes(), 0);
    }
}

/// Blocks until nobody is in charge of container `id` (its owner finished, or died), without
/// polling: a shared lock is granted only once the owner's exclusive one is released.
pub fn wait_released(paths: &Paths, id: &str) -> Result<Released> {
    released(&lock_file(paths, id)?, paths, id)
}

/// Container `id`'s lock file, opened to wait on later ([`released`]): once opened, it tells
/// the exit code even of a container removed meanwhile.
pub fn lock_file(paths: &Paths, id: &str) -> Result<File> {
    Lock::open(&state_dir(paths, id).join("lock"), false)
}

/// [`wait_released`] on a lock file opened earlier.
pub fn released(file: &File, paths: &Paths, id: &str) -> Result<Released> {
    // SAFETY: flock on a descriptor we own; the lock goes with the descriptor when it closes.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Wait(err));
        }
    }
    match load_state(paths, id) {
        Ok(st) if st.status == Status::Exited => Ok(Released::Finished(st.exit_code)),
        Ok(_) => Ok(Released::Orphaned),
        Err(_) => {
            let mut recorded = String::new();
            let mut reader: &File = file;
            let _ = reader.read_to_string(&mut recorded);
            Ok(Released::Finished(recorded.trim().parse().ok()))
        }
    }
}

/// What [`wait_released`] found once the owner let go.
pub enum Released {
    /// The container exited (and may have been removed since): its exit code, if recorded.
    Finished(Option<u8>),
    /// Its owner died without finishing it.
    Orphaned,
}

/// A new container id: 64 hex digits from the kernel's random source.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    let random = Path::new("/dev/urandom");
    File::open(random)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io("reading", random))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn dir(paths: &Paths, id: &str) -> PathBuf {
    paths.containers().join(id)
}

pub fn state_dir(paths: &Paths, id: &str) -> PathBuf {
    paths.container_state().join(id)
}

/// Where a container's /etc/hostname, /etc/hosts and /etc/resolv.conf live on the host: a small
/// tmpfs of its own (see `start::etc_files`) in its volatile dir. Not in its persistent dir:
/// overlay walks every mount on the filesystem of its layers each time a root filesystem is
/// mounted, and a thousand running containers would put a thousand there.
pub fn etc_dir(paths: &Paths, id: &str) -> PathBuf {
    state_dir(paths, id).join("etc")
}

/// The container's log (detached containers): one line per line of output,
/// `<RFC 3339 time> <stdout|stderr> <F|P> <text>` (P: a partial line, continued next).
pub fn log_path(paths: &Paths, id: &str) -> PathBuf {
    dir(paths, id).join("container.log")
}

/// The mark of a container the user stopped (`stop`, `kill`): its restart policy leaves it
/// stopped, and `unless-stopped` keeps it so across reboots (so it lives in the persistent
/// dir). `start` removes it.
pub fn stopped_mark(paths: &Paths, id: &str) -> PathBuf {
    dir(paths, id).join("stopped")
}

/// Marks container `id` stopped by the user, or not.
pub fn set_stopped_by_user(paths: &Paths, id: &str, stopped: bool) -> Result<()> {
    let mark = stopped_mark(paths, id);
    if stopped {
        write_atomic(&mark, b"")
    } else {
        match fs::remove_file(&mark) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &mark)(e)),
            _ => Ok(()),
        }
    }
}

pub fn stopped_by_user(paths: &Paths, id: &str) -> bool {
    stopped_mark(paths, id).exists()
}

/// Where `--name` claims live: one file per name, created exclusively, holding the id.
fn name_file(paths: &Paths, name: &str) -> PathBuf {
    paths.root.join("names").join(name)
}

/// Docker's rule for container names. (Network names have their own check in minibox-netns,
/// `valid_name`: that library is used without the runtime, by the CNI plugin too.)
pub fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(Error::BadName(name.to_string()));
    }
    Ok(())
}

/// Takes `name` for container `id`, atomically.
pub fn claim_name(paths: &Paths, name: &str, id: &str) -> Result<()> {
    let file = name_file(paths, name);
    let names = file.parent().expect("has a parent");
    fs::create_dir_all(names).map_err(io("creating", names))?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
    {
        Ok(mut f) => f.write_all(id.as_bytes()).map_err(io("writing", &file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let owner = fs::read_to_string(&file).unwrap_or_default();
            Err(Error::NameInUse {
                name: name.to_string(),
                owner: owner.trim().to_string(),
            })
        }
        Err(e) => Err(io("creating", &file)(e)),
    }
}

/// A name in Docker's style (`adjective_scientist`) for a container run without `--name`;
/// `attempt` > 2 adds a digit, as Docker does when it keeps colliding.
pub fn generate_name(id: &str, attempt: u32) -> String {
    const LEFT: [&str; 32] = [
        "admiring",
        "agitated",
        "amazing",
        "bold",
        "brave",
        "busy",
        "clever",
        "cool",
        "eager",
        "elated",
        "epic",
        "fervent",
        "gifted",
        "happy",
        "hopeful",
        "jolly",
        "keen",
        "kind",
        "lucid",
        "modest",
        "nifty",
        "optimistic",
        "peaceful",
        "quirky",
        "relaxed",
        "serene",
        "sharp",
        "stoic",
        "tender",
        "vibrant",
        "wizardly",
        "zealous",
    ];
    const RIGHT: [&str; 32] = [
        "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "feynman", "gauss",
        "hopper", "hypatia", "kepler", "knuth", "lamport", "liskov", "lovelace", "mccarthy",
        "meitner", "newton", "noether", "pascal", "planck", "ritchie", "shannon", "tesla",
        "thompson", "torvalds", "turing", "volta", "wilson", "wozniak", "yonath",
    ];
    let byte = |i: usize| u8::from_str_radix(&id[i..i + 2], 16).unwrap_or(0) as usize;
    let salt = attempt as usize * 7;
    let mut name = format!(
        "{}_{}",
        LEFT[(byte(0) + salt) % 32],
        RIGHT[(byte(2) + salt * 3) % 32]
    );
    if attempt > 2 {
        name.push_str(&(byte(4 + 2 * (attempt as usize % 20)) % 10).to_string());
    }
    name
}

/// Releases `name` if container `id` holds it.
pub fn release_name(paths: &Paths, name: &str, id: &str) {
    let file = name_file(paths, name);
    if fs::read_to_string(&file).is_ok_and(|owner| owner.trim() == id) {
        let _ = fs::remove_file(file);
    }
}

/// Records a new container: its volatile dir with the lock held and a `created` state naming
/// it (made under a temporary name and renamed, so nobody sees it half-made), then its name.
/// The caller owns the container through the returned lock.
pub fn create(paths: &Paths, id: &str, name: Option<&str>) -> Result<Lock> {
    let parent = paths.container_state();
    fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
    let tmp = parent.join(format!(".new-{id}"));
    fs::create_dir(&tmp).map_err(io("creating", &tmp))?;
    let made = (|| {
        let lock = Lock::take(Lock::open(&tmp.join("lock"), true)?)?.expect("a new file");
        let state = State {
            name: name.map(str::to_string),
            ..Default::default()
        };
        write_atomic(&tmp.join("state.json"), &to_json(&state))?;
        let dest = state_dir(paths, id);
        fs::rename(&tmp, &dest).map_err(io("creating", &dest))?;
        Ok(lock)
    })();
    let lock = match made {
        Ok(l) => l,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if let Some(name) = name {
        if let Err(e) = claim_name(paths, name, id) {
            remove_state(paths, id);
            return Err(e);
        }
    }
    Ok(lock)
}

/// Gives a container whose volatile record is gone (a reboot emptied the runroot) a new one:
/// created, holding nothing, owned by nobody, as `create` leaves one.
pub fn restore(paths: &Paths, config: &Config) -> Result<()> {
    let lock = create(paths, &config.id, None)?;
    let state = State {
        name: config.name.clone(),
        unstarted: true,
        ..Default::default()
    };
    save_state(paths, &config.id, &state)?;
    drop(lock);
    Ok(())
}

/// Writes the persistent dir: the `image` file (which keeps rmi away) and `config.json`.
pub fn write_config(paths: &Paths, config: &Config) -> Result<()> {
    let mut config = Config {
        version: SCHEMA,
        ..config.clone()
    };
    if config.spec.is_some() {
        // A version 1 record rewritten keeps them in its Spec alone.
        config.old_args.clear();
        config.old_hostname.clear();
    }
    let config = &config;
    let dir = dir(paths, &config.id);
    if !dir.is_dir() {
        // A new container: `containers/` is marked before its dir is made there.
        let containers = paths.containers();
        fs::create_dir_all(&containers).map_err(io("creating", &containers))?;
        top_of_hierarchies(&containers);
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    }
    write_atomic(&dir.join("image"), config.image.as_bytes())?;
    write_atomic(&dir.join("config.json"), &to_json(config))
}

/// Marks `dir` the top of directory hierarchies (`chattr +T`) where the filesystem knows it (ext2/3/4):
/// each container's dir below then goes to a block group of its own, its files with it. Without
/// a journal, ext4 passes over every inode freed in the last minute (six while unwritten), one
/// block lookup each, before it reuses one: with all containers' files in one group, each set-up
/// paid for the last minutes' removals (6 ms a set-up, a thousand containers later).
fn top_of_hierarchies(dir: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags, Mode, OFlags};
    let Ok(fd) = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&fd) {
        if !flags.contains(IFlags::TOPDIR) {
            let _ = ioctl_setflags(&fd, flags | IFlags::TOPDIR);
        }
    }
}

pub fn load_config(paths: &Paths, id: &str) -> Result<Config> {
    load_config_as(paths, id)
}

/// What listing a container shows of its config: read without the Spec, the bulk of it (`ps`
/// reads a hundred of these).
#[derive(Debug, Deserialize)]
pub struct Summary {
    pub id: String,
    pub name: Option<String>,
    pub image: String,
    pub image_name: String,
    /// Of the Spec, only the command line is read.
    #[serde(default)]
    spec: Option<SpecCommand>,
    #[serde(default)]
    args: Vec<String>,
    pub created: u64,
    pub network: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct SpecCommand {
    #[serde(default)]
    process: Option<ProcessCommand>,
}

#[derive(Debug, Default, Deserialize)]
struct ProcessCommand {
    #[serde(default)]
    args: Vec<String>,
}

impl Summary {
    /// The command line, as [`Config::command`] has it.
    pub fn command(&self) -> &[String] {
        match self.spec.as_ref().and_then(|s| s.process.as_ref()) {
            Some(p) => &p.args,
            None => &self.args,
        }
    }
}

pub fn load_summary(paths: &Paths, id: &str) -> Result<Summary> {
    load_config_as(paths, id)
}

/// What a container's end needs of its config, read without the Spec (the bulk of it, and
/// the end has read it already): whether it goes with its end (`--rm`), its name (which
/// `rename` changes under a running container), its image (for its events) and the volumes
/// it mounts.
#[derive(Debug, Default, Deserialize)]
pub struct Ending {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image_name: Option<String>,
    #[serde(default)]
    pub rm: bool,
    #[serde(default)]
    pub volumes: Vec<String>,
}

pub fn load_ending(paths: &Paths, id: &str) -> Result<Ending> {
    load_config_as(paths, id)
}

impl Ending {
    /// Whom its events are about.
    pub fn actor(&self) -> super::events::Actor {
        super::events::Actor {
            image: self.image_name.clone(),
            name: self.name.clone(),
        }
    }
}

fn load_config_as<T: serde::de::DeserializeOwned>(paths: &Paths, id: &str) -> Result<T> {
    read_json(&dir(paths, id).join("config.json"))
}

pub fn load_state(paths: &Paths, id: &str) -> Result<State> {
    read_json(&state_dir(paths, id).join("state.json"))
}

/// Replaces `state.json` atomically (only the lock's holder writes it).
pub fn save_state(paths: &Paths, id: &str, state: &State) -> Result<()> {
    let state = State {
        version: SCHEMA,
        ..state.clone()
    };
    write_atomic(&state_dir(paths, id).join("state.json"), &to_json(&state))
}

/// Every container's id (the volatile dirs; half-made ones start with a dot).
pub fn ids(paths: &Paths) -> Vec<String> {
    fs::read_dir(paths.container_state())
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds a container by name, full id or unique id prefix.
pub fn resolve(paths: &Paths, what: &str) -> Result<String> {
    let what = what.strip_prefix('/').unwrap_or(what);
    if what.is_empty() {
        return Err(Error::NoContainer);
    }
    if check_name(what).is_ok() {
        if let Ok(id) = fs::read_to_string(name_file(paths, what)) {
            let id = id.trim().to_string();
            if state_dir(paths, &id).is_dir() {
                return Ok(id);
            }
        }
    }
    let all = ids(paths);
    let found: Vec<&String> = all.iter().filter(|id| id.starts_with(what)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NoSuchContainer(what.to_string())),
        several => Err(Error::Ambiguous {
            what: what.to_string(),
            count: several.len(),
        }),
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into its state dir,
/// as they are before its network is wired. With the host's network the host's own hosts and
/// resolv.conf are used.
pub fn write_etc(
    state_dir: &Path,
    hostname: &str,
    host_network: bool,
    names: &Names,
) -> Result<()> {
    write(
        &state_dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
    )?;
    // The host as a container on the host's network reaches it.
    let extra = names.hosts_lines(Ipv4Addr::LOCALHOST);
    if host_network {
        let host = fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts(hostname, None));
        write(&state_dir.join("hosts"), (host + &extra).as_bytes())?;
    } else {
        write(&state_dir.join("hosts"), hosts(hostname, None).as_bytes())?;
    }
    write_resolv_conf(state_dir, names, None, host_network)
}

/// Writes the container's resolv.conf in place (see [`Names::resolv_conf`]).
pub fn write_resolv_conf(
    state_dir: &Path,
    names: &Names,
    server: Option<Ipv4Addr>,
    host_network: bool,
) -> Result<()> {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = names.resolv_conf(&host, server, host_network);
    write(&state_dir.join("resolv.conf"), resolv.as_bytes())
}

/// Writes /etc/hosts in place (the container may have it bind-mounted already): the
/// container's own line (`hostname`: the names it carries) and `extra` lines.
pub fn write_hosts(state_dir: &Path, hostname: &str, address: Ipv4Addr, extra: &str) -> Result<()> {
    let all = hosts(hostname, Some(address)) + extra;
    write(&state_dir.join("hosts"), all.as_bytes())
}

/// The names on the container's own /etc/hosts line: its hostname, its name and its short id.
pub fn host_names(hostname: &str, name: Option<&str>, id: &str) -> String {
    let mut names = vec![hostname];
    for n in name.into_iter().chain([&id[..12]]) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.join(" ")
}

/// Docker's /etc/hosts, with the container's own address line (`hostname`: the names it
/// carries) when it has one.
pub fn hosts(hostname: &str, address: Option<Ipv4Addr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if let Some(addr) = address {
        s.push_str(&format!("{addr}\t{hostname}\n"));
    }
    s
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).map_err(io("writing", path))
}

/// Writes `path` through a temporary file and a rename: readers see the old or the new file.
/// Readable by root only (configs hold `-e` secrets).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(data))
        .map_err(io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("writing", path))
}

/// Removes the volatile state dir, its /etc files' tmpfs unmounted first (where a start
/// mounted it: a crash right after the mount leaves it to this).
pub fn remove_state(paths: &Paths, id: &str) {
    let dir = state_dir(paths, id);
    let etc = dir.join("etc");
    let detach = nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW;
    match nix::mount::umount2(&etc, detach) {
        // Not a mount point, or no such directory: never mounted, or unmounted already.
        Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
        Err(e) => tracing::warn!("unmounting {}: {e}", etc.display()),
    }
    if let Err(e) = fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

/// Removes the persistent dir (its rootfs must be unmounted and removed first).
pub fn remove_dir(paths: &Paths, id: &str) {
    let dir = dir(paths, id);
    if let Err(e) = fs::remove_dir_all(&dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_address_line() {
        assert!(hosts("h", Some(Ipv4Addr::new(10, 88, 0, 2))).ends_with("10.88.0.2\th\n"));
        assert!(!hosts("h", None).contains("\th\n"));
        let id = "0123456789abcdef";
        assert_eq!(host_names("0123456789ab", None, id), "0123456789ab");
        assert_eq!(host_names("h", Some("web"), id), "h web 0123456789ab");
    }

    /// Records written by the minibox before versions (captured from its `run -d -p`, then
    /// `stop`): they load, and mean what they meant.
    #[test]
    fn version_0_records_load() {
        let config: Config = serde_json::from_str(include_str!("testdata/v0-config.json")).unwrap();
        assert_eq!(config.version, 0);
        assert_eq!(config.command(), ["sleep", "1000"]);
        assert_eq!(config.hostname(), "062aa6b14646");
        let summary: Summary =
            serde_json::from_str(include_str!("testdata/v0-config.json")).unwrap();
        assert_eq!(summary.command(), ["sleep", "1000"]);
        // Its own description of the process is not a Spec: it can be listed and removed.
        assert!(config.spec.is_none());
        assert_eq!(config.publish, ["18080:80"]);
        assert_eq!(config.log, LogOptions::default());
        for (file, status) in [
            (
                include_str!("testdata/v0-state-running.json"),
                Status::Running,
            ),
            (
                include_str!("testdata/v0-state-exited.json"),
                Status::Exited,
            ),
        ] {
            let st: State = serde_json::from_str(file).unwrap();
            assert_eq!((st.version, st.status), (0, status));
            assert_eq!(st.supervisor, Supervisor::Minibox);
            assert_eq!(st.pid_start, None);
            let p = st.ports[0];
            assert_eq!(
                (p.host_ip.to_string(), p.host_port, p.container_port),
                ("0.0.0.0".into(), 18080, 80)
            );
        }
        let exited: State =
            serde_json::from_str(include_str!("testdata/v0-state-exited.json")).unwrap();
        assert_eq!(exited.exit_code, Some(137));
        // And what is written now reads back.
        let again: State = serde_json::from_value(serde_json::to_value(&exited).unwrap()).unwrap();
        assert_eq!(again.ports, exited.ports);
    }

    /// Since version 2 the command line and hostname are the Spec's alone.
    #[test]
    fn the_command_line_and_hostname_are_the_specs() {
        let old: Config = serde_json::from_str(include_str!("testdata/v0-config.json")).unwrap();
        // Rewritten (a rename), a record made before Specs keeps its command line.
        let again: Config = serde_json::from_value(serde_json::to_value(&old).unwrap()).unwrap();
        assert_eq!(again.command(), ["sleep", "1000"]);
        let mut config = Config {
            old_args: Vec::new(),
            old_hostname: String::new(),
            ..old
        };
        config.spec = Some(
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "hostname": "box",
                "process": {"args": ["web", "-v"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            }))
            .unwrap(),
        );
        let written = serde_json::to_value(&config).unwrap();
        assert!(written.get("args").is_none() && written.get("hostname").is_none());
        let again: Config = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(
            (again.command(), again.hostname().as_str()),
            (&["web".to_string(), "-v".into()][..], "box")
        );
        let summary: Summary = serde_json::from_value(written).unwrap();
        assert_eq!(summary.command(), ["web", "-v"]);
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
    }
}
