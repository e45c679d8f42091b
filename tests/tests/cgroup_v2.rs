//! minibox on a cgroup v2 unified host, end to end: this machine mounts cgroups hybrid, so a
//! small VM (see `minibox_tests::vm`) boots with nothing but cgroup2 at /sys/fs/cgroup and runs
//! the real binaries there (minibox, and minibox-runc on an OCI bundle). One boot runs every
//! check; each is asserted here with its own message.

use std::time::Duration;

use minibox_tests::vm::{self, VmRun};

/// Runs inside the VM (busybox sh, `report NAME VALUE` prints a result on the console).
const SCRIPT: &str = r#"
cg=/sys/fs/cgroup
run() { minibox run --rm --network none "$@"; }
report fstype "$(stat -f -c %t $cg)"
report controllers "$(cat $cg/cgroup.controllers)"
minibox import /image.tar busybox >/dev/null 2>&1; report import $?

report rootfs "$(run busybox sh -c 'grep " / " /proc/mounts' 2>&1)"

out=$(run --memory 32m busybox tail /dev/zero 2>&1); report oom "$?
$out"

out=$(run --pids-limit 20 busybox sh -c \
    'i=0; while [ $i -lt 50 ]; do sleep 30 & i=$((i+1)); done; echo spawned-all' 2>&1)
report pids "$?
$out"

# Device nodes the container makes must not open: the host's serial console, a disk.
report devices "$(run busybox sh -c '
    mknod /tmp/ttyS0 c 4 64 && printf "" > /tmp/ttyS0 && echo opened-ttyS0
    mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda >/dev/null && echo opened-sda
    echo x > /dev/null && head -c 1 /dev/zero > /dev/null && echo null-zero-ok' 2>&1)"
report pty "$(minibox run --rm -t --network none busybox sh -c \
    'tty; echo hi > "$(tty)" && echo pty-ok' < /dev/console 2>&1)"
report devices-privileged "$(run --privileged busybox sh -c '
    mknod /tmp/ttyS0 c 4 64 && printf "" > /tmp/ttyS0 && echo opened-ttyS0' 2>&1)"
report seccomp "$(run busybox sh -c 'grep Seccomp: /proc/self/status; unshare -U true 2>&1; echo rc=$?' 2>&1)"

id=$(minibox run -d --network none --name lim --cpus 0.5 --memory 64m --pids-limit 50 \
    busybox sleep 1000 2>&1); report detached "$id"
d=$cg/minibox/$id
report cpu.max "$(cat $d/cpu.max)"
report memory.max "$(cat $d/memory.max)"
report pids.max "$(cat $d/pids.max)"
pid1=$(cat $d/cgroup.procs)
report pid1-cgroup "$(cat /proc/$pid1/cgroup)"
report exec-view "$(minibox exec lim sh -c 'cat /proc/self/cgroup /proc/1/cgroup' 2>&1)"
report own-cgroup "$(minibox exec lim sh -c 'stat -f -c %t /sys/fs/cgroup; cat /sys/fs/cgroup/memory.max \
    /sys/fs/cgroup/pids.max; echo max > /sys/fs/cgroup/pids.max && echo raised' 2>&1)"
report v2-limits "$(run --memory 32m --memory-swap 64m --cpu-shares 512 --ulimit nofile=100:200 \
    busybox sh -c 'cat /sys/fs/cgroup/memory.swap.max /sys/fs/cgroup/cpu.weight; ulimit -Sn; ulimit -Hn' 2>&1)"
minibox update --memory 96m --pids-limit 30 --cpus 0.25 lim >/dev/null 2>&1; report update $?
report updated "$(cat $d/memory.max $d/pids.max $d/cpu.max)"
minibox exec lim sleep 1000 & execpid=$!
i=0; while [ "$(wc -l < $d/cgroup.procs)" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
other=$(grep -vx "$pid1" $d/cgroup.procs)
# It joins the cgroup before it execs: give it the moment to become `sleep`.
i=0; while [ "$(cat /proc/$other/comm)" != sleep ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
report exec-procs "$(wc -l < $d/cgroup.procs)"
report exec-cgroup "$(cat /proc/$other/cgroup) $(cat /proc/$other/comm)"
report stats "$(minibox stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' lim 2>&1)"
report pause "$(minibox pause lim >/dev/null && minibox inspect -f '{{.State.Status}}' lim; \
    minibox unpause lim >/dev/null && minibox inspect -f '{{.State.Status}}' lim)"
minibox stop -t 1 lim >/dev/null 2>&1; report stop $?
wait $execpid
report after-stop "$(find $cg/minibox -mindepth 1 -type d)"
minibox rm lim >/dev/null 2>&1; report rm $?

# minibox-runc, the OCI runtime, on the v2 host: a busybox bundle with limits in its cgroup.
b=/tmp/bundle; mkdir -p $b/rootfs; tar -xf /image.tar -C $b/rootfs
minibox-runc spec --bundle $b
sed -i -e 's/"terminal": true/"terminal": false/' -e 's/^      "sh"$/      "sleep", "1000"/' \
    -e 's|"resources": {|"cgroupsPath": "/ocirt", "resources": {"memory": {"limit": 67108864}, "pids": {"limit": 40}, "cpu": {"quota": 50000, "period": 100000},|' \
    $b/config.json
status() { minibox-runc state oc1 2>&1 | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"'; }
minibox-runc create --bundle $b --pid-file $b/pid oc1 >/dev/null 2>$b/err; report runc-create "$? $(cat $b/err)"
report runc-created "$(status)"
minibox-runc start oc1; report runc-start $?
report runc-running "$(status)"
o=$cg/ocirt
report runc-limits "$(cat $o/memory.max $o/pids.max $o/cpu.max)"
report runc-cgroup "$(cat /proc/$(cat $b/pid)/cgroup)"
report runc-exec "$(minibox-runc exec oc1 sh -c 'cat /proc/self/cgroup /sys/fs/cgroup/memory.max' 2>&1)"
echo '{"memory": {"limit": 100663296}, "pids": {"limit": 30}, "cpu": {"quota": 25000, "period": 100000}}' \
    | minibox-runc update --resources - oc1; report runc-update $?
report runc-updated "$(cat $o/memory.max $o/pids.max $o/cpu.max)"
minibox-runc pause oc1; report runc-paused "$(status) $(cat $o/cgroup.freeze)"
minibox-runc resume oc1; report runc-resumed "$(status) $(cat $o/cgroup.freeze)"
minibox-runc kill oc1 KILL; report runc-kill $?
i=0; while [ "$(status)" != stopped ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
report runc-stopped "$(status)"
minibox-runc delete oc1; report runc-delete "$? $(test -e $o && echo cgroup-left)"
report runc-gone "$(minibox-runc state oc1 2>&1)"

report leftover-cgroups "$(find $cg -mindepth 1 -type d)"
# The base mount namespaces' pins stay, as the bridge does (`system reset` takes minibox's).
report base-pins "$(grep -c -e '^nsfs /run/minibox/mntns/base ' -e '^nsfs /run/minibox-runc/mntns/base ' \
    /proc/mounts)"
report leftover-mounts "$(grep -v -e '^root / ' -e '^proc ' -e '^sysfs ' -e '^dev ' -e '^run ' \
    -e '^tmp ' -e '^cgroup2 ' -e ' /run/minibox/mntns/base ' -e ' /run/minibox-runc/mntns/base ' \
    /proc/mounts)"
report leftover-state "$(minibox ps -a -q 2>&1
    find /run/minibox/containers /var/lib/minibox/containers /run/netns -mindepth 1 2>/dev/null)"
report leftover-processes "$(ps -o pid,comm | grep -e sleep -e tail -e minibox)"
"#;

/// Asserts `check` on a report, with the VM console's tail in the failure message.
#[track_caller]
fn expect(vm: &VmRun, name: &str, what: &str, check: impl Fn(&str) -> bool) {
    let value = vm.report(name);
    assert!(
        value.as_deref().is_some_and(&check),
        "cgroup v2 VM: {what}: report {name} = {value:?}\nconsole tail:\n{}",
        vm.tail(60)
    );
}

#[test]
fn cgroup_v2_unified_host() {
    let vm = vm::run(SCRIPT, Duration::from_secs(180));
    eprintln!(
        "cgroup v2 VM ({}) ran in {:?}; console tail:\n{}",
        vm.accel,
        vm.elapsed,
        vm.tail(40)
    );

    expect(
        &vm,
        "fstype",
        "/sys/fs/cgroup is cgroup2 (CGROUP2_SUPER_MAGIC)",
        |v| v == "63677270",
    );
    expect(&vm, "controllers", "memory, pids, cpu are v2", |v| {
        ["memory", "pids", "cpu"]
            .iter()
            .all(|c| v.split_whitespace().any(|w| w == *c))
    });
    expect(&vm, "import", "minibox import succeeds", |v| v == "0");
    expect(&vm, "rootfs", "the rootfs is an overlay", |v| {
        v.starts_with("overlay / overlay ")
    });

    expect(
        &vm,
        "oom",
        "--memory 32m OOM-kills with 137 and says so",
        |v| v.starts_with("137\n") && v.contains("OOM killer"),
    );
    expect(&vm, "pids", "--pids-limit 20 stops a fork loop", |v| {
        !v.starts_with("0\n") && v.contains("can't fork") && !v.contains("spawned-all")
    });

    expect(&vm, "devices", "made device nodes do not open", |v| {
        !v.contains("opened-")
            && v.matches("Operation not permitted").count() == 2
            && v.contains("null-zero-ok")
    });
    expect(&vm, "pty", "-t: the pty (136,N) is allowed", |v| {
        // The pty turns \n into \r\n.
        let v = v.replace('\r', "");
        v.starts_with("/dev/pts/") && v.ends_with("\nhi\npty-ok")
    });
    expect(&vm, "devices-privileged", "--privileged opens them", |v| {
        v.contains("opened-ttyS0")
    });
    expect(
        &vm,
        "seccomp",
        "Docker's seccomp profile refuses a user namespace",
        |v| {
            v.starts_with("Seccomp:\t2\n")
                && v.contains("Operation not permitted")
                && v.ends_with("rc=1")
        },
    );

    expect(
        &vm,
        "own-cgroup",
        "the container's own cgroup2, read-only, with its limits",
        |v| {
            v.starts_with("63677270\n67108864\n50\n")
                && v.contains("Read-only file system")
                && !v.contains("raised")
        },
    );
    expect(&vm, "detached", "run -d prints the id", |v| {
        v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
    });
    let id = vm.report("detached").unwrap();
    expect(&vm, "cpu.max", "--cpus 0.5 in cpu.max", |v| {
        v == "50000 100000"
    });
    expect(&vm, "memory.max", "--memory 64m in memory.max", |v| {
        v == (64u64 << 20).to_string()
    });
    expect(&vm, "pids.max", "--pids-limit 50 in pids.max", |v| {
        v == "50"
    });
    let own = format!("0::/minibox/{id}");
    expect(&vm, "pid1-cgroup", "PID 1 is in minibox/ID", |v| v == own);
    expect(
        &vm,
        "exec-view",
        "exec sees the container's cgroup as root",
        |v| v == "0::/\n0::/",
    );
    expect(
        &vm,
        "exec-procs",
        "exec adds to the container's cgroup",
        |v| v == "2",
    );
    expect(
        &vm,
        "exec-cgroup",
        "the exec'd process is in minibox/ID",
        |v| v == format!("{own} sleep"),
    );
    expect(
        &vm,
        "stats",
        "stats reads the v2 cgroup: two processes, the limit as updated to 96m",
        |v| v.starts_with("2 ") && v.ends_with(" / 96MiB") && !v.starts_with("2 0B"),
    );
    expect(
        &vm,
        "pause",
        "pause and unpause through cgroup.freeze",
        |v| v == "paused\nrunning",
    );
    expect(
        &vm,
        "v2-limits",
        "--memory-swap as memory.swap.max (swap alone), --cpu-shares as cpu.weight, --ulimit",
        |v| v == format!("{}\n20\n100\n200", 32u64 << 20),
    );
    expect(
        &vm,
        "update",
        "update of a running container succeeds",
        |v| v == "0",
    );
    expect(
        &vm,
        "updated",
        "update rewrote memory.max, pids.max, cpu.max",
        |v| v == format!("{}\n30\n25000 100000", 96u64 << 20),
    );
    expect(&vm, "stop", "stop succeeds", |v| v == "0");
    expect(&vm, "after-stop", "stop removes the cgroup", str::is_empty);
    expect(&vm, "rm", "rm succeeds", |v| v == "0");

    expect(&vm, "runc-create", "minibox-runc create succeeds", |v| {
        v.trim() == "0"
    });
    expect(&vm, "runc-created", "state: created", |v| v == "created");
    expect(&vm, "runc-start", "minibox-runc start succeeds", |v| {
        v == "0"
    });
    expect(&vm, "runc-running", "state: running", |v| v == "running");
    expect(
        &vm,
        "runc-limits",
        "config.json's resources in memory.max, pids.max, cpu.max",
        |v| v == format!("{}\n40\n50000 100000", 64u64 << 20),
    );
    expect(&vm, "runc-cgroup", "its process is in cgroupsPath", |v| {
        v == "0::/ocirt"
    });
    expect(
        &vm,
        "runc-exec",
        "exec joins its cgroup namespace and sees its own cgroup2 with its limit",
        |v| v == format!("0::/\n{}", 64u64 << 20),
    );
    expect(&vm, "runc-update", "update --resources - succeeds", |v| {
        v == "0"
    });
    expect(
        &vm,
        "runc-updated",
        "update rewrote memory.max, pids.max, cpu.max",
        |v| v == format!("{}\n30\n25000 100000", 96u64 << 20),
    );
    expect(
        &vm,
        "runc-paused",
        "pause freezes through cgroup.freeze",
        |v| v == "paused 1",
    );
    expect(&vm, "runc-resumed", "resume thaws", |v| v == "running 0");
    expect(&vm, "runc-kill", "kill succeeds", |v| v == "0");
    expect(&vm, "runc-stopped", "state: stopped", |v| v == "stopped");
    expect(&vm, "runc-delete", "delete removes its cgroup", |v| {
        v.trim() == "0"
    });
    expect(&vm, "runc-gone", "state after delete", |v| {
        v.contains("does not exist")
    });

    expect(
        &vm,
        "leftover-cgroups",
        "only the parent cgroup stays",
        |v| v == "/sys/fs/cgroup/minibox",
    );
    expect(&vm, "base-pins", "the base mount namespaces pinned", |v| {
        v == "2"
    });
    expect(&vm, "leftover-mounts", "no mount left", str::is_empty);
    expect(&vm, "leftover-state", "no container left", str::is_empty);
    expect(&vm, "leftover-processes", "no process left", str::is_empty);
}
