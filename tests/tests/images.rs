//! Images end to end: import (plain, gzip, zstd, stdin, --change), images, image inspect, save and
//! load round trips through skopeo, rmi, and bad input leaving the store exactly as before.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use minibox_tests::{fixtures, Out, Sandbox};
use serde_json::Value;

fn inspect(sb: &Sandbox, image: &str) -> Value {
    let out = sb.minibox(&["image", "inspect", image]).ok();
    let v: Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0].clone()
}

/// Every path under the store (with sizes), to prove a failed command changed nothing.
fn store_listing(sb: &Sandbox, root: &Path) -> String {
    sb.sh(&format!(
        "cd {} && find images -path images/lock -prune -o -printf '%p %s\\n' 2>/dev/null | sort",
        root.display()
    ))
    .stdout()
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn work(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.root().join("work");
    fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn import_every_compression_list_inspect_and_remove() {
    let sb = Sandbox::new();
    let tar = fixtures::busybox_tarball();
    sb.import_busybox();
    let gz = work(&sb, "bb.tar.gz");
    let zst = work(&sb, "bb.tar.zst");
    sb.sh(&format!("gzip -c {} > {}", s(&tar), s(&gz))).ok();
    sb.sh(&format!("zstd -q -c {} > {}", s(&tar), s(&zst))).ok();
    // gzip from stdin, zstd from a file; the name is only detected by magic, never by suffix.
    let mut cmd = sb.command(&[
        "import",
        "-",
        "bbgz:1",
        "--change",
        r#"CMD ["/bin/sh","-c","echo hi"]"#,
    ]);
    cmd.stdin(fs::File::open(&gz).unwrap());
    let out = Out {
        what: "import - bbgz:1".into(),
        output: cmd.output().unwrap(),
    };
    let id = out.ok().trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "prints the id: {id}"
    );
    sb.minibox(&[
        "import",
        s(&zst),
        "bbz",
        "-c",
        r#"ENV GREETING="hello world""#,
        "-c",
        "WORKDIR /tmp",
        "-c",
        "EXPOSE 8081 53/udp",
        "-c",
        "USER app",
        "-c",
        "ENTRYPOINT /bin/echo",
    ])
    .ok();

    let list = sb.minibox(&["images"]).ok();
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY")
            && lines[0].contains("TAG")
            && lines[0].contains("IMAGE ID")
            && lines[0].contains("CREATED")
            && lines[0].ends_with("SIZE"),
        "{list}"
    );
    assert_eq!(lines.len(), 4, "{list}");
    let row = lines.iter().find(|l| l.starts_with("bbgz ")).expect(&list);
    let cols: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cols[1], "1");
    assert_eq!(cols[2], &id[7..19]);
    assert!(cols[3].ends_with("ago"), "{row}");
    assert!(cols[4].ends_with("MB"), "{row}");

    let bb = inspect(&sb, "busybox");
    assert_eq!(bb["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(bb["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(bb["Size"].as_u64().unwrap() > 500_000);
    let gzi = inspect(&sb, &id[7..19]);
    assert_eq!(gzi["Id"], id.as_str());
    assert_eq!(
        gzi["Config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo hi"])
    );
    // Same content, three compressions: one diff_id, one unpacked layer shared by all three.
    assert_eq!(gzi["RootFS"], bb["RootFS"]);
    assert_eq!(
        fs::read_dir(sb.root().join("images/layers"))
            .unwrap()
            .count(),
        1
    );
    let z = inspect(&sb, "bbz:latest")["Config"].clone();
    assert_eq!(z["Env"], serde_json::json!(["GREETING=hello world"]));
    assert_eq!(z["WorkingDir"], "/tmp");
    assert_eq!(z["User"], "app");
    assert_eq!(
        z["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "/bin/echo"])
    );
    assert_eq!(z["ExposedPorts"].as_object().unwrap().len(), 2);

    // The store is an OCI layout skopeo reads.
    let sk: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci:{}:bbgz:1", s(&sb.root().join("images"))),
    ]))
    .unwrap();
    assert_eq!(sk["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(sk["Digest"], gzi["Metadata"]["Manifest"]);

    for name in ["busybox", "bbz"] {
        let out = sb.minibox(&["rmi", name]).ok();
        assert!(
            out.contains(&format!("Untagged: {name}:latest")) && out.contains("Deleted: sha256:"),
            "{out}"
        );
    }
    sb.minibox(&["rmi", &id[7..15]]).ok();
    assert_eq!(sb.minibox(&["images"]).ok().lines().count(), 1);
    for d in ["images/blobs/sha256", "images/layers"] {
        assert_eq!(
            fs::read_dir(sb.root().join(d)).unwrap().count(),
            0,
            "{d} emptied"
        );
    }
    sb.finish();
}

#[test]
fn save_and_load_round_trip_through_skopeo() {
    let sb = Sandbox::new();
    // Several exposed ports: a map in the config, whose order must not change the image's ID.
    let tar = fixtures::busybox_tarball();
    let change = "EXPOSE 80 443 53/udp 8081";
    sb.minibox(&["import", s(&tar), "busybox", "--change", change])
        .ok();
    let id = inspect(&sb, "busybox")["Id"].as_str().unwrap().to_string();
    let saved = work(&sb, "saved.tar");
    sb.minibox(&["save", "-o", s(&saved), "busybox"]).ok();
    // skopeo accepts it as a docker-archive and as an OCI archive.
    let sk: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", s(&saved)),
    ]))
    .unwrap();
    assert_eq!(sk["Layers"].as_array().unwrap().len(), 1);
    skopeo(&[
        "inspect",
        &format!("oci-archive:{}:busybox:latest", s(&saved)),
    ]);
    // skopeo re-writes it as an OCI archive and as a classic docker-archive; both load back.
    let oci = work(&sb, "oci.tar");
    let classic = work(&sb, "classic.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", s(&saved)),
        &format!("oci-archive:{}:rt:1", s(&oci)),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", s(&saved)),
        &format!("docker-archive:{}:classic:2", s(&classic)),
    ]);
    sb.minibox(&["rmi", "busybox"]).ok();
    let out = sb.minibox(&["load", "-i", s(&oci)]).ok();
    assert_eq!(out.trim(), "Loaded image: rt:1");
    assert_eq!(inspect(&sb, "rt:1")["Id"], id.as_str());
    let layer_dir = sb.root().join("images/layers");
    let before: Vec<_> = fs::read_dir(&layer_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let layer = fs::read_dir(&layer_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ino = inode(&layer);
    // From stdin, gzip-compressed as `docker save | gzip` makes it.
    let mut cmd = sb.exec(
        "sh",
        [
            "-c",
            &format!(
                "gzip -c {} | {} load",
                s(&classic),
                s(&minibox_tests::minibox_bin())
            ),
        ],
    );
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Loaded image: classic:2"
    );
    sb.minibox(&["load", "-i", s(&saved)]).ok();
    // The same image each time, and the present layer was never unpacked again.
    for name in ["classic:2", "busybox"] {
        assert_eq!(inspect(&sb, name)["Id"], id.as_str());
    }
    let after: Vec<_> = fs::read_dir(&layer_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(before, after);
    assert_eq!(inode(&layer), ino);
    // Saving several images and by id works too.
    let two = work(&sb, "two.tar");
    sb.minibox(&["save", "-o", s(&two), "rt:1", &id[7..19]])
        .ok();
    skopeo(&["inspect", &format!("docker-archive:{}:rt:1", s(&two))]);
    sb.finish();
}

#[test]
fn bad_input_fails_in_one_line_and_changes_nothing() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let listing = store_listing(&sb, sb.root());
    sb.minibox(&["image", "inspect", "nope"])
        .fails(1, "no such image: nope");
    sb.minibox(&["rmi", "nope"]).fails(1, "nope");
    sb.minibox(&["save", "-o", s(&work(&sb, "x.tar")), "nope"])
        .fails(1, "no such image: nope");
    assert!(!work(&sb, "x.tar").exists(), "no half-written archive");
    sb.minibox(&["import", "/nonexistent.tar"])
        .fails(1, "/nonexistent.tar");
    sb.minibox(&["import", s(&fixtures::busybox_tarball()), "Bad:Name"])
        .fails(1, "invalid reference");
    sb.minibox(&[
        "import",
        s(&fixtures::busybox_tarball()),
        "x",
        "-c",
        "RUN rm -rf /",
    ])
    .fails(1, "unsupported instruction");

    // Garbage, truncated, and tampered archives, each named in the error.
    let garbage = work(&sb, "garbage.tar");
    fs::write(&garbage, "not an archive at all".repeat(100)).unwrap();
    sb.minibox(&["load", "-i", s(&garbage)])
        .fails(1, "garbage.tar");
    sb.minibox(&["import", s(&garbage)]).fails(1, "garbage.tar");
    assert_eq!(store_listing(&sb, sb.root()), listing);
    let saved = work(&sb, "saved.tar");
    sb.minibox(&["save", "-o", s(&saved), "busybox"]).ok();
    let bytes = fs::read(&saved).unwrap();
    let truncated = work(&sb, "truncated.tar");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    sb.minibox(&["load", "-i", s(&truncated)])
        .fails(1, "truncated.tar");
    let tar = fs::read(fixtures::busybox_tarball()).unwrap();
    let cut = work(&sb, "cut.tar");
    fs::write(&cut, &tar[..tar.len() / 3]).unwrap();
    sb.minibox(&["import", s(&cut), "cut"]).fails(1, "cut.tar");
    // Flip one byte inside busybox's layer: the layer's digest no longer matches. (Loaded into
    // a store that already holds the layer, the archive's copy would not even be read.)
    sb.minibox(&["rmi", "busybox"]).ok();
    let before = store_listing(&sb, sb.root());
    let mut tampered = bytes.clone();
    let at = tampered.windows(7).position(|w| w == b"BusyBox").unwrap();
    tampered[at] = b'b';
    let bad = work(&sb, "tampered.tar");
    fs::write(&bad, &tampered).unwrap();
    let err = sb
        .minibox(&["load", "-i", s(&bad)])
        .fails(1, "digest mismatch");
    assert!(
        err.contains("tampered.tar") && err.contains("sha256:"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(store_listing(&sb, sb.root()), before);
    assert!(!sb.root().join("images/incomplete").exists());
    assert_eq!(
        fs::read_dir(sb.root().join("images/tmp"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    sb.finish();
}

#[test]
fn a_full_disk_leaves_the_store_as_before() {
    let sb = Sandbox::new();
    let small = sb.root().join("small");
    fs::create_dir_all(&small).unwrap();
    // A 3 MB tmpfs as --root, mounted only inside the sandbox.
    sb.sh(&format!(
        "mount -t tmpfs -o size=3m minibox-test-small {}",
        s(&small)
    ))
    .ok();
    let tiny = work(&sb, "tiny.tar");
    sb.sh(&format!(
        "mkdir -p {0}.d/etc && echo hi > {0}.d/etc/hi && tar -C {0}.d -cf {0} .",
        s(&tiny)
    ))
    .ok();
    let root = format!("--root={}", s(&small));
    sb.minibox(&[&root, "import", s(&tiny), "tiny"]).ok();
    let before = store_listing(&sb, &small);
    let err = sb
        .minibox(&[&root, "import", s(&fixtures::busybox_tarball()), "busybox"])
        .fails(1, "No space left on device");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(store_listing(&sb, &small), before);
    let list = sb.minibox(&[&root, "images"]).ok();
    assert!(list.contains("tiny") && !list.contains("busybox"), "{list}");
    sb.finish();
}

#[test]
fn rmi_refuses_while_a_container_uses_the_image() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let id = inspect(&sb, "busybox")["Id"].as_str().unwrap().to_string();
    // The convention `run` follows: <root>/containers/<id>/image holds the image id.
    let cdir = sb.root().join("containers/c0ffee");
    fs::create_dir_all(&cdir).unwrap();
    fs::write(cdir.join("image"), &id).unwrap();
    sb.minibox(&["rmi", "busybox"]).fails(1, "container");
    // Forced: untagged, but kept (dangling) while the container needs its layers.
    let out = sb.minibox(&["rmi", "-f", "busybox"]).ok();
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    assert!(sb.minibox(&["images"]).ok().contains("<none>"));
    fs::remove_dir_all(sb.root().join("containers")).unwrap();
    assert!(sb.minibox(&["rmi", &id]).ok().contains("Deleted:"));
    sb.finish();
}

#[test]
fn a_malicious_tarball_is_refused_and_writes_nothing_outside() {
    let sb = Sandbox::new();
    let outside = sb.root().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind, size, mode| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    };
    let mut h = header(tar::EntryType::Symlink, 0, 0o777);
    b.append_link(&mut h, "evil", &outside).unwrap();
    let mut h = header(tar::EntryType::Regular, 5, 0o644);
    b.append_data(&mut h, "evil/pwned", &b"owned"[..]).unwrap();
    let evil = work(&sb, "evil.tar");
    fs::write(&evil, b.into_inner().unwrap()).unwrap();
    let err = sb
        .minibox(&["import", s(&evil), "evil"])
        .fails(1, "evil/pwned");
    assert!(err.contains("outside the layer"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(sb.minibox(&["images"]).ok().lines().count() == 1);
    sb.finish();
}
