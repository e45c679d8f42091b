//! The firewall: published ports (DNAT), NAT out, the FORWARD and INPUT defences, through one of
//! two drivers with the same layout and guarantees:
//!
//! - [`Driver::Nftables`]: a table of minibox's own, `inet minibox`, whose published ports are
//!   elements of two maps. A container's set-up and teardown add or delete only its own
//!   elements in one nf_tables batch over netlink (see [`elements`]), and nothing reads the
//!   ruleset on the way, so their cost does not grow with the number of containers (see
//!   [`nftables`]).
//! - [`Driver::Iptables`]: minibox's own chains in the nat and filter tables of whichever
//!   `iptables` is first in PATH (iptables-nft or iptables-legacy), one `iptables-restore`
//!   batch per change (see [`iptables`]). The fallback where `nft` is absent.
//!
//! One selection point, [`Driver::selected`]: `MINIBOX_FIREWALL_DRIVER=nftables|iptables|auto`
//! (auto, the default: nftables when `nft` is installed). An attachment records the driver
//! that made its rules, and its teardown uses that one.
//!
//! Every rule or element a container owns carries the comment `minibox:<id12>`; a network's own
//! rules `minibox-network:<name>`; the drivers' base rules `minibox-base` (nftables).

mod batch;
mod elements;
pub mod iptables;
mod nfrules;
pub mod nftables;

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::explain::Explain;
use crate::ports::PortMapping;
use crate::store::{Attachment, ForwardDrop, Network, Store};

pub use batch::Batch;
pub use iptables::{forward_policy_of, set_forward_policy};

/// Which firewall tool minibox drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Nftables,
    Iptables,
}

/// The environment variable that chooses the driver.
pub const DRIVER_ENV: &str = "MINIBOX_FIREWALL_DRIVER";

impl Driver {
    /// The driver asked for in `MINIBOX_FIREWALL_DRIVER`, or, for `auto` (the default),
    /// nftables when `nft` is installed and iptables otherwise.
    pub fn selected() -> Result<Driver> {
        match std::env::var(DRIVER_ENV).unwrap_or_default().as_str() {
            "nftables" => Ok(Driver::Nftables),
            "iptables" => Ok(Driver::Iptables),
            "" | "auto" if in_path("nft") => Ok(Driver::Nftables),
            "" | "auto" => Ok(Driver::Iptables),
            other => Err(Error::Firewall {
                what: format!("{DRIVER_ENV}={other}"),
                why: "not a firewall driver: use nftables, iptables or auto".into(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Nftables => "nftables",
            Driver::Iptables => "iptables",
        }
    }

    /// Records from before drivers were recorded were made by iptables.
    pub fn legacy() -> Driver {
        Driver::Iptables
    }
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// What one container publishes, as the firewall needs it.
#[derive(Debug, Clone)]
pub struct Published {
    pub id12: String,
    pub subnet: Ipv4Net,
    pub addr: Ipv4Addr,
    /// The subnet and address of its IPv6 half, on a dual-stack network.
    pub ipv6: Option<(Ipv6Net, Ipv6Addr)>,
    /// Each of the family of its host address.
    pub ports: Vec<PortMapping>,
}

impl Published {
    pub fn of(att: &Attachment) -> Self {
        Self {
            id12: att.short_id().to_string(),
            subnet: Ipv4Net::new(att.address, att.prefix_len)
                .unwrap_or_default()
                .trunc(),
            addr: att.address,
            ipv6: att.ipv6.map(|v6| {
                let net = Ipv6Net::new(v6.address, v6.prefix_len).unwrap_or_default();
                (net.trunc(), v6.address)
            }),
            ports: att.ports.iter().filter(|m| !m.proxied()).copied().collect(),
        }
    }

    pub fn tag(&self) -> String {
        format!("minibox:{}", self.id12)
    }
}

/// Everything minibox has recorded: what a rebuild makes again.
pub struct Recorded {
    pub networks: Vec<Network>,
    pub published: Vec<Published>,
    /// Whether minibox turned forwarding on (so forwarding drops what it does not accept).
    pub forward_drop: ForwardDrop,
}

/// Starts adding a container's published ports; [`Batch::wait`] tells how it went.
pub fn publish(ex: &Explain, driver: Driver, p: &Published) -> Result<Batch> {
    match driver {
        Driver::Nftables => nftables::publish(ex, p),
        Driver::Iptables => iptables::publish(ex, p),
    }
}

/// Starts removing a container's published ports; [`finish_unpublish`] completes it.
pub fn start_unpublish(ex: &Explain, driver: Driver, p: &Published) -> Batch {
    let batch = match driver {
        Driver::Nftables => nftables::unpublish(ex, p),
        Driver::Iptables => iptables::unpublish(ex, p),
    };
    // Explained at once: teardown removes the firewall rules first.
    batch.unwrap_or_else(|_| Batch::none()).said(ex)
}

/// Waits for [`start_unpublish`]; when it failed (half-made, or partly removed already),
/// removes whatever of the container the kernel still has.
pub fn finish_unpublish(ex: &Explain, driver: Driver, p: &Published, batch: Batch) -> Result<()> {
    if batch.wait(ex).is_ok() {
        return Ok(());
    }
    match driver {
        Driver::Nftables => nftables::unpublish_each(ex, p),
        Driver::Iptables => iptables::unpublish_each(ex, p),
    }
}

/// The cheap check every set-up makes: are the base chains, their jumps and this network's
/// rules all there? Netlink dumps of minibox's base and network rules (tens of them, whatever
/// the number of containers): of its own table under nftables, of the built-in chains and
/// minibox's chains but MINIBOX-DNAT under iptables-nft. iptables-legacy is not checked here
/// (only `iptables-save` could, and reading it is what grows): a batch that fails, a new
/// bridge, or `network reload` repairs there.
pub fn intact(driver: Driver, net: &Network, forward_drop: ForwardDrop) -> Result<bool> {
    match driver {
        Driver::Nftables => nftables::intact(net, forward_drop),
        Driver::Iptables => iptables::intact(net),
    }
}

/// Makes whatever of the base layout and `net`'s own rules is missing. A base layout that lost
/// anything is rebuilt whole, with every recorded container's ports, from `recorded`. With
/// `forward_drop` (minibox turned forwarding on) forwarding drops what minibox does not accept.
/// A host setting changed on the way (the iptables FORWARD policy) has its value before
/// recorded in `store`. What a fresh host would also need is explained as in place.
pub fn ensure_network(
    store: &Store,
    ex: &Explain,
    driver: Driver,
    net: &Network,
    forward_drop: ForwardDrop,
    recorded: impl FnOnce() -> Result<Recorded>,
) -> Result<()> {
    match driver {
        Driver::Nftables => nftables::ensure_network(ex, net, forward_drop, recorded),
        Driver::Iptables => iptables::ensure_network(store, ex, net, forward_drop, recorded),
    }
}

/// `--explain` of a network known complete: its whole firewall said as found in place, so that
/// the script still builds it on a fresh host.
pub fn explain_network_in_place(
    ex: &Explain,
    driver: Driver,
    net: &Network,
    forward_drop: ForwardDrop,
) {
    match driver {
        Driver::Nftables => nftables::explain_network_in_place(ex, net, forward_drop),
        Driver::Iptables => iptables::explain_network_in_place(ex, net, forward_drop),
    }
}

/// `network reload`: every rule of minibox made again from the records, in one batch.
pub fn rebuild(store: &Store, ex: &Explain, driver: Driver, recorded: &Recorded) -> Result<()> {
    match driver {
        Driver::Nftables => nftables::rebuild(ex, recorded),
        Driver::Iptables => iptables::rebuild(store, ex, recorded),
    }
}

/// `system reset`: everything either driver made, whichever tools are installed.
pub fn remove_all(ex: &Explain) -> Result<()> {
    if in_path("iptables-save") {
        iptables::remove_all(ex)?;
    }
    if in_path("nft") {
        nftables::remove_all(ex)?;
    }
    Ok(())
}

/// What of a container's ports and its network's rules the kernel lacks (CNI's CHECK).
pub fn missing(driver: Driver, p: &Published, net: &Network) -> Result<Vec<String>> {
    match driver {
        Driver::Nftables => nftables::missing(p, net),
        Driver::Iptables => iptables::missing(p, net),
    }
}

/// What of a network's rules and the base layout the kernel lacks.
pub fn missing_network(driver: Driver, net: &Network) -> Result<Vec<String>> {
    match driver {
        Driver::Nftables => nftables::missing_network(net),
        Driver::Iptables => iptables::missing_network(net),
    }
}

/// Removes a network's own rules (and, under nftables, the accepts it needed in a host
/// FORWARD chain whose policy is DROP).
pub fn remove_network(ex: &Explain, driver: Driver, net: &Network) -> Result<()> {
    match driver {
        Driver::Nftables => nftables::remove_network(ex, net),
        Driver::Iptables => iptables::remove_network(ex, net),
    }
}

/// Forgets stale UDP flows to a port being (re)published, or they keep going to the previous
/// container. Done over ctnetlink; a failure only warns (the port works for new flows).
pub fn flush_udp(ex: &Explain, port: u16) {
    ex.say(|| format!("conntrack -D -p udp --orig-port-dst {port}"));
    if let Err(e) = crate::conntrack::flush_udp_port(port) {
        tracing::warn!("stale UDP flows to port {port} were not flushed: {e}");
    }
}
