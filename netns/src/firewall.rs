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
//!   DNAT'd (published) connections.
//!
//! Per-container rules carry `-m comment --comment minibox:<id12>`; per-network ones
//! `minibox-network:<name>`, so either can always be found and removed from what the kernel has.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::explain::Explain;
use ipnet::Ipv4Net;

use crate::ports::PortMapping;
use crate::store::Network;

pub const DNAT: &str = "MINIBOX-DNAT";
pub const POSTROUTING: &str = "MINIBOX-POSTROUTING";
pub const FORWARD: &str = "MINIBOX-FORWARD";
/// Marks packets that need masquerading after DNAT: hairpin and localhost-originated.
pub const MARK: &str = "0x2000/0x2000";

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
/// work meanwhile (both mostly wait on the kernel). Its rules are explained once it is done, so
/// `--explain` reads in the order a learner would type the commands.
pub struct Batch {
    child: Option<std::process::Child>,
    explained: Vec<String>,
}

impl Batch {
    fn none() -> Self {
        Self {
            child: None,
            explained: Vec::new(),
        }
    }
}

/// Starts applying rules; [`Batch::wait`] tells how it went.
pub fn start(ex: &Explain, rules: &[Rule]) -> Result<Batch> {
    if rules.is_empty() {
        return Ok(Batch::none());
    }
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
    let mut child = Command::new("iptables-restore")
        .args(["--noflush", "--wait"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| restore_failed(format!("{e} (is iptables installed?)")))?;
    // The batch is far smaller than a pipe buffer: this write does not wait for the reader.
    let written = child.stdin.take().unwrap().write_all(batch.as_bytes());
    let explained = match ex.is_on() {
        true => rules.iter().map(Rule::command).collect(),
        false => Vec::new(),
    };
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

impl Batch {
    /// Explains the batch's rules (once).
    fn say(&mut self, ex: &Explain) {
        for line in std::mem::take(&mut self.explained) {
            ex.say(|| line);
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

/// Our chains, their jumps and the network's own rules: whatever of them is missing.
pub fn ensure_network(ex: &Explain, net: &Network) -> Result<()> {
    let saved = save()?;
    let have = saved_rules(&saved);
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
    for (table, chain) in [("nat", DNAT), ("nat", POSTROUTING), ("filter", FORWARD)] {
        if !has_chain(table, chain) {
            rules.push(Rule::new(table, "-N", chain));
        }
    }
    let jumps = [
        (
            "nat",
            "PREROUTING",
            format!("-m addrtype --dst-type LOCAL -j {DNAT}"),
        ),
        (
            "nat",
            "OUTPUT",
            format!("-m addrtype --dst-type LOCAL -j {DNAT}"),
        ),
        ("nat", "POSTROUTING", format!("-j {POSTROUTING}")),
        ("filter", "FORWARD", format!("-j {FORWARD}")),
    ];
    for (table, chain, spec) in jumps {
        if !has_rule(
            table,
            chain,
            &format!("-j {}", spec.rsplit(' ').next().unwrap()),
        ) {
            rules.push(Rule::new(table, "-I", format!("{chain} {spec}")));
        }
    }
    if !has_rule("nat", POSTROUTING, "--mark 0x2000/0x2000") {
        rules.push(Rule::new(
            "nat",
            "-A",
            format!("{POSTROUTING} -m mark --mark {MARK} -j MASQUERADE"),
        ));
    }
    let tag = network_tag(net);
    let has_tag = have.iter().any(|(_, l)| tagged(l, &tag));
    if !has_tag {
        rules.extend(network_rules(net));
    }
    apply(ex, &rules)
}

fn network_rules(net: &Network) -> Vec<Rule> {
    let (br, tag) = (&net.bridge, network_tag(net));
    vec![
        Rule::new(
            "nat",
            "-A",
            format!("{POSTROUTING} -s {} ! -o {br} -m comment --comment {tag} -j MASQUERADE", net.subnet),
        ),
        Rule::new(
            "filter",
            "-A",
            format!("{FORWARD} -i {br} -m comment --comment {tag} -j ACCEPT"),
        ),
        Rule::new(
            "filter",
            "-A",
            format!(
                "{FORWARD} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment {tag} -j ACCEPT"
            ),
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
        .map(|(t, l)| {
            let table = if t == "nat" { "nat" } else { "filter" };
            Rule::new(table, "-D", l.trim_start_matches("-A ").to_string())
        })
        .collect();
    apply(ex, &rules)
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
