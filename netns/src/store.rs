//! What minibox remembers about networks: definitions (persistent, under `--root`) and the
//! volatile state under the runroot: the lock, IPAM records, port records and each container's
//! attachment record. Everything is written before the kernel objects it describes are made, so
//! that teardown and crash recovery can always find what to undo.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::firewall::Driver;
use crate::ports::{PortMapping, Proto};

/// The network every `run` gets unless told otherwise.
pub const DEFAULT_NETWORK: &str = "minibox";
pub const DEFAULT_BRIDGE: &str = "minibox0";
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

/// A bridge network's definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// RFC 3339.
    pub created: String,
    /// The IPv6 half of a dual-stack network (`network create --ipv6`); none: IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Subnet6>,
}

/// A network's IPv6 subnet and the bridge's address in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet6 {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
}

/// An endpoint's IPv6 address on a dual-stack network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address6 {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
    pub gateway: Ipv6Addr,
}

/// What was wired for one container: enough to undo it all after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container's full id.
    pub id: String,
    pub network: String,
    pub bridge: String,
    /// The network namespace's file as the caller gave it (a name under /run/netns in
    /// records of older versions).
    pub netns: String,
    /// Host end of the veth pair.
    pub veth: String,
    /// The container end's name (records from before it was recorded: eth0).
    #[serde(default = "eth0")]
    pub ifname: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub mtu: u32,
    pub ports: Vec<PortMapping>,
    /// The firewall driver that made its rules (records from before drivers: iptables).
    #[serde(default = "Driver::legacy")]
    pub firewall: Driver,
    /// Whether the bridge port hairpins (what a repair puts back; older records: `run`'s yes).
    #[serde(default = "yes")]
    pub hairpin: bool,
    /// Its names on the network's DNS server (records of older versions: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<crate::Dns>,
    /// Its IPv6 address, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Address6>,
}

/// An address family, where IPv4 and IPv6 are handled alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Whether minibox is what turned forwarding on, per family: then forwarding of that family
/// drops what minibox does not accept, as Docker has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardDrop {
    pub v4: bool,
    pub v6: bool,
}

fn yes() -> bool {
    true
}

impl Attachment {
    pub fn short_id(&self) -> &str {
        short(&self.id)
    }

    /// The network namespace's file.
    pub fn netns_path(&self) -> PathBuf {
        match self.netns.contains('/') {
            true => PathBuf::from(&self.netns),
            false => Path::new(crate::netns::NETNS_DIR).join(&self.netns),
        }
    }

    /// The netns as `ip` names it: its name when it is one of `ip netns`'s, else its path.
    pub fn netns_label(&self) -> String {
        crate::netns::label(&self.netns_path())
    }
}

fn eth0() -> String {
    "eth0".into()
}

/// The first 12 characters of an id: what names veths and tags rules.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The store: definitions under `defs`, volatile state under `run`.
#[derive(Debug, Clone)]
pub struct Store {
    defs: PathBuf,
    run: PathBuf,
}

/// Held while the store or the kernel's network state is being changed.
pub struct Lock(Flock<File>);

impl Lock {
    /// The descriptor a forked process keeps to go on holding the lock.
    pub(crate) fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&*self.0)
    }

    /// Lets go of this process's descriptor without unlocking: a forked process that shares the
    /// lock's open file holds it on, until it exits or unlocks.
    pub(crate) fn hand_over(self) {
        let fd = self.fd();
        std::mem::forget(self);
        // SAFETY: the descriptor was owned by the forgotten lock and is used nowhere else.
        unsafe { libc::close(fd) };
    }
}

impl Store {
    pub fn new(defs: &Path, run: &Path) -> Self {
        Self {
            defs: defs.to_path_buf(),
            run: run.to_path_buf(),
        }
    }

    /// Serialises every change to networks, addresses, ports and the firewall.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.run).map_err(io(format!("creating {}", self.run.display())))?;
        let path = self.run.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map(Lock)
            .map_err(|(_, e)| Error::from(e))
    }

    /// [`Store::lock`] if nobody holds it now; `None` when someone does.
    pub fn try_lock(&self) -> Result<Option<Lock>> {
        let path = self.run.join("lock");
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("opening {}", path.display()))(e)),
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Lock(lock))),
            Err((_, nix::Error::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e.into()),
        }
    }

    /// The volatile state's directory (the CNI plugin keeps its records below it).
    pub(crate) fn run_dir(&self) -> &Path {
        &self.run
    }

    fn def_path(&self, name: &str) -> PathBuf {
        self.defs.join(format!("{name}.json"))
    }

    /// A network by name; the default one is defined on first use.
    pub fn network(&self, name: &str) -> Result<Network> {
        if !valid_name(name) {
            return Err(Error::UnknownNetwork(name.to_string()));
        }
        match read_json(&self.def_path(name))? {
            Some(net) => Ok(net),
            None if name == DEFAULT_NETWORK => {
                let net = Network {
                    name: DEFAULT_NETWORK.into(),
                    id: random_id(),
                    bridge: DEFAULT_BRIDGE.into(),
                    subnet: DEFAULT_SUBNET.parse().unwrap(),
                    gateway: Ipv4Addr::new(10, 77, 0, 1),
                    created: now_rfc3339(),
                    ipv6: None,
                };
                match self.define(&net) {
                    Err(Error::NetworkExists(_)) => self.network(name),
                    other => other.map(|_| net),
                }
            }
            None => Err(Error::UnknownNetwork(name.to_string())),
        }
    }

    /// Every defined network (the default one included), sorted by name.
    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut nets = vec![self.network(DEFAULT_NETWORK)?];
        for entry in read_dir(&self.defs)? {
            if let Some(name) = entry.strip_suffix(".json") {
                if name != DEFAULT_NETWORK {
                    if let Some(net) = read_json(&self.def_path(name))? {
                        nets.push(net);
                    }
                }
            }
        }
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nets)
    }

    /// Records a new definition; refuses an existing name. Written aside and hard-linked into
    /// place, so a concurrent reader never sees a half-written file.
    pub fn define(&self, net: &Network) -> Result<()> {
        fs::create_dir_all(&self.defs).map_err(io(format!("creating {}", self.defs.display())))?;
        let path = self.def_path(&net.name);
        let tmp = self.defs.join(format!(".{}.{}", net.name, random_id()));
        fs::write(&tmp, serde_json::to_vec_pretty(net).unwrap())
            .map_err(io(format!("writing {}", tmp.display())))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => Error::NetworkExists(net.name.clone()),
            _ => io(format!("writing {}", path.display()))(e),
        })
    }

    pub fn undefine(&self, name: &str) -> Result<()> {
        remove_file(&self.def_path(name))?;
        self.clear_ready(name)?;
        let dir = self.run.join("ipam").join(name);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(io(format!("removing {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    // --- Readiness: the bridge (by ifindex) whose host plumbing was last checked complete, so
    // later attaches skip re-reading the whole firewall.

    fn ready_path(&self, net: &str) -> PathBuf {
        self.run.join("ready").join(net)
    }

    pub fn ready(&self, net: &str) -> Option<u32> {
        fs::read_to_string(self.ready_path(net))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn set_ready(&self, net: &str, bridge_index: u32) -> Result<()> {
        let path = self.ready_path(net);
        fs::create_dir_all(path.parent().unwrap())
            .and_then(|_| fs::write(&path, bridge_index.to_string()))
            .map_err(io(format!("writing {}", path.display())))
    }

    pub fn clear_ready(&self, net: &str) -> Result<()> {
        remove_file(&self.ready_path(net))
    }

    // --- Host settings minibox changed (sysctls, the FORWARD policy): the value each had before
    // minibox first changed it, for `system reset`. Under the runroot, as the kernel forgets
    // them at a reboot too.

    fn prior_path(&self, key: &str) -> PathBuf {
        self.run.join("prior").join(key)
    }

    /// Records `key`'s value before a change, unless one is recorded (the first one counts).
    pub fn record_prior(&self, key: &str, value: &str) -> Result<()> {
        let path = self.prior_path(key);
        fs::create_dir_all(path.parent().unwrap()).map_err(io("creating the prior values' dir"))?;
        match write_new(&path, value.as_bytes()) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                Err(io(format!("writing {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// `(key, value before minibox changed it)` for every setting minibox changed.
    pub fn priors(&self) -> Result<Vec<(String, String)>> {
        let dir = self.run.join("prior");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(format!("reading {}", dir.display()))(e)),
        };
        for entry in entries.flatten() {
            let key = entry.file_name().to_string_lossy().into_owned();
            if let Ok(value) = fs::read_to_string(entry.path()) {
                out.push((key, value.trim().to_string()));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn forget_prior(&self, key: &str) -> Result<()> {
        remove_file(&self.prior_path(key))
    }

    // --- Whether minibox is what turned forwarding on (then forwarding drops what minibox does
    // not accept, as Docker has it); volatile, as the sysctl is.

    fn forward_drop_path(&self, family: Family) -> PathBuf {
        match family {
            Family::V4 => self.run.join("forward-drop"),
            Family::V6 => self.run.join("forward-drop6"),
        }
    }

    pub fn forward_drop(&self) -> ForwardDrop {
        ForwardDrop {
            v4: self.forward_drop_path(Family::V4).exists(),
            v6: self.forward_drop_path(Family::V6).exists(),
        }
    }

    pub fn set_forward_drop(&self, family: Family) -> Result<()> {
        let path = self.forward_drop_path(family);
        fs::write(&path, b"").map_err(io(format!("writing {}", path.display())))
    }

    /// `system reset`: forwarding is back as it was, so a later set-up decides again.
    pub fn clear_forward_drop(&self) -> Result<()> {
        remove_file(&self.forward_drop_path(Family::V4))?;
        remove_file(&self.forward_drop_path(Family::V6))
    }

    // --- IPAM: one file per allocated address, named by the address, holding the container id.

    fn ipam_dir(&self, net: &str) -> PathBuf {
        self.run.join("ipam").join(net)
    }

    /// Takes the next free address after the last one handed out (round robin), under the lock.
    pub fn allocate_address(&self, _lock: &Lock, net: &Network, id: &str) -> Result<Ipv4Addr> {
        let dir = self.ipam_dir(&net.name);
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let cursor = dir.join("last");
        let first = u32::from(net.subnet.network()) + 1;
        let last = u32::from(net.subnet.broadcast()) - 1;
        let size = last.saturating_sub(first) + 1;
        let after = fs::read_to_string(&cursor)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|a| (first..=last).contains(a))
            .unwrap_or(last);
        for step in 1..=size {
            let candidate = Ipv4Addr::from(first + (after - first + step) % size);
            if candidate == net.gateway {
                continue;
            }
            match write_new(&dir.join(candidate.to_string()), id.as_bytes()) {
                Ok(()) => {
                    fs::write(&cursor, candidate.to_string())
                        .map_err(io(format!("writing {}", cursor.display())))?;
                    return Ok(candidate);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(format!("allocating in {}", dir.display()))(e)),
            }
        }
        Err(Error::Exhausted {
            network: net.name.clone(),
            subnet: net.subnet.to_string(),
        })
    }

    /// Records `addr`, chosen elsewhere, as `id`'s: refused outside the subnet, on the gateway,
    /// or when someone holds it.
    pub fn reserve_address(
        &self,
        _lock: &Lock,
        net: &Network,
        addr: Ipv4Addr,
        id: &str,
    ) -> Result<Ipv4Addr> {
        if !net.subnet.contains(&addr) {
            return Err(Error::InvalidNetwork(format!(
                "{addr} is outside {}'s subnet {}: choose an address inside it",
                net.name, net.subnet
            )));
        }
        let host =
            addr != net.gateway && addr != net.subnet.network() && addr != net.subnet.broadcast();
        if !host {
            return Err(Error::InvalidNetwork(format!(
                "{addr} is not a free host address of {} ({})",
                net.name, net.subnet
            )));
        }
        let dir = self.ipam_dir(&net.name);
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        match write_new(&dir.join(addr.to_string()), id.as_bytes()) {
            Ok(()) => Ok(addr),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::InvalidNetwork(format!(
                "{addr} is already in use on {}",
                net.name
            ))),
            Err(e) => Err(io(format!("reserving {addr} in {}", dir.display()))(e)),
        }
    }

    /// The IPv6 address of an endpoint whose IPv4 address is `v4`: `want`, or else the one at
    /// the same offset in the IPv6 subnet (10.99.0.5 is fd00:99::5, as Docker's allocations
    /// usually come out), or the next free one after it. Recorded as `id`'s, under the lock.
    pub fn allocate_address6(
        &self,
        _lock: &Lock,
        net: &Network,
        v6: &Subnet6,
        v4: Ipv4Addr,
        want: Option<Ipv6Addr>,
        id: &str,
    ) -> Result<Ipv6Addr> {
        let dir = self.ipam_dir(&net.name);
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let base = u128::from(v6.subnet.network());
        let last = u128::from(v6.subnet.broadcast());
        if let Some(addr) = want {
            let host = v6.subnet.contains(&addr) && addr != v6.gateway && u128::from(addr) != base;
            if !host {
                return Err(Error::InvalidNetwork(format!(
                    "--ip6 {addr} is not a host address of {}'s subnet {}: choose one inside it",
                    net.name, v6.subnet
                )));
            }
            return match write_new(&dir.join(addr.to_string()), id.as_bytes()) {
                Ok(()) => Ok(addr),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(Error::InvalidNetwork(
                    format!("{addr} is already in use on {}", net.name),
                )),
                Err(e) => Err(io(format!("reserving {addr} in {}", dir.display()))(e)),
            };
        }
        // The offset wraps around in a subnet smaller than the IPv4 one.
        let span = last - base;
        let offset = u128::from(u32::from(v4) - u32::from(net.subnet.network()));
        for i in 0..span {
            let addr = Ipv6Addr::from(base + 1 + (offset - 1 + i) % span);
            if addr == v6.gateway {
                continue;
            }
            match write_new(&dir.join(addr.to_string()), id.as_bytes()) {
                Ok(()) => return Ok(addr),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(format!("allocating in {}", dir.display()))(e)),
            }
        }
        Err(Error::Exhausted {
            network: net.name.clone(),
            subnet: v6.subnet.to_string(),
        })
    }

    /// Frees an address if `id` holds it (idempotent).
    pub fn release_address(&self, net: &str, addr: impl std::fmt::Display, id: &str) -> Result<()> {
        let path = self.ipam_dir(net).join(addr.to_string());
        match fs::read_to_string(&path) {
            Ok(holder) if holder.trim() == id => remove_file(&path),
            _ => Ok(()),
        }
    }

    /// Addresses in use on a network.
    pub fn addresses(&self, net: &str) -> Result<Vec<(Ipv4Addr, String)>> {
        let dir = self.ipam_dir(net);
        let mut out = Vec::new();
        for name in read_dir(&dir)? {
            if let Ok(addr) = name.parse::<Ipv4Addr>() {
                let id = fs::read_to_string(dir.join(&name)).unwrap_or_default();
                out.push((addr, id.trim().to_string()));
            }
        }
        out.sort();
        Ok(out)
    }

    // --- Host port records: one file per protocol and port, holding the container id.

    fn port_path(&self, proto: Proto, port: u16) -> PathBuf {
        self.run.join("ports").join(format!("{proto}-{port}"))
    }

    /// Which container holds a host port, if any.
    pub fn port_holder(&self, proto: Proto, port: u16) -> Option<String> {
        fs::read_to_string(self.port_path(proto, port))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Records a host port for `id`; false when someone already holds it.
    pub fn claim_port(&self, _lock: &Lock, proto: Proto, port: u16, id: &str) -> Result<bool> {
        let path = self.port_path(proto, port);
        let dir = path.parent().unwrap();
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        match write_new(&path, id.as_bytes()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(format!("writing {}", path.display()))(e)),
        }
    }

    /// Frees a host port if `id` holds it (idempotent).
    pub fn release_port(&self, proto: Proto, port: u16, id: &str) -> Result<()> {
        match self.port_holder(proto, port) {
            Some(holder) if holder == id => remove_file(&self.port_path(proto, port)),
            _ => Ok(()),
        }
    }

    // --- Teardowns under way: a marker per container whose teardown a background process
    // finishes (holding the lock). A marker seen by whoever holds the lock next was left by a
    // process that died: that teardown is redone from the attachment record.

    fn detaching_dir(&self) -> PathBuf {
        self.run.join("detaching")
    }

    pub fn mark_detaching(&self, _lock: &Lock, id: &str) -> Result<()> {
        let dir = self.detaching_dir();
        let path = dir.join(id);
        fs::create_dir_all(&dir)
            .and_then(|_| fs::write(&path, b""))
            .map_err(io(format!("writing {}", path.display())))
    }

    pub fn unmark_detaching(&self, id: &str) -> Result<()> {
        remove_file(&self.detaching_dir().join(id))
    }

    /// Ids whose teardown was started and not finished (under the lock: abandoned ones).
    pub fn detaching(&self) -> Result<Vec<String>> {
        read_dir(&self.detaching_dir())
    }

    // --- Attachment records: one per attached container.

    fn attachment_path(&self, id: &str) -> PathBuf {
        self.run.join("attachments").join(format!("{id}.json"))
    }

    pub fn save_attachment(&self, a: &Attachment) -> Result<()> {
        let path = self.attachment_path(&a.id);
        let dir = path.parent().unwrap();
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(a).unwrap())
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(io(format!("writing {}", path.display())))
    }

    pub fn attachment(&self, id: &str) -> Result<Option<Attachment>> {
        read_json(&self.attachment_path(id))
    }

    pub fn remove_attachment(&self, id: &str) -> Result<()> {
        remove_file(&self.attachment_path(id))
    }

    /// Whether some attachment record satisfies `pred`; reads records only until one does, so
    /// that the common question (is anything left on this network?) costs one read however
    /// many containers run.
    /// The directory is read a few entries at a time, as a full read of 1000 names costs more
    /// than the record it finds.
    pub fn any_attachment(&self, pred: impl Fn(&Attachment) -> bool) -> Result<bool> {
        use rustix::fs::{open, Mode, OFlags, RawDir};
        let dir = self.run.join("attachments");
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match open(&dir, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(e) => return Err(io(format!("reading {}", dir.display()))(e.into())),
        };
        let mut buf = [std::mem::MaybeUninit::uninit(); 2048];
        let mut entries = RawDir::new(fd, &mut buf);
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|e| io(format!("reading {}", dir.display()))(e.into()))?;
            let name = entry.file_name().to_string_lossy();
            if let Some(id) = name.strip_suffix(".json") {
                if self.attachment(id)?.is_some_and(|a| pred(&a)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Every attachment record, oldest first.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        let dir = self.run.join("attachments");
        let mut out = Vec::new();
        for name in read_dir(&dir)? {
            if let Some(id) = name.strip_suffix(".json") {
                if let Some(a) = self.attachment(id)? {
                    out.push(a);
                }
            }
        }
        out.sort_by_key(|a| a.address);
        Ok(out)
    }
}

/// Network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 characters (they name files).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn write_new(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(format!("reading {}", dir.display()))(e)),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::Record {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}

/// 64 random hex digits, like Docker's ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current UTC time in RFC 3339, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!("minibox-netns-test-{}", random_id()));
        (Store::new(&dir.join("defs"), &dir.join("run")), dir)
    }

    #[test]
    fn ipam_round_robin_and_release() {
        let (s, dir) = store();
        let mut net = s.network(DEFAULT_NETWORK).unwrap();
        net.subnet = "10.9.0.0/29".parse().unwrap();
        net.gateway = "10.9.0.1".parse().unwrap();
        let lock = s.lock().unwrap();
        let a = s.allocate_address(&lock, &net, "a").unwrap();
        let b = s.allocate_address(&lock, &net, "b").unwrap();
        assert_eq!(
            (a.to_string().as_str(), b.to_string().as_str()),
            ("10.9.0.2", "10.9.0.3")
        );
        s.release_address(&net.name, a, "a").unwrap();
        // Round robin: the freed address is not handed out again straight away.
        assert_eq!(
            s.allocate_address(&lock, &net, "c").unwrap().to_string(),
            "10.9.0.4"
        );
        for id in ["d", "e", "f"] {
            s.allocate_address(&lock, &net, id).unwrap();
        }
        assert!(matches!(
            s.allocate_address(&lock, &net, "g"),
            Err(Error::Exhausted { .. })
        ));
        // Releasing with the wrong id does nothing.
        s.release_address(&net.name, b, "zz").unwrap();
        assert_eq!(s.addresses(&net.name).unwrap().len(), 5);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn any_attachment_stops_at_the_first_match() {
        let (s, dir) = store();
        let att = |id: &str, network: &str| Attachment {
            id: id.to_string(),
            network: network.to_string(),
            bridge: "br".into(),
            netns: "/run/netns/x".into(),
            veth: format!("mb-{id}"),
            ifname: eth0(),
            address: "10.9.0.2".parse().unwrap(),
            prefix_len: 24,
            gateway: "10.9.0.1".parse().unwrap(),
            mac: "02:00:00:00:00:01".into(),
            mtu: 1500,
            ports: Vec::new(),
            firewall: Driver::legacy(),
            hairpin: true,
            dns: None,
            ipv6: None,
        };
        assert!(!s.any_attachment(|_| true).unwrap());
        s.save_attachment(&att("a", "one")).unwrap();
        s.save_attachment(&att("b", "two")).unwrap();
        assert!(s.any_attachment(|a| a.network == "two").unwrap());
        assert!(!s.any_attachment(|a| a.network == "three").unwrap());
        // A record that cannot be read is an error, as for `attachments`, unless a match
        // came first.
        fs::write(s.attachment_path("c"), b"{").unwrap();
        assert!(s.any_attachment(|a| a.network == "three").is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn ports_and_defaults() {
        let (s, dir) = store();
        let lock = s.lock().unwrap();
        assert!(s.claim_port(&lock, Proto::Tcp, 8080, "a").unwrap());
        assert!(!s.claim_port(&lock, Proto::Tcp, 8080, "b").unwrap());
        assert!(s.claim_port(&lock, Proto::Udp, 8080, "b").unwrap());
        s.release_port(Proto::Tcp, 8080, "b").unwrap();
        assert_eq!(s.port_holder(Proto::Tcp, 8080).as_deref(), Some("a"));
        let id = s.network(DEFAULT_NETWORK).unwrap().id;
        assert_eq!(s.network(DEFAULT_NETWORK).unwrap().id, id);
        assert!(matches!(s.network("nope"), Err(Error::UnknownNetwork(_))));
        assert_eq!(now_rfc3339().len(), 20);
        fs::remove_dir_all(dir).unwrap();
    }
}
