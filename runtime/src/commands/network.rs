//! `minibox network ...` and `minibox port`.

use anyhow::{bail, Result};
use minibox_netns::{Attachment, Proto};

use crate::cli::{Global, NetworkCommand, PortArgs};
use crate::container::state;
use crate::network::{self, explainer, store};
use crate::paths::Paths;

pub fn network(paths: &Paths, global: &Global, cmd: NetworkCommand) -> Result<u8> {
    let store = store(paths);
    match cmd {
        NetworkCommand::Create {
            name,
            subnet,
            gateway,
        } => {
            let net =
                minibox_netns::create_network(&store, &name, None, &subnet, gateway.as_deref())?;
            explainer(global.explain).note(|| {
                format!(
                    "network {name} ({}, bridge {}) is recorded only: the host changes when a \
                     container first joins it (see --explain run --network {name})",
                    net.subnet, net.bridge
                )
            });
            println!("{}", net.id);
        }
        NetworkCommand::Ls => {
            let mut rows = vec![[
                "NETWORK ID",
                "NAME",
                "DRIVER",
                "BRIDGE",
                "SUBNET",
                "GATEWAY",
            ]
            .map(String::from)];
            for n in store.networks()? {
                rows.push([
                    minibox_netns::short(&n.id).to_string(),
                    n.name,
                    "bridge".into(),
                    n.bridge,
                    n.subnet.to_string(),
                    n.gateway.to_string(),
                ]);
            }
            print!("{}", super::table::render(&rows));
        }
        NetworkCommand::Inspect { networks } => {
            let mut all = Vec::new();
            for name in networks {
                let mut v = network::inspect(&store, &store.network(&name)?)?;
                // Containers by their names, as Docker shows them.
                if let Some(containers) = v["Containers"].as_object_mut() {
                    for (id, c) in containers.iter_mut() {
                        if let Some(n) = container_name(paths, id) {
                            c["Name"] = n.into();
                        }
                    }
                }
                all.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        NetworkCommand::Rm { networks } => {
            let ex = explainer(global.explain);
            for name in networks {
                minibox_netns::remove_network(&store, &ex, &name)?;
                println!("{name}");
            }
        }
        NetworkCommand::Topology { format } => {
            let topology = network::topology::gather(paths, &store)?;
            print!("{}", network::topology::render(&topology, &format));
        }
    }
    Ok(0)
}

/// `minibox port C [PORT[/PROTO]]`, in Docker's format.
pub fn port(paths: &Paths, args: PortArgs) -> Result<u8> {
    let att = find(paths, &args.container)?;
    let ports = att.map(|a| a.ports).unwrap_or_default();
    match args.port {
        None => {
            for m in &ports {
                println!(
                    "{}/{} -> {}:{}",
                    m.container_port, m.proto, m.host_ip, m.host_port
                );
            }
        }
        Some(spec) => {
            let (port, proto) = match spec.split_once('/') {
                Some((p, proto)) => (p, proto.parse::<Proto>().map_err(anyhow::Error::msg)?),
                None => (spec.as_str(), Proto::Tcp),
            };
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow::anyhow!("{spec:?} is not a port"))?;
            let found: Vec<_> = ports
                .iter()
                .filter(|m| m.container_port == port && m.proto == proto)
                .collect();
            if found.is_empty() {
                bail!(
                    "no public port '{port}/{proto}' published for {}",
                    args.container
                );
            }
            for m in found {
                println!("{}:{}", m.host_ip, m.host_port);
            }
        }
    }
    Ok(0)
}

/// The `--name` recorded in a container's config.json, when it has one.
fn container_name(paths: &Paths, id: &str) -> Option<String> {
    state::load_config(paths, id).ok()?.name
}

/// A container's network attachment, the container found by name, full id or unique id prefix
/// as every command finds it.
fn find(paths: &Paths, container: &str) -> Result<Option<Attachment>> {
    let id = state::resolve(paths, container)?;
    Ok(store(paths).attachment(&id)?)
}
