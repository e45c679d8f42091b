//! minibox-runc, the OCI runtime (runc's command line), by itself on busybox bundles: create,
//! start, state, kill, delete, exec, ps, pause/resume, update, run, spec, features, hooks, the
//! console socket, joining namespaces by path, and its errors.

use std::fs;
use std::time::{Duration, Instant};

use minibox_tests::oci::cgroup_dir;
use minibox_tests::{Bundle, Out, Sandbox};
use serde_json::{json, Value};

fn state(sb: &Sandbox, id: &str) -> Value {
    serde_json::from_str(&sb.runc(&["state", id]).ok()).unwrap()
}

/// Polls `cond` for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// minibox-runc with `args` whose container outlives it (create, run --detach, exec --detach):
/// the container inherits the runtime's stdout and stderr, so these go to files next to the
/// bundle rather than to pipes that would stay open.
fn runc_bg(sb: &Sandbox, bundle: &Bundle, args: &[&str]) -> Out {
    let (out, err) = (bundle.file("stdout"), bundle.file("stderr"));
    let status = sb
        .exec(minibox_tests::minibox_runc_bin(), args)
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    Out {
        what: format!("minibox-runc {}", args.join(" ")),
        output: std::process::Output {
            status,
            stdout: fs::read(out).unwrap(),
            stderr: fs::read(err).unwrap(),
        },
    }
}

/// `create` then `start` of `bundle` as `id`; returns the pid from the pid file.
fn create_start(sb: &Sandbox, bundle: &Bundle, id: &str) -> i32 {
    let pid_file = bundle.file("pid");
    runc_bg(
        sb,
        bundle,
        &[
            "create",
            "--bundle",
            bundle.path(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ],
    )
    .ok();
    sb.runc(&["start", id]).ok();
    fs::read_to_string(pid_file).unwrap().parse().unwrap()
}

fn remove(sb: &Sandbox, id: &str) {
    sb.runc(&["delete", "--force", id]).ok();
}

#[test]
fn ocirt_create_start_state_kill_delete() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(
        &sb,
        "c1",
        &["sh", "-c", "echo started > /tmp/mark; sleep 100"],
    );
    let mut config = bundle.config.clone();
    config["annotations"] = json!({"io.example/who": "test"});
    let bundle = Bundle { config, ..bundle };
    bundle.save();
    let pid_file = bundle.file("pid");
    runc_bg(
        &sb,
        &bundle,
        &[
            "create",
            "--bundle",
            bundle.path(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "c1",
        ],
    )
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let st = state(&sb, "c1");
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["id"], "c1");
    assert_eq!(st["ociVersion"], "1.0.2");
    assert_eq!(st["bundle"], bundle.path());
    assert_eq!(st["annotations"]["io.example/who"], "test");
    // Created: set up, but the process has not run yet.
    let root = format!("/proc/{pid}/root/tmp/mark");
    assert!(!std::path::Path::new(&root).exists());

    sb.runc(&["start", "c1"]).ok();
    eventually("the process to run", || {
        fs::read_to_string(&root).is_ok_and(|s| s == "started\n")
    });
    // The pid file names the container's process itself: its PID 1, running sleep, whose
    // parent is no minibox process.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    eventually("sleep to be exec'd", || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let _ = comm;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let parent = fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
    assert!(!parent.contains("minibox"), "parent {parent}");
    assert_eq!(state(&sb, "c1")["status"], "running");
    sb.runc(&["start", "c1"]).fails(1, "started already");

    let list = sb.runc(&["list"]).ok();
    assert!(list.starts_with("ID"), "{list}");
    assert!(list
        .lines()
        .any(|l| l.starts_with("c1 ") && l.contains("running")));
    assert_eq!(sb.runc(&["list", "-q"]).ok(), "c1\n");

    // SIGTERM is ignored by a PID 1 without a handler; SIGKILL is not.
    sb.runc(&["kill", "c1", "KILL"]).ok();
    eventually("the container to stop", || {
        state(&sb, "c1")["status"] == "stopped"
    });
    assert_eq!(state(&sb, "c1")["pid"], 0);
    sb.runc(&["kill", "c1", "TERM"])
        .fails(1, "container not running");
    // `kill --all` after the end is no error (containerd sends it).
    sb.runc(&["kill", "--all", "c1", "9"]).ok();
    sb.runc(&["delete", "c1"]).ok();
    sb.runc(&["state", "c1"]).fails(1, "does not exist");
    assert!(!cgroup_dir("pids", &format!("{}/c1", sb.cgroup_parent())).exists());
    sb.finish();
}

#[test]
fn ocirt_exec_ps_pause_resume_update() {
    let sb = Sandbox::new();
    let mut bundle = Bundle::busybox(&sb, "c2", &["sleep", "100"]);
    bundle.config["root"]["readonly"] = json!(true);
    bundle.save();
    let pid = create_start(&sb, &bundle, "c2");
    let touch = sb.runc(&["exec", "c2", "touch", "/x"]);
    assert_eq!(touch.code(), 1);
    assert!(touch.stderr().contains("Read-only file system"), "{touch}");

    // exec: the command line, and a process.json as containerd and conmon pass it.
    let out = sb
        .runc(&["exec", "c2", "sh", "-c", "hostname; echo $X; exit 3"])
        .output;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c2\n\n");
    let process = json!({
        "args": ["sh", "-c", "echo $X from $(pwd) as $(id -u)"],
        "env": ["PATH=/bin", "X=json"],
        "cwd": "/tmp",
        "user": {"uid": 1000, "gid": 1000},
        "terminal": false
    });
    let pj = bundle.file("process.json");
    fs::write(&pj, process.to_string()).unwrap();
    let out = sb
        .runc(&["exec", "--process", pj.to_str().unwrap(), "c2"])
        .ok();
    assert_eq!(out, "json from /tmp as 1000\n");
    // --detach with a pid file: the pid is the process itself, left to the caller.
    let epid = bundle.file("exec.pid");
    runc_bg(
        &sb,
        &bundle,
        &[
            "exec",
            "--detach",
            "--pid-file",
            epid.to_str().unwrap(),
            "c2",
            "sleep",
            "50",
        ],
    )
    .ok();
    let epid: i32 = fs::read_to_string(&epid).unwrap().parse().unwrap();
    eventually("the exec'd sleep", || {
        fs::read_to_string(format!("/proc/{epid}/cmdline")).is_ok_and(|c| c.starts_with("sleep"))
    });
    // A process started by exec sees none of the runtime's descriptors (CVE-2024-21626).
    let fds = sb.runc(&["exec", "c2", "ls", "/proc/self/fd"]).ok();
    let fds: Vec<&str> = fds.split_whitespace().collect();
    assert!(fds.len() <= 4, "leaked descriptors: {fds:?}");

    // ps: both processes, as JSON and as ps(1)'s table.
    let pids: Vec<i32> =
        serde_json::from_str(&sb.runc(&["ps", "--format", "json", "c2"]).ok()).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&pid) && pids.contains(&epid));
    let table = sb.runc(&["ps", "c2"]).ok();
    assert!(
        table.starts_with("UID") && table.lines().count() == 3,
        "{table}"
    );

    // pause/resume: the freezer.
    sb.runc(&["pause", "c2"]).ok();
    assert_eq!(state(&sb, "c2")["status"], "paused");
    sb.runc(&["exec", "c2", "true"]).fails(1, "paused");
    sb.runc(&["resume", "c2"]).ok();
    assert_eq!(state(&sb, "c2")["status"], "running");
    sb.runc(&["resume", "c2"]).fails(1, "not paused");

    // update: JSON on stdin, as containerd's shim sends it, and flags.
    let mut child = sb
        .exec(
            minibox_tests::minibox_runc_bin(),
            ["update", "--resources", "-", "c2"],
        )
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory":{"limit":67108864},"cpu":{"shares":256},"pids":{"limit":20}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let cg = format!("{}/c2", sb.cgroup_parent());
    let read = |c: &str, f: &str| fs::read_to_string(cgroup_dir(c, &cg).join(f)).unwrap();
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(read("memory", "memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(read("cpu", "cpu.shares").trim(), "256");
        assert_eq!(read("pids", "pids.max").trim(), "20");
    } else {
        assert_eq!(read("", "memory.max").trim(), "67108864");
        assert_eq!(read("", "pids.max").trim(), "20");
    }
    sb.runc(&["update", "--pids-limit", "30", "c2"]).ok();
    assert_eq!(read("pids", "pids.max").trim(), "30");
    let stats: Value = serde_json::from_str(&sb.runc(&["events", "--stats", "c2"]).ok()).unwrap();
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["data"]["pids"]["current"], 2);

    // Not without --force while it runs; with it, everything goes (the exec'd process too).
    sb.runc(&["delete", "c2"]).fails(1, "running");
    remove(&sb, "c2");
    assert!(
        !std::path::Path::new(&format!("/proc/{epid}/cmdline")).exists() || {
            // a zombie until its parent reaps it
            fs::read_to_string(format!("/proc/{epid}/cmdline"))
                .unwrap_or_default()
                .is_empty()
        }
    );
    sb.finish();
}

#[test]
fn ocirt_run_spec_features_version() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "r1", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let out = sb.runc(&["run", "--bundle", bundle.path(), "r1"]);
    assert_eq!(out.code(), 7, "{out}");
    assert_eq!(out.stdout(), "out\n");
    assert_eq!(out.stderr(), "err\n");
    // `run` deletes what it created.
    sb.runc(&["state", "r1"]).fails(1, "does not exist");

    // run --detach, then the usual end.
    let mut config = bundle.config.clone();
    config["process"]["args"] = json!(["sleep", "100"]);
    let bundle = Bundle { config, ..bundle };
    bundle.save();
    runc_bg(
        &sb,
        &bundle,
        &["run", "--detach", "--bundle", bundle.path(), "r2"],
    )
    .ok();
    assert_eq!(state(&sb, "r2")["status"], "running");
    remove(&sb, "r2");

    // spec: runc's starting config; refused over an existing one.
    let dir = sb.root().join("specdir");
    fs::create_dir_all(&dir).unwrap();
    sb.runc(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    let spec: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["process"]["terminal"], true);
    sb.runc(&["spec", "--bundle", dir.to_str().unwrap()])
        .fails(1, "exists");

    let features: Value = serde_json::from_str(&sb.runc(&["features"]).ok()).unwrap();
    assert_eq!(features["ociVersionMax"], "1.0.2");
    assert!(features["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("network")));
    let version = sb.runc(&["--version"]).ok();
    assert!(version.starts_with("minibox-runc version ") && version.contains("\nspec: "));
    sb.finish();
}

#[test]
fn ocirt_errors_are_one_line_and_leave_nothing() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "e1", &["sleep", "100"]);
    sb.runc(&["state", "nope"])
        .fails(1, "container \"nope\" does not exist");
    sb.runc(&["kill", "nope", "9"]).fails(1, "does not exist");
    sb.runc(&["delete", "nope"]).fails(1, "does not exist");
    // A second `delete --force` (containerd's second shim) is no error.
    sb.runc(&["delete", "--force", "nope"]).ok();
    sb.runc(&["state", "../../etc"]).fails(1, "invalid");
    sb.runc(&["--systemd-cgroup", "state", "e1"])
        .fails(1, "--systemd-cgroup: not supported");

    // The log file gets the error as the JSON line callers read.
    let log = bundle.file("log.json");
    sb.runc(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "kill",
        "nope",
        "9",
    ])
    .fails(1, "does not exist");
    let line: Value = serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));

    // Failures of create leave nothing: a command that is not there, a bad cgroupsPath, a
    // terminal without a console socket, a missing bundle, an id taken.
    let mut bad = bundle.config.clone();
    bad["process"]["args"] = json!(["/nope"]);
    Bundle {
        config: bad,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "e1"])
        .fails(1, "/nope");
    let mut bad = bundle.config.clone();
    bad["linux"]["cgroupsPath"] = json!("/a/../../b");
    Bundle {
        config: bad,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "e1"])
        .fails(1, "cgroupsPath");
    let mut bad = bundle.config.clone();
    bad["linux"]["cgroupsPath"] = json!("system.slice:minibox:e1");
    Bundle {
        config: bad,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "e1"])
        .fails(1, "systemd form");
    let mut bad = bundle.config.clone();
    bad["process"]["terminal"] = json!(true);
    Bundle {
        config: bad,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "e1"])
        .fails(1, "--console-socket");
    sb.runc(&["create", "--bundle", "/nonexistent", "e1"])
        .fails(1, "/nonexistent");
    bundle.save();
    runc_bg(&sb, &bundle, &["create", "--bundle", bundle.path(), "e1"]).ok();
    sb.runc(&["create", "--bundle", bundle.path(), "e1"])
        .fails(1, "already exists");
    // A created container can be deleted without --force.
    sb.runc(&["delete", "e1"]).ok();
    sb.finish();
}

#[test]
fn ocirt_joins_namespaces_by_path() {
    let sb = Sandbox::new();
    // A pod's sandbox: a network namespace bind-mounted on a file, as the CRI makes it.
    sb.sh("ip netns add podnet && ip -n podnet link add pod0 type veth peer name pod1")
        .ok();
    let first = Bundle::busybox(&sb, "j1", &["sleep", "100"]);
    let mut config = first.config.clone();
    config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "network", "path": "/run/netns/podnet"}
    ]);
    Bundle {
        config,
        dir: first.dir.clone(),
    }
    .save();
    let pid1 = create_start(&sb, &first, "j1");
    // A second container joins the first's network, IPC and UTS namespaces through /proc.
    let second = Bundle::busybox(&sb, "j2", &["sleep", "100"]);
    let mut config = second.config.clone();
    config["hostname"] = Value::Null;
    config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{pid1}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pid1}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{pid1}/ns/uts")}
    ]);
    Bundle {
        config,
        dir: second.dir.clone(),
    }
    .save();
    let pid2 = create_start(&sb, &second, "j2");
    let ns = |pid: i32, t: &str| fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
    for t in ["net", "ipc", "uts"] {
        assert_eq!(ns(pid1, t), ns(pid2, t), "{t}");
    }
    assert_ne!(ns(pid1, "pid"), ns(pid2, "pid"));
    let podnet = sb.sh("stat -L -c %i /run/netns/podnet").ok();
    let inode = ns(pid2, "net").to_string_lossy().into_owned();
    assert!(inode.contains(podnet.trim()), "{inode} vs {podnet}");
    let links = sb.runc(&["exec", "j2", "ip", "-o", "link"]).ok();
    assert!(links.contains("pod0"), "{links}");
    assert_eq!(sb.runc(&["exec", "j2", "hostname"]).ok(), "j1\n");
    remove(&sb, "j2");
    remove(&sb, "j1");
    sb.sh("ip netns del podnet").ok();
    sb.finish();
}

#[test]
fn ocirt_hooks_get_the_state() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "h1", &["sleep", "100"]);
    let out = sb.root().join("hooks");
    fs::create_dir_all(&out).unwrap();
    let hook = |name: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}/{name}", out.display())]
        })
    };
    let mut config = bundle.config.clone();
    config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")],
        // Inside the container: its /bin/sh, its hostname and root (no `hooks` dir there), on
        // the runtime's stderr; and the state on stdin as the others.
        "startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "cat >/dev/null; echo start-hook hostname=$(hostname) sees-out=$(test -d {} && echo yes || echo no) >&2",
                out.display()
            )]
        }]
    });
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let pid_file = bundle.file("pid");
    let args = [
        "create",
        "--bundle",
        bundle.path(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "h1",
    ];
    runc_bg(&sb, &bundle, &args).ok();
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let start = sb.runc(&["start", "h1"]);
    start.ok();
    let started = start.stderr();
    assert!(
        started.contains("start-hook hostname=h1 sees-out=no"),
        "the startContainer hook ran outside the container: {started}"
    );
    for name in ["prestart", "createRuntime", "poststart"] {
        let st: Value = serde_json::from_str(&fs::read_to_string(out.join(name)).unwrap()).unwrap();
        assert_eq!(st["id"], "h1", "{name}");
        assert_eq!(st["pid"], pid, "{name}");
    }
    assert!(!out.join("poststop").exists());
    remove(&sb, "h1");
    let st: Value =
        serde_json::from_str(&fs::read_to_string(out.join("poststop")).unwrap()).unwrap();
    assert_eq!(st["id"], "h1");

    // A failing prestart hook fails create, and nothing is left.
    let mut config = bundle.config.clone();
    config["hooks"] = json!({"prestart": [{"path": "/bin/false"}]});
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "h2"])
        .fails(1, "hook /bin/false");
    sb.finish();
}

#[test]
fn ocirt_console_socket_gets_the_terminal() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "t1", &["sh", "-c", "tty; stty size"]);
    let mut config = bundle.config.clone();
    config["process"]["terminal"] = json!(true);
    config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let socket = bundle.file("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let accept = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("a pty master");
        // SAFETY: the descriptor was just received for us.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    sb.runc(&[
        "create",
        "--bundle",
        bundle.path(),
        "--console-socket",
        socket.to_str().unwrap(),
        "t1",
    ])
    .ok();
    let master = fs::File::from(accept.join().unwrap());
    sb.runc(&["start", "t1"]).ok();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let mut master = master;
    while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    assert!(seen.contains("30 100"), "consoleSize not applied: {seen:?}");
    eventually("the container to exit", || {
        state(&sb, "t1")["status"] == "stopped"
    });
    sb.runc(&["delete", "t1"]).ok();
    sb.finish();
}

#[test]
fn ocirt_minibox_ps_does_not_list_or_break_oci_containers() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "m1", &["sleep", "100"]);
    create_start(&sb, &bundle, "m1");
    let ps = sb.minibox(&["ps", "-a", "-q"]).ok();
    assert_eq!(ps, "");
    sb.minibox(&["system", "prune"]).ok();
    assert_eq!(state(&sb, "m1")["status"], "running");
    remove(&sb, "m1");
    sb.finish();
}

#[test]
fn ocirt_preserve_fds_passes_descriptors() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(
        &sb,
        "p1",
        &["sh", "-c", "echo through-fd-3 >&3; ls /proc/self/fd"],
    );
    let out = bundle.file("fd3");
    let script = format!(
        "{} run --preserve-fds 1 --bundle {} p1 3>{}",
        minibox_tests::minibox_runc_bin().display(),
        bundle.path(),
        out.display()
    );
    let fds = sb.sh(&script).ok();
    assert_eq!(fs::read_to_string(&out).unwrap(), "through-fd-3\n");
    // 0, 1, 2, 3 and the one ls opens: nothing else of the runtime's.
    assert_eq!(fds.split_whitespace().count(), 5, "{fds}");

    // exec passes them too (conmon hands an exec'd process its descriptors so).
    let bundle = Bundle::busybox(&sb, "p2", &["sleep", "60"]);
    create_start(&sb, &bundle, "p2");
    let out = bundle.file("exec-fds");
    let script = format!(
        "{} exec --preserve-fds 2 p2 sh -c 'echo via-exec >&3; echo four >&4; ls /proc/self/fd' 3>{} 4>>{}",
        minibox_tests::minibox_runc_bin().display(),
        out.display(),
        out.display()
    );
    let fds = sb.sh(&script).ok();
    assert_eq!(fs::read_to_string(&out).unwrap(), "via-exec\nfour\n");
    // 0, 1, 2, 3, 4 and the one ls opens.
    assert_eq!(fds.split_whitespace().count(), 6, "{fds}");
    remove(&sb, "p2");
    sb.finish();
}

/// Hands a bundle's rootfs to the host ids a user namespace's root maps to, as its users do.
fn chown_rootfs(bundle: &Bundle, id: u32) {
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{id}:{id}"))
        .arg(bundle.dir.join("rootfs"))
        .status()
        .unwrap();
    assert!(status.success());
}

/// The host uid a process runs as (the real uid of /proc/PID/status).
fn host_uid(pid: i32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn ocirt_user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let sb = Sandbox::new();
    // A host directory only the host's root may write: the container's root must not.
    let guarded = sb.root().join("guarded");
    fs::create_dir_all(&guarded).unwrap();
    let bundle = Bundle::busybox(&sb, "u1", &["sleep", "100"]);
    chown_rootfs(&bundle, 100000);
    let mut config = bundle.config.clone();
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/guarded", "type": "bind", "source": guarded, "options": ["rbind", "rw"]
    }));
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let pid = create_start(&sb, &bundle, "u1");
    let ns = |pid: &str, t: &str| fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
    assert_ne!(ns(&pid.to_string(), "user"), ns("self", "user"));
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(host_uid(pid), 100000);
    // Inside it is root, with the mounts a container has (proc, sysfs, /dev) made in its
    // own namespaces; a file it makes is the host's uid 100000.
    let inside = sb
        .runc(&[
            "exec",
            "u1",
            "sh",
            "-c",
            "id -u; id -g; touch /tmp/made; awk '$5 ~ /^\\/(proc|dev|sys)$/ { \
             for (i = 6; i <= NF; i++) if ($i == \"-\") print $5, $(i + 1) }' /proc/self/mountinfo",
        ])
        .ok();
    assert_eq!(inside, "0\n0\n/proc proc\n/dev tmpfs\n/sys sysfs\n");
    let made = bundle.dir.join("rootfs/tmp/made");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&fs::metadata(made).unwrap()),
        100000
    );
    // The attack: its root writes to a host directory of the host's root, and is refused.
    let attack = sb.runc(&["exec", "u1", "sh", "-c", "echo owned > /guarded/x"]);
    assert_ne!(
        attack.code(),
        0,
        "the container's root wrote a host root's directory"
    );
    assert!(
        attack.stderr().contains("Permission denied"),
        "{}",
        attack.stderr()
    );
    assert!(!guarded.join("x").exists());

    // A second container joins its user namespace by path (with new mount and PID ones,
    // which that user namespace then owns): same namespace, same maps, same host uid.
    let second = Bundle::busybox(&sb, "u2", &["sleep", "100"]);
    chown_rootfs(&second, 100000);
    let mut config = second.config.clone();
    config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "cgroup"},
        {"type": "user", "path": format!("/proc/{pid}/ns/user")},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")}
    ]);
    Bundle {
        config,
        dir: second.dir.clone(),
    }
    .save();
    let pid2 = create_start(&sb, &second, "u2");
    assert_eq!(ns(&pid2.to_string(), "user"), ns(&pid.to_string(), "user"));
    assert_ne!(ns(&pid2.to_string(), "pid"), ns(&pid.to_string(), "pid"));
    assert_eq!(host_uid(pid2), 100000);
    assert_eq!(
        sb.runc(&[
            "exec",
            "u2",
            "sh",
            "-c",
            "id -u; ls /proc/1/ns >/dev/null && echo proc-ok"
        ])
        .ok(),
        "0\nproc-ok\n"
    );
    remove(&sb, "u2");
    remove(&sb, "u1");

    // Mappings without a user namespace: refused, one line, nothing made.
    let mut config = bundle.config.clone();
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1}]);
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let err = sb
        .runc(&["create", "--bundle", bundle.path(), "u3"])
        .fails(1, "no user namespace");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    sb.runc(&["state", "u3"]).fails(1, "does not exist");
    sb.finish();
}

#[test]
fn ocirt_mounts_are_listed_in_order_with_their_propagation() {
    let sb = Sandbox::new();
    let shared = sb.root().join("shared-src");
    fs::create_dir_all(&shared).unwrap();
    let bundle = Bundle::busybox(&sb, "o1", &["cat", "/proc/self/mountinfo"]);
    let mut config = bundle.config.clone();
    let mounts = config["mounts"].as_array_mut().unwrap();
    for (dest, m) in [
        (
            "/m/a",
            json!({"type": "tmpfs", "source": "tmpfs", "options": ["size=1k"]}),
        ),
        (
            "/m/b",
            json!({"type": "bind", "source": shared, "options": ["bind", "shared"]}),
        ),
        (
            "/m/c",
            json!({"type": "tmpfs", "source": "tmpfs", "options": ["private"]}),
        ),
        (
            "/m/d",
            json!({"type": "bind", "source": "/etc", "options": ["rbind", "ro", "rprivate"]}),
        ),
        (
            "/m/e",
            json!({"type": "tmpfs", "source": "tmpfs", "options": ["shared"]}),
        ),
    ] {
        let mut m = m;
        m["destination"] = json!(dest);
        mounts.push(m);
    }
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let out = sb.runc(&["run", "--bundle", bundle.path(), "o1"]).ok();
    // The kernel lists mounts in the order they were made: the Spec's.
    let lines: Vec<&str> = out.lines().collect();
    let at = |dest: &str| {
        lines
            .iter()
            .position(|l| l.split_whitespace().nth(4) == Some(dest))
            .unwrap_or_else(|| panic!("{dest} not mounted:\n{out}"))
    };
    let order: Vec<usize> = ["/proc", "/dev", "/m/a", "/m/b", "/m/c", "/m/d", "/m/e"]
        .iter()
        .map(|d| at(d))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{out}");
    let optional = |dest: &str| lines[at(dest)].split(" - ").next().unwrap().to_string();
    assert!(optional("/m/b").contains("shared:"), "{out}");
    assert!(optional("/m/e").contains("shared:"), "{out}");
    assert!(!optional("/m/c").contains("shared:"), "{out}");
    assert!(
        lines[at("/m/d")]
            .split_whitespace()
            .nth(5)
            .unwrap()
            .starts_with("ro"),
        "{out}"
    );
    sb.finish();
}

#[test]
fn ocirt_create_container_hooks_run_in_its_mount_namespace_before_the_pivot() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(&sb, "k1", &["sleep", "100"]);
    let out = sb.root().join("hook-out");
    let rootfs = bundle.dir.join("rootfs");
    // Resolved in the runtime's view (the host's /bin/sh), run in the container's mount
    // namespace with its root not entered yet: the rootfs is at its host path, the hook can
    // put a file in it that the container sees, and the container's /proc is not yet there.
    let script = format!(
        "cat > {out}.state; readlink /proc/self/ns/mnt > {out}; \
         test -d {rootfs}/bin && echo rootfs-at-host-path >> {out}; \
         echo from-hook > {rootfs}/hooked",
        out = out.display(),
        rootfs = rootfs.display()
    );
    let mut config = bundle.config.clone();
    config["hooks"] =
        json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    let pid = create_start(&sb, &bundle, "k1");
    let seen = fs::read_to_string(&out).unwrap();
    let container = fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let host = fs::read_link("/proc/self/ns/mnt").unwrap();
    assert!(
        seen.starts_with(&format!("{}\n", container.display())),
        "{seen}"
    );
    assert_ne!(container, host);
    assert!(seen.contains("rootfs-at-host-path"), "{seen}");
    let state: Value =
        serde_json::from_str(&fs::read_to_string(format!("{}.state", out.display())).unwrap())
            .unwrap();
    assert_eq!(state["pid"], pid);
    assert_eq!(
        sb.runc(&["exec", "k1", "cat", "/hooked"]).ok(),
        "from-hook\n"
    );
    remove(&sb, "k1");

    // A failing createContainer hook fails create, and nothing is left.
    let mut config = bundle.config.clone();
    config["hooks"] = json!({"createContainer": [{"path": "/bin/false"}]});
    Bundle {
        config,
        dir: bundle.dir.clone(),
    }
    .save();
    sb.runc(&["create", "--bundle", bundle.path(), "k2"])
        .fails(1, "hook /bin/false");
    sb.runc(&["state", "k2"]).fails(1, "does not exist");
    sb.finish();
}

#[test]
fn ocirt_no_pivot_enters_the_root_with_move_and_chroot() {
    let sb = Sandbox::new();
    let bundle = Bundle::busybox(
        &sb,
        "n1",
        &["sh", "-c", "ls /; grep -c ' / ' /proc/self/mountinfo"],
    );
    fs::write(bundle.dir.join("rootfs/marker"), "").unwrap();
    let out = sb
        .runc(&["run", "--no-pivot", "--bundle", bundle.path(), "n1"])
        .ok();
    assert!(out.lines().any(|l| l == "marker"), "{out}");
    sb.finish();
}
