//! rtnetlink operations, each reporting itself as the `ip` command that does the same.
//!
//! A netlink socket acts in the network namespace it was created in, so an [`Nl`] made on a
//! thread that entered a container's netns configures that netns (see [`crate::netns::inside`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

use crate::error::{io, nl, Error, Result};
use crate::explain::Explain;

/// A netlink connection in the namespace of the thread that made it, driven synchronously by a
/// current-thread runtime (built here, after any clone, and never shared with other threads).
pub struct Nl {
    rt: tokio::runtime::Runtime,
    handle: Handle,
    /// `-n NAME` for explained commands when this connection works inside a named netns.
    ns: Option<String>,
}

/// A route of the main table: destination, output interface, gateway.
pub type Route = (Ipv4Net, Option<u32>, Option<Ipv4Addr>);

/// A link as the views need it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub controller: Option<u32>,
    pub mtu: u32,
    pub mac: Option<String>,
    pub up: bool,
    /// Filled in by [`crate::links`] only.
    pub addrs: Vec<Ipv4Net>,
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == errno)
}

pub fn mac_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Docker's scheme: 02:42 followed by the IPv4 address, so a MAC says which address it carries.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// The commands [`Nl`]'s operations report themselves as (`ip` is `ip` or `ip -n NS`), also
/// said for steps found done already.
pub mod cmd {
    use std::net::IpAddr;

    pub fn add_bridge(ip: &str, name: &str, mac: [u8; 6]) -> String {
        format!(
            "{ip} link add {name} address {} type bridge mcast_snooping 0",
            super::mac_string(&mac)
        )
    }

    pub fn set_mtu(ip: &str, dev: &str, mtu: u32) -> String {
        format!("{ip} link set {dev} mtu {mtu}")
    }

    pub fn up(ip: &str, dev: &str, master: Option<&str>) -> String {
        let master = master.map(|m| format!(" master {m}")).unwrap_or_default();
        format!("{ip} link set {dev}{master} up")
    }

    pub fn add_addr(ip: &str, dev: &str, addr: impl Into<IpAddr>, prefix: u8) -> String {
        let addr = addr.into();
        let nodad = if addr.is_ipv6() { " nodad" } else { "" };
        format!("{ip} addr add {addr}/{prefix} dev {dev}{nodad}")
    }
}

impl Nl {
    /// Connects in the calling thread's network namespace; `ns` names it for explained commands.
    pub fn new(ns: Option<&str>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(io("starting the netlink runtime"))?;
        let (conn, handle, _) = {
            let _guard = rt.enter();
            rtnetlink::new_connection().map_err(io("opening a netlink socket"))?
        };
        rt.spawn(conn);
        Ok(Self {
            rt,
            handle,
            ns: ns.map(str::to_string),
        })
    }

    fn ip(&self) -> String {
        match &self.ns {
            Some(ns) => format!("ip -n {ns}"),
            None => "ip".into(),
        }
    }

    pub fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .rt
            .block_on(self.handle.link().get().execute().try_collect())
            .map_err(nl("listing links"))?;
        Ok(msgs.into_iter().map(to_link).collect())
    }

    pub fn link(&self, name: &str) -> Result<Option<Link>> {
        let res: Result<Vec<LinkMessage>, _> = self.rt.block_on(
            self.handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_collect(),
        );
        match res {
            Ok(msgs) => Ok(msgs.into_iter().next().map(to_link)),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(nl(format!("looking up {name}"))(e)),
        }
    }

    pub fn index(&self, name: &str) -> Result<u32> {
        self.link(name)?.map(|l| l.index).ok_or_else(|| Error::Io {
            what: format!("looking up {name}"),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    /// `ip link add NAME type bridge` with a pinned MAC (so it does not change as ports join),
    /// without multicast snooping: with it, each port that joins or leaves restarts the
    /// multicast timers of every other port, under the lock that every network change takes
    /// (2 ms a set-up with a thousand containers on the bridge). Multicast is flooded to
    /// every port instead, as a bridge without an IGMP/MLD querier does for unknown groups.
    pub fn add_bridge(&self, ex: &Explain, name: &str, mac: [u8; 6]) -> Result<()> {
        ex.say(|| cmd::add_bridge(&self.ip(), name, mac));
        let msg = LinkBridge::new(name)
            .address(mac.to_vec())
            .mcast_snooping(false)
            .build();
        self.rt
            .block_on(self.handle.link().add(msg).execute())
            .map_err(nl(format!("creating bridge {name}")))
    }

    /// `ip link add HOST type veth peer name PEER netns NS`, then `ip link set HOST master
    /// BRIDGE up`, in one message: the peer is born inside the netns (its fd travels in the
    /// peer's attributes), so it never shows up on the host, and the host end joins `bridge`
    /// (name, index) up.
    #[allow(clippy::too_many_arguments)]
    pub fn add_veth(
        &self,
        ex: &Explain,
        host: &str,
        peer: &str,
        netns: &str,
        netns_fd: RawFd,
        mtu: u32,
        peer_mac: [u8; 6],
        bridge: (&str, u32),
    ) -> Result<()> {
        ex.say(|| {
            format!(
                "{} link add {host} mtu {mtu} type veth peer name {peer} address {} mtu {mtu} netns {netns}",
                self.ip(),
                mac_string(&peer_mac)
            )
        });
        ex.say(|| cmd::up(&self.ip(), host, Some(bridge.0)));
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .address(peer_mac.to_vec())
            .setns_by_fd(netns_fd)
            .build();
        let msg = LinkVeth::new(host, peer)
            .mtu(mtu)
            .controller(bridge.1)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.rt
            .block_on(self.handle.link().add(msg).execute())
            .map_err(nl(format!("creating veth pair {host}/{peer}")))
    }

    /// `ip link set DEV mtu MTU`. On a bridge this also pins the MTU: one set at creation is
    /// only a default that the kernel resets to 1500 when the last port leaves.
    pub fn set_mtu(&self, ex: &Explain, dev: &str, mtu: u32) -> Result<()> {
        ex.say(|| cmd::set_mtu(&self.ip(), dev, mtu));
        // Links are named in the message itself, as `ip` would name them: no lookup first.
        let msg = LinkUnspec::new_with_name(dev).mtu(mtu).build();
        self.rt
            .block_on(self.handle.link().change(msg).execute())
            .map_err(nl(format!("setting the MTU of {dev}")))
    }

    /// `ip link set DEV [master BRIDGE] up`; `master`: the bridge's name and index.
    pub fn up(&self, ex: &Explain, dev: &str, master: Option<(&str, u32)>) -> Result<()> {
        let mut b = LinkUnspec::new_with_name(dev).up();
        if let Some((_, index)) = master {
            b = b.controller(index);
        }
        ex.say(|| cmd::up(&self.ip(), dev, master.map(|m| m.0)));
        self.rt
            .block_on(self.handle.link().change(b.build()).execute())
            .map_err(nl(format!("bringing {dev} up")))
    }

    /// `ip link set DEV type bridge_slave hairpin on`: lets a bridge send a frame back out of
    /// the port it came in on, which a container reaching its own published port needs when
    /// br_netfilter bridges the DNAT'd frame instead of routing it.
    pub fn hairpin(&self, ex: &Explain, dev: &str) -> Result<()> {
        ex.say(|| format!("{} link set {dev} type bridge_slave hairpin on", self.ip()));
        let msg = LinkBridgePort::new(0).name(dev).hairpin(true).build();
        self.rt
            .block_on(self.handle.link().change(msg).execute())
            .map_err(nl(format!("setting hairpin mode on {dev}")))
    }

    /// `ip addr add ADDR/LEN dev DEV`, DEV given by name and index (an address names its link
    /// by index alone); an address already there is fine. An IPv6 address is added `nodad`,
    /// usable at once (Docker does the same): the subnet is the network's own, its addresses
    /// handed out by minibox alone.
    pub fn add_addr(
        &self,
        ex: &Explain,
        (dev, index): (&str, u32),
        addr: impl Into<IpAddr>,
        prefix: u8,
    ) -> Result<()> {
        use rtnetlink::packet_route::address::AddressHeaderFlags;
        let addr = addr.into();
        ex.say(|| cmd::add_addr(&self.ip(), dev, addr, prefix));
        let mut req = self.handle.address().add(index, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        }
        match self.rt.block_on(req.execute()) {
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            other => other.map_err(nl(format!("adding {addr}/{prefix} to {dev}"))),
        }
    }

    /// IPv6 addresses on a link (link-local ones included).
    pub fn addrs6(&self, index: u32) -> Result<Vec<(Ipv6Addr, u8)>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        Ok(self
            .addr_messages(index)?
            .iter()
            .flat_map(|m| {
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(IpAddr::V6(v6)) => Some((*v6, m.header.prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    fn addr_messages(
        &self,
        index: u32,
    ) -> Result<Vec<rtnetlink::packet_route::address::AddressMessage>> {
        self.rt
            .block_on(
                self.handle
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect(),
            )
            .map_err(nl("listing addresses"))
    }

    /// IPv4 addresses on a link.
    pub fn addrs(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        Ok(self
            .addr_messages(index)?
            .iter()
            .flat_map(|m| {
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(IpAddr::V4(v4)) => {
                        Ipv4Net::new(*v4, m.header.prefix_len).ok()
                    }
                    _ => None,
                })
            })
            .collect())
    }

    /// `ip route add default via GW`, or `ip -6 route ...` for an IPv6 gateway.
    pub fn add_default_route(&self, ex: &Explain, gateway: IpAddr) -> Result<()> {
        let family = if gateway.is_ipv6() { " -6" } else { "" };
        ex.say(|| format!("{}{family} route add default via {gateway}", self.ip()));
        // Protocol "boot", as `ip route add` sets it, so both read back alike.
        let msg = match gateway {
            IpAddr::V4(v4) => RouteMessageBuilder::<Ipv4Addr>::new()
                .protocol(RouteProtocol::Boot)
                .gateway(v4)
                .build(),
            IpAddr::V6(v6) => RouteMessageBuilder::<Ipv6Addr>::new()
                .protocol(RouteProtocol::Boot)
                .gateway(v6)
                .build(),
        };
        self.rt
            .block_on(self.handle.route().add(msg).execute())
            .map_err(nl(format!("adding the default route via {gateway}")))
    }

    /// Whether a default IPv6 route goes through `gateway`.
    pub fn has_default_route6(&self, gateway: Ipv6Addr) -> Result<bool> {
        let msg = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let msgs: Vec<_> = self
            .rt
            .block_on(self.handle.route().get(msg).execute().try_collect())
            .map_err(nl("listing routes"))?;
        Ok(msgs.iter().any(|m| {
            m.header.destination_prefix_length == 0
                && m.attributes.iter().any(|a| {
                    matches!(a, RouteAttribute::Gateway(RouteAddress::Inet6(g)) if *g == gateway)
                })
        }))
    }

    /// `ip link del DEV`; a link already gone is fine.
    pub fn del_link(&self, ex: &Explain, dev: &str) -> Result<()> {
        let Some(link) = self.link(dev)? else {
            return Ok(());
        };
        ex.say(|| format!("{} link del {dev}", self.ip()));
        match self
            .rt
            .block_on(self.handle.link().del(link.index).execute())
        {
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
            other => other.map_err(nl(format!("deleting {dev}"))),
        }
    }

    /// IPv4 routes of the main table as (destination, output interface index).
    pub fn routes(&self) -> Result<Vec<Route>> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<_> = self
            .rt
            .block_on(self.handle.route().get(msg).execute().try_collect())
            .map_err(nl("listing routes"))?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.table == 254)
            .map(|m| {
                let mut dst = Ipv4Addr::UNSPECIFIED;
                let (mut oif, mut gw) = (None, None);
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(*g),
                        _ => {}
                    }
                }
                let net = Ipv4Net::new(dst, m.header.destination_prefix_length).unwrap_or_default();
                (net, oif, gw)
            })
            .collect())
    }

    /// The MTU of the interface the default route leaves through (1500 without one).
    pub fn default_mtu(&self) -> Result<u32> {
        let oif = self
            .routes()?
            .into_iter()
            .find(|(net, _, _)| net.prefix_len() == 0)
            .and_then(|(_, oif, _)| oif);
        let links = match oif {
            Some(_) => self.links()?,
            None => Vec::new(),
        };
        Ok(links
            .iter()
            .find(|l| Some(l.index) == oif)
            .map(|l| l.mtu)
            .unwrap_or(1500))
    }
}

fn to_link(m: LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        controller: None,
        mtu: 0,
        mac: None,
        addrs: Vec::new(),
        up: m
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up),
    };
    for a in m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Controller(c) => link.controller = Some(c),
            LinkAttribute::Address(mac) => link.mac = Some(mac_string(&mac)),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(kind) = i {
                        link.kind = Some(match kind {
                            InfoKind::Bridge => "bridge".into(),
                            InfoKind::Veth => "veth".into(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    link
}
