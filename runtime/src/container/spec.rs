//! What to run, as an OCI runtime Spec (the `config.json` of a bundle): `run`'s options and the
//! image's config resolved into one, the way Docker and Podman generate a config.json, with all of
//! minibox's defaults written here as data (capabilities, masked and read-only paths, devices,
//! rlimits, mounts, namespaces). The executor (`process`, `mounts`, `security`, `cgroups`) follows
//! the Spec and nothing else. Everything here is validated in the parent, before anything exists.

use std::path::{Path, PathBuf};

use caps::{Capability, CapsHashSet};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, MountBuilder, ProcessBuilder,
    RootBuilder, SpecBuilder, UserBuilder,
};

pub use oci_spec::runtime::Spec;

use super::user::User;

mod error;
pub mod limits;
pub mod storage;
pub use error::{Error, Result};
pub use limits::{Limits, Share};

/// The parts of an image's config that `run` uses.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// EXPOSE entries (`80/tcp`).
    pub exposed: Vec<String>,
    /// STOPSIGNAL, and HEALTHCHECK (Docker's extension of the config).
    pub stop_signal: Option<String>,
    pub healthcheck: Option<super::health::Healthcheck>,
    /// VOLUME paths: each gets an anonymous volume unless a mount covers it.
    pub volumes: Vec<String>,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The command: Docker's rules for Entrypoint and Cmd. An overridden entrypoint drops the
/// image's Cmd; `--entrypoint ""` clears it.
pub fn command(
    image: &ImageConfig,
    entrypoint: Option<&str>,
    args: &[String],
) -> Result<Vec<String>> {
    let (entry, cmd) = match entrypoint {
        Some("") => (vec![], args.to_vec()),
        Some(e) => (vec![e.to_string()], args.to_vec()),
        None if args.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), args.to_vec()),
    };
    let all: Vec<String> = entry.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(Error::Invalid("no command specified: the image has no Cmd or Entrypoint; give one after the image name".into()));
    }
    Ok(all)
}

/// The environment: PATH and HOSTNAME, the image's Env, TERM with a tty, then `-e` (later
/// entries replace earlier ones with the same name). `-e K` takes K from minibox's environment.
pub fn environment(
    image: &ImageConfig,
    hostname: &str,
    tty: bool,
    user_env: &[String],
) -> Result<Vec<String>> {
    let mut env: Vec<String> = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={hostname}")];
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    };
    image.env.iter().cloned().for_each(&mut set);
    if tty {
        set("TERM=xterm".to_string());
    }
    for e in user_env {
        match e.split_once('=') {
            Some(("", _)) => {
                return Err(Error::Invalid(format!(
                    "invalid environment variable {e:?}: the name is empty"
                )))
            }
            Some(_) => set(e.clone()),
            None if e.is_empty() => {
                return Err(Error::Invalid(
                    "invalid environment variable: the name is empty".into(),
                ))
            }
            None => {
                if let Ok(v) = std::env::var(e) {
                    set(format!("{e}={v}"));
                }
            }
        }
    }
    Ok(env)
}

/// `-w` or the image's WorkingDir, `/` by default; must be absolute.
pub fn workdir(image: &ImageConfig, workdir: Option<&str>) -> Result<String> {
    let dir = workdir.unwrap_or(&image.working_dir);
    if dir.is_empty() {
        return Ok("/".to_string());
    }
    if !dir.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid working directory {dir:?}: it must be an absolute path"
        )));
    }
    Ok(dir.to_string())
}

/// Docker's size syntax (go-units `RAMInBytes`): a positive number with an optional unit b,
/// k, m, g, t (binary multiples, `kb`/`kib` alike). `None` when it is not one.
pub fn size(value: &str) -> Option<u64> {
    let lower = value.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| {
            lower
                .strip_suffix('b')
                .filter(|s| s.ends_with(|c: char| c.is_alphabetic()))
        })
        .unwrap_or(&lower);
    let (digits, unit) = match lower.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => lower.split_at(i),
        None => (lower, ""),
    };
    let shift = match unit {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let n: f64 = digits.parse().ok()?;
    let bytes = n * (1u64 << shift) as f64;
    (n.is_finite() && n > 0.0 && bytes <= i64::MAX as f64).then_some(bytes as u64)
}

/// `--memory`: a [`size`] of at least 6m, as Docker requires.
pub fn memory(value: &str) -> Result<i64> {
    let bytes = size(value).ok_or_else(|| {
        Error::Invalid(format!(
            "invalid --memory {value:?}: expected a size such as 64m or 1g"
        ))
    })?;
    if bytes < 6 << 20 {
        return Err(Error::Invalid(format!(
            "invalid --memory {value:?}: the minimum is 6m"
        )));
    }
    Ok(bytes as i64)
}

/// `--cpus` as a CFS quota in microseconds per 100 ms period.
pub fn cpu_quota(value: &str) -> Result<i64> {
    let cpus: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "invalid --cpus {value:?}: expected a number of CPUs such as 0.5"
            ))
        })?;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !(0.01..=available as f64).contains(&cpus) {
        return Err(Error::Invalid(format!("invalid --cpus {value:?}: the range is 0.01 to {available}.00, as there are {available} CPUs")));
    }
    Ok((cpus * 100_000.0).round() as i64)
}

/// Docker's capability arithmetic: the default set, plus `--cap-add`, minus `--cap-drop`;
/// ALL on either side means every capability.
pub fn capabilities(add: &[String], drop: &[String], privileged: bool) -> Result<CapsHashSet> {
    let all = caps::all();
    if privileged {
        return Ok(all);
    }
    let parse = |list: &[String]| -> Result<(bool, CapsHashSet)> {
        let mut set = CapsHashSet::new();
        let mut has_all = false;
        for name in list {
            let upper = name.to_ascii_uppercase();
            if upper == "ALL" {
                has_all = true;
                continue;
            }
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap: Capability = full
                .parse()
                .map_err(|_| Error::Invalid(format!("unknown capability {name:?}")))?;
            set.insert(cap);
        }
        Ok((has_all, set))
    };
    let (add_all, added) = parse(add)?;
    let (drop_all, dropped) = parse(drop)?;
    let mut set: CapsHashSet = if add_all {
        all
    } else if drop_all {
        CapsHashSet::new()
    } else {
        DEFAULT_CAPS.into_iter().collect()
    };
    if !add_all {
        set.extend(added);
    }
    if !drop_all || add_all {
        set.retain(|c| !dropped.contains(c));
    }
    Ok(set)
}

/// Paths masked in the container (Docker's list): /dev/null over a file, an empty read-only
/// tmpfs over a directory.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths made read-only in the container (Docker's list).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The container's device nodes (path, major, minor), mode 0666: they are also the character
/// devices its cgroup lets it use.
pub const DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Character devices the cgroup allows besides [`DEVICES`] (runc's list): /dev/ptmx, the pts
/// slaves, /dev/net/tun.
const MORE_ALLOWED: [(i64, Option<i64>); 3] = [(5, Some(2)), (136, None), (10, Some(200))];

/// What the container's process is, resolved.
pub struct Process {
    pub args: Vec<String>,
    /// Without HOME, the user's home is added.
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    pub caps: CapsHashSet,
    pub tty: bool,
    pub no_new_privileges: bool,
}

/// What `run` asks for, resolved: what the Spec is built from.
pub struct Options<'a> {
    pub process: Process,
    pub hostname: String,
    /// Where the image's root filesystem is mounted.
    pub root: &'a Path,
    /// The directory holding the container's `hostname`, `hosts` and `resolv.conf`.
    pub etc: &'a Path,
    /// `-v`, `--mount`, `--tmpfs`, resolved to binds and tmpfs mounts.
    pub volumes: &'a [storage::Mount],
    /// `--read-only`: the root filesystem is mounted read-only.
    pub readonly_root: bool,
    pub privileged: bool,
    /// Whether the container gets its own network namespace.
    pub own_netns: bool,
    /// The cgroup, relative to the hierarchies' roots.
    pub cgroup: String,
    pub memory: Option<i64>,
    /// CFS quota in microseconds per [`CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    pub pids: Option<i64>,
    /// The seccomp filter (`linux.seccomp`); none when unconfined.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// rlimits, more cgroup limits, devices, sysctls, shared namespaces.
    pub limits: Limits,
}

/// The CFS period `--cpus` is a quota of.
pub const CPU_PERIOD: u64 = 100_000;

/// Builds the container's Spec.
pub fn build(o: &Options) -> Result<Spec> {
    let oci_caps = to_oci(&o.process.caps);
    // A non-root user starts with no effective or permitted capability, as in Docker; the
    // bounding set still limits what setuid programs and file capabilities can grant.
    let granted = if o.process.user.uid == 0 {
        oci_caps.clone()
    } else {
        Default::default()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(oci_caps)
        .effective(granted.clone())
        .permitted(granted.clone())
        .inheritable(granted)
        .ambient(oci_spec::runtime::Capabilities::new())
        .build()?;
    let user = &o.process.user;
    let mut env = o.process.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let process = ProcessBuilder::default()
        .terminal(o.process.tty)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.groups.clone())
                .umask(0o022u32)
                .build()?,
        )
        .args(o.process.args.clone())
        .env(env)
        .cwd(&o.process.cwd)
        .capabilities(capabilities)
        .rlimits(o.limits.rlimits.clone())
        .no_new_privileges(o.process.no_new_privileges)
        .build()?;

    let l = &o.limits;
    let mut namespaces = vec![
        (LinuxNamespaceType::Pid, &l.pid),
        (LinuxNamespaceType::Mount, &Share::Private),
        (LinuxNamespaceType::Uts, &l.uts),
        (LinuxNamespaceType::Ipc, &l.ipc),
        (LinuxNamespaceType::Cgroup, &Share::Private),
    ];
    if o.own_netns {
        namespaces.push((LinuxNamespaceType::Network, &Share::Private));
    }
    let namespaces = namespaces
        .into_iter()
        .filter_map(|(typ, share)| {
            let ns = LinuxNamespaceBuilder::default().typ(typ);
            match share {
                Share::Private => Some(ns.build()),
                Share::Path(path) => Some(ns.path(path).build()),
                // The host's: none of its own; a name not resolved yet cannot be built.
                Share::Host | Share::Container(_) => None,
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = o.memory {
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        if let Some(swap) = l.memory_swap {
            memory = memory.swap(swap);
        }
        resources = resources.memory(memory.build()?);
    }
    if o.cpu_quota.is_some() || l.cpu_shares.is_some() || l.cpuset_cpus.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(quota) = o.cpu_quota {
            cpu = cpu.quota(quota).period(CPU_PERIOD);
        }
        if let Some(shares) = l.cpu_shares {
            cpu = cpu.shares(shares);
        }
        if let Some(cpus) = &l.cpuset_cpus {
            cpu = cpu.cpus(cpus);
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(limit) = o.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    // `--privileged`: no device rules, nothing masked or read-only.
    let (mut rules, masked, readonly) = match o.privileged {
        false => (
            device_rules()?,
            MASKED_PATHS.map(String::from).to_vec(),
            READONLY_PATHS.map(String::from).to_vec(),
        ),
        true => Default::default(),
    };
    let mut nodes = devices()?;
    for (node, access) in &l.devices {
        nodes.retain(|n| n.path() != node.path());
        nodes.push(node.clone());
        if !o.privileged {
            let (typ, major, minor) = (node.typ(), node.major(), node.minor());
            rules.push(device_rule(true, typ, Some(major), Some(minor), access)?);
        }
    }
    let mut linux = LinuxBuilder::default();
    if !l.sysctls.is_empty() {
        linux = linux.sysctl(l.sysctls.clone());
    }
    if let Some(seccomp) = &o.seccomp {
        linux = linux.seccomp(seccomp.clone());
    }
    let linux = linux
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&o.cgroup))
        .devices(nodes)
        .resources(resources.devices(rules).build()?)
        .masked_paths(masked)
        .readonly_paths(readonly)
        .build()?;

    let mut spec = SpecBuilder::default();
    // The hostname is only set in a UTS namespace of its own (not the host's or another's).
    if l.uts.private() {
        spec = spec.hostname(&o.hostname);
    }
    Ok(spec
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(o.root)
                .readonly(o.readonly_root)
                .build()?,
        )
        .process(process)
        .mounts(mounts(o)?)
        .linux(linux)
        .build()?)
}

/// proc, /dev (tmpfs, devpts, shm, mqueue), sysfs, the container's own cgroup (read-only), the
/// /etc files, then `-v` volumes.
fn mounts(o: &Options) -> Result<Vec<oci_spec::runtime::Mount>> {
    let m = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
    };
    let ro = if o.privileged { "rw" } else { "ro" };
    let shm_size = format!("size={}", o.limits.shm_size.unwrap_or(64 << 20));
    // The host's IPC namespace comes with the host's POSIX shared memory, as in Docker.
    let shm = match o.limits.ipc {
        Share::Host => m(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "nosuid", "noexec", "nodev"],
        )?,
        _ => m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        )?,
    };
    let mut all = vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "noexec", "mode=755", "size=65536k"],
        )?,
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        shm,
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro])?,
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        )?,
    ];
    for name in ETC_FILES {
        let source = o.etc.join(name);
        all.push(
            MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(source)
                .options(vec!["bind".to_string()])
                .build()?,
        );
    }
    // Parents before what is mounted inside them, whatever order the flags came in.
    let mut volumes: Vec<&storage::Mount> = o.volumes.iter().collect();
    volumes.sort_by_key(|v| v.target.matches('/').count());
    for v in volumes {
        let (typ, source, mut options) = match &v.kind {
            storage::Kind::Bind(path) => ("bind", path.clone(), vec!["rbind".to_string()]),
            storage::Kind::Tmpfs(data) => (
                "tmpfs",
                PathBuf::from("tmpfs"),
                data.split(',').map(String::from).collect(),
            ),
        };
        if v.readonly {
            options.push("ro".to_string());
        }
        all.push(
            MountBuilder::default()
                .destination(&v.target)
                .typ(typ)
                .source(source)
                .options(options)
                .build()?,
        );
    }
    Ok(all)
}

/// The container's /etc files that minibox writes (bound from [`Options::etc`]).
pub const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// The device nodes every container gets ([`DEVICES`]; the OCI runtime adds them to a bundle's).
pub fn devices() -> Result<Vec<oci_spec::runtime::LinuxDevice>> {
    DEVICES
        .iter()
        .map(|(path, major, minor)| {
            Ok(LinuxDeviceBuilder::default()
                .path(*path)
                .typ(LinuxDeviceType::C)
                .major(*major)
                .minor(*minor)
                .file_mode(0o666u32)
                .uid(0u32)
                .gid(0u32)
                .build()?)
        })
        .collect()
}

/// runc's device rules: deny everything, allow mknod of any node (so images can carry device
/// nodes), and read-write-mknod of the container's own nodes and a few more. Without them,
/// CAP_MKNOD would open the host's disks.
fn device_rules() -> Result<Vec<oci_spec::runtime::LinuxDeviceCgroup>> {
    let mut rules = vec![
        device_rule(false, LinuxDeviceType::A, None, None, "rwm")?,
        device_rule(true, LinuxDeviceType::C, None, None, "m")?,
        device_rule(true, LinuxDeviceType::B, None, None, "m")?,
    ];
    rules.extend(allowed_device_rules()?);
    Ok(rules)
}

/// Read-write-mknod of the container's own nodes and a few more (the OCI runtime appends these
/// to a bundle's rules, as runc does).
pub fn allowed_device_rules() -> Result<Vec<oci_spec::runtime::LinuxDeviceCgroup>> {
    let nodes = DEVICES
        .iter()
        .map(|(_, major, minor)| (*major, Some(*minor)));
    nodes
        .chain(MORE_ALLOWED)
        .map(|(major, minor)| device_rule(true, LinuxDeviceType::C, Some(major), minor, "rwm"))
        .collect()
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<oci_spec::runtime::LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(major) = major {
        b = b.major(major);
    }
    if let Some(minor) = minor {
        b = b.minor(minor);
    }
    Ok(b.build()?)
}

/// A capability set in the OCI Spec's terms.
pub fn to_oci(set: &CapsHashSet) -> oci_spec::runtime::Capabilities {
    set.iter()
        .filter_map(|c| {
            let name = c.to_string();
            name.strip_prefix("CAP_")?.parse().ok()
        })
        .collect()
}

/// An OCI capability set in the kernel's terms (names the kernel's crate does not know are left
/// out: the process could not hold them anyway).
pub fn from_oci(set: &oci_spec::runtime::Capabilities) -> CapsHashSet {
    set.iter()
        .filter_map(|c| format!("CAP_{c}").parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["a".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_rules() {
        let i = img();
        assert_eq!(command(&i, None, &[]).unwrap(), ["/ep", "a"]);
        assert_eq!(command(&i, None, &["b".into()]).unwrap(), ["/ep", "b"]);
        assert_eq!(command(&i, Some("/x"), &[]).unwrap(), ["/x"]);
        assert_eq!(command(&i, Some(""), &["sh".into()]).unwrap(), ["sh"]);
        assert!(command(&ImageConfig::default(), None, &[]).is_err());
    }

    #[test]
    fn env_overrides() {
        let env = environment(&img(), "h", true, &["A=2".into(), "B=3".into()]).unwrap();
        assert_eq!(env, ["HOSTNAME=h", "PATH=/bin", "TERM=xterm", "A=2", "B=3"]);
        assert!(environment(&img(), "h", false, &["=x".into()]).is_err());
    }

    #[test]
    fn memory_units() {
        assert_eq!(memory("64m").unwrap(), 64 << 20);
        assert_eq!(memory("1G").unwrap(), 1 << 30);
        assert_eq!(memory("64MB").unwrap(), 64 << 20);
        assert_eq!(memory("10485760").unwrap(), 10 << 20);
        assert!(memory("lots").is_err());
        assert!(memory("1k").is_err());
        assert!(memory("-5m").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(cpu_quota("0.5").unwrap(), 50_000);
        assert!(cpu_quota("half").is_err());
        assert!(cpu_quota("0").is_err());
        assert!(cpu_quota("1000").is_err());
    }

    fn options<'a>(user: u32, privileged: bool, volumes: &'a [storage::Mount]) -> Options<'a> {
        Options {
            process: Process {
                args: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: User {
                    uid: user,
                    gid: user,
                    groups: vec![10],
                    home: "/home/u".into(),
                },
                caps: capabilities(&[], &[], privileged).unwrap(),
                tty: false,
                no_new_privileges: false,
            },
            hostname: "h".into(),
            root: Path::new("/c/rootfs"),
            etc: Path::new("/c/etc"),
            volumes,
            readonly_root: false,
            privileged,
            own_netns: true,
            cgroup: "minibox/c".into(),
            memory: Some(64 << 20),
            cpu_quota: None,
            pids: Some(50),
            seccomp: None,
            limits: Limits {
                rlimits: limits::rlimits(&["nofile=1024".into()]).unwrap(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_spec_carries_the_defaults_as_data() {
        let vols = [storage::Mount {
            kind: storage::Kind::Bind("/tmp".into()),
            target: "/data".into(),
            readonly: true,
        }];
        let spec = build(&options(0, false, &vols)).unwrap();
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.permitted(),
            caps.inheritable(),
        ] {
            assert_eq!(set.as_ref().unwrap().len(), 14);
        }
        assert!(caps.ambient().as_ref().unwrap().is_empty());
        let rlimits = process.rlimits().as_ref().unwrap();
        assert_eq!((rlimits[0].soft(), rlimits[0].hard()), (1024, 1024));
        assert!(process
            .env()
            .as_ref()
            .unwrap()
            .contains(&"HOME=/home/u".into()));
        assert_eq!(process.user().additional_gids().as_ref().unwrap(), &[10]);
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 10);
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
        // One device list: the nodes, and the rules that allow them (after deny-all and mknod).
        let nodes = linux.devices().as_ref().unwrap();
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(nodes.len(), DEVICES.len());
        for (node, rule) in nodes.iter().zip(&rules[3..]) {
            assert_eq!(
                (rule.major(), rule.minor()),
                (Some(node.major()), Some(node.minor()))
            );
        }
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(resources.pids().as_ref().unwrap().limit(), 50);
        let types: Vec<String> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ().to_string())
            .collect();
        assert_eq!(types, ["pid", "mnt", "uts", "ipc", "cgroup", "net"]);
        let mounts = spec.mounts().as_ref().unwrap();
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/data"
            ]
        );
        let opts = |i: usize| mounts[i].options().clone().unwrap();
        assert!(opts(6).contains(&"ro".into()) && opts(5).contains(&"ro".into()));
        assert_eq!(opts(10), ["rbind", "ro"]);
    }

    #[test]
    fn non_root_and_privileged() {
        let spec = build(&options(1000, false, &[])).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.effective().as_ref().unwrap().is_empty());
        assert!(caps.permitted().as_ref().unwrap().is_empty());
        let spec = build(&options(0, true, &[])).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().as_ref().unwrap().is_empty());
        assert!(linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap()
            .is_empty());
        assert_eq!(linux.devices().as_ref().unwrap().len(), DEVICES.len());
        let sys = &spec.mounts().as_ref().unwrap()[5];
        assert!(sys.options().as_ref().unwrap().contains(&"rw".into()));
    }

    #[test]
    fn caps_arithmetic() {
        let d = capabilities(&[], &[], false).unwrap();
        assert_eq!(d.len(), 14);
        let s = capabilities(&["net_admin".into()], &["CAP_CHOWN".into()], false).unwrap();
        assert!(s.contains(&Capability::CAP_NET_ADMIN) && !s.contains(&Capability::CAP_CHOWN));
        let s = capabilities(&["KILL".into()], &["ALL".into()], false).unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [Capability::CAP_KILL]);
        assert!(capabilities(&["FOO".into()], &[], false).is_err());
    }
}
