//! minibox-netns: the network of minibox containers, done the way the classic network-namespace
//! tutorials do it by hand: a bridge, a veth pair per container with one end inside the
//! container's netns, an address from IPAM, a default route, NAT and published ports, each step
//! able to explain itself as the equivalent shell command.
//!
//! Entry points: [`attach`] (before the container's process execs), [`detach`] (at teardown
//! and in crash recovery) or [`detach_in_background`] (when a user waits for the teardown, as
//! after a foreground `run`) and [`recover`] (teardowns whose background process died);
//! [`create_network`], [`remove_network`], [`inspect`] and [`topology`] for the `network`
//! commands.

mod background;
pub mod cni;
mod conntrack;
mod error;
mod explain;
mod firewall;
mod netlink;
mod netns;
pub mod ports;
mod store;
mod sysctl;
mod topology;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use ipnet::Ipv4Net;

pub use error::{Error, Result};
pub use explain::Explain;
pub use ports::{PortMapping, PortSpec, Proto};
pub use store::{
    short, Attachment, Network, Store, DEFAULT_BRIDGE, DEFAULT_NETWORK, DEFAULT_SUBNET,
};
pub use topology::topology;

use netlink::Nl;
use ports::{HostPort, Wanted};
use store::Lock;

/// Where the container's end of the veth goes.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The network namespace: `/proc/PID/ns/net`, or a runtime's netns file (CNI_NETNS).
    pub netns: &'a std::path::Path,
    /// The interface's name inside it.
    pub ifname: &'a str,
    /// An address chosen elsewhere (a delegated IPAM plugin); `None` takes the next free one.
    pub address: Option<Ipv4Addr>,
}

/// Connects `id`, whose network namespace is `ep.netns`, to network `network`, publishing
/// `publish`. Everything is recorded before it is made; on any failure what was made is undone
/// and nothing is left behind.
pub fn attach(
    store: &Store,
    ex: &Explain,
    id: &str,
    ep: &Endpoint,
    network: &str,
    publish: &[PortSpec],
) -> Result<Attachment> {
    let started = std::time::Instant::now();
    let net = store.network(network)?;
    let lock = locked(store)?;
    if store.attachment(id)?.is_some() {
        return Err(Error::Attached(id.to_string()));
    }
    let waited = started.elapsed();
    let id12 = short(id).to_string();
    let address = match ep.address {
        Some(addr) => store.reserve_address(&lock, &net, addr, id)?,
        None => store.allocate_address(&lock, &net, id)?,
    };
    let mut att = Attachment {
        id: id.to_string(),
        network: net.name.clone(),
        bridge: net.bridge.clone(),
        netns: format!("minibox-{id12}"),
        veth: format!("mb-{id12}"),
        address,
        prefix_len: net.subnet.prefix_len(),
        gateway: net.gateway,
        ifname: ep.ifname.to_string(),
        mac: netlink::mac_string(&netlink::mac_for(address)),
        mtu: 0,
        ports: Vec::new(),
    };
    let result = store
        .save_attachment(&att)
        .and_then(|_| wire(store, ex, &lock, &net, ep.netns, publish, &mut att));
    match result {
        Ok(()) => {
            tracing::debug!(
                "attached {id12} in {:?} ({waited:?} waiting for the lock)",
                started.elapsed()
            );
            Ok(att)
        }
        Err(e) => {
            if let Err(undo) = undo(store, &Explain::off(), &lock, &att) {
                tracing::warn!("undoing a failed attach of {id12}: {undo}");
            }
            Err(e)
        }
    }
}

fn wire(
    store: &Store,
    ex: &Explain,
    lock: &Lock,
    net: &Network,
    source: &std::path::Path,
    publish: &[PortSpec],
    att: &mut Attachment,
) -> Result<()> {
    // Host ports first: a port in use is refused before any kernel object exists.
    for w in publish.iter().flat_map(PortSpec::wanted) {
        let m = claim_port(store, lock, &att.id, &w, &att.ports)?;
        att.ports.push(m);
        store.save_attachment(att)?;
    }
    let host = Nl::new(None)?;
    att.mtu = ensure_bridge(store, &host, ex, net)?;
    store.save_attachment(att)?;

    // The container's DNAT rules go in while the netlink work is done.
    let rules = firewall::container_rules(short(&att.id), net.subnet, att.address, &att.ports);
    let firewall_rules = firewall::start(ex, &rules)?;

    netns::attach(ex, &att.netns, source)?;
    let ns_path = netns::path(&att.netns);
    let ns_file = std::fs::File::open(&ns_path)
        .map_err(error::io(format!("opening {}", ns_path.display())))?;
    let mac = netlink::mac_for(att.address);
    use std::os::fd::AsRawFd;
    host.add_veth(
        ex,
        &att.veth,
        &att.ifname,
        &att.netns,
        ns_file.as_raw_fd(),
        att.mtu,
        mac,
    )?;
    host.up(ex, &att.veth, Some(&net.bridge))?;
    host.hairpin(ex, &att.veth)?;
    netns::inside(&ns_path, || {
        let inner = Nl::new(Some(&att.netns))?;
        inner.up(ex, "lo", None)?;
        inner.add_addr(ex, &att.ifname, att.address, att.prefix_len)?;
        inner.up(ex, &att.ifname, None)?;
        inner.add_default_route(ex, att.gateway)
    })?;
    let netlink_done = std::time::Instant::now();
    firewall_rules.wait(ex).or_else(|_| {
        // Our chains were removed behind our back: check everything again, then retry once.
        store.clear_ready(&net.name)?;
        ensure_bridge(store, &host, ex, net)?;
        firewall::apply(&Explain::off(), &rules)
    })?;
    tracing::debug!(
        "attach: {:?} more waiting for iptables-restore after the netlink work",
        netlink_done.elapsed()
    );
    for m in att.ports.iter().filter(|m| m.proto == Proto::Udp) {
        firewall::flush_udp(ex, m.host_port);
    }
    Ok(())
}

/// The bridge with its gateway address, the sysctls and the network's firewall rules, made on
/// first use and checked whenever the bridge is not the one last found complete (all under the
/// lock). Returns the MTU for veths: the bridge's, which was taken from the default route's
/// interface when it was made.
fn ensure_bridge(store: &Store, nl: &Nl, ex: &Explain, net: &Network) -> Result<u32> {
    let link = match nl.link(&net.bridge)? {
        Some(link) if link.kind.as_deref() == Some("bridge") => {
            if store.ready(&net.name) == Some(link.index) {
                return Ok(link.mtu);
            }
            let has_gw = nl
                .addrs(link.index)?
                .iter()
                .any(|a| a.addr() == net.gateway);
            if !has_gw {
                check_overlap(nl, net.subnet, Some(&net.bridge))?;
                nl.add_addr(ex, &net.bridge, net.gateway, net.subnet.prefix_len())?;
            }
            let mtu = nl.default_mtu()?;
            if link.mtu != mtu {
                nl.set_mtu(ex, &net.bridge, mtu)?;
            }
            if !link.up {
                nl.up(ex, &net.bridge, None)?;
            }
            nl.link(&net.bridge)?
                .ok_or_else(|| Error::BridgeClash(net.bridge.clone()))?
        }
        Some(_) => return Err(Error::BridgeClash(net.bridge.clone())),
        None => {
            check_overlap(nl, net.subnet, None)?;
            let mtu = nl.default_mtu()?;
            nl.add_bridge(ex, &net.bridge, netlink::mac_for(net.gateway))?;
            nl.set_mtu(ex, &net.bridge, mtu)?;
            nl.add_addr(ex, &net.bridge, net.gateway, net.subnet.prefix_len())?;
            nl.up(ex, &net.bridge, None)?;
            nl.link(&net.bridge)?
                .ok_or_else(|| Error::BridgeClash(net.bridge.clone()))?
        }
    };
    // Turning forwarding on makes the host a router between all its interfaces: as Docker
    // does, the FORWARD policy becomes DROP first (our chain accepts our bridges' traffic). A
    // host that forwarded already keeps its policy.
    let forwarding = sysctl::get("net.ipv4.ip_forward")? == "1";
    firewall::ensure_network(ex, net, !forwarding)?;
    sysctl::ensure(ex, "net.ipv4.ip_forward", "1")?;
    // Lets 127.0.0.1 sources be routed out of the bridge once DNAT'd (localhost publishing);
    // the network's rules drop what else arrives from it for 127.0.0.0/8.
    sysctl::ensure(
        ex,
        &format!("net.ipv4.conf.{}.route_localnet", net.bridge),
        "1",
    )?;
    store.set_ready(&net.name, link.index)?;
    Ok(if link.mtu > 0 { link.mtu } else { 1500 })
}

/// Refuses a subnet that overlaps a route of the host (other than through `own` bridge).
fn check_overlap(nl: &Nl, subnet: Ipv4Net, own: Option<&str>) -> Result<()> {
    let links = nl.links()?;
    let name = |index: Option<u32>| {
        links
            .iter()
            .find(|l| Some(l.index) == index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| "an unknown interface".into())
    };
    for (route, oif, _) in nl.routes()? {
        if route.prefix_len() == 0 {
            continue;
        }
        let overlaps = route.contains(&subnet.network()) || subnet.contains(&route.network());
        if overlaps && own != Some(name(oif).as_str()) {
            return Err(Error::Overlap {
                subnet: subnet.to_string(),
                route: route.to_string(),
                interface: name(oif),
            });
        }
    }
    Ok(())
}

/// Picks and records the host port for one wanted mapping.
fn claim_port(
    store: &Store,
    lock: &Lock,
    id: &str,
    w: &Wanted,
    mine: &[PortMapping],
) -> Result<PortMapping> {
    let host_ip = w.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mapping = |host_port| PortMapping {
        host_ip,
        host_port,
        container_port: w.container,
        proto: w.proto,
    };
    let in_use = |by: String, port| Error::PortInUse {
        port,
        proto: w.proto.to_string(),
        by,
    };
    if let HostPort::Fixed(port) = w.host {
        if let Some(holder) = store.port_holder(w.proto, port) {
            let by = if holder == id {
                "another -p of this container".to_string()
            } else {
                format!("container {}", short(&holder))
            };
            return Err(in_use(by, port));
        }
        if !host_free(host_ip, w.proto, port)? {
            return Err(in_use("a process on the host".into(), port));
        }
        store.claim_port(lock, w.proto, port, id)?;
        return Ok(mapping(port));
    }
    let (first, last) = match w.host {
        HostPort::AnyIn(r) => (r.first, r.last),
        _ => local_port_range(),
    };
    // Random ports start at a random offset, like the kernel's own ephemeral choice.
    let span = u32::from(last - first) + 1;
    let start = match w.host {
        HostPort::Random => {
            u32::from_le_bytes(store::random_id().as_bytes()[..4].try_into().unwrap()) % span
        }
        _ => 0,
    };
    for i in 0..span {
        let port = first + ((start + i) % span) as u16;
        if mine
            .iter()
            .any(|m| m.host_port == port && m.proto == w.proto)
            || store.port_holder(w.proto, port).is_some()
            || !host_free(host_ip, w.proto, port)?
        {
            continue;
        }
        if store.claim_port(lock, w.proto, port, id)? {
            return Ok(mapping(port));
        }
    }
    Err(Error::NoFreePort(format!("{first}-{last}/{}", w.proto)))
}

/// Whether no host socket holds the port: try to bind it ourselves.
fn host_free(ip: Ipv4Addr, proto: Proto, port: u16) -> Result<bool> {
    let addr = SocketAddrV4::new(ip, port);
    let res = match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
        Proto::Sctp => Ok(()),
    };
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(Error::NotLocal(ip.to_string()))
        }
        Err(e) => Err(Error::Io {
            what: format!("checking host port {port}/{proto}"),
            source: e,
        }),
    }
}

/// `/proc/sys/net/ipv4/ip_local_port_range`, where random host ports come from.
fn local_port_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Undoes an attachment: firewall first, then the veth, the netns, the ports and the address,
/// then the record. Idempotent, and tolerant of any half-made state.
pub fn detach(store: &Store, ex: &Explain, att: &Attachment) -> Result<()> {
    let started = std::time::Instant::now();
    let lock = locked(store)?;
    let done = undo(store, ex, &lock, att);
    tracing::debug!("detached {} in {:?}", att.short_id(), started.elapsed());
    done
}

/// [`detach`] for a container whose processes are gone, returning at once: the kernel's part
/// takes tens of milliseconds of waiting (the grace period of an nf_tables commit that deletes,
/// the unregistering of a veth), which a detached process finishes while it holds the network
/// lock, so whoever needs the lock next (to reuse the port or address) waits for it. It drops
/// the netns rather than deleting the veth: the kernel then frees the pair asynchronously —
/// unless the namespace outlives the attachment (`netns_stays`: a CNI runtime's, which may be
/// attached again at once), where the veth is deleted under the lock. A marker written first
/// makes whoever takes the lock after a crash of that process redo the teardown. With
/// `--explain` every step is shown as it happens, so all of it is done here.
pub fn detach_in_background(
    store: &Store,
    ex: &Explain,
    att: &Attachment,
    netns_stays: bool,
) -> Result<()> {
    if ex.enabled() {
        return detach(store, ex, att);
    }
    let started = std::time::Instant::now();
    let lock = locked(store)?;
    store.mark_detaching(&lock, &att.id)?;
    match background::fork_detached(lock.fd()) {
        Ok(true) => {
            if std::env::var_os("MINIBOX_FAULT").is_some_and(|v| v == "detaching") {
                background::exit(9); // test hook: this process dies before its work
            }
            let started = std::time::Instant::now();
            let done = if netns_stays {
                undo(store, &Explain::off(), &lock, att)
            } else {
                undo_dropping_netns(store, &lock, att)
            };
            if done.is_ok() {
                let _ = store.unmark_detaching(&att.id);
            }
            drop(lock);
            // Outside the lock: nothing else can use this veth's name, address or port now.
            if let Err(e) = veth_gone(&att.veth) {
                tracing::warn!("removing {}: {e}", att.veth);
            }
            tracing::debug!("detached {} in {:?}", att.short_id(), started.elapsed());
            background::exit(i32::from(done.is_err()))
        }
        Ok(false) => {
            lock.hand_over();
            tracing::debug!(
                "detaching {} in the background after {:?}",
                att.short_id(),
                started.elapsed()
            );
            Ok(())
        }
        Err(e) => {
            tracing::debug!("detaching {} here: cannot fork: {e}", att.short_id());
            undo(store, ex, &lock, att)?;
            store.unmark_detaching(&att.id)
        }
    }
}

/// [`detach`] from the record alone (crash recovery); nothing recorded is fine.
pub fn detach_id(store: &Store, ex: &Explain, id: &str) -> Result<()> {
    match store.attachment(id)? {
        Some(att) => detach(store, ex, &att),
        None => Ok(()),
    }
}

/// Takes the network lock, first finishing any teardown whose process died on the way (its
/// marker is left, and a live one would hold the lock).
fn locked(store: &Store) -> Result<Lock> {
    let lock = store.lock()?;
    finish_abandoned(store, &lock)?;
    Ok(lock)
}

/// Crash recovery, cheap enough for the start of every command: finishes the teardowns whose
/// background process died, unless someone holds the lock (and will).
pub fn recover(store: &Store) -> Result<()> {
    if store.detaching()?.is_empty() {
        return Ok(());
    }
    match store.try_lock()? {
        Some(lock) => finish_abandoned(store, &lock),
        None => Ok(()),
    }
}

fn finish_abandoned(store: &Store, lock: &Lock) -> Result<()> {
    for id in store.detaching()? {
        tracing::info!("finishing the network teardown of {}", short(&id));
        let done = match store.attachment(&id)? {
            Some(att) => undo(store, &Explain::off(), lock, &att),
            None => Ok(()),
        };
        match done.and_then(|_| store.unmark_detaching(&id)) {
            Ok(()) => {}
            Err(e) => tracing::warn!("finishing the network teardown of {}: {e}", short(&id)),
        }
    }
    Ok(())
}

fn undo(store: &Store, ex: &Explain, _lock: &Lock, att: &Attachment) -> Result<()> {
    // Each step runs even when an earlier one failed; records go only when the kernel side is
    // gone, so a failed teardown can be retried from them.
    let mut results = Vec::new();
    // Rules go first; the (slow) veth deletion waits on the kernel meanwhile.
    let removal = start_rule_removal(ex, att);
    results.push(Nl::new(None).and_then(|nl| nl.del_link(ex, &att.veth)));
    results.push(netns::delete(ex, &att.netns));
    if !att.ports.is_empty() {
        results.push(firewall::finish_removal(ex, short(&att.id), removal));
    }
    release_records(store, att, results)
}

/// [`undo`] for a container whose processes are gone: unmounting its netns frees the netns and
/// with it the veth pair, asynchronously, where deleting the veth waits for the kernel (see
/// [`veth_gone`]).
fn undo_dropping_netns(store: &Store, _lock: &Lock, att: &Attachment) -> Result<()> {
    let ex = Explain::off();
    let removal = start_rule_removal(&ex, att);
    let mut results = vec![netns::delete(&ex, &att.netns)];
    if !att.ports.is_empty() {
        results.push(firewall::finish_removal(&ex, short(&att.id), removal));
    }
    release_records(store, att, results)
}

/// Waits for the kernel to free a veth whose netns was dropped; deletes it if something else
/// keeps that netns alive.
fn veth_gone(veth: &str) -> Result<()> {
    let nl = Nl::new(None)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while nl.link(veth)?.is_some() {
        if std::time::Instant::now() > deadline {
            return nl.del_link(&Explain::off(), veth);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(())
}

fn start_rule_removal(ex: &Explain, att: &Attachment) -> firewall::Batch {
    let subnet = Ipv4Net::new(att.address, att.prefix_len)
        .unwrap_or_default()
        .trunc();
    let rules = firewall::container_rules(short(&att.id), subnet, att.address, &att.ports);
    firewall::start_removal(ex, &rules)
}

/// Frees the ports and the address and removes the record, once every step before went well.
fn release_records(store: &Store, att: &Attachment, mut results: Vec<Result<()>>) -> Result<()> {
    if results.iter().all(Result::is_ok) {
        for m in &att.ports {
            results.push(store.release_port(m.proto, m.host_port, &att.id));
        }
        results.push(store.release_address(&att.network, att.address, &att.id));
        results.push(store.remove_attachment(&att.id));
    }
    results.into_iter().collect()
}

/// `network create`: a new bridge network on a subnet no route of the host overlaps.
/// `bridge` names its bridge; `None` takes the next free `minibox<N>`.
pub fn create_network(
    store: &Store,
    name: &str,
    bridge: Option<&str>,
    subnet: &str,
    gateway: Option<&str>,
) -> Result<Network> {
    let invalid = |why: String| Error::InvalidNetwork(why);
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().unwrap().is_ascii_alphanumeric()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid_name {
        return Err(invalid(format!(
            "{name:?}: names are letters, digits, '_', '.', '-'"
        )));
    }
    let subnet: Ipv4Net = subnet.parse().map_err(|_| {
        invalid(format!(
            "{subnet:?} is not an IPv4 CIDR such as 10.88.0.0/16"
        ))
    })?;
    if subnet.prefix_len() > 30 {
        return Err(invalid(format!("{subnet} is too small: at most /30")));
    }
    let subnet = subnet.trunc();
    let gateway = match gateway {
        None => Ipv4Addr::from(u32::from(subnet.network()) + 1),
        Some(g) => g
            .parse::<Ipv4Addr>()
            .map_err(|_| invalid(format!("gateway {g:?} is not an IPv4 address")))?,
    };
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(invalid(format!(
            "gateway {gateway} is not a host address of {subnet}"
        )));
    }
    let _lock = store.lock()?;
    let nets = store.networks()?;
    if nets.iter().any(|n| n.name == name) {
        return Err(Error::NetworkExists(name.to_string()));
    }
    if let Some(other) = nets
        .iter()
        .find(|n| n.subnet.contains(&subnet.network()) || subnet.contains(&n.subnet.network()))
    {
        return Err(Error::Overlap {
            subnet: subnet.to_string(),
            route: other.subnet.to_string(),
            interface: format!("{} (network {})", other.bridge, other.name),
        });
    }
    let nl = Nl::new(None)?;
    check_overlap(&nl, subnet, None)?;
    let links = nl.links()?;
    let free =
        |b: &String| !nets.iter().any(|n| &n.bridge == b) && !links.iter().any(|l| &l.name == b);
    let bridge = match bridge {
        Some(b) if b.is_empty() || b.len() > 15 || b.contains(['/', ':', ' ']) => {
            return Err(invalid(format!(
                "bridge name {b:?} is not an interface name"
            )))
        }
        Some(b) if !free(&b.to_string()) => return Err(Error::BridgeClash(b.to_string())),
        Some(b) => b.to_string(),
        None => (1..).map(|i| format!("minibox{i}")).find(free).unwrap(),
    };
    let net = Network {
        name: name.to_string(),
        id: store::random_id(),
        bridge,
        subnet,
        gateway,
        created: store::now_rfc3339(),
    };
    store.define(&net)?;
    Ok(net)
}

/// What of an attachment the kernel lacks (CNI's CHECK): the veth on its bridge, the address
/// inside, the default route, the published ports' rules. Empty when all is there.
pub fn check(store: &Store, att: &Attachment) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    let net = store.network(&att.network)?;
    let host = Nl::new(None)?;
    let bridge = host.link(&net.bridge)?;
    match (host.link(&att.veth)?, &bridge) {
        (None, _) => missing.push(format!("veth {}", att.veth)),
        (Some(v), Some(b)) if v.controller == Some(b.index) && v.up => {}
        (Some(_), _) => missing.push(format!("{} up on bridge {}", att.veth, net.bridge)),
    }
    let ns_path = netns::path(&att.netns);
    let inside = netns::inside(&ns_path, || {
        let nl = Nl::new(Some(&att.netns))?;
        let mut lacking = Vec::new();
        match nl.link(&att.ifname)? {
            Some(link) => {
                let want = Ipv4Net::new(att.address, att.prefix_len).unwrap_or_default();
                if !nl.addrs(link.index)?.contains(&want) {
                    lacking.push(format!("address {want} on {}", att.ifname));
                }
            }
            None => lacking.push(format!("interface {}", att.ifname)),
        }
        let default = nl
            .routes()?
            .iter()
            .any(|(dst, _, gw)| dst.prefix_len() == 0 && *gw == Some(att.gateway));
        if !default {
            lacking.push(format!("default route via {}", att.gateway));
        }
        Ok(lacking)
    });
    match inside {
        Ok(lacking) => missing.extend(lacking),
        Err(_) => missing.push(format!("network namespace {}", att.netns)),
    }
    let rules = firewall::container_rules(short(&att.id), net.subnet, att.address, &att.ports);
    missing.extend(firewall::missing(short(&att.id), &net, rules.len())?);
    Ok(missing)
}

/// `network rm`: refused while containers use it; removes the bridge and its rules.
pub fn remove_network(store: &Store, ex: &Explain, name: &str) -> Result<()> {
    if name == DEFAULT_NETWORK {
        return Err(Error::Predefined(name.to_string()));
    }
    let _lock = locked(store)?;
    let net = store.network(name)?;
    let count = store
        .attachments()?
        .iter()
        .filter(|a| a.network == net.name)
        .count();
    if count > 0 {
        return Err(Error::InUse {
            name: name.to_string(),
            count,
        });
    }
    firewall::remove_network(ex, &net)?;
    let nl = Nl::new(None)?;
    if let Some(link) = nl.link(&net.bridge)? {
        if link.kind.as_deref() == Some("bridge") {
            nl.del_link(ex, &net.bridge)?;
        }
    }
    store.undefine(name)
}

/// `network inspect`: Docker's JSON for one network.
pub fn inspect(store: &Store, net: &Network) -> Result<serde_json::Value> {
    let mtu = Nl::new(None)
        .and_then(|nl| Ok(nl.link(&net.bridge)?.map(|l| l.mtu)))
        .ok()
        .flatten();
    let mut containers = serde_json::Map::new();
    for a in store
        .attachments()?
        .into_iter()
        .filter(|a| a.network == net.name)
    {
        containers.insert(
            a.id.clone(),
            serde_json::json!({
                "Name": short(&a.id),
                "EndpointID": a.veth,
                "MacAddress": a.mac,
                "IPv4Address": format!("{}/{}", a.address, a.prefix_len),
                "IPv6Address": "",
            }),
        );
    }
    let mut options = serde_json::json!({
        "com.docker.network.bridge.name": net.bridge,
        "com.docker.network.bridge.enable_ip_masquerade": "true",
    });
    if let Some(mtu) = mtu {
        options["com.docker.network.driver.mtu"] = mtu.to_string().into();
    }
    Ok(serde_json::json!({
        "Name": net.name,
        "Id": net.id,
        "Created": net.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": net.subnet.to_string(), "Gateway": net.gateway.to_string()}],
        },
        "Internal": false,
        "Attachable": false,
        "Containers": containers,
        "Options": options,
        "Labels": {},
    }))
}
