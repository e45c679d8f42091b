//! The store: load (docker-archive and OCI forms), save round trips, rmi, bad input leaving the
//! store exactly as before, recovery after a dead writer, and layers shared between images.

mod common;

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::MetadataExt;

use common::{docker_archive, import, listing, load, Tar};
use minibox_images::{rootfs, Error, Store};

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    (tmp, store)
}

fn layers() -> Vec<Vec<u8>> {
    vec![
        Tar::new()
            .dir("etc/", 0o755)
            .file("etc/a", "1")
            .file("etc/b", "2")
            .dir("d/", 0o755)
            .file("d/lower", "l")
            .build(),
        Tar::new()
            .file("etc/.wh.a", "")
            .dir("d/", 0o755)
            .file("d/.wh..wh..opq", "")
            .file("d/upper", "u")
            .build(),
    ]
}

const NO_USE: &dyn Fn(&str) -> bool = &|_| false;

#[test]
fn docker_archive_loads_with_layers_shared_and_verified() {
    let (tmp, store) = store();
    let archive = docker_archive(&layers(), "multi:v1");
    assert_eq!(load(&store, &archive).unwrap(), ["multi:v1"]);
    let image = store.image("multi:v1").unwrap();
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.names, ["multi:v1"]);
    assert!(store.image(image.short_id()).is_ok());
    assert!(store.image(&image.id).is_ok());
    assert!(matches!(store.image("multi"), Err(Error::NoSuchImage(_))));

    // Loading again (under another tag) unpacks nothing: the layer dirs stay the same inodes.
    let inode = fs::metadata(&image.layers[1]).unwrap().ino();
    let archive2 = docker_archive(&layers(), "multi:v2");
    load(&store, &archive2).unwrap();
    let again = store.image("multi:v2").unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(fs::metadata(&again.layers[1]).unwrap().ino(), inode);
    assert_eq!(
        fs::read_dir(tmp.path().join("images/layers"))
            .unwrap()
            .count(),
        2
    );

    // An image on top of the same first layer shares it.
    let third = docker_archive(
        &[layers()[0].clone(), Tar::new().file("x", "y").build()],
        "other",
    );
    load(&store, &third).unwrap();
    assert_eq!(store.image("other").unwrap().layers[0], image.layers[0]);
    assert_eq!(
        fs::read_dir(tmp.path().join("images/layers"))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn whiteouts_apply_against_lower_layers_in_both_rootfs_forms() {
    for driver in ["overlay", "copy"] {
        let (tmp, store) = store();
        load(&store, &docker_archive(&layers(), "multi")).unwrap();
        fs::write(tmp.path().join("images").join(rootfs::DRIVER_FILE), driver).unwrap();
        let image = store.image("multi").unwrap();
        let cdir = tmp.path().join("c");
        let fs_ = rootfs::prepare(&image, &cdir).unwrap();
        let target = tmp.path().join("mnt");
        fs::create_dir(&target).unwrap();
        // In a child with its own mount namespace, list what the container sees.
        let out = tmp.path().join("seen");
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok()
                    && nix::mount::mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .is_ok()
                    && fs_.mount(&target).is_ok()
                    && fs::write(&out, listing(&target).join("\n")).is_ok();
                unsafe { libc::_exit(i32::from(!ok)) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                assert!(matches!(
                    nix::sys::wait::waitpid(child, None).unwrap(),
                    nix::sys::wait::WaitStatus::Exited(_, 0)
                ));
            }
        }
        let seen = fs::read_to_string(&out).unwrap();
        assert_eq!(seen, "d d\nd/upper f\netc d\netc/b f", "{driver}");
        rootfs::remove(&cdir).unwrap();
    }
}

#[test]
fn oci_archive_form_loads() {
    let (_tmp, store) = fresh();
    load(&store, &docker_archive(&layers(), "multi")).unwrap();
    let mut saved = Vec::new();
    store.save(&["multi".to_string()], &mut saved).unwrap();
    // Keep only the OCI part of the saved archive: an oci-archive.
    let mut oci = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(Cursor::new(&saved));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        if path.to_str() != Some("manifest.json") {
            let mut h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            oci.append_data(&mut h, &path, &data[..]).unwrap();
        }
    }
    let oci = oci.into_inner().unwrap();
    // The whole saved archive (Docker 25+'s form: manifest.json naming blobs) loads too.
    let (_t3, third) = fresh();
    assert_eq!(load(&third, &saved).unwrap(), ["multi:latest"]);
    assert_eq!(
        third.image("multi").unwrap().id,
        store.image("multi").unwrap().id
    );
    let (_t2, other) = fresh();
    assert_eq!(load(&other, &oci).unwrap(), ["multi:latest"]);
    assert_eq!(
        other.image("multi").unwrap().id,
        store.image("multi").unwrap().id
    );
}

fn fresh() -> (tempfile::TempDir, Store) {
    store()
}

#[test]
fn bad_input_leaves_the_store_as_before() {
    let (tmp, store) = store();
    load(&store, &docker_archive(&layers(), "multi")).unwrap();
    let dir = tmp.path().join("images");
    let before = listing(&dir);
    let index = fs::read(dir.join("index.json")).unwrap();

    // A layer whose content does not match its diff_id.
    let mut archive = docker_archive(&[Tar::new().file("f", "good").build()], "bad");
    let pos = archive.windows(4).position(|w| w == b"good").unwrap();
    archive[pos..pos + 4].copy_from_slice(b"evil");
    let err = load(&store, &archive).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains("0/layer.tar"),
        "names the file: {err}"
    );

    // Truncated archives, garbage, an empty file.
    let good = docker_archive(&[Tar::new().file("f", &"x".repeat(5000)).build()], "trunc");
    for cut in [good.len() / 2, 700, 10] {
        let err = load(&store, &good[..cut]).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
    assert!(load(
        &store,
        b"this is not an archive at all, not even close........"
    )
    .is_err());
    assert!(load(&store, b"").is_err());
    let plain = Tar::new().file("f", &"y".repeat(3000)).build();
    let err = import(&store, &plain[..2048], "trunc").unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let gz = gz.finish().unwrap();
    assert!(import(&store, &gz[..gz.len() - 10], "trunc").is_err());

    assert_eq!(listing(&dir), before);
    assert_eq!(fs::read(dir.join("index.json")).unwrap(), index);
    assert!(store.image("bad").is_err() && store.image("trunc").is_err());
}

#[test]
fn unsupported_media_types_are_refused() {
    let (_tmp, store) = fresh();
    load(&store, &docker_archive(&layers(), "multi")).unwrap();
    let mut saved = Vec::new();
    store.save(&["multi".to_string()], &mut saved).unwrap();
    // Rewrite the archive with the manifest's layer media type changed (and digests fixed up).
    let (_t2, other) = fresh();
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(Cursor::new(&saved));
    let mut manifest_digest = String::new();
    let mut manifest_size = 0;
    let mut entries = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        entries.push((path, data));
    }
    for (path, data) in &mut entries {
        if String::from_utf8_lossy(data).contains("\"layers\"") && path.starts_with("blobs/") {
            *data = String::from_utf8_lossy(data)
                .replace(
                    "application/vnd.oci.image.layer.v1.tar\"",
                    "application/x-weird\"",
                )
                .into_bytes();
            use sha2::Digest;
            manifest_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
            manifest_size = data.len();
            *path = format!("blobs/sha256/{}", &manifest_digest[7..]);
        }
    }
    for (path, data) in &mut entries {
        if path == "index.json" {
            let mut index: serde_json::Value = serde_json::from_slice(data).unwrap();
            index["manifests"][0]["digest"] = manifest_digest.clone().into();
            index["manifests"][0]["size"] = manifest_size.into();
            *data = serde_json::to_vec(&index).unwrap();
        }
        if path == "manifest.json" {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, &*path, &data[..]).unwrap();
    }
    let err = load(&other, &out.into_inner().unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("unsupported media type \"application/x-weird\"") && msg.contains("sha256:"),
        "{msg}"
    );
    assert!(other.images().unwrap().is_empty());
}

#[test]
fn rmi_follows_docker() {
    let (tmp, store) = store();
    load(&store, &docker_archive(&layers(), "a:1")).unwrap();
    load(&store, &docker_archive(&layers(), "a:2")).unwrap();
    let id = store.image("a:1").unwrap().id;
    // Several names and removal by id: must be forced.
    assert!(matches!(
        store.remove(&id, false, NO_USE),
        Err(Error::Conflict(_))
    ));
    // By name with another name left: untag only, even when in use.
    assert_eq!(
        store.remove("a:1", false, &|_| true).unwrap(),
        ["Untagged: a:1"]
    );
    // The last name while a container uses it: refused; forced, only untagged.
    assert!(matches!(
        store.remove("a:2", false, &|i| i == id),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.remove("a:2", true, &|i| i == id).unwrap(),
        ["Untagged: a:2"]
    );
    let dangling = store.image(&id).unwrap();
    assert!(dangling.names.is_empty());
    // Once unused, removal by id deletes it, and its blobs and layers with it.
    let out = store.remove(&id[7..19], false, NO_USE).unwrap();
    assert_eq!(out, [format!("Deleted: {id}")]);
    let dir = tmp.path().join("images");
    assert_eq!(fs::read_dir(dir.join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(dir.join("layers")).unwrap().count(), 0);
    assert!(matches!(
        store.remove("a:1", false, NO_USE),
        Err(Error::NoSuchImage(_))
    ));
}

#[test]
fn shared_layers_survive_removing_one_image() {
    let (_tmp, store) = store();
    load(&store, &docker_archive(&layers(), "a")).unwrap();
    load(&store, &docker_archive(&layers()[..1], "b")).unwrap();
    store.remove("a", false, NO_USE).unwrap();
    let b = store.image("b").unwrap();
    assert!(b.layers[0].join("etc/a").exists());
}

#[test]
fn a_dead_writers_leftovers_are_cleaned_on_open() {
    let (tmp, store) = store();
    import(&store, &Tar::new().file("f", "1").build(), "keep").unwrap();
    let dir = tmp.path().join("images");
    let before = listing(&dir);
    // What a writer killed mid-import leaves: the marker, tmp files, an orphan blob and layer.
    fs::write(dir.join("incomplete"), "").unwrap();
    fs::create_dir_all(dir.join("tmp/123-0/layer-1/diff")).unwrap();
    fs::write(
        dir.join(format!("blobs/sha256/{}", "ab".repeat(32))),
        "orphan",
    )
    .unwrap();
    fs::create_dir_all(dir.join(format!("layers/{}/diff", "cd".repeat(32)))).unwrap();
    let store = Store::open(&dir).unwrap();
    assert_eq!(listing(&dir), before);
    assert!(!dir.join("incomplete").exists());
    assert!(store.image("keep").is_ok());
}

#[test]
fn concurrent_imports_all_land() {
    let (tmp, _store) = store();
    let dir = tmp.path().join("images");
    std::thread::scope(|s| {
        for i in 0..6 {
            let dir = dir.clone();
            s.spawn(move || {
                let store = Store::open(&dir).unwrap();
                let tar = Tar::new().file("f", &format!("content {}", i % 3)).build();
                import(&store, &tar, &format!("c{i}")).unwrap();
            });
        }
    });
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.images().unwrap().len(), 6);
    assert_eq!(fs::read_dir(dir.join("layers")).unwrap().count(), 3);
    assert!(!dir.join("incomplete").exists());
}

#[test]
fn import_changes_and_retag() {
    let (_tmp, store) = store();
    let opts = minibox_images::ImportOptions {
        name: Some("web".into()),
        changes: vec![
            r#"CMD ["/bin/web","a"]"#.into(),
            "EXPOSE 8081".into(),
            "ENV A=b".into(),
        ],
        source: "-".into(),
    };
    let tar = Tar::new().file("f", "1").build();
    let first = store.import(&mut Cursor::new(&tar), &opts).unwrap();
    let c = first.config.config().clone().unwrap();
    assert_eq!(c.cmd().clone().unwrap(), ["/bin/web", "a"]);
    assert_eq!(c.exposed_ports().clone().unwrap(), ["8081/tcp"]);
    let second = store.import(&mut Cursor::new(&tar), &opts).unwrap();
    assert_ne!(first.id, second.id);
    // The name moved; the old image stays, dangling, as in Docker.
    assert_eq!(store.image("web").unwrap().id, second.id);
    assert!(store.image(&first.id).unwrap().names.is_empty());
    // Bad changes fail before reading anything.
    let bad = minibox_images::ImportOptions {
        changes: vec!["RUN x".into()],
        ..opts
    };
    assert!(store.import(&mut Cursor::new(&tar), &bad).is_err());
}

#[test]
fn multi_member_gzip_and_zstd_import_to_the_same_layer() {
    let (_tmp, store) = store();
    let plain = Tar::new()
        .file("a", &"a".repeat(10_000))
        .file("b", "b")
        .build();
    let (one, two) = plain.split_at(3000);
    let gz = |part: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, part).unwrap();
        e.finish().unwrap()
    };
    let mut multi = gz(one);
    multi.extend(gz(two));
    let zst = zstd_compress(&plain);
    let a = import(&store, &plain, "plain").unwrap();
    let b = import(&store, &multi, "gz").unwrap();
    let c = import(&store, &zst, "zst").unwrap();
    assert_eq!(a.diff_ids(), b.diff_ids());
    assert_eq!(a.diff_ids(), c.diff_ids());
    assert_eq!(a.layers, c.layers);
    assert_eq!(fs::read_to_string(b.layers[0].join("b")).unwrap(), "b");
}

fn zstd_compress(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("zstd")
        .args(["-q", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out.stdout
}
