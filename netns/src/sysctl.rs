//! Kernel settings the bridge needs, written only when they differ.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::OnceLock;

use rustix::fs::{openat, Mode, OFlags, CWD};
use rustix::mount::{fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags};

use crate::error::{io, Error, Result};
use crate::explain::Explain;
use crate::store::Store;

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// `sysctl -n KEY` (KEY in dotted form, e.g. net.ipv4.ip_forward).
pub fn get(key: &str) -> Result<String> {
    fs::read_to_string(path(key))
        .map(|v| v.trim().to_string())
        .map_err(io(format!("reading {key}")))
}

/// `sysctl -w KEY=VALUE`; with `record`, the value before is recorded in it first (for
/// `system reset`: a key of a bridge minibox made needs none, it goes with the bridge).
pub fn ensure(record: Option<&Store>, ex: &Explain, key: &str, value: &str) -> Result<()> {
    let line = || format!("sysctl -w {key}={value}");
    match get(key) {
        Ok(v) if v == value => {
            ex.already(line);
            return Ok(());
        }
        Ok(prior) => {
            if let Some(store) = record {
                store.record_prior(key, &prior)?;
            }
        }
        // A key that is not there yet (a bridge's, just made) had nothing to restore.
        Err(_) => {}
    }
    ex.say(line);
    set(key, value)
}

/// Writes `value` to `key` without asking (`system reset` restoring what was).
pub fn set(key: &str, value: &str) -> Result<()> {
    fs::write(path(key), value).map_err(io(format!("setting {key}={value}")))
}

/// [`ensure`] in the network namespace the calling thread is in (see [`crate::netns::inside`]),
/// `ns` naming it for the explained command. A kernel without IPv6 has no `net.ipv6`: said so.
pub fn ensure_inside(ex: &Explain, ns: &str, key: &str, value: &str) -> Result<()> {
    if key.starts_with("net.ipv6.") {
        ipv6_available_inside()?;
    }
    let path = key.replace('.', "/");
    let now = open_inside(&path, OFlags::RDONLY).and_then(std::io::read_to_string);
    if now.is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    ex.say(|| format!("ip netns exec {ns} sysctl -w {key}={value}"));
    open_inside(&path, OFlags::WRONLY)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(io(format!("setting {key}={value} in {ns}")))
}

/// [`ipv6_available`], asked in the network namespace the calling thread is in.
pub fn ipv6_available_inside() -> Result<()> {
    open_inside("net/ipv6", OFlags::PATH | OFlags::DIRECTORY)
        .map(drop)
        .map_err(|_| Error::Ipv6Unavailable)
}

/// Makes this process's own procfs instance (see [`open_inside`]) now, off the critical path
/// (on a thread that just entered a netns and waits for its interface to be made).
pub fn prepare_inside() {
    own_proc_sys();
}

/// Opens `/proc/sys/PATH` for the calling thread's netns. The kernel keeps one dentry per netns
/// for `/proc/sys/net/ipv6`, all under one parent and on one hash chain, and each new netns's
/// first lookup walks the chain: some 2 ms with 1000 containers running. So a container's netns
/// is looked up in a procfs instance of this process's own, whose chain holds only the netns
/// this process looked up; in the host's /proc if one cannot be made.
fn open_inside(path: &str, flags: OFlags) -> std::io::Result<fs::File> {
    let flags = flags | OFlags::CLOEXEC;
    let fd = match own_proc_sys() {
        Some(sys) => openat(sys, path, flags, Mode::empty())?,
        None => openat(CWD, format!("/proc/sys/{path}"), flags, Mode::empty())?,
    };
    Ok(fs::File::from(fd))
}

/// `sys` of a procfs instance made (detached, never mounted anywhere) on first use and kept for
/// the life of the process.
fn own_proc_sys() -> Option<&'static OwnedFd> {
    static SYS: OnceLock<Option<OwnedFd>> = OnceLock::new();
    SYS.get_or_init(|| {
        let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
        fsconfig_create(&fs).ok()?;
        let root = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).ok()?;
        openat(
            &root,
            "sys",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    })
    .as_ref()
}

/// Refuses IPv6 work on a kernel booted with `ipv6.disable=1`.
pub fn ipv6_available() -> Result<()> {
    match Path::new("/proc/sys/net/ipv6").exists() {
        true => Ok(()),
        false => Err(Error::Ipv6Unavailable),
    }
}
