//! Names: one small DNS server per network, on the bridge's gateway address, port 53 (UDP and
//! TCP), as aardvark-dns does for netavark. It answers the names of the endpoints attached to
//! the networks the asking endpoint is on (found by its source address), plus
//! `host.minibox.internal` and `host.docker.internal` (the gateway, that is the host), and
//! forwards every other name to the asker's own servers (`--dns`) or to the host's (its
//! resolv.conf, loopback ones included: the server runs in the host's namespaces).
//!
//! No daemon and no state of its own: the first [`attach`](crate::attach) with [`Dns`] on a
//! network claims the server's lock and binds its sockets, so that the container's first query
//! finds them, and hands its caller a [`Server`] to start (a detached process forked from the
//! caller) once the container is on its way; the detach of the network's last endpoint stops it. It reads the attachment records on every query, so names appear and
//! disappear with the records, at no cost to set-up however many endpoints there are. Whether a
//! server runs is whether its lock (`dns/<network>.lock`, holding its pid) is held; all of it
//! happens under the store's lock, so a server is never stopping while an attach counts on it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};
use simple_dns::rdata::{RData, A, AAAA};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use crate::error::{io, Result};
use crate::store::{Attachment, Lock, Network, Store};

/// What an endpoint asks of the network's DNS: the names it answers to there, and the servers
/// its other queries go to (none: the host's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    /// What the endpoints of one container on several networks share, so that it sees the
    /// names of all of them (default: the attachment's id).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Whether the network's server runs (it could not bind port 53: the container gets the
    /// host's servers in its resolv.conf instead).
    #[serde(default)]
    pub served: bool,
}

/// The names every network answers with its gateway: Docker Desktop's, and minibox's own.
pub const HOST_NAMES: [&str; 2] = ["host.minibox.internal", "host.docker.internal"];

/// Answers carry a short TTL: names follow containers as they come and go.
const TTL: u32 = 1;
/// How long the server waits on an upstream server before trying the next.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle server checks that its network still has endpoints (a detach that
/// crashed before stopping it).
const IDLE_CHECK: Duration = Duration::from_secs(5);

fn lock_path(store: &Store, network: &str) -> PathBuf {
    store.run_dir().join("dns").join(format!("{network}.lock"))
}

/// A network's DNS server made ready by an attach: its lock claimed and port 53 bound (queries
/// already wait in the sockets). [`Server::start`] runs it; dropping it closes both, and the
/// next attach on the network starts a server, as after a crash of its caller.
#[must_use = "a DNS server that is not started closes its sockets"]
pub struct Server {
    held: Flock<File>,
    udp: UdpSocket,
    tcp: TcpListener,
    store: Store,
    net: Network,
}

impl Server {
    /// Forks the server. A failure (no process left to fork) only loses the names until the
    /// network's next attach, which finds the lock free and starts one.
    pub fn start(self) {
        let Server {
            held,
            udp,
            tcp,
            store,
            net,
        } = self;
        let fds = [udp.as_raw_fd(), tcp.as_raw_fd()];
        if let Err(e) = crate::background::serve(held, &fds, || serve(&store, &net, udp, tcp)) {
            tracing::warn!("starting the DNS server of {}: {e}", net.name);
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server({})", self.net.name)
    }
}

/// Readies `net`'s server unless one runs or is readied: whether the network is served (not
/// when port 53 is taken on the gateway), and the server to start when this call readied it.
/// Called under the store's lock.
pub(crate) fn ensure(store: &Store, _lock: &Lock, net: &Network) -> Result<(bool, Option<Server>)> {
    let Some(held) = crate::background::claim(&lock_path(store, &net.name))? else {
        return Ok((true, None));
    };
    let Some((udp, tcp)) = bind(net.gateway)? else {
        return Ok((false, None));
    };
    let server = Server {
        held,
        udp,
        tcp,
        store: store.clone(),
        net: net.clone(),
    };
    Ok((true, Some(server)))
}

/// Port 53 on the gateway, UDP and TCP. A server of the same network that is exiting may hold
/// it a moment longer: retried for a second.
fn bind(gateway: Ipv4Addr) -> Result<Option<(UdpSocket, TcpListener)>> {
    let addr = SocketAddr::from((gateway, 53));
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match UdpSocket::bind(addr).and_then(|u| Ok((u, TcpListener::bind(addr)?))) {
            Ok(pair) => return Ok(Some(pair)),
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                tracing::warn!("no DNS server for names on {gateway}: port 53 is taken ({e})");
                return Ok(None);
            }
            Err(e) => return Err(io(format!("binding {addr}"))(e)),
        }
    }
}

/// Stops `network`'s server when no endpoint with names is left on it. Called under the
/// store's lock after a detach; returns once the server is gone.
pub(crate) fn stop_if_unused(store: &Store, _lock: &Lock, network: &str) -> Result<()> {
    if in_use(store, network)? {
        return Ok(());
    }
    crate::background::stop(&lock_path(store, network))
}

fn in_use(store: &Store, network: &str) -> Result<bool> {
    store.any_attachment(|a| a.network == network && a.dns.is_some())
}

/// The server's loop (in its own process): UDP queries here, TCP ones on a thread, forwarded
/// queries each on a thread of their own so that a slow upstream holds up no local answer.
fn serve(store: &Store, net: &Network, udp: UdpSocket, tcp: TcpListener) {
    let tcp_store = store.clone();
    let tcp_net = net.clone();
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            let (store, net) = (tcp_store.clone(), tcp_net.clone());
            std::thread::spawn(move || serve_tcp(&store, &net, conn));
        }
    });
    let _ = udp.set_read_timeout(Some(IDLE_CHECK));
    let mut buf = [0u8; 4096];
    loop {
        let (len, from) = match udp.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if unused(store, &net.name) {
                    return;
                }
                continue;
            }
            Err(_) => continue,
        };
        // Never an open resolver: only the network's own endpoints and the host are served.
        if !local(net, from.ip()) {
            continue;
        }
        let query = buf[..len].to_vec();
        match answer(store, net, from.ip(), &query) {
            Some(reply) => {
                let _ = udp.send_to(&reply, from);
            }
            None => {
                let (store, udp) = (store.clone(), udp.try_clone());
                std::thread::spawn(move || {
                    let servers = upstreams(&store, from.ip());
                    if let (Some(reply), Ok(udp)) = (forward_udp(&servers, &query), udp) {
                        let _ = udp.send_to(&reply, from);
                    }
                });
            }
        }
    }
}

/// Whether `ip` is on the network's subnet (its endpoints, and the host by its gateway address).
fn local(net: &Network, ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if net.subnet.contains(&v4))
}

/// Whether the network lost its last endpoint with names behind the server's back (checked
/// under the store's lock, which the process then keeps until it exits).
fn unused(store: &Store, network: &str) -> bool {
    match store.try_lock() {
        Ok(Some(lock)) if !in_use(store, network).unwrap_or(true) => {
            std::mem::forget(lock);
            true
        }
        _ => false,
    }
}

fn serve_tcp(store: &Store, net: &Network, mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(UPSTREAM_TIMEOUT * 2));
    let Ok(peer) = conn.peer_addr() else { return };
    if !local(net, peer.ip()) {
        return;
    }
    while let Some(query) = read_tcp(&mut conn) {
        let reply = match answer(store, net, peer.ip(), &query) {
            Some(reply) => Some(reply),
            None => forward_tcp(&upstreams(store, peer.ip()), &query),
        };
        let Some(reply) = reply else { return };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if conn.write_all(&framed).is_err() {
            return;
        }
    }
}

fn read_tcp(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// The reply to a query for a name this network knows; `None` for one to forward.
fn answer(store: &Store, net: &Network, from: IpAddr, query: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::parse(query).ok()?;
    let [question] = packet.questions.as_slice() else {
        return None;
    };
    let name = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_lowercase();
    let addresses = if HOST_NAMES.contains(&name.as_str()) {
        let mut gateways = vec![IpAddr::V4(net.gateway)];
        gateways.extend(net.ipv6.map(|v6| IpAddr::V6(v6.gateway)));
        gateways
    } else {
        let IpAddr::V4(from) = from else { return None };
        let atts = store.attachments().ok()?;
        lookup(&atts, net, from, &name)?
    };
    let mut reply = Packet::new_reply(packet.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if packet.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
    }
    reply.questions.push(question.clone());
    // A known name has A records, and AAAA ones on a dual-stack network: other types get an
    // empty NOERROR answer, never NXDOMAIN (which resolvers would take for the whole name).
    let (a, aaaa) = match question.qtype {
        QTYPE::ANY => (true, true),
        QTYPE::TYPE(TYPE::A) => (true, false),
        QTYPE::TYPE(TYPE::AAAA) => (false, true),
        _ => (false, false),
    };
    for addr in addresses {
        let data = match addr {
            IpAddr::V4(v4) if a => RData::A(A::from(v4)),
            IpAddr::V6(v6) if aaaa => RData::AAAA(AAAA::from(v6)),
            _ => continue,
        };
        reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            TTL,
            data,
        ));
    }
    *reply.rcode_mut() = RCODE::NoError;
    reply.build_bytes_vec_compressed().ok()
}

/// The addresses `name` has for the endpoint at `from` on `net`: the endpoints that answer to
/// it on any network the asker is on (the one asked first). The host (the gateway) sees this
/// network's names; an endpoint of another network, none (it asks its own network's server).
/// `None`: no such name for this asker. Each endpoint's IPv4 address, then its IPv6 one.
pub(crate) fn lookup(
    atts: &[Attachment],
    net: &Network,
    from: Ipv4Addr,
    name: &str,
) -> Option<Vec<IpAddr>> {
    let network = net.name.as_str();
    let group = |a: &'_ Attachment| -> String {
        match &a.dns {
            Some(d) if !d.group.is_empty() => d.group.clone(),
            _ => a.id.clone(),
        }
    };
    let asker = atts
        .iter()
        .find(|a| a.network == network && a.address == from)
        .map(group);
    if asker.is_none() && from != net.gateway {
        return None;
    }
    let mut networks: Vec<&str> = vec![network];
    if let Some(asker) = &asker {
        for a in atts
            .iter()
            .filter(|a| &group(a) == asker && a.network != network)
        {
            networks.push(&a.network);
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for net in networks {
        for a in atts.iter().filter(|a| a.network == net) {
            let Some(dns) = &a.dns else { continue };
            if dns.names.iter().any(|n| n.eq_ignore_ascii_case(name)) && seen.insert(group(a)) {
                found.push(IpAddr::V4(a.address));
                found.extend(a.ipv6.map(|v6| IpAddr::V6(v6.address)));
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

/// Where the asker's other queries go: its own servers, else the host's.
fn upstreams(store: &Store, from: IpAddr) -> Vec<SocketAddr> {
    let own = store.attachments().ok().and_then(|atts| {
        atts.into_iter()
            .find(|a| IpAddr::V4(a.address) == from)
            .and_then(|a| a.dns)
            .map(|d| d.servers)
            .filter(|s| !s.is_empty())
    });
    let servers = own.unwrap_or_else(|| {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        nameservers(&conf)
    });
    servers.into_iter().map(|ip| (ip, 53).into()).collect()
}

/// The `nameserver` lines of a resolv.conf.
pub fn nameservers(conf: &str) -> Vec<IpAddr> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.split_whitespace().next()?.parse().ok())
        .collect()
}

fn forward_udp(servers: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for server in servers {
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = sock.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        if sock.connect(server).and_then(|_| sock.send(query)).is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(len) = sock.recv(&mut buf) {
            buf.truncate(len);
            return Some(buf);
        }
    }
    None
}

fn forward_tcp(servers: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for server in servers {
        let Ok(mut conn) = TcpStream::connect_timeout(server, UPSTREAM_TIMEOUT) else {
            continue;
        };
        let _ = conn.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        if conn.write_all(&framed).is_err() {
            continue;
        }
        if let Some(reply) = read_tcp(&mut conn) {
            return Some(reply);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(id: &str, network: &str, addr: [u8; 4], names: &[&str]) -> Attachment {
        Attachment {
            id: id.into(),
            network: network.into(),
            bridge: String::new(),
            netns: String::new(),
            veth: String::new(),
            ifname: "eth0".into(),
            address: addr.into(),
            prefix_len: 24,
            gateway: [10, 0, 0, 1].into(),
            mac: String::new(),
            mtu: 1500,
            ports: Vec::new(),
            firewall: crate::firewall::Driver::Nftables,
            hairpin: true,
            dns: Some(Dns {
                names: names.iter().map(|n| n.to_string()).collect(),
                ..Dns::default()
            }),
            ipv6: None,
        }
    }

    #[test]
    fn names_resolve_on_shared_networks_only() {
        let atts = [
            att("a", "front", [10, 1, 0, 2], &["web"]),
            att("b", "front", [10, 1, 0, 3], &["proxy", "edge"]),
            Attachment {
                // Another endpoint of b's, under its own id.
                dns: Some(Dns {
                    group: "b".into(),
                    names: vec!["proxy".into(), "edge".into()],
                    ..Dns::default()
                }),
                ..att("b2", "back", [10, 2, 0, 3], &[])
            },
            att("c", "back", [10, 2, 0, 4], &["db"]),
        ];
        let net = |name: &str, gateway: [u8; 4]| Network {
            name: name.into(),
            id: String::new(),
            bridge: String::new(),
            subnet: "10.0.0.0/8".parse().unwrap(),
            gateway: gateway.into(),
            created: String::new(),
            ipv6: None,
        };
        let (front, back) = (net("front", [10, 1, 0, 1]), net("back", [10, 2, 0, 1]));
        let ask = |net: &str, from: [u8; 4], name| {
            let net = if net == "front" { &front } else { &back };
            lookup(&atts, net, from.into(), name)
        };
        // b is on both networks: it sees web and db.
        assert_eq!(
            ask("front", [10, 1, 0, 3], "db"),
            Some(vec![[10, 2, 0, 4].into()])
        );
        assert_eq!(
            ask("back", [10, 2, 0, 3], "WEB"),
            Some(vec![[10, 1, 0, 2].into()])
        );
        // web and db share no network.
        assert_eq!(ask("front", [10, 1, 0, 2], "db"), None);
        assert_eq!(ask("back", [10, 2, 0, 4], "web"), None);
        // The address on the network asked comes first.
        assert_eq!(
            ask("back", [10, 2, 0, 4], "edge"),
            Some(vec![[10, 2, 0, 3].into()])
        );
        assert_eq!(ask("front", [10, 1, 0, 2], "nope"), None);
        // The host sees the network's names; a stranger none.
        assert_eq!(
            ask("back", [10, 2, 0, 1], "db"),
            Some(vec![[10, 2, 0, 4].into()])
        );
        assert_eq!(ask("back", [10, 1, 0, 2], "db"), None);
    }

    #[test]
    fn nameservers_of_a_resolv_conf() {
        let conf = "search lan\nnameserver 127.0.0.53\nnameserver ::1 # x\noptions ndots:2\n";
        assert_eq!(
            nameservers(conf),
            vec![IpAddr::from([127, 0, 0, 53]), "::1".parse().unwrap()]
        );
    }
}
