//! What to run: the image's config and the `run` options resolved into one plain description
//! the child process follows. Everything here is validated in the parent, before anything exists.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use caps::{Capability, CapsHashSet};

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
}

/// A `-v HOST:CONTAINER[:ro]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    pub source: PathBuf,
    pub target: String,
    pub readonly: bool,
}

/// The container's process, as the child sets it up (kept in `config.json` for `start` and
/// `exec`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Absolute path inside the container.
    pub cwd: String,
    /// `-u` or the image's User: `NAME|UID[:GROUP|GID]`; empty means root.
    pub user: String,
    pub hostname: String,
    pub volumes: Vec<Volume>,
    pub caps: CapsHashSet,
    pub privileged: bool,
    /// The seccomp filter in its OCI form; none when unconfined.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// Set no_new_privs: setuid and file capabilities then grant nothing.
    #[serde(default)]
    pub no_new_privileges: bool,
    pub tty: bool,
    pub interactive: bool,
    pub init: bool,
    /// Whether the container has its own network namespace (and so brings its `lo` up).
    pub own_netns: bool,
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
        bail!("no command specified: the image has no Cmd or Entrypoint; give one after the image name");
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
            Some(("", _)) => bail!("invalid environment variable {e:?}: the name is empty"),
            Some(_) => set(e.clone()),
            None if e.is_empty() => bail!("invalid environment variable: the name is empty"),
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
        bail!("invalid working directory {dir:?}: it must be an absolute path");
    }
    Ok(dir.to_string())
}

/// Parses `HOST:CONTAINER[:ro|rw]`; the host path must exist.
pub fn volume(spec: &str) -> Result<Volume> {
    let bad = |why: &str| anyhow::anyhow!("invalid volume {spec:?}: {why}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, readonly) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        [_, _, o] => return Err(bad(&format!("unknown option {o:?} (use ro or rw)"))),
        _ => return Err(bad("expected HOST:CONTAINER[:ro]")),
    };
    if !source.starts_with('/') {
        return Err(bad(
            "the host path must be absolute (named volumes are not supported)",
        ));
    }
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        return Err(bad("the container path cannot be the root"));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(bad("the container path must not contain '..'"));
    }
    std::fs::metadata(source).map_err(|e| bad(&format!("host path {source}: {e}")))?;
    Ok(Volume {
        source: PathBuf::from(source),
        target: target.to_string(),
        readonly,
    })
}

/// Docker's memory syntax: a number with an optional unit b, k, m, g, t (binary multiples).
pub fn memory(value: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("invalid --memory {value:?}: expected a size such as 64m or 1g");
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
        _ => return Err(bad()),
    };
    let n: f64 = digits.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    let bytes = n * (1u64 << shift) as f64;
    if bytes < (6 << 20) as f64 {
        bail!("invalid --memory {value:?}: the minimum is 6m");
    }
    if bytes > i64::MAX as f64 {
        return Err(bad());
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
        .with_context(|| {
            format!("invalid --cpus {value:?}: expected a number of CPUs such as 0.5")
        })?;
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !(0.01..=available as f64).contains(&cpus) {
        bail!("invalid --cpus {value:?}: the range is 0.01 to {available}.00, as there are {available} CPUs");
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
                .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
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

    #[test]
    fn volumes() {
        let v = volume("/tmp:/data:ro").unwrap();
        assert!(v.readonly && v.target == "/data");
        assert!(volume("tmp:/data").is_err());
        assert!(volume("/tmp:data").is_err());
        assert!(volume("/tmp:/").is_err());
        assert!(volume("/tmp:/./").is_err());
        assert!(volume("/tmp:/data:rx").is_err());
        assert!(volume("/nonexistent-minibox:/data").is_err());
    }
}
