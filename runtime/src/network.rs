//! The runtime's side of networking: which namespaces a container gets and the calls into
//! `minibox-netns` that wire a container's network before its process execs.
//!
//! Owned by the networking work (issue 4); the run code calls only what is here.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{bail, Context, Result};
use minibox_netns::{Explain, PortSpec, Store};
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
    /// The bridge attachment (netns, veth, address, ports), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<minibox_netns::Attachment>,
}

impl Attachment {
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
/// network exists. `run` can call it early so that bad input leaves nothing behind.
pub fn check(paths: &Paths, req: &Request) -> Result<Vec<PortSpec>> {
    let mut specs = req
        .publish
        .iter()
        .map(|p| PortSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if req.publish_all {
        for e in &req.exposed {
            specs.push(PortSpec::exposed(e).with_context(|| "the image's EXPOSE")?);
        }
    }
    match &req.mode {
        Mode::None | Mode::Host if !specs.is_empty() => {
            bail!("publishing ports needs a bridge network: use --network NAME")
        }
        Mode::Bridge(name) => {
            store(paths).network(name)?;
        }
        _ => {}
    }
    Ok(specs)
}

/// Wires the network of the container whose process is `pid` (already in its own network
/// namespace when the mode asks for one). Called by the parent before the child execs.
pub fn attach(
    paths: &Paths,
    explain: bool,
    id: &str,
    pid: Pid,
    req: &Request,
) -> Result<Attachment> {
    let specs = check(paths, req)?;
    match &req.mode {
        Mode::None | Mode::Host => Ok(Attachment::default()),
        Mode::Bridge(name) => {
            let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
            let endpoint = minibox_netns::Endpoint {
                netns: &netns,
                ifname: "eth0",
                address: None,
            };
            let att = minibox_netns::attach(
                &store(paths),
                &explainer(explain),
                id,
                &endpoint,
                name,
                &specs,
            )
            .with_context(|| format!("connecting to network {name}"))?;
            Ok(Attachment {
                address: Some(att.address),
                bridge: Some(att),
            })
        }
    }
}

/// Undoes what `attach` did; idempotent and tolerant of half-made state. Also finds what a
/// crashed `attach` recorded but never returned, by the container id. With `background`, for a
/// container whose processes are gone, the kernel's part is finished by a background process
/// (see `minibox_netns::detach_in_background`) and this returns at once.
pub fn detach(
    paths: &Paths,
    explain: bool,
    id: &str,
    attachment: &Attachment,
    background: bool,
) -> Result<()> {
    let store = store(paths);
    let ex = explainer(explain);
    match &attachment.bridge {
        Some(att) if background => minibox_netns::detach_in_background(&store, &ex, att, false),
        Some(att) => minibox_netns::detach(&store, &ex, att),
        None => minibox_netns::detach_id(&store, &ex, id),
    }
    .context("disconnecting the network")
}

/// Finishes network teardowns whose background process died (see `recover::check`).
pub fn recover(paths: &Paths) {
    if let Err(e) = minibox_netns::recover(&store(paths)) {
        eprintln!("minibox: finishing an interrupted network teardown: {e}");
    }
}
