//! Storage end to end: named and anonymous volumes (their content surviving the container, the
//! image's content copied into a new one, `volume` commands, `rm` refused while in use), `-v`
//! making a missing host directory, `--mount`, `--tmpfs` and `--read-only` as the container
//! sees them, and bad input refused in one line with nothing made.

use minibox_tests::{Out, Sandbox};

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `minibox run --rm --network none ARGS...`
fn run(sb: &Sandbox, args: &[&str]) -> Out {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    sb.minibox(&all)
}

fn volumes(sb: &Sandbox) -> Vec<String> {
    let out = sb.minibox(&["volume", "ls", "-q"]).ok();
    out.lines().map(String::from).collect()
}

#[test]
fn a_named_volume_outlives_its_containers_and_is_kept_while_in_use() {
    let sb = sandbox();
    assert_eq!(sb.minibox(&["volume", "create", "data"]).ok(), "data\n");
    let ls = sb.minibox(&["volume", "ls"]).ok();
    assert_eq!(ls, "DRIVER    VOLUME NAME\nlocal     data\n");
    run(
        &sb,
        &[
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
    )
    .ok();
    // Another container, a volume named only at run (made then), and --mount's form.
    let out = run(
        &sb,
        &[
            "--mount",
            "type=volume,src=data,dst=/d,readonly",
            "-v",
            "other:/o",
            "busybox",
            "sh",
            "-c",
            "cat /d/f; touch /d/g 2>&1; touch /o/x && echo other-ok",
        ],
    )
    .ok();
    assert!(
        out.starts_with("kept\n") && out.contains("Read-only file system"),
        "{out}"
    );
    assert!(out.ends_with("other-ok\n"), "{out}");
    assert_eq!(volumes(&sb), ["data", "other"]);

    let inspect: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["volume", "inspect", "data"]).ok()).unwrap();
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(inspect[0]["Name"], "data");
    assert_eq!(inspect[0]["Driver"], "local");
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/f")).unwrap(),
        "kept\n"
    );

    // `inspect --type volume` (and `inspect` alone) shows the same document.
    let by_type: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", "--type", "volume", "data"]).ok()).unwrap();
    assert_eq!(by_type, inspect);
    assert_eq!(
        sb.minibox(&["inspect", "-f", "{{.Mountpoint}}", "data"])
            .ok(),
        format!("{mountpoint}\n")
    );
    sb.minibox(&["inspect", "--type", "volume", "nothing"])
        .fails(1, "no such volume: nothing");

    // In use by a container, running or not: refused in one line, the volume kept.
    let host = sb.root().join("host-dir");
    let bind = format!("{}:/h:ro", host.display());
    sb.minibox(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "user",
        "-v",
        "data:/data",
        "-v",
        &bind,
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    // Its Mounts as Docker's: the volume by name, the bind by path.
    let c: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", "user"]).ok()).unwrap();
    let mounts = c[0]["Mounts"].as_array().unwrap();
    let vol = mounts.iter().find(|m| m["Destination"] == "/data").unwrap();
    assert_eq!(vol["Type"], "volume", "{vol}");
    assert_eq!(vol["Name"], "data");
    assert_eq!(vol["Source"], mountpoint.as_str());
    assert_eq!(vol["Driver"], "local");
    assert_eq!(vol["RW"], true);
    let b = mounts.iter().find(|m| m["Destination"] == "/h").unwrap();
    assert_eq!(b["Type"], "bind", "{b}");
    assert_eq!(b["Source"], host.to_str().unwrap());
    assert_eq!(b["RW"], false);
    assert_eq!(
        c[0]["HostConfig"]["Binds"],
        serde_json::json!(["data:/data", bind])
    );
    // ps finds it by the volume's name or where it is mounted.
    let users = |filter: &str| {
        let filter = format!("volume={filter}");
        sb.minibox(&["ps", "--filter", &filter, "--format", "{{.Names}}"])
            .ok()
    };
    assert_eq!(users("data"), "user\n");
    assert_eq!(users("/data"), "user\n");
    assert_eq!(users("other"), "");
    let out = sb.minibox(&["volume", "rm", "data"]);
    assert_eq!(out.code(), 1, "{out}");
    assert_eq!(out.stderr().lines().count(), 1, "one line: {out}");
    assert!(out.stderr().contains("is in use by container"), "{out}");
    sb.minibox(&["stop", "-t", "0", "user"]).ok();
    assert_eq!(sb.minibox(&["volume", "rm", "data"]).code(), 1);
    assert!(volumes(&sb).contains(&"data".to_string()));
    sb.minibox(&["rm", "user"]).ok();
    assert_eq!(
        sb.minibox(&["volume", "rm", "data", "other"]).ok(),
        "data\nother\n"
    );
    assert!(volumes(&sb).is_empty());
    let out = sb.minibox(&["volume", "rm", "data"]);
    assert!(
        out.code() != 0 && out.stderr().contains("no such volume: data"),
        "{out}"
    );
    sb.minibox(&["volume", "rm", "-f", "data"]).ok();
    sb.finish();
}

#[test]
fn a_new_volume_gets_the_images_content_unless_nocopy() {
    let sb = sandbox();
    // The busybox image has /home/app, owned by app (1000).
    let out = run(
        &sb,
        &["-v", "homes:/home", "busybox", "sh", "-c", "ls -ln /home"],
    )
    .ok();
    assert!(
        out.contains(" 1000 ") && out.trim_end().ends_with("app"),
        "{out}"
    );
    let data = sb.root().join("volumes/homes/_data");
    assert!(
        data.join("app").is_dir(),
        "copied into the volume on the host"
    );
    // Not copied again over what the volume holds now.
    std::fs::remove_dir(data.join("app")).unwrap();
    std::fs::write(data.join("mine"), "x").unwrap();
    let out = run(&sb, &["-v", "homes:/home", "busybox", "ls", "/home"]).ok();
    assert_eq!(out, "mine\n");
    let out = run(
        &sb,
        &["-v", "empty:/home:nocopy", "busybox", "ls", "-A", "/home"],
    )
    .ok();
    assert_eq!(out, "");
    sb.minibox(&["volume", "rm", "homes", "empty"]).ok();
    sb.finish();
}

#[test]
fn anonymous_volumes_for_the_images_volumes_go_with_rm_v_and_run_rm() {
    let sb = sandbox();
    let tar = minibox_tests::fixtures::busybox_tarball();
    sb.minibox(&[
        "import",
        tar.to_str().unwrap(),
        "withvol",
        "--change",
        "VOLUME /home /cache",
    ])
    .ok();
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "a",
            "-v",
            "/scratch",
            "withvol",
            "sh",
            "-c",
            "echo hi > /cache/x; sleep 1000",
        ])
        .ok();
    let anon = volumes(&sb);
    assert_eq!(anon.len(), 3, "{anon:?}");
    assert!(anon.iter().all(|n| n.len() == 64), "{anon:?}");
    let out = sb
        .minibox(&[
            "exec",
            "a",
            "sh",
            "-c",
            "ls /home; grep -c -e ' /home ' -e ' /cache ' -e ' /scratch ' /proc/mounts",
        ])
        .ok();
    assert_eq!(out, "app\n3\n", "the image's content, copied up");
    sb.minibox(&["rm", "-f", "-v", id.trim()]).ok();
    assert!(volumes(&sb).is_empty(), "rm -v removes them");

    run(&sb, &["withvol", "true"]).ok();
    assert!(volumes(&sb).is_empty(), "run --rm removes them");

    // Without -v they stay, and `volume prune` removes anonymous ones no container uses.
    sb.minibox(&["run", "--network", "none", "--name", "b", "withvol", "true"])
        .ok();
    sb.minibox(&["volume", "create", "named"]).ok();
    let out = sb.minibox(&["volume", "prune", "-f"]).ok();
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert_eq!(volumes(&sb).len(), 3, "in use by b: kept");
    sb.minibox(&["rm", "b"]).ok();
    sb.minibox(&["volume", "prune", "-f"]).ok();
    assert_eq!(volumes(&sb), ["named"]);
    sb.minibox(&["volume", "prune", "-f", "-a"]).ok();
    assert!(volumes(&sb).is_empty());
    sb.finish();
}

#[test]
fn v_makes_a_missing_host_directory_and_mount_bind_does_not() {
    let sb = sandbox();
    let host = sb.root().join("made/by/v");
    let spec = format!("{}:/data", host.display());
    run(
        &sb,
        &["-v", &spec, "busybox", "sh", "-c", "echo in > /data/f"],
    )
    .ok();
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "in\n");
    let missing = sb.root().join("not/made");
    let mount = format!("type=bind,source={},target=/data", missing.display());
    let out = run(&sb, &["--mount", &mount, "busybox", "true"]);
    assert_eq!(
        out.fails(125, "bind source path does not exist")
            .lines()
            .count(),
        1
    );
    assert!(!missing.exists());
    sb.finish();
}

#[test]
fn read_only_root_with_tmpfs_and_binds_where_asked() {
    let sb = sandbox();
    let host = sb.root().join("ro");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("type=bind,src={},dst=/b,readonly", host.display());
    let script = "touch /x 2>&1; touch /b/x 2>&1; echo t > /run/t && cat /run/t; \
                  echo u > /u/t && cat /u/t; grep -e ' /run ' -e ' /u ' /proc/mounts";
    let out = run(
        &sb,
        &[
            "--read-only",
            "--tmpfs",
            "/run:size=1m",
            "--mount",
            "type=tmpfs,dst=/u,tmpfs-size=2m,tmpfs-mode=700",
            "--mount",
            &bind,
            "busybox",
            "sh",
            "-c",
            script,
        ],
    )
    .ok();
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");
    assert!(out.contains("t\nu\n"), "{out}");
    assert!(
        out.contains("tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k"),
        "{out}"
    );
    assert!(
        out.contains("tmpfs /u tmpfs rw,nosuid,nodev,noexec,relatime,size=2048k,mode=700"),
        "{out}"
    );
    assert!(std::fs::read_dir(&host).unwrap().next().is_none());
    sb.finish();
}

#[test]
fn bad_mounts_fail_in_one_line_and_make_nothing() {
    let sb = sandbox();
    for (args, why) in [
        (&["-v", "bad/name:/x"][..], "invalid volume"),
        (&["-v", "vol:relative"], "must be absolute"),
        (&["-v", "vol:/proc/x"], "is not allowed"),
        (&["--mount", "type=nfs,dst=/x"], "unknown type"),
        (&["--mount", "type=volume,src=vol"], "target is missing"),
        (&["--tmpfs", "/t:exotic"], "unknown option"),
        (
            &["-v", "vol:/x", "--tmpfs", "/x"],
            "is the target of two mounts",
        ),
    ] {
        let mut all = args.to_vec();
        all.extend(["busybox", "true"]);
        let out = run(&sb, &all);
        let err = out.fails(125, why);
        assert_eq!(err.lines().count(), 1, "{out}");
    }
    assert!(volumes(&sb).is_empty());
    assert!(sb.minibox(&["ps", "-a", "-q"]).ok().is_empty());
    sb.finish();
}

#[test]
fn diff_export_and_commit_read_the_containers_layer() {
    let sb = sandbox();
    sb.minibox(&[
        "run",
        "--network",
        "none",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "echo new > /added; echo changed >> /etc/passwd; rm /bin/vi; mkdir /tmp/d",
    ])
    .ok();
    let diff = sb.minibox(&["diff", "c"]).ok();
    let lines: Vec<&str> = diff.lines().collect();
    for expected in [
        "A /added",
        "C /etc",
        "C /etc/passwd",
        "C /bin",
        "D /bin/vi",
        "C /tmp",
        "A /tmp/d",
    ] {
        assert!(lines.contains(&expected), "{expected} missing:\n{diff}");
    }

    // export: the whole filesystem the container sees, its changes included.
    let tar = sb.root().join("c.tar");
    sb.minibox(&["export", "-o", tar.to_str().unwrap(), "c"])
        .ok();
    let mut names = Vec::new();
    let mut passwd = String::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if name == "etc/passwd" {
            std::io::Read::read_to_string(&mut entry, &mut passwd).unwrap();
        }
        names.push(name);
    }
    assert!(
        names.contains(&"added".to_string()) && names.contains(&"bin/sh".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"bin/vi".to_string()),
        "a deleted file is not exported"
    );
    assert!(passwd.ends_with("changed\n"), "{passwd}");

    // commit: an image whose top layer holds the changes, usable by run.
    let id = sb
        .minibox(&["commit", "-m", "teach layers", "c", "snap:1"])
        .ok();
    assert!(id.starts_with("sha256:"), "{id}");
    let out = run(
        &sb,
        &[
            "snap:1",
            "sh",
            "-c",
            "cat /added; tail -1 /etc/passwd; ls /bin/vi 2>&1; test -d /tmp/d && echo dir",
        ],
    )
    .ok();
    assert_eq!(out.lines().next(), Some("new"), "{out}");
    assert!(
        out.contains("changed\n") && out.contains("No such file") && out.ends_with("dir\n"),
        "{out}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["image", "inspect", "snap:1"]).ok()).unwrap();
    let base: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["image", "inspect", "busybox"]).ok()).unwrap();
    let layers = |v: &serde_json::Value| v[0]["RootFS"]["Layers"].as_array().unwrap().clone();
    assert_eq!(
        layers(&inspect).len(),
        layers(&base).len() + 1,
        "one layer more"
    );
    assert_eq!(layers(&inspect)[..layers(&base).len()], layers(&base)[..]);
    sb.minibox(&["rm", "c"]).ok();
    sb.minibox(&["rmi", "snap:1"]).ok();
    sb.finish();
}

#[test]
fn diff_decides_against_the_image_as_overlay_merges_its_layers() {
    let sb = sandbox();
    let step = |name: &str, image: &str, script: &str| {
        sb.minibox(&[
            "run",
            "--network",
            "none",
            "--name",
            name,
            image,
            "sh",
            "-c",
            script,
        ])
        .ok();
    };
    let diff = |name: &str| -> Vec<String> {
        let out = sb.minibox(&["diff", name]).ok();
        out.lines().map(String::from).collect()
    };
    // Layer 1 makes /srv/d with two files and /srv/f; layer 2 deletes /srv/d and /srv/f.
    step(
        "l1",
        "busybox",
        "mkdir -p /srv/d && echo 1 > /srv/d/f && echo 1 > /srv/d/g && echo 1 > /srv/f",
    );
    sb.minibox(&["commit", "l1", "layers:1"]).ok();
    step("l2", "layers:1", "rm -r /srv/d /srv/f");
    sb.minibox(&["commit", "l2", "layers:2"]).ok();
    assert_eq!(diff("l2"), ["C /srv", "D /srv/d", "D /srv/f"]);

    // Made again over the image's own whiteouts: added, not changed (layer 1's /srv/d/f is gone).
    step(
        "again",
        "layers:2",
        "mkdir /srv/d && echo 2 > /srv/d/f && echo 2 > /srv/f",
    );
    assert_eq!(
        diff("again"),
        ["C /srv", "A /srv/d", "A /srv/d/f", "A /srv/f"]
    );

    // Emptied and made again (an opaque directory in the container's layer): what the image had
    // there and the container did not make again reads deleted.
    step(
        "remade",
        "layers:1",
        "rm -r /srv/d && mkdir /srv/d && echo 2 > /srv/d/f && echo 2 > /srv/d/new",
    );
    assert_eq!(
        diff("remade"),
        [
            "C /srv",
            "C /srv/d",
            "C /srv/d/f",
            "D /srv/d/g",
            "A /srv/d/new"
        ]
    );
    for c in ["l1", "l2", "again", "remade"] {
        sb.minibox(&["rm", c]).ok();
    }
    sb.minibox(&["rmi", "layers:2", "layers:1"]).ok();
    sb.finish();
}

/// Each container's writable layer gets a block group of its own on ext4 (`containers/` is the
/// top of directory hierarchies, `chattr +T`): one group for them all made every set-up pass
/// over the inodes that the last minutes' removals freed, on a filesystem without a journal.
#[test]
fn the_containers_dir_spreads_its_containers_over_the_filesystem() {
    let sb = sandbox();
    run(&sb, &["busybox", "true"]);
    let dir = sb.root().join("containers");
    let fs = sb.sh(&format!("stat -f -c %T {}", dir.display())).ok();
    if !fs.trim().starts_with("ext") {
        eprintln!(
            "skipped: {} is on {}, not ext2/3/4",
            dir.display(),
            fs.trim()
        );
        return sb.finish();
    }
    let attrs = sb.sh(&format!("lsattr -d {}", dir.display())).ok();
    let flags = attrs.split_whitespace().next().unwrap_or_default();
    assert!(flags.contains('T'), "{attrs}");
    sb.finish();
}
