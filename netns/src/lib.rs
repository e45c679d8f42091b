//! minibox-netns: a network library for containers, done the way the classic network-namespace
//! tutorials do it by hand: a bridge, a veth pair per network namespace with one end inside it,
//! an address from IPAM, a default route, NAT and published ports, each step able to explain
//! itself as the equivalent shell command.
//!
//! The core knows network namespaces, not containers: [`attach`] connects a netns given by its
//! file (made, and named if at all, by the caller: a runtime, or the [`cni`] plugin handed
//! `CNI_NETNS`) under an id, and [`detach`] undoes it by that id. Its only state is its own
//! [`Store`]: network definitions, IPAM, published ports and attachment records, each written
//! before the kernel objects it describes, so that [`detach`] and [`recover`] can always finish
//! what a crash left. [`start_detach`] lets a caller finish a teardown in a background process.
//! [`ensure_network`], [`create_network`] and [`remove_network`] manage networks; [`check`]
//! verifies an attachment; [`links`] and [`routes`] give the host's view for display. Docker's
//! `-p` grammar ([`PortSpec`]) is a separate helper yielding the [`PortRequest`]s the core takes.

pub mod background;
pub mod cni;
mod conntrack;
mod dns;
mod error;
mod explain;
mod firewall;
mod netlink;
mod netns;
mod nfnetlink;
mod ports;
mod proxy;
mod publish;
mod store;
mod sysctl;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::{Ipv4Net, Ipv6Net};

pub use dns::{nameservers, Dns, Server as DnsServer, HOST_NAMES};
pub use error::{Error, Result};
pub use explain::Explain;
pub use firewall::{Driver as FirewallDriver, DRIVER_ENV as FIREWALL_DRIVER_ENV};
pub use netlink::{Link, Route};
pub use ports::{HostPort, PortMapping, PortRequest, Proto, Range};
pub use publish::PortSpec;
pub use store::{
    short, Address6, Attachment, Family, Network, Store, Subnet6, DEFAULT_BRIDGE, DEFAULT_NETWORK,
    DEFAULT_SUBNET,
};

use netlink::Nl;
use store::{ForwardDrop, Lock};

/// Where the veth's inner end goes.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// The network namespace's file: `/run/netns/NAME`, `/proc/PID/ns/net`, CNI_NETNS. It must
    /// outlive the attachment only as long as the caller wants to see it (detach needs none).
    pub netns: &'a Path,
    /// The interface's name inside it.
    pub ifname: &'a str,
    /// An address chosen elsewhere (a delegated IPAM plugin); `None` takes the next free one.
    pub address: Option<Ipv4Addr>,
    /// On a dual-stack network, an IPv6 address chosen elsewhere (`--ip6`); `None` takes the
    /// one matching the IPv4 address (see [`Store::allocate_address6`]).
    pub address6: Option<Ipv6Addr>,
    /// The veth pair's MTU; `None` takes the bridge's (that of the default route's interface).
    pub mtu: Option<u32>,
    /// Whether the bridge sends a frame back out of the port it came in by, so that the
    /// container reaches its own published ports through the host (as `minibox run` wants).
    pub hairpin: bool,
    /// The names it answers to on the network's DNS server, which starts with the first
    /// endpoint that has some (see the `dns` module); `None` for none.
    pub dns: Option<&'a Dns>,
    /// The interface's MAC address; `None` derives one from its IPv4 address, as Docker does.
    pub mac: Option<[u8; 6]>,
    /// Whether the default route goes through this network's gateway (a netns has one: that
    /// of its first network).
    pub default_route: bool,
}

/// What [`attach`] made: the attachment, and the network's DNS server when this attach readied
/// it (its sockets bound, its lock held). The caller starts it once its container is on its
/// way, so that the server's fork is not on the container's path to its `exec`.
#[derive(Debug)]
#[must_use = "the network's DNS server must be started (or dropped, closing it)"]
pub struct Attached {
    pub attachment: Attachment,
    pub server: Option<DnsServer>,
}

impl Attached {
    /// Starts the DNS server now, for a caller with nothing to start first.
    pub fn serve(self) -> Attachment {
        if let Some(server) = self.server {
            server.start();
        }
        self.attachment
    }
}

/// A network made ready by [`ensure_network`]: its bridge, sysctls and firewall rules checked
/// (and made where missing) under the network lock, which it goes on holding, so that
/// [`attach`] wires an endpoint to it without checking them again.
pub struct Ready {
    net: Network,
    lock: Lock,
    /// A netlink connection in the caller's (the host's) namespace, used again by [`attach`].
    nl: Nl,
    firewall: firewall::Driver,
    bridge: Bridge,
}

impl Ready {
    pub fn network(&self) -> &Network {
        &self.net
    }
}

/// A network's bridge as [`ensure_bridge`] leaves it: its index (for the messages that put
/// veths on it) and its MTU (for the veths).
#[derive(Debug, Clone, Copy)]
struct Bridge {
    index: u32,
    mtu: u32,
}

/// Connects `ep` to the `network` that [`ensure_network`] readied under `id`, publishing
/// `ports`. Everything is recorded before it is made; on any failure what was made is undone
/// and nothing is left behind. The network lock goes with `network`, at the end.
pub fn attach(
    store: &Store,
    ex: &Explain,
    id: &str,
    ep: &Endpoint,
    network: Ready,
    ports: &[PortRequest],
) -> Result<Attached> {
    let started = Instant::now();
    let ready = &network;
    let (net, lock) = (&ready.net, &ready.lock);
    // Opened first: a netns that is not there is refused before anything is made.
    let ns_file = std::fs::File::open(ep.netns)
        .map_err(error::io(format!("opening {}", ep.netns.display())))?;
    if store.attachment(id)?.is_some() {
        return Err(Error::Attached(id.to_string()));
    }
    let id12 = short(id).to_string();
    let address = match ep.address {
        Some(addr) => store.reserve_address(lock, net, addr, id)?,
        None => store.allocate_address(lock, net, id)?,
    };
    if ep.address6.is_some() && net.ipv6.is_none() {
        let _ = store.release_address(&net.name, address, id);
        return Err(Error::InvalidNetwork(format!(
            "--ip6 needs a network with IPv6: {} has none (network create --ipv6)",
            net.name
        )));
    }
    let ipv6 = match &net.ipv6 {
        Some(v6) => match store.allocate_address6(lock, net, v6, address, ep.address6, id) {
            Ok(a) => Some(Address6 {
                address: a,
                prefix_len: v6.subnet.prefix_len(),
                gateway: v6.gateway,
            }),
            Err(e) => {
                let _ = store.release_address(&net.name, address, id);
                return Err(e);
            }
        },
        None => None,
    };
    let mut att = Attachment {
        id: id.to_string(),
        network: net.name.clone(),
        bridge: net.bridge.clone(),
        netns: ep.netns.display().to_string(),
        veth: format!("mb-{id12}"),
        address,
        prefix_len: net.subnet.prefix_len(),
        gateway: net.gateway,
        ifname: ep.ifname.to_string(),
        mac: netlink::mac_string(&ep.mac.unwrap_or(netlink::mac_for(address))),
        mtu: 0,
        ports: Vec::new(),
        firewall: ready.firewall,
        hairpin: ep.hairpin,
        dns: ep.dns.cloned(),
        ipv6,
    };
    let result = store
        .save_attachment(&att)
        .and_then(|_| wire(store, ex, ready, (&ns_file, ep), ports, &mut att))
        .and_then(|_| serve_names(store, ex, lock, net, &mut att));
    match result {
        Ok(server) => {
            tracing::debug!("attached {id12} in {:?}", started.elapsed());
            Ok(Attached {
                attachment: att,
                server,
            })
        }
        Err(e) => {
            if let Err(undo) = undo(store, &Explain::off(), lock, &att) {
                tracing::warn!("undoing a failed attach of {id12}: {undo}");
            }
            Err(e)
        }
    }
}

/// Readies the network's DNS server for an endpoint with names (see [`Attached`]). A server
/// that cannot start (port 53 taken on the gateway) fails nothing: the endpoint's record says
/// it is not served.
fn serve_names(
    store: &Store,
    ex: &Explain,
    lock: &Lock,
    net: &Network,
    att: &mut Attachment,
) -> Result<Option<DnsServer>> {
    let Some(names) = &mut att.dns else {
        return Ok(None);
    };
    let (served, server) = dns::ensure(store, lock, net).unwrap_or_else(|e| {
        tracing::warn!("starting the DNS server of {}: {e}", net.name);
        (false, None)
    });
    names.served = served;
    ex.note(|| {
        format!(
            "minibox's DNS server for network {} answers {} on {}:53 (and forwards other names \
             to the host's servers)",
            net.name,
            names.names.join(", "),
            net.gateway
        )
    });
    store.save_attachment(att)?;
    Ok(server)
}

/// Takes the network lock and makes `network`'s bridge, sysctls and firewall rules unless they
/// are known complete (every set-up checks them): the first half of a set-up, which
/// [`attach`] finishes under the same lock. A caller may make the netns in between (so that
/// `--explain` reads bridge, then namespace, then cable). A network found complete is
/// explained too (as in place).
pub fn ensure_network(store: &Store, ex: &Explain, network: &str) -> Result<Ready> {
    let started = Instant::now();
    let net = store.network(network)?;
    let firewall = firewall::Driver::selected()?;
    let lock = locked(store)?;
    tracing::debug!("waited {:?} for the network lock", started.elapsed());
    let nl = Nl::new(None)?;
    let bridge = ensure_bridge(store, &nl, ex, &net, firewall, None, true)?;
    Ok(Ready {
        net,
        lock,
        nl,
        firewall,
        bridge,
    })
}

fn wire(
    store: &Store,
    ex: &Explain,
    ready: &Ready,
    (ns_file, ep): (&std::fs::File, &Endpoint),
    ports: &[PortRequest],
    att: &mut Attachment,
) -> Result<()> {
    let (net, host) = (&ready.net, &ready.nl);
    let label = att.netns_label();
    // What the inside needs is settled before the host side adds the ports.
    let settled = att.clone();
    let (firewall_rules, ()) = netns::inside_after(
        ns_file,
        || host_side(store, ex, ready, (ns_file, ep), ports, att),
        || {
            sysctl::prepare_inside();
            Nl::new(Some(&label))
        },
        |nl| inside(&nl, ex, &label, &settled, ep.default_route),
    )?;
    let netlink_done = Instant::now();
    let published = firewall::Published::of(att);
    firewall_rules.wait(ex).or_else(|_| {
        // Our chains were removed behind our back: check everything again, then retry once.
        store.clear_ready(&net.name)?;
        ensure_bridge(store, host, ex, net, att.firewall, Some(&att.id), false)?;
        firewall::publish(&Explain::off(), att.firewall, &published)?.wait(&Explain::off())
    })?;
    tracing::debug!(
        "attach: {:?} more waiting for the firewall batch after the netlink work",
        netlink_done.elapsed()
    );
    for m in att.ports.iter().filter(|m| m.proto == Proto::Udp) {
        firewall::flush_udp(ex, m.host_port);
    }
    proxy::ensure(store, ex, att)
}

/// The host's side of [`wire`]: the host ports, the container's DNAT rules (sent, their batch
/// returned to be waited for after the netlink work), the veth on its bridge.
fn host_side(
    store: &Store,
    ex: &Explain,
    ready: &Ready,
    (ns_file, ep): (&std::fs::File, &Endpoint),
    ports: &[PortRequest],
    att: &mut Attachment,
) -> Result<firewall::Batch> {
    let (net, lock, host) = (&ready.net, &ready.lock, &ready.nl);
    // Host ports first: a port in use is refused before any of the endpoint's kernel objects
    // exists.
    for w in ports {
        let loopback6 = w.host_ip == Some(Ipv6Addr::LOCALHOST.into());
        if loopback6 && w.proto != Proto::Tcp {
            return Err(Error::InvalidNetwork(format!(
                "cannot publish {} on [::1]: only TCP is relayed there; publish it on 127.0.0.1 or [::]",
                w.proto
            )));
        }
        if w.host_ip.is_some_and(|ip| ip.is_ipv6()) && att.ipv6.is_none() && !loopback6 {
            return Err(Error::InvalidNetwork(format!(
                "cannot publish on {}: network {} has no IPv6 (network create --ipv6)",
                ports::bracketed(w.host_ip.unwrap()),
                net.name
            )));
        }
        let m = claim_port(store, lock, &att.id, w, &att.ports)?;
        att.ports.push(m);
        // A port published on every address is, on a dual-stack network, published on
        // every IPv6 address too (as Docker does): the same host port, `[::]`.
        if w.host_ip.is_none() && att.ipv6.is_some() {
            att.ports.push(PortMapping {
                host_ip: Ipv6Addr::UNSPECIFIED.into(),
                ..m
            });
        }
        store.save_attachment(att)?;
    }
    att.mtu = ep.mtu.unwrap_or(ready.bridge.mtu);
    store.save_attachment(att)?;

    // The container's DNAT rules go in while the netlink work is done.
    let published = firewall::Published::of(att);
    let firewall_rules = firewall::publish(ex, att.firewall, &published)?;

    let label = att.netns_label();
    let mac = ep.mac.unwrap_or(netlink::mac_for(att.address));
    host.add_veth(
        ex,
        &att.veth,
        &att.ifname,
        &label,
        ns_file.as_raw_fd(),
        att.mtu,
        mac,
        (&net.bridge, ready.bridge.index),
    )?;
    // A bridge port needs no IPv6 of its own. Turned off before the container's side comes up
    // (the kernel gives it an address only then), it puts no routes in the host's IPv6
    // tables, which the kernel walks whole on every link change: three routes per container.
    if sysctl::ipv6_available().is_ok() {
        let key = format!("net.ipv6.conf.{}.disable_ipv6", att.veth);
        ex.say(|| format!("sysctl -w {key}=1"));
        sysctl::set(&key, "1")?;
    }
    if ep.hairpin {
        host.hairpin(ex, &att.veth)?;
    }
    Ok(firewall_rules)
}

/// The inside of [`wire`], on `inner`, a connection in the endpoint's netns (`label`): lo up,
/// the interface's addresses and sysctls, the interface up, the default routes.
fn inside(
    inner: &Nl,
    ex: &Explain,
    label: &str,
    att: &Attachment,
    default_route: bool,
) -> Result<()> {
    inner.up(ex, "lo", None)?;
    let eth = (att.ifname.as_str(), inner.index(&att.ifname)?);
    inner.add_addr(ex, eth, att.address, att.prefix_len)?;
    if let Some(v6) = &att.ipv6 {
        // A namespace may start with IPv6 off (a host whose defaults are inherited); and
        // no duplicate address detection, which would hold the addresses back for a
        // second or two (Docker does the same).
        let conf = format!("net.ipv6.conf.{}", att.ifname);
        sysctl::ensure_inside(ex, label, &format!("{conf}.disable_ipv6"), "0")?;
        sysctl::ensure_inside(ex, label, &format!("{conf}.accept_dad"), "0")?;
        inner.add_addr(ex, eth, v6.address, v6.prefix_len)?;
    } else if sysctl::ipv6_available_inside().is_ok() {
        // An IPv4-only network: no IPv6 on its interface (as Docker does), so that its
        // coming up floods no IPv6 multicast (DAD, router solicitation, MLD) to every
        // port of the bridge.
        let key = format!("net.ipv6.conf.{}.disable_ipv6", att.ifname);
        sysctl::ensure_inside(ex, label, &key, "1")?;
    }
    inner.up(ex, &att.ifname, None)?;
    if default_route {
        inner.add_default_route(ex, att.gateway.into())?;
        if let Some(v6) = &att.ipv6 {
            inner.add_default_route(ex, v6.gateway.into())?;
        }
    }
    Ok(())
}

/// The bridge with its gateway address, the sysctls and the network's firewall rules, made on
/// first use and checked whenever the bridge is not the one last found complete or the firewall's
/// cheap check finds something missing (all under the lock). Returns the bridge's index and the
/// MTU for veths: the bridge's, which was taken from the default route's interface when it was
/// made. A rebuild of the firewall leaves out the ports of `attaching` (whose caller adds them
/// next).
/// `say_complete`: a network found complete is explained too (as in place).
fn ensure_bridge(
    store: &Store,
    nl: &Nl,
    ex: &Explain,
    net: &Network,
    driver: firewall::Driver,
    attaching: Option<&str>,
    say_complete: bool,
) -> Result<Bridge> {
    let mac = netlink::mac_for(net.gateway);
    let (bridge, prefix) = (&net.bridge, net.subnet.prefix_len());
    let link = match nl.link(bridge)? {
        Some(link) if link.kind.as_deref() == Some("bridge") => {
            if store.ready(&net.name) == Some(link.index)
                && firewall::intact(driver, net, store.forward_drop())?
            {
                if say_complete {
                    explain_in_place(ex, driver, net, link.mtu, store.forward_drop());
                }
                return Ok(Bridge {
                    index: link.index,
                    mtu: link.mtu,
                });
            }
            ex.already(|| netlink::cmd::add_bridge("ip", bridge, mac));
            let mtu = nl.default_mtu()?;
            if link.mtu != mtu {
                nl.set_mtu(ex, bridge, mtu)?;
            } else {
                ex.already(|| netlink::cmd::set_mtu("ip", bridge, mtu));
            }
            let has_gw = nl
                .addrs(link.index)?
                .iter()
                .any(|a| a.addr() == net.gateway);
            if !has_gw {
                check_overlap(nl, net.subnet, Some(bridge))?;
                nl.add_addr(ex, (bridge, link.index), net.gateway, prefix)?;
            } else {
                ex.already(|| netlink::cmd::add_addr("ip", bridge, net.gateway, prefix));
            }
            if !link.up {
                nl.up(ex, bridge, None)?;
            } else {
                ex.already(|| netlink::cmd::up("ip", bridge, None));
            }
            nl.link(bridge)?
                .ok_or_else(|| Error::BridgeClash(bridge.clone()))?
        }
        Some(_) => return Err(Error::BridgeClash(bridge.clone())),
        None => {
            check_overlap(nl, net.subnet, None)?;
            let mtu = nl.default_mtu()?;
            nl.add_bridge(ex, bridge, mac)?;
            nl.set_mtu(ex, bridge, mtu)?;
            nl.add_addr(ex, (bridge, nl.index(bridge)?), net.gateway, prefix)?;
            nl.up(ex, bridge, None)?;
            nl.link(bridge)?
                .ok_or_else(|| Error::BridgeClash(bridge.clone()))?
        }
    };
    if let Some(v6) = &net.ipv6 {
        sysctl::ipv6_available()?;
        sysctl::ensure(
            None,
            ex,
            &format!("net.ipv6.conf.{}.disable_ipv6", net.bridge),
            "0",
        )?;
        if !nl
            .addrs6(link.index)?
            .contains(&(v6.gateway, v6.subnet.prefix_len()))
        {
            nl.add_addr(
                ex,
                (&net.bridge, link.index),
                v6.gateway,
                v6.subnet.prefix_len(),
            )?;
        }
    }
    reattach(store, nl, ex, net, link.index)?;
    // Turning forwarding on makes the host a router between all its interfaces: as Docker
    // does, the FORWARD policy becomes DROP first (our chain accepts our bridges' traffic). A
    // host that forwarded already keeps its policy.
    if sysctl::get("net.ipv4.ip_forward")? != "1" {
        store.set_forward_drop(Family::V4)?;
    }
    let forward6 = "net.ipv6.conf.all.forwarding";
    if net.ipv6.is_some() && sysctl::get(forward6)? != "1" {
        store.set_forward_drop(Family::V6)?;
    }
    firewall::ensure_network(store, ex, driver, net, store.forward_drop(), || {
        recorded(store, driver, attaching)
    })?;
    sysctl::ensure(Some(store), ex, "net.ipv4.ip_forward", "1")?;
    if net.ipv6.is_some() {
        sysctl::ensure(Some(store), ex, forward6, "1")?;
    }
    // Lets 127.0.0.1 sources be routed out of the bridge once DNAT'd (localhost publishing);
    // the network's rules drop what else arrives from it for 127.0.0.0/8.
    sysctl::ensure(None, ex, &route_localnet(bridge), "1")?;
    store.set_ready(&net.name, link.index)?;
    Ok(Bridge {
        index: link.index,
        mtu: if link.mtu > 0 { link.mtu } else { 1500 },
    })
}

fn route_localnet(bridge: &str) -> String {
    format!("net.ipv4.conf.{bridge}.route_localnet")
}

/// `--explain` of a network known complete: all of its host plumbing, said as found in place,
/// so that the script still builds it on a fresh host.
fn explain_in_place(
    ex: &Explain,
    driver: firewall::Driver,
    net: &Network,
    mtu: u32,
    forward_drop: ForwardDrop,
) {
    if !ex.is_on() {
        return;
    }
    let (bridge, prefix) = (&net.bridge, net.subnet.prefix_len());
    let mac = netlink::mac_for(net.gateway);
    ex.already(|| netlink::cmd::add_bridge("ip", bridge, mac));
    ex.already(|| netlink::cmd::set_mtu("ip", bridge, mtu));
    ex.already(|| netlink::cmd::add_addr("ip", bridge, net.gateway, prefix));
    ex.already(|| netlink::cmd::up("ip", bridge, None));
    firewall::explain_network_in_place(ex, driver, net, forward_drop);
    for key in ["net.ipv4.ip_forward".to_string(), route_localnet(bridge)] {
        ex.already(|| format!("sysctl -w {key}=1"));
    }
}

/// Puts the veths of running containers back on their bridge when they are not on it (it was
/// deleted and made again while they ran).
fn reattach(store: &Store, nl: &Nl, ex: &Explain, net: &Network, bridge: u32) -> Result<()> {
    for att in store
        .attachments()?
        .iter()
        .filter(|a| a.network == net.name)
    {
        match nl.link(&att.veth)? {
            Some(veth) if veth.controller != Some(bridge) || !veth.up => {
                nl.up(ex, &att.veth, Some((&net.bridge, bridge)))?;
                if att.hairpin {
                    nl.hairpin(ex, &att.veth)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `network reload` (Podman's): every firewall rule of minibox made again from the records in
/// one batch, then each network's bridge, address, sysctls and the veths of its running
/// containers checked and restored. `names` limits the bridges to those networks (the firewall
/// is rebuilt whole); none means every network that has containers or a bridge. Returns the
/// networks reloaded.
pub fn reload(store: &Store, ex: &Explain, names: &[String]) -> Result<Vec<Network>> {
    let driver = firewall::Driver::selected()?;
    let _lock = locked(store)?;
    let nl = Nl::new(None)?;
    let nets = match names.is_empty() {
        false => names
            .iter()
            .map(|n| store.network(n))
            .collect::<Result<Vec<_>>>()?,
        true => {
            let atts = store.attachments()?;
            let mut nets = Vec::new();
            for net in store.networks()? {
                if atts.iter().any(|a| a.network == net.name) || nl.link(&net.bridge)?.is_some() {
                    nets.push(net);
                }
            }
            nets
        }
    };
    firewall::rebuild(store, ex, driver, &recorded(store, driver, None)?)?;
    for net in &nets {
        store.clear_ready(&net.name)?;
        ensure_bridge(store, &nl, ex, net, driver, None, false)?;
    }
    // A proxy of ports on [::1] that was killed.
    for att in store.attachments()? {
        proxy::ensure(store, ex, &att)?;
    }
    Ok(nets)
}

/// What of `net`'s firewall rules (and minibox's base rules) under `driver` the kernel lacks,
/// for views.
pub fn check_network(driver: FirewallDriver, net: &Network) -> Result<Vec<String>> {
    firewall::missing_network(driver, net)
}

/// What the records say the firewall should hold under `driver` (but `except`'s ports).
fn recorded(
    store: &Store,
    driver: firewall::Driver,
    except: Option<&str>,
) -> Result<firewall::Recorded> {
    Ok(firewall::Recorded {
        networks: store.networks()?,
        published: store
            .attachments()?
            .iter()
            .filter(|a| {
                a.firewall == driver && !a.ports.is_empty() && Some(a.id.as_str()) != except
            })
            .map(firewall::Published::of)
            .collect(),
        forward_drop: store.forward_drop(),
    })
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
    w: &PortRequest,
    mine: &[PortMapping],
) -> Result<PortMapping> {
    let host_ip = w.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into());
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
        // One host port serves both families (`-p 0.0.0.0:80:80 -p [::]:80:80`, what a
        // restart asks again for a port of a dual-stack network): claimed once.
        let other_family = mine.iter().any(|m| {
            m.host_port == port && m.proto == w.proto && m.host_ip.is_ipv6() != host_ip.is_ipv6()
        });
        if other_family {
            return Ok(mapping(port));
        }
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
fn host_free(ip: IpAddr, proto: Proto, port: u16) -> Result<bool> {
    let addr = SocketAddr::new(ip, port);
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

/// Undoes what [`attach`] recorded under `id`: firewall first, then the veth, the ports and the
/// address, then the record. Idempotent (nothing recorded is fine), and tolerant of any
/// half-made state. The netns itself is the caller's.
pub fn detach(store: &Store, ex: &Explain, id: &str) -> Result<()> {
    let started = Instant::now();
    let lock = locked(store)?;
    let done = match store.attachment(id)? {
        Some(att) => undo(store, ex, &lock, &att),
        None => Ok(()),
    };
    tracing::debug!("detached {} in {:?}", short(id), started.elapsed());
    done
}

/// A teardown begun with [`start_detach`]: it holds the network lock, and a marker says that it
/// is under way, so that whoever takes the lock after a crash of the process finishing it redoes
/// it from the record.
pub struct Detaching {
    lock: Lock,
    att: Attachment,
}

/// Begins [`detach`] for a teardown that another process finishes, as a caller does when a user
/// waits: the kernel's part takes tens of milliseconds of waiting (the grace period of an
/// nf_tables commit that deletes, the unregistering of a veth), and a process that holds the
/// network lock meanwhile makes whoever needs the same port or address next wait for it. `None`
/// when nothing is recorded under `id`.
pub fn start_detach(store: &Store, id: &str) -> Result<Option<Detaching>> {
    let lock = locked(store)?;
    let Some(att) = store.attachment(id)? else {
        return Ok(None);
    };
    store.mark_detaching(&lock, id)?;
    Ok(Some(Detaching { lock, att }))
}

impl Detaching {
    /// Finishes the teardown in a detached process that holds on to the lock, and returns at
    /// once (or when no process can be forked, once it is done here). `first` runs in that
    /// process before anything else (a caller's test hook).
    pub fn finish_in_background(self, store: &Store, first: impl FnOnce()) -> Result<()> {
        match background::fork_detached(&[self.lock.fd()]) {
            Ok(true) => {
                first();
                let done = self.finish(store);
                background::exit(i32::from(done.is_err()))
            }
            Ok(false) => {
                self.lock.hand_over();
                Ok(())
            }
            Err(e) => {
                tracing::debug!("finishing a network teardown here: cannot fork: {e}");
                self.finish(store)
            }
        }
    }

    /// The descriptor of the network lock, for a caller that forks the process finishing the
    /// teardown itself ([`background::fork_detached`], with more work of its own): that process
    /// keeps it, and this one lets go with [`Self::hand_over`].
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self.lock.fd()
    }

    /// This process lets go of the network lock without unlocking it: the forked process that
    /// kept [`Self::lock_fd`] holds it on, and finishes.
    pub fn hand_over(self) {
        self.lock.hand_over()
    }

    /// Removes the rules, the veth and the records. A netns that is still there (a CNI
    /// runtime's, which may be attached again at once) has its veth deleted under the lock; one
    /// that the caller dropped frees the pair with it, asynchronously, where deleting the veth
    /// waits for the kernel: then the lock goes first, and the veth is waited for (and deleted
    /// if something keeps it).
    pub fn finish(self, store: &Store) -> Result<()> {
        let started = Instant::now();
        let Detaching { lock, att } = self;
        let ex = Explain::off();
        let dropped = !att.netns_path().exists();
        let done = match dropped {
            false => undo(store, &ex, &lock, &att),
            true => {
                let removal = start_rule_removal(&ex, &att);
                let mut results = Vec::new();
                if !att.ports.is_empty() {
                    results.push(finish_rule_removal(&ex, &att, removal));
                }
                release_records(store, &lock, &att, results)
            }
        };
        if done.is_ok() {
            let _ = store.unmark_detaching(&att.id);
        }
        drop(lock);
        // Outside the lock: nothing else can use this veth's name, address or port now.
        if dropped {
            if let Err(e) = veth_gone(&att.veth) {
                tracing::warn!("removing {}: {e}", att.veth);
            }
        }
        tracing::debug!("detached {} in {:?}", att.short_id(), started.elapsed());
        done
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

fn undo(store: &Store, ex: &Explain, lock: &Lock, att: &Attachment) -> Result<()> {
    // Each step runs even when an earlier one failed; records go only when the kernel side is
    // gone, so a failed teardown can be retried from them.
    let mut results = Vec::new();
    // Rules go first; the (slow) veth deletion waits on the kernel meanwhile.
    let removal = start_rule_removal(ex, att);
    results.push(Nl::new(None).and_then(|nl| nl.del_link(ex, &att.veth)));
    if !att.ports.is_empty() {
        results.push(finish_rule_removal(ex, att, removal));
    }
    release_records(store, lock, att, results)
}

/// Waits for the kernel to free a veth whose netns was dropped; deletes it if something else
/// keeps that netns alive.
fn veth_gone(veth: &str) -> Result<()> {
    let nl = Nl::new(None)?;
    let deadline = Instant::now() + Duration::from_secs(1);
    while nl.link(veth)?.is_some() {
        if Instant::now() > deadline {
            return nl.del_link(&Explain::off(), veth);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn start_rule_removal(ex: &Explain, att: &Attachment) -> firewall::Batch {
    firewall::start_unpublish(ex, att.firewall, &firewall::Published::of(att))
}

fn finish_rule_removal(ex: &Explain, att: &Attachment, batch: firewall::Batch) -> Result<()> {
    firewall::finish_unpublish(ex, att.firewall, &firewall::Published::of(att), batch)
}

/// Frees the ports and the address and removes the record, once every step before went well;
/// stops the network's DNS server with its last endpoint that had names.
fn release_records(
    store: &Store,
    lock: &Lock,
    att: &Attachment,
    mut results: Vec<Result<()>>,
) -> Result<()> {
    if att.ports.iter().any(PortMapping::proxied) {
        results.push(proxy::stop(store, &att.id));
    }
    if results.iter().all(Result::is_ok) {
        for m in &att.ports {
            results.push(store.release_port(m.proto, m.host_port, &att.id));
        }
        results.push(store.release_address(&att.network, att.address, &att.id));
        if let Some(v6) = &att.ipv6 {
            results.push(store.release_address(&att.network, v6.address, &att.id));
        }
        results.push(store.remove_attachment(&att.id));
        if att.dns.is_some() {
            results.push(dns::stop_if_unused(store, lock, &att.network));
        }
    }
    results.into_iter().collect()
}

/// `network create`: a new bridge network on a subnet no route of the host overlaps.
/// `bridge` names its bridge; `None` takes the next free `minibox<N>`. `subnets` and
/// `gateways` are Docker's repeatable `--subnet` and `--gateway`: one IPv4 subnet, and with
/// `ipv6` one IPv6 subnet beside it (a dual-stack network); each gateway goes with the
/// subnet of its family (default: the subnet's first address).
pub fn create_network(
    store: &Store,
    name: &str,
    bridge: Option<&str>,
    subnets: &[String],
    gateways: &[String],
    ipv6: bool,
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
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for s in subnets {
        match s.parse::<ipnet::IpNet>() {
            Ok(ipnet::IpNet::V4(n)) => v4.push(n),
            Ok(ipnet::IpNet::V6(n)) => v6.push(n),
            Err(_) => {
                return Err(invalid(format!(
                    "{s:?} is not an IPv4 CIDR such as 10.88.0.0/16 (nor an IPv6 one such as fd00:88::/64)"
                )))
            }
        }
    }
    let subnet = match v4[..] {
        [one] => one,
        [] => {
            return Err(invalid(
                "an IPv4 --subnet such as 10.88.0.0/16 is needed (IPv6-only networks are not supported)".into(),
            ))
        }
        _ => return Err(invalid("one IPv4 --subnet at most".into())),
    };
    let subnet6 = match (ipv6, &v6[..]) {
        (false, []) => None,
        (false, [one, ..]) => {
            return Err(invalid(format!(
                "{one} is an IPv6 subnet: add --ipv6 to make a dual-stack network"
            )))
        }
        (true, []) => {
            return Err(invalid(format!(
                "--ipv6 needs an IPv6 --subnet beside {subnet}, such as fd00:88::/64"
            )))
        }
        (true, [one]) => Some(*one),
        (true, _) => return Err(invalid("one IPv6 --subnet at most".into())),
    };
    if subnet.prefix_len() > 30 {
        return Err(invalid(format!("{subnet} is too small: at most /30")));
    }
    let subnet = subnet.trunc();
    let (mut gateway, mut gateway6) = (None, None);
    for g in gateways {
        match g.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if gateway.is_none() => gateway = Some(a),
            Ok(IpAddr::V6(a)) if gateway6.is_none() && subnet6.is_some() => gateway6 = Some(a),
            Ok(IpAddr::V6(_)) if subnet6.is_none() => {
                return Err(invalid(format!(
                    "gateway {g} is IPv6 and the network has no IPv6 subnet"
                )))
            }
            Ok(_) => return Err(invalid(format!("gateway {g}: one gateway per subnet"))),
            Err(_) => return Err(invalid(format!("gateway {g:?} is not an IP address"))),
        }
    }
    let gateway = gateway.unwrap_or(Ipv4Addr::from(u32::from(subnet.network()) + 1));
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(invalid(format!(
            "gateway {gateway} is not a host address of {subnet}"
        )));
    }
    let ipv6 = match subnet6 {
        Some(n) => Some(subnet6_of(n, gateway6)?),
        None => None,
    };
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
    if let Some(v6) = &ipv6 {
        let overlaps = |o: &Subnet6| o.subnet.contains(&v6.subnet) || v6.subnet.contains(&o.subnet);
        if let Some((other, o)) = nets
            .iter()
            .find_map(|n| n.ipv6.as_ref().filter(|o| overlaps(o)).map(|o| (n, o)))
        {
            return Err(Error::Overlap {
                subnet: v6.subnet.to_string(),
                route: o.subnet.to_string(),
                interface: format!("{} (network {})", other.bridge, other.name),
            });
        }
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
        ipv6,
    };
    store.define(&net)?;
    Ok(net)
}

/// A dual-stack network's IPv6 half: a subnet of at least 4 addresses and a host address of it.
fn subnet6_of(subnet: Ipv6Net, gateway: Option<Ipv6Addr>) -> Result<Subnet6> {
    sysctl::ipv6_available()?;
    let invalid = |why: String| Error::InvalidNetwork(why);
    if subnet.prefix_len() > 126 {
        return Err(invalid(format!("{subnet} is too small: at most /126")));
    }
    let subnet = subnet.trunc();
    if subnet.network().is_loopback() || subnet.network().is_multicast() {
        return Err(invalid(format!("{subnet} is not a unicast subnet")));
    }
    let gateway = gateway.unwrap_or(Ipv6Addr::from(u128::from(subnet.network()) + 1));
    if !subnet.contains(&gateway) || gateway == subnet.network() {
        return Err(invalid(format!(
            "gateway {gateway} is not a host address of {subnet}"
        )));
    }
    Ok(Subnet6 { subnet, gateway })
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
    let inside = std::fs::File::open(att.netns_path())
        .map_err(error::io(format!("opening {}", att.netns)))
        .and_then(|ns| {
            netns::inside(&ns, || {
                let nl = Nl::new(Some(&att.netns_label()))?;
                let mut lacking = Vec::new();
                match nl.link(&att.ifname)? {
                    Some(link) => {
                        let want = Ipv4Net::new(att.address, att.prefix_len).unwrap_or_default();
                        if !nl.addrs(link.index)?.contains(&want) {
                            lacking.push(format!("address {want} on {}", att.ifname));
                        }
                        if let Some(v6) = &att.ipv6 {
                            let want = (v6.address, v6.prefix_len);
                            if !nl.addrs6(link.index)?.contains(&want) {
                                lacking.push(format!(
                                    "address {}/{} on {}",
                                    want.0, want.1, att.ifname
                                ));
                            }
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
                if let Some(v6) = att.ipv6.filter(|_| default) {
                    if !nl.has_default_route6(v6.gateway)? {
                        lacking.push(format!("default route via {}", v6.gateway));
                    }
                }
                Ok(lacking)
            })
        });
    match inside {
        Ok(lacking) => missing.extend(lacking),
        Err(_) => missing.push(format!("network namespace {}", att.netns)),
    }
    let published = firewall::Published::of(att);
    missing.extend(firewall::missing(att.firewall, &published, &net)?);
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
    firewall::remove_network(ex, firewall::Driver::selected()?, &net)?;
    let nl = Nl::new(None)?;
    if let Some(link) = nl.link(&net.bridge)? {
        if link.kind.as_deref() == Some("bridge") {
            nl.del_link(ex, &net.bridge)?;
        }
    }
    store.undefine(name)
}

/// `system reset`: undoes every attachment left (the caller removed its containers first),
/// removes every network's bridge (and forgets the networks but the default one), minibox's
/// firewall chains with their jumps, and puts back each host setting minibox changed to the
/// value it had before (ip_forward first, then the FORWARD policy: the reverse of set-up).
pub fn reset(store: &Store, ex: &Explain) -> Result<()> {
    let lock = locked(store)?;
    let mut results = Vec::new();
    for att in store.attachments()? {
        results.push(undo(store, ex, &lock, &att));
    }
    results.push(firewall::remove_all(ex));
    let nl = Nl::new(None)?;
    for net in store.networks()? {
        if let Some(link) = nl.link(&net.bridge)? {
            if link.kind.as_deref() == Some("bridge") {
                results.push(nl.del_link(ex, &net.bridge));
            }
        }
        results.push(store.clear_ready(&net.name));
        if net.name != DEFAULT_NETWORK {
            results.push(store.undefine(&net.name));
        }
    }
    let mut priors = store.priors()?;
    // The policies last: forwarding goes off before the host forwards with an ACCEPT policy.
    priors.sort_by_key(|(key, _)| firewall::forward_policy_of(key).is_some());
    for (key, prior) in priors {
        let done = if let Some(fam) = firewall::forward_policy_of(&key) {
            firewall::set_forward_policy(ex, fam, &prior)
        } else if sysctl::get(&key).is_err() {
            Ok(()) // a bridge's, gone with it
        } else {
            ex.say(|| format!("sysctl -w {key}={prior}"));
            sysctl::set(&key, &prior)
        };
        results.push(done.and_then(|_| store.forget_prior(&key)));
    }
    results.push(store.clear_forward_drop());
    results.into_iter().collect()
}

/// The host's links with their IPv4 addresses, for views of the network.
pub fn links() -> Result<Vec<Link>> {
    let nl = Nl::new(None)?;
    let mut links = nl.links()?;
    for l in &mut links {
        l.addrs = nl.addrs(l.index)?;
    }
    Ok(links)
}

/// A host link's IPv6 addresses (link-local ones included), for views of the network.
pub fn addrs6(index: u32) -> Result<Vec<(std::net::Ipv6Addr, u8)>> {
    Nl::new(None)?.addrs6(index)
}

/// The host's IPv4 routes of the main table, for views of the network.
pub fn routes() -> Result<Vec<Route>> {
    Nl::new(None)?.routes()
}
