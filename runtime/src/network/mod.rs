//! The runtime's side of networking: which namespaces a container gets, the container's named
//! netns (`minibox-<id12>`), and the calls into the network library (`minibox-netns`) that wire
//! it before the container's process execs and undo it after; plus the views the `network`
//! commands print (Docker's JSON, the topology). The run code calls only what is here.

pub mod doctor;
mod error;
mod inspect;
mod names;
mod netns;
pub mod topology;

pub use error::{Error, Result};
pub use inspect::inspect;
pub use names::{Connected, Flags, Names};

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use minibox_netns::{Attached, DnsServer, Endpoint, Explain, PortRequest, PortSpec, Store};
use nix::unistd::Pid;

use crate::container::lifecycle::fault;
use crate::paths::Paths;

/// How a container is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A new network namespace with loopback only (up).
    None,
    /// The host's network namespace.
    Host,
    /// A new network namespace attached to the named bridge network.
    Bridge(String),
}

impl Mode {
    pub fn parse(network: &str) -> Self {
        match network {
            "none" => Mode::None,
            "host" => Mode::Host,
            name => Mode::Bridge(name.to_string()),
        }
    }

    /// Whether the container gets its own network namespace.
    pub fn new_netns(&self) -> bool {
        !matches!(self, Mode::Host)
    }
}

/// What a `run` asks of the network.
#[derive(Debug, Clone)]
pub struct Request {
    pub mode: Mode,
    /// `-p` specs as given.
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port.
    pub publish_all: bool,
    /// The image's EXPOSE entries (`80/tcp`).
    pub exposed: Vec<String>,
    /// The names the container answers to on its network's DNS (a bridge network's).
    pub dns: Option<minibox_netns::Dns>,
    /// `--ip`: the address to take on a user-defined network.
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--ip6`: its IPv6 address on a user-defined dual-stack network.
    pub ip6: Option<std::net::Ipv6Addr>,
    /// `--mac-address`.
    pub mac: Option<[u8; 6]>,
    /// More `--network`s: eth1, eth2, ..., with what `network connect` gave them.
    pub more: Vec<(String, names::Connected)>,
}

/// What was wired; recorded in the container's state so teardown can undo it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The container's IPv4 address, when it has one.
    pub address: Option<std::net::Ipv4Addr>,
    /// The bridge attachment (netns, veth, address, ports), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<minibox_netns::Attachment>,
}

impl Attachment {
    /// The network's DNS server, when it serves this container's names.
    pub fn dns_server(&self) -> Option<std::net::Ipv4Addr> {
        let b = self.bridge.as_ref()?;
        b.dns
            .as_ref()
            .is_some_and(|d| d.served)
            .then_some(b.gateway)
    }

    /// The host as the container reaches it: its network's gateway.
    pub fn gateway(&self) -> Option<std::net::Ipv4Addr> {
        self.bridge.as_ref().map(|b| b.gateway)
    }

    /// Docker's `ps` PORTS column: `0.0.0.0:8080->80/tcp, ...`.
    pub fn ports_column(&self) -> String {
        self.bridge
            .iter()
            .flat_map(|b| b.ports.iter().map(|m| m.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn store(paths: &Paths) -> Store {
    Store::new(&paths.networks(), &paths.network_state())
}

/// Where `--explain` lines go: the user's stderr, also after a detached set-up has pointed fd 2
/// at the container's log (it hands a copy of the original over with [`explain_to`]).
static EXPLAIN_FD: AtomicI32 = AtomicI32::new(libc::STDERR_FILENO);

/// `fd` must stay open for as long as the process may explain (the set-up process keeps its copy
/// until it execs the supervisor).
pub fn explain_to(fd: RawFd) {
    EXPLAIN_FD.store(fd, Ordering::Relaxed);
}

/// The file by which a command run with `--explain` asks whoever tears container `dir` down (its
/// supervisor, a foreground `run`) to explain that on the command's stderr too: it holds the
/// command's pid.
const EXPLAIN_REQUEST: &str = "explain-to";

/// Asks for the teardown of the container whose volatile state is `dir` to be explained to us;
/// the returned guard withdraws the request.
pub fn ask_to_explain(dir: &std::path::Path) -> ExplainRequest {
    let path = dir.join(EXPLAIN_REQUEST);
    let _ = std::fs::write(&path, std::process::id().to_string());
    ExplainRequest(path)
}

pub struct ExplainRequest(std::path::PathBuf);

impl Drop for ExplainRequest {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a command asked for this teardown to be explained (see [`ask_to_explain`]); if so,
/// the explanation goes to that command's stderr from now on: the very same open file (taken
/// with pidfd_getfd), so that lines land where the command's own do, in order.
pub fn explain_if_asked(dir: &std::path::Path) -> bool {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let taken = std::fs::read_to_string(dir.join(EXPLAIN_REQUEST))
        .ok()
        .and_then(|p| Pid::from_raw(p.trim().parse().ok()?))
        .and_then(|pid| pidfd_open(pid, PidfdFlags::empty()).ok())
        .and_then(|pidfd| pidfd_getfd(pidfd, libc::STDERR_FILENO, PidfdGetfdFlags::empty()).ok());
    match taken {
        Some(fd) => {
            // Kept open for as long as this process may explain.
            explain_to(std::os::fd::IntoRawFd::into_raw_fd(fd));
            true
        }
        None => false,
    }
}

pub fn explainer(explain: bool) -> Explain {
    if !explain {
        return Explain::off();
    }
    Explain::to(|line| {
        // SAFETY: the descriptor stays open while the process explains (see `explain_to`).
        let fd = unsafe { BorrowedFd::borrow_raw(EXPLAIN_FD.load(Ordering::Relaxed)) };
        let _ = nix::unistd::write(fd, format!("{line}\n").as_bytes());
    })
}

/// Checks a request before anything is created: the `-p` grammar, EXPOSE entries and that the
/// network exists. `run` can call it early so that bad input leaves nothing behind. Returns the
/// ports to ask the network library for.
pub fn check(paths: &Paths, req: &Request) -> Result<Vec<PortRequest>> {
    let mut specs = req
        .publish
        .iter()
        .map(|p| PortSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if req.publish_all {
        for e in &req.exposed {
            specs.push(PortSpec::exposed(e).map_err(Error::Exposed)?);
        }
    }
    match &req.mode {
        Mode::None | Mode::Host if !specs.is_empty() => {
            return Err(Error::Invalid(
                "publishing ports needs a bridge network: use --network NAME".into(),
            ))
        }
        Mode::Bridge(name) => {
            for (more, _) in &req.more {
                store(paths).network(more)?;
            }
            let net = store(paths).network(name)?;
            if let Some(ip) = req.ip.filter(|ip| !net.subnet.contains(ip)) {
                return Err(Error::Invalid(format!(
                    "--ip {ip} is outside {name}'s subnet {}: choose an address inside it",
                    net.subnet
                )));
            }
            if let Some(ip) = req.ip6 {
                match &net.ipv6 {
                    None => {
                        return Err(Error::Invalid(format!(
                            "--ip6 {ip}: network {name} has no IPv6 (create it with --ipv6)"
                        )))
                    }
                    Some(v6) if !v6.subnet.contains(&ip) => {
                        return Err(Error::Invalid(format!(
                            "--ip6 {ip} is outside {name}'s subnet {}: choose an address inside it",
                            v6.subnet
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        _ => {}
    }
    Ok(specs.iter().flat_map(PortSpec::requests).collect())
}

/// The containers that hold what `req` asks for by value: its fixed host ports and its `--ip`.
/// `run` settles them first, so that a claim left by a container whose owner died is undone
/// where it would conflict (rather than by sweeping every container at each start).
pub fn holders(paths: &Paths, req: &Request, ports: &[PortRequest]) -> Result<Vec<String>> {
    let store = store(paths);
    let mut ids: Vec<String> = ports
        .iter()
        .filter_map(|p| match p.host {
            minibox_netns::HostPort::Fixed(port) => store.port_holder(p.proto, port),
            _ => None,
        })
        .collect();
    if let (Some(ip), Mode::Bridge(name)) = (req.ip, &req.mode) {
        let taken = store.addresses(name)?;
        ids.extend(
            taken
                .into_iter()
                .filter(|(a, _)| *a == ip)
                .map(|(_, id)| id),
        );
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The containers with an interface on `network` (on any network: `None`).
pub fn attached(store: &Store, network: Option<&str>) -> Result<Vec<String>> {
    let mut ids: Vec<String> = store
        .attachments()?
        .iter()
        .filter(|a| network.is_none_or(|n| a.network == n))
        .map(container_of)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The container an attachment belongs to: an interface beyond eth0 has an id of its own, and
/// the container's as its DNS group.
pub fn container_of(a: &minibox_netns::Attachment) -> String {
    match &a.dns {
        Some(d) if !d.group.is_empty() => d.group.clone(),
        _ => a.id.clone(),
    }
}

/// Wires the network of the container whose process is `pid` (already in its own network
/// namespace when the mode asks for one). Called by the parent before the child execs. The
/// bridge comes first, then the netns gets its name, then the library connects it: the order
/// in which `--explain` teaches it. Returns with the DNS servers of its networks that this
/// attach readied, for the caller to start once the container is on its way (see
/// `minibox_netns::Attached`).
pub fn attach(
    paths: &Paths,
    explain: bool,
    id: &str,
    pid: Pid,
    req: &Request,
) -> Result<(Attachment, Vec<DnsServer>)> {
    let ports = check(paths, req)?;
    let Mode::Bridge(name) = &req.mode else {
        return Ok((Attachment::default(), Vec::new()));
    };
    let store = store(paths);
    let ex = explainer(explain);
    let connected = minibox_netns::ensure_network(&store, &ex, name)
        .map_err(Error::from)
        .and_then(|ready| Ok((ready, netns::attach(&ex, &netns::name(id), pid)?)))
        .and_then(|(ready, ns)| {
            let ep = Endpoint {
                netns: &ns,
                ifname: "eth0",
                address: req.ip,
                address6: req.ip6,
                mtu: None,
                hairpin: true,
                dns: req.dns.as_ref(),
                mac: req.mac,
                default_route: true,
            };
            Ok(minibox_netns::attach(&store, &ex, id, &ep, ready, &ports)?)
        });
    let Attached {
        attachment: att,
        server,
    } = match connected {
        Ok(attached) => attached,
        Err(e) => {
            // The library undid its part; the name is ours.
            let _ = netns::delete(&Explain::off(), &netns::name(id));
            return Err(Error::Connect {
                network: name.clone(),
                source: Box::new(e),
            });
        }
    };
    let mut servers: Vec<DnsServer> = server.into_iter().collect();
    // A failure here leaves eth0 to the container's teardown, which detaches every network
    // (the servers readied so far are dropped first: their networks' next attach starts them).
    for (n, (more, connected)) in req.more.iter().enumerate() {
        let dns = req.dns.clone().map(|mut dns| {
            dns.names.extend(connected.aliases.iter().cloned());
            dns
        });
        let attached = join(
            paths,
            explain,
            id,
            more,
            n + 1,
            (connected.ip, connected.ip6),
            dns,
        )?;
        servers.extend(attached.server);
    }
    let attachment = Attachment {
        address: Some(att.address),
        bridge: Some(att),
    };
    Ok((attachment, servers))
}

/// `--link NAME[:ALIAS]` as /etc/hosts lines (Docker keeps its legacy links there too): each
/// linked container's addresses on `network`, where it must be running (`resolve` finds a
/// container's id by name).
pub fn link_lines(
    paths: &Paths,
    links: &[(String, String)],
    network: &str,
    resolve: impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let store = store(paths);
    let mut lines = String::new();
    for (name, alias) in links {
        let Some(id) = resolve(name) else {
            return Err(Error::Invalid(format!("--link {name}: no such container")));
        };
        let on_network = |a: &minibox_netns::Attachment| a.network == network;
        let att = match store.attachment(&id)?.filter(on_network) {
            Some(att) => Some(att),
            None => more_networks(&store, &id)?
                .into_iter()
                .map(|(_, a)| a)
                .find(on_network),
        };
        let Some(att) = att else {
            return Err(Error::Invalid(format!(
                "--link {name}: container {name} is not running on network {network}: start it, or connect it to {network}"
            )));
        };
        let names = match alias == name {
            true => name.clone(),
            false => format!("{alias} {name}"),
        };
        lines.push_str(&format!("{}\t{names}\n", att.address));
        if let Some(v6) = att.ipv6 {
            lines.push_str(&format!("{}\t{names}\n", v6.address));
        }
    }
    Ok(lines)
}

/// How many networks a container can be on (eth0 to eth15).
pub const MAX_NETWORKS: usize = 16;

/// The network library's id for a container's interface `eth<n>`, n > 0 (eth0's is the
/// container's id): distinct from every other id in its first 12 characters, which name veths.
fn more_id(id: &str, n: usize) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{id}/eth{n}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running container's interfaces beyond eth0, with their index.
pub fn more_networks(store: &Store, id: &str) -> Result<Vec<(usize, minibox_netns::Attachment)>> {
    let mut found = Vec::new();
    for n in 1..MAX_NETWORKS {
        if let Some(att) = store.attachment(&more_id(id, n))? {
            found.push((n, att));
        }
    }
    Ok(found)
}

/// Connects the running container `id` (its netns named, see [`netns::name`]) to `network` as
/// `eth<n>`, its names on `dns` shared with its other interfaces (Docker's `network connect`).
pub fn connect(
    paths: &Paths,
    explain: bool,
    id: &str,
    network: &str,
    n: usize,
    addresses: (Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>),
    dns: Option<minibox_netns::Dns>,
) -> Result<minibox_netns::Attachment> {
    Ok(join(paths, explain, id, network, n, addresses, dns)?.serve())
}

/// [`connect`], with the network's DNS server left to the caller to start.
fn join(
    paths: &Paths,
    explain: bool,
    id: &str,
    network: &str,
    n: usize,
    (ip, ip6): (Option<std::net::Ipv4Addr>, Option<std::net::Ipv6Addr>),
    dns: Option<minibox_netns::Dns>,
) -> Result<Attached> {
    let store = store(paths);
    let ex = explainer(explain);
    let ns = netns::path(&netns::name(id));
    let ifname = format!("eth{n}");
    let dns = dns.map(|d| minibox_netns::Dns {
        group: id.to_string(),
        ..d
    });
    let ready = minibox_netns::ensure_network(&store, &ex, network)?;
    let ep = Endpoint {
        netns: &ns,
        ifname: &ifname,
        address: ip,
        address6: ip6,
        mtu: None,
        hairpin: true,
        dns: dns.as_ref(),
        mac: None,
        default_route: false,
    };
    minibox_netns::attach(&store, &ex, &more_id(id, n), &ep, ready, &[]).map_err(|e| {
        Error::Connect {
            network: network.to_string(),
            source: Box::new(e.into()),
        }
    })
}

/// Undoes [`connect`] for `network`.
pub fn disconnect(paths: &Paths, explain: bool, id: &str, network: &str) -> Result<bool> {
    let store = store(paths);
    for (_, att) in more_networks(&store, id)? {
        if att.network == network {
            minibox_netns::detach(&store, &explainer(explain), &att.id)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Undoes what `attach` did; idempotent and tolerant of half-made state. Also finds what a
/// crashed `attach` recorded but never returned, by the container id. With `background`, for a
/// container whose processes are gone, this returns once the netns is dropped and a background
/// process holding the network lock finishes the rest (see `minibox_netns::start_detach`);
/// `--explain` shows every step, so it does them all here.
pub fn detach(paths: &Paths, explain: bool, id: &str, background: bool) -> Result<()> {
    let store = store(paths);
    let ex = explainer(explain);
    let ns = netns::name(id);
    let done = (|| {
        for (_, att) in more_networks(&store, id)? {
            minibox_netns::detach(&store, &ex, &att.id)?;
        }
        if background && !explain {
            if let Some(teardown) = minibox_netns::start_detach(&store, id)? {
                // The kernel frees the veth pair with the netns, asynchronously.
                netns::delete(&ex, &ns)?;
                return Ok(teardown.finish_in_background(&store, || fault("detaching"))?);
            }
        }
        minibox_netns::detach(&store, &ex, id)?;
        // The rules and the cable first, the namespace last, as the tutorials undo it.
        netns::delete(&ex, &ns)
    })();
    done.map_err(|e| Error::Disconnect(Box::new(e)))
}

/// A teardown of a container's network that a process forked later finishes (the one that
/// removes a `--rm` container): begun by [`start_detach`], which holds the network lock from
/// then on and marks the teardown as under way (redone from its record, should that process
/// die), so that whoever needs its ports or address next waits for it.
pub struct Detach {
    store: Store,
    ns: String,
    teardown: minibox_netns::Detaching,
}

/// Begins [`detach`] for a container whose processes are gone: the networks it was connected to
/// are undone here, its first one by [`Detach::finish`]. `None` when nothing is recorded there.
pub fn start_detach(paths: &Paths, id: &str) -> Result<Option<Detach>> {
    let store = store(paths);
    let begun = (|| {
        for (_, att) in more_networks(&store, id)? {
            minibox_netns::detach(&store, &Explain::off(), &att.id)?;
        }
        Ok::<_, Error>(minibox_netns::start_detach(&store, id)?)
    })();
    match begun.map_err(|e| Error::Disconnect(Box::new(e)))? {
        Some(teardown) => Ok(Some(Detach {
            store,
            ns: netns::name(id),
            teardown,
        })),
        None => Ok(None),
    }
}

impl Detach {
    /// The network lock's descriptor, for the forked process to keep.
    pub fn lock_fd(&self) -> RawFd {
        self.teardown.lock_fd()
    }

    /// This process lets go of the network lock; the forked one holds it on.
    pub fn hand_over(self) {
        self.teardown.hand_over()
    }

    /// Drops the netns (the kernel frees the veth pair with it, asynchronously), then removes
    /// the rules and records, and lets go of the lock.
    pub fn finish(self) -> Result<()> {
        fault("detaching");
        let done = netns::delete(&Explain::off(), &self.ns)
            .and_then(|()| Ok(self.teardown.finish(&self.store)?));
        done.map_err(|e| Error::Disconnect(Box::new(e)))
    }
}

/// Finishes network teardowns whose background process died (see `recover::check`).
pub fn recover(paths: &Paths) {
    if let Err(e) = minibox_netns::recover(&store(paths)) {
        eprintln!("minibox: finishing an interrupted network teardown: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `network rm` recovers before it removes a network: the containers with an
    /// interface there (eth1 and on belong to their container by DNS group), no other.
    #[test]
    fn the_containers_attached_to_a_network() {
        let dir = std::env::temp_dir().join(format!("minibox-attached-{}", std::process::id()));
        let store = Store::new(&dir.join("defs"), &dir.join("run"));
        let attachment = |id: &str, network: &str, group: &str| {
            let a: minibox_netns::Attachment = serde_json::from_value(serde_json::json!({
                "id": id, "network": network, "bridge": "b", "netns": "/n", "veth": "v",
                "address": "10.99.0.2", "prefix_len": 24, "gateway": "10.99.0.1",
                "mac": "02:00:00:00:00:01", "mtu": 1500, "ports": [],
                "dns": {"names": [], "group": group},
            }))
            .unwrap();
            store.save_attachment(&a).unwrap();
        };
        attachment("aaa", "lab", "aaa");
        attachment("bbb", "minibox", "bbb");
        attachment("e1-of-bbb", "lab", "bbb");
        attachment("ccc", "other", "");
        assert_eq!(attached(&store, Some("lab")).unwrap(), ["aaa", "bbb"]);
        assert_eq!(
            attached(&store, Some("none")).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(attached(&store, None).unwrap(), ["aaa", "bbb", "ccc"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
