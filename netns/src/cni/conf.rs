//! What a runtime hands a CNI plugin: the environment (`CNI_*`) and the network configuration on
//! stdin, checked before anything is touched.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Deserialize;

use super::error::{code, CniError, Result};

/// The spec versions this plugin speaks; results of 0.3.x and 0.4.0 carry `ips[].version`.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

/// The `CNI_*` variables of one call.
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and checks the variables the command needs (DEL may lack the netns: the runtime
    /// may call it after the namespace is gone).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Env> {
        let bad = |name: &str, why: &str| CniError::new(code::INVALID_ENV, format!("{name} {why}"));
        let command = match var("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            Some("GC") => Command::Gc,
            Some("STATUS") => Command::Status,
            Some(other) => return Err(bad("CNI_COMMAND", &format!("{other:?} is unknown"))),
            None => return Err(bad("CNI_COMMAND", "is not set")),
        };
        let path = var("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        let mut env = Env {
            command,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            path,
        };
        if !matches!(command, Command::Add | Command::Del | Command::Check) {
            return Ok(env);
        }
        env.container_id =
            var("CNI_CONTAINERID").ok_or_else(|| bad("CNI_CONTAINERID", "is not set"))?;
        if !valid_container_id(&env.container_id) {
            return Err(bad(
                "CNI_CONTAINERID",
                "must start with a letter or digit, then letters, digits, '_', '.' or '-'",
            ));
        }
        env.ifname = var("CNI_IFNAME").ok_or_else(|| bad("CNI_IFNAME", "is not set"))?;
        if !valid_ifname(&env.ifname) {
            return Err(bad(
                "CNI_IFNAME",
                "must be 1 to 15 characters, not . or .., without '/', ':' or spaces",
            ));
        }
        env.netns = var("CNI_NETNS")
            .filter(|n| !n.is_empty())
            .map(PathBuf::from);
        if env.netns.is_none() && command != Command::Del {
            return Err(bad("CNI_NETNS", "is not set"));
        }
        Ok(env)
    }
}

fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn yes() -> bool {
    true
}

/// The network configuration: the spec's fields and this plugin's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    /// The minibox network to join; defined from `bridge`/`subnet`/`gateway` when new.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub bridge: Option<String>,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    #[serde(default = "yes")]
    pub is_gateway: bool,
    #[serde(default = "yes")]
    pub ip_masq: bool,
    pub mtu: Option<u32>,
    #[serde(default = "yes")]
    pub hairpin_mode: bool,
    /// A delegated IPAM plugin (`{"type": "host-local", ...}`); absent: minibox's own.
    pub ipam: Option<serde_json::Value>,
    /// Where the network records live: the minibox CLI's by default, so both share one
    /// address space and bridge without collisions.
    pub root: Option<PathBuf>,
    pub runroot: Option<PathBuf>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<serde_json::Value>,
    /// GC (1.1.0): the attachments the runtime still knows.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Vec<ValidAttachment>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMap>,
}

/// One entry of the `portMappings` capability. Go runtimes decode these keys without regard to
/// case, and containerd's CRI sends them so (`HostPort`, `ContainerPort`, ...): both are read.
#[derive(Debug, Clone, Deserialize)]
pub struct PortMap {
    /// 0: no host port.
    #[serde(rename = "hostPort", alias = "HostPort", alias = "hostport", default)]
    pub host_port: u16,
    #[serde(
        rename = "containerPort",
        alias = "ContainerPort",
        alias = "containerport"
    )]
    pub container_port: u16,
    #[serde(rename = "protocol", alias = "Protocol", default = "tcp")]
    pub protocol: String,
    #[serde(
        rename = "hostIP",
        alias = "HostIP",
        alias = "hostIp",
        alias = "hostip",
        default
    )]
    pub host_ip: String,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// Parses stdin and checks the version against what `command` needs.
    pub fn parse(stdin: &[u8], command: Command) -> Result<NetConf> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(code::DECODE_FAILURE, "decoding the network configuration")
                .with_details(e.to_string())
        })?;
        let version = conf.cni_version.as_str();
        if !SUPPORTED.contains(&version) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {version:?} is not supported (supported: {})",
                    SUPPORTED.join(", ")
                ),
            ));
        }
        let needs = match command {
            Command::Check => Some("0.4.0"),
            Command::Gc | Command::Status => Some("1.1.0"),
            _ => None,
        };
        if let Some(min) = needs {
            if version_key(version) < version_key(min) {
                return Err(CniError::new(
                    code::INCOMPATIBLE_VERSION,
                    format!("{command:?} needs cniVersion {min} or later, not {version}"),
                ));
            }
        }
        if conf.name.is_empty() || !crate::store::valid_name(&conf.name) {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("network name {:?} is not valid", conf.name),
            ));
        }
        if !conf.ip_masq {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "ipMasq false is not supported: a minibox network always masquerades what leaves it",
            ));
        }
        if !conf.is_gateway {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "isGateway false is not supported: the bridge is always the gateway",
            ));
        }
        Ok(conf)
    }

    /// The delegated IPAM plugin's type, when it is not minibox's own.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .and_then(|i| i.get("type"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty() && *t != "minibox")
    }
}

/// `1.0.0` → (1, 0, 0), for ordering.
pub fn version_key(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<Env> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_id_netns_and_ifname() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ]);
        assert_eq!(e.unwrap_err().code, code::INVALID_ENV);
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(e.path.len(), 2);
        // DEL may come after the namespace is gone.
        env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        // VERSION needs nothing else.
        env(&[("CNI_COMMAND", "VERSION")]).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        for (id, ifname) in [
            ("-c", "eth0"),
            ("c/1", "eth0"),
            ("c", "a:b"),
            ("c", "waytoolongifname0"),
            ("c", ".."),
        ] {
            let e = env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", id),
                ("CNI_IFNAME", ifname),
                ("CNI_NETNS", "/x"),
            ]);
            assert_eq!(e.unwrap_err().code, code::INVALID_ENV, "{id} {ifname}");
        }
        assert_eq!(
            env(&[("CNI_COMMAND", "FROB")]).unwrap_err().code,
            code::INVALID_ENV
        );
    }

    #[test]
    fn versions_are_checked() {
        let conf = |v: &str| format!(r#"{{"cniVersion":"{v}","name":"n","type":"minibox-cni"}}"#);
        assert_eq!(
            NetConf::parse(conf("0.2.0").as_bytes(), Command::Add)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            NetConf::parse(conf("0.3.1").as_bytes(), Command::Check)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            NetConf::parse(conf("1.0.0").as_bytes(), Command::Gc)
                .unwrap_err()
                .code,
            code::INCOMPATIBLE_VERSION
        );
        NetConf::parse(conf("1.1.0").as_bytes(), Command::Gc).unwrap();
        assert_eq!(
            NetConf::parse(b"{not json", Command::Add).unwrap_err().code,
            code::DECODE_FAILURE
        );
    }

    #[test]
    fn port_mappings_and_ipam_are_read() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"minibox-cni","subnet":"10.9.0.0/24",
                "ipam":{"type":"host-local"},
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]}}"#,
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.runtime_config.port_mappings[0].host_ip, "127.0.0.1");
        // containerd's CRI writes Go's field names.
        let cri: PortMap = serde_json::from_str(
            r#"{"HostPort":18085,"ContainerPort":80,"Protocol":"tcp","HostIP":""}"#,
        )
        .unwrap();
        assert_eq!((cri.host_port, cri.container_port), (18085, 80));
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert!(c.ip_masq && c.hairpin_mode);
    }
}
