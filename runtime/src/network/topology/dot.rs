//! The topology as a Graphviz graph (`--format dot`; `dot -Tsvg` draws it): the host as a
//! cluster with its interfaces and bridges, each container's namespace as a cluster of its own
//! joined to its bridge by its veth pair, published ports as the host's entry points.

use std::fmt::Write;

use super::Topology;

/// A double-quoted Graphviz string (newlines as its `\n`).
fn q(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

pub fn render(t: &Topology) -> String {
    let mut g = String::from(
        "graph minibox {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n  edge [fontname=\"monospace\", fontsize=9];\n  subgraph cluster_host {\n    label=\"host\";\n",
    );
    for u in &t.uplinks {
        let mut label = format!("{}\n{}\nmtu {}", u.name, u.addrs.join(" "), u.mtu);
        if let Some(d) = &u.default {
            label.push_str(&format!("\n{d}"));
        }
        let _ = writeln!(
            g,
            "    {} [label={}];",
            q(&format!("if:{}", u.name)),
            q(&label)
        );
    }
    for b in &t.networks {
        let n = &b.net;
        let _ = writeln!(
            g,
            "    {} [shape=box, style=filled, fillcolor=\"#dde8f6\", label={}];",
            q(&format!("br:{}", n.bridge)),
            q(&format!(
                "{} (bridge of network {})\n{}/{}  NAT {} out",
                n.bridge,
                n.name,
                n.gateway,
                n.subnet.prefix_len(),
                n.subnet
            ))
        );
        for m in &b.members {
            for p in &m.att.ports {
                let _ = writeln!(
                    g,
                    "    {} [shape=cds, label={}];",
                    q(&format!("port:{}:{}", p.proto, p.host_port)),
                    q(&format!("{}:{}/{}", p.host_ip, p.host_port, p.proto))
                );
            }
        }
    }
    g.push_str("  }\n");
    for b in &t.networks {
        for m in &b.members {
            let a = &m.att;
            let ns = format!("ns:{}", a.netns_label());
            let _ = writeln!(
                g,
                "  subgraph {} {{\n    label={};\n    {} [label={}];\n  }}",
                q(&format!("cluster_{}", a.netns_label())),
                q(&format!("{} [netns {}]", m.name, a.netns_label())),
                q(&ns),
                q(&format!(
                    "{}  {}/{}\n{}\ndefault via {}",
                    a.ifname, a.address, a.prefix_len, a.mac, a.gateway
                ))
            );
            let _ = writeln!(
                g,
                "  {} -- {} [label={}];",
                q(&format!("br:{}", b.net.bridge)),
                q(&ns),
                q(&format!("{} ══ {}", a.veth, a.ifname))
            );
            for p in &a.ports {
                let _ = writeln!(
                    g,
                    "  {} -- {} [style=dashed, label={}];",
                    q(&format!("port:{}:{}", p.proto, p.host_port)),
                    q(&ns),
                    q(&format!("DNAT → {}:{}", a.address, p.container_port))
                );
            }
        }
    }
    for (name, mode) in &t.unbridged {
        let _ = writeln!(
            g,
            "  {} [style=dashed, label={}];",
            q(&format!("c:{name}")),
            q(&format!("{name}\n--network {mode}"))
        );
    }
    g.push_str("}\n");
    g
}
