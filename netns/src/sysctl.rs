//! Kernel settings the bridge needs, written only when they differ.

use std::fs;

use crate::error::{io, Result};
use crate::explain::Explain;

/// `sysctl -w KEY=VALUE` (KEY in dotted form, e.g. net.ipv4.ip_forward).
pub fn ensure(ex: &Explain, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if fs::read_to_string(&path)
        .map(|v| v.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    ex.say(|| format!("sysctl -w {key}={value}"));
    fs::write(&path, value).map_err(io(format!("setting {key}={value}")))
}
