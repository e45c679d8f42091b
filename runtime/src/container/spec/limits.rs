//! `run`'s limits and shared namespaces, as Docker spells them, checked and turned into Spec data:
//! `--ulimit`, `--memory-swap`, `--cpu-shares`, `--cpuset-cpus`, `--shm-size`, `--device`,
//! `--sysctl`, `--pid/--ipc/--uts`. Nothing here touches the container: the executor follows the
//! Spec these values end up in.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::{Error, Result};
use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType,
};

/// What `run` asks beyond memory, `--cpus` and `--pids-limit`, checked.
#[derive(Debug, Default)]
pub struct Limits {
    /// Every rlimit the process gets (the default RLIMIT_NOFILE, overridden by `--ulimit`).
    pub rlimits: Vec<PosixRlimit>,
    /// Memory + swap in bytes (-1 unlimited), as the Spec's `memory.swap`.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub shm_size: Option<u64>,
    /// `--device`: the node and the access its cgroup rule grants.
    pub devices: Vec<(LinuxDevice, String)>,
    pub sysctls: HashMap<String, String>,
    pub pid: Share,
    pub ipc: Share,
    pub uts: Share,
}

/// Whose namespace the container uses (`--pid`, `--ipc`, `--uts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Share {
    /// One of its own (the default).
    #[default]
    Private,
    /// The host's.
    Host,
    /// Another container's (`container:NAME`), the name as given: [`Share::Path`] once resolved.
    Container(String),
    /// A namespace file to join (`/proc/PID/ns/TYPE` of the other container's PID 1).
    Path(PathBuf),
}

impl Share {
    /// Parses `host`, `container:NAME`, `private` (and `shareable`, Docker's private for IPC).
    pub fn parse(flag: &str, value: &str) -> Result<Self> {
        match value {
            "" | "private" | "shareable" => Ok(Share::Private),
            "host" => Ok(Share::Host),
            v => match v.strip_prefix("container:") {
                Some(name) if !name.is_empty() => Ok(Share::Container(name.to_string())),
                _ => Err(Error::Invalid(format!(
                    "invalid --{flag} {value:?}: use host, private or container:NAME"
                ))),
            },
        }
    }

    /// Whether the container gets a namespace of its own.
    pub fn private(&self) -> bool {
        *self == Share::Private
    }
}

/// The rlimit names Docker knows, as `--ulimit` takes them.
const ULIMITS: [(&str, PosixRlimitType); 16] = [
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

/// Docker's RLIMIT_NOFILE (its daemon's, which containers inherit): the kernel's default
/// `fs.nr_open`.
const NOFILE: u64 = 1 << 20;

/// This process's (soft, hard) limit of `typ`.
fn current(typ: PosixRlimitType) -> (u64, u64) {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid resource number and our own struct.
    unsafe { libc::getrlimit(typ as libc::c_int as _, &mut now) };
    (now.rlim_cur, now.rlim_max)
}

/// Whether this process may raise a hard limit.
fn can_raise() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false)
}

/// The process's rlimits: RLIMIT_NOFILE as Docker's (1048576), kept within the hard limit minibox
/// runs under when it may not raise it, then each `--ulimit NAME=SOFT[:HARD]` (-1: unlimited).
/// A limit above the hard one without CAP_SYS_RESOURCE is refused rather than quietly lowered.
pub fn rlimits(values: &[String]) -> Result<Vec<PosixRlimit>> {
    let raise = can_raise();
    let ceiling = |typ| match raise {
        true => u64::MAX,
        false => current(typ).1,
    };
    let nofile = NOFILE.min(ceiling(PosixRlimitType::RlimitNofile));
    let mut all = vec![(PosixRlimitType::RlimitNofile, nofile, nofile)];
    for value in values {
        let bad = |why: String| Error::Invalid(format!("invalid --ulimit {value:?}: {why}"));
        let (name, limits) = value
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=SOFT[:HARD], e.g. nofile=1024:2048".into()))?;
        let typ = ULIMITS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
                bad(format!(
                    "unknown limit {name:?} (one of {})",
                    names.join(", ")
                ))
            })?;
        let number = |s: &str| match s.trim() {
            "-1" | "unlimited" => Ok(libc::RLIM_INFINITY),
            n => n
                .parse::<u64>()
                .map_err(|_| bad(format!("{n:?} is not a number (or -1 for unlimited)"))),
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((s, h)) => (number(s)?, number(h)?),
            None => (number(limits)?, number(limits)?),
        };
        if soft > hard {
            return Err(bad(format!(
                "the soft limit {soft} is above the hard limit {hard}"
            )));
        }
        let max = ceiling(typ);
        if hard > max {
            return Err(bad(format!(
                "the hard limit is above minibox's own ({max}), and raising it needs \
                 CAP_SYS_RESOURCE, which minibox does not have here: ask for at most {max}"
            )));
        }
        all.retain(|(t, _, _)| *t != typ);
        all.push((typ, soft, hard));
    }
    all.into_iter()
        .map(|(typ, soft, hard)| {
            Ok(PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft)
                .hard(hard)
                .build()?)
        })
        .collect()
}

/// `--memory-swap`: memory plus swap (Docker's meaning, and the Spec's), -1 for unlimited swap;
/// by default twice `--memory`, as in Docker. Only with a memory limit; `None` when the host
/// keeps no swap accounts (then Docker too leaves swap alone), unless it was asked for.
pub fn memory_swap(
    value: Option<&str>,
    memory: Option<i64>,
    accounted: bool,
) -> Result<Option<i64>> {
    let Some(memory) = memory else {
        if let Some(v) = value {
            return Err(Error::Invalid(format!(
                "invalid --memory-swap {v:?}: it needs a --memory limit too"
            )));
        }
        return Ok(None);
    };
    let swap = match value {
        None if !accounted => return Ok(None),
        None => memory.saturating_mul(2),
        Some("-1") => -1,
        Some(v) => {
            let bytes = super::size(v).ok_or_else(|| {
                Error::Invalid(format!(
                    "invalid --memory-swap {v:?}: expected a size such as 128m, or -1"
                ))
            })? as i64;
            if bytes < memory {
                return Err(Error::Invalid(format!("invalid --memory-swap {v:?}: it is memory plus swap, so at least --memory ({memory} bytes)")));
            }
            bytes
        }
    };
    if !accounted {
        return Err(Error::Invalid("invalid --memory-swap: this kernel keeps no swap accounts (swapaccount=1 on its command line turns them on)".into()));
    }
    Ok(Some(swap))
}

/// `--cpu-shares`: a relative weight, 2 to 262144 as the kernel takes it (1024 is the default).
pub fn cpu_shares(value: u64) -> Result<u64> {
    if !(2..=262_144).contains(&value) {
        return Err(Error::Invalid(format!(
            "invalid --cpu-shares {value}: the range is 2 to 262144 (1024 is the default)"
        )));
    }
    Ok(value)
}

/// `--cpuset-cpus`: a list such as `0-1,3` of CPUs this machine has online.
pub fn cpuset(value: &str) -> Result<String> {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
    let bad = |why: String| Error::Invalid(format!("invalid --cpuset-cpus {value:?}: {why}"));
    for part in value.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let last: u32 = match (a.trim().parse::<u32>(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a <= b => b,
            _ => return Err(bad("expected a list such as 0-1,3".into())),
        };
        if last >= online {
            return Err(bad(format!(
                "this machine has CPUs 0-{} online",
                online - 1
            )));
        }
    }
    Ok(value.to_string())
}

/// `--shm-size`: the size of /dev/shm.
pub fn shm_size(value: &str) -> Result<u64> {
    super::size(value).ok_or_else(|| {
        Error::Invalid(format!(
            "invalid --shm-size {value:?}: expected a size such as 64m"
        ))
    })
}

/// `--device HOST[:CONTAINER[:PERMISSIONS]]`: a host device node, made in the container at the
/// same major and minor numbers (and mode), with a cgroup rule granting PERMISSIONS (any of
/// r, w, m; default rwm).
pub fn device(value: &str) -> Result<(LinuxDevice, String)> {
    let bad = |why: String| Error::Invalid(format!("invalid --device {value:?}: {why}"));
    let parts: Vec<&str> = value.split(':').collect();
    let perms = |p: &str| {
        (!p.is_empty() && p.chars().all(|c| "rwm".contains(c)))
            .then(|| p.to_string())
            .ok_or_else(|| {
                bad(format!(
                    "permissions {p:?} are not a combination of r, w and m"
                ))
            })
    };
    let (host, inside, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm".to_string()),
        [h, p] if !p.starts_with('/') => (*h, *h, perms(p)?),
        [h, c] => (*h, *c, "rwm".to_string()),
        [h, c, p] => (*h, *c, perms(p)?),
        _ => return Err(bad("expected HOST[:CONTAINER[:PERMISSIONS]]".into())),
    };
    for path in [host, inside] {
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(bad(format!(
                "{path:?} must be an absolute path without '..'"
            )));
        }
    }
    if !inside.starts_with("/dev/") {
        return Err(bad(format!("{inside:?}: a device goes under /dev")));
    }
    let meta = std::fs::metadata(host).map_err(|e| bad(format!("{host}: {e}")))?;
    let typ = match meta.file_type() {
        t if t.is_char_device() => LinuxDeviceType::C,
        t if t.is_block_device() => LinuxDeviceType::B,
        _ => return Err(bad(format!("{host} is not a device node"))),
    };
    let rdev = meta.rdev();
    let node = LinuxDeviceBuilder::default()
        .path(inside)
        .typ(typ)
        .major(libc::major(rdev) as i64)
        .minor(libc::minor(rdev) as i64)
        .file_mode(meta.permissions().mode() & 0o777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()?;
    Ok((node, access))
}

/// The sysctls of the IPC namespace (besides `fs.mqueue.*`), as Docker and runc allow them.
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// `--sysctl KEY=VALUE`: only those the container's own namespaces hold (IPC ones, `net.*` with
/// a network namespace of its own, `kernel.domainname` with its own UTS namespace). Anything else
/// would change the host's kernel for everyone, so it is refused.
pub fn sysctls(
    values: &[String],
    own_net: bool,
    ipc: &Share,
    uts: &Share,
) -> Result<HashMap<String, String>> {
    let mut all = HashMap::new();
    for v in values {
        let bad = |why: &str| Error::Invalid(format!("invalid --sysctl {v:?}: {why}"));
        let (key, value) = v
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE, e.g. net.ipv4.ip_forward=1"))?;
        // The key becomes a path under /proc/sys.
        let well_formed = key.split('.').all(|c| {
            !c.is_empty()
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-".contains(ch))
        });
        if !well_formed {
            return Err(bad("not a sysctl name"));
        }
        let (namespace, own) = if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
            ("IPC", ipc.private())
        } else if key.starts_with("net.") {
            ("network", own_net)
        } else if key == "kernel.domainname" {
            ("UTS", uts.private())
        } else {
            return Err(bad(&format!(
                "{key} is not namespaced: setting it would change the host's kernel (only IPC \
                 ones, net.* and kernel.domainname can be set for a container)"
            )));
        };
        if !own {
            return Err(bad(&format!(
                "{key} belongs to the {namespace} namespace, which this container shares: \
                 setting it would change the other's"
            )));
        }
        all.insert(key.to_string(), value.to_string());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits() {
        let hard = current(PosixRlimitType::RlimitNofile).1;
        let r = rlimits(&["nofile=100:200".into(), "nproc=50".into()]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].typ(), r[0].soft(), r[0].hard()),
            (PosixRlimitType::RlimitNofile, 100, 200)
        );
        assert_eq!((r[1].soft(), r[1].hard()), (50, 50));
        let default = rlimits(&[]).unwrap();
        assert!(default[0].hard() <= NOFILE && default[0].soft() == default[0].hard());
        for bad in ["nofile", "foo=1", "nofile=x", "nofile=3:2"] {
            assert!(rlimits(&[bad.into()]).is_err(), "{bad}");
        }
        if !can_raise() && hard != libc::RLIM_INFINITY {
            let e = rlimits(&[format!("nofile={}", hard + 1)]).unwrap_err();
            assert!(e.to_string().contains("CAP_SYS_RESOURCE"), "{e}");
        }
    }

    #[test]
    fn swap() {
        assert_eq!(memory_swap(None, Some(64), true).unwrap(), Some(128));
        assert_eq!(memory_swap(None, Some(64), false).unwrap(), None);
        assert_eq!(memory_swap(Some("-1"), Some(64), true).unwrap(), Some(-1));
        assert_eq!(memory_swap(Some("1k"), Some(64), true).unwrap(), Some(1024));
        assert!(memory_swap(Some("1k"), Some(4096), true).is_err());
        assert!(memory_swap(Some("1g"), None, true).is_err());
        assert_eq!(memory_swap(None, None, true).unwrap(), None);
    }

    #[test]
    fn shares_and_cpusets() {
        assert!(cpu_shares(1).is_err() && cpu_shares(512).is_ok());
        assert!(cpuset("0").is_ok());
        for bad in ["", "a", "1-0", "0-100000", "0,"] {
            assert!(cpuset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn devices() {
        let (node, access) = device("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!((node.major(), node.minor(), access.as_str()), (1, 3, "r"));
        assert_eq!(node.path(), &PathBuf::from("/dev/mynull"));
        let (node, access) = device("/dev/zero").unwrap();
        assert_eq!(
            (node.path().to_str(), access.as_str()),
            (Some("/dev/zero"), "rwm")
        );
        assert_eq!(device("/dev/zero:rw").unwrap().1, "rw");
        for bad in [
            "/etc/passwd",
            "/dev/null:/dev/x:rx",
            "/dev/null:/etc/x",
            "/dev/nosuch",
            "null",
        ] {
            assert!(device(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_namespaced_sysctls() {
        let p = Share::Private;
        let ok = sysctls(
            &["net.ipv4.ip_forward=1".into(), "kernel.shmmax=1000".into()],
            true,
            &p,
            &p,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        for bad in [
            "vm.swappiness=1",
            "kernel.hostname=x",
            "net/../vm=1",
            "net..x=1",
            "x",
        ] {
            assert!(sysctls(&[bad.into()], true, &p, &p).is_err(), "{bad}");
        }
        assert!(sysctls(&["net.ipv4.ip_forward=1".into()], false, &p, &p).is_err());
        assert!(sysctls(&["kernel.sem=1".into()], true, &Share::Host, &p).is_err());
    }

    #[test]
    fn shares() {
        assert_eq!(Share::parse("pid", "host").unwrap(), Share::Host);
        assert_eq!(Share::parse("ipc", "private").unwrap(), Share::Private);
        assert_eq!(
            Share::parse("pid", "container:db").unwrap(),
            Share::Container("db".into())
        );
        assert!(Share::parse("pid", "container:").is_err());
        assert!(Share::parse("pid", "other").is_err());
    }
}
