//! Where a pull keeps what it downloads until it commits: `<store>/staging/<name>/`, held by a
//! flock on `<name>.lock` while the pull runs, so that downloading never takes the store's lock.
//! An area whose lock is free belongs to a pull that died (Ctrl-C, SIGKILL): opening the store
//! removes it. Nothing in it is trusted: a pull verifies each blob as it streams in.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};

use crate::digest::hex_of;
use crate::error::IoContext;
use crate::{Error, Store};

pub(crate) struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: Flock<File>,
}

impl Staging {
    /// Where the `n`th blob of the pull is written (the same blob may come twice).
    pub fn blob(&self, n: usize, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{n}-{}", hex_of(digest).unwrap_or("blob")))
    }

    /// Where the layer of chain `chain` is unpacked.
    pub fn layer(&self, chain: &str) -> PathBuf {
        self.dir
            .join(format!("layer-{}", hex_of(chain).unwrap_or("x")))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // The area first, then its lock file: a lock file without an area is harmless.
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.lock_path);
    }
}

impl Store {
    fn staging_root(&self) -> PathBuf {
        self.path("staging")
    }

    /// A new staging area, locked for as long as it lives.
    pub(crate) fn staging(&self) -> Result<Staging, Error> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let root = self.staging_root();
        fs::create_dir_all(&root).at(&root)?;
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let lock_path = root.join(format!("{name}.lock"));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .at(&lock_path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::path(&lock_path, e.into()))?;
        // A sweeper may have taken the free lock between create and lock, and removed the file.
        let same = fs::metadata(&lock_path)
            .ok()
            .zip(lock.metadata().ok())
            .is_some_and(|(a, b)| a.ino() == b.ino());
        if !same {
            return Err(Error::invalid(format!(
                "{}: removed while being created: try again",
                lock_path.display()
            )));
        }
        let dir = root.join(&name);
        fs::create_dir(&dir).at(&dir)?;
        Ok(Staging {
            dir,
            lock_path,
            _lock: lock,
        })
    }

    /// Removes the staging areas of pulls that died.
    pub(crate) fn sweep_staging(&self) {
        let root = self.staging_root();
        let Ok(entries) = fs::read_dir(&root) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "lock") {
                continue;
            }
            let Ok(file) = File::options().write(true).open(&path) else {
                continue;
            };
            if let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                tracing::debug!(
                    "removing the staging area of a dead pull: {}",
                    path.display()
                );
                let _ = fs::remove_dir_all(path.with_extension(""));
                let _ = fs::remove_file(&path);
            }
        }
    }
}
