//! A client of the OCI distribution protocol (Docker's registry API v2): pull, push, login.
//!
//! - [`pull`] resolves a reference (Docker's rules: `busybox` is `docker.io/library/busybox:latest`)
//!   to a manifest, through an index or manifest list for the requested platform, then downloads
//!   the layers a few at a time into a staging area of the store, each verified by digest and
//!   unpacked *as it streams*, and commits the image under the store's lock at the very end.
//! - [`push`] uploads what the registry lacks (cross-repository mounts when the blob came from
//!   another repository of the same registry) and then the manifest, byte for byte as stored.
//! - [`login`]/[`logout`] keep credentials in Docker's `config.json` (`auths`), and pulls and
//!   pushes read Podman's `auth.json` too ([`auth`]).
//!
//! Transport ([`client`]): HTTPS with the system's roots plus a per-registry CA from
//! `certs.d/HOST[:PORT]/ca.crt`; plain HTTP only for loopback registries and those named
//! insecure; token (Bearer) and basic authentication; retries with backoff on 5xx and dropped
//! connections.

pub mod auth;
mod client;
mod credhelper;
mod pull;
mod push;

use std::path::PathBuf;

pub use auth::{login, logout, Credentials};
pub use pull::{pull, Pulled};
pub use push::{push, Pushed};

/// How registries are reached: what the user configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// Registries (`HOST[:PORT]`) that may be reached over plain HTTP when HTTPS fails, besides
    /// `localhost` and 127.0.0.0/8.
    pub insecure: Vec<String>,
    /// Directories of per-registry certificates: `DIR/HOST[:PORT]/ca.crt`.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            certs_dirs: vec![
                PathBuf::from("/etc/docker/certs.d"),
                PathBuf::from("/etc/containers/certs.d"),
            ],
        }
    }
}

/// What a pull or push reports about each blob, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The store (pull) or the registry (push) has it already.
    Exists,
    /// Queued behind the other transfers.
    Waiting,
    /// The transfer began; `size` bytes in all.
    Started { size: u64 },
    /// `n` more bytes went through.
    Bytes(u64),
    /// The connection failed; the transfer starts again.
    Retrying,
    /// The registry copied it from another repository (push).
    Mounted,
    /// Verified and unpacked (pull) or uploaded (push).
    Done,
}

/// Receives [`Event`]s from the transfer threads; `blob` is the short (12-digit) digest.
pub trait Progress: Sync {
    fn event(&self, blob: &str, event: Event);
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: &str, _: Event) {}
}

/// The 12 hex digits Docker shows for a digest.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}
