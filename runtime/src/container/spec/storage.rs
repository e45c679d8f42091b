//! What `run` mounts besides the root filesystem, as Docker spells it: `-v`, `--mount` and
//! `--tmpfs`, parsed and checked into [`Wanted`] mounts. Volumes are named here; `run` makes
//! them (see `container::volume`) and the Spec gets binds of their directories.

use std::path::{Path, PathBuf};

use super::{Error, Result};

/// Where a mount comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path, bound. `create`: made when missing (`-v`, as Docker; `--mount` refuses).
    Host { path: PathBuf, create: bool },
    /// A named volume, made when missing.
    Named(String),
    /// A new anonymous volume (`-v /path`, an image's VOLUME).
    Anonymous,
    /// A tmpfs with these options (`size=…,mode=…`).
    Tmpfs(String),
}

/// A mount `run` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub source: Source,
    pub target: String,
    pub readonly: bool,
    /// `volume-nocopy`/`nocopy`: a new volume does not get the image's content.
    pub nocopy: bool,
}

/// A mount as the Spec gets it: a bind of a host directory (a volume's too) or a tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: Kind,
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bind(PathBuf),
    /// Mount options such as `size=65536k,mode=1777`.
    Tmpfs(String),
}

/// Checks a container path: absolute, not the root, no `..`, not over /proc, /sys or /dev.
pub fn target(flag: &str, value: &str, target: &str) -> Result<String> {
    let bad = |why: &str| Error::Invalid(format!("invalid {flag} {value:?}: {why}"));
    if !target.starts_with('/') {
        return Err(bad("the container path must be absolute"));
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        return Err(bad("the container path cannot be the root"));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(bad("the container path must not contain '..'"));
    }
    let clean: PathBuf = Path::new(target).components().collect();
    if let Some(why) = super::super::mounts::forbidden_destination(&clean) {
        return Err(bad(why));
    }
    Ok(clean.display().to_string())
}

/// `-v HOST:CONTAINER[:OPTIONS]`, `-v NAME:CONTAINER[:OPTIONS]` or `-v CONTAINER` (an anonymous
/// volume); OPTIONS: `ro`, `rw`, `nocopy`, comma-separated.
pub fn volume(value: &str) -> Result<Wanted> {
    let flag = "volume";
    let bad = |why: &str| Error::Invalid(format!("invalid volume {value:?}: {why}"));
    let parts: Vec<&str> = value.split(':').collect();
    let (source, path, options) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, o] => (Some(*s), *t, *o),
        _ => return Err(bad("expected [HOST-PATH|NAME:]CONTAINER-PATH[:ro]")),
    };
    let (mut readonly, mut nocopy) = (false, false);
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            o => return Err(bad(&format!("unknown option {o:?} (use ro, rw or nocopy)"))),
        }
    }
    let source = match source {
        None => Source::Anonymous,
        Some(s) if s.starts_with('/') => Source::Host {
            path: PathBuf::from(s),
            create: true,
        },
        Some(name) => {
            crate::container::volume::check_name(name).map_err(|e| bad(&e.to_string()))?;
            Source::Named(name.to_string())
        }
    };
    Ok(Wanted {
        source,
        target: target(flag, value, path)?,
        readonly,
        nocopy,
    })
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,volume-nocopy]
/// [,tmpfs-size=…][,tmpfs-mode=…]` (`src`, `dst`/`destination`, `ro` as Docker takes them).
pub fn mount(value: &str) -> Result<Wanted> {
    let bad = |why: &str| Error::Invalid(format!("invalid --mount {value:?}: {why}"));
    let (mut typ, mut source, mut dest) = ("volume", None, None);
    let (mut readonly, mut nocopy) = (false, false);
    let (mut size, mut mode) = (None, None);
    for field in value.split(',') {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let flag = |v: Option<&str>| match v {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(bad(&format!("{key}={v}: expected true or false"))),
        };
        let needed = || val.ok_or_else(|| bad(&format!("{key} needs a value")));
        match key {
            "type" => typ = needed()?,
            "source" | "src" => source = Some(needed()?),
            "target" | "destination" | "dst" => dest = Some(needed()?),
            "readonly" | "ro" => readonly = flag(val)?,
            "volume-nocopy" => nocopy = flag(val)?,
            "tmpfs-size" => {
                let v = needed()?;
                size = Some(
                    super::size(v)
                        .ok_or_else(|| bad(&format!("tmpfs-size {v:?} is not a size")))?,
                );
            }
            "tmpfs-mode" => {
                let v = needed()?;
                mode = Some(
                    u32::from_str_radix(v, 8)
                        .map_err(|_| bad(&format!("tmpfs-mode {v:?} is not octal")))?,
                );
            }
            // Bind propagation: binds are private, as Docker's default.
            "bind-propagation" if needed()? == "rprivate" => {}
            k => return Err(bad(&format!("unknown or unsupported field {k:?}"))),
        }
    }
    let dest = dest.ok_or_else(|| bad("target is missing"))?;
    let source = match (typ, source) {
        ("bind", Some(s)) if s.starts_with('/') => {
            if !Path::new(s).exists() {
                return Err(bad(&format!("bind source path does not exist: {s}")));
            }
            Source::Host {
                path: PathBuf::from(s),
                create: false,
            }
        }
        ("bind", _) => return Err(bad("a bind needs an absolute source")),
        ("volume", None) => Source::Anonymous,
        ("volume", Some(name)) => {
            crate::container::volume::check_name(name).map_err(|e| bad(&e.to_string()))?;
            Source::Named(name.to_string())
        }
        ("tmpfs", None) => Source::Tmpfs(tmpfs_options(size, mode)),
        ("tmpfs", Some(_)) => return Err(bad("a tmpfs has no source")),
        (t, _) => return Err(bad(&format!("unknown type {t:?} (bind, volume or tmpfs)"))),
    };
    if nocopy && !matches!(source, Source::Named(_) | Source::Anonymous) {
        return Err(bad("volume-nocopy is for volumes"));
    }
    Ok(Wanted {
        source,
        target: target("--mount", value, dest)?,
        readonly,
        nocopy,
    })
}

/// `--tmpfs CONTAINER[:OPTIONS]` (mount options such as `size=64m,mode=1777`).
pub fn tmpfs(value: &str) -> Result<Wanted> {
    let (path, options) = value.split_once(':').unwrap_or((value, ""));
    let mut readonly = false;
    let mut kept = vec![];
    for o in options.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            // The mount's own data: what tmpfs takes.
            o if ["size=", "mode=", "uid=", "gid=", "nr_inodes="]
                .iter()
                .any(|p| o.starts_with(p))
                || ["noexec", "exec", "nosuid", "suid", "nodev", "dev"].contains(&o) =>
            {
                kept.push(o.to_string())
            }
            o => {
                return Err(Error::Invalid(format!(
                    "invalid --tmpfs {value:?}: unknown option {o:?}"
                )))
            }
        }
    }
    let mut data = tmpfs_options(None, None);
    if !kept.is_empty() {
        data = format!("{data},{}", kept.join(","));
    }
    Ok(Wanted {
        source: Source::Tmpfs(data),
        target: target("--tmpfs", value, path)?,
        readonly,
        nocopy: false,
    })
}

/// Docker's tmpfs defaults (nosuid, nodev, noexec; mode 1777), size unbounded unless given.
fn tmpfs_options(size: Option<u64>, mode: Option<u32>) -> String {
    let mut o = format!("nosuid,nodev,noexec,mode={:o}", mode.unwrap_or(0o1777));
    if let Some(size) = size {
        o.push_str(&format!(",size={size}"));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes() {
        let v = volume("/tmp:/data:ro").unwrap();
        assert!(v.readonly && v.target == "/data");
        assert_eq!(
            v.source,
            Source::Host {
                path: "/tmp".into(),
                create: true
            }
        );
        assert_eq!(
            volume("cache:/c").unwrap().source,
            Source::Named("cache".into())
        );
        assert_eq!(volume("/c").unwrap().source, Source::Anonymous);
        assert!(volume("cache:/c:nocopy").unwrap().nocopy);
        for bad in [
            "tmp/x:/data",
            "/tmp:data",
            "/tmp:/",
            "/tmp:/./",
            "/tmp:/data:rx",
            "a:b:c:d",
            "/tmp:/a/../b",
        ] {
            assert!(volume(bad).is_err(), "{bad}");
        }
        for target in [
            "/proc",
            "/proc/sys/kernel",
            "/sys",
            "/dev/",
            "//proc/./self",
        ] {
            let e = volume(&format!("/tmp:{target}")).unwrap_err().to_string();
            assert!(e.contains("is not allowed"), "{target}: {e}");
        }
        assert!(volume("/tmp:/sys/x").is_ok() && volume("/tmp:/dev/x").is_ok());
    }

    #[test]
    fn mounts() {
        let m = mount("type=bind,source=/tmp,target=/t,readonly").unwrap();
        assert!(m.readonly && m.target == "/t");
        assert!(mount("type=bind,src=/nonexistent-minibox,dst=/t").is_err());
        assert_eq!(
            mount("type=volume,src=v,dst=/v").unwrap().source,
            Source::Named("v".into())
        );
        assert_eq!(mount("target=/v").unwrap().source, Source::Anonymous);
        let t = mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700").unwrap();
        assert_eq!(
            t.source,
            Source::Tmpfs("nosuid,nodev,noexec,mode=700,size=1048576".into())
        );
        for bad in [
            "type=bind,dst=/t",
            "type=nfs,dst=/t",
            "type=tmpfs,src=x,dst=/t",
            "src=v",
            "type=volume,dst=/t,colour=red",
            "type=bind,src=/tmp,dst=/t,volume-nocopy",
        ] {
            assert!(mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tmpfs_flags() {
        let t = tmpfs("/run:size=1m,exec").unwrap();
        assert_eq!(
            t.source,
            Source::Tmpfs("nosuid,nodev,noexec,mode=1777,size=1m,exec".into())
        );
        assert!(tmpfs("/run:bogus").is_err() && tmpfs("run").is_err());
    }
}
