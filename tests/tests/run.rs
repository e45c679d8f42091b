//! `minibox run`: the container's process, namespaces, filesystem, cgroup, security, exit codes
//! and signals, end to end against the real kernel.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use minibox_tests::{Out, Sandbox};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A sandbox with the busybox image.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `run --rm`, with `--network none` unless the test chooses: these tests are about the process,
/// the network has its own.
fn run_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["run", "--rm"];
    if !args.contains(&"--network") {
        all.extend(["--network", "none"]);
    }
    all.extend_from_slice(args);
    all
}

/// `minibox run --rm ARGS...`
fn run(sb: &Sandbox, args: &[&str]) -> Out {
    sb.minibox(&run_args(args))
}

/// Starts `minibox run --rm ARGS...` with piped stdout and waits for the container's first line.
fn spawn_until(
    sb: &Sandbox,
    args: &[&str],
    line: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let all = run_args(args);
    let mut child = sb
        .command(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), line, "the container did not start");
    (child, out)
}

fn finish(mut child: Child, mut out: BufReader<std::process::ChildStdout>) -> (i32, String) {
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    (status.code().unwrap_or(-1), rest)
}

/// The container's cgroup directory for `controller` (v1 and hybrid hosts) or the unified one
/// (v2 hosts), waiting for the running container to appear under the sandbox's parent.
fn container_cgroup(sb: &Sandbox, controller: &str) -> PathBuf {
    let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(controller)
    };
    let parent = base.join(sb.cgroup_parent());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        if dirs.len() == 1 {
            return dirs.into_iter().next().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no container cgroup under {}",
            parent.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn the_command_is_pid_1_with_its_own_hostname_and_namespaces() {
    let sb = sandbox();
    let out = run(
        &sb,
        &[
            "busybox",
            "sh",
            "-c",
            "echo $$; hostname; cat /etc/hostname",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    let hostname = lines[1];
    assert_eq!(
        hostname.len(),
        12,
        "the default hostname is the short id: {out}"
    );
    assert!(hostname.chars().all(|c| c.is_ascii_hexdigit()), "{out}");
    assert_eq!(lines[2], hostname, "{out}");

    let named = run(&sb, &["--hostname", "box", "busybox", "hostname"]).ok();
    assert_eq!(named.trim(), "box");

    let kinds = ["cgroup", "ipc", "mnt", "net", "pid", "uts"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k};"))
        .collect();
    let inside = run(&sb, &["busybox", "sh", "-c", &script]).ok();
    let outside = sb.sh(&script).ok();
    for (k, (i, o)) in kinds.iter().zip(inside.lines().zip(outside.lines())) {
        assert_ne!(i, o, "the {k} namespace is the host's");
    }
    sb.finish();
}

#[test]
fn network_none_has_loopback_up_and_host_shares_the_hosts() {
    let sb = sandbox();
    let none = run(&sb, &["--network", "none", "busybox", "ip", "-o", "link"]).ok();
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:") && none.contains("UP"), "{none}");
    let ping = run(&sb, &["busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1"]);
    assert!(ping.ok().contains("1 packets received"), "{ping}");

    let script = "readlink /proc/self/ns/net";
    let host_ns = sb.sh(script).ok();
    let inside = run(&sb, &["--network", "host", "busybox", "sh", "-c", script]).ok();
    assert_eq!(inside, host_ns);
    sb.finish();
}

#[test]
fn capabilities_are_dockers_default_and_follow_cap_add_and_cap_drop() {
    let sb = sandbox();
    let cap_eff = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["busybox", "grep", "CapEff", "/proc/self/status"]);
        let out = run(&sb, &all).ok();
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    const DEFAULT: u64 = 0xa80425fb;
    const CHOWN: u64 = 1 << 0;
    const NET_ADMIN: u64 = 1 << 12;
    assert_eq!(cap_eff(&[]), DEFAULT);
    assert_eq!(
        cap_eff(&["--cap-add", "NET_ADMIN", "--cap-drop", "chown"]),
        (DEFAULT | NET_ADMIN) & !CHOWN
    );
    assert_eq!(
        cap_eff(&["--cap-drop", "ALL", "--cap-add", "CAP_KILL"]),
        1 << 5
    );
    assert_eq!(
        cap_eff(&["-u", "app"]),
        0,
        "a non-root user has no effective capabilities"
    );
    let all = cap_eff(&["--privileged"]);
    assert_eq!(all & DEFAULT, DEFAULT);
    assert!(all & NET_ADMIN != 0);
    run(&sb, &["--cap-add", "FOO", "busybox", "true"]).fails(125, "unknown capability");

    // no_new_privs as in Docker: off unless asked for.
    let no_new_privs = run(&sb, &["busybox", "grep", "NoNewPrivs", "/proc/self/status"]).ok();
    assert!(no_new_privs.contains('0'), "{no_new_privs}");
    let asked = [
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
    ];
    let no_new_privs = run(&sb, &[&asked[..], &["/proc/self/status"]].concat()).ok();
    assert!(no_new_privs.contains('1'), "{no_new_privs}");
    sb.finish();
}

#[test]
fn without_net_admin_the_network_cannot_be_changed() {
    let sb = sandbox();
    let denied = run(&sb, &["busybox", "ip", "link", "set", "lo", "down"]);
    assert_ne!(denied.code(), 0, "{denied}");
    assert!(
        denied.stderr().contains("Operation not permitted"),
        "{denied}"
    );
    let added = run(
        &sb,
        &[
            "--cap-add",
            "NET_ADMIN",
            "busybox",
            "sh",
            "-c",
            "ip link set lo down && ip -o link",
        ],
    );
    assert!(!added.ok().contains("UP"), "{added}");
    sb.finish();
}

#[test]
fn masked_paths_are_empty_and_sys_and_proc_sys_are_read_only() {
    let sb = sandbox();
    // The masked dirs share one empty tmpfs: writing into either must fail, or both would show it.
    let script = "exec 2>&1; cat /proc/timer_list | wc -c; \
                  touch /proc/acpi/x /sys/firmware/x 2>/dev/null; \
                  ls /proc/acpi /sys/firmware | wc -l; \
                  grep -E ' /sys | /proc/sys ' /proc/mounts; \
                  touch /sys/x; echo 1 > /proc/sys/net/ipv4/ip_forward; true";
    let out = run(&sb, &["busybox", "sh", "-c", script]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "/proc/timer_list is masked:\n{out}");
    assert!(
        lines[1].parse::<u32>().unwrap() <= 3,
        "masked dirs are empty:\n{out}"
    );
    let mounts: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(" /sys ") || l.contains(" /proc/sys "))
        .collect();
    assert_eq!(mounts.len(), 2, "{out}");
    assert!(
        mounts
            .iter()
            .all(|m| m.split(' ').nth(3).unwrap().starts_with("ro")),
        "{out}"
    );
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");

    let privileged = run(
        &sb,
        &[
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "cat /proc/timer_list | wc -c",
        ],
    )
    .ok();
    assert!(
        privileged.trim().parse::<u64>().unwrap() > 0,
        "--privileged skips the masks"
    );
    sb.finish();
}

#[test]
fn dev_has_the_usual_nodes_and_links() {
    let sb = sandbox();
    let out = run(
        &sb,
        &["busybox", "sh", "-c", "ls /dev; stat -c '%a %t,%T' /dev/null /dev/tty; readlink /dev/ptmx; readlink /dev/fd; echo x > /dev/null && head -c 4 /dev/zero | wc -c"],
    )
    .ok();
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd",
        "stdin", "stdout", "stderr",
    ] {
        assert!(out.lines().any(|l| l == node), "/dev lacks {node}:\n{out}");
    }
    assert!(out.contains("666 1,3") && out.contains("666 5,0"), "{out}");
    assert!(
        out.contains("pts/ptmx") && out.contains("/proc/self/fd"),
        "{out}"
    );
    assert!(out.trim_end().ends_with('4'), "{out}");
    sb.finish();
}

#[test]
fn host_block_devices_cannot_be_opened() {
    // The devices controller on v1, an eBPF program on v2 (tests/tests/cgroup_v2.rs boots one).
    let sb = sandbox();
    let partitions = read(Path::new("/proc/partitions"));
    let first = partitions.lines().nth(2).expect("a block device");
    let f: Vec<&str> = first.split_whitespace().collect();
    let script = format!("mknod /tmp/disk b {} {} && head -c 1 /tmp/disk", f[0], f[1]);
    let out = run(&sb, &["busybox", "sh", "-c", &script]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr().contains("Operation not permitted"), "{out}");
    sb.finish();
}

#[test]
fn exit_codes_follow_docker() {
    let sb = sandbox();
    assert_eq!(run(&sb, &["busybox", "true"]).code(), 0);
    assert_eq!(run(&sb, &["busybox", "sh", "-c", "exit 3"]).code(), 3);
    run(&sb, &["--memory", "lots", "busybox", "true"]).fails(125, "--memory");
    run(&sb, &["busybox", "/etc/passwd"]).fails(126, "permission denied");
    run(&sb, &["busybox", "nosuchcommand"]).fails(127, "executable file not found in $PATH");
    run(&sb, &["busybox", "/no/such/file"]).fails(127, "no such file or directory");
    // Signals: PID 1 is protected from them, so --init puts the shell under minibox's init.
    assert_eq!(
        run(&sb, &["--init", "busybox", "sh", "-c", "kill -KILL $$"]).code(),
        137
    );
    assert_eq!(
        run(&sb, &["--init", "busybox", "sh", "-c", "kill -TERM $$"]).code(),
        143
    );
    sb.finish();
}

/// Sends `signal` to `minibox run` (with `--init` or not) and checks that a trap in the container's
/// command saw it and that its exit code came back.
fn signal_reaches_a_trap(init: bool, signal: Signal) {
    let sb = sandbox();
    let name = signal.as_str().trim_start_matches("SIG");
    let script = format!(
        "trap 'echo got {name}; exit 7' {name}; echo ready; while true; do sleep 0.05; done"
    );
    let mut args = vec!["busybox", "sh", "-c", &script];
    if init {
        args.insert(0, "--init");
    }
    let (child, out) = spawn_until(&sb, &args, "ready");
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let (code, rest) = finish(child, out);
    assert_eq!(code, 7, "{rest}");
    assert!(rest.contains(&format!("got {name}")), "{rest}");
    sb.finish();
}

#[test]
fn sigterm_sent_to_run_reaches_a_trap_in_pid_1() {
    signal_reaches_a_trap(false, Signal::SIGTERM);
}

#[test]
fn signals_reach_the_command_through_init() {
    signal_reaches_a_trap(true, Signal::SIGUSR1);
}

#[test]
fn the_command_starts_with_no_signal_ignored_or_blocked() {
    let sb = sandbox();
    // What starts `minibox run` may ignore signals (a shell does for SIGINT and SIGQUIT in a job
    // started with `&`): the container must not inherit that, or its shell cannot trap them.
    for init in ["", "--init"] {
        let script = format!(
            "trap '' INT QUIT HUP; exec \"$MINIBOX\" run --rm --network none {init} busybox \
             grep -E '^Sig(Blk|Ign)' /proc/self/status"
        );
        let out = sb
            .exec("sh", ["-c", &script])
            .env("MINIBOX", minibox_tests::minibox_bin())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{init}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    sb.finish();
}

/// Zombies in the container's cgroup after an orphan exited, seen from the host.
fn zombies_after_orphan_exits(sb: &Sandbox, init: bool) -> usize {
    let mut args = vec![];
    if init {
        args.push("--init");
    }
    // The orphan is reparented to PID 1, which (without --init) is `sleep`: it never reaps.
    args.extend([
        "busybox",
        "sh",
        "-c",
        "(sleep 0.2 &); echo ready; exec sleep 1.5",
    ]);
    let (child, out) = spawn_until(sb, &args, "ready");
    let cg = container_cgroup(sb, "pids");
    std::thread::sleep(Duration::from_millis(800));
    // Zombies have left the cgroup already: look at the children of its processes.
    let zombies = read(&cg.join("cgroup.procs"))
        .lines()
        .flat_map(|pid| {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"));
            children
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.rsplit(") ").next().unwrap_or("").starts_with('Z'))
                .unwrap_or(false)
        })
        .count();
    let (code, _) = finish(child, out);
    assert_eq!(code, 0);
    zombies
}

#[test]
fn init_reaps_zombies() {
    let sb = sandbox();
    assert_eq!(
        zombies_after_orphan_exits(&sb, false),
        1,
        "without --init the orphan stays a zombie"
    );
    assert_eq!(zombies_after_orphan_exits(&sb, true), 0, "--init reaps it");
    let ps = run(
        &sb,
        &["--init", "busybox", "sh", "-c", "echo $$; cat /proc/1/comm"],
    )
    .ok();
    assert_eq!(ps.lines().collect::<Vec<_>>(), ["2", "minibox"], "{ps}");
    sb.finish();
}

#[test]
fn memory_limit_oom_kill_is_reported_as_137() {
    let sb = sandbox();
    let out = run(&sb, &["--memory", "16m", "busybox", "tail", "/dev/zero"]);
    assert_eq!(out.code(), 137, "{out}");
    assert!(out.stderr().contains("OOM killer"), "{out}");
    sb.finish();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let sb = sandbox();
    let script = "i=0; while [ $i -lt 40 ]; do sleep 10 & i=$((i+1)); done; echo spawned";
    let out = run(&sb, &["--pids-limit", "10", "busybox", "sh", "-c", script]);
    assert!(out.stderr().contains("can't fork"), "{out}");
    assert!(!out.stdout().contains("spawned"), "{out}");
    sb.finish();
}

#[test]
fn limits_are_visible_in_the_cgroup() {
    let sb = sandbox();
    let (mut child, out) = {
        let mut c = sb
            .command(&run_args(&[
                "-i",
                "--cpus",
                "0.5",
                "--memory",
                "64m",
                "--pids-limit",
                "50",
                "busybox",
                "sh",
                "-c",
                "echo ready; read x",
            ]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        (c, out)
    };
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        let cg = container_cgroup(&sb, "");
        assert_eq!(read(&cg.join("cpu.max")), "50000 100000");
        assert_eq!(read(&cg.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(&cg.join("pids.max")), "50");
    } else {
        let cpu = container_cgroup(&sb, "cpu");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        let mem = container_cgroup(&sb, "memory");
        assert_eq!(
            read(&mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        assert_eq!(read(&container_cgroup(&sb, "pids").join("pids.max")), "50");
    }
    // Inside, the cgroup namespace makes the container's cgroup the root.
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    drop(out);
    let view = run(&sb, &["busybox", "cat", "/proc/self/cgroup"]).ok();
    assert!(view.lines().all(|l| l.ends_with(":/")), "{view}");
    sb.finish();
}

#[test]
fn volumes_bind_read_write_and_read_only() {
    let sb = sandbox();
    let host = sb.root().join("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let out = run(
        &sb,
        &[
            "-v",
            &rw,
            "busybox",
            "sh",
            "-c",
            "cat /data/in; echo from container > /data/out",
        ],
    )
    .ok();
    assert_eq!(out, "from host\n");
    assert_eq!(read(&host.join("out")), "from container");

    let ro = format!("{}:/deep/ro:ro", host.display());
    let out = run(
        &sb,
        &[
            "-v",
            &ro,
            "busybox",
            "sh",
            "-c",
            "cat /deep/ro/in; touch /deep/ro/x",
        ],
    );
    assert_ne!(out.code(), 0);
    assert!(out.stdout().contains("from host"), "{out}");
    assert!(out.stderr().contains("Read-only file system"), "{out}");
    assert!(!host.join("x").exists());

    let file = format!("{}:/etc/motd:ro", host.join("in").display());
    assert_eq!(
        run(&sb, &["-v", &file, "busybox", "cat", "/etc/motd"]).ok(),
        "from host\n"
    );

    run(&sb, &["-v", "rel/ative:/data", "busybox", "true"]).fails(125, "invalid volume");
    std::fs::remove_dir_all(&host).unwrap();
    sb.finish();
}

#[test]
fn volume_targets_resolve_inside_the_container() {
    let sb = sandbox();
    // An image with a symlink climbing out of its root and an absolute one.
    let extra = sb.root().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../tmp", extra.join("escape")).unwrap();
    std::os::unix::fs::symlink("/tmp", extra.join("abs")).unwrap();
    let tar = sb.root().join("linked.tar");
    std::fs::copy(minibox_tests::fixtures::busybox_tarball(), &tar).unwrap();
    sb.sh(&format!(
        "tar -rf {} -C {} escape abs",
        tar.display(),
        extra.display()
    ))
    .ok();
    sb.minibox(&["import", tar.to_str().unwrap(), "linked"])
        .ok();

    let host = sb.root().join("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "inside\n").unwrap();
    let unique = format!("minibox-escape-{}", std::process::id());
    let escape = format!("{}:/escape/{unique}", host.display());
    run(&sb, &["-v", &escape, "linked", "true"]).fails(125, "points outside the container");
    let abs = format!("{}:/abs/{unique}", host.display());
    let out = run(
        &sb,
        &["-v", &abs, "linked", "cat", &format!("/tmp/{unique}/f")],
    )
    .ok();
    assert_eq!(out, "inside\n");
    assert!(
        !Path::new("/tmp").join(&unique).exists(),
        "the target escaped to the host"
    );
    std::fs::remove_dir_all(&host).unwrap();
    sb.finish();
}

#[test]
fn user_workdir_and_environment() {
    let sb = sandbox();
    let tar = minibox_tests::fixtures::busybox_tarball();
    sb.minibox(&[
        "import",
        tar.to_str().unwrap(),
        "configured",
        "--change",
        "ENV FROM_IMAGE=yes SHARED=image",
        "--change",
        "WORKDIR /home",
        "--change",
        "USER app",
    ])
    .ok();

    assert_eq!(
        run(&sb, &["-u", "app", "busybox", "id"]).ok(),
        "uid=1000(app) gid=1000(app)\n"
    );
    assert_eq!(
        run(
            &sb,
            &["-u", "1234:55", "busybox", "sh", "-c", "id -u; id -g"]
        )
        .ok(),
        "1234\n55\n"
    );
    let image_user = run(&sb, &["configured", "sh", "-c", "id -un; pwd; echo $HOME"]).ok();
    assert_eq!(image_user, "app\n/home\n/home/app\n");
    assert_eq!(
        run(&sb, &["-u", "root", "configured", "id", "-u"]).ok(),
        "0\n"
    );

    assert_eq!(run(&sb, &["-w", "/tmp", "busybox", "pwd"]).ok(), "/tmp\n");
    assert_eq!(
        run(&sb, &["-w", "/new/dir", "busybox", "pwd"]).ok(),
        "/new/dir\n"
    );

    let env = run(
        &sb,
        &["-e", "SHARED=cli", "-e", "EXTRA=1", "configured", "env"],
    )
    .ok();
    for want in [
        "FROM_IMAGE=yes",
        "SHARED=cli",
        "EXTRA=1",
        "HOME=/home/app",
        "PATH=/usr/local/sbin:",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(want)),
            "env lacks {want}:\n{env}"
        );
    }
    assert!(!env.contains("SHARED=image"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("HOSTNAME=")), "{env}");
    sb.finish();
}

#[test]
fn entrypoint_and_command() {
    let sb = sandbox();
    assert_eq!(
        run(&sb, &["--entrypoint", "echo", "busybox", "a", "b"]).ok(),
        "a b\n"
    );
    run(&sb, &["busybox"]).fails(125, "no command");
    sb.finish();
}

#[test]
fn stdin_passes_through_with_i_and_is_empty_without() {
    let sb = sandbox();
    let mut child = sb
        .command(&run_args(&["-i", "busybox", "cat"]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(
        run(&sb, &["busybox", "cat"]).ok(),
        "",
        "without -i stdin is /dev/null"
    );
    sb.finish();
}

#[test]
fn a_reader_that_goes_away_stops_a_writing_container() {
    let sb = sandbox();
    // As with a plain pipe: once `head` has its line, the container's writes fail (SIGPIPE).
    let script = "\"$MINIBOX\" run --rm --network none busybox yes | head -n 1";
    let out = sb
        .exec("sh", ["-c", script])
        .env("MINIBOX", minibox_tests::minibox_bin())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "y\n");
    sb.finish();
}

#[test]
fn tty_gives_the_container_a_pty() {
    let sb = sandbox();
    let out = sb
        .terminal(
            "stty rows 33 cols 101; $MINIBOX run --rm --network none -t busybox sh -c \
             'tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; stty size; echo $TERM'",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{text}");
    for want in ["/dev/pts/0", "both-tty", "33 101", "xterm"] {
        assert!(text.contains(want), "lacks {want}:\n{text}");
    }

    // -it: what is typed reaches the container's shell and its exit code comes back.
    let mut script = sb
        .terminal("$MINIBOX run --rm --network none -it busybox sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    script
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo typed-$((40+2)); exit 5\n")
        .unwrap();
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("typed-42"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    sb.finish();
}

#[test]
fn the_pty_follows_the_terminal_size() {
    let sb = sandbox();
    let out = sb
        .terminal(
            // The container says when it has read the first size (a file in a shared
            // directory) and then waits for the size to change: no sleeps to race under load.
            "stty rows 30 cols 90; mkdir -p /run/winch; \
             $MINIBOX run --rm --network none -t -v /run/winch:/w busybox sh -c \
               'stty size; touch /w/read; while [ \"$(stty size)\" = \"30 90\" ]; do sleep 0.05; done; stty size' & \
             until [ -e /run/winch/read ]; do sleep 0.05; done; \
             stty rows 20 cols 50; kill -WINCH $!; wait",
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["30 90", "20 50"],
        "{text}"
    );
    sb.finish();
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_container() {
    let sb = sandbox();
    let mut script = sb
        .terminal(
            "$MINIBOX run --rm --network none -it busybox sh -c \
             'trap \"echo got-INT; exit 3\" INT; echo ready; while :; do sleep 0.05; done'",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(script.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ready") {
        assert!(out.read_line(&mut seen).unwrap() > 0, "no ready: {seen}");
    }
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    out.read_to_string(&mut seen).unwrap();
    drop(stdin);
    let status = script.wait().unwrap();
    assert!(seen.contains("got-INT"), "{seen}");
    assert_eq!(status.code(), Some(3), "{seen}");
    sb.finish();
}

#[test]
fn bad_input_fails_cleanly() {
    let sb = sandbox();
    run(&sb, &["nosuchimage", "true"]).fails(125, "nosuchimage");
    run(&sb, &["-u", "nosuchuser", "busybox", "true"]).fails(125, "unable to find user nosuchuser");
    run(&sb, &["-u", "app:nogroupatall", "busybox", "true"]).fails(125, "unable to find group");
    run(&sb, &["-w", "/etc/passwd", "busybox", "true"]).fails(125, "not a directory");
    run(&sb, &["-w", "relative", "busybox", "true"]).fails(125, "absolute");
    run(&sb, &["--memory", "12x", "busybox", "true"]).fails(125, "invalid --memory");
    run(&sb, &["--memory", "1k", "busybox", "true"]).fails(125, "minimum");
    run(&sb, &["--cpus", "lots", "busybox", "true"]).fails(125, "invalid --cpus");
    run(&sb, &["--cpus", "0", "busybox", "true"]).fails(125, "invalid --cpus");
    run(&sb, &["-e", "=x", "busybox", "true"]).fails(125, "environment");
    run(&sb, &["--name", "bad/name", "busybox", "true"]).fails(125, "invalid container name");
    run(&sb, &["busybox", "nosuchcommand"]).fails(127, "nosuchcommand");
    for out in [
        run(&sb, &["-u", "nosuchuser", "busybox", "true"]),
        run(&sb, &["busybox", "nosuch"]),
    ] {
        assert_eq!(out.stderr().lines().count(), 1, "one line:\n{out}");
    }
    sb.finish();
}

#[test]
fn names_are_unique_while_in_use() {
    let sb = sandbox();
    let (child, out) = spawn_until(
        &sb,
        &[
            "--name",
            "web",
            "-i",
            "busybox",
            "sh",
            "-c",
            "echo ready; sleep 1",
        ],
        "ready",
    );
    run(&sb, &["--name", "web", "busybox", "true"]).fails(125, "already in use");
    let (code, _) = finish(child, out);
    assert_eq!(code, 0);
    run(&sb, &["--name", "web", "busybox", "true"]).ok();
    sb.finish();
}

#[test]
fn without_rm_the_record_stays_but_nothing_runs() {
    let sb = sandbox();
    sb.minibox(&["run", "--network", "none", "busybox", "sh", "-c", "exit 4"]);
    let dirs: Vec<_> = std::fs::read_dir(sb.root().join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1);
    let dir = dirs[0].path();
    assert!(dir.join("image").exists());
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let state =
        std::fs::read_to_string(sb.path(&format!("/run/minibox/containers/{id}/state.json")))
            .unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["status"], "exited");
    assert_eq!(state["exit_code"], 4);
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

/// Set-up reads nothing whose size grows with the containers running: beside running
/// containers (each with its /run/netns pin and /etc tmpfs in the host's mount namespace), a
/// `run --rm -p` with limits never opens a mountinfo (the cgroup controllers and the mounts
/// under the container's directory are found without it), and the container still gets its
/// limits, read from its own cgroup.
#[test]
fn scale_run_reads_no_mountinfo_and_keeps_its_limits() {
    let sb = sandbox();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let port = format!("{}:80", 18090 + i);
            let out = sb.minibox(&["run", "-d", "-p", &port, "busybox", "sleep", "100"]);
            out.ok().trim().to_string()
        })
        .collect();
    let trace = sb.root().join("run.trace");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limits = match v2 {
        true => "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
        false => "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max",
    };
    let mut strace = sb.exec(
        "strace",
        ["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"],
    );
    strace.arg(&trace).arg(minibox_tests::minibox_bin()).args([
        "run",
        "--rm",
        "-p",
        "18099:80",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        "busybox",
        "sh",
        "-c",
        limits,
    ]);
    let out = Out {
        what: "strace minibox run --rm -p".into(),
        output: strace.output().unwrap(),
    };
    assert_eq!(
        out.ok().split_whitespace().collect::<Vec<_>>(),
        ["67108864", "50"]
    );
    let opened = read(&trace);
    // The trace saw the set-up: the memory limit was written through it.
    let limit_file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert!(opened.contains(limit_file), "{opened}");
    assert!(!opened.contains("mountinfo"), "{opened}");
    for id in &ids {
        sb.minibox(&["rm", "-f", id]).ok();
    }
    sb.finish();
}

/// The mounts of the sandbox host, as (mount point, filesystem type).
fn host_mounts(sb: &Sandbox) -> Vec<(String, String)> {
    let info = read(Path::new(&format!("/proc/{}/mountinfo", sb.holder_pid())));
    info.lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let (_, after) = l.split_once(" - ")?;
            Some((point.to_string(), after.split(' ').next()?.to_string()))
        })
        .collect()
}

/// A running container puts no mount on the filesystem of the image store and the containers'
/// writable layers, where overlay walks every mount each time it mounts a root filesystem (a
/// thousand running made each set-up pay for a thousand): its /etc files' tmpfs is in its
/// volatile dir, under the runroot, and still holds what the container reads.
#[test]
fn a_running_containers_etc_files_are_mounted_under_the_runroot_not_the_root() {
    let sb = sandbox();
    // On the default network: its /etc/hosts gets its address once it is wired.
    let id = sb
        .minibox(&["run", "-d", "busybox", "sleep", "100"])
        .ok()
        .trim()
        .to_string();
    let mounts = host_mounts(&sb);
    let under_root: Vec<_> = mounts
        .iter()
        .filter(|(point, _)| Path::new(point).starts_with(sb.root()))
        .collect();
    assert!(under_root.is_empty(), "{under_root:?}");
    let etc = format!("/run/minibox/containers/{id}/etc");
    assert!(
        mounts.contains(&(etc.clone(), "tmpfs".to_string())),
        "no tmpfs on {etc}: {mounts:?}"
    );
    let seen = sb
        .minibox(&["exec", &id, "cat", "/etc/hostname", "/etc/hosts"])
        .ok();
    assert!(seen.starts_with(&format!("{}\n", &id[..12])), "{seen}");
    assert!(seen.contains(&format!("\t{}", &id[..12])), "{seen}");
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

/// The super options of the running container `name`'s root mount, from its PID 1's mountinfo.
fn root_mount_options(sb: &Sandbox, name: &str) -> String {
    let pid = sb.minibox(&["inspect", "-f", "{{.State.Pid}}", name]).ok();
    let info = read(Path::new(&format!("/proc/{}/mountinfo", pid.trim())));
    let root = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in:\n{info}"));
    // `... - overlay overlay SUPER_OPTIONS`
    let (_, after) = root.split_once(" - ").unwrap();
    assert!(after.starts_with("overlay "), "{root}");
    after.rsplit(' ').next().unwrap().to_string()
}

/// A `--rm` container's writable layer is mounted `volatile` (never synced: nothing keeps it
/// after a crash, and its exit does not wait for the disk); a kept container's is not.
#[test]
fn only_an_rm_containers_overlay_is_volatile() {
    let sb = sandbox();
    for (name, rm) in [("gone", true), ("kept", false)] {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        if rm {
            args.push("--rm");
        }
        args.extend(["busybox", "sleep", "100"]);
        sb.minibox(&args).ok();
        let options = root_mount_options(&sb, name);
        // `fsync=volatile` since Linux 6.x, `volatile` before.
        let volatile = options
            .split(',')
            .any(|o| o == "volatile" || o == "fsync=volatile");
        assert_eq!(volatile, rm, "{name}: {options}");
    }
    sb.minibox(&["rm", "-f", "gone", "kept"]).ok();
    sb.finish();
}

/// The kernel refuses to mount a volatile layer again; a `--rm` container mounted more than once
/// in a boot (cp into it while created, then its start) still works: the mark goes first.
#[test]
fn an_rm_container_created_then_copied_into_then_started() {
    let sb = sandbox();
    sb.minibox(&[
        "create",
        "--rm",
        "--name",
        "c",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat /in /in2; exec sleep 100",
    ])
    .ok();
    let file = sb.root().join("in");
    std::fs::write(&file, "copied\n").unwrap();
    sb.minibox(&["cp", file.to_str().unwrap(), "c:/in"]).ok();
    sb.minibox(&["cp", file.to_str().unwrap(), "c:/in2"]).ok();
    sb.minibox(&["start", "c"]).ok();
    let start = Instant::now();
    while sb.minibox(&["logs", "c"]).ok() != "copied\ncopied\n" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the container read nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.minibox(&["rm", "-f", "c"]).ok();
    std::fs::remove_file(file).unwrap();
    sb.finish();
}

/// `run --rm` returns once the container is gone for the user, its removal finishing in the
/// background: at once its name is free for the next `run --name`, `ps -a` and `logs` no longer
/// know it, and its published port is free again; its exit code is `run`'s.
#[test]
fn an_rm_container_is_gone_when_run_returns() {
    let sb = sandbox();
    for round in 0..3 {
        let out = sb.minibox(&[
            "run", "--rm", "--name", "x", "-p", "8080:80", "busybox", "sh", "-c", "exit 3",
        ]);
        assert_eq!(out.code(), 3, "round {round}: {}", out.stderr());
        let ps = sb.minibox(&["ps", "-a", "--format", "{{.Names}}"]).ok();
        assert!(
            !ps.contains('x'),
            "round {round}: ps -a still shows it: {ps}"
        );
        sb.minibox(&["logs", "x"]).fails(1, "no such container: x");
    }
    // Kept this time: the name is free at once for a container that stays.
    sb.minibox(&["run", "--name", "x", "--network", "none", "busybox", "true"])
        .ok();
    sb.minibox(&["rm", "x"]).ok();
    // Its image is free at once too (`rmi` waits for what the removal still holds).
    run(&sb, &["busybox", "true"]).ok();
    sb.minibox(&["rmi", "busybox"]).ok();
    sb.finish();
}
