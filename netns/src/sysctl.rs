//! Kernel settings the bridge needs, written only when they differ.

use std::fs;
use std::path::Path;

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
    if key.starts_with("net.ipv6.") && !Path::new("/proc/sys/net/ipv6").exists() {
        return Err(Error::Ipv6Unavailable);
    }
    if get(key).is_ok_and(|v| v == value) {
        return Ok(());
    }
    ex.say(|| format!("ip netns exec {ns} sysctl -w {key}={value}"));
    fs::write(path(key), value).map_err(io(format!("setting {key}={value} in {ns}")))
}

/// Refuses IPv6 work on a kernel booted with `ipv6.disable=1`.
pub fn ipv6_available() -> Result<()> {
    match Path::new("/proc/sys/net/ipv6").exists() {
        true => Ok(()),
        false => Err(Error::Ipv6Unavailable),
    }
}
