//! `network topology`: the tutorials' diagram, drawn from what the kernel and the records hold;
//! what is recorded but missing from the kernel is marked, with the command that restores it.

use std::fmt::Write;

use minibox_netns::Store;

use super::Result;

/// How a recorded object the kernel lacks is marked.
const MISSING: &str = "(MISSING: `minibox network reload` restores it)";
const DETACHED: &str = "(NOT ON THE BRIDGE: `minibox network reload` puts it back)";

pub fn topology(store: &Store) -> Result<String> {
    let links = minibox_netns::links()?;
    let routes = minibox_netns::routes()?;
    let nets = store.networks()?;
    let atts = store.attachments()?;
    let mut out = String::from("host\n");
    // The host's own interfaces other than bridges and veths: where traffic leaves.
    let default_oif = routes
        .iter()
        .find(|(n, _, _)| n.prefix_len() == 0)
        .and_then(|(_, oif, gw)| oif.map(|o| (o, *gw)));
    let ours = |name: &str| name.starts_with("mb-") || nets.iter().any(|n| n.bridge == name);
    for l in links.iter().filter(|l| l.name != "lo" && !ours(&l.name)) {
        let addrs = l
            .addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let default = match default_oif {
            Some((o, Some(gw))) if o == l.index => format!("  default via {gw}"),
            Some((o, None)) if o == l.index => "  default route".to_string(),
            _ => String::new(),
        };
        let _ = writeln!(out, "├── {}  {}  mtu {}{}", l.name, addrs, l.mtu, default);
    }
    for net in &nets {
        let bridge = links.iter().find(|l| l.name == net.bridge);
        let mine: Vec<_> = atts.iter().filter(|a| a.network == net.name).collect();
        let state = match bridge {
            Some(b) => format!("{}/{}  mtu {}", net.gateway, net.subnet.prefix_len(), b.mtu),
            None if !mine.is_empty() => MISSING.to_string(),
            None => "(not created yet: made on first use)".to_string(),
        };
        let _ = writeln!(
            out,
            "├── {}  bridge of network {}  {}",
            net.bridge, net.name, state
        );
        let _ = writeln!(
            out,
            "│   │   NAT: {} leaves masqueraded through the other interfaces",
            net.subnet
        );
        if bridge.is_some() || !mine.is_empty() {
            let lacking = minibox_netns::check_network(net)?;
            if !lacking.is_empty() {
                let _ = writeln!(
                    out,
                    "│   │   firewall MISSING {} (`minibox network reload` restores them)",
                    lacking.join(", ")
                );
            }
        }
        for (i, a) in mine.iter().enumerate() {
            let last = i + 1 == mine.len();
            let (branch, cont) = if last {
                ("└──", "    ")
            } else {
                ("├──", "│   ")
            };
            let present = match links.iter().find(|l| l.name == a.veth) {
                None => format!(" {MISSING}"),
                Some(v) if bridge.is_none() || v.controller != bridge.map(|b| b.index) => {
                    format!(" {DETACHED}")
                }
                Some(_) => String::new(),
            };
            let _ = writeln!(
                out,
                "│   {branch} {}{present} ══ {}  {}/{}  {}  [netns {}]",
                a.veth,
                a.ifname,
                a.address,
                a.prefix_len,
                a.mac,
                a.netns_label()
            );
            let _ = writeln!(out, "│   {cont}     route: default via {}", a.gateway);
            for p in &a.ports {
                let _ = writeln!(
                    out,
                    "│   {cont}     published: {}:{}/{} ─DNAT→ {}:{}",
                    p.host_ip, p.host_port, p.proto, a.address, p.container_port
                );
            }
        }
        if mine.is_empty() {
            let _ = writeln!(out, "│   └── (no containers)");
        }
    }
    out.push_str(match minibox_netns::FirewallDriver::selected()? {
        minibox_netns::FirewallDriver::Nftables => "└── firewall (nftables): table inet minibox: published ports in maps ports4 and anyports4, DNAT in chain published (from prerouting and output), postrouting, forward, input\n",
        minibox_netns::FirewallDriver::Iptables => "└── firewall (iptables): nat MINIBOX-DNAT (from PREROUTING and OUTPUT), MINIBOX-POSTROUTING; filter MINIBOX-FORWARD, MINIBOX-INPUT\n",
    });
    Ok(out)
}
