//! Credentials: where they are kept and found, the way Docker and Podman keep them.
//!
//! `login` writes Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), mode 0600, entry `auths.HOST.auth` = base64 of `USER:PASSWORD`;
//! other keys in the file are kept. Pulls and pushes look in that file, then in Podman's auth
//! files (`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.config/containers/auth.json`), which have the same format. When Docker's file names a
//! credential helper for the registry (`credHelpers`, `credsStore`), the secrets go to and come
//! from that helper instead, as Docker does (see [`super::credhelper`]).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use super::client::Session;
use super::credhelper::{self, Helper};
use super::Options;
use crate::Error;

/// Docker Hub's key in `auths`, for historical reasons.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.username)
    }
}

/// `https://reg.example:5000/` → `reg.example:5000`; Docker Hub's names → `docker.io`.
pub fn registry_host(name: &str) -> String {
    let host = name
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// Docker's client configuration file, which `login` writes.
pub fn docker_config() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => home().join(".docker/config.json"),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Every file credentials are read from, in order.
fn auth_files() -> Vec<PathBuf> {
    let mut files = vec![docker_config()];
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(f.into());
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    files.push(home().join(".config/containers/auth.json"));
    files
}

/// What Docker calls the registry in `auths` and hands credential helpers.
fn server_key(host: &str) -> String {
    if host == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

/// The credential helper Docker's file `config` (read from `path`) names for `host`.
fn helper<'a>(config: &Value, path: &'a Path, host: &str) -> Option<Helper<'a>> {
    credhelper::configured(config, host).map(|name| Helper { name, file: path })
}

/// The keys an `auths` entry for `host` may have.
fn keys(host: &str) -> Vec<String> {
    if host == "docker.io" {
        return [
            DOCKER_HUB_KEY,
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
        ]
        .map(String::from)
        .to_vec();
    }
    vec![
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
        format!("https://{host}/v2/"),
    ]
}

fn read_config(path: &Path) -> Result<Option<Value>, Error> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::path(path, e)),
    }
}

/// The credentials stored for `host`, from the first auth file that has them.
pub fn credentials_for(host: &str) -> Result<Option<Credentials>, Error> {
    for path in auth_files() {
        let Some(config) = read_config(&path)? else {
            continue;
        };
        if let Some(helper) = helper(&config, &path, host) {
            if let Some(creds) = helper.get(&server_key(host))? {
                return Ok(Some(creds));
            }
        }
        for key in keys(host) {
            let Some(auth) = config["auths"][&key]["auth"].as_str() else {
                continue;
            };
            let bad =
                || Error::invalid(format!("{}: auths.{key}.auth is malformed", path.display()));
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
    }
    Ok(None)
}

/// Checks `creds` against the registry `host`, then stores them; returns the file written.
pub fn login(opts: &Options, host: &str, creds: Credentials) -> Result<PathBuf, Error> {
    let host = registry_host(host);
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    Session::connect(opts, &host, Vec::new(), Some(creds.clone()))?;
    let path = docker_config();
    let mut config = read_config(&path)?.unwrap_or_else(|| json!({}));
    if !config["auths"].is_object() {
        config["auths"] = json!({});
    }
    let key = server_key(&host);
    // With a helper, the file only says that the registry has credentials (as Docker writes it).
    config["auths"][&key] = match helper(&config, &path, &host) {
        Some(helper) => {
            helper.store(&key, &creds)?;
            json!({})
        }
        None => json!({ "auth": encoded }),
    };
    write_private(&path, &config)?;
    Ok(path)
}

/// Forgets the credentials for `host` in Docker's file; false when there were none.
pub fn logout(host: &str) -> Result<bool, Error> {
    let host = registry_host(host);
    let path = docker_config();
    let Some(mut config) = read_config(&path)? else {
        return Ok(false);
    };
    let erased = match helper(&config, &path, &host) {
        Some(helper) => helper.erase(&server_key(&host))?,
        None => false,
    };
    let Some(auths) = config["auths"].as_object_mut() else {
        return Ok(erased);
    };
    let before = auths.len();
    for key in keys(&host) {
        auths.remove(&key);
    }
    if auths.len() == before {
        return Ok(erased);
    }
    write_private(&path, &config)?;
    Ok(true)
}

/// Writes the file readable by its owner only, through a temporary name and a rename.
fn write_private(path: &Path, config: &Value) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::path(dir, e))?;
    }
    let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
    let res = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut bytes = serde_json::to_vec_pretty(config).expect("serializable");
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| Error::path(path, e))
}
