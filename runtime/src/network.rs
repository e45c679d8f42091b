//! The runtime's side of networking: which namespaces a container gets and the calls into
//! `minibox-netns` that wire a container's network before its process execs.
//!
//! Owned by the networking work (issue 4); the run code calls only what is here.

use anyhow::{bail, Result};
use nix::unistd::Pid;

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
}

/// What was wired; recorded in the container's state so teardown can undo it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The container's IPv4 address, when it has one.
    pub address: Option<std::net::Ipv4Addr>,
}

/// Wires the network of the container whose process is `pid` (already in its own network
/// namespace when the mode asks for one). Called by the parent before the child execs.
pub fn attach(_paths: &Paths, _explain: bool, _id: &str, _pid: Pid, req: &Request) -> Result<Attachment> {
    match &req.mode {
        Mode::None | Mode::Host => {
            if !req.publish.is_empty() || req.publish_all {
                bail!("publishing ports needs a bridge network: use --network NAME");
            }
            Ok(Attachment::default())
        }
        Mode::Bridge(name) => bail!("network {name}: bridge networks are not implemented yet"),
    }
}

/// Undoes what `attach` did; idempotent and tolerant of half-made state.
pub fn detach(_paths: &Paths, _explain: bool, _id: &str, _attachment: &Attachment) -> Result<()> {
    Ok(())
}
