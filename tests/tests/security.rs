//! Attacks on the container boundary and on the store, each performed for real and shown to
//! fail, with nothing left behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use minibox_tests::Sandbox;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `run -d --network none busybox ARGS...`: the full id.
fn run_d(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none", "busybox"];
    all.extend_from_slice(args);
    sb.minibox(&all).ok().trim().to_string()
}

// ---- A container that froze its own cgroup ----

/// The file that freezes container `id`'s cgroup: v1's freezer.state, or v2's cgroup.freeze.
fn freezer(sb: &Sandbox, id: &str) -> (PathBuf, &'static str) {
    let v1 = PathBuf::from(format!(
        "/sys/fs/cgroup/freezer/{}/{id}/freezer.state",
        sb.cgroup_parent()
    ));
    if v1.exists() {
        return (v1, "FROZEN");
    }
    let v2 = PathBuf::from(format!(
        "/sys/fs/cgroup/{}/{id}/cgroup.freeze",
        sb.cgroup_parent()
    ));
    assert!(v2.exists(), "no freezer for {id}");
    (v2, "1")
}

/// Freezes the container's cgroup from the host side, as a container that froze itself leaves
/// it, and waits until it is frozen.
fn freeze(sb: &Sandbox, id: &str) {
    let (file, frozen) = freezer(sb, id);
    std::fs::write(&file, frozen).unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&file).unwrap().trim() != frozen {
        assert!(start.elapsed() < Duration::from_secs(5), "not frozen");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stop_kill_and_rm_thaw_a_frozen_container_and_never_hang() {
    let sb = sandbox();
    // PID 1 a shell that ignores SIGTERM: stop has to go on to SIGKILL.
    let stopped = run_d(&sb, &["sh", "-c", "trap '' TERM; sleep 1000 & wait"]);
    let killed = run_d(&sb, &["sleep", "1000"]);
    let removed = run_d(&sb, &["sleep", "1000"]);
    for id in [&stopped, &killed, &removed] {
        freeze(&sb, id);
    }
    sb.minibox(&["stop", "-t", "1", &stopped]).ok();
    sb.minibox(&["kill", &killed]).ok();
    sb.minibox(&["wait", &killed]).ok();
    sb.minibox(&["rm", "-f", &removed]).ok();
    let ps = sb.minibox(&["ps", "-a"]).ok();
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert!(!ps.contains(&removed[..12]), "{ps}");
    sb.minibox(&["rm", &stopped, &killed]).ok();
    sb.finish();
}

// ---- A noisy container against the disk ----

#[test]
fn a_noisy_containers_log_is_bounded_and_logs_reads_across_rotations() {
    let sb = sandbox();
    // About 6 MiB of numbered 100-byte lines, then a last line.
    let script =
        "i=0; while [ $i -lt 60000 ]; do printf '%099d\\n' $i; i=$((i+1)); done; echo last";
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            script,
        ])
        .ok()
        .trim()
        .to_string();
    assert_eq!(sb.minibox(&["wait", &id]).ok().trim(), "0");
    let dir = sb.root().join("containers").join(&id);
    let mut total = 0;
    let mut files = vec![];
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("container.log") {
            total += entry.metadata().unwrap().len();
            files.push(name);
        }
    }
    files.sort();
    assert_eq!(files, ["container.log", "container.log.1"], "{files:?}");
    // Two files of 1 MiB, each over by one record at most.
    assert!(total <= (2 << 20) + 2 * 200, "{total} bytes of logs");
    let tail = sb.minibox(&["logs", "--tail", "3", &id]).ok();
    assert_eq!(
        tail,
        format!("{:099}\n{:099}\nlast\n", 59998, 59999),
        "the newest lines"
    );
    // Everything kept, in order, across the rotated file and the current one.
    let all = sb.minibox(&["logs", &id]).ok();
    let numbers: Vec<u64> = all.lines().filter_map(|l| l.parse().ok()).collect();
    // A full rotated file (about 7,500 records of 140 bytes) and the start of the next.
    assert!(numbers.len() > 7_000, "{} lines", numbers.len());
    assert_eq!(numbers.last(), Some(&59_999));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "out of order");
    sb.minibox(&["run", "--log-opt", "max-size=x", "busybox", "true"])
        .fails(125, "--log-opt");
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

// ---- An unprivileged host user against the store ----

/// An unprivileged host user, removed when dropped.
struct HostUser(String);

impl HostUser {
    fn new() -> Self {
        let name = format!("mbx{}", std::process::id());
        let out = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd: {out:?}");
        HostUser(name)
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).output();
    }
}

/// An image layer with a setuid-root copy of busybox and a block device node (loop0's numbers).
fn evil_image(sb: &Sandbox) {
    let path = sb.root().with_extension("evil.tar");
    let mut tar = tar::Builder::new(std::fs::File::create(&path).unwrap());
    let header = |kind, mode| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        h
    };
    let mut dir = header(tar::EntryType::Directory, 0o755);
    tar.append_data(&mut dir, "bin", std::io::empty()).unwrap();
    tar.append_data(&mut dir, "dev", std::io::empty()).unwrap();
    // Debian's static busybox, as the fixtures use it.
    let bb = std::fs::read("/bin/busybox").unwrap();
    let mut suid = header(tar::EntryType::Regular, 0o4755);
    suid.set_size(bb.len() as u64);
    tar.append_data(&mut suid, "bin/sh", &bb[..]).unwrap();
    let mut blk = header(tar::EntryType::Block, 0o666);
    blk.set_device_major(7).unwrap();
    blk.set_device_minor(0).unwrap();
    tar.append_data(&mut blk, "dev/disk", std::io::empty())
        .unwrap();
    tar.finish().unwrap();
    drop(tar);
    sb.minibox(&["import", path.to_str().unwrap(), "evil"]).ok();
    std::fs::remove_file(path).unwrap();
}

/// Every path below `dir` whose file matches `find` arguments (root's view).
fn find(sb: &Sandbox, dir: &str, args: &str) -> Vec<String> {
    let out = sb.sh(&format!("find {dir} {args} 2>/dev/null")).stdout();
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_local_user_can_execute_and_open_nothing_in_the_root_or_the_runroot() {
    let sb = sandbox();
    evil_image(&sb);
    let user = HostUser::new();
    let root = sb.root().to_str().unwrap().to_string();
    // The store as an older minibox left it, open to all: tightened by the next command.
    std::fs::set_permissions(
        sb.root(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let id = run_d(
        &sb,
        &[
            "-e",
            "SECRET=hunter2",
            "sh",
            "-c",
            "cp /bin/busybox /tmp/su && chmod 4755 /tmp/su && echo ready && sleep 1000",
        ],
    );
    let evil = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "evil",
            "/bin/sh",
            "-c",
            "sleep 1000",
        ])
        .ok()
        .trim()
        .to_string();
    let start = Instant::now();
    while !sb.minibox(&["logs", &id]).stdout().contains("ready") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the container never got ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let as_user = |script: &str| {
        sb.exec("runuser", ["-u", &user.0, "--", "sh", "-c", script])
            .output()
            .unwrap()
    };
    // The attack is real: the user reaches the store's parent, and root sees the prizes.
    let parent = sb.root().parent().unwrap().to_str().unwrap().to_string();
    assert!(
        as_user(&format!("cd {parent}")).status.success(),
        "the test user cannot reach {parent}: the test would prove nothing"
    );
    let setuid = find(&sb, &root, "-type f -perm -4000 -user root");
    assert!(
        setuid.iter().any(|p| p.contains("/images/")) && setuid.iter().any(|p| p.ends_with("/su")),
        "setuid files in an image layer and a writable layer: {setuid:?}"
    );
    let devices = find(&sb, &root, "-type b");
    assert!(
        !devices.is_empty(),
        "the image's block device was not unpacked"
    );
    let runroot = "/run/minibox";
    let locks = find(&sb, runroot, "-name lock -type f");
    assert!(!locks.is_empty());
    let logs = find(&sb, &root, "-name container.log");
    let configs: Vec<String> = find(&sb, &root, "-name config.json")
        .into_iter()
        .filter(|c| std::fs::read_to_string(c).unwrap().contains("hunter2"))
        .collect();
    assert!(!logs.is_empty() && !configs.is_empty());
    for file in setuid.iter() {
        let out = as_user(&format!("{file} id -u"));
        assert!(!out.status.success(), "{file} ran: {out:?}");
    }
    let mut targets = vec![];
    targets.extend(devices);
    targets.extend(logs);
    targets.extend(configs);
    targets.extend(locks);
    for file in &targets {
        let out = as_user(&format!("cat {file} >/dev/null"));
        assert!(!out.status.success(), "{file} opened: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{file}: {out:?}"
        );
    }
    // And the modes themselves, below the closed directories.
    let mode = |p: &str| {
        let out = sb.sh(&format!("stat -c %a {p}")).ok();
        u32::from_str_radix(out.trim(), 8).unwrap()
    };
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(runroot), 0o700);
    for file in &targets[1..] {
        assert_eq!(mode(file) & 0o007, 0, "{file} is open to others");
    }
    sb.minibox(&["rm", "-f", &id, &evil]).ok();
    drop(user);
    sb.finish();
}
