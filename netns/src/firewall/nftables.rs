//! The nftables driver: one table of minibox's own, `inet minibox`, in the layout of the
//! iptables driver (netavark's), with published ports as map elements (kube-proxy's nftables
//! mode does the same with its services):
//!
//! - maps `ports4` (host address . protocol . port → container address . port) for ports
//!   published on one address, `anyports4` (protocol . port → …) for those published on all;
//!   `ports6` and `anyports6` the same for IPv6 (dual-stack networks' ports on `[::]` and on
//!   an IPv6 address of the host);
//! - chain `published` DNATs through both maps, jumped to from `prerouting` and `output` (nat
//!   hooks) for local destinations, so the host itself reaches published ports;
//! - `postrouting` masquerades DNAT'd connections from 127.0.0.0/8 (localhost publishing) and,
//!   per network, what leaves the subnet through another interface and DNAT'd connections from
//!   the subnet (hairpin): `ct status dnat` does what the iptables driver's mark does;
//! - `forward` and `input` (filter hooks) hold each network's drops (CVE-2020-8558, isolation
//!   between networks) inserted before every network's accepts, as in the iptables driver.
//!   When minibox is what turned forwarding on, `forward`'s policy is DROP for that family.
//!   The same rules match both families (an `inet` table), but for the masquerades and
//!   localhost's defences, which are IPv4's and, on a dual-stack network, IPv6's own.
//!
//! A container's set-up adds its elements (`comment "minibox:<id12>"`) in one nf_tables batch
//! over netlink (see [`super::elements`]; explained as the `nft -f -` batch that does the same)
//! and reads nothing; its teardown deletes them by key. Whether the base chains and a
//! network's rules are all there is answered by a netlink dump of this table's rules alone
//! (see [`intact`]): its size depends on the number of networks, never of containers.
//!
//! A base chain cannot override another table's drop: on a host whose iptables FORWARD policy
//! is DROP (Docker sets it), each network also gets two accepts in that FORWARD chain, made and
//! removed through the iptables driver.

use crate::error::Result;
use crate::explain::{heredoc, Explain};
use crate::store::{Family, ForwardDrop, Network};

use super::batch::{self, Batch};
use super::elements::{self, Change, Element};
use super::nfrules::{
    chain_policy, count_tagged, rules, tagged_elements, NftRule, NFPROTO_INET, NFPROTO_IPV4,
    NFPROTO_IPV6, NF_DROP,
};
use super::{iptables, Published, Recorded};

pub(super) const TABLE: &str = "inet minibox";
/// The comment of the rules every network shares.
const BASE_TAG: &str = "minibox-base";

fn network_tag(net: &Network) -> String {
    format!("minibox-network:{}", net.name)
}

/// `commands` as `nft -f -` reads them.
fn input(commands: &[String]) -> String {
    match commands.is_empty() {
        true => String::new(),
        false => commands.join("\n") + "\n",
    }
}

/// Applies `commands` as one `nft -f -` transaction.
fn start(ex: &Explain, commands: &[String]) -> Result<Batch> {
    Batch::start(ex, "nft", &["-f", "-"], &input(commands))
}

/// Says `commands` as found in place: the batch that would make them on a fresh host.
fn explain_in_place(ex: &Explain, commands: &[String]) {
    if !commands.is_empty() {
        ex.already(|| heredoc("nft -f -", &input(commands)));
    }
}

/// Says the table and `net`'s rules as found in place (`--explain` of a network known
/// complete).
pub fn explain_network_in_place(ex: &Explain, net: &Network, forward_drop: ForwardDrop) {
    if ex.is_on() {
        let mut commands = base(forward_drop);
        commands.extend(network_rules(net));
        explain_in_place(ex, &commands);
    }
}

fn apply(ex: &Explain, commands: &[String]) -> Result<()> {
    start(ex, commands)?.wait(ex)
}

/// The table, its maps and chains (each `add` leaves an existing one as it is, but sets the
/// policy), then the rules every network shares.
fn base(forward_drop: ForwardDrop) -> Vec<String> {
    let policy = if forward_drop.v4 || forward_drop.v6 {
        "drop"
    } else {
        "accept"
    };
    let mut c: Vec<String> = [
        format!("add table {TABLE}"),
        format!("add map {TABLE} ports4 {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add map {TABLE} anyports4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}"),
        format!("add map {TABLE} ports6 {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}"),
        format!("add map {TABLE} anyports6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}"),
        format!("add chain {TABLE} published"),
        format!("add chain {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"),
        format!("add chain {TABLE} output {{ type nat hook output priority -100; policy accept; }}"),
        format!("add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"),
        format!("add chain {TABLE} forward {{ type filter hook forward priority filter; policy {policy}; }}"),
        format!("add chain {TABLE} input {{ type filter hook input priority filter; policy accept; }}"),
    ]
    .into();
    let rule =
        |chain: &str, body: &str| format!("add rule {TABLE} {chain} {body} comment \"{BASE_TAG}\"");
    c.extend(
        base_rules(forward_drop)
            .iter()
            .map(|(ch, body)| rule(ch, body)),
    );
    c
}

/// The shared rules: (chain, rule).
fn base_rules(forward_drop: ForwardDrop) -> Vec<(&'static str, &'static str)> {
    let mut rules = vec![
        ("prerouting", "fib daddr type local jump published"),
        ("output", "fib daddr type local jump published"),
        (
            "published",
            "dnat ip to ip daddr . meta l4proto . th dport map @ports4",
        ),
        (
            "published",
            "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @anyports4",
        ),
        (
            "published",
            "dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6",
        ),
        (
            "published",
            "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @anyports6",
        ),
        // Localhost connections to published ports: their replies must come back through
        // the host, and a 127.0.0.1 source cannot leave it anyway.
        (
            "postrouting",
            "ip saddr 127.0.0.0/8 ct status dnat masquerade",
        ),
    ];
    // The DROP policy is the router's of the family minibox turned forwarding on for, as
    // iptables' and ip6tables' FORWARD policies would be.
    match (forward_drop.v4, forward_drop.v6) {
        (true, false) => rules.push(("forward", "meta nfproto != ipv4 accept")),
        (false, true) => rules.push(("forward", "meta nfproto != ipv6 accept")),
        _ => {}
    }
    rules
}

/// A network's own rules. Drops are inserted and accepts appended, so every network's drops
/// come before any network's accepts, whatever order the networks were made in.
fn network_rules(net: &Network) -> Vec<String> {
    let (br, subnet) = (&net.bridge, net.subnet);
    let tag = format!("comment \"{}\"", network_tag(net));
    let not_reply = "ct state != { established, related } ct status ! dnat";
    let mut rules = vec![
        format!("add rule {TABLE} postrouting ip saddr {subnet} oifname != \"{br}\" masquerade {tag}"),
        // Hairpin: a container reaching a published port through the host.
        format!("add rule {TABLE} postrouting ip saddr {subnet} ct status dnat masquerade {tag}"),
        // Localhost is not reachable from containers (CVE-2020-8558): route_localnet lets
        // 127.0.0.0/8 in from the bridge for the host's own published-port replies; anything
        // else arriving for it is dropped, as kube-proxy does...
        format!("add rule {TABLE} input iifname \"{br}\" ip daddr 127.0.0.0/8 {not_reply} drop {tag}"),
        // ...and so is a frame for 127.0.0.0/8 that a port published on 127.0.0.1 DNATs to a
        // container: such ports are for the host's own processes only.
        format!("insert rule {TABLE} forward iifname \"{br}\" ct original ip daddr 127.0.0.0/8 drop {tag}"),
        // Networks are isolated: into the bridge from elsewhere only replies and published
        // (DNAT'd) connections, whatever the FORWARD policy.
        format!("insert rule {TABLE} forward oifname \"{br}\" iifname != \"{br}\" {not_reply} drop {tag}"),
        format!("add rule {TABLE} forward iifname \"{br}\" accept {tag}"),
        format!("add rule {TABLE} forward oifname \"{br}\" ct state {{ established, related }} accept {tag}"),
        format!("add rule {TABLE} forward oifname \"{br}\" ct status dnat accept {tag}"),
    ];
    if let Some(v6) = &net.ipv6 {
        // NAT66 out, and hairpin, as for IPv4; forwarding's rules above match both families.
        let subnet = v6.subnet;
        rules.extend([
            format!("add rule {TABLE} postrouting ip6 saddr {subnet} oifname != \"{br}\" masquerade {tag}"),
            format!("add rule {TABLE} postrouting ip6 saddr {subnet} ct status dnat masquerade {tag}"),
        ]);
    }
    rules
}

fn additions(p: &Published) -> Vec<String> {
    Element::of(p)
        .iter()
        .map(|e| {
            let (map, key, value) = (e.map, e.key(), e.value());
            format!(
                "add element {TABLE} {map} {{ {key} comment \"{}\" : {value} }}",
                p.tag()
            )
        })
        .collect()
}

fn deletions(p: &Published) -> Vec<String> {
    Element::of(p)
        .iter()
        .map(|e| format!("delete element {TABLE} {} {{ {} }}", e.map, e.key()))
        .collect()
}

/// Adds a container's elements over netlink, explained as the `nft -f -` batch that does the
/// same.
pub fn publish(ex: &Explain, p: &Published) -> Result<Batch> {
    let outcome = elements::apply(Change::Add, &Element::of(p), &p.tag());
    Ok(applied(ex, &additions(p), outcome))
}

/// Deletes a container's elements by their keys, over netlink.
pub fn unpublish(ex: &Explain, p: &Published) -> Result<Batch> {
    let outcome = elements::apply(Change::Delete, &Element::of(p), &p.tag());
    Ok(applied(ex, &deletions(p), outcome))
}

fn applied(ex: &Explain, commands: &[String], outcome: Result<()>) -> Batch {
    match commands.is_empty() {
        true => Batch::none(),
        false => Batch::applied(ex, "nft", &["-f", "-"], &input(commands), outcome),
    }
}

/// After a failed deletion: deletes each of a container's elements on its own, those already
/// gone left out.
pub fn unpublish_each(ex: &Explain, p: &Published) -> Result<()> {
    for d in deletions(p) {
        ex.say(|| heredoc("nft -f -", &input(std::slice::from_ref(&d))));
    }
    elements::delete_each(&Element::of(p))
}

/// Whether the base rules and `net`'s rules are all there, as many as made (and, on a host
/// whose iptables FORWARD drops, `net`'s accepts there).
pub fn intact(net: &Network, forward_drop: ForwardDrop) -> Result<bool> {
    let rules = rules(NFPROTO_INET, "minibox", None)?;
    let count = |tag: &str| rules.iter().filter(|r| r.tagged(tag)).count();
    let ours = count(BASE_TAG) == base_rules(forward_drop).len()
        && count(&network_tag(net)) == network_rules(net).len();
    Ok(ours && !gate_lacking_nft(net)?)
}

/// Makes what is missing: the whole table again when a base rule is, else `net`'s rules.
pub fn ensure_network(
    ex: &Explain,
    net: &Network,
    forward_drop: ForwardDrop,
    recorded: impl FnOnce() -> Result<Recorded>,
) -> Result<()> {
    let rules = rules(NFPROTO_INET, "minibox", None)?;
    let base_count = rules.iter().filter(|r| r.tagged(BASE_TAG)).count();
    if base_count != base_rules(forward_drop).len() {
        let mut recorded = recorded()?;
        recorded.forward_drop = forward_drop;
        return rebuild(ex, &recorded);
    }
    if ex.is_on() {
        explain_in_place(ex, &base(forward_drop));
    }
    let tag = network_tag(net);
    let present: Vec<&NftRule> = rules.iter().filter(|r| r.tagged(&tag)).collect();
    let wanted = network_rules(net);
    if present.len() != wanted.len() {
        let mut commands: Vec<String> = present.iter().map(|r| r.deletion()).collect();
        commands.extend(wanted);
        apply(ex, &commands)?;
    } else if ex.is_on() {
        explain_in_place(ex, &wanted);
    }
    // A host FORWARD that drops now (Docker came after us) needs every network's accepts.
    for net in recorded()?.networks {
        open_host_forward(ex, &net)?;
    }
    Ok(())
}

/// `network reload`: the table deleted and made again from the records, in one transaction
/// (no moment without it), then the host FORWARD accepts where they are needed.
pub fn rebuild(ex: &Explain, recorded: &Recorded) -> Result<()> {
    let mut commands = vec![
        format!("add table {TABLE}"),
        format!("delete table {TABLE}"),
    ];
    commands.extend(base(recorded.forward_drop));
    for net in &recorded.networks {
        commands.extend(network_rules(net));
    }
    for p in &recorded.published {
        commands.extend(additions(p));
    }
    apply(ex, &commands)?;
    for net in &recorded.networks {
        open_host_forward(ex, net)?;
    }
    Ok(())
}

/// What of a container's elements and its network's rules the kernel lacks.
pub fn missing(p: &Published, net: &Network) -> Result<Vec<String>> {
    let mut lacking = Vec::new();
    let have = tagged_elements(&p.tag())?;
    if have < p.ports.len() {
        let n = p.ports.len();
        lacking.push(format!("{} of {n} published-port elements", n - have));
    }
    lacking.extend(missing_network(net)?);
    Ok(lacking)
}

/// What of a network's rules and the base rules the kernel lacks.
pub fn missing_network(net: &Network) -> Result<Vec<String>> {
    let rules = rules(NFPROTO_INET, "minibox", None)?;
    let mut lacking = Vec::new();
    let wanted = network_rules(net).len();
    let have = count_tagged(&rules, &network_tag(net));
    if have < wanted {
        lacking.push(format!("{} of {wanted} network rules", wanted - have));
    }
    let (have, wanted) = (
        count_tagged(&rules, BASE_TAG),
        base_rules(ForwardDrop::default()).len(),
    );
    if have < wanted {
        lacking.push(format!("{} of {wanted} base rules", wanted - have));
    }
    Ok(lacking)
}

/// Deletes the table with all it holds (`system reset`; the host FORWARD accepts go with the
/// iptables driver's [`iptables::remove_all`]).
pub fn remove_all(ex: &Explain) -> Result<()> {
    let exists = chain_policy(NFPROTO_INET, "minibox", "forward")?.is_some()
        || !rules(NFPROTO_INET, "minibox", None)?.is_empty();
    match exists {
        true => apply(ex, &[format!("delete table {TABLE}")]),
        false => Ok(()),
    }
}

/// Removes a network's rules, by their handles, and its accepts in the host's FORWARD chain.
pub fn remove_network(ex: &Explain, net: &Network) -> Result<()> {
    let tag = network_tag(net);
    let commands: Vec<String> = rules(NFPROTO_INET, "minibox", None)?
        .iter()
        .filter(|r| r.tagged(&tag))
        .map(NftRule::deletion)
        .collect();
    apply(ex, &commands)?;
    for &fam in iptables::families(net) {
        if host_forward_policy(fam).is_some() {
            iptables::remove_tagged(ex, fam, &tag)?;
        }
    }
    Ok(())
}

// --- The host's iptables FORWARD chain (and ip6tables' for a dual-stack network), when its
// policy is DROP.

/// `iptables -S FORWARD`, when iptables is there.
fn host_forward_policy(fam: Family) -> Option<String> {
    batch::output(iptables::tool(fam).2, &["-w", "-S", "FORWARD"]).ok()
}

/// Adds `net`'s two accepts to the host's FORWARD chains whose policy is DROP, where they are
/// not both there.
fn open_host_forward(ex: &Explain, net: &Network) -> Result<()> {
    for &fam in iptables::families(net) {
        open_host_forward_of(ex, fam, net)?;
    }
    Ok(())
}

fn open_host_forward_of(ex: &Explain, fam: Family, net: &Network) -> Result<()> {
    let Some(listing) = host_forward_policy(fam) else {
        return Ok(());
    };
    if !listing.lines().any(|l| l == "-P FORWARD DROP") {
        return Ok(());
    }
    let tag = network_tag(net);
    let present: Vec<&str> = listing
        .lines()
        .filter(|l| iptables::tagged(l, &tag))
        .collect();
    let wanted = iptables::forward_gate(net);
    if present.len() == wanted.len() {
        return Ok(());
    }
    let mut rules: Vec<iptables::Rule> = present
        .iter()
        .map(|l| iptables::deletion("filter", l))
        .collect();
    rules.extend(wanted);
    iptables::apply(ex, fam, &rules)
}

/// Whether iptables-nft's FORWARD chain (seen over netlink, at no cost) drops by default and
/// lacks `net`'s accepts. iptables-legacy's is checked when the network's rules are made.
fn gate_lacking_nft(net: &Network) -> Result<bool> {
    let tag = network_tag(net);
    for &fam in iptables::families(net) {
        let proto = match fam {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        };
        if chain_policy(proto, "filter", "FORWARD")? != Some(NF_DROP) {
            continue;
        }
        let have = rules(proto, "filter", Some("FORWARD"))?
            .iter()
            .filter(|r| r.tagged(&tag))
            .count();
        if have < iptables::forward_gate(net).len() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{PortMapping, Proto};

    fn net() -> Network {
        Network {
            name: "lab".into(),
            id: "0".repeat(64),
            bridge: "minibox1".into(),
            subnet: "10.99.0.0/24".parse().unwrap(),
            gateway: "10.99.0.1".parse().unwrap(),
            created: String::new(),
            ipv6: None,
        }
    }

    #[test]
    fn elements_by_address_or_for_all() {
        let p = Published {
            id12: "0123456789ab".into(),
            subnet: "10.99.0.0/24".parse().unwrap(),
            addr: "10.99.0.2".parse().unwrap(),
            ipv6: None,
            ports: vec![
                PortMapping {
                    host_ip: "127.0.0.1".parse().unwrap(),
                    host_port: 8080,
                    container_port: 80,
                    proto: Proto::Tcp,
                },
                PortMapping {
                    host_ip: "0.0.0.0".parse().unwrap(),
                    host_port: 5353,
                    container_port: 53,
                    proto: Proto::Udp,
                },
            ],
        };
        assert_eq!(
            additions(&p),
            [
                "add element inet minibox ports4 { 127.0.0.1 . tcp . 8080 comment \"minibox:0123456789ab\" : 10.99.0.2 . 80 }",
                "add element inet minibox anyports4 { udp . 5353 comment \"minibox:0123456789ab\" : 10.99.0.2 . 53 }",
            ]
        );
        assert_eq!(
            deletions(&p),
            [
                "delete element inet minibox ports4 { 127.0.0.1 . tcp . 8080 }",
                "delete element inet minibox anyports4 { udp . 5353 }",
            ]
        );
    }

    #[test]
    fn network_drops_come_first_and_everything_is_tagged() {
        let rules = network_rules(&net());
        for r in &rules {
            assert!(r.ends_with("comment \"minibox-network:lab\""), "{r}");
            if r.contains(" forward ") {
                assert_eq!(r.starts_with("insert "), r.contains(" drop "), "{r}");
            }
        }
        let base = base(ForwardDrop {
            v4: true,
            v6: false,
        });
        assert!(base.iter().any(|c| c.contains("policy drop")));
        assert_eq!(
            base.iter().filter(|c| c.contains(BASE_TAG)).count(),
            base_rules(ForwardDrop {
                v4: true,
                v6: false
            })
            .len()
        );
        assert!(
            base_rules(ForwardDrop::default()).len()
                < base_rules(ForwardDrop {
                    v4: true,
                    v6: false
                })
                .len()
        );
    }

    #[test]
    fn tags_match_whole() {
        let rule = |raw: &[u8]| NftRule {
            chain: "forward".into(),
            handle: 7,
            raw: raw.to_vec(),
        };
        assert!(rule(b"..minibox-network:lab\0..").tagged("minibox-network:lab"));
        assert!(!rule(b"..minibox-network:lab2\0..").tagged("minibox-network:lab"));
        assert_eq!(
            rule(b"").deletion(),
            "delete rule inet minibox forward handle 7"
        );
    }
}
