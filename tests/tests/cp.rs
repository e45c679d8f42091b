//! `minibox cp` both ways, on running and stopped containers, and as an attack: symlinks the
//! container plants (absolute, relative, and swapped in a loop while copies run, the
//! CVE-2018-15664 race) must never make a copy read or write a host file.

use std::path::Path;

use minibox_tests::Sandbox;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// Starts a detached container named `name` running `script`.
fn detached(sb: &Sandbox, name: &str, script: &str) {
    sb.minibox(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        script,
    ])
    .ok();
}

#[test]
fn cp_copies_both_ways_running_or_stopped() {
    let sb = sandbox();
    let host = sb.root().join("cp");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/f"), "in\n").unwrap();
    std::os::unix::fs::symlink("sub/f", host.join("tree/link")).unwrap();
    detached(
        &sb,
        "c",
        "mkdir -p /out/d && echo out > /out/d/g && chmod 640 /out/d/g; sleep 1000",
    );
    let tree = host.join("tree");
    sb.minibox(&["cp", tree.to_str().unwrap(), "c:/in"]).ok();
    let seen = sb
        .minibox(&["exec", "c", "sh", "-c", "cat /in/sub/f; readlink /in/link"])
        .ok();
    assert_eq!(seen, "in\nsub/f\n");
    let out = host.join("copied");
    sb.minibox(&["cp", "c:/out/d", out.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(out.join("g")).unwrap(), "out\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("g")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o640);
    // Into an existing host directory: under its own name.
    sb.minibox(&["cp", "c:/out/d/g", host.to_str().unwrap()])
        .ok();
    assert!(host.join("g").is_file());

    // Stopped: through its root filesystem, and what was copied in is there at the next start.
    sb.minibox(&["stop", "-t", "0", "c"]).ok();
    let file = host.join("late");
    std::fs::write(&file, "late\n").unwrap();
    sb.minibox(&["cp", file.to_str().unwrap(), "c:/late"]).ok();
    let back = host.join("back");
    sb.minibox(&["cp", "c:/in/sub/f", back.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "in\n");
    sb.minibox(&["start", "c"]).ok();
    assert_eq!(sb.minibox(&["exec", "c", "cat", "/late"]).ok(), "late\n");

    for (args, why) in [
        (
            ["cp", "c:/nonexistent", back.to_str().unwrap()],
            "No such file",
        ),
        (["cp", "/a", "/b"], "name one container path"),
    ] {
        let out = sb.minibox(&args);
        assert!(out.code() != 0 && out.stderr().contains(why), "{out}");
        assert_eq!(out.stderr().lines().count(), 1, "{out}");
    }
    sb.minibox(&["rm", "-f", "c"]).ok();
    sb.finish();
}

#[test]
fn planted_symlinks_never_reach_the_host() {
    let sb = sandbox();
    let host = sb.root().join("host");
    let secret_dir = host.join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("key"), "host secret\n").unwrap();
    let target_dir = host.join("target");
    std::fs::create_dir_all(&target_dir).unwrap();
    let secret = secret_dir.display().to_string();
    let target = target_dir.display().to_string();
    // Links to the host paths, absolute and through `..`, planted in the container.
    let script = format!(
        "mkdir -p /w; ln -s {secret} /w/abs; ln -s ../../../../../../../../..{secret} /w/rel; \
         ln -s {target} /w/into; ln -s / /w/root; sleep 1000"
    );
    detached(&sb, "evil", &script);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = host.join("got");
    for src in [
        "evil:/w/abs/key",
        "evil:/w/rel/key",
        "evil:/w/root/../..{secret}/key",
    ] {
        let src = src.replace("{secret}", &secret);
        let out = sb.minibox(&["cp", &src, got.to_str().unwrap()]);
        assert_ne!(out.code(), 0, "{out}");
        assert!(!got.exists(), "{src} copied a host file out: {out}");
    }
    // The link itself is what is copied, not what it points to.
    sb.minibox(&["cp", "evil:/w/abs", got.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_link(&got).unwrap(), Path::new(&secret));
    std::fs::remove_file(&got).unwrap();

    let payload = host.join("payload");
    std::fs::write(&payload, "planted\n").unwrap();
    for dest in [
        "evil:/w/into/",
        "evil:/w/into/payload",
        "evil:/w/root/../../..{target}/x",
    ] {
        let dest = dest.replace("{target}", &target);
        let _ = sb.minibox(&["cp", payload.to_str().unwrap(), &dest]);
        assert!(
            std::fs::read_dir(&target_dir).unwrap().next().is_none(),
            "{dest} wrote onto the host"
        );
    }
    // Copying onto the link replaces the link inside the container.
    sb.minibox(&["cp", payload.to_str().unwrap(), "evil:/w/into"])
        .ok();
    assert_eq!(
        sb.minibox(&["exec", "evil", "cat", "/w/into"]).ok(),
        "planted\n"
    );
    sb.minibox(&["rm", "-f", "evil"]).ok();
    sb.finish();
}

#[test]
fn a_symlink_swapped_during_copies_never_reaches_the_host() {
    let sb = sandbox();
    let host = sb.root().join("host");
    let secret_dir = host.join("secret");
    std::fs::create_dir_all(secret_dir.join("d")).unwrap();
    std::fs::write(secret_dir.join("d/key"), "host secret\n").unwrap();
    let target_dir = host.join("target");
    std::fs::create_dir_all(target_dir.join("d")).unwrap();
    // /w/x flips between a real directory and a link to the host's directories, as fast as it
    // can, while the host copies in and out through it (CVE-2018-15664's race).
    let script = format!(
        "mkdir -p /w/real/d; echo mine > /w/real/d/key; \
         while true; do ln -sfn /w/real /w/x; ln -sfn {} /w/x; ln -sfn {} /w/x; done",
        secret_dir.display(),
        target_dir.display()
    );
    detached(&sb, "racer", &script);
    let payload = host.join("payload");
    std::fs::write(&payload, "planted\n").unwrap();
    let got = host.join("got");
    let mut copied = 0;
    for i in 0..150 {
        let dest = format!("racer:/w/x/d/p{i}");
        if sb.minibox(&["cp", payload.to_str().unwrap(), &dest]).code() == 0 {
            copied += 1;
        }
        let out = sb.minibox(&["cp", "racer:/w/x/d/key", got.to_str().unwrap()]);
        if out.code() == 0 {
            assert_eq!(
                std::fs::read_to_string(&got).unwrap(),
                "mine\n",
                "read a host file"
            );
            std::fs::remove_file(&got).unwrap();
        }
        assert_eq!(
            std::fs::read_dir(target_dir.join("d")).unwrap().count(),
            0,
            "wrote onto the host at copy {i}"
        );
    }
    // The race was real: some copies went through the container's own directory.
    assert!(copied > 0, "no copy went through");
    sb.minibox(&["rm", "-f", "racer"]).ok();
    sb.finish();
}
