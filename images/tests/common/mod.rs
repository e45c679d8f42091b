//! Helpers shared by the image store's integration tests (run as root).
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;

use minibox_images::{ImportOptions, Store};

/// These tests unpack layers as the store does, owners, device nodes and overlay mounts
/// included, which needs root: run as anyone else, the test binary says so and ends, passing,
/// before its first test (a constructor run ahead of `main`, as the test harness has no hook).
#[used]
#[link_section = ".init_array"]
static SKIP_UNLESS_ROOT: extern "C" fn() = skip_unless_root;

extern "C" fn skip_unless_root() {
    // SAFETY: geteuid has no preconditions; _exit ends the process without unwinding.
    unsafe {
        if libc::geteuid() != 0 {
            let msg = b"minibox-images: skipped: these tests unpack and mount as root\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(0);
        }
    }
}

/// A tar archive built entry by entry.
pub struct Tar(pub tar::Builder<Vec<u8>>);

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    }

    /// Writes the raw name bytes, bypassing the tar crate's own path checks.
    /// A GNU long-name (`L`) or long-link (`K`) record for names over 100 bytes.
    fn long(&mut self, kind: u8, name: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(name.len() as u64 + 1);
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_cksum();
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        self.0.append(&h, &data[..]).unwrap();
    }

    fn append(&mut self, mut h: tar::Header, name: &str, data: &[u8]) {
        if name.len() >= 100 {
            self.long(b'L', name);
        }
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let h = Self::header(tar::EntryType::Directory, mode, 0);
        self.append(h, name, &[]);
        self
    }

    pub fn file(mut self, name: &str, data: &str) -> Self {
        let h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.append(h, name, data.as_bytes());
        self
    }

    pub fn file_mode(mut self, name: &str, data: &str, mode: u32, uid: u64) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(uid);
        self.append(h, name, data.as_bytes());
        self
    }

    pub fn link(mut self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        if target.len() >= 100 {
            self.long(b'K', target);
        }
        let gnu = h.as_gnu_mut().unwrap();
        gnu.linkname = [0; 100];
        let n = target.len().min(100);
        gnu.linkname[..n].copy_from_slice(&target.as_bytes()[..n]);
        self.append(h, name, &[]);
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }

    pub fn device(mut self, kind: tar::EntryType, name: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, 0o600, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, name, &[]);
        self
    }

    /// A PAX extended header applying `records` to the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3; // space, '=', newline
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let h = Self::header(tar::EntryType::XHeader, 0o644, data.len() as u64);
        self.append(h, "PaxHeader", &data);
        self
    }

    pub fn build(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

pub fn import(
    store: &Store,
    tar: &[u8],
    name: &str,
) -> Result<minibox_images::Image, minibox_images::Error> {
    let opts = ImportOptions {
        name: Some(name.to_string()),
        changes: vec![],
        source: "test.tar".into(),
    };
    store.import(&mut Cursor::new(tar), &opts)
}

/// Every path under `dir` with its type, as a sorted listing to compare before and after.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        out.push(format!(
            "{} {}",
            p.strip_prefix(root).unwrap().display(),
            if ft.is_dir() {
                "d"
            } else if ft.is_symlink() {
                "l"
            } else {
                "f"
            }
        ));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A classic docker-archive (`manifest.json`, `<n>/layer.tar`, `<config>.json`) of these layers.
pub fn docker_archive(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    use sha2::Digest;
    let sha = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", &sha(&config)[7..]);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("{i}/layer.tar");
        add(&n, l);
        names.push(n);
    }
    add(&config_name, &config);
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

pub fn load(store: &Store, archive: &[u8]) -> Result<Vec<String>, minibox_images::Error> {
    store.load(&mut Cursor::new(archive), None, "test-archive.tar")
}
