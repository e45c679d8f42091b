//! minibox as a CNI plugin (spec 1.0.0, with 1.1.0's GC and STATUS; 0.3.x and 0.4.0 answered in
//! their shapes): the same bridge, address management and published ports as `minibox run`,
//! from the same library, in one process.
//!
//! Records live in the minibox network store (the CLI's by default), keyed by the spec's
//! primary key (network name, container id, interface name), so CLI containers and CNI pods on
//! the same network share one bridge and one address space without collisions; a conflist
//! with another `name` is a network of its own.
mod attach;
mod conf;
mod error;
mod ipam;
mod result;

use std::io::Read;
use std::path::PathBuf;

use serde_json::{json, Value};

pub use conf::{Command, Env, NetConf, SUPPORTED};
pub use error::{code, CniError};

use crate::Store;

const DEFAULT_ROOT: &str = "/var/lib/minibox";
const DEFAULT_RUNROOT: &str = "/run/minibox";

/// One plugin call: what to print on stdout and the exit status.
pub fn main() -> (Value, i32) {
    let env = Env::from_vars(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let version = requested_version(&stdin);
    let outcome = env.and_then(|env| {
        read.map_err(|e| CniError::new(code::IO_FAILURE, format!("reading stdin: {e}")))?;
        call(&env, &stdin)
    });
    match outcome {
        Ok(Some(v)) => (v, 0),
        Ok(None) => (Value::Null, 0),
        Err(e) => (e.to_json(&version), 1),
    }
}

/// The version to answer errors in: the one asked for when it can be read, else the newest.
fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| SUPPORTED[SUPPORTED.len() - 1].to_string())
}

/// Runs `env.command` with the configuration `stdin`.
pub fn call(env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": requested_version(stdin),
            "supportedVersions": SUPPORTED,
        })));
    }
    let conf = NetConf::parse(stdin, env.command)?;
    let store = store(&conf);
    match env.command {
        Command::Add => attach::add(&store, env, &conf, stdin).map(Some),
        Command::Del => attach::del(&store, env, &conf, stdin).map(|_| None),
        Command::Check => attach::check(&store, env, &conf).map(|_| None),
        Command::Gc => attach::gc(&store, env, &conf, stdin).map(|_| None),
        Command::Status => attach::status(&store, &conf).map(|_| None),
        Command::Version => unreachable!("answered above"),
    }
}

fn store(conf: &NetConf) -> Store {
    let root = conf
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let runroot = conf
        .runroot
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNROOT));
    Store::new(&root.join("networks"), &runroot.join("networks"))
}
