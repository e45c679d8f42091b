//! `--security-opt`, parsed in one place into what the rest of minibox acts on. Docker's forms:
//! `seccomp=unconfined`, `seccomp=builtin`, `seccomp=PROFILE.json`, `no-new-privileges` (also
//! `=true`/`=false`), and the older `:` separator.

use std::path::Path;

use caps::CapsHashSet;
use oci_spec::runtime::LinuxSeccomp;

use super::seccomp::{self, Host};

/// The parsed options. `given` is what `inspect` shows as HostConfig.SecurityOpt: the options as
/// given, a profile's path replaced by its content, as Docker's client sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
    pub given: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile.
    #[default]
    Default,
    Unconfined,
    /// A profile in Docker's format: its file's name and content.
    Profile {
        path: String,
        json: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid --security-opt {opt:?}: {why}")]
    Invalid { opt: String, why: String },
    #[error("reading the seccomp profile {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid seccomp profile {path}: {why}")]
    Profile { path: String, why: String },
}

/// Parses the `--security-opt` values, reading a seccomp profile's file.
pub fn parse(opts: &[String]) -> Result<SecurityOpts, Error> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        let invalid = |why: &str| Error::Invalid {
            opt: opt.clone(),
            why: why.to_string(),
        };
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        let mut given = opt.clone();
        match (key, value) {
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            ("no-new-privileges", Some(_)) => return Err(invalid("expected true or false")),
            ("seccomp", Some("unconfined")) => out.seccomp = Seccomp::Unconfined,
            ("seccomp", Some("builtin")) => out.seccomp = Seccomp::Default,
            ("seccomp", Some("")) | ("seccomp", None) => {
                return Err(invalid(
                    "expected seccomp=unconfined, seccomp=builtin or seccomp=PROFILE.json",
                ))
            }
            ("seccomp", Some(path)) => {
                let json =
                    std::fs::read_to_string(Path::new(path)).map_err(|source| Error::Read {
                        path: path.to_string(),
                        source,
                    })?;
                given = format!("seccomp={json}");
                out.seccomp = Seccomp::Profile {
                    path: path.to_string(),
                    json,
                };
            }
            _ => return Err(invalid(
                "minibox supports seccomp=unconfined|builtin|PROFILE.json and no-new-privileges",
            )),
        }
        out.given.push(given);
    }
    Ok(out)
}

impl SecurityOpts {
    /// The seccomp filter of a container with the bounding set `caps`: none when unconfined or
    /// privileged (as Docker has it), else the profile resolved for this host.
    pub fn seccomp_for(
        &self,
        caps: &CapsHashSet,
        privileged: bool,
    ) -> Result<Option<LinuxSeccomp>, Error> {
        if privileged {
            return Ok(None);
        }
        let host = Host::current();
        match &self.seccomp {
            Seccomp::Default => Ok(Some(seccomp::docker_default(caps, &host))),
            Seccomp::Unconfined => Ok(None),
            Seccomp::Profile { path, json } => seccomp::from_docker_profile(json, caps, &host)
                .map_err(|e| Error::Profile {
                    path: path.clone(),
                    why: match e {
                        seccomp::Error::Profile(why) => why,
                        other => other.to_string(),
                    },
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<SecurityOpts, Error> {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms() {
        assert_eq!(p(&[]).unwrap(), SecurityOpts::default());
        let o = p(&["no-new-privileges", "seccomp=unconfined"]).unwrap();
        assert!(o.no_new_privileges);
        assert_eq!(o.seccomp, Seccomp::Unconfined);
        assert_eq!(o.given, ["no-new-privileges", "seccomp=unconfined"]);
        assert!(!p(&["no-new-privileges:false"]).unwrap().no_new_privileges);
        assert!(p(&["no-new-privileges=true"]).unwrap().no_new_privileges);
        assert_eq!(p(&["seccomp:builtin"]).unwrap().seccomp, Seccomp::Default);
        assert!(p(&["no-new-privileges=maybe"]).is_err());
        assert!(p(&["seccomp="]).is_err());
        assert!(p(&["apparmor=unconfined"])
            .unwrap_err()
            .to_string()
            .contains("supports seccomp="));
        assert!(p(&["seccomp=/nonexistent/minibox.json"])
            .unwrap_err()
            .to_string()
            .starts_with("reading the seccomp profile /nonexistent/minibox.json: "));
    }

    #[test]
    fn profile_file() {
        let dir = std::env::temp_dir().join(format!("minibox-secopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("p.json");
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        std::fs::write(&file, json).unwrap();
        let o = p(&[&format!("seccomp={}", file.display())]).unwrap();
        assert_eq!(o.given, [format!("seccomp={json}")]);
        let caps = CapsHashSet::new();
        assert!(o.seccomp_for(&caps, false).unwrap().is_some());
        assert!(o.seccomp_for(&caps, true).unwrap().is_none());
        std::fs::write(&file, "{").unwrap();
        let o = p(&[&format!("seccomp={}", file.display())]).unwrap();
        let e = o.seccomp_for(&caps, false).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("invalid seccomp profile {}: EOF", file.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
