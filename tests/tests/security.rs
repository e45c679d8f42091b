//! Attacks on the container boundary and on the store, each performed for real and shown to
//! fail, with nothing left behind.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use minibox_tests::{Out, Sandbox};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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

// ---- A pid the kernel gave to another process ----

#[test]
fn a_reused_pid_is_never_signalled() {
    let sb = sandbox();
    let id = run_d(&sb, &["sleep", "1000"]);
    // A host process stands where the container's PID 1 was recorded, as when that PID 1 died
    // and the kernel handed its pid on: the state names it, with the start time of the original.
    let mut victim = sb.exec("sleep", ["1000"]).spawn().unwrap();
    let file = sb.path(&format!("/run/minibox/containers/{id}/state.json"));
    let mut st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        st["pid_start"].as_u64().is_some(),
        "no start time recorded: {st}"
    );
    st["pid"] = victim.id().into();
    std::fs::write(&file, serde_json::to_vec(&st).unwrap()).unwrap();
    for sig in ["KILL", "TERM"] {
        sb.minibox(&["kill", "-s", sig, &id])
            .fails(1, "not running");
    }
    // rm -f ends the container through its cgroup, never through the stranger's pid.
    sb.minibox(&["rm", "-f", &id]).ok();
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the process that took the pid was killed"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    sb.finish();
}

// ---- The executor's defences ----

/// `run --rm --network none ARGS...`
fn run(sb: &Sandbox, args: &[&str]) -> Out {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    sb.minibox(&all)
}

/// Container root cannot raise its own limits: its cgroups are mounted read-only, in a cgroup
/// namespace whose root is its own cgroup, where it reads the limits it was given.
#[test]
fn the_container_sees_its_own_cgroup_read_only() {
    let sb = sandbox();
    let limits = ["--memory", "64m", "--pids-limit", "50"];
    // v1 (this VM: hybrid) names each controller's hierarchy; v2 has one.
    let script = "if [ -d /sys/fs/cgroup/memory ]; then \
                    m=/sys/fs/cgroup/memory/memory.limit_in_bytes; p=/sys/fs/cgroup/pids/pids.max; \
                  else m=/sys/fs/cgroup/memory.max; p=/sys/fs/cgroup/pids.max; fi; \
                  cat $m $p; cat /proc/self/cgroup; \
                  echo 1073741824 > $m && echo raised memory; echo max > $p && echo raised pids; \
                  mkdir /sys/fs/cgroup/pids/escape 2>/dev/null && echo made a cgroup; \
                  mount -o remount,rw /sys/fs/cgroup 2>/dev/null && echo remounted; \
                  cat $m $p";
    let mut args = limits.to_vec();
    args.extend(["busybox", "sh", "-c", script]);
    let out = run(&sb, &args);
    let text = out.ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "67108864", "{out}");
    assert_eq!(lines[1], "50", "{out}");
    // Its own cgroup is the root of its view: no host path shows.
    for l in text.lines().filter(|l| l.contains(":/")) {
        assert!(l.ends_with(":/"), "a cgroup path shows through: {l}\n{out}");
    }
    for won in ["raised", "made a cgroup", "remounted"] {
        assert!(!text.contains(won), "{won}: {out}");
    }
    assert!(
        out.stderr().contains("Read-only file system"),
        "writes must fail with EROFS: {out}"
    );
    assert_eq!(lines[lines.len() - 2..], ["67108864", "50"], "{out}");
    sb.finish();
}

/// `-v` cannot cover /proc, /sys or /dev, nor anything below /proc (such as /proc/sys files,
/// whose writes would reach the host's kernel), not even through a symlink in the image.
#[test]
fn volumes_cannot_cover_proc_sys_or_dev() {
    let sb = sandbox();
    sb.sh("mkdir -p /run/vol && echo fake > /run/vol/file").ok();
    for target in [
        "/proc",
        "/proc/sys/kernel/core_pattern",
        "/sys",
        "/dev",
        "/proc/self/attr",
    ] {
        let src = if target.contains("core_pattern") {
            "/run/vol/file"
        } else {
            "/run/vol"
        };
        let spec = format!("{src}:{target}");
        let out = run(&sb, &["-v", &spec, "busybox", "true"]);
        out.fails(125, "is not allowed");
        assert_eq!(out.stderr().lines().count(), 1, "{out}");
    }
    // A symlink in the image that leads into /proc is resolved before the check.
    sb.sh(
        "mkdir /run/img && ln -s /proc/sys/kernel /run/img/k && tar -C /run/img -cf /run/img.tar k",
    )
    .ok();
    sb.minibox(&["import", "/run/img.tar", "linky"]).ok();
    let out = run(&sb, &["-v", "/run/vol:/k/x", "linky", "/none"]);
    out.fails(125, "is not allowed");
    sb.finish();
}

/// The container's /etc/hosts (and hostname, resolv.conf) cannot fill the host's memory: they
/// live on a small tmpfs of the container's own, which a 64 MB write fills at once.
#[test]
fn etc_files_cannot_grow_the_host() {
    let sb = sandbox();
    let id = run_d(&sb, &["sleep", "100"]);
    let write = sb.minibox(&[
        "exec",
        &id,
        "sh",
        "-c",
        "dd if=/dev/zero of=/etc/hosts bs=1M count=64 2>&1; echo status $?",
    ]);
    let text = write.ok();
    assert!(text.contains("No space left on device"), "{write}");
    assert!(!text.contains("status 0"), "{write}");
    // As the sandbox sees it (the tmpfs is mounted in its mount namespace, in the runroot).
    let hosts = sb.path(&format!("/run/minibox/containers/{id}/etc/hosts"));
    let size = std::fs::metadata(&hosts).unwrap().size();
    assert!(size <= 1 << 20, "{} is {size} bytes", hosts.display());
    // The files are still the container's to edit.
    sb.minibox(&["exec", &id, "sh", "-c", "echo 10.0.0.9 db > /etc/hosts"])
        .ok();
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

/// `exec` gives the process pipes, not the caller's descriptors: reopening its stdout through
/// /proc does not reach the host file the caller redirected it to.
#[test]
fn exec_does_not_hand_the_callers_files_to_the_container() {
    let sb = sandbox();
    let id = run_d(&sb, &["sleep", "100"]);
    let secret = sb.root().join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(&secret)
        .unwrap();
    let out = sb
        .command(&[
            "exec",
            &id,
            "sh",
            "-c",
            "readlink /proc/self/fd/1 >&2; timeout 2 cat /proc/self/fd/1 >&2; \
             readlink /proc/self/fd/2 >&2",
        ])
        .stdout(Stdio::from(file))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("host secret"), "{err}");
    assert!(!err.contains("secret"), "the host file's name shows: {err}");
    assert!(
        err.lines().next().unwrap_or("").starts_with("pipe:"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret\n");
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

/// The relay of `exec -i` never stalls: a process that neither reads its input nor stops
/// writing gets all its output through while the user's input waits.
#[test]
fn exec_relays_input_without_stalling_the_output() {
    use std::io::{Read, Write};
    let sb = sandbox();
    let id = run_d(&sb, &["sleep", "100"]);
    let mut child = sb
        .command(&[
            "exec",
            "-i",
            &id,
            "sh",
            "-c",
            "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // More input than a pipe holds, that nobody reads: the writer ends when exec does.
    let writer = std::thread::spawn(move || {
        let block = [b'y'; 65536];
        for _ in 0..32 {
            if input.write_all(&block).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    writer.join().unwrap();
    assert_eq!(out.len(), 1_000_000 + "\ndone\n".len());
    assert!(out.ends_with("\ndone\n"));
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

// ---- The network: localhost, other networks, the host as a router ----

/// A process of the test's own (a server in the sandbox host), killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `busybox httpd` in the foreground on `addr` (`[IP:]PORT`) in the sandbox host (or, with
/// `netns`, in that named netns), serving `body`.
fn httpd(sb: &Sandbox, netns: Option<&str>, addr: &str, body: &str) -> Server {
    let dir = sb.root().join(format!(
        "www-{}-{}",
        netns.unwrap_or("host"),
        addr.replace(':', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), body).unwrap();
    let dir = dir.to_str().unwrap().to_string();
    let mut args = vec!["httpd", "-f", "-p", addr, "-h", &dir];
    let prefixed;
    if let Some(ns) = netns {
        prefixed = [vec!["ip", "netns", "exec", ns, "busybox"], args].concat();
        args = prefixed;
    } else {
        args.insert(0, "busybox");
    }
    let server = Server(
        sb.exec(args[0], &args[1..])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Listening once a connection is answered (from the host or the netns itself).
    let host = if addr.contains(':') {
        addr.to_string()
    } else {
        format!("127.0.0.1:{addr}")
    };
    let run_in = netns.map_or(String::new(), |ns| format!("ip netns exec {ns} "));
    for _ in 0..50 {
        let probe = sb.sh(&format!(
            "{run_in}busybox nc -z -w 1 {}",
            host.replace(':', " ")
        ));
        if probe.code() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

/// An HTTP GET from a fresh container of `network` (busybox wget; its -T crashes, hence timeout).
fn get_from(sb: &Sandbox, network: &str, url: &str) -> String {
    // With --init: busybox's timeout execs wget in its own process and kills it from a child,
    // which PID 1 would not heed; a refused request would then wait out TCP's connect timeout.
    sb.minibox(&[
        "run",
        "--rm",
        "--init",
        "--network",
        network,
        "web",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://{url}/"),
    ])
    .stdout()
}

/// An HTTP GET from the sandbox host (or from inside `netns`).
fn get_on_host(sb: &Sandbox, netns: Option<&str>, url: &str) -> String {
    let run_in = netns.map_or(String::new(), |ns| format!("ip netns exec {ns} "));
    sb.sh(&format!(
        "{run_in}timeout 3 busybox wget -qO- http://{url}/"
    ))
    .stdout()
}

/// A container of the web demo run in the foreground (as a test's parallel neighbours must not
/// see a supervisor of ours), stopped when dropped.
struct Web(Child);

impl Drop for Web {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Starts the web demo as `name` (more `run` options in `args`), answering `name`; returns it
/// and its address once it answers there.
fn web(sb: &Sandbox, name: &str, args: &[&str]) -> (Web, String) {
    let mut full = vec!["run", "--rm", "--name", name];
    full.extend_from_slice(args);
    full.extend_from_slice(&["web", "/bin/web", name]);
    let mut child = sb.command(&full).stdout(Stdio::piped()).spawn().unwrap();
    // The demo prints "NAME listen" once it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let web = Web(child);
    assert!(line.contains("listen"), "{name} did not start: {line:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
    let ip = inspect[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    (web, ip)
}

/// The attacker: a container of the probe image that stays, so that its frames go out with no
/// set-up in between (a set-up would put back the rule that the test deletes).
fn attacker(sb: &Sandbox) -> Web {
    let script = "trap 'exit 0' TERM; echo ready; sleep 3600 & wait";
    let mut child = sb
        .command(&[
            "run", "--rm", "--name", "attacker", "probe", "sh", "-c", script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let attacker = Web(child);
    assert_eq!(line, "ready\n", "the attacker did not start");
    attacker
}

/// `probe syn IP PORT` in the attacker: a hand-made TCP SYN sent as a raw frame to the gateway's
/// MAC (what NET_RAW, in the default capabilities, allows). "answered" or "no answer".
fn raw_syn(sb: &Sandbox, ip: &str, port: &str) -> String {
    sb.minibox(&["exec", "attacker", "probe", "syn", ip, port])
        .ok()
        .trim()
        .to_string()
}

/// Deletes the rule of `chain` containing `needle`, as an administrator could: the control that
/// shows the attack itself works and that this rule is what stops it.
fn delete_rule(sb: &Sandbox, chain: &str, needle: &str) {
    if sb.firewall() == "nftables" {
        let rules = sb
            .sh(&format!("nft -a list chain inet minibox {chain}"))
            .ok();
        let rule = rules
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no rule with {needle:?} in {chain}:\n{rules}"));
        let handle = rule.rsplit("# handle ").next().unwrap().trim();
        sb.sh(&format!(
            "nft delete rule inet minibox {chain} handle {handle}"
        ))
        .ok();
        return;
    }
    let rules = sb.sh(&format!("iptables -S {chain}")).ok();
    let rule = rules
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in {chain}:\n{rules}"));
    sb.sh(&format!("iptables {}", rule.replacen("-A ", "-D ", 1)))
        .ok();
}

/// CVE-2020-8558's pattern: `route_localnet`, which publishing on 127.0.0.1 needs, must not let a
/// container's frames for 127.0.0.0/8 in. A container sends SYNs to 127.0.0.1 through the gateway:
/// neither a host service bound to 127.0.0.1 only nor a port another container published on
/// 127.0.0.1 answers, while the host itself still reaches that port and the same frames reach
/// what is meant to be reachable.
#[test]
fn localhost_is_not_reachable_from_containers() {
    localhost_not_reachable(Sandbox::with_firewall("nftables"));
}

#[test]
fn localhost_is_not_reachable_from_containers_under_iptables() {
    localhost_not_reachable(Sandbox::with_firewall("iptables"));
}

fn localhost_not_reachable(sb: Sandbox) {
    sb.import_web();
    sb.import_probe();
    let _local = httpd(&sb, None, "127.0.0.1:7001", "host-local\n");
    let _public = httpd(&sb, None, "7002", "host\n");
    let (web_a, a) = web(&sb, "a", &["-p", "127.0.0.1:8080:8081"]);
    let attacker = attacker(&sb);
    // The frames work: the host answers on its gateway address, the other container on its own.
    assert_eq!(raw_syn(&sb, "10.77.0.1", "7002"), "answered");
    assert_eq!(raw_syn(&sb, &a, "8081"), "answered");
    // The attacks.
    assert_eq!(raw_syn(&sb, "127.0.0.1", "7001"), "no answer");
    assert_eq!(raw_syn(&sb, "127.0.0.1", "8080"), "no answer");
    // The host's own processes keep their localhost-published port.
    assert_eq!(get_on_host(&sb, None, "127.0.0.1:8080"), "a\n");
    assert_eq!(get_on_host(&sb, None, "127.0.0.1:7001"), "host-local\n");
    // Without minibox's rules both attacks would win: each rule is what stops its attack.
    let [(input, to_localhost), (forward, dnatted_localhost)] = match sb.firewall() {
        "nftables" => [
            ("input", "ip daddr 127.0.0.0/8"),
            ("forward", "ct original ip daddr 127.0.0.0/8"),
        ],
        _ => [
            ("MINIBOX-INPUT", "-d 127.0.0.0/8"),
            ("MINIBOX-FORWARD", "--ctorigdst 127.0.0.0/8"),
        ],
    };
    delete_rule(&sb, input, to_localhost);
    assert_eq!(raw_syn(&sb, "127.0.0.1", "7001"), "answered");
    delete_rule(&sb, forward, dnatted_localhost);
    assert_eq!(raw_syn(&sb, "127.0.0.1", "8080"), "answered");
    // The next set-up finds the rules missing and puts them back: the attacks fail again.
    sb.minibox(&["run", "--rm", "probe", "true"]).ok();
    assert_eq!(raw_syn(&sb, "127.0.0.1", "7001"), "no answer");
    assert_eq!(raw_syn(&sb, "127.0.0.1", "8080"), "no answer");
    drop((web_a, attacker));
    sb.finish();
}

/// Networks are isolated from each other as Docker's are, whatever the FORWARD policy: a container
/// reaches one on another network only through a published port, in both directions.
fn networks_isolated(policy: &str, firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_web();
    sb.minibox(&["network", "create", "lab", "--subnet", "10.99.0.0/24"])
        .ok();
    let (web_a, a) = web(&sb, "a", &["-p", "8081:8081"]);
    let (web_b, b) = web(&sb, "b", &["--network", "lab", "-p", "8082:8081"]);
    sb.sh(&format!("iptables -P FORWARD {policy}")).ok();
    // Within a network, by address.
    assert_eq!(get_from(&sb, "minibox", &format!("{a}:8081")), "a\n");
    assert_eq!(get_from(&sb, "lab", &format!("{b}:8081")), "b\n");
    // Across networks, by address: refused both ways.
    assert_eq!(get_from(&sb, "minibox", &format!("{b}:8081")), "");
    assert_eq!(get_from(&sb, "lab", &format!("{a}:8081")), "");
    // Through the published ports, at each network's gateway.
    assert_eq!(get_from(&sb, "minibox", "10.77.0.1:8082"), "b\n");
    assert_eq!(get_from(&sb, "lab", "10.99.0.1:8081"), "a\n");
    drop((web_a, web_b));
    sb.settle();
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.finish();
}

#[test]
fn networks_are_isolated_with_forward_policy_accept() {
    networks_isolated("ACCEPT", "nftables");
}

/// Under the nftables driver, iptables' FORWARD policy turned to DROP while containers run (as
/// installing Docker does): the next set-up finds it and adds the networks' accepts there.
#[test]
fn networks_are_isolated_with_forward_policy_drop() {
    networks_isolated("DROP", "nftables");
}

#[test]
fn networks_are_isolated_with_forward_policy_accept_under_iptables() {
    networks_isolated("ACCEPT", "iptables");
}

#[test]
fn networks_are_isolated_with_forward_policy_drop_under_iptables() {
    networks_isolated("DROP", "iptables");
}

/// Two namespaces routed through the sandbox host ("left" 192.0.2.0/30 and "right"
/// 192.0.2.4/30, a web server on right), and an "internet" namespace on the uplink with a web
/// server, none with a route to the containers' subnet.
fn build_routed_namespaces(sb: &Sandbox) -> Vec<Server> {
    for (ns, host, peer, len) in [
        ("left", "192.0.2.1", "192.0.2.2", 30),
        ("right", "192.0.2.5", "192.0.2.6", 30),
        ("internet", "198.51.100.1", "198.51.100.2", 24),
    ] {
        sb.sh(&format!(
            "set -e
             ip netns add {ns}
             ip link add to-{ns} type veth peer name eth0 netns {ns}
             ip addr add {host}/{len} dev to-{ns} && ip link set to-{ns} up
             ip -n {ns} addr add {peer}/{len} dev eth0
             ip -n {ns} link set eth0 up && ip -n {ns} link set lo up
             ip -n {ns} route add default via {host}"
        ))
        .ok();
    }
    vec![
        httpd(sb, Some("right"), "80", "right\n"),
        httpd(sb, Some("internet"), "80", "internet\n"),
    ]
}

fn remove_routed_namespaces(sb: &Sandbox, servers: Vec<Server>) {
    drop(servers);
    sb.sh("for ns in left right internet; do ip netns delete $ns; done")
        .ok();
}

/// When minibox is what turns `ip_forward` on, the host must not become a router between all its
/// interfaces: the FORWARD policy becomes DROP (as Docker sets it), while containers still reach
/// the internet and their published ports. A host that forwarded already keeps its policy.
#[test]
fn forwarding_turned_on_by_minibox_routes_nothing_else() {
    forwarding_routes_nothing_else("nftables");
}

#[test]
fn forwarding_turned_on_by_minibox_routes_nothing_else_under_iptables() {
    forwarding_routes_nothing_else("iptables");
}

fn forwarding_routes_nothing_else(firewall: &'static str) {
    for forwarding_before in [false, true] {
        let sb = Sandbox::with_firewall(firewall);
        sb.import_web();
        let servers = build_routed_namespaces(&sb);
        sb.sh(&format!(
            "sysctl -qw net.ipv4.ip_forward={}",
            u8::from(forwarding_before)
        ))
        .ok();
        let (web_a, _) = web(&sb, "a", &["-p", "8080:8081"]);
        assert_eq!(sb.sh("sysctl -n net.ipv4.ip_forward").ok(), "1\n");
        let (policy, accepts, drops) = match firewall {
            "nftables" => (
                sb.sh("nft list chain inet minibox forward").ok(),
                "policy accept;",
                "policy drop;",
            ),
            _ => (
                sb.sh("iptables -S FORWARD").ok(),
                "-P FORWARD ACCEPT",
                "-P FORWARD DROP",
            ),
        };
        let routed = get_on_host(&sb, Some("left"), "192.0.2.6:80");
        if forwarding_before {
            assert!(policy.contains(accepts), "{policy}");
            assert_eq!(routed, "right\n", "the host's own routing changed");
        } else {
            assert!(policy.contains(drops), "{policy}");
            assert_eq!(routed, "", "minibox made the host an open router");
        }
        // Containers still reach the internet, and the internet their published port.
        assert_eq!(get_from(&sb, "minibox", "198.51.100.2:80"), "internet\n");
        assert_eq!(
            get_on_host(&sb, Some("internet"), "198.51.100.1:8080"),
            "a\n"
        );
        drop(web_a);
        remove_routed_namespaces(&sb, servers);
        sb.finish();
    }
}

/// Every container has a session keyring of its own (as runc gives): a key that host root keeps
/// in the session keyring minibox was started from is not the container's to read or change.
#[test]
fn the_container_cannot_reach_the_hosts_session_keyring() {
    let sb = Sandbox::new();
    sb.import_probe();
    // This thread's own session keyring (minibox, started from here, inherits it), with a secret.
    // SAFETY: keyctl and add_key with valid C strings and their true lengths.
    let key = unsafe {
        const KEYCTL_JOIN_SESSION_KEYRING: i64 = 1;
        const KEY_SPEC_SESSION_KEYRING: i32 = -3;
        let null = std::ptr::null::<libc::c_char>();
        assert!(libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, null) > 0);
        let secret = b"host secret";
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"minibox-test".as_ptr(),
            secret.as_ptr(),
            secret.len(),
            KEY_SPEC_SESSION_KEYRING,
        )
    };
    assert!(key > 0, "add_key: {}", std::io::Error::last_os_error());
    let key = key.to_string();
    // Within that session the key is readable: the probe works, the attack is real.
    let probe = minibox_tests::fixtures::probe_binary();
    let host = std::process::Command::new(&probe)
        .args(["key", "read", &key])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&host.stdout), "read: host secret\n");
    for what in ["read", "update"] {
        let out = sb.minibox(&[
            "run",
            "--rm",
            "--network",
            "none",
            // The keyring itself is the defence tested (seccomp's profile blocks keyctl too).
            "--security-opt",
            "seccomp=unconfined",
            "probe",
            "/bin/probe",
            "key",
            what,
            &key,
        ]);
        assert!(out.ok().starts_with("denied: "), "{out}");
    }
    let after = std::process::Command::new(&probe)
        .args(["key", "read", &key])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        "read: host secret\n"
    );
    sb.finish();
}

// ---- Seccomp: Docker's default profile, the options, the attack of issue #10 ----

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
    let sb = sandbox();
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
    let sb = sandbox();
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
    let sb = sandbox();
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

/// no_new_privs as Docker sets it: off by default, so a setuid-root program (or file
/// capabilities) works for a non-root user; on with `--security-opt no-new-privileges`, which
/// the setuid bit then cannot get around.
#[test]
fn setuid_works_for_a_non_root_user_unless_no_new_privileges() {
    let sb = Sandbox::new();
    sb.import_probe();
    let euid = |opts: &[&str]| {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(opts);
        args.extend(["probe", "sleep", "100"]);
        let id = sb.minibox(&args).ok().trim().to_string();
        let setuid = "cp /bin/probe /tmp/suid && chmod 4755 /tmp/suid";
        sb.minibox(&["exec", &id, "sh", "-c", setuid]).ok();
        let out = sb.minibox(&["exec", "-u", "1000", &id, "/tmp/suid", "euid"]);
        let status = sb.minibox(&[
            "exec",
            "-u",
            "1000",
            &id,
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ]);
        sb.minibox(&["rm", "-f", &id]).ok();
        (out.ok().trim().to_string(), status.ok())
    };
    let (by_default, status) = euid(&[]);
    assert_eq!(by_default, "0", "setuid-root gives euid 0 by default");
    assert!(status.contains("NoNewPrivs:\t0"), "{status}");
    let (with_nnp, status) = euid(&["--security-opt", "no-new-privileges"]);
    assert_eq!(with_nnp, "1000", "no-new-privileges keeps the user's euid");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    sb.finish();
}

/// A volume whose host directory is a shared mount. The container's mounts are clones of the
/// host's, which would stay peers of a shared mount: what the container (with CAP_SYS_ADMIN)
/// mounts in the volume must not show on the host, nor what the host mounts there later show in
/// the container (Docker's rprivate).
#[test]
fn mounts_made_in_a_volume_never_reach_the_host() {
    let sb = sandbox();
    let dir = sb.root().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    sb.sh(&format!(
        "mount -t tmpfs shared {d} && mount --make-shared {d} && mkdir {d}/in {d}/out"
    ))
    .ok();
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "--network",
            "none",
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            &format!("{d}:/data"),
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs inner /data/in && touch /data/in/mark && sleep 1000",
        ])
        .ok();
    let id = id.trim();
    let start = Instant::now();
    while sb
        .minibox(&["exec", id, "test", "-e", "/data/in/mark"])
        .code()
        != 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the container's mount never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.sh(&format!("mount -t tmpfs outer {d}/out")).ok();

    let host = sb.sh("cat /proc/self/mountinfo").ok();
    assert!(
        !host.contains(&format!(" {d}/in ")),
        "the container's mount reached the host"
    );
    assert!(!dir.join("in/mark").exists());
    let inside = sb
        .minibox(&["exec", id, "cat", "/proc/self/mountinfo"])
        .ok();
    assert!(inside.contains(" /data/in "), "{inside}");
    assert!(
        !inside.contains(" /data/out "),
        "the host's mount reached the container"
    );

    sb.minibox(&["rm", "-f", id]).ok();
    sb.sh(&format!("umount {d}/out {d}")).ok();
    sb.finish();
}
