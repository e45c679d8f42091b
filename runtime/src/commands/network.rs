//! `minibox network ...` and `minibox port`.

use anyhow::{bail, Result};
use minibox_netns::{Attachment, Proto};

use crate::cli::{Global, NetworkCommand, ObjectType, PortArgs};
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
            ipv6,
        } => {
            let net = minibox_netns::create_network(&store, &name, None, &subnet, &gateway, ipv6)?;
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
        NetworkCommand::Inspect { format, networks } => {
            return super::inspect::inspect(
                paths,
                global.explain,
                Some(ObjectType::Network),
                &networks,
                format.as_deref(),
            );
        }
        NetworkCommand::Rm { networks } => {
            let ex = explainer(global.explain);
            for name in networks {
                settle_attached(paths, global.explain, Some(&name))?;
                minibox_netns::remove_network(&store, &ex, &name)?;
                println!("{name}");
            }
        }
        NetworkCommand::Connect {
            network,
            container,
            alias,
            ip,
            ip6,
        } => connect(
            paths,
            global,
            &network,
            &container,
            &alias,
            (ip.as_deref(), ip6.as_deref()),
        )?,
        NetworkCommand::Disconnect { network, container } => {
            let id = super::resolve(paths, global.explain, &container)?;
            if store.attachment(&id)?.is_some_and(|a| a.network == network) {
                bail!("container {container} has {network} as its first network (eth0): it stays connected while it runs");
            }
            let connected = network::disconnect(paths, global.explain, &id, &network)?;
            let mut config = state::load_config(paths, &id)?;
            let kept = config.names.more_networks.len();
            config.names.more_networks.retain(|n| n != &network);
            config.names.connected.remove(&network);
            if config.names.more_networks.len() != kept {
                state::write_config(paths, &config)?;
            } else if !connected {
                bail!("container {container} is not connected to network {network}");
            }
        }
        NetworkCommand::Prune { force: _ } => {
            let ex = explainer(global.explain);
            settle_attached(paths, global.explain, None)?;
            let used: std::collections::HashSet<String> = store
                .attachments()?
                .into_iter()
                .map(|a| a.network)
                .collect();
            let mut deleted = Vec::new();
            for net in store.networks()? {
                if net.name == minibox_netns::DEFAULT_NETWORK || used.contains(&net.name) {
                    continue;
                }
                // A container attached meanwhile keeps its network (refused under the lock).
                match minibox_netns::remove_network(&store, &ex, &net.name) {
                    Ok(()) => deleted.push(net.name),
                    Err(minibox_netns::Error::InUse { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if !deleted.is_empty() {
                println!("Deleted Networks:\n{}", deleted.join("\n"));
            }
        }
        NetworkCommand::Topology { format } => {
            let topology = network::topology::gather(paths, &store)?;
            print!("{}", network::topology::render(&topology, &format));
        }
        NetworkCommand::Reload { networks } => {
            let ex = explainer(global.explain);
            // What it rebuilds must belong to containers that live.
            match networks.as_slice() {
                [] => settle_attached(paths, global.explain, None)?,
                names => {
                    for name in names {
                        settle_attached(paths, global.explain, Some(name))?;
                    }
                }
            }
            for net in minibox_netns::reload(&store, &ex, &networks)? {
                println!("{}", net.name);
            }
        }
    }
    Ok(0)
}

/// Recovers the containers on `network` (on any: `None`) whose owner died: what they hold there
/// is in the way of the command.
fn settle_attached(paths: &Paths, explain: bool, network: Option<&str>) -> Result<()> {
    for id in network::attached(&store(paths), network)? {
        crate::container::lifecycle::settle(paths, explain, &id);
    }
    Ok(())
}

/// `network connect`: the next free `eth<n>` of a running container, with its names (and
/// `--alias`es) on the network's DNS.
fn connect(
    paths: &Paths,
    global: &Global,
    network: &str,
    container: &str,
    aliases: &[String],
    (ip, ip6): (Option<&str>, Option<&str>),
) -> Result<()> {
    let store = store(paths);
    let net = store.network(network)?;
    let id = super::resolve(paths, global.explain, container)?;
    let checked = network::Flags {
        aliases,
        ip6,
        ..network::Flags::default()
    };
    let ip6 = network::Names::parse(&checked, &network::Mode::Bridge(network.into()))?.ip6;
    let Some(first) = store.attachment(&id)? else {
        bail!("container {container} is not running on a bridge network: start it first");
    };
    let more = network::more_networks(&store, &id)?;
    if first.network == network || more.iter().any(|(_, a)| a.network == network) {
        bail!("container {container} is already connected to network {network}");
    }
    let ip = ip
        .map(|ip| {
            let ip: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid --ip {ip:?}: expected an IPv4 address"))?;
            if !net.subnet.contains(&ip) {
                bail!(
                    "--ip {ip} is outside {network}'s subnet {}: choose an address inside it",
                    net.subnet
                );
            }
            Ok(ip)
        })
        .transpose()?;
    let Some(n) = (1..network::MAX_NETWORKS).find(|n| more.iter().all(|(m, _)| m != n)) else {
        bail!(
            "container {container} is on {} networks already",
            network::MAX_NETWORKS
        );
    };
    let mut config = state::load_config(paths, &id)?;
    let mut dns = config.names.endpoint(config.name.as_deref(), &id);
    dns.names.extend(aliases.iter().cloned());
    network::connect(paths, global.explain, &id, network, n, (ip, ip6), Some(dns))?;
    // Kept for the next start with its options, as Docker keeps a connected network.
    if !config.names.more_networks.iter().any(|n| n == network) {
        config.names.more_networks.push(network.to_string());
    }
    let connected = network::Connected {
        aliases: aliases.to_vec(),
        ip,
        ip6,
    };
    if connected == network::Connected::default() {
        config.names.connected.remove(network);
    } else {
        config
            .names
            .connected
            .insert(network.to_string(), connected);
    }
    Ok(state::write_config(paths, &config)?)
}

/// The `inspect` document of network `name`, its containers by their names as Docker shows
/// them.
pub(super) fn document(paths: &Paths, name: &str) -> Result<serde_json::Value> {
    let store = store(paths);
    let mut v = network::inspect(&store, &store.network(name)?)?;
    if let Some(containers) = v["Containers"].as_object_mut() {
        for (id, c) in containers.iter_mut() {
            if let Some(n) = container_name(paths, id) {
                c["Name"] = n.into();
            }
        }
    }
    Ok(v)
}

/// `minibox port C [PORT[/PROTO]]`, in Docker's format.
pub fn port(paths: &Paths, args: PortArgs) -> Result<u8> {
    let att = find(paths, &args.container)?;
    let ports = att.map(|a| a.ports).unwrap_or_default();
    match args.port {
        None => {
            for m in &ports {
                println!("{}/{} -> {}", m.container_port, m.proto, m.host());
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
                println!("{}", m.host());
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
