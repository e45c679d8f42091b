//! Working inside a network namespace that the caller made and holds.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// Where `ip netns` keeps the names it gives (bind mounts of netns files).
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// How `--explain` names a netns: `ip -n NAME` for one of `ip netns`'s, its path otherwise.
pub fn label(ns: &Path) -> String {
    match (ns.parent(), ns.file_name()) {
        (Some(dir), Some(name)) if dir == Path::new(NETNS_DIR) => name.to_string_lossy().into(),
        _ => ns.display().to_string(),
    }
}

/// Runs `f` on a dedicated thread that has entered the netns `ns` is open on: never switch the
/// caller's own thread.
pub fn inside<T: Send>(ns: &File, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                what: "entering the network namespace".into(),
                source: e.into(),
            })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(panicked()))
    })
}

/// [`inside`], with the thread started while `outer` runs on this one: it enters `ns` and
/// runs `prepare` at once (a thread's start and a netlink connection take a while), then,
/// once `outer` succeeded, `then` with what `prepare` made. A failed `outer` stops it there,
/// and is the error returned.
pub fn inside_after<O, P, T: Send>(
    ns: &File,
    outer: impl FnOnce() -> Result<O>,
    prepare: impl FnOnce() -> Result<P> + Send,
    then: impl FnOnce(P) -> Result<T> + Send,
) -> Result<(O, T)> {
    std::thread::scope(|s| {
        let (go, wait) = std::sync::mpsc::channel();
        let thread = s.spawn(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
                what: "entering the network namespace".into(),
                source: e.into(),
            })?;
            let prepared = prepare();
            match wait.recv() {
                Ok(true) => then(prepared?).map(Some),
                _ => Ok(None),
            }
        });
        let outer = outer();
        let _ = go.send(outer.is_ok());
        let inner = thread.join().unwrap_or_else(|_| Err(panicked()));
        Ok((outer?, inner?.ok_or_else(panicked)?))
    })
}

fn panicked() -> Error {
    Error::Io {
        what: "netns thread".into(),
        source: std::io::Error::other("panicked"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels() {
        use std::path::Path;
        assert_eq!(
            super::label(Path::new("/run/netns/minibox-0123")),
            "minibox-0123"
        );
        assert_eq!(
            super::label(Path::new("/proc/42/ns/net")),
            "/proc/42/ns/net"
        );
        assert_eq!(
            super::label(Path::new("/var/run/netns/cni-1")),
            "/var/run/netns/cni-1"
        );
    }
}
