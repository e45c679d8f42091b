//! The end-to-end harness: the real `minibox` binary, as root, against the real kernel, each test
//! inside its own throwaway *sandbox host*.
//!
//! A [`Sandbox`] is a holder process in a fresh network and mount namespace (loopback up, a tmpfs
//! on `/run` so `/run/netns` and the default runroot are private), with a private `--root` and a
//! unique cgroup parent. Every minibox command of the test runs inside it, so tests run in parallel
//! without seeing each other, and [`Sandbox::finish`] proves that nothing was left behind.

pub mod fixtures;
pub mod oci;
pub mod registry;
mod sandbox;
pub mod vm;

pub use oci::Bundle;
pub use sandbox::{default_firewall, Out, Sandbox};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// Ends this test binary, successfully, with a message, unless it runs as root: its tests drive
/// the real binary as root (namespaces, cgroups, netfilter, mounts), which an ordinary user cannot
/// do; `cargo test` as that user still runs every unit test. Called by [`Sandbox::new`] and the
/// VM runner. Written straight to stderr: the test harness would swallow a captured line.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return;
    }
    use std::io::Write;
    let exe = std::env::current_exe().unwrap_or_default();
    let name = exe.file_name().unwrap_or_default().to_string_lossy();
    let _ = writeln!(
        std::io::stderr(),
        "minibox-tests: {name}: skipped: the end-to-end tests run minibox as root (run cargo test \
         as root, or `make test`); the unit tests need no privilege"
    );
    std::process::exit(0);
}

/// The workspace's root directory.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The cargo target directory, where fixtures and sandboxes live too.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The binary under test: `$MINIBOX_BIN`, or the workspace's debug build, built once per test
/// binary so that a plain `cargo test` never runs a stale one.
pub fn minibox_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MINIBOX_BIN") {
        return bin.into();
    }
    static BUILD: Once = Once::new();
    built(&BUILD, "minibox", "minibox")
}

/// The OCI runtime under test, `minibox-runc` (`$MINIBOX_RUNC_BIN`), built like [`minibox_bin`].
pub fn minibox_runc_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MINIBOX_RUNC_BIN") {
        return bin.into();
    }
    static BUILD: Once = Once::new();
    built(&BUILD, "minibox", "minibox-runc")
}

/// The CNI plugin under test, `minibox-cni`, built like [`minibox_bin`].
pub fn cni_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    built(&BUILD, "minibox-netns", "minibox-cni")
}

fn built(once: &Once, package: &str, bin: &str) -> PathBuf {
    once.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", package, "--bin", bin])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} --bin {bin} failed"
        );
    });
    target_dir().join("debug").join(bin)
}
