//! A delegated IPAM plugin (`"ipam": {"type": "host-local", ...}`), run as the spec says: found in
//! CNI_PATH, given the same environment and the whole configuration on stdin.

use std::io::Write;
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::conf::{Command, Env};
use super::error::{code, CniError, Result};

/// Runs the IPAM plugin `kind` for `command`; its result for ADD.
pub fn delegate(env: &Env, kind: &str, command: Command, stdin: &[u8]) -> Result<Option<Value>> {
    let fail = |msg: String| CniError::new(code::IPAM, msg);
    let exe = env
        .path
        .iter()
        .map(|dir| dir.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("IPAM plugin {kind:?} not found in CNI_PATH"),
            )
        })?;
    let verb = match command {
        Command::Add => "ADD",
        Command::Del => "DEL",
        Command::Check => "CHECK",
        Command::Gc => "GC",
        Command::Status => "STATUS",
        Command::Version => "VERSION",
    };
    let mut child = Process::new(&exe)
        .env("CNI_COMMAND", verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| fail(format!("starting {}: {e}", exe.display())))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin)
            .map_err(|e| fail(format!("writing to {kind}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for {kind}: {e}")))?;
    let answer: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if !out.status.success() {
        let msg = answer
            .as_ref()
            .and_then(|v| v.get("msg")?.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("exited with {}", out.status));
        return Err(fail(format!("IPAM plugin {kind}: {msg}")));
    }
    Ok(answer.filter(|_| command == Command::Add))
}
