//! `run`'s limits end to end: `--ulimit`, `--memory-swap`, `--cpu-shares`, `--cpuset-cpus`,
//! `--shm-size`, `--device`, `--sysctl`, `--group-add`, `--pids-limit -1`, `--pid/--ipc/--uts`
//! and `update`, each shown where the container sees it (its rlimits, its cgroup files, its
//! device nodes and mounts, its namespaces), and bad values refused in one line with nothing
//! made.

use std::path::Path;

use minibox_tests::{Out, Sandbox};

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `minibox run --rm --network none ARGS...` (unless ARGS choose a network).
fn run(sb: &Sandbox, args: &[&str]) -> Out {
    let mut all = vec!["run", "--rm"];
    if !args.contains(&"--network") {
        all.extend(["--network", "none"]);
    }
    all.extend_from_slice(args);
    sb.minibox(&all)
}

/// The hard RLIMIT_NOFILE this test (and so minibox) runs under.
fn nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into our own struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_max
}

/// Whether the host is cgroup v2 only (else v1 or hybrid, like this VM).
fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A file of the container's own cgroup as it sees it (`/sys/fs/cgroup`, read-only), by its v1
/// controller and file or its v2 file.
fn cgroup_file(controller: &str, v1: &str, v2_file: &str) -> String {
    match v2() {
        true => format!("/sys/fs/cgroup/{v2_file}"),
        false => format!("/sys/fs/cgroup/{controller}/{v1}"),
    }
}

/// Asserts that nothing was recorded: a refused `run` leaves no container.
#[track_caller]
fn no_container(sb: &Sandbox) {
    let ps = sb.minibox(&["ps", "-a", "-q"]).ok();
    assert!(ps.trim().is_empty(), "a container was left: {ps}");
}

#[test]
fn ulimit_nofile_is_what_the_process_sees() {
    let sb = sandbox();
    // As redis reads it (getrlimit) and as /proc shows it.
    let out = run(
        &sb,
        &[
            "--ulimit",
            "nofile=4096:8192",
            "--ulimit",
            "nproc=500",
            "busybox",
            "sh",
            "-c",
            "ulimit -Sn; ulimit -Hn; grep -e 'open files' -e 'processes' /proc/self/limits",
        ],
    )
    .ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["4096"], "{out}");
    assert_eq!(lines[1], ["8192"], "{out}");
    assert!(
        out.contains("Max processes             500                  500"),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l[..] == ["Max", "open", "files", "4096", "8192", "files"]),
        "{out}"
    );

    // The default: Docker's 1048576, within the hard limit minibox itself has (it may not raise
    // it without CAP_SYS_RESOURCE), soft as high as hard, so redis keeps its 10000 clients.
    let expected = nofile_hard().min(1 << 20).to_string();
    let out = run(&sb, &["busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn"]).ok();
    assert_eq!(out, format!("{expected}\n{expected}\n"));
    sb.finish();
}

#[test]
fn bad_ulimits_fail_in_one_line_and_make_nothing() {
    let sb = sandbox();
    let above = (nofile_hard() + 1).to_string();
    let raise = format!("nofile={above}:{above}");
    let mut cases = vec![
        ("nofiles=10", "unknown limit \"nofiles\""),
        ("nofile=10:5", "above the hard limit"),
        ("nofile=lots", "not a number"),
        ("nofile", "expected NAME=SOFT[:HARD]"),
    ];
    // Raising needs CAP_SYS_RESOURCE, which this machine's root lacks: refused, never lowered
    // quietly.
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap() & (1 << 24) != 0)
        .unwrap();
    if !has_sys_resource && nofile_hard() < u64::MAX {
        cases.push((&raise, "needs CAP_SYS_RESOURCE"));
    }
    for (value, why) in cases {
        let out = run(&sb, &["--ulimit", value, "busybox", "true"]);
        let err = out.fails(125, why);
        assert_eq!(err.lines().count(), 1, "one line:\n{out}");
        assert!(err.starts_with("minibox: invalid --ulimit"), "{out}");
    }
    no_container(&sb);
    sb.finish();
}

#[test]
fn memory_swap_cpu_shares_cpuset_and_pids_in_the_containers_cgroup() {
    let sb = sandbox();
    let swap = cgroup_file("memory", "memory.memsw.limit_in_bytes", "memory.swap.max");
    let shares = cgroup_file("cpu", "cpu.shares", "cpu.weight");
    let cpus = cgroup_file("cpuset", "cpuset.cpus", "cpuset.cpus");
    let pids = cgroup_file("pids", "pids.max", "pids.max");
    let script = format!("cat {swap} {shares} {cpus} {pids}");
    let out = run(
        &sb,
        &[
            "--memory",
            "64m",
            "--memory-swap",
            "96m",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "-1",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    )
    .ok();
    let values: Vec<&str> = out.lines().collect();
    // v1: memory plus swap, as given; v2: the swap alone. cpu.weight is cpu.shares converted.
    let (swap_value, weight) = match v2() {
        true => ((32u64 << 20).to_string(), "20"),
        false => ((96u64 << 20).to_string(), "512"),
    };
    assert_eq!(values, [swap_value.as_str(), weight, "0", "max"], "{out}");

    // Docker's default swap: as much again as --memory; -1: unlimited.
    let out = run(&sb, &["--memory", "64m", "busybox", "cat", &swap]).ok();
    let default = match v2() {
        true => 64u64 << 20,
        false => 128u64 << 20,
    };
    assert_eq!(out.trim(), default.to_string());
    let out = run(
        &sb,
        &[
            "--memory",
            "64m",
            "--memory-swap",
            "-1",
            "busybox",
            "cat",
            &swap,
        ],
    )
    .ok();
    assert!(
        out.trim() == "max" || out.trim().parse::<u64>().unwrap() > 1 << 60,
        "{out}"
    );

    for (args, why) in [
        (&["--memory-swap", "128m"][..], "needs a --memory limit"),
        (
            &["--memory", "64m", "--memory-swap", "32m"],
            "at least --memory",
        ),
        (&["--cpu-shares", "1"], "invalid --cpu-shares 1"),
        (&["--cpuset-cpus", "0-4096"], "online"),
        (&["--cpuset-cpus", "x"], "invalid --cpuset-cpus"),
        (&["--shm-size", "big"], "invalid --shm-size"),
    ] {
        let mut all = args.to_vec();
        all.extend(["busybox", "true"]);
        let out = run(&sb, &all);
        assert_eq!(out.fails(125, why).lines().count(), 1, "{out}");
    }
    no_container(&sb);
    sb.finish();
}

/// On cgroup v1 a new cpuset cgroup starts with no CPUs: a container's gets its parent's at its
/// creation (the parent's `cgroup.clone_children`, set by minibox on the parent it runs its
/// containers under), where writing them afterwards would rebuild the scheduler's domains.
/// `--cpuset-cpus` still gives its own (above). v2 cpusets inherit by design.
#[test]
fn a_containers_cpuset_is_its_parents_from_its_creation() {
    if v2() {
        return;
    }
    let sb = sandbox();
    let parent = Path::new("/sys/fs/cgroup/cpuset").join(sb.cgroup_parent());
    let read = |f: &str| std::fs::read_to_string(parent.join(f)).unwrap();
    let cpus = cgroup_file("cpuset", "cpuset.cpus", "");
    let mems = cgroup_file("cpuset", "cpuset.mems", "");
    // The first container makes the parent; from then on the parent hands its set down.
    for _ in 0..2 {
        let out = run(&sb, &["busybox", "cat", &cpus, &mems]).ok();
        let want = format!("{}{}", read("cpuset.cpus"), read("cpuset.mems"));
        assert_eq!(out, want);
        assert!(!read("cpuset.cpus").trim().is_empty());
    }
    assert_eq!(read("cgroup.clone_children").trim(), "1");
    sb.finish();
}

#[test]
fn shm_size_sizes_dev_shm() {
    let sb = sandbox();
    let out = run(
        &sb,
        &[
            "--shm-size",
            "128m",
            "busybox",
            "grep",
            " /dev/shm ",
            "/proc/mounts",
        ],
    )
    .ok();
    assert!(out.contains("size=131072k"), "{out}");
    let out = run(&sb, &["busybox", "grep", " /dev/shm ", "/proc/mounts"]).ok();
    assert!(out.contains("size=65536k"), "{out}");
    sb.finish();
}

#[test]
fn device_gives_the_node_and_only_the_access_asked() {
    let sb = sandbox();
    // /dev/loop-control (10:237): opening it does nothing by itself.
    let script = "ls -l /dev/lc; : < /dev/lc && echo read-ok; (: > /dev/lc) && echo write-ok; \
                  cat /sys/fs/cgroup/devices/devices.list 2>/dev/null | grep '10:237'; true";
    let out = run(
        &sb,
        &[
            "--device",
            "/dev/loop-control:/dev/lc:r",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let text = out.stdout() + &out.stderr();
    assert!(text.starts_with("crw-------"), "{out}");
    assert!(text.contains("10, 237"), "{out}");
    assert!(text.contains("read-ok"), "{out}");
    assert!(!text.contains("write-ok"), "the rule grants r only: {out}");
    assert!(text.contains("Operation not permitted"), "{out}");
    if !v2() {
        assert!(text.contains("c 10:237 r\n"), "the cgroup rule: {out}");
    }
    // Without --device, a node made at those numbers does not open: the attack fails.
    let out = run(
        &sb,
        &[
            "busybox",
            "sh",
            "-c",
            "mknod /tmp/lc c 10 237 && : < /tmp/lc && echo opened",
        ],
    );
    assert!(!out.stdout().contains("opened"), "{out}");
    assert!(out.stderr().contains("Operation not permitted"), "{out}");

    for (value, why) in [
        ("/etc/passwd:/dev/passwd", "not a device node"),
        ("/dev/null:/dev/n:rx", "not a combination of r, w and m"),
        ("/dev/nosuchdevice", "No such file"),
        ("/dev/null:/etc/null", "a device goes under /dev"),
    ] {
        let out = run(&sb, &["--device", value, "busybox", "true"]);
        assert_eq!(out.fails(125, why).lines().count(), 1, "{out}");
    }
    no_container(&sb);
    sb.finish();
}

#[test]
fn sysctl_sets_only_the_containers_own_namespaces() {
    let sb = sandbox();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let host_forward = sb.sh("cat /proc/sys/net/ipv4/ip_forward").ok();
    let out = run(
        &sb,
        &[
            "--sysctl",
            "kernel.shmmax=12345678",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "busybox",
            "cat",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    )
    .ok();
    assert_eq!(out, "12345678\n1\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
    assert_eq!(
        sb.sh("cat /proc/sys/net/ipv4/ip_forward").ok(),
        host_forward
    );

    // The attack: a host-wide knob, or a namespace the container shares, is refused.
    for (args, why) in [
        (
            &["--sysctl", "vm.swappiness=1"][..],
            "vm.swappiness is not namespaced",
        ),
        (&["--sysctl", "kernel.hostname=x"], "not namespaced"),
        (&["--sysctl", "net/../vm/swappiness=1"], "not a sysctl name"),
        (
            &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "which this container shares",
        ),
        (
            &["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "which this container shares",
        ),
    ] {
        let mut all = args.to_vec();
        all.extend(["busybox", "true"]);
        let out = run(&sb, &all);
        let err = out.fails(125, why);
        assert_eq!(err.lines().count(), 1, "{out}");
        assert!(err.starts_with("minibox: invalid --sysctl"), "{out}");
    }
    no_container(&sb);
    sb.finish();
}

#[test]
fn group_add_adds_supplementary_groups() {
    let sb = sandbox();
    let out = run(
        &sb,
        &[
            "--group-add",
            "app",
            "--group-add",
            "4242",
            "-u",
            "65534:65534",
            "busybox",
            "id",
            "-G",
        ],
    )
    .ok();
    let groups: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(groups, ["65534", "1000", "4242"], "{out}");
    let out = run(&sb, &["--group-add", "nosuchgroup", "busybox", "true"]);
    out.fails(125, "unable to find group nosuchgroup");
    sb.finish();
}

#[test]
fn pid_ipc_uts_host_and_another_containers() {
    let sb = sandbox();
    let ns = |p: &str| std::fs::read_link(p).unwrap().display().to_string();
    let host_pid = ns("/proc/self/ns/pid");
    let host_ipc = ns("/proc/self/ns/ipc");
    let host_uts = ns("/proc/self/ns/uts");
    let out = run(
        &sb,
        &[
            "--pid",
            "host",
            "--ipc",
            "host",
            "--uts",
            "host",
            "busybox",
            "sh",
            "-c",
            "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; hostname; test $$ != 1 && echo not-pid-1",
        ],
    )
    .ok();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    assert_eq!(
        out,
        format!("{host_pid}\n{host_ipc}\n{host_uts}\n{hostname}\nnot-pid-1\n")
    );
    let out = run(
        &sb,
        &["--uts", "host", "--hostname", "x", "busybox", "true"],
    );
    out.fails(125, "--hostname needs the container's own UTS namespace");

    // container:NAME: a second container sees the first's processes and shares its IPC.
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "first",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
    let id = id.trim();
    let st: serde_json::Value = serde_json::from_str(&sb.minibox(&["inspect", id]).ok()).unwrap();
    let pid = st[0]["State"]["Pid"].as_i64().unwrap();
    let first_ipc = ns(&format!("/proc/{pid}/ns/ipc"));
    let first_pid = ns(&format!("/proc/{pid}/ns/pid"));
    // Its IPC comes with its POSIX shared memory: the same /dev/shm, both ways.
    sb.minibox(&[
        "exec",
        "first",
        "sh",
        "-c",
        "echo from-first > /dev/shm/seg",
    ])
    .ok();
    let out = run(
        &sb,
        &[
            "--pid",
            "container:first",
            "--ipc",
            "container:first",
            "busybox",
            "sh",
            "-c",
            "for n in pid ipc; do readlink /proc/self/ns/$n; done; cat /proc/1/cmdline | tr '\\0' ' '; \
             echo; cat /dev/shm/seg; echo from-second > /dev/shm/back",
        ],
    )
    .ok();
    assert_eq!(
        out,
        format!("{first_pid}\n{first_ipc}\nsleep 1000 \nfrom-first\n")
    );
    assert_eq!(
        sb.minibox(&["exec", "first", "cat", "/dev/shm/back"]).ok(),
        "from-second\n"
    );
    // A container made earlier joins the one running when it starts (a restart made it anew).
    sb.minibox(&[
        "create",
        "--name",
        "later",
        "--network",
        "none",
        "--ipc",
        "container:first",
        "busybox",
        "cat",
        "/dev/shm/seg",
    ])
    .ok();
    sb.minibox(&["restart", "-t", "0", "first"]).ok();
    sb.minibox(&["exec", "first", "sh", "-c", "echo anew > /dev/shm/seg"])
        .ok();
    assert_eq!(sb.minibox(&["start", "-a", "later"]).ok(), "anew\n");
    sb.minibox(&["rm", "later"]).ok();
    sb.minibox(&["rm", "-f", "first"]).ok();
    let out = run(&sb, &["--pid", "container:first", "busybox", "true"]);
    out.fails(125, "no such container");
    let out = run(&sb, &["--pid", "elsewhere", "busybox", "true"]);
    out.fails(125, "invalid --pid");
    no_container(&sb);
    sb.finish();
}

#[test]
fn update_changes_a_running_containers_limits_and_keeps_them() {
    let sb = sandbox();
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "u",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok();
    let memory = cgroup_file("memory", "memory.limit_in_bytes", "memory.max");
    let cpu = cgroup_file("cpu", "cpu.cfs_quota_us", "cpu.max");
    let pids = cgroup_file("pids", "pids.max", "pids.max");
    let script = format!("cat {memory} {cpu} {pids}");
    let read = || sb.minibox(&["exec", "u", "sh", "-c", &script]).ok();
    let before = read();
    assert!(
        before.starts_with(&format!("{}\n", 64u64 << 20)),
        "{before}"
    );
    // Up (on v1 the swap limit has to grow first), then down.
    let out = sb
        .minibox(&[
            "update",
            "--memory",
            "256m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "100",
            "u",
        ])
        .ok();
    assert_eq!(out.trim(), "u");
    let quota = if v2() { "50000 100000" } else { "50000" };
    assert_eq!(read(), format!("{}\n{quota}\n100\n", 256u64 << 20));
    sb.minibox(&["update", "--memory", "32m", "--pids-limit", "-1", "u"])
        .ok();
    assert_eq!(read(), format!("{}\n{quota}\nmax\n", 32u64 << 20));
    // Kept for the next start.
    sb.minibox(&["stop", "-t", "0", "u"]).ok();
    sb.minibox(&["start", "u"]).ok();
    assert_eq!(read(), format!("{}\n{quota}\nmax\n", 32u64 << 20));

    let out = sb.minibox(&["update", "--memory", "1k", "u"]);
    assert_eq!(out.code(), 1, "{out}");
    assert!(out.stderr().contains("minimum"), "{out}");
    assert_eq!(
        read(),
        format!("{}\n{quota}\nmax\n", 32u64 << 20),
        "unchanged"
    );
    sb.minibox(&["rm", "-f", id.trim()]).ok();
    sb.finish();
}
