//! Safe layer application: every malicious archive is refused and writes nothing outside the
//! store (checked by looking outside), and the store is left exactly as before.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{import, listing, Tar};
use minibox_images::{Error, Store};

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    store: Store,
}

/// A store in a temp dir, an `outside` dir beside it holding a canary, and a first image so
/// "the store as before" is not just empty.
fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let outside = root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("canary"), "safe").unwrap();
    let store = Store::open(&root.join("images")).unwrap();
    import(&store, &Tar::new().file("ok", "fine").build(), "good").unwrap();
    Env {
        _tmp: tmp,
        root,
        outside,
        store,
    }
}

/// Imports `tar`, expects a refusal, and proves nothing changed outside or inside the store.
fn refused(env: &Env, tar: Vec<u8>, also_absent: &[&Path]) -> String {
    let before_outside = listing(&env.outside);
    let before_store = listing(&env.root.join("images"));
    let err = import(&env.store, &tar, "evil").expect_err("malicious archive accepted");
    assert!(matches!(err, Error::Unsafe { .. }), "wrong error: {err}");
    assert_eq!(
        listing(&env.outside),
        before_outside,
        "something was written outside"
    );
    assert_eq!(
        fs::read_to_string(env.outside.join("canary")).unwrap(),
        "safe"
    );
    assert_eq!(fs::metadata(env.outside.join("canary")).unwrap().nlink(), 1);
    // Only the lock's and cache files may differ; the layout, blobs and layers must not.
    assert_eq!(
        listing(&env.root.join("images")),
        before_store,
        "store changed"
    );
    assert!(env.store.image("evil").is_err());
    for p in also_absent {
        assert!(!p.exists(), "{} was created", p.display());
    }
    err.to_string()
}

fn deep_escape(name: &str) -> String {
    format!("{}tmp/{name}", "../".repeat(40))
}

fn unique(tag: &str) -> String {
    format!("minibox-unpack-test-{tag}-{}", std::process::id())
}

#[test]
fn dotdot_paths_are_refused() {
    let env = env();
    let name = unique("dotdot");
    let msg = refused(
        &env,
        Tar::new().file(&deep_escape(&name), "x").build(),
        &[&Path::new("/tmp").join(&name)],
    );
    assert!(msg.contains(".."), "{msg}");
    // Also hidden in the middle of a path.
    refused(
        &env,
        Tar::new()
            .dir("a/", 0o755)
            .file("a/../../outside/x", "x")
            .build(),
        &[&env.outside.join("x")],
    );
}

#[test]
fn absolute_paths_are_refused() {
    let env = env();
    let target = env.outside.join("abs");
    let msg = refused(
        &env,
        Tar::new().file(target.to_str().unwrap(), "x").build(),
        &[&target],
    );
    assert!(msg.contains("absolute"), "{msg}");
}

#[test]
fn writing_through_a_symlink_parent_is_refused() {
    let env = env();
    let out = env.outside.to_str().unwrap().to_string();
    // Absolute link target.
    let tar = Tar::new()
        .symlink("evil", &out)
        .file("evil/pwned", "x")
        .build();
    let msg = refused(&env, tar, &[&env.outside.join("pwned")]);
    assert!(msg.contains("symlink"), "{msg}");
    // Relative link climbing out.
    let tar = Tar::new()
        .symlink("evil", &"../".repeat(40))
        .file(&format!("evil{out}/pwned"), "x")
        .build();
    refused(&env, tar, &[&env.outside.join("pwned")]);
    // A directory entry and a hardlink through it, too.
    let tar = Tar::new()
        .symlink("evil", &out)
        .dir("evil/sub/", 0o755)
        .build();
    refused(&env, tar, &[&env.outside.join("sub")]);
}

#[test]
fn hardlinks_to_files_outside_are_refused() {
    let env = env();
    let canary = env.outside.join("canary");
    let tar = Tar::new()
        .hardlink(
            "hl",
            &format!("{}{}", "../".repeat(40), &canary.to_str().unwrap()[1..]),
        )
        .build();
    refused(&env, tar, &[]);
    let tar = Tar::new().hardlink("hl", canary.to_str().unwrap()).build();
    refused(&env, tar, &[]);
    let tar = Tar::new()
        .symlink("evil", env.outside.to_str().unwrap())
        .hardlink("hl", "evil/canary")
        .build();
    let msg = refused(&env, tar, &[]);
    assert!(msg.contains("symlink"), "{msg}");
}

#[test]
fn a_symlink_replacing_the_root_is_refused() {
    let env = env();
    for root in [".", "./", ""] {
        let tar = Tar::new()
            .symlink(root, env.outside.to_str().unwrap())
            .file("pwned", "x")
            .build();
        let msg = refused(&env, tar, &[&env.outside.join("pwned")]);
        assert!(msg.contains("root"), "{msg}");
    }
}

#[test]
fn whiteouts_naming_dotdot_are_refused() {
    let env = env();
    refused(&env, Tar::new().file(".wh...", "").build(), &[]);
    refused(
        &env,
        Tar::new().dir("sub/", 0o755).file("sub/.wh...", "").build(),
        &[],
    );
    refused(&env, Tar::new().file(".wh..", "").build(), &[]);
    assert!(env.outside.join("canary").exists());
}

#[test]
fn device_numbers_are_range_checked() {
    let env = env();
    let before = listing(&env.root.join("images"));
    let tar = Tar::new()
        .device(tar::EntryType::Char, "dev", 0x1000, 1)
        .build();
    let err = import(&env.store, &tar, "evil").unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(listing(&env.root.join("images")), before);
}

#[test]
fn every_entry_type_is_applied_with_its_metadata() {
    let env = env();
    let tar = Tar::new()
        .dir("bin/", 0o755)
        .file_mode("bin/suid", "#!/bin/sh\n", 0o4755, 1000)
        .pax(&[
            ("SCHILY.xattr.user.note", b"hello"),
            ("mtime", b"1500000000.25"),
        ])
        .file("bin/pax", "p")
        .symlink("bin/link", "suid")
        .symlink("abs", "/etc/passwd") // dangling or absolute symlinks are just data
        .hardlink("bin/hard", "bin/suid")
        .device(tar::EntryType::Char, "null", 1, 3)
        .device(tar::EntryType::Block, "loop", 7, 0)
        .device(tar::EntryType::Fifo, "fifo", 0, 0)
        .dir("tmp/", 0o1777)
        .file("implicit/parent/file", "deep")
        .build();
    let image = import(&env.store, &tar, "all").unwrap();
    let l = &image.layers[0];
    let suid = fs::metadata(l.join("bin/suid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o4755, "setuid bit kept");
    assert_eq!((suid.uid(), suid.gid()), (1000, 1000));
    assert_eq!(suid.mtime(), 1_600_000_000);
    assert_eq!(suid.nlink(), 2);
    assert_eq!(fs::metadata(l.join("bin/hard")).unwrap().ino(), suid.ino());
    let pax = fs::metadata(l.join("bin/pax")).unwrap();
    assert_eq!(
        (pax.mtime(), pax.mtime_nsec()),
        (1_500_000_000, 250_000_000)
    );
    assert_eq!(
        xattr(&l.join("bin/pax"), "user.note").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        fs::read_link(l.join("bin/link")).unwrap(),
        Path::new("suid")
    );
    assert_eq!(
        fs::read_link(l.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let null = fs::metadata(l.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(fs::metadata(l.join("loop"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::metadata(l.join("fifo")).unwrap().file_type().is_fifo());
    assert_eq!(fs::metadata(l.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(
        fs::read_to_string(l.join("implicit/parent/file")).unwrap(),
        "deep"
    );
    assert_eq!(
        fs::metadata(l.join("bin")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime set last"
    );
}

#[test]
fn whiteouts_are_stored_in_overlay_form() {
    let env = env();
    let tar = Tar::new()
        .dir("d/", 0o755)
        .file("d/.wh..wh..opq", "")
        .file(".wh.gone", "")
        .build();
    let image = import(&env.store, &tar, "wh").unwrap();
    let l = &image.layers[0];
    let gone = fs::symlink_metadata(l.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert_eq!(
        xattr(&l.join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l.join("d/.wh..wh..opq").exists());
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_written_through_stale() {
    let env = env();
    // Inside the layer: `a` becomes a link to `b`, and `a/y` lands in `b`.
    let tar = Tar::new()
        .dir("a/", 0o755)
        .file("a/x", "1")
        .dir("b/", 0o755)
        .symlink("a", "b")
        .file("a/y", "2")
        .build();
    let image = import(&env.store, &tar, "relink").unwrap();
    assert_eq!(
        fs::read_to_string(image.layers[0].join("b/y")).unwrap(),
        "2"
    );
    assert!(fs::symlink_metadata(image.layers[0].join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Pointing outside: refused, even right after writing into the directory it replaced.
    let tar = Tar::new()
        .dir("a/", 0o755)
        .file("a/x", "1")
        .symlink("a", env.outside.to_str().unwrap())
        .file("a/pwned", "2")
        .build();
    refused(&env, tar, &[&env.outside.join("pwned")]);
}
