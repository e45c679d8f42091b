//! The topology as an SVG picture, laid out by minibox itself (no Graphviz needed), as the
//! tutorials draw it: the host as a frame with its interfaces along the top, each bridge as a
//! bar, and under it each container's namespace as a box on the end of its veth pair, with its
//! address and the host ports published to it.

use std::fmt::Write;

use super::{Topology, Veth};

const BOX_W: usize = 250;
const BOX_H: usize = 92;
const GAP: usize = 30;
const MARGIN: usize = 20;
/// Text lines are this far apart.
const LINE: usize = 15;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Lines of text from `(x, y)` down.
fn text(svg: &mut String, x: usize, y: usize, class: &str, lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{}" class="{class}">{}</text>"#,
            y + i * LINE,
            esc(l)
        );
    }
}

pub fn render(t: &Topology) -> String {
    let widest = t
        .networks
        .iter()
        .map(|b| b.members.len())
        .chain([t.unbridged.len(), t.uplinks.len(), 1])
        .max()
        .unwrap_or(1);
    let width = 2 * MARGIN + 20 + widest * (BOX_W + GAP);
    let mut body = String::new();
    let mut y = MARGIN + 30;
    // The host's own interfaces, along the top.
    for (i, u) in t.uplinks.iter().enumerate() {
        let x = MARGIN + 20 + i * (BOX_W + GAP);
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{y}" width="{BOX_W}" height="54" class="if"/>"#
        );
        let mut lines = vec![format!("{}  mtu {}", u.name, u.mtu), u.addrs.join(" ")];
        lines.extend(u.default.clone());
        text(&mut body, x + 8, y + 16, "t", &lines);
    }
    if !t.uplinks.is_empty() {
        y += 54 + GAP;
    }
    for b in &t.networks {
        let n = &b.net;
        let bar_w = width - 2 * MARGIN - 40;
        let _ = writeln!(
            body,
            r#"<rect x="{}" y="{y}" width="{bar_w}" height="40" rx="4" class="br"/>"#,
            MARGIN + 20
        );
        let state = match b.mtu {
            Some(mtu) => format!("{}/{}  mtu {mtu}", n.gateway, n.subnet.prefix_len()),
            None => "not made yet: made on first use".into(),
        };
        text(
            &mut body,
            MARGIN + 28,
            y + 16,
            "b",
            &[
                format!("{}  bridge of network {}  {state}", n.bridge, n.name),
                format!("NAT: {} leaves masqueraded", n.subnet),
            ],
        );
        let top = y + 40 + 50;
        for (i, m) in b.members.iter().enumerate() {
            let a = &m.att;
            let x = MARGIN + 20 + i * (BOX_W + GAP);
            let mid = x + BOX_W / 2;
            // The veth pair: host end on the bridge, the other end inside the namespace.
            let _ = writeln!(
                body,
                r#"<line x1="{mid}" y1="{}" x2="{mid}" y2="{top}" class="veth"/>"#,
                y + 40
            );
            text(
                &mut body,
                mid + 6,
                y + 62,
                "s",
                &[format!("{} ══ {}", a.veth, a.ifname)],
            );
            let _ = writeln!(
                body,
                r#"<rect x="{x}" y="{top}" width="{BOX_W}" height="{BOX_H}" rx="6" class="ns"/>"#
            );
            let missing = match m.veth {
                Veth::OnBridge => "",
                Veth::Detached => " (veth not on the bridge)",
                Veth::Missing => " (veth missing)",
            };
            let mut lines = vec![
                format!("{}{missing}", m.name),
                format!("netns {}", a.netns_label()),
                format!("{} {}/{}", a.ifname, a.address, a.prefix_len),
                format!("default via {}", a.gateway),
            ];
            lines.truncate(4);
            text(&mut body, x + 8, top + 18, "t", &lines);
            for (j, p) in a.ports.iter().enumerate() {
                text(
                    &mut body,
                    x + 8,
                    top + BOX_H + 16 + j * LINE,
                    "p",
                    &[format!(
                        "{}:{}/{} ─DNAT→ {}:{}",
                        p.host_ip, p.host_port, p.proto, a.address, p.container_port
                    )],
                );
            }
        }
        let ports = b.members.iter().map(|m| m.att.ports.len()).max();
        y = top + BOX_H + 20 + ports.unwrap_or(0) * LINE + GAP;
        if b.members.is_empty() {
            y = y + 40 + GAP - BOX_H - 90;
        }
    }
    for (i, (name, mode)) in t.unbridged.iter().enumerate() {
        let x = MARGIN + 20 + i * (BOX_W + GAP);
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{y}" width="{BOX_W}" height="46" rx="6" class="none"/>"#
        );
        let what = match mode.as_str() {
            "host" => "the host's own network",
            _ => "own netns, loopback only",
        };
        text(
            &mut body,
            x + 8,
            y + 18,
            "t",
            &[name.clone(), format!("--network {mode}: {what}")],
        );
    }
    if !t.unbridged.is_empty() {
        y += 46 + GAP;
    }
    let height = y + MARGIN;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
<style>
text {{ font-family: monospace; font-size: 12px; fill: #222; }}
.b {{ font-weight: bold; }} .s {{ font-size: 11px; fill: #555; }} .p {{ fill: #a33; }}
.host {{ fill: #fafafa; stroke: #888; }} .if {{ fill: #eee; stroke: #666; }}
.br {{ fill: #dde8f6; stroke: #3a6ea5; }} .ns {{ fill: #fff7dd; stroke: #b08a1e; }}
.none {{ fill: #fff; stroke: #999; stroke-dasharray: 5 3; }} .veth {{ stroke: #333; stroke-width: 3; }}
</style>
<rect x="{MARGIN}" y="{MARGIN}" width="{}" height="{}" rx="8" class="host"/>
<text x="{}" y="{}" class="b">host</text>
"#,
        width - 2 * MARGIN,
        height - 2 * MARGIN,
        MARGIN + 8,
        MARGIN + 18
    );
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::super::{Bridge, Member, Topology, Uplink, Veth};
    use minibox_netns::{Attachment, Network};

    #[test]
    fn draws_every_part_and_escapes_text() {
        let net = Network {
            name: "minibox".into(),
            id: "0".repeat(64),
            bridge: "minibox0".into(),
            subnet: "10.77.0.0/16".parse().unwrap(),
            gateway: "10.77.0.1".parse().unwrap(),
            created: String::new(),
            ipv6: None,
        };
        let att: Attachment = serde_json::from_value(serde_json::json!({
            "id": "0123456789ab0123", "network": "minibox", "bridge": "minibox0",
            "netns": "/run/netns/minibox-0123456789ab", "veth": "mb-0123456789ab",
            "address": "10.77.0.2", "prefix_len": 16, "gateway": "10.77.0.1", "ifname": "eth0",
            "mac": "02:42:0a:4d:00:02", "mtu": 1500,
            "ports": [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 8081, "proto": "tcp"}]
        }))
        .unwrap();
        let t = Topology {
            uplinks: vec![Uplink {
                name: "up0".into(),
                addrs: vec!["198.51.100.1/24".into()],
                mtu: 1500,
                default: Some("default via 198.51.100.2".into()),
            }],
            networks: vec![Bridge {
                net,
                mtu: Some(1500),
                members: vec![Member {
                    name: "<web>".into(),
                    att,
                    veth: Veth::OnBridge,
                }],
                lacking: Vec::new(),
            }],
            unbridged: vec![("quiet".into(), "none".into())],
            firewall: minibox_netns::FirewallDriver::Nftables,
        };
        let svg = super::render(&t);
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        for part in [
            "up0  mtu 1500",
            "minibox0  bridge of network minibox  10.77.0.1/16",
            "mb-0123456789ab ══ eth0",
            "&lt;web&gt;",
            "eth0 10.77.0.2/16",
            "0.0.0.0:8080/tcp ─DNAT→ 10.77.0.2:8081",
            "--network none",
        ] {
            assert!(svg.contains(part), "no {part:?} in\n{svg}");
        }
        let dot = super::super::dot::render(&t);
        assert!(dot.starts_with("graph minibox {"), "{dot}");
        assert!(
            dot.contains("\"br:minibox0\" -- \"ns:minibox-0123456789ab\""),
            "{dot}"
        );
    }
}
