//! `minibox doctor [CONTAINER] [PORT]`: why a published port (or outbound traffic) does not
//! work. It checks, in the order the tutorials build it and users' bug reports break it: the
//! container's process listening (on which address, inside its netns), the veth attached and up,
//! the bridge up with its address, the routes, `ip_forward`, the DNAT and masquerade rules and the
//! jumps that reach them, foreign FORWARD drops ahead of minibox's, `route_localnet`,
//! br_netfilter with hairpin mode, stale conntrack entries, a host process on the port, and an
//! address conflict with the bridge's subnet. Each finding comes with the command that fixes it.
//! It reads only: it changes nothing.
//!
//! The firewall checks follow the driver that made the rules: under iptables, each rule of
//! minibox's chains read from `iptables-save` (with the exact rule that fixes it); under
//! nftables, each published port's map element (`nft get element`) and the table's base and
//! network rules as netns counts them, fixed by `minibox network reload`. Under both, iptables'
//! own FORWARD chain is read: a drop there wins over any accept of minibox's.

use std::net::Ipv4Addr;
use std::process::Command;

use minibox_netns::{
    Attachment, FirewallDriver, Link, Network, PortMapping, Proto, Store, Subnet6,
};

use super::Result;

/// One check's outcome.
pub struct Finding {
    pub ok: bool,
    /// What holds (or should).
    pub what: String,
    /// The commands that fix it.
    pub fix: Vec<String>,
}

fn ok(what: impl Into<String>) -> Finding {
    Finding {
        ok: true,
        what: what.into(),
        fix: Vec::new(),
    }
}

fn bad(what: impl Into<String>, fix: &[String]) -> Finding {
    Finding {
        ok: false,
        what: what.into(),
        fix: fix.to_vec(),
    }
}

/// What the checks read once.
struct Host {
    links: Vec<Link>,
    routes: Vec<minibox_netns::Route>,
    /// The driver of the rules checked.
    driver: FirewallDriver,
    /// `iptables-save` (empty when it cannot run).
    saved: String,
}

impl Host {
    fn read(driver: FirewallDriver) -> Result<Self> {
        let saved = Command::new("iptables-save")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Ok(Self {
            links: minibox_netns::links()?,
            routes: minibox_netns::routes()?,
            driver,
            saved,
        })
    }

    /// Whether minibox's rules are iptables' (and `saved` holds them).
    fn iptables(&self) -> bool {
        self.driver == FirewallDriver::Iptables && !self.saved.is_empty()
    }

    fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The rule lines of one chain of one table, in order.
    fn chain(&self, table: &str, chain: &str) -> Vec<&str> {
        let mut current = "";
        let prefix = format!("-A {chain} ");
        self.saved
            .lines()
            .filter(|l| {
                if let Some(t) = l.strip_prefix('*') {
                    current = t;
                }
                current == table && l.starts_with(&prefix)
            })
            .collect()
    }

    fn policy(&self, table: &str, chain: &str) -> Option<String> {
        let mut current = "";
        self.saved.lines().find_map(|l| {
            if let Some(t) = l.strip_prefix('*') {
                current = t;
            }
            let rest = l.strip_prefix(&format!(":{chain} "))?;
            (current == table).then(|| rest.split_whitespace().next().unwrap_or("").to_string())
        })
    }
}

fn sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .ok()
        .map(|v| v.trim().to_string())
}

/// The host-side checks of a network: bridge, routes, forwarding, NAT out, FORWARD.
pub fn check_network(net: &Network) -> Result<Vec<Finding>> {
    let host = Host::read(FirewallDriver::selected()?)?;
    network_findings(&host, net)
}

fn network_findings(host: &Host, net: &Network) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let (br, gw, prefix) = (&net.bridge, net.gateway, net.subnet.prefix_len());
    match host.link(br) {
        None => out.push(bad(
            format!("bridge {br} of network {} does not exist", net.name),
            &[format!(
                "minibox run --rm --network {} busybox true   # makes it again",
                net.name
            )],
        )),
        Some(b) => {
            out.push(match b.up {
                true => ok(format!("bridge {br} is up")),
                false => bad(
                    format!("bridge {br} is down"),
                    &[format!("ip link set {br} up")],
                ),
            });
            let has_gw = b
                .addrs
                .iter()
                .any(|a| a.addr() == gw && a.prefix_len() == prefix);
            out.push(match has_gw {
                true => ok(format!("bridge {br} has the gateway address {gw}/{prefix}")),
                false => bad(
                    format!("bridge {br} lacks the gateway address {gw}/{prefix}"),
                    &[format!("ip addr add {gw}/{prefix} dev {br}")],
                ),
            });
            let route = host
                .routes
                .iter()
                .any(|(dst, oif, _)| *dst == net.subnet && *oif == Some(b.index));
            if b.up && has_gw {
                out.push(match route {
                    true => ok(format!("the host routes {} to {br}", net.subnet)),
                    false => bad(
                        format!("the host has no route for {} through {br}", net.subnet),
                        &[format!("ip route add {} dev {br}", net.subnet)],
                    ),
                });
            }
        }
    }
    // Another route into the subnet takes the containers' traffic elsewhere.
    let bridge_index = host.link(br).map(|l| l.index);
    for (dst, oif, _) in &host.routes {
        let overlaps = dst.prefix_len() > 0
            && (net.subnet.contains(&dst.network()) || dst.contains(&net.subnet.network()));
        if overlaps && *oif != bridge_index {
            let dev = host
                .links
                .iter()
                .find(|l| Some(l.index) == *oif)
                .map_or("another interface".to_string(), |l| l.name.clone());
            out.push(bad(
                format!("a route for {dst} through {dev} overlaps the containers' subnet"),
                &[format!("ip route del {dst} dev {dev}")],
            ));
        }
    }
    // An address of the subnet on another interface, or a container's on the bridge.
    for l in host.links.iter().filter(|l| &l.name != br) {
        for a in l.addrs.iter().filter(|a| net.subnet.contains(&a.addr())) {
            out.push(bad(
                format!("{} holds {a}, an address of the containers' subnet", l.name),
                &[format!("ip addr del {a} dev {}", l.name)],
            ));
        }
    }
    if let Some(b) = host.link(br) {
        for a in b.addrs.iter().filter(|a| a.addr() != gw) {
            out.push(bad(
                format!("bridge {br} holds {a} besides its gateway: the host answers for it"),
                &[format!("ip addr del {a} dev {br}")],
            ));
        }
    }
    out.push(match sysctl("net.ipv4.ip_forward").as_deref() {
        Some("1") => ok("ip_forward is on: the host routes between the bridge and its uplinks"),
        _ => bad(
            "ip_forward is off: the host routes nothing between the bridge and other interfaces",
            &["sysctl -w net.ipv4.ip_forward=1".into()],
        ),
    });
    if let Some(v6) = &net.ipv6 {
        out.extend(ipv6_findings(host, net, v6)?);
    }
    match host.driver {
        FirewallDriver::Nftables => out.extend(nft_network_findings(host, net)?),
        FirewallDriver::Iptables if host.iptables() => {
            out.extend(iptables_network_findings(host, net))
        }
        FirewallDriver::Iptables => {}
    }
    Ok(out)
}

/// A dual-stack network's IPv6 half: the bridge's gateway address and IPv6 forwarding.
fn ipv6_findings(host: &Host, net: &Network, v6: &Subnet6) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let (br, gw, prefix) = (&net.bridge, v6.gateway, v6.subnet.prefix_len());
    if let Some(b) = host.link(br) {
        let has_gw = minibox_netns::addrs6(b.index)?.contains(&(gw, prefix));
        out.push(match has_gw {
            true => ok(format!(
                "bridge {br} has the IPv6 gateway address {gw}/{prefix}"
            )),
            false => bad(
                format!("bridge {br} lacks the IPv6 gateway address {gw}/{prefix}"),
                &[format!("ip -6 addr add {gw}/{prefix} dev {br} nodad")],
            ),
        });
    }
    let key = "net.ipv6.conf.all.forwarding";
    out.push(match sysctl(key).as_deref() {
        Some("1") => ok("IPv6 forwarding is on: the host routes IPv6 between the bridge and its uplinks"),
        _ => bad(
            "IPv6 forwarding is off: the host routes no IPv6 between the bridge and other interfaces",
            &[format!("sysctl -w {key}=1")],
        ),
    });
    Ok(out)
}

/// Under nftables: the table's base rules and the network's, and iptables' FORWARD (a drop
/// there, or a DROP policy without the network's accepts, wins over minibox's table).
fn nft_network_findings(host: &Host, net: &Network) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let (br, name) = (&net.bridge, &net.name);
    let lacking = minibox_netns::check_network(FirewallDriver::Nftables, net)?;
    out.push(match lacking.is_empty() {
        true => ok(format!(
            "table inet minibox holds the base rules and network {name}'s (masquerade, forward, input)"
        )),
        false => bad(
            format!("table inet minibox lacks {}", lacking.join(", ")),
            &["minibox network reload".into()],
        ),
    });
    let tag = format!("minibox-network:{name}");
    let forward = host.chain("filter", "FORWARD");
    // minibox's own rules there are tagged (its accepts); any other drop is foreign.
    let tagged = |l: &str| l.contains("minibox-network:") || l.contains("minibox:");
    for rule in forward
        .iter()
        .filter(|l| (l.ends_with("-j DROP") || l.contains("-j REJECT")) && !tagged(l))
    {
        out.push(bad(
            format!(
                "a foreign iptables FORWARD rule drops the containers' traffic, whatever minibox's table accepts: {rule}"
            ),
            &[format!("iptables -t filter {}", rule.replacen("-A ", "-D ", 1))],
        ));
    }
    let accepts = forward.iter().filter(|l| l.contains(&tag)).count();
    if host.policy("filter", "FORWARD").as_deref() == Some("DROP") && accepts < 2 {
        out.push(bad(
            format!("iptables' FORWARD policy is DROP and nothing there accepts {br}'s traffic"),
            &["minibox network reload".into()],
        ));
    }
    Ok(out)
}

/// Under iptables: the network's MASQUERADE, the jumps to minibox's chains, and what in FORWARD
/// comes before them.
fn iptables_network_findings(host: &Host, net: &Network) -> Vec<Finding> {
    let mut out = Vec::new();
    let br = &net.bridge;
    let masq = host
        .chain("nat", "MINIBOX-POSTROUTING")
        .iter()
        .any(|l| l.contains(&format!("-s {} ! -o {br} ", net.subnet)) && l.ends_with("MASQUERADE"));
    out.push(match masq {
        true => ok(format!("{} is masqueraded on its way out", net.subnet)),
        false => bad(
            format!("no MASQUERADE for {}: containers get no answers from outside", net.subnet),
            &[format!(
                "iptables -t nat -A MINIBOX-POSTROUTING -s {} ! -o {br} -m comment --comment minibox-network:{} -j MASQUERADE",
                net.subnet, net.name
            )],
        ),
    });
    let jumps = [
        ("nat", "POSTROUTING", "", "MINIBOX-POSTROUTING"),
        ("filter", "FORWARD", "", "MINIBOX-FORWARD"),
    ];
    for (table, chain, matches, target) in jumps {
        out.push(jump_finding(host, table, chain, matches, target));
    }
    // A foreign DROP or REJECT ahead of minibox's accepts in FORWARD wins over them.
    let forward = host.chain("filter", "FORWARD");
    let ours = forward
        .iter()
        .position(|l| l.ends_with("-j MINIBOX-FORWARD"));
    let ahead = &forward[..ours.unwrap_or(forward.len())];
    for rule in ahead
        .iter()
        .filter(|l| l.ends_with("-j DROP") || l.contains("-j REJECT"))
    {
        out.push(bad(
            format!(
                "a foreign FORWARD rule ahead of minibox's drops the containers' traffic: {rule}"
            ),
            &[format!(
                "iptables -t filter {}",
                rule.replacen("-A ", "-D ", 1)
            )],
        ));
    }
    if host.policy("filter", "FORWARD").as_deref() == Some("DROP") && ours.is_none() {
        out.push(bad(
            "the FORWARD policy is DROP and nothing accepts the bridge's traffic",
            &["iptables -t filter -I FORWARD -j MINIBOX-FORWARD".into()],
        ));
    }
    out
}

/// Whether `chain` of `table` jumps to minibox's `target`.
fn jump_finding(host: &Host, table: &str, chain: &str, matches: &str, target: &str) -> Finding {
    let there = host
        .chain(table, chain)
        .iter()
        .any(|l| l.ends_with(&format!("-j {target}")));
    match there {
        true => ok(format!("{table} {chain} jumps to {target}")),
        false => bad(
            format!("{table} {chain} does not jump to {target}: its rules are never reached"),
            &[format!(
                "iptables -t {table} -I {chain} {matches}-j {target}"
            )],
        ),
    }
}

/// The checks of one container (its process, its cable, its namespace) and, for each of its
/// published ports that `port` selects (a host or container port; all when `None`), the way
/// in; then its network's.
pub fn check_container(
    store: &Store,
    name: &str,
    pid: i32,
    att: &Attachment,
    port: Option<u16>,
) -> Result<Vec<Finding>> {
    let host = Host::read(att.firewall)?;
    let net = store.network(&att.network)?;
    let ns = att.netns_label();
    let mut out = Vec::new();
    let ports: Vec<&PortMapping> = att
        .ports
        .iter()
        .filter(|m| port.is_none_or(|p| m.host_port == p || m.container_port == p))
        .collect();
    if let Some(p) = port.filter(|_| ports.is_empty()) {
        out.push(bad(
            format!("{name} publishes no port {p}"),
            &[format!("minibox port {name}   # what it publishes")],
        ));
    }
    for m in &ports {
        out.push(listening(pid, name, &ns, att.address, m));
    }
    let bridge = host.link(&net.bridge);
    out.push(match host.link(&att.veth) {
        None => bad(
            format!("the host end {} of {name}'s veth pair is gone", att.veth),
            &[format!("minibox restart {name}")],
        ),
        Some(v) if bridge.is_none_or(|b| v.controller != Some(b.index)) => bad(
            format!("{} is not attached to bridge {}", att.veth, net.bridge),
            &[
                format!("ip link set {} master {} up", att.veth, net.bridge),
                // A port that leaves a bridge loses its settings.
                format!("ip link set {} type bridge_slave hairpin on", att.veth),
            ],
        ),
        Some(v) if !v.up => bad(
            format!("{} is down", att.veth),
            &[format!("ip link set {} up", att.veth)],
        ),
        Some(_) => ok(format!("{} is up on bridge {}", att.veth, net.bridge)),
    });
    let lacking = minibox_netns::check(store, att).unwrap_or_default();
    let inside = |what: &str| lacking.iter().any(|l| l.contains(what));
    out.push(match inside("default route") {
        true => bad(
            format!("{ns} has no default route via {}", att.gateway),
            &[format!("ip -n {ns} route add default via {}", att.gateway)],
        ),
        false => ok(format!("{ns} routes by default via {}", att.gateway)),
    });
    if inside(&format!("address {}", att.address)) {
        out.push(bad(
            format!(
                "{} lacks its address {}/{} in {ns}",
                att.ifname, att.address, att.prefix_len
            ),
            &[format!(
                "ip -n {ns} addr add {}/{} dev {}",
                att.address, att.prefix_len, att.ifname
            )],
        ));
    }
    if host.iptables() && !ports.is_empty() {
        for (chain, matches) in [
            ("PREROUTING", "-m addrtype --dst-type LOCAL "),
            ("OUTPUT", "-m addrtype --dst-type LOCAL "),
        ] {
            out.push(jump_finding(&host, "nat", chain, matches, "MINIBOX-DNAT"));
            out.extend(rules_ahead(&host, chain));
        }
    }
    for m in &ports {
        out.extend(way_in(&host, &net, att, m, name));
    }
    out.extend(network_findings(&host, &net)?);
    Ok(out)
}

/// Whether the container's process listens on the mapping's port, and on which address.
fn listening(pid: i32, name: &str, ns: &str, addr: Ipv4Addr, m: &PortMapping) -> Finding {
    let (file, state) = match m.proto {
        Proto::Udp => ("udp", "07"),
        _ => ("tcp", "0A"),
    };
    let port = m.container_port;
    let mut found: Vec<Ipv4Addr> = listeners(&format!("/proc/{pid}/net/{file}"), state, port);
    if !listeners(&format!("/proc/{pid}/net/{file}6"), state, port).is_empty() {
        found.push(Ipv4Addr::UNSPECIFIED); // a v6 wildcard takes v4 too (unless v6only)
    }
    let what = format!("{port}/{} inside {ns}", m.proto);
    if found.iter().any(|a| a.is_unspecified() || *a == addr) {
        return ok(format!("{name}'s process listens on {what}"));
    }
    match found.first() {
        Some(other) => bad(
            format!(
                "{name}'s process listens on {other}:{what} only: DNAT'd connections arrive for {addr}"
            ),
            &[format!("make the server listen on 0.0.0.0:{port} (or {addr}:{port})")],
        ),
        None => bad(
            format!("nothing listens on {what}"),
            &[format!(
                "ip netns exec {ns} ss -ltnup   # what listens there; publish that port, or start the server on {port}"
            )],
        ),
    }
}

/// The local addresses of the sockets in `state` on `port` of a `/proc/net/{tcp,udp}` table.
fn listeners(table: &str, state: &str, port: u16) -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string(table).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (local, st) = (f.get(1)?, f.get(3)?);
            let (ip, p) = local.split_once(':')?;
            if *st != state || u16::from_str_radix(p, 16).ok()? != port {
                return None;
            }
            // IPv4 in /proc/net is little-endian hex; an IPv6 entry's first word is not parsed.
            let raw = u32::from_str_radix(&ip[..8.min(ip.len())], 16).ok()?;
            Some(Ipv4Addr::from(raw.swap_bytes()))
        })
        .collect()
}

/// Rules ahead of minibox's jump in nat `chain` that end the packet's way there (it never
/// reaches the DNAT).
fn rules_ahead(host: &Host, chain: &str) -> Vec<Finding> {
    let rules = host.chain("nat", chain);
    let ours = rules.iter().position(|l| l.ends_with("-j MINIBOX-DNAT"));
    rules[..ours.unwrap_or(0)]
        .iter()
        .filter(|l| {
            ["-j ACCEPT", "-j RETURN", "-j DNAT", "-j REDIRECT"]
                .iter()
                .any(|t| l.contains(t))
        })
        .map(|l| {
            bad(
                format!("nat {chain} decides before minibox's DNAT is reached: {l}"),
                &[format!("iptables -t nat {}", l.replacen("-A ", "-D ", 1))],
            )
        })
        .collect()
}

/// The way in for one published port: its DNAT rule, localhost, hairpin, conntrack, the host.
fn way_in(
    host: &Host,
    net: &Network,
    att: &Attachment,
    m: &PortMapping,
    name: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (hp, cp, proto, addr) = (m.host_port, m.container_port, m.proto, att.address);
    let br = &net.bridge;
    let dst = if m.host_ip.is_unspecified() {
        String::new()
    } else {
        format!("-d {}/32 ", m.host_ip)
    };
    if host.driver == FirewallDriver::Nftables {
        out.push(nft_element(att, m));
    }
    if host.iptables() {
        let dnat = host.chain("nat", "MINIBOX-DNAT").iter().any(|l| {
            l.contains(&format!("--dport {hp} "))
                && l.contains(&format!("--to-destination {addr}:{cp}"))
        });
        out.push(match dnat {
            true => ok(format!("{}:{hp}/{proto} is DNAT'd to {addr}:{cp}", m.host_ip)),
            false => bad(
                format!("no DNAT rule sends {}:{hp}/{proto} to {addr}:{cp}", m.host_ip),
                &[format!(
                    "iptables -t nat -A MINIBOX-DNAT {dst}-p {proto} -m {proto} --dport {hp} -m comment --comment minibox:{} -j DNAT --to-destination {addr}:{cp}",
                    att.short_id()
                )],
            ),
        });
    }
    if host.iptables() {
        // Localhost and hairpin connections are marked for masquerading, or their replies would
        // bypass the DNAT on the way back.
        for (src, who) in [
            ("127.0.0.0/8", "127.0.0.1"),
            (&*net.subnet.to_string(), "containers"),
        ] {
            let marked = host.chain("nat", "MINIBOX-DNAT").iter().any(|l| {
                l.contains(&format!("-s {src} "))
                    && l.contains(&format!("--dport {hp} "))
                    && l.contains("-j MARK")
            });
            out.push(match marked {
                true => ok(format!("connections from {who} to port {hp} are marked for masquerading")),
                false => bad(
                    format!("connections from {who} to port {hp}/{proto} are not marked for masquerading: their replies miss the DNAT"),
                    &[format!(
                        "iptables -t nat -I MINIBOX-DNAT -s {src} {dst}-p {proto} -m {proto} --dport {hp} -m comment --comment minibox:{} -j MARK --set-xmark 0x2000/0x2000",
                        att.short_id()
                    )],
                ),
            });
        }
    }
    if m.host_ip.is_unspecified() || m.host_ip.is_loopback() {
        let key = format!("net.ipv4.conf.{br}.route_localnet");
        out.push(match sysctl(&key).as_deref() {
            Some("1") => ok(format!(
                "route_localnet is on for {br}: 127.0.0.1:{hp} reaches {name}"
            )),
            _ => bad(
                format!(
                    "route_localnet is off for {br}: 127.0.0.1:{hp} cannot be routed to {name}"
                ),
                &[format!("sysctl -w {key}=1")],
            ),
        });
    }
    // br_netfilter passes bridged frames through iptables: a container reaching its own
    // published port is then bridged back out of its own port, which needs hairpin mode.
    match sysctl("net.bridge.bridge-nf-call-iptables").as_deref() {
        Some("1") => {
            // Asked of the kernel over netlink (`ip -d`): /sys may show another netns.
            let hairpin = Command::new("ip")
                .args(["-d", "-o", "link", "show", "dev", &att.veth])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("hairpin on "));
            out.push(match hairpin {
                true => ok(format!("br_netfilter is loaded and {} has hairpin mode on", att.veth)),
                false => bad(
                    format!("br_netfilter is loaded and {} has hairpin mode off: {name} cannot reach its own published port", att.veth),
                    &[format!("ip link set {} type bridge_slave hairpin on", att.veth)],
                ),
            });
        }
        _ => out.push(ok(
            "br_netfilter is not loaded: bridged frames do not pass iptables",
        )),
    }
    out.push(stale_conntrack(hp, proto, addr));
    out.push(host_listener(hp, proto));
    out
}

/// Under nftables: the published port's element in its map, leading to the container.
fn nft_element(att: &Attachment, m: &PortMapping) -> Finding {
    let (hp, cp, proto, addr) = (m.host_port, m.container_port, m.proto, att.address);
    let (map, key) = match m.host_ip.is_unspecified() {
        true => ("anyports4", format!("{proto} . {hp}")),
        false => ("ports4", format!("{} . {proto} . {hp}", m.host_ip)),
    };
    let found = Command::new("nft")
        .args([
            "get",
            "element",
            "inet",
            "minibox",
            map,
            &format!("{{ {key} }}"),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let value = format!(": {addr} . {cp}");
    let add = format!(
        "nft 'add element inet minibox {map} {{ {key} comment \"minibox:{}\" {value} }}'",
        att.short_id()
    );
    match found {
        Some(text) if text.contains(&value) => ok(format!(
            "{}:{hp}/{proto} is DNAT'd to {addr}:{cp} (element of map {map})",
            m.host_ip
        )),
        Some(_) => bad(
            format!(
                "map {map} sends {}:{hp}/{proto} elsewhere than {addr}:{cp}",
                m.host_ip
            ),
            &[
                format!("nft 'delete element inet minibox {map} {{ {key} }}'"),
                add,
            ],
        ),
        None => bad(
            format!(
                "no map element sends {}:{hp}/{proto} to {addr}:{cp}",
                m.host_ip
            ),
            &[add],
        ),
    }
}

/// Conntrack entries for the port whose replies come from anywhere but the container: flows
/// set up before the DNAT (or to an earlier container) keep going there.
fn stale_conntrack(hp: u16, proto: Proto, addr: Ipv4Addr) -> Finding {
    let out = Command::new("conntrack")
        .args([
            "-L",
            "-p",
            &proto.to_string(),
            "--orig-port-dst",
            &hp.to_string(),
        ])
        .output();
    let Ok(out) = out else {
        return ok("conntrack(8) is not installed: stale flows not checked");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let stale = text.lines().filter(|l| {
        // The reply direction's source is the second `src=`.
        l.split_whitespace()
            .filter_map(|w| w.strip_prefix("src="))
            .nth(1)
            .is_some_and(|src| src != addr.to_string())
    });
    match stale.count() {
        0 => ok(format!("no stale conntrack entry for port {hp}/{proto}")),
        n => bad(
            format!("{n} conntrack entries for port {hp}/{proto} lead elsewhere than {addr}: their flows keep going there"),
            &[format!("conntrack -D -p {proto} --orig-port-dst {hp}")],
        ),
    }
}

/// A process of the host that listens on the published port itself.
fn host_listener(hp: u16, proto: Proto) -> Finding {
    let (file, state) = match proto {
        Proto::Udp => ("udp", "07"),
        _ => ("tcp", "0A"),
    };
    let mut found = listeners(&format!("/proc/self/net/{file}"), state, hp);
    found.extend(listeners(&format!("/proc/self/net/{file}6"), state, hp));
    match found.first() {
        None => ok(format!("no host process listens on port {hp}/{proto}")),
        Some(a) => bad(
            format!(
                "a host process listens on {a}:{hp}/{proto}: what minibox's DNAT misses goes to it"
            ),
            &[format!(
                "ss -lnp{} sport = :{hp}   # which one; stop it, or publish another host port",
                if proto == Proto::Udp { "u" } else { "t" }
            )],
        ),
    }
}
