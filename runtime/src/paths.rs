//! Where minibox keeps things: persistent data under `--root`, volatile state under `--runroot`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory of the store could not be made or closed.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", .path.display())]
pub struct Error {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

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

    /// Creates the root and the runroot closed to other users (0700), and tightens them where
    /// an older minibox left them open (0755). Everything minibox keeps lies below these two, so
    /// no other user reaches a setuid file or a device node of an image or of a container's
    /// writable layer, a log, a config (with its `-e` secrets) or a lock (which anyone able to
    /// open could hold, stalling every `run`). No mount needs traversal by other users: the
    /// rootfs and the /etc files are mounted by root, and a container sees only its mounts.
    pub fn secure(&self) -> Result<(), Error> {
        for dir in [&self.root, &self.runroot] {
            let err = |what| {
                let path = dir.clone();
                move |source| Error { what, path, source }
            };
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err("creating"))?;
            let mode = std::fs::metadata(dir)
                .map_err(err("reading"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(err("closing to other users"))?;
            }
        }
        Ok(())
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

    /// Where the base of containers' mount namespaces is pinned (see `container::mntns`).
    pub fn mount_ns_base(&self) -> PathBuf {
        self.runroot.join("mntns")
    }

    /// Compiled seccomp programs, one per profile (volatile: libseccomp may change on upgrade).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.runroot.join("seccomp")
    }
}
