//! Docker's credential helpers: `credHelpers.HOST` (or `credsStore` for every host) in Docker's
//! `config.json` names a program `docker-credential-NAME` that keeps the secrets (in the desktop
//! keyring, `pass`, a cloud's token service…). The protocol is Docker's: the action as the only
//! argument, the server URL (`get`, `erase`) or a JSON record (`store`) on stdin, a JSON record
//! `{ServerURL, Username, Secret}` on stdout; "credentials not found" on stdout with a failure
//! exit means there are none.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::auth::Credentials;
use crate::Error;

/// The message helpers print when they have nothing for a server.
const NOT_FOUND: &str = "credentials not found";

/// The helper `config` names for `host`, if any: `credHelpers.HOST` first, then `credsStore`.
pub fn configured(config: &Value, host: &str) -> Option<String> {
    config["credHelpers"][host]
        .as_str()
        .or_else(|| config["credsStore"].as_str())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// A helper named in `file`.
pub struct Helper<'a> {
    pub name: String,
    pub file: &'a Path,
}

impl Helper<'_> {
    fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    /// Runs `action` with `input` on stdin; returns its stdout, or None when it says it has no
    /// credentials for the server.
    fn call(&self, action: &str, input: &[u8]) -> Result<Option<String>, Error> {
        let program = self.program();
        let what = || {
            format!(
                "the credential helper {program} (named in {})",
                self.file.display()
            )
        };
        let mut child = Command::new(&program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::invalid(format!(
                    "{} is not installed: install it, or remove it from that file",
                    what()
                )),
                _ => Error::io(format!("running {}", what()), e),
            })?;
        // A helper that exits without reading its input is judged by its answer, not the pipe.
        let _ = child.stdin.take().expect("piped").write_all(input);
        let out = child
            .wait_with_output()
            .map_err(|e| Error::io(format!("running {}", what()), e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() {
            return Ok(Some(stdout));
        }
        if stdout.contains(NOT_FOUND) {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = [stdout.as_str(), stderr.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("no message")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        Err(Error::registry(format!(
            "{} failed on `{action}`: {why}",
            what()
        )))
    }

    /// The credentials the helper keeps for `server`.
    pub fn get(&self, server: &str) -> Result<Option<Credentials>, Error> {
        let Some(out) = self.call("get", server.as_bytes())? else {
            return Ok(None);
        };
        let record: Value = serde_json::from_str(&out).map_err(|_| {
            Error::registry(format!(
                "the credential helper {} answered something other than JSON for {server}",
                self.program()
            ))
        })?;
        let field = |k: &str| record[k].as_str().unwrap_or_default().to_string();
        let (username, password) = (field("Username"), field("Secret"));
        if password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Credentials { username, password }))
    }

    pub fn store(&self, server: &str, creds: &Credentials) -> Result<(), Error> {
        let record = json!({
            "ServerURL": server,
            "Username": creds.username,
            "Secret": creds.password,
        });
        self.call("store", record.to_string().as_bytes())
            .map(|_| ())
    }

    /// Forgets `server`; false when the helper had nothing for it.
    pub fn erase(&self, server: &str) -> Result<bool, Error> {
        self.call("erase", server.as_bytes()).map(|o| o.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_helper_wins_over_the_store_for_every_host() {
        let config = json!({"credsStore": "pass", "credHelpers": {"reg.example": "ecr-login"}});
        assert_eq!(
            configured(&config, "reg.example").as_deref(),
            Some("ecr-login")
        );
        assert_eq!(configured(&config, "other:5000").as_deref(), Some("pass"));
        assert_eq!(configured(&json!({"auths": {}}), "reg.example"), None);
        assert_eq!(configured(&json!({"credsStore": ""}), "reg.example"), None);
    }
}
