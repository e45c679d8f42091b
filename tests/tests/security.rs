//! The attack list: each defence of minibox's container boundary, tested by performing the attack
//! from a container and showing that it fails, with nothing left behind.

use minibox_tests::{Out, Sandbox};

// --- Seccomp: Docker's default profile, the options, the attack of issue #10. ----------------

const EPERM: i32 = 1;
const ENOSYS: i32 = 38;

/// Every call `probe syscalls` makes (see tests/probe/main.rs), in its order.
const CALLS: &[&str] = &[
    "unshare",
    "mount",
    "umount2",
    "pivot_root",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "userfaultfd",
    "perf_event_open",
    "personality",
    "bpf",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "clock_settime",
    "settimeofday",
    "reboot",
    "swapon",
    "acct",
    "open_by_handle_at",
    "syslog",
    "iopl",
    "get_mempolicy",
    "kcmp",
    "fsopen",
    "clone3",
    "socket_vsock",
    "ptrace",
];

/// Docker's answer under its default profile with the default capabilities: EPERM (its
/// defaultErrnoRet), ENOSYS for clone3 (so that libcs fall back to clone, whose flags the
/// profile checks), and ptrace allowed (from kernel 4.8, as Docker does).
fn docker_errno(call: &str) -> i32 {
    match call {
        "clone3" => ENOSYS,
        "ptrace" => 0,
        _ => EPERM,
    }
}

/// The calls the probe makes with arguments the kernel refuses (or accepts) before it checks a
/// capability: without a filter their answer is never the filter's.
const KERNEL_ANSWERS: &[&str] = &[
    "unshare",
    "mount",
    "umount2",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "userfaultfd",
    "perf_event_open",
    "personality",
    "bpf",
    "clock_settime",
    "settimeofday",
    "open_by_handle_at",
    "get_mempolicy",
    "kcmp",
    "clone3",
    "socket_vsock",
];

/// What Docker's profile allows once CAP_SYS_ADMIN is added (of the calls the probe makes and
/// whose answer then needs no other capability).
const SYS_ADMIN_ALLOWS: &[&str] = &[
    "unshare",
    "mount",
    "umount2",
    "setns",
    "perf_event_open",
    "bpf",
    "fsopen",
    "clone3",
];

fn probe_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_probe();
    sb
}

/// `run --rm --network none OPTS... probe ARGS...`
fn run_probe(sb: &Sandbox, opts: &[&str], args: &[&str]) -> Out {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(opts);
    all.push("probe");
    all.extend_from_slice(args);
    sb.minibox(&all)
}

/// `probe syscalls` under `opts`: each call's errno, in the probe's order, and the `Seccomp:`
/// mode of the probe's process.
fn syscalls(sb: &Sandbox, opts: &[&str]) -> (Vec<(String, i32)>, String) {
    let out = run_probe(
        sb,
        opts,
        &[
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; probe syscalls",
        ],
    )
    .ok();
    let mut lines = out.lines();
    let mode = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let results: Vec<(String, i32)> = lines
        .map(|l| {
            let (name, errno) = l.split_once(' ').unwrap();
            (name.to_string(), errno.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = results.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, CALLS, "the probe's calls under {opts:?}");
    (results, mode)
}

#[test]
fn seccomp_default_profile_refuses_what_docker_refuses() {
    let sb = probe_sandbox();
    let (results, mode) = syscalls(&sb, &[]);
    assert_eq!(mode, "2", "no seccomp filter");
    for (call, errno) in &results {
        assert_eq!(
            *errno,
            docker_errno(call),
            "{call} under the default profile"
        );
    }
    sb.finish();
}

#[test]
fn seccomp_unconfined_lets_every_call_reach_the_kernel() {
    let sb = probe_sandbox();
    let (results, mode) = syscalls(&sb, &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(mode, "0");
    for (call, errno) in &results {
        if KERNEL_ANSWERS.contains(&call.as_str()) {
            assert_ne!(*errno, docker_errno(call), "{call} was filtered");
        }
    }
    // Privileged is unconfined too, and with every capability no call gets EPERM any more.
    let (results, mode) = syscalls(&sb, &["--privileged"]);
    assert_eq!(mode, "0");
    for (call, errno) in &results {
        if *call != "ptrace" {
            assert_ne!(*errno, EPERM, "{call} refused with --privileged");
        }
    }
    sb.finish();
}

#[test]
fn seccomp_cap_sys_admin_allows_what_docker_then_allows() {
    let sb = probe_sandbox();
    let (results, mode) = syscalls(&sb, &["--cap-add", "SYS_ADMIN"]);
    assert_eq!(mode, "2");
    for (call, errno) in &results {
        if SYS_ADMIN_ALLOWS.contains(&call.as_str()) {
            assert_ne!(
                *errno,
                docker_errno(call),
                "{call} still filtered with SYS_ADMIN"
            );
        } else if *call != "syslog" {
            // syslog is allowed too, but still needs CAP_SYSLOG: EPERM either way.
            assert_eq!(*errno, docker_errno(call), "{call} with SYS_ADMIN");
        }
    }
    sb.finish();
}

/// Issue #10's attack: user + mount + cgroup namespaces, 0 mapped to 0, the memory controller
/// mounted and its limit lifted, then 100 MB allocated under `--memory 32m`.
#[test]
fn seccomp_stops_the_cgroup_remount_escape() {
    let sb = probe_sandbox();
    let out = run_probe(&sb, &["--memory", "32m"], &["probe", "cgroup-escape"]);
    assert_eq!(out.code(), 137, "not OOM-killed:\n{out}");
    assert!(out.stdout().starts_with("unshare 1\n"), "{out}");
    assert!(!out.stdout().contains("allocated"), "{out}");
    // The attack's first step is what the filter stops: unconfined, it passes.
    let out = run_probe(
        &sb,
        &["--memory", "32m", "--security-opt", "seccomp=unconfined"],
        &["probe", "cgroup-escape"],
    );
    assert!(out.stdout().starts_with("unshare ok\n"), "{out}");
    sb.finish();
}

#[test]
fn seccomp_applies_to_run_exec_and_init() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let status = "grep Seccomp: /proc/self/status";
    let run = |opts: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(opts);
        all.extend(["busybox", "sh", "-c", status]);
        sb.minibox(&all).ok()
    };
    assert_eq!(run(&[]).trim(), "Seccomp:\t2");
    assert_eq!(run(&["--init"]).trim(), "Seccomp:\t2");
    assert_eq!(run(&["-u", "app"]).trim(), "Seccomp:\t2");
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--init",
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
    let id = id.trim();
    // exec's process, and --init's PID 1 (which never execs).
    let out = sb.minibox(&["exec", id, "sh", "-c", status]).ok();
    assert_eq!(out.trim(), "Seccomp:\t2");
    let out = sb
        .minibox(&["exec", id, "grep", "Seccomp:", "/proc/1/status"])
        .ok();
    assert_eq!(out.trim(), "Seccomp:\t2");
    sb.minibox(&["rm", "-f", id]).ok();
    sb.finish();
}

#[test]
fn seccomp_custom_profile_and_inspect() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let profile = sb.root().join("no-mkdir.json");
    let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#;
    std::fs::write(&profile, json).unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = sb.minibox(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        "touch /tmp/f && echo touched; mkdir /tmp/d",
    ]);
    assert_eq!(out.code(), 1, "{out}");
    assert_eq!(out.stdout(), "touched\n");
    assert!(out.stderr().contains("Operation not permitted"), "{out}");

    // inspect shows the options as Docker does: a profile by its content.
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--security-opt",
            &opt,
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "true",
        ])
        .ok();
    sb.minibox(&["wait", id.trim()]).ok();
    let doc: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", id.trim()]).ok()).unwrap();
    assert_eq!(
        doc[0]["HostConfig"]["SecurityOpt"],
        serde_json::json!([format!("seccomp={json}"), "no-new-privileges"])
    );
    sb.minibox(&["rm", id.trim()]).ok();
    let id = sb
        .minibox(&["run", "-d", "--network", "none", "busybox", "true"])
        .ok();
    sb.minibox(&["wait", id.trim()]).ok();
    let doc: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", id.trim()]).ok()).unwrap();
    assert_eq!(doc[0]["HostConfig"]["SecurityOpt"], serde_json::Value::Null);
    sb.minibox(&["rm", id.trim()]).ok();
    sb.finish();
}

#[test]
fn seccomp_bad_profiles_are_refused_with_nothing_left() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let run = |opt: &str| {
        sb.minibox(&[
            "run",
            "--rm",
            "--name",
            "bad",
            "--security-opt",
            opt,
            "busybox",
            "true",
        ])
    };
    let broken = sb.root().join("broken.json");
    std::fs::write(
        &broken,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"#,
    )
    .unwrap();
    run(&format!("seccomp={}", broken.display())).fails(
        125,
        &format!("invalid seccomp profile {}: ", broken.display()),
    );
    run("seccomp=/nonexistent/profile.json").fails(
        125,
        "reading the seccomp profile /nonexistent/profile.json: No such file",
    );
    run("seccomp").fails(125, "invalid --security-opt \"seccomp\"");
    run("apparmor=unconfined").fails(125, "invalid --security-opt \"apparmor=unconfined\"");
    // Valid JSON that only the compiler refuses: found once the container is being set up.
    let notify = sb.root().join("notify.json");
    std::fs::write(
        &notify,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    run(&format!("seccomp={}", notify.display())).fails(125, "SCMP_ACT_NOTIFY");
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    sb.finish();
}
