//! The firewall, through iptables: whichever of iptables-nft or iptables-legacy `iptables` is.
//!
//! Each setup and each teardown is one `iptables-restore --noflush --wait` batch; every rule is
//! also reported as the single `iptables` command that adds or deletes it.
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

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::explain::{heredoc, Explain};
use ipnet::Ipv4Net;

use crate::ports::PortMapping;
use crate::store::{Network, Store};

pub const DNAT: &str = "MINIBOX-DNAT";
pub const POSTROUTING: &str = "MINIBOX-POSTROUTING";
pub const FORWARD: &str = "MINIBOX-FORWARD";
pub const INPUT: &str = "MINIBOX-INPUT";
/// Marks packets that need masquerading after DNAT: hairpin and localhost-originated.
pub const MARK: &str = "0x2000/0x2000";
/// The key under which the store keeps the FORWARD policy minibox changed.
pub const FORWARD_POLICY: &str = "iptables.filter.FORWARD";
/// How every batch is applied (and explained).
const RESTORE: &str = "iptables-restore --noflush --wait";

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

    pub fn command(&self) -> String {
        format!("iptables -t {} {} {}", self.table, self.op, self.spec)
    }

    fn undo(&self) -> Self {
        Rule::new(self.table, "-D", self.spec.clone())
    }
}

/// Applies rules as one `iptables-restore --noflush --wait` batch, reporting each one.
pub fn apply(ex: &Explain, rules: &[Rule]) -> Result<()> {
    start(ex, rules)?.wait(ex)
}

/// A batch being applied by an `iptables-restore` process, so that the caller can do netlink
/// work meanwhile (both mostly wait on the kernel). It is explained (as the here-document fed to
/// `iptables-restore`) once it is done, so `--explain` reads in the order a learner would type
/// the commands.
pub struct Batch {
    child: Option<std::process::Child>,
    explained: Option<String>,
}

impl Batch {
    fn none() -> Self {
        Self {
            child: None,
            explained: None,
        }
    }
}

/// Starts applying rules; [`Batch::wait`] tells how it went.
pub fn start(ex: &Explain, rules: &[Rule]) -> Result<Batch> {
    if rules.is_empty() {
        return Ok(Batch::none());
    }
    let batch = restore_input(rules);
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| restore_failed(format!("{e} (is iptables installed?)")))?;
    // The batch is far smaller than a pipe buffer: this write does not wait for the reader.
    let written = child.stdin.take().unwrap().write_all(batch.as_bytes());
    let explained = ex.is_on().then(|| heredoc(RESTORE, &batch));
    let batch = Batch {
        child: Some(child),
        explained,
    };
    if let Err(e) = written {
        // A restore that refused and exited early says why on stderr; a broken pipe says less.
        return Err(batch
            .wait(&Explain::off())
            .err()
            .unwrap_or_else(|| restore_failed(e.to_string())));
    }
    Ok(batch)
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
            batch.push_str(&format!("{} {}\n", r.op, r.spec));
        }
        batch.push_str("COMMIT\n");
    }
    batch
}

impl Batch {
    /// Explains the batch (once).
    fn say(&mut self, ex: &Explain) {
        if let Some(text) = self.explained.take() {
            ex.say(|| text);
        }
    }

    pub fn wait(mut self, ex: &Explain) -> Result<()> {
        self.say(ex);
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        let out = child
            .wait_with_output()
            .map_err(|e| restore_failed(e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        Err(restore_failed(
            err.lines().next().unwrap_or("failed").trim().to_string(),
        ))
    }
}

impl Drop for Batch {
    /// A batch left behind by an early return still finishes before anything undoes it.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

fn restore_failed(why: String) -> Error {
    Error::Firewall {
        what: "iptables-restore".into(),
        why,
    }
}

/// What the kernel has now, as `iptables-save` prints it.
fn save() -> Result<String> {
    let out = Command::new("iptables-save")
        .output()
        .map_err(|e| Error::Firewall {
            what: "iptables-save".into(),
            why: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Firewall {
            what: "iptables-save".into(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Our chains, their jumps and the network's own rules: whatever of them is missing. With
/// `forward_policy_drop` (the caller is about to turn forwarding on), the host's FORWARD policy
/// becomes DROP in the same batch, before forwarding is on.
pub fn ensure_network(
    store: &Store,
    ex: &Explain,
    net: &Network,
    forward_policy_drop: bool,
) -> Result<()> {
    let saved = save()?;
    if forward_policy_drop {
        // A table never loaded has the kernel's default policy.
        let policy = forward_policy(&saved).unwrap_or("ACCEPT");
        if policy != "DROP" {
            store.record_prior(FORWARD_POLICY, policy)?;
        }
    }
    let rules = additions(&saved, net, forward_policy_drop);
    if ex.is_on() {
        // What a fresh host would need and this one has: shown, marked, ahead of what is done.
        let done: Vec<String> = rules.iter().map(Rule::command).collect();
        let in_place: Vec<Rule> = additions("", net, forward_policy_drop)
            .into_iter()
            .filter(|r| !done.contains(&r.command()))
            .collect();
        explain_in_place(ex, &in_place);
    }
    apply(ex, &rules)
}

/// The filter FORWARD chain's policy in a saved ruleset.
fn forward_policy(saved: &str) -> Option<&str> {
    let mut filter = false;
    for line in saved.lines() {
        if let Some(t) = line.strip_prefix('*') {
            filter = t == "filter";
        } else if filter {
            if let Some(rest) = line.strip_prefix(":FORWARD ") {
                return rest.split_whitespace().next();
            }
        }
    }
    None
}

/// Puts the filter FORWARD policy back (`system reset`).
pub fn set_forward_policy(ex: &Explain, policy: &str) -> Result<()> {
    apply(
        ex,
        &[Rule::new("filter", "-P", format!("FORWARD {policy}"))],
    )
}

/// Removes all of minibox's firewall: the jumps to its chains, then the chains with whatever
/// they hold (`system reset`).
pub fn remove_all(ex: &Explain) -> Result<()> {
    let saved = save()?;
    let ours = [DNAT, POSTROUTING, FORWARD, INPUT];
    let mut rules = Vec::new();
    for (table, line) in saved_rules(&saved) {
        let jumps_to_ours = ours.iter().any(|c| line.ends_with(&format!("-j {c}")));
        let in_ours = ours.iter().any(|c| line.starts_with(&format!("-A {c} ")));
        if line.starts_with("-A ") && jumps_to_ours && !in_ours {
            rules.push(deletion(table, line));
        }
    }
    for (table, line) in saved_rules(&saved) {
        let table = if table == "nat" { "nat" } else { "filter" };
        if let Some(chain) = ours.iter().find(|c| line.starts_with(&format!(":{c} "))) {
            rules.push(Rule::new(table, "-F", *chain));
            rules.push(Rule::new(table, "-X", *chain));
        }
    }
    apply(ex, &rules)
}

/// Says a network's whole set of chains, jumps and rules as found in place (`--explain` of a
/// network known complete).
pub fn explain_network_in_place(ex: &Explain, net: &Network) {
    if ex.is_on() {
        explain_in_place(ex, &additions("", net, false));
    }
}

fn explain_in_place(ex: &Explain, rules: &[Rule]) {
    if !rules.is_empty() {
        ex.already(|| heredoc(RESTORE, &restore_input(rules)));
    }
}

/// What [`ensure_network`] adds to a ruleset saved as `saved`.
fn additions(saved: &str, net: &Network, forward_policy_drop: bool) -> Vec<Rule> {
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
    let mut rules = Vec::new();
    for (table, chain) in [
        ("nat", DNAT),
        ("nat", POSTROUTING),
        ("filter", FORWARD),
        ("filter", INPUT),
    ] {
        if !has_chain(table, chain) {
            rules.push(Rule::new(table, "-N", chain));
        }
    }
    let jumps = [
        ("nat", "PREROUTING", "-m addrtype --dst-type LOCAL ", DNAT),
        ("nat", "OUTPUT", "-m addrtype --dst-type LOCAL ", DNAT),
        ("nat", "POSTROUTING", "", POSTROUTING),
        ("filter", "FORWARD", "", FORWARD),
        ("filter", "INPUT", "", INPUT),
    ];
    for (table, chain, matches, target) in jumps {
        if !has_rule(table, chain, &format!("-j {target}")) {
            rules.push(Rule::new(
                table,
                "-I",
                format!("{chain} {matches}-j {target}"),
            ));
        }
    }
    if !has_rule("nat", POSTROUTING, "--mark 0x2000/0x2000") {
        rules.push(Rule::new(
            "nat",
            "-A",
            format!("{POSTROUTING} -m mark --mark {MARK} -j MASQUERADE"),
        ));
    }
    // The network's rules are made and checked as a set: one missing (or a set from an older
    // minibox) and the set is made again.
    let tag = network_tag(net);
    let wanted = network_rules(net);
    let present: Vec<(&str, &str)> = have
        .iter()
        .filter(|(_, l)| tagged(l, &tag))
        .copied()
        .collect();
    if present.len() != wanted.len() {
        rules.extend(present.into_iter().map(|(t, l)| deletion(t, l)));
        rules.extend(wanted);
    }
    if forward_policy_drop {
        rules.push(Rule::new("filter", "-P", "FORWARD DROP"));
    }
    rules
}

/// A network's own rules. Drops are inserted and accepts appended, so every network's drops
/// come before any network's accepts, whatever order the networks were made in.
fn network_rules(net: &Network) -> Vec<Rule> {
    let (br, subnet) = (&net.bridge, net.subnet);
    let tag = format!("-m comment --comment {}", network_tag(net));
    vec![
        Rule::new(
            "nat",
            "-A",
            format!("{POSTROUTING} -s {subnet} ! -o {br} {tag} -j MASQUERADE"),
        ),
        // Localhost is not reachable from containers (CVE-2020-8558): route_localnet lets
        // 127.0.0.0/8 in from the bridge for the host's own published-port replies; anything
        // else arriving for it is dropped, as kube-proxy does...
        Rule::new(
            "filter",
            "-A",
            format!("{INPUT} -i {br} -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {tag} -j DROP"),
        ),
        // ...and so is a frame for 127.0.0.0/8 that a port published on 127.0.0.1 DNATs to a
        // container: such ports are for the host's own processes only.
        Rule::new(
            "filter",
            "-I",
            format!("{FORWARD} -i {br} -m conntrack --ctorigdst 127.0.0.0/8 {tag} -j DROP"),
        ),
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
    ]
}

/// The per-port rules of one container, in the order they are added.
pub fn container_rules(
    id12: &str,
    subnet: Ipv4Net,
    addr: Ipv4Addr,
    ports: &[PortMapping],
) -> Vec<Rule> {
    let tag = format!("-m comment --comment minibox:{id12}");
    let mut rules = Vec::new();
    for m in ports {
        let dst = if m.host_ip.is_unspecified() {
            String::new()
        } else {
            format!(" -d {}/32", m.host_ip)
        };
        let p = m.proto;
        let matches = format!("{dst} -p {p} -m {p} --dport {}", m.host_port);
        // Hairpin (a container reaching a published port through the host) and localhost
        // connections need their source rewritten too, or replies would bypass the DNAT.
        for src in [subnet.to_string(), "127.0.0.0/8".to_string()] {
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
                "{DNAT}{matches} {tag} -j DNAT --to-destination {addr}:{}",
                m.container_port
            ),
        ));
    }
    rules
}

/// Starts removing a container's recorded rules in one batch; [`finish_removal`] completes it.
pub fn start_removal(ex: &Explain, expected: &[Rule]) -> Batch {
    let undo: Vec<Rule> = expected.iter().map(Rule::undo).collect();
    // Explained at once: teardown removes the firewall rules first.
    let mut batch = start(ex, &undo).unwrap_or_else(|_| Batch::none());
    batch.say(ex);
    batch
}

/// When the batch failed (half-made, or already partly removed), removes whatever the kernel
/// still has with the container's tag.
pub fn finish_removal(ex: &Explain, id12: &str, batch: Batch) -> Result<()> {
    match batch.wait(ex) {
        Ok(()) => Ok(()),
        Err(_) => remove_tagged(ex, &format!("minibox:{id12}")),
    }
}

/// Which of a container's `expected` tagged rules and its network's rules the kernel lacks,
/// by their tags (what `iptables-save` prints differs in form from what was added).
pub fn missing(id12: &str, net: &Network, expected: usize) -> Result<Vec<String>> {
    let saved = save()?;
    let rules = saved_rules(&saved);
    let count = |tag: &str| rules.iter().filter(|(_, l)| tagged(l, tag)).count();
    let mut lacking = Vec::new();
    let have = count(&format!("minibox:{id12}"));
    if have < expected {
        lacking.push(format!("{} of {expected} port rules", expected - have));
    }
    let wanted = network_rules(net).iter().filter(|r| r.op != "-N").count();
    let have = count(&network_tag(net));
    if have < wanted {
        lacking.push(format!("{} of {wanted} network rules", wanted - have));
    }
    Ok(lacking)
}

/// Removes a network's own rules.
pub fn remove_network(ex: &Explain, net: &Network) -> Result<()> {
    remove_tagged(ex, &network_tag(net))
}

fn remove_tagged(ex: &Explain, tag: &str) -> Result<()> {
    let saved = save()?;
    let rules: Vec<Rule> = saved_rules(&saved)
        .into_iter()
        .filter(|(_, l)| tagged(l, tag))
        .map(|(t, l)| deletion(t, l))
        .collect();
    apply(ex, &rules)
}

/// The rule that deletes a saved rule line of `table`.
fn deletion(table: &str, line: &str) -> Rule {
    let table = if table == "nat" { "nat" } else { "filter" };
    Rule::new(table, "-D", line.trim_start_matches("-A ").to_string())
}

/// Whether a saved rule carries exactly this comment (quoted or not).
fn tagged(line: &str, tag: &str) -> bool {
    line.contains(&format!("--comment {tag} "))
        || line.contains(&format!("--comment \"{tag}\""))
        || line.ends_with(&format!("--comment {tag}"))
}

/// Forgets stale UDP flows to a port being (re)published, or they keep going to the previous
/// container. Done over ctnetlink; a failure only warns (the port works for new flows).
pub fn flush_udp(ex: &Explain, port: u16) {
    ex.say(|| format!("conntrack -D -p udp --orig-port-dst {port}"));
    if let Err(e) = crate::conntrack::flush_udp_port(port) {
        tracing::warn!("stale UDP flows to port {port} were not flushed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

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
        }
    }

    fn specs(rules: &[Rule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{} {} {}", r.table, r.op, r.spec))
            .collect()
    }

    #[test]
    fn a_fresh_host_gets_chains_jumps_and_the_network_in_one_batch() {
        let n = net("minibox", "minibox0", "10.77.0.0/16");
        let rules = additions("", &n, false);
        let all = specs(&rules);
        for want in [
            "nat -N MINIBOX-DNAT",
            "filter -N MINIBOX-INPUT",
            "nat -I PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
            "nat -I OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT",
            "filter -I FORWARD -j MINIBOX-FORWARD",
            "filter -I INPUT -j MINIBOX-INPUT",
            "nat -A MINIBOX-POSTROUTING -m mark --mark 0x2000/0x2000 -j MASQUERADE",
        ] {
            assert!(all.iter().any(|r| r == want), "no {want:?} in {all:#?}");
        }
        // Chains exist before anything refers to them.
        let pos = |needle: &str| all.iter().position(|r| r.contains(needle)).unwrap();
        assert!(pos("-N MINIBOX-FORWARD") < pos("-j MINIBOX-FORWARD"));
        assert!(!all.iter().any(|r| r.contains("-P FORWARD")));
        let text = restore_input(&rules);
        assert!(text.starts_with("*nat\n"), "{text}");
        assert_eq!(text.matches("COMMIT\n").count(), 2, "{text}");
        assert!(text.contains("*filter\n-N MINIBOX-FORWARD\n"), "{text}");
    }

    #[test]
    fn network_rules_defend_localhost_and_isolate() {
        let rules = specs(&network_rules(&net("lab", "minibox1", "10.99.0.0/24")));
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
        for r in network_rules(&net("lab", "minibox1", "10.99.0.0/24")) {
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
    fn an_older_layout_is_completed_and_its_network_set_remade() {
        let n = net("minibox", "minibox0", "10.77.0.0/16");
        let all = specs(&additions(SAVED, &n, true));
        assert_eq!(
            all.iter()
                .filter(|r| r.contains(" -N "))
                .collect::<Vec<_>>(),
            ["filter -N MINIBOX-INPUT"]
        );
        assert_eq!(
            all.iter()
                .filter(|r| r.contains(" -I INPUT")
                    || r.contains(" -I FORWARD")
                    || r.contains("PREROUTING -m"))
                .collect::<Vec<_>>(),
            ["filter -I INPUT -j MINIBOX-INPUT"]
        );
        // The three old network rules go and the six current ones come, in one batch.
        assert_eq!(
            all.iter().filter(|r| r.contains(" -D ")).count(),
            3,
            "{all:#?}"
        );
        assert_eq!(
            all.iter()
                .filter(|r| r.contains("minibox-network:minibox") && !r.contains(" -D "))
                .count(),
            6
        );
        assert_eq!(all.last().unwrap(), "filter -P FORWARD DROP");
        // A complete ruleset needs nothing.
        let mut complete = SAVED.replace(
            ":MINIBOX-FORWARD - [0:0]\n",
            ":MINIBOX-FORWARD - [0:0]\n:MINIBOX-INPUT - [0:0]\n-A INPUT -j MINIBOX-INPUT\n",
        );
        // The three rules this layout added to the old network set.
        for r in &network_rules(&n)[1..4] {
            let line = format!("-A {}", r.spec);
            complete = complete.replace("COMMIT\n*filter", &format!("COMMIT\n*filter\n{line}"));
        }
        let left = specs(&additions(&complete, &n, false));
        assert!(left.is_empty(), "{left:#?}");
    }

    #[test]
    fn container_rules_mark_dnat_and_undo() {
        let m = PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        };
        let rules = container_rules(
            "0123456789ab",
            "10.77.0.0/16".parse().unwrap(),
            "10.77.0.2".parse().unwrap(),
            &[m],
        );
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
            rules[2].undo().command(),
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
