//! Test images, built from Debian's `busybox-static` and the tutorial's Go web demo, as rootfs
//! tarballs that tests feed to `minibox import`. Built once and cached under the target directory;
//! a file lock lets parallel test binaries share the work.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

const BUSYBOX: &str = "/bin/busybox";

/// A rootfs tarball with busybox and its applet links, `/etc/passwd` and `/etc/group` (root and a
/// non-root user `app`, uid and gid 1000), `/tmp` (1777) and `/home/app`.
pub fn busybox_tarball() -> PathBuf {
    cached("busybox.tar", |out| write_rootfs(out, &[]))
}

/// The busybox rootfs plus `/bin/web`, the Go web demo (`examples/go-web`), built statically.
pub fn web_tarball() -> PathBuf {
    cached("web.tar", |out| {
        let web = out.with_file_name("web");
        build_web(&web);
        write_rootfs(out, &[("bin/web", &web)])
    })
}

/// The busybox rootfs plus `/bin/probe` (see [`probe_binary`]).
pub fn probe_tarball() -> PathBuf {
    let probe = probe_binary();
    let name = format!("{}.tar", probe.file_name().unwrap().to_string_lossy());
    cached(&name, |out| write_rootfs(out, &[("bin/probe", &probe)]))
}

/// A postgres-like service, `/bin/pgish` on the busybox rootfs: like postgres, it shuts down at
/// once on SIGINT ("fast shutdown") and, on SIGTERM, keeps running while it waits for its
/// clients to leave ("smart shutdown"), so only the right stop signal stops it cleanly.
pub fn pgish_tarball() -> PathBuf {
    cached("pgish.tar", |out| {
        let script = out.with_file_name("pgish");
        fs::write(
            &script,
            "#!/bin/sh\n\
             trap 'echo \"received fast shutdown request\"; exit 0' INT\n\
             trap 'echo \"received smart shutdown request: waiting for clients\"' TERM\n\
             echo \"database system is ready to accept connections\"\n\
             while :; do sleep 1 & wait $!; done\n",
        )
        .unwrap();
        write_rootfs(out, &[("bin/pgish", &script)])
    })
}

/// `tests/probe/main.rs`, the attacker's tool of the security tests, built statically with rustc
/// alone (no crates) so that it runs in a busybox image.
pub fn probe_binary() -> PathBuf {
    let src = crate::workspace().join("tests/probe/main.rs");
    // Cached under the source's hash: an edited probe is never run stale.
    let hash = fs::read(&src)
        .unwrap()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    cached(&format!("probe-{hash:016x}"), |out| {
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let status = Command::new(rustc)
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-o",
            ])
            .arg(out)
            .arg(&src)
            .status()
            .expect("run rustc");
        assert!(status.success(), "building {} failed", src.display());
    })
}

/// The Go web demo binary, built statically with Debian's golang-go.
pub fn web_binary() -> PathBuf {
    cached("web", build_web)
}

fn cached(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let dir = crate::target_dir().join("minibox-fixtures");
    fs::create_dir_all(&dir).unwrap();
    let lock = File::create(dir.join(".lock")).unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let tmp = dir.join(format!(".{name}.tmp"));
        build(&tmp);
        fs::rename(&tmp, &path).unwrap();
    }
    path
}

fn build_web(out: &Path) {
    let src = crate::workspace().join("examples/go-web/main.go");
    let cache = crate::target_dir().join("minibox-fixtures/gocache");
    let status = Command::new("go")
        .args(["build", "-trimpath", "-ldflags=-s -w", "-o"])
        .arg(out)
        .arg(&src)
        .env("CGO_ENABLED", "0")
        .env("GOPROXY", "off")
        .env("GOCACHE", &cache)
        .env("GOPATH", cache.join("gopath"))
        .env("GO111MODULE", "off")
        .status()
        .expect("run go (install golang-go)");
    assert!(status.success(), "go build of {} failed", src.display());
}

/// The busybox rootfs, plus `extra` files (path in the image, file on the host), executable.
fn write_rootfs(out: &Path, extra: &[(&str, &Path)]) {
    let mut tar = tar::Builder::new(File::create(out).unwrap());
    let dir = |tar: &mut tar::Builder<File>, path: &str, mode: u32, owner: u64| {
        let mut h = header(tar::EntryType::Directory, mode, owner);
        tar.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    for d in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "var",
    ] {
        dir(&mut tar, d, 0o755, 0);
    }
    dir(&mut tar, "root", 0o700, 0);
    dir(&mut tar, "tmp", 0o1777, 0);
    dir(&mut tar, "home", 0o755, 0);
    dir(&mut tar, "home/app", 0o755, 1000);

    let file = |tar: &mut tar::Builder<File>, path: &str, mode: u32, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, mode, 0);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).unwrap();
    };
    file(
        &mut tar,
        "bin/busybox",
        0o755,
        &fs::read(BUSYBOX).expect("install busybox-static"),
    );
    file(
        &mut tar,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n\
          app:x:1000:1000:app:/home/app:/bin/sh\n\
          nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    file(
        &mut tar,
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    );
    for (path, from) in extra {
        file(&mut tar, path, 0o755, &fs::read(from).unwrap());
    }

    let list = Command::new(BUSYBOX).arg("--list-full").output().unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet == "bin/busybox" {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, applet, "/bin/busybox").unwrap();
    }
    tar.into_inner().unwrap().sync_all().unwrap();
}

fn header(kind: tar::EntryType, mode: u32, owner: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner);
    h.set_gid(owner);
    h.set_mtime(1_700_000_000);
    h.set_size(0);
    h
}
