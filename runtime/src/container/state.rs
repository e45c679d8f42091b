//! A container's records: the persistent dir `<root>/containers/<id>/` (the `image` file that
//! keeps rmi away, `config.json`, the rootfs) and the volatile dir `<runroot>/containers/<id>/`
//! (the generated /etc files bind-mounted into the container, `state.json`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::network::Attachment;
use crate::paths::Paths;

/// What `config.json` records: what was asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub id: String,
    pub name: Option<String>,
    /// The image's id (`sha256:...`) and the reference the user gave.
    pub image: String,
    pub image_name: String,
    pub args: Vec<String>,
    pub hostname: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// What `state.json` records: what is happening.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// `running` or `exited`.
    pub status: String,
    /// The container's PID 1 as the host sees it.
    pub pid: i32,
    pub exit_code: Option<u8>,
    pub cgroup: String,
    pub network: Attachment,
}

/// A new container id: 64 hex digits from the kernel's random source.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn dir(paths: &Paths, id: &str) -> PathBuf {
    paths.containers().join(id)
}

pub fn state_dir(paths: &Paths, id: &str) -> PathBuf {
    paths.container_state().join(id)
}

/// Where `--name` claims live: one file per name, created exclusively, holding the id.
fn name_file(paths: &Paths, name: &str) -> PathBuf {
    paths.root.join("names").join(name)
}

/// Docker's rule for names.
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
        bail!("invalid container name {name:?}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*");
    }
    Ok(())
}

/// Takes `name` for container `id`, atomically.
pub fn claim_name(paths: &Paths, name: &str, id: &str) -> Result<()> {
    let file = name_file(paths, name);
    fs::create_dir_all(file.parent().expect("has a parent"))
        .with_context(|| format!("creating {}", paths.root.join("names").display()))?;
    match OpenOptions::new().write(true).create_new(true).open(&file) {
        Ok(mut f) => f
            .write_all(id.as_bytes())
            .with_context(|| format!("writing {}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let owner = fs::read_to_string(&file).unwrap_or_default();
            bail!(
                "the container name {name:?} is already in use by container {:.12}: remove that container or choose another name",
                owner.trim()
            )
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", file.display())),
    }
}

pub fn release_name(paths: &Paths, name: &str) {
    let _ = fs::remove_file(name_file(paths, name));
}

/// Creates both directories with the `image` file and `config.json`.
pub fn create(paths: &Paths, config: &Config) -> Result<()> {
    let dir = dir(paths, &config.id);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write(&dir.join("image"), config.image.as_bytes())?;
    write(
        &dir.join("config.json"),
        &serde_json::to_vec_pretty(config)?,
    )?;
    let state = state_dir(paths, &config.id);
    fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    Ok(())
}

pub fn save_state(paths: &Paths, id: &str, state: &State) -> Result<()> {
    write(
        &state_dir(paths, id).join("state.json"),
        &serde_json::to_vec_pretty(state)?,
    )
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf into its state dir.
/// With the host's network the host's own hosts and resolv.conf are used.
pub fn write_etc(state_dir: &Path, hostname: &str, host_network: bool) -> Result<()> {
    write(
        &state_dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
    )?;
    if host_network {
        let host = fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts(hostname, None));
        write(&state_dir.join("hosts"), host.as_bytes())?;
    } else {
        write_hosts(state_dir, hostname, None)?;
    }
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if host_network {
        host_resolv
    } else {
        resolv_conf(&host_resolv)
    };
    write(&state_dir.join("resolv.conf"), resolv.as_bytes())
}

/// Writes /etc/hosts in place (the container may have it bind-mounted already).
pub fn write_hosts(state_dir: &Path, hostname: &str, address: Option<Ipv4Addr>) -> Result<()> {
    write(
        &state_dir.join("hosts"),
        hosts(hostname, address).as_bytes(),
    )
}

/// Docker's /etc/hosts, with the container's own address line when it has one.
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

/// The host's resolv.conf without loopback nameservers (unreachable from the container's own
/// network namespace); Google's public servers when none is left, as Docker does.
pub fn resolv_conf(host: &str) -> String {
    let is_loopback = |l: &str| {
        l.split_whitespace().nth(1).is_some_and(|a| {
            a.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        })
    };
    let mut out: Vec<&str> = host
        .lines()
        .filter(|l| !(l.trim_start().starts_with("nameserver") && is_loopback(l)))
        .collect();
    let has_server = out.iter().any(|l| l.trim_start().starts_with("nameserver"));
    if !has_server {
        out.extend(["nameserver 8.8.8.8", "nameserver 8.8.4.4"]);
    }
    out.join("\n") + "\n"
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

/// Removes the volatile state dir.
pub fn remove_state(paths: &Paths, id: &str) {
    let dir = state_dir(paths, id);
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
    fn resolv_drops_loopback() {
        let r = resolv_conf("search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n");
        assert_eq!(r, "search lan\nnameserver 10.0.0.1\n");
        assert!(resolv_conf("nameserver ::1\n").contains("8.8.8.8"));
    }

    #[test]
    fn hosts_address_line() {
        assert!(hosts("h", Some(Ipv4Addr::new(10, 88, 0, 2))).ends_with("10.88.0.2\th\n"));
        assert!(!hosts("h", None).contains("\th\n"));
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
    }
}
