//! ADD, DEL, CHECK, GC and STATUS over the network library: the same `attach`/`detach` as
//! `minibox run`, keyed by the spec's (network, container id, interface).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::conf::{Command, Env, NetConf};
use super::error::{code, CniError, Result};
use super::{ipam, result};
use crate::netlink::{mac_for, mac_string, Nl};
use crate::ports::{HostPort, PortRequest, Proto};
use crate::{short, Attachment, Endpoint, Explain, Network, Store};

/// What the plugin adds to the library's record: whose attachment it is, for GC and for the
/// delegated IPAM plugin's DEL.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
    network: String,
    ipam: Option<String>,
}

/// The attachment's id: the spec's primary key, hashed into the library's id form (64 hex
/// digits, the first 12 naming the veth and tagging the rules).
fn key(network: &str, container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{network}/{container_id}/{ifname}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn record_path(store: &Store, id: &str) -> PathBuf {
    store.run_dir().join("cni").join(format!("{id}.json"))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> CniError {
    move |e| CniError::new(code::IO_FAILURE, format!("{what}: {e}"))
}

fn save_record(store: &Store, id: &str, rec: &Record) -> Result<()> {
    let path = record_path(store, id);
    let dir = path.parent().expect("a record has a directory");
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(rec).expect("a record serialises"))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(io(format!("writing {}", path.display())))
}

fn load_record(store: &Store, id: &str) -> Option<Record> {
    let data = std::fs::read(record_path(store, id)).ok()?;
    serde_json::from_slice(&data).ok()
}

fn remove_record(store: &Store, id: &str) -> Result<()> {
    match std::fs::remove_file(record_path(store, id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io("removing a CNI record".into())(e))
        }
        _ => Ok(()),
    }
}

/// The network the configuration names: an existing one must agree with what the
/// configuration says of it; a new one is defined from it.
fn network(store: &Store, conf: &NetConf) -> Result<Network> {
    let clash = |what: &str, have: String, want: String| {
        CniError::new(
            code::INVALID_CONFIG,
            format!(
                "network {} exists with {what} {have}, not {want}: use another name",
                conf.name
            ),
        )
    };
    match store.network(&conf.name) {
        Ok(net) => {
            if let Some(subnet) = conf.subnet.filter(|s| s.trunc() != net.subnet) {
                return Err(clash("subnet", net.subnet.to_string(), subnet.to_string()));
            }
            if let Some(bridge) = conf.bridge.as_ref().filter(|b| **b != net.bridge) {
                return Err(clash("bridge", net.bridge.clone(), bridge.clone()));
            }
            Ok(net)
        }
        Err(crate::Error::UnknownNetwork(_)) => {
            let subnet = conf.subnet.ok_or_else(|| {
                CniError::new(
                    code::INVALID_CONFIG,
                    format!(
                        "network {} is new: its configuration needs a subnet",
                        conf.name
                    ),
                )
            })?;
            let gateway: Vec<String> = conf.gateway.iter().map(|g| g.to_string()).collect();
            match crate::create_network(
                store,
                &conf.name,
                conf.bridge.as_deref(),
                &[subnet.to_string()],
                &gateway,
                false,
            ) {
                // Another ADD defined it meanwhile.
                Err(crate::Error::NetworkExists(_)) => Ok(store.network(&conf.name)?),
                other => Ok(other?),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn port_requests(conf: &NetConf) -> Result<Vec<PortRequest>> {
    conf.runtime_config
        .port_mappings
        .iter()
        .filter(|p| p.host_port != 0)
        .map(|p| {
            let bad = |why: String| CniError::new(code::INVALID_CONFIG, why);
            let host_ip = match p.host_ip.as_str() {
                "" | "0.0.0.0" => None,
                ip => Some(std::net::IpAddr::V4(ip.parse::<Ipv4Addr>().map_err(|_| {
                    bad(format!(
                        "portMappings: hostIP {ip:?} is not an IPv4 address (minibox-cni publishes on IPv4 only)"
                    ))
                })?)),
            };
            let proto: Proto = p
                .protocol
                .parse()
                .map_err(|e| bad(format!("portMappings: {e}")))?;
            if p.container_port == 0 {
                return Err(bad("portMappings: containerPort must be 1-65535".into()));
            }
            Ok(PortRequest {
                host_ip,
                host: HostPort::Fixed(p.host_port),
                container: p.container_port,
                proto,
            })
        })
        .collect()
}

pub fn add(store: &Store, env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<Value> {
    let netns = env.netns.as_ref().expect("checked for ADD");
    if !netns.exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network namespace {} does not exist", netns.display()),
        ));
    }
    let net = network(store, conf)?;
    let id = key(&net.name, &env.container_id, &env.ifname);
    let publish = port_requests(conf)?;
    let delegated = conf.ipam_type().map(str::to_string);
    let rec = Record {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        network: net.name.clone(),
        ipam: delegated.clone(),
    };
    // Written first: a DEL after a crash anywhere below finds what to release.
    save_record(store, &id, &rec)?;
    let made = (|| -> Result<Attachment> {
        let address = match &delegated {
            Some(kind) => Some(delegated_address(env, kind, stdin)?),
            None => None,
        };
        let ep = Endpoint {
            netns,
            ifname: &env.ifname,
            address,
            address6: None,
            mtu: conf.mtu,
            hairpin: conf.hairpin_mode,
            dns: None,
            mac: None,
            default_route: true,
        };
        let ready = crate::ensure_network(store, &Explain::off(), &net.name)?;
        Ok(crate::attach(store, &Explain::off(), &id, &ep, ready, &publish)?.serve())
    })();
    match made {
        Ok(att) => Ok(result_for(conf, &net, &att, netns.display().to_string())),
        // The runtime must not ADD twice: the first attachment and its records stay.
        Err(e) if matches!(e.code, code::ALREADY_ATTACHED) => Err(e),
        Err(e) => {
            if let Some(kind) = &delegated {
                let _ = ipam::delegate(env, kind, Command::Del, stdin);
            }
            let _ = remove_record(store, &id);
            Err(e)
        }
    }
}

/// The IPv4 address the delegated IPAM plugin hands out.
fn delegated_address(env: &Env, kind: &str, stdin: &[u8]) -> Result<Ipv4Addr> {
    let answer = ipam::delegate(env, kind, Command::Add, stdin)?.unwrap_or(Value::Null);
    let (cidr, _gateway) = result::ipam_address(&answer).ok_or_else(|| {
        CniError::new(
            code::IPAM,
            format!("IPAM plugin {kind} gave no IPv4 address: {answer}"),
        )
    })?;
    let addr = cidr.split('/').next().unwrap_or_default();
    addr.parse()
        .map_err(|_| CniError::new(code::IPAM, format!("IPAM plugin {kind} gave {cidr:?}")))
}

fn result_for(conf: &NetConf, net: &Network, att: &Attachment, sandbox: String) -> Value {
    let veth_mac = Nl::new(None)
        .ok()
        .and_then(|nl| nl.link(&att.veth).ok().flatten())
        .and_then(|l| l.mac)
        .unwrap_or_default();
    let made = result::Made {
        bridge: &net.bridge,
        bridge_mac: &mac_string(&mac_for(net.gateway)),
        veth: &att.veth,
        veth_mac: &veth_mac,
        ifname: &att.ifname,
        mac: &att.mac,
        sandbox: &sandbox,
        address: format!("{}/{}", att.address, att.prefix_len),
        gateway: att.gateway.to_string(),
        mtu: att.mtu,
    };
    result::add(conf.prev_result.as_ref(), &made, &conf.cni_version)
}

/// Releases everything of the attachment, whatever is left of it; an unknown one is fine.
pub fn del(store: &Store, env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<()> {
    let id = key(&conf.name, &env.container_id, &env.ifname);
    remove(store, env, &id, stdin)
}

/// The kernel's part of a teardown (a grace period per nf_tables commit that deletes, the veth's
/// unregistering) is finished by a background process that holds the network lock, as after a
/// `minibox run`: whoever needs the lock next (an ADD, a CHECK) waits for it to be done.
fn remove(store: &Store, env: &Env, id: &str, stdin: &[u8]) -> Result<()> {
    if let Some(teardown) = crate::start_detach(store, id)? {
        teardown.finish_in_background(store, || {})?;
    }
    let rec = load_record(store, id);
    if let Some(kind) = rec.as_ref().and_then(|r| r.ipam.as_deref()) {
        ipam::delegate(env, kind, Command::Del, stdin)?;
    }
    remove_record(store, id)
}

/// Verifies the attachment: record, veth on the bridge, the address inside, the rules.
pub fn check(store: &Store, env: &Env, conf: &NetConf) -> Result<()> {
    if conf.prev_result.is_none() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult",
        ));
    }
    let id = key(&conf.name, &env.container_id, &env.ifname);
    let att = store.attachment(&id)?.ok_or_else(|| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("{} is not attached to {}", env.container_id, conf.name),
        )
    })?;
    let missing = crate::check(store, &att)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::IO_FAILURE,
            format!(
                "{} on {}: missing {}",
                short(&id),
                conf.name,
                missing.join(", ")
            ),
        ))
    }
}

/// Removes the plugin's attachments on this network that the runtime no longer lists.
pub fn gc(store: &Store, env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<()> {
    let valid: Vec<String> = conf
        .valid_attachments
        .iter()
        .map(|v| key(&conf.name, &v.container_id, &v.ifname))
        .collect();
    let dir = store.run_dir().join("cni");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
    };
    let mut failed = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let ours = load_record(store, id).is_some_and(|r| r.network == conf.name);
        if ours && !valid.iter().any(|v| v == id) {
            if let Err(e) = remove(store, env, id, stdin) {
                failed.push(format!("{}: {}", short(id), e.msg));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::IO_FAILURE,
            format!("GC: {}", failed.join("; ")),
        ))
    }
}

/// Ready when the store can be locked and the network is usable.
pub fn status(store: &Store, conf: &NetConf) -> Result<()> {
    let not_ready = |why: String| CniError::new(code::NOT_AVAILABLE, why);
    drop(store.lock().map_err(|e| not_ready(e.to_string()))?);
    match store.network(&conf.name) {
        Ok(_) | Err(crate::Error::UnknownNetwork(_)) => Ok(()),
        Err(e) => Err(not_ready(e.to_string())),
    }
}
