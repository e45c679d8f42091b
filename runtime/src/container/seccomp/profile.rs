//! Docker's seccomp profile format, turned into the OCI `linux.seccomp` a container runs with,
//! as Docker's `setupSeccomp` does: a rule is kept or left out by the container's capabilities
//! (its bounding set) and the host's architecture and kernel; `archMap` picks the host's
//! architecture and its sub-architectures.
//!
//! `docker-default.json` is Docker's default profile, unchanged, from moby/profiles
//! (`seccomp/default.json`, as vendored by moby at commit b985e23), Copyright The Moby Authors,
//! Apache-2.0.

use caps::CapsHashSet;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use super::Error;

const DOCKER_DEFAULT: &str = include_str!("docker-default.json");

/// A profile in Docker's format (what `--security-opt seccomp=FILE` reads). Unknown fields are
/// ignored, as Docker ignores them (Podman's profiles carry a few more).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    syscalls: Vec<Syscall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Syscall {
    /// The old single-name form.
    name: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
    includes: Option<Condition>,
    excludes: Option<Condition>,
}

/// When a rule applies: every listed capability held (any, for `excludes`), the host's
/// architecture among `arches`, the kernel at least `minKernel`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What a profile is resolved against besides the container's capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The architecture in Docker's (Go's) naming: amd64, arm64, x86, ...
    pub arch: &'static str,
    /// The kernel's version and major revision (6.18 for 6.18.44).
    pub kernel: (u64, u64),
}

impl Host {
    /// This machine.
    pub fn current() -> Host {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Host {
            arch: go_arch(std::env::consts::ARCH),
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

/// Docker's default profile for a container with the bounding set `caps`.
pub fn docker_default(caps: &CapsHashSet, host: &Host) -> LinuxSeccomp {
    from_docker_profile(DOCKER_DEFAULT, caps, host)
        .expect("the built-in profile is valid")
        .expect("the built-in profile confines")
}

/// A profile in Docker's JSON format for a container with the bounding set `caps`; `None` when
/// it confines nothing (no default action and no rules), as Docker reads it.
pub fn from_docker_profile(
    json: &str,
    caps: &CapsHashSet,
    host: &Host,
) -> Result<Option<LinuxSeccomp>, Error> {
    let profile: Profile = serde_json::from_str(json).map_err(|e| Error::Profile(e.to_string()))?;
    let Some(default_action) = profile.default_action else {
        if profile.syscalls.is_empty() {
            return Ok(None);
        }
        return Err(Error::Profile("defaultAction is missing".into()));
    };
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(Error::Profile(
            "both architectures and archMap are given: use one of them".into(),
        ));
    }
    let mut architectures = profile.architectures;
    if let Some(native) = seccomp_arch(host.arch) {
        if let Some(m) = profile
            .arch_map
            .into_iter()
            .find(|m| m.architecture == native)
        {
            architectures.push(m.architecture);
            architectures.extend(m.sub_architectures.unwrap_or_default());
        }
    }
    let mut syscalls = Vec::new();
    for call in profile.syscalls {
        let names = match (call.name, call.names.is_empty()) {
            (Some(_), false) => {
                return Err(Error::Profile(
                    "a rule gives both name and names: use one of them".into(),
                ))
            }
            (Some(name), true) => vec![name],
            (None, _) => call.names,
        };
        if applies(call.includes.as_ref(), call.excludes.as_ref(), caps, host)? {
            let mut s = LinuxSyscall::default();
            s.set_names(names);
            s.set_action(call.action);
            s.set_errno_ret(call.errno_ret);
            s.set_args(call.args);
            syscalls.push(s);
        }
    }
    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures((!architectures.is_empty()).then_some(architectures));
    out.set_flags(profile.flags);
    out.set_syscalls(Some(syscalls));
    Ok(Some(out))
}

fn applies(
    includes: Option<&Condition>,
    excludes: Option<&Condition>,
    caps: &CapsHashSet,
    host: &Host,
) -> Result<bool, Error> {
    let held = |name: &String| caps.iter().any(|c| c.to_string() == *name);
    let kernel_at_least = |min: &str| {
        parse_kernel(min)
            .map(|min| host.kernel >= min)
            .ok_or_else(|| Error::Profile(format!("invalid minKernel {min:?}: expected \"4.8\"")))
    };
    if let Some(ex) = excludes {
        if ex.arches.iter().any(|a| a == host.arch)
            || ex.caps.iter().any(held)
            || ex.min_kernel.as_deref().map(kernel_at_least).transpose()? == Some(true)
        {
            return Ok(false);
        }
    }
    if let Some(inc) = includes {
        if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == host.arch))
            || !inc.caps.iter().all(held)
            || inc.min_kernel.as_deref().map(kernel_at_least).transpose()? == Some(false)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `6.18.44-foo` or `4.8` as (6, 18) or (4, 8).
fn parse_kernel(release: &str) -> Option<(u64, u64)> {
    let mut parts = release.split(['.', '-', '+']);
    let kernel = parts.next()?.parse().ok()?;
    let major = parts.next()?.parse().ok()?;
    Some((kernel, major))
}

/// Rust's name for an architecture in Go's naming, which Docker's profiles use.
fn go_arch(rust: &'static str) -> &'static str {
    match rust {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The libseccomp architecture of a Docker-named one.
fn seccomp_arch(go: &str) -> Option<Arch> {
    Some(match go {
        "amd64" => Arch::ScmpArchX86_64,
        "x86" => Arch::ScmpArchX86,
        "arm64" => Arch::ScmpArchAarch64,
        "arm" => Arch::ScmpArchArm,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        "s390" => Arch::ScmpArchS390,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "loong64" => Arch::ScmpArchLoongarch64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caps::Capability;

    const AMD64: Host = Host {
        arch: "amd64",
        kernel: (6, 1),
    };

    fn default_caps() -> CapsHashSet {
        crate::container::spec::DEFAULT_CAPS.into_iter().collect()
    }

    /// The action and errno the profile gives `name` when called without argument conditions,
    /// or None when no rule names it (the default action applies).
    fn rule(p: &LinuxSeccomp, name: &str) -> Option<(LinuxSeccompAction, Option<u32>)> {
        p.syscalls()
            .iter()
            .flatten()
            .find(|s| s.names().iter().any(|n| n == name) && s.args().is_none())
            .map(|s| (s.action(), s.errno_ret()))
    }

    #[test]
    fn docker_default_for_default_caps() {
        let p = docker_default(&default_caps(), &AMD64);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let allow = Some((LinuxSeccompAction::ScmpActAllow, None));
        for name in [
            "read",
            "openat",
            "execve",
            "arch_prctl",
            "modify_ldt",
            "chroot",
        ] {
            assert_eq!(rule(&p, name), allow, "{name}");
        }
        // Left to the default (EPERM) without the capability that includes them.
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "bpf",
            "reboot",
            "kexec_load",
            "init_module",
            "acct",
            "syslog",
            "settimeofday",
            "open_by_handle_at",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "io_uring_setup",
            "userfaultfd",
            "pivot_root",
        ] {
            assert_eq!(rule(&p, name), None, "{name}");
        }
        // clone3 answers ENOSYS so that libcs fall back to clone, which is checked by flags.
        assert_eq!(
            rule(&p, "clone3"),
            Some((LinuxSeccompAction::ScmpActErrno, Some(libc::ENOSYS as u32)))
        );
        // Another architecture's rules are left out.
        assert_eq!(rule(&p, "riscv_flush_icache"), None);
        assert_eq!(rule(&p, "set_tls"), None);
    }

    #[test]
    fn capabilities_include_and_exclude() {
        let mut caps = default_caps();
        caps.insert(Capability::CAP_SYS_ADMIN);
        caps.insert(Capability::CAP_SYS_TIME);
        let p = docker_default(&caps, &AMD64);
        let allow = Some((LinuxSeccompAction::ScmpActAllow, None));
        for name in [
            "mount",
            "unshare",
            "setns",
            "clone3",
            "settimeofday",
            "clock_settime",
        ] {
            assert_eq!(rule(&p, name), allow, "{name}");
        }
        // The clone rule checking namespace flags is excluded with CAP_SYS_ADMIN.
        assert!(!p
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.names() == &["clone"] && s.args().is_some()));
        assert_eq!(rule(&p, "reboot"), None);

        let mut none = CapsHashSet::new();
        none.insert(Capability::CAP_KILL);
        let p = docker_default(&none, &AMD64);
        assert_eq!(rule(&p, "chroot"), None);
    }

    #[test]
    fn arches_and_kernel() {
        let arm = Host {
            arch: "arm64",
            kernel: (4, 4),
        };
        let p = docker_default(&default_caps(), &arm);
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        assert_eq!(
            rule(&p, "set_tls"),
            Some((LinuxSeccompAction::ScmpActAllow, None))
        );
        assert_eq!(rule(&p, "arch_prctl"), None);
        // ptrace is allowed from 4.8 only.
        assert_eq!(rule(&p, "ptrace"), None);
        assert!(rule(&docker_default(&default_caps(), &AMD64), "ptrace").is_some());
    }

    #[test]
    fn custom_profiles() {
        let caps = default_caps();
        let p = from_docker_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"name":"mkdir","action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["chmod"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_FOWNER"]}},
                {"names":["x"],"action":"SCMP_ACT_ERRNO","comment":"ignored","unknown":1}]}"#,
            &caps,
            &AMD64,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            rule(&p, "mkdir"),
            Some((LinuxSeccompAction::ScmpActErrno, Some(13)))
        );
        assert_eq!(rule(&p, "chmod"), None);
        assert_eq!(p.architectures(), &None);
        assert_eq!(from_docker_profile("{}", &caps, &AMD64).unwrap(), None);

        let bad = |json: &str| {
            from_docker_profile(json, &caps, &AMD64)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("{").contains("EOF"));
        assert!(bad(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).contains("SCMP_ACT_NOPE"));
        assert!(
            bad(r#"{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW"}]}"#)
                .contains("defaultAction")
        );
        assert!(bad(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#
        )
        .contains("both name and names"));
        assert!(bad(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#
        )
        .contains("archMap"));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("5.10-rc1"), Some((5, 10)));
        assert_eq!(parse_kernel("six"), None);
    }
}
