//! The library's one error type; each variant reads as `what failed: why`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid port spec {spec:?}: {why}")]
    PortSpec { spec: String, why: String },
    #[error("network {0} not found: create it with `minibox network create {0} --subnet CIDR`")]
    UnknownNetwork(String),
    #[error("network {0} already exists")]
    NetworkExists(String),
    #[error("invalid network: {0}")]
    InvalidNetwork(String),
    #[error("subnet {subnet} overlaps {route} on {interface}: choose another with --subnet")]
    Overlap {
        subnet: String,
        route: String,
        interface: String,
    },
    #[error("network {name} is in use by {count} container(s): remove them first")]
    InUse { name: String, count: usize },
    #[error("network {0} is predefined and cannot be removed")]
    Predefined(String),
    #[error("no free address left in {network} ({subnet})")]
    Exhausted { network: String, subnet: String },
    #[error("host port {port}/{proto} is already in use by {by}")]
    PortInUse {
        port: u16,
        proto: String,
        by: String,
    },
    #[error("no free host port in {0}")]
    NoFreePort(String),
    #[error("cannot publish on {0}: not an address of this host")]
    NotLocal(String),
    #[error("{0} is attached already: detach it first")]
    Attached(String),
    #[error("interface {0} exists and is not a minibox bridge: rename or delete it")]
    BridgeClash(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{what}: {why}")]
    Firewall { what: String, why: String },
    #[error("IPv6 is disabled in this kernel (booted with ipv6.disable=1): use a network without --ipv6")]
    Ipv6Unavailable,
    #[error("{path}: {why}")]
    Record { path: PathBuf, why: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Wraps a netlink error with what was being done.
pub(crate) fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io {
            what: "system call".into(),
            source: e.into(),
        }
    }
}
