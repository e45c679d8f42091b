//! The iptables driver: whichever of iptables-nft or iptables-legacy `iptables` is.
//!
//! Each setup and each teardown is one `iptables-restore --noflush --wait` batch, explained as
//! that command with its input. A set-up reads nothing; making a network's rules reads the
//! ruleset once (`iptables-save`).
//!
//! Layout (netavark's design, in minibox's own chains):
//! - nat `MINIBOX-DNAT`, reached from PREROUTING *and* OUTPUT for local destinations, so the host
//!   itself reaches published ports; per port it marks hairpin (from the subnet) and localhost
//!   packets with 0x2000 and DNATs to the container.
//! - nat `MINIBOX-POSTROUTING`: MASQUERADE what is marked (so replies come back through us, and
//!   127.0.0.1 sources become the gateway) and what leaves the subnet through other interfaces.
//! - filter `MINIBOX-FORWARD`, at the top of FORWARD: accept the bridge's traffic even when the
//!   policy is DROP (as Docker leaves it): everything from the bridge, and towards it replies and
//!   DNAT'd (published) connections. Before those, drops that hold whatever the policy: nothing
//!   else enters a bridge from another (networks are isolated, as Docker's are), and nothing
//!   whose original destination was 127.0.0.0/8 leaves a bridge (a port published on 127.0.0.1
//!   is for the host's own processes).
//! - filter `MINIBOX-INPUT`, at the top of INPUT: drops what arrives from a bridge for
//!   127.0.0.0/8 unless it belongs to a connection the host made (kube-proxy's fix for
//!   CVE-2020-8558): `route_localnet`, which localhost publishing needs, would let it in.
//! - the filter FORWARD policy becomes DROP when minibox is the one turning forwarding on.
//!
//! Per-container rules carry `-m comment --comment minibox:<id12>`; per-network ones
//! `minibox-network:<name>`, so either can always be found and removed from what the kernel has.
//!
//! IPv6 has the same layout in ip6tables (`ip6tables-restore` batches), made and read only for
//! dual-stack networks and their containers: the masquerade (NAT66), forwarding's accepts and
//! isolation, and the ports published on IPv6 addresses. Localhost's defences are IPv4's alone
//! (there is no `route_localnet` for IPv6: nothing is DNAT'd from `::1`).

use crate::error::Result;
use crate::explain::{heredoc, Explain};

use super::batch::{self, Batch};
use super::{Published, Recorded};
use crate::store::{Family, ForwardDrop, Network, Store};

pub const DNAT: &str = "MINIBOX-DNAT";
pub const POSTROUTING: &str = "MINIBOX-POSTROUTING";
pub const FORWARD: &str = "MINIBOX-FORWARD";
pub const INPUT: &str = "MINIBOX-INPUT";
/// Marks packets that need masquerading after DNAT: hairpin and localhost-originated.
pub const MARK: &str = "0x2000/0x2000";
/// The key under which the store keeps a family's FORWARD policy from before minibox set DROP.
pub fn forward_policy_key(fam: Family) -> &'static str {
    match fam {
        Family::V4 => "iptables.filter.FORWARD",
        Family::V6 => "ip6tables.filter.FORWARD",
    }
}

/// One rule: its table, the operation (`-A`, `-I`, `-D`, `-N`) and the rest of its arguments.
#[derive(Debug, Clone)]
pub struct Rule {
    pub table: &'static str,
    pub op: &'static str,
    pub spec: String,
}

impl Rule {
    fn new(table: &'static str, op: &'static str, spec: impl Into<String>) -> Self {
        Self {
            table,
            op,
            spec: spec.into(),
        }
    }

    pub fn command(&self, fam: Family) -> String {
        let cmd = tool(fam).2;
        match self.op {
            // A declaration makes the chain, or empties it.
            ":" => {
                let chain = self.spec.split(' ').next().unwrap_or_default();
                let t = self.table;
                format!("{cmd} -t {t} -N {chain} 2>/dev/null; {cmd} -t {t} -F {chain}")
            }
            op => format!("{cmd} -t {} {op} {}", self.table, self.spec),
        }
    }

    fn undo(&self) -> Self {
        Rule::new(self.table, "-D", self.spec.clone())
    }
}

/// A family's restore and save programs, and the command that explains a rule.
pub(super) fn tool(fam: Family) -> (&'static str, &'static str, &'static str) {
    match fam {
        Family::V4 => ("iptables-restore", "iptables-save", "iptables"),
        Family::V6 => ("ip6tables-restore", "ip6tables-save", "ip6tables"),
    }
}

/// The families whose tables a network has rules in.
pub(super) fn families(net: &Network) -> &'static [Family] {
    match net.ipv6 {
        Some(_) => &[Family::V4, Family::V6],
        None => &[Family::V4],
    }
}

/// Applies rules as one `iptables-restore --noflush --wait` batch, reporting each one.
pub fn apply(ex: &Explain, fam: Family, rules: &[Rule]) -> Result<()> {
    start(ex, fam, rules)?.wait(ex)
}

/// Starts applying rules; [`Batch::wait`] tells how it went.
pub fn start(ex: &Explain, fam: Family, rules: &[Rule]) -> Result<Batch> {
    Batch::start(
        ex,
        tool(fam).0,
        &["--noflush", "--wait"],
        &restore_input(rules),
    )
}

/// Starts adding a container's port rules: one batch per family it publishes on.
pub fn publish(ex: &Explain, p: &Published) -> Result<Batch> {
    let v4 = start(ex, Family::V4, &container_rules(p, Family::V4))?;
    Ok(v4.and(start(ex, Family::V6, &container_rules(p, Family::V6))?))
}

/// Starts removing a container's port rules, one batch per family.
pub fn unpublish(ex: &Explain, p: &Published) -> Result<Batch> {
    let undo = |fam| -> Vec<Rule> { container_rules(p, fam).iter().map(Rule::undo).collect() };
    let v4 = start(ex, Family::V4, &undo(Family::V4))?;
    Ok(v4.and(start(ex, Family::V6, &undo(Family::V6))?))
}

/// After a failed removal: removes whatever of a container's rules the kernel still has.
pub fn unpublish_each(ex: &Explain, p: &Published) -> Result<()> {
    remove_tagged(ex, Family::V4, &p.tag())?;
    match p.ports.iter().any(|m| m.host_ip.is_ipv6()) {
        true => remove_tagged(ex, Family::V6, &p.tag()),
        false => Ok(()),
    }
}

/// The rules as `iptables-restore` input: one section per table, nat first.
fn restore_input(rules: &[Rule]) -> String {
    let mut batch = String::new();
    for table in ["nat", "filter"] {
        let mine: Vec<&Rule> = rules.iter().filter(|r| r.table == table).collect();
        if mine.is_empty() {
            continue;
        }
        batch.push_str(&format!("*{table}\n"));
        for r in mine {
            match r.op {
                ":" => batch.push_str(&format!(":{}\n", r.spec)),
                op => batch.push_str(&format!("{op} {}\n", r.spec)),
            }
        }
        batch.push_str("COMMIT\n");
    }
    batch
}

/// What the kernel has now, as `iptables-save` prints it.
fn save(fam: Family) -> Result<String> {
    batch::output(tool(fam).1, &[])
}

/// `(table, line)` for every rule line of the saved ruleset.
fn saved_rules(saved: &str) -> Vec<(&str, &str)> {
    let mut table = "";
    let mut out = Vec::new();
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t;
        } else if line.starts_with("-A ") || line.starts_with(':') {
            out.push((table, line));
        }
    }
    out
}

fn network_tag(net: &Network) -> String {
    format!("minibox-network:{}", net.name)
}

const CHAINS: [(&str, &str); 4] = [
    ("nat", DNAT),
    ("nat", POSTROUTING),
    ("filter", FORWARD),
    ("filter", INPUT),
];

/// Where our chains are jumped to from: table, chain, matches, target.
const JUMPS: [(&str, &str, &str, &str); 5] = [
    ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL ", DNAT),
    ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL ", DNAT),
    ("nat", "POSTROUTING", "", POSTROUTING),
    ("filter", "FORWARD", "", FORWARD),
    ("filter", "INPUT", "", INPUT),
];

/// Our chains, their jumps and the network's own rules: whatever of them is missing. A base
/// layout that lost anything (`iptables -F`, a chain deleted) is rebuilt whole, with every
/// recorded container's rules, from `recorded`. With `forward_drop` (minibox turned forwarding
/// on), the host's FORWARD policy is DROP.
pub fn ensure_network(
    store: &Store,
    ex: &Explain,
    net: &Network,
    forward_drop: ForwardDrop,
    recorded: impl FnOnce() -> Result<Recorded>,
) -> Result<()> {
    let mut recorded = Some(recorded);
    let mut records = None;
    for &fam in families(net) {
        let saved = save(fam)?;
        if !base_complete(&saved) {
            if let Some(read) = recorded.take() {
                records = Some(read()?);
            }
            let rules = rebuild_rules(&saved, fam, records.as_ref().unwrap());
            apply_recording(store, ex, fam, &saved, &rules)?;
            continue;
        }
        let rules = additions(&saved, fam, net, forward_drop);
        if ex.is_on() {
            // What a fresh host would need and this one has: said as in place, ahead of what
            // is done.
            let done: Vec<String> = rules.iter().map(|r| r.command(fam)).collect();
            let in_place: Vec<Rule> = fresh_rules(net, fam, forward_drop)
                .into_iter()
                .filter(|r| !done.contains(&r.command(fam)))
                .collect();
            explain_in_place(ex, fam, &in_place);
        }
        apply_recording(store, ex, fam, &saved, &rules)?;
    }
    Ok(())
}

/// Applies `rules`; when they set `fam`'s FORWARD policy to DROP, the policy before (in
/// `saved`) is recorded first, for `system reset`.
fn apply_recording(
    store: &Store,
    ex: &Explain,
    fam: Family,
    saved: &str,
    rules: &[Rule],
) -> Result<()> {
    if rules.iter().any(|r| r.op == "-P") {
        // A table never loaded has the kernel's default policy.
        let policy = forward_policy(saved).unwrap_or("ACCEPT");
        if policy != "DROP" {
            store.record_prior(forward_policy_key(fam), policy)?;
        }
    }
    apply(ex, fam, rules)
}

/// The filter FORWARD chain's policy in a saved ruleset.
fn forward_policy(saved: &str) -> Option<&str> {
    saved_rules(saved)
        .into_iter()
        .find_map(|(t, l)| {
            (t == "filter")
                .then(|| l.strip_prefix(":FORWARD "))
                .flatten()
        })
        .and_then(|rest| rest.split_whitespace().next())
}

/// The family whose FORWARD policy the store keeps under `key`, if it is such a key.
pub fn forward_policy_of(key: &str) -> Option<Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .find(|&fam| forward_policy_key(fam) == key)
}

/// Puts `fam`'s filter FORWARD policy back (`system reset`).
pub fn set_forward_policy(ex: &Explain, fam: Family, policy: &str) -> Result<()> {
    apply(
        ex,
        fam,
        &[Rule::new("filter", "-P", format!("FORWARD {policy}"))],
    )
}

/// What a fresh host needs for `net` in `fam`'s tables: our chains, their jumps, the base
/// rules and the network's.
fn fresh_rules(net: &Network, fam: Family, forward_drop: ForwardDrop) -> Vec<Rule> {
    let recorded = Recorded {
        networks: vec![net.clone()],
        published: Vec::new(),
        forward_drop,
    };
    rebuild_rules("", fam, &recorded)
}

/// Says `net`'s whole layout as found in place (`--explain` of a network known complete).
pub fn explain_network_in_place(ex: &Explain, net: &Network, forward_drop: ForwardDrop) {
    if ex.is_on() {
        for &fam in families(net) {
            explain_in_place(ex, fam, &fresh_rules(net, fam, forward_drop));
        }
    }
}

fn explain_in_place(ex: &Explain, fam: Family, rules: &[Rule]) {
    if !rules.is_empty() {
        let command = format!("{} --noflush --wait", tool(fam).0);
        ex.already(|| heredoc(&command, &restore_input(rules)));
    }
}

/// Removes all of minibox's chains and the jumps to them, and the nftables driver's accepts in
/// FORWARD (`system reset`), from iptables and, where it has any, ip6tables.
pub fn remove_all(ex: &Explain) -> Result<()> {
    remove_all_of(ex, Family::V4)?;
    match save(Family::V6) {
        Ok(saved) if saved.contains(":MINIBOX-") || saved.contains("minibox-network:") => {
            remove_all_of(ex, Family::V6)
        }
        _ => Ok(()),
    }
}

fn remove_all_of(ex: &Explain, fam: Family) -> Result<()> {
    let saved = save(fam)?;
    let jump = |l: &str| CHAINS.iter().any(|(_, c)| l.ends_with(&format!("-j {c}")));
    let gate = |l: &str| {
        l.starts_with("-A FORWARD ")
            && ["--comment minibox-network:", "--comment \"minibox-network:"]
                .iter()
                .any(|c| l.contains(c))
    };
    let mut rules: Vec<Rule> = saved_rules(&saved)
        .into_iter()
        .filter(|(_, l)| {
            let builtin = !CHAINS
                .iter()
                .any(|(_, c)| l.starts_with(&format!("-A {c} ")));
            l.starts_with("-A ") && builtin && (jump(l) || gate(l))
        })
        .map(|(t, l)| deletion(t, l))
        .collect();
    for (table, chain) in CHAINS {
        let declared = format!(":{chain} ");
        if saved_rules(&saved)
            .iter()
            .any(|(t, l)| *t == table && l.starts_with(&declared))
        {
            rules.push(Rule::new(table, "-F", chain));
            rules.push(Rule::new(table, "-X", chain));
        }
    }
    apply(ex, fam, &rules)
}

/// The cheap check (see [`super::intact`]): under iptables-nft, the jumps to our chains and the
/// network's rules, read over netlink; under iptables-legacy, nothing.
pub fn intact(net: &Network) -> Result<bool> {
    if legacy_in_use() {
        return Ok(true);
    }
    for &fam in families(net) {
        let proto = match fam {
            Family::V4 => super::nfrules::NFPROTO_IPV4,
            Family::V6 => super::nfrules::NFPROTO_IPV6,
        };
        let rules = |table: &str, chain: &str| super::nfrules::rules(proto, table, Some(chain));
        for (table, chain, _, target) in JUMPS {
            if super::nfrules::count_tagged(&rules(table, chain)?, target) == 0 {
                return Ok(false);
            }
        }
        let tag = network_tag(net);
        let mut have = 0;
        for (table, chain) in [("nat", POSTROUTING), ("filter", FORWARD), ("filter", INPUT)] {
            have += super::nfrules::count_tagged(&rules(table, chain)?, &tag);
        }
        if have != network_rules(net, fam).len() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether this network namespace's iptables is iptables-legacy (its tables are x_tables').
fn legacy_in_use() -> bool {
    std::fs::read_to_string("/proc/net/ip_tables_names").is_ok_and(|t| !t.trim().is_empty())
}

/// `network reload`: everything made again from the records, in one batch.
/// IPv6's layout only when a network is dual-stack.
pub fn rebuild(store: &Store, ex: &Explain, recorded: &Recorded) -> Result<()> {
    let saved = save(Family::V4)?;
    let rules = rebuild_rules(&saved, Family::V4, recorded);
    apply_recording(store, ex, Family::V4, &saved, &rules)?;
    if recorded.networks.iter().any(|n| n.ipv6.is_some()) {
        let saved = save(Family::V6)?;
        let rules = rebuild_rules(&saved, Family::V6, recorded);
        apply_recording(store, ex, Family::V6, &saved, &rules)?;
    }
    Ok(())
}

/// Whether our chains, their jumps and the masquerade of marked packets are all there.
fn base_complete(saved: &str) -> bool {
    let have = saved_rules(saved);
    let has_chain = |table: &str, chain: &str| {
        have.iter()
            .any(|(t, l)| *t == table && l.starts_with(&format!(":{chain} ")))
    };
    let has_rule = |table: &str, chain: &str, needle: &str| {
        have.iter().any(|(t, l)| {
            *t == table && l.starts_with(&format!("-A {chain} ")) && l.contains(needle)
        })
    };
    CHAINS.iter().all(|(t, c)| has_chain(t, c))
        && JUMPS
            .iter()
            .all(|(t, c, _, target)| has_rule(t, c, &format!("-j {target}")))
        && has_rule("nat", POSTROUTING, "--mark 0x2000/0x2000")
}

/// The whole layout from the records: our chains made or emptied, the jumps to them replaced,
/// then the base rules, every network's and every container's.
fn rebuild_rules(saved: &str, fam: Family, recorded: &Recorded) -> Vec<Rule> {
    let mut rules: Vec<Rule> = CHAINS
        .iter()
        .map(|(t, c)| Rule::new(t, ":", format!("{c} - [0:0]")))
        .collect();
    let ours = |l: &str| CHAINS.iter().any(|(_, c)| l.ends_with(&format!("-j {c}")));
    for (t, l) in saved_rules(saved) {
        let builtin = !CHAINS
            .iter()
            .any(|(_, c)| l.starts_with(&format!("-A {c} ")));
        if l.starts_with("-A ") && builtin && ours(l) {
            rules.push(deletion(t, l));
        }
    }
    rules.extend(base_rules());
    for net in &recorded.networks {
        rules.extend(network_rules(net, fam));
    }
    for p in &recorded.published {
        rules.extend(container_rules(p, fam));
    }
    if drops(recorded.forward_drop, fam) {
        rules.push(Rule::new("filter", "-P", "FORWARD DROP"));
    }
    rules
}

/// Whether forwarding of `fam` drops what minibox does not accept.
fn drops(forward_drop: ForwardDrop, fam: Family) -> bool {
    match fam {
        Family::V4 => forward_drop.v4,
        Family::V6 => forward_drop.v6,
    }
}

/// The jumps to our chains and the masquerade of marked packets.
fn base_rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = JUMPS
        .iter()
        .map(|(t, c, matches, target)| Rule::new(t, "-I", format!("{c} {matches}-j {target}")))
        .collect();
    rules.push(Rule::new(
        "nat",
        "-A",
        format!("{POSTROUTING} -m mark --mark {MARK} -j MASQUERADE"),
    ));
    rules
}

/// What [`ensure_network`] adds to a complete base layout saved as `saved`: the network's rules
/// when any is missing, and the FORWARD policy.
fn additions(saved: &str, fam: Family, net: &Network, forward_drop: ForwardDrop) -> Vec<Rule> {
    let have = saved_rules(saved);
    let mut rules = Vec::new();
    // The network's rules are made and checked as a set: one missing (or a set from an older
    // minibox) and the set is made again.
    let tag = network_tag(net);
    let wanted = network_rules(net, fam);
    let present: Vec<(&str, &str)> = have
        .iter()
        .filter(|(_, l)| tagged(l, &tag))
        .copied()
        .collect();
    if present.len() != wanted.len() {
        rules.extend(present.into_iter().map(|(t, l)| deletion(t, l)));
        rules.extend(wanted);
    }
    let policy_drops = have
        .iter()
        .any(|(t, l)| *t == "filter" && l.starts_with(":FORWARD DROP"));
    if drops(forward_drop, fam) && !policy_drops {
        rules.push(Rule::new("filter", "-P", "FORWARD DROP"));
    }
    rules
}

/// A network's own rules in one family's tables (IPv6 only for a dual-stack network). Drops are
/// inserted and accepts appended, so every network's drops come before any network's accepts,
/// whatever order the networks were made in.
fn network_rules(net: &Network, fam: Family) -> Vec<Rule> {
    let subnet = match (fam, &net.ipv6) {
        (Family::V4, _) => net.subnet.to_string(),
        (Family::V6, Some(v6)) => v6.subnet.to_string(),
        (Family::V6, None) => return Vec::new(),
    };
    let br = &net.bridge;
    let tag = format!("-m comment --comment {}", network_tag(net));
    let mut rules = vec![Rule::new(
        "nat",
        "-A",
        format!("{POSTROUTING} -s {subnet} ! -o {br} {tag} -j MASQUERADE"),
    )];
    if fam == Family::V4 {
        rules.extend([
            // Localhost is not reachable from containers (CVE-2020-8558): route_localnet lets
            // 127.0.0.0/8 in from the bridge for the host's own published-port replies; anything
            // else arriving for it is dropped, as kube-proxy does...
            Rule::new(
                "filter",
                "-A",
                format!("{INPUT} -i {br} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {tag} -j DROP"),
            ),
            // ...and so is a frame for 127.0.0.0/8 that a port published on 127.0.0.1 DNATs to a
            // container: such ports are for the host's own processes only. (IPv6 has no
            // route_localnet: ::1 never reaches a bridge.)
            Rule::new(
                "filter",
                "-I",
                format!("{FORWARD} -i {br} -m conntrack --ctorigdst 127.0.0.0/8 {tag} -j DROP"),
            ),
        ]);
    }
    rules.extend([
        // Networks are isolated: into the bridge from elsewhere only replies and published
        // (DNAT'd) connections, whatever the FORWARD policy.
        Rule::new(
            "filter",
            "-I",
            format!("{FORWARD} -o {br} ! -i {br} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {tag} -j DROP"),
        ),
        Rule::new("filter", "-A", format!("{FORWARD} -i {br} {tag} -j ACCEPT")),
        Rule::new(
            "filter",
            "-A",
            format!("{FORWARD} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT {tag} -j ACCEPT"),
        ),
    ]);
    rules
}

/// Under the nftables driver, on a host whose FORWARD policy is DROP (Docker sets it): a
/// network's accepts in FORWARD itself, since no other table's accept overrides its drop.
pub fn forward_gate(net: &Network) -> Vec<Rule> {
    let br = &net.bridge;
    let tag = format!("-m comment --comment {}", network_tag(net));
    vec![
        Rule::new("filter", "-I", format!("FORWARD -i {br} {tag} -j ACCEPT")),
        Rule::new(
            "filter",
            "-I",
            format!(
                "FORWARD -o {br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT {tag} -j ACCEPT"
            ),
        ),
    ]
}

/// The per-port rules of one container in `fam`'s tables, in the order they are added.
fn container_rules(p: &Published, fam: Family) -> Vec<Rule> {
    let tag = format!("-m comment --comment {}", p.tag());
    let (sources, to, host_len) = match (fam, p.ipv6) {
        (Family::V4, _) => (
            vec![p.subnet.to_string(), "127.0.0.0/8".to_string()],
            p.addr.to_string(),
            32,
        ),
        (Family::V6, Some((subnet6, addr6))) => {
            (vec![subnet6.to_string()], format!("[{addr6}]"), 128)
        }
        (Family::V6, None) => return Vec::new(),
    };
    let mut rules = Vec::new();
    let mine = p
        .ports
        .iter()
        .filter(|m| m.host_ip.is_ipv6() == (fam == Family::V6));
    for m in mine {
        let dst = if m.host_ip.is_unspecified() {
            String::new()
        } else {
            format!(" -d {}/{host_len}", m.host_ip)
        };
        let p = m.proto;
        let matches = format!("{dst} -p {p} -m {p} --dport {}", m.host_port);
        // Hairpin (a container reaching a published port through the host) and localhost
        // connections need their source rewritten too, or replies would bypass the DNAT.
        for src in &sources {
            rules.push(Rule::new(
                "nat",
                "-A",
                format!("{DNAT} -s {src}{matches} {tag} -j MARK --set-xmark {MARK}"),
            ));
        }
        rules.push(Rule::new(
            "nat",
            "-A",
            format!(
                "{DNAT}{matches} {tag} -j DNAT --to-destination {to}:{}",
                m.container_port
            ),
        ));
    }
    rules
}

/// Which of a container's tagged rules and its network's rules the kernel lacks, by their tags
/// (what `iptables-save` prints differs in form from what was added).
pub fn missing(p: &Published, net: &Network) -> Result<Vec<String>> {
    let mut lacking = Vec::new();
    for &fam in families(net) {
        let saved = save(fam)?;
        let rules = saved_rules(&saved);
        let expected = container_rules(p, fam).len();
        let have = rules.iter().filter(|(_, l)| tagged(l, &p.tag())).count();
        if have < expected {
            lacking.push(format!(
                "{} of {expected} {} port rules",
                expected - have,
                tool(fam).2
            ));
        }
        lacking.extend(missing_in(&saved, fam, net));
    }
    Ok(lacking)
}

/// What of a network's rules and of our chains and jumps the kernel lacks.
pub fn missing_network(net: &Network) -> Result<Vec<String>> {
    let mut lacking = Vec::new();
    for &fam in families(net) {
        lacking.extend(missing_in(&save(fam)?, fam, net));
    }
    Ok(lacking)
}

fn missing_in(saved: &str, fam: Family, net: &Network) -> Vec<String> {
    let rules = saved_rules(saved);
    let count = |tag: &str| rules.iter().filter(|(_, l)| tagged(l, tag)).count();
    let mut lacking = Vec::new();
    let wanted = network_rules(net, fam).len();
    let have = count(&network_tag(net));
    let cmd = tool(fam).2;
    if have < wanted {
        lacking.push(format!("{} of {wanted} {cmd} network rules", wanted - have));
    }
    if !base_complete(saved) {
        lacking.push(format!("minibox's {cmd} chains or the jumps to them"));
    }
    lacking
}

/// Removes a network's own rules.
pub fn remove_network(ex: &Explain, net: &Network) -> Result<()> {
    for &fam in families(net) {
        remove_tagged(ex, fam, &network_tag(net))?;
    }
    Ok(())
}

pub fn remove_tagged(ex: &Explain, fam: Family, tag: &str) -> Result<()> {
    let saved = save(fam)?;
    let rules: Vec<Rule> = saved_rules(&saved)
        .into_iter()
        .filter(|(_, l)| tagged(l, tag))
        .map(|(t, l)| deletion(t, l))
        .collect();
    apply(ex, fam, &rules)
}

/// The rule that deletes a saved rule line of `table`.
pub fn deletion(table: &str, line: &str) -> Rule {
    let table = if table == "nat" { "nat" } else { "filter" };
    Rule::new(table, "-D", line.trim_start_matches("-A ").to_string())
}

/// Whether a saved rule carries exactly this comment (quoted or not).
pub fn tagged(line: &str, tag: &str) -> bool {
    line.contains(&format!("--comment {tag} "))
        || line.contains(&format!("--comment \"{tag}\""))
        || line.ends_with(&format!("--comment {tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{PortMapping, Proto};

    fn net(name: &str, bridge: &str, subnet: &str) -> Network {
        Network {
            name: name.into(),
            id: "0".repeat(64),
            bridge: bridge.into(),
            subnet: subnet.parse().unwrap(),
            gateway: subnet
                .replace(".0/", ".1/")
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap(),
            created: String::new(),
            ipv6: None,
        }
    }

    fn specs(rules: &[Rule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{} {} {}", r.table, r.op, r.spec))
            .collect()
    }

    fn published(id12: &str, addr: &str, port: u16) -> Published {
        Published {
            id12: id12.into(),
            subnet: "10.77.0.0/16".parse().unwrap(),
            addr: addr.parse().unwrap(),
            ipv6: None,
            ports: vec![PortMapping {
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: port,
                container_port: 80,
                proto: Proto::Tcp,
            }],
        }
    }

    #[test]
    fn a_fresh_host_gets_chains_jumps_networks_and_ports_in_one_batch() {
        let n = net("minibox", "minibox0", "10.77.0.0/16");
        let recorded = Recorded {
            networks: vec![n.clone(), net("lab", "minibox1", "10.99.0.0/24")],
            published: vec![published("0123456789ab", "10.77.0.2", 8080)],
            forward_drop: ForwardDrop::default(),
        };
        assert!(!base_complete(""));
        let rules = rebuild_rules("", Family::V4, &recorded);
        let all = specs(&rules);
        for want in [
            "nat : MINIBOX-DNAT - [0:0]",
            "filter : MINIBOX-INPUT - [0:0]",
            "nat -I PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
            "nat -I OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
            "filter -I FORWARD -j MINIBOX-FORWARD",
            "filter -I INPUT -j MINIBOX-INPUT",
            "nat -A MINIBOX-POSTROUTING -m mark --mark 0x2000/0x2000 -j MASQUERADE",
        ] {
            assert!(all.iter().any(|r| r == want), "no {want:?} in {all:#?}");
        }
        assert_eq!(
            all.iter()
                .filter(|r| r.contains("minibox-network:"))
                .count(),
            12
        );
        assert_eq!(
            all.iter()
                .filter(|r| r.contains("minibox:0123456789ab"))
                .count(),
            3
        );
        // Chains exist before anything refers to them.
        let pos = |needle: &str| all.iter().position(|r| r.contains(needle)).unwrap();
        assert!(pos(": MINIBOX-FORWARD") < pos("-j MINIBOX-FORWARD"));
        assert!(!all.iter().any(|r| r.contains("-P FORWARD")));
        let text = restore_input(&rules);
        assert!(text.starts_with("*nat\n:MINIBOX-DNAT - [0:0]\n"), "{text}");
        assert_eq!(text.matches("COMMIT\n").count(), 2, "{text}");
        assert!(
            text.contains("*filter\n:MINIBOX-FORWARD - [0:0]\n"),
            "{text}"
        );
        assert_eq!(
            rules[0].command(Family::V4),
            "iptables -t nat -N MINIBOX-DNAT 2>/dev/null; iptables -t nat -F MINIBOX-DNAT"
        );
    }

    #[test]
    fn network_rules_defend_localhost_and_isolate() {
        let rules = specs(&network_rules(
            &net("lab", "minibox1", "10.99.0.0/24"),
            Family::V4,
        ));
        let tag = "-m comment --comment minibox-network:lab";
        assert_eq!(
            rules,
            [
                format!("nat -A MINIBOX-POSTROUTING -s 10.99.0.0/24 ! -o minibox1 {tag} -j MASQUERADE"),
                format!("filter -A MINIBOX-INPUT -i minibox1 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {tag} -j DROP"),
                format!("filter -I MINIBOX-FORWARD -i minibox1 -m conntrack --ctorigdst 127.0.0.0/8 {tag} -j DROP"),
                format!("filter -I MINIBOX-FORWARD -o minibox1 ! -i minibox1 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {tag} -j DROP"),
                format!("filter -A MINIBOX-FORWARD -i minibox1 {tag} -j ACCEPT"),
                format!("filter -A MINIBOX-FORWARD -o minibox1 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT {tag} -j ACCEPT"),
            ]
        );
        // Every drop is inserted and every accept appended: all networks' drops come first.
        for r in network_rules(&net("lab", "minibox1", "10.99.0.0/24"), Family::V4) {
            if r.table == "filter" && r.spec.starts_with(FORWARD) {
                assert_eq!(r.op == "-I", r.spec.ends_with("-j DROP"), "{}", r.spec);
            }
        }
    }

    /// iptables-save's form of what an earlier run made (quoting and order as it prints them).
    const SAVED: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:MINIBOX-DNAT - [0:0]
:MINIBOX-POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT
-A POSTROUTING -j MINIBOX-POSTROUTING
-A MINIBOX-POSTROUTING -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A MINIBOX-POSTROUTING -s 10.77.0.0/16 ! -o minibox0 -m comment --comment \"minibox-network:minibox\" -j MASQUERADE
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:MINIBOX-FORWARD - [0:0]
-A FORWARD -j MINIBOX-FORWARD
-A MINIBOX-FORWARD -i minibox0 -m comment --comment minibox-network:minibox -j ACCEPT
-A MINIBOX-FORWARD -o minibox0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment minibox-network:minibox -j ACCEPT
COMMIT
";

    #[test]
    fn a_flushed_or_older_layout_is_rebuilt_from_the_records() {
        // An older layout lacks MINIBOX-INPUT: it is rebuilt, its jumps replaced, not doubled.
        assert!(!base_complete(SAVED));
        let n = net("minibox", "minibox0", "10.77.0.0/16");
        let recorded = Recorded {
            networks: vec![n.clone()],
            published: vec![],
            forward_drop: ForwardDrop {
                v4: true,
                v6: false,
            },
        };
        let all = specs(&rebuild_rules(SAVED, Family::V4, &recorded));
        let deleted: Vec<&String> = all.iter().filter(|r| r.contains(" -D ")).collect();
        assert_eq!(
            deleted,
            [
                "nat -D PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
                "nat -D OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
                "nat -D POSTROUTING -j MINIBOX-POSTROUTING",
                "filter -D FORWARD -j MINIBOX-FORWARD",
            ]
        );
        assert_eq!(all.last().unwrap(), "filter -P FORWARD DROP");
        // A complete layout gets only the network's rules it lacks, as a set.
        let complete = SAVED.replace(
            ":MINIBOX-FORWARD - [0:0]\n",
            ":MINIBOX-FORWARD - [0:0]\n:MINIBOX-INPUT - [0:0]\n-A INPUT -j MINIBOX-INPUT\n",
        );
        assert!(base_complete(&complete));
        let all = specs(&additions(
            &complete,
            Family::V4,
            &n,
            ForwardDrop {
                v4: false,
                v6: false,
            },
        ));
        // The three old network rules go and the six current ones come, in one batch.
        assert_eq!(
            all.iter().filter(|r| r.contains(" -D ")).count(),
            3,
            "{all:#?}"
        );
        assert_eq!(all.len(), 9, "{all:#?}");
        let mut full = complete.clone();
        for r in &network_rules(&n, Family::V4)[1..4] {
            let line = format!("-A {}", r.spec);
            full = full.replace("COMMIT\n*filter", &format!("COMMIT\n*filter\n{line}"));
        }
        assert!(additions(
            &full,
            Family::V4,
            &n,
            ForwardDrop {
                v4: false,
                v6: false
            }
        )
        .is_empty());
        // Minibox turned forwarding on: the policy follows, once.
        assert_eq!(
            specs(&additions(
                &full,
                Family::V4,
                &n,
                ForwardDrop {
                    v4: true,
                    v6: false
                }
            )),
            ["filter -P FORWARD DROP"]
        );
        let dropping = full.replace(":FORWARD ACCEPT", ":FORWARD DROP");
        assert!(additions(
            &dropping,
            Family::V4,
            &n,
            ForwardDrop {
                v4: true,
                v6: false
            }
        )
        .is_empty());
    }

    #[test]
    fn container_rules_mark_dnat_and_undo() {
        let m = PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        };
        let mut p = published("0123456789ab", "10.77.0.2", 8080);
        p.ports = vec![m];
        let rules = container_rules(&p, Family::V4);
        let tag = "-m comment --comment minibox:0123456789ab";
        let matches = "-d 127.0.0.1/32 -p tcp -m tcp --dport 8080";
        assert_eq!(
            specs(&rules),
            [
                format!("nat -A MINIBOX-DNAT -s 10.77.0.0/16 {matches} {tag} -j MARK --set-xmark 0x2000/0x2000"),
                format!("nat -A MINIBOX-DNAT -s 127.0.0.0/8 {matches} {tag} -j MARK --set-xmark 0x2000/0x2000"),
                format!("nat -A MINIBOX-DNAT {matches} {tag} -j DNAT --to-destination 10.77.0.2:80"),
            ]
        );
        assert_eq!(
            rules[2].undo().command(Family::V4),
            format!("iptables -t nat -D MINIBOX-DNAT {matches} {tag} -j DNAT --to-destination 10.77.0.2:80")
        );
        // The tag is matched whole, quoted or not.
        assert!(tagged(
            &format!("-A X {tag} -j ACCEPT"),
            "minibox:0123456789ab"
        ));
        assert!(tagged(
            "-A X -m comment --comment \"minibox:0123456789ab\" -j ACCEPT",
            "minibox:0123456789ab"
        ));
        assert!(!tagged(
            &format!("-A X {tag}0 -j ACCEPT"),
            "minibox:0123456789ab"
        ));
    }
}
