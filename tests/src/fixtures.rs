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
    cached("busybox.tar", |out| write_rootfs(out, None))
}

/// The busybox rootfs plus `/bin/web`, the Go web demo (`examples/go-web`), built statically.
pub fn web_tarball() -> PathBuf {
    cached("web.tar", |out| {
        let web = out.with_file_name("web");
        build_web(&web);
        write_rootfs(out, Some(&web))
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

fn write_rootfs(out: &Path, web: Option<&Path>) {
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
    if let Some(web) = web {
        file(&mut tar, "bin/web", 0o755, &fs::read(web).unwrap());
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
