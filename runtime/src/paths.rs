//! Where minibox keeps things: persistent data under `--root`, volatile state under `--runroot`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent: images, container directories, network definitions.
    pub root: PathBuf,
    /// Volatile (a reboot clears it): container state, IPAM records, locks.
    pub runroot: PathBuf,
}

impl Paths {
    pub fn new(root: &Path, runroot: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            runroot: runroot.to_path_buf(),
        }
    }

    /// The image store (an OCI image layout plus unpacked layers).
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Per-container persistent directories (rootfs upper/work dirs, logs).
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Per-container volatile state (state file, lock).
    pub fn container_state(&self) -> PathBuf {
        self.runroot.join("containers")
    }

    /// Network definitions (persistent).
    pub fn networks(&self) -> PathBuf {
        self.root.join("networks")
    }

    /// Volatile network state: IPAM records, the network lock.
    pub fn network_state(&self) -> PathBuf {
        self.runroot.join("networks")
    }

    /// Compiled seccomp programs, one per profile (volatile: libseccomp may change on upgrade).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.runroot.join("seccomp")
    }
}
