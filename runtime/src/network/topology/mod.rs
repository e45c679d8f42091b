//! `network topology`: the tutorials' figure of the host, drawn from what the kernel and the
//! records hold: the host's own interfaces, each bridge with its veth pairs, the containers'
//! namespaces (by name) with their addresses and published ports, and the containers that have
//! no bridge (`--network none`, `host`). Gathered once ([`gather`]), drawn as text (here), as a
//! Graphviz graph ([`dot`]) or as an SVG picture minibox lays out itself ([`svg`]). What is
//! recorded but missing from the kernel is marked, with the command that restores it.

mod dot;
mod svg;

use std::fmt::Write;

use minibox_netns::{Attachment, FirewallDriver, Network, Store};

use crate::container::state::{self, Status};
use crate::network::Result;
use crate::paths::Paths;

/// How a recorded object the kernel lacks is marked.
const MISSING: &str = "(MISSING: `minibox network reload` restores it)";
const DETACHED: &str = "(NOT ON THE BRIDGE: `minibox network reload` puts it back)";

/// What the picture shows.
pub struct Topology {
    /// The host's interfaces that are not minibox's: where traffic leaves.
    pub uplinks: Vec<Uplink>,
    pub networks: Vec<Bridge>,
    /// Running containers without a bridge: (name, `none` or `host`).
    pub unbridged: Vec<(String, String)>,
    pub firewall: FirewallDriver,
}

pub struct Uplink {
    pub name: String,
    pub addrs: Vec<String>,
    pub mtu: u32,
    /// `default via GW` when the default route leaves here.
    pub default: Option<String>,
}

pub struct Bridge {
    pub net: Network,
    /// `None` until the first container joins the network (or when it was deleted).
    pub mtu: Option<u32>,
    pub members: Vec<Member>,
    /// The network's firewall rules the kernel lacks.
    pub lacking: Vec<String>,
}

pub struct Member {
    /// The container's name (its short id when it has none, e.g. a CNI pod's).
    pub name: String,
    pub att: Attachment,
    pub veth: Veth,
}

/// Where the host end of a container's veth is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Veth {
    OnBridge,
    Detached,
    Missing,
}

/// Reads the host and the records.
pub fn gather(paths: &Paths, store: &Store) -> Result<Topology> {
    let links = minibox_netns::links()?;
    let routes = minibox_netns::routes()?;
    let nets = store.networks()?;
    let atts = store.attachments()?;
    let default_oif = routes
        .iter()
        .find(|(n, _, _)| n.prefix_len() == 0)
        .and_then(|(_, oif, gw)| oif.map(|o| (o, *gw)));
    let ours = |name: &str| name.starts_with("mb-") || nets.iter().any(|n| n.bridge == name);
    let uplinks = links
        .iter()
        .filter(|l| l.name != "lo" && !ours(&l.name))
        .map(|l| Uplink {
            name: l.name.clone(),
            addrs: l.addrs.iter().map(|a| a.to_string()).collect(),
            mtu: l.mtu,
            default: match default_oif {
                Some((o, Some(gw))) if o == l.index => Some(format!("default via {gw}")),
                Some((o, None)) if o == l.index => Some("default route".into()),
                _ => None,
            },
        })
        .collect();
    let name_of = |id: &str| {
        state::load_state(paths, id)
            .ok()
            .and_then(|s| s.name)
            .unwrap_or_else(|| minibox_netns::short(id).to_string())
    };
    let firewall = FirewallDriver::selected()?;
    let mut networks = Vec::new();
    for net in nets {
        let bridge = links.iter().find(|l| l.name == net.bridge);
        let members: Vec<Member> = atts
            .iter()
            .filter(|a| a.network == net.name)
            .map(|a| Member {
                name: name_of(&a.id),
                veth: match links.iter().find(|l| l.name == a.veth) {
                    None => Veth::Missing,
                    Some(v) if bridge.is_none() || v.controller != bridge.map(|b| b.index) => {
                        Veth::Detached
                    }
                    Some(_) => Veth::OnBridge,
                },
                att: a.clone(),
            })
            .collect();
        let lacking = match bridge.is_some() || !members.is_empty() {
            true => minibox_netns::check_network(firewall, &net)?,
            false => Vec::new(),
        };
        networks.push(Bridge {
            mtu: bridge.map(|l| l.mtu),
            members,
            lacking,
            net,
        });
    }
    let mut unbridged = Vec::new();
    for id in state::ids(paths) {
        let (Ok(st), Ok(config)) = (
            state::load_state(paths, &id),
            state::load_config(paths, &id),
        ) else {
            continue;
        };
        if st.status == Status::Running && matches!(config.network.as_str(), "none" | "host") {
            unbridged.push((name_of(&id), config.network));
        }
    }
    unbridged.sort();
    Ok(Topology {
        uplinks,
        networks,
        unbridged,
        firewall,
    })
}

/// How `--format` draws it.
pub fn render(t: &Topology, format: &str) -> String {
    match format {
        "dot" => dot::render(t),
        "svg" => svg::render(t),
        _ => text(t),
    }
}

/// A container's line of text: its veth pair, address and namespace.
fn member_line(m: &Member) -> String {
    let a = &m.att;
    let missing = match m.veth {
        Veth::OnBridge => String::new(),
        Veth::Detached => format!(" {DETACHED}"),
        Veth::Missing => format!(" {MISSING}"),
    };
    format!(
        "{}{missing} ══ {}  {}/{}  {}  [netns {}]  {}",
        a.veth,
        a.ifname,
        a.address,
        a.prefix_len,
        a.mac,
        a.netns_label(),
        m.name
    )
}

fn text(t: &Topology) -> String {
    let mut out = String::from("host\n");
    for u in &t.uplinks {
        let default = u
            .default
            .as_ref()
            .map(|d| format!("  {d}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "├── {}  {}  mtu {}{default}",
            u.name,
            u.addrs.join(" "),
            u.mtu
        );
    }
    for b in &t.networks {
        let net = &b.net;
        let state = match b.mtu {
            Some(mtu) => format!("{}/{}  mtu {mtu}", net.gateway, net.subnet.prefix_len()),
            None if !b.members.is_empty() => MISSING.to_string(),
            None => "(not created yet: made on first use)".to_string(),
        };
        let _ = writeln!(
            out,
            "├── {}  bridge of network {}  {state}",
            net.bridge, net.name
        );
        let _ = writeln!(
            out,
            "│   │   NAT: {} leaves masqueraded through the other interfaces",
            net.subnet
        );
        if !b.lacking.is_empty() {
            let _ = writeln!(
                out,
                "│   │   firewall MISSING {} (`minibox network reload` restores them)",
                b.lacking.join(", ")
            );
        }
        for (i, m) in b.members.iter().enumerate() {
            let (branch, cont) = match i + 1 == b.members.len() {
                true => ("└──", "    "),
                false => ("├──", "│   "),
            };
            let _ = writeln!(out, "│   {branch} {}", member_line(m));
            let _ = writeln!(out, "│   {cont}     route: default via {}", m.att.gateway);
            for p in &m.att.ports {
                let _ = writeln!(
                    out,
                    "│   {cont}     published: {}:{}/{} ─DNAT→ {}:{}",
                    p.host_ip, p.host_port, p.proto, m.att.address, p.container_port
                );
            }
        }
        if b.members.is_empty() {
            let _ = writeln!(out, "│   └── (no containers)");
        }
    }
    for (name, mode) in &t.unbridged {
        let what = match mode.as_str() {
            "host" => "the host's own network stack",
            _ => "a network namespace of its own, loopback only",
        };
        let _ = writeln!(out, "├── {name}  --network {mode}: {what}");
    }
    out.push_str(match t.firewall {
        FirewallDriver::Nftables => "└── firewall (nftables): table inet minibox: published ports in maps ports4 and anyports4, DNAT in chain published (from prerouting and output), postrouting, forward, input\n",
        FirewallDriver::Iptables => "└── firewall (iptables): nat MINIBOX-DNAT (from PREROUTING and OUTPUT), MINIBOX-POSTROUTING; filter MINIBOX-FORWARD, MINIBOX-INPUT\n",
    });
    out
}
