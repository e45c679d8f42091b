//! Kernel settings the bridge needs, written only when they differ.

use std::fs;

use crate::error::{io, Result};
use crate::explain::Explain;

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// `sysctl -n KEY` (KEY in dotted form, e.g. net.ipv4.ip_forward).
pub fn get(key: &str) -> Result<String> {
    fs::read_to_string(path(key))
        .map(|v| v.trim().to_string())
        .map_err(io(format!("reading {key}")))
}

/// `sysctl -w KEY=VALUE`.
pub fn ensure(ex: &Explain, key: &str, value: &str) -> Result<()> {
    if get(key).is_ok_and(|v| v == value) {
        return Ok(());
    }
    ex.say(|| format!("sysctl -w {key}={value}"));
    fs::write(path(key), value).map_err(io(format!("setting {key}={value}")))
}
