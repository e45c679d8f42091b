//! Detached containers and their lifecycle: `run -d`, the supervisor, `ps`, `logs`, `stop`,
//! `kill`, `rm`, `start`, `restart`, `wait`, `inspect`, `exec`, and name/id resolution.

use std::time::{Duration, Instant};

use minibox_tests::Sandbox;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `run -d ARGS...`: returns the full id.
fn run_d(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let id = sb.minibox(&all).ok().trim().to_string();
    assert_eq!(id.len(), 64, "not a full id: {id:?}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    id
}

/// `run -d --network none busybox sh -c SCRIPT`: returns the full id.
fn run_sh(sb: &Sandbox, script: &str) -> String {
    run_d(sb, &["--network", "none", "busybox", "sh", "-c", script])
}

fn inspect(sb: &Sandbox, what: &str) -> serde_json::Value {
    let out = sb.minibox(&["inspect", what]).ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Polls `cond` for up to 10 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_d_runs_in_the_background_and_ps_lists_it() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "sleeper",
            "--network",
            "none",
            "busybox",
            "sleep",
            "100",
        ],
    );
    let ps = sb.minibox(&["ps"]).ok();
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(row.contains("busybox") && row.contains("\"sleep 100\"") && row.contains("Up "));
    assert!(row.trim_end().ends_with("sleeper"), "{ps}");
    assert_eq!(sb.minibox(&["ps", "-q"]).ok().trim(), &id[..12]);
    assert_eq!(sb.minibox(&["ps", "-q", "--no-trunc"]).ok().trim(), id);

    let doc = inspect(&sb, "sleeper");
    assert_eq!(doc["Id"], id.as_str());
    assert_eq!(doc["Name"], "/sleeper");
    assert_eq!(doc["State"]["Status"], "running");
    assert_eq!(doc["State"]["Running"], true);
    let pid = doc["State"]["Pid"].as_i64().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());

    // Every command takes a name, the full id or a unique prefix.
    for what in ["sleeper", id.as_str(), &id[..5]] {
        assert_eq!(inspect(&sb, what)["Id"], id.as_str());
    }
    sb.minibox(&["stop", "-t", "1", &id[..8]]).ok();
    let doc = inspect(&sb, "sleeper");
    assert_eq!(doc["State"]["Status"], "exited");
    assert_eq!(
        doc["State"]["ExitCode"], 137,
        "sleep ignores SIGTERM as PID 1"
    );
    assert_eq!(sb.minibox(&["ps", "-q"]).ok(), "");
    assert!(sb.minibox(&["ps", "-a"]).ok().contains("Exited (137)"));
    sb.minibox(&["rm", "sleeper"]).ok();
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    sb.finish();
}

#[test]
fn logs_keep_stdout_and_stderr_with_timestamps() {
    let sb = sandbox();
    let id = run_sh(
        &sb,
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done",
    );
    assert_eq!(sb.minibox(&["wait", &id]).ok().trim(), "0");
    let all = sb.minibox(&["logs", &id]);
    assert_eq!(all.ok(), "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(all.stderr(), "err1\nerr2\nerr3\nerr4\nerr5\n");
    // The two streams are separate pipes: their order in the log is the order they were read.
    let tail = sb.minibox(&["logs", "--tail", "2", &id]);
    let last = tail.stdout() + &tail.stderr();
    assert_eq!(last.lines().count(), 2, "{last}");
    assert!(
        last.lines().all(|l| l.ends_with('4') || l.ends_with('5')),
        "{last}"
    );
    let ts = sb.minibox(&["logs", "-t", &id]).ok();
    for line in ts.lines() {
        let (time, text) = line.split_once(' ').unwrap();
        assert!(
            time.len() == 30 && time.ends_with('Z') && time.contains('T'),
            "{line}"
        );
        assert!(text.starts_with("out"));
    }
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

#[test]
fn a_foreground_container_is_logged_as_it_is_shown() {
    let sb = sandbox();
    let script = "echo out1; echo err1 >&2; printf partial";
    let run = sb.minibox(&[
        "run",
        "--name",
        "fg",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(run.ok(), "out1\npartial");
    assert_eq!(run.stderr(), "err1\n");
    let logs = sb.minibox(&["logs", "fg"]);
    assert_eq!(logs.ok(), "out1\npartial");
    assert_eq!(logs.stderr(), "err1\n");
    // With a terminal, what the pty shows is logged.
    let tty = sb
        .terminal("$MINIBOX run --name tty --network none -t busybox echo on-a-tty")
        .output()
        .unwrap();
    assert!(tty.status.success(), "{tty:?}");
    assert_eq!(sb.minibox(&["logs", "tty"]).ok(), "on-a-tty\n");
    sb.minibox(&["rm", "fg", "tty"]).ok();
    sb.finish();
}

#[test]
fn logs_follow_until_the_container_stops() {
    let sb = sandbox();
    let id = run_sh(&sb, "echo a; sleep 1; echo b");
    let out = sb.minibox(&["logs", "-f", &id]).ok();
    assert_eq!(out, "a\nb\n");
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

/// `rm` and `start` of a container that has exited while its owner still tears down what it
/// held (here held up on the network's lock, which another process has) wait for that end
/// instead of taking the container for a running one: `logs -f`, then `start` or `rm`, works.
#[test]
fn rm_and_start_wait_for_an_exited_containers_end() {
    let sb = sandbox();
    let id = run_d(&sb, &["busybox", "sh", "-c", "sleep 1"]);
    let held_up = |sb: &Sandbox| {
        let holder = sb
            .exec("flock", ["/run/minibox/networks/lock", "sleep", "3"])
            .spawn()
            .unwrap();
        // RFC 3339 times a second apart or more: their text sorts as they do.
        eventually("its exit is recorded", || {
            let state = &inspect(sb, &id)["State"];
            state["FinishedAt"].as_str() > state["StartedAt"].as_str()
        });
        holder
    };
    let mut holder = held_up(&sb);
    assert!(holder.try_wait().unwrap().is_none(), "let go too soon");
    sb.minibox(&["start", &id]).ok();
    // Started again, not taken for still running: a start after the recorded exit.
    let state = &inspect(&sb, &id)["State"];
    assert_eq!(state["Status"], "running", "{state}");
    assert!(
        state["StartedAt"].as_str() > state["FinishedAt"].as_str(),
        "{state}"
    );
    holder.wait().unwrap();

    sb.minibox(&["wait", &id]).ok();
    sb.minibox(&["start", &id]).ok();
    let mut holder = held_up(&sb);
    assert!(holder.try_wait().unwrap().is_none(), "let go too soon");
    sb.minibox(&["rm", &id]).ok();
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    holder.wait().unwrap();
    sb.finish();
}

#[test]
fn rm_refuses_a_running_container_without_force() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "busy",
            "--network",
            "none",
            "busybox",
            "sleep",
            "100",
        ],
    );
    sb.minibox(&["rm", "busy"]).fails(1, "running");
    assert_eq!(
        inspect(&sb, &id)["State"]["Running"],
        true,
        "nothing changed"
    );
    sb.minibox(&["rm", "-f", "busy"]).ok();
    sb.minibox(&["inspect", "busy"]).fails(1, "no such object");
    sb.finish();
}

#[test]
fn bad_names_and_prefixes_fail_cleanly() {
    let sb = sandbox();
    sb.minibox(&["stop", "nosuch"])
        .fails(1, "no such container: nosuch");
    // Two containers: a one-character prefix is likely shared; find one that is.
    let a = run_d(
        &sb,
        &[
            "--name",
            "taken",
            "--network",
            "none",
            "busybox",
            "sleep",
            "100",
        ],
    );
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "taken",
        "--network",
        "none",
        "busybox",
        "true",
    ])
    .fails(125, "already in use");
    let mut ids = vec![a.clone()];
    while !ids
        .iter()
        .any(|x| ids.iter().filter(|y| y[..1] == x[..1]).count() > 1)
    {
        ids.push(run_d(
            &sb,
            &["--network", "none", "busybox", "sleep", "100"],
        ));
    }
    let shared = ids
        .iter()
        .find(|x| ids.iter().filter(|y| y[..1] == x[..1]).count() > 1)
        .unwrap()[..1]
        .to_string();
    sb.minibox(&["inspect", &shared]).fails(1, "ambiguous");
    sb.minibox(&["exec", "nosuch", "true"])
        .fails(1, "no such container");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    sb.minibox(&rm).ok();
    sb.finish();
}

#[test]
fn kill_sends_the_signal_and_wait_gets_the_code_of_an_rm_container() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 3' USR1; while true; do sleep 0.1; done",
        ],
    );
    // Waiters started before the exit all get its code, though `--rm` takes the records away.
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| s.spawn(|| sb.minibox(&["wait", &id])))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        sb.minibox(&["kill", "-s", "USR1", &id]).ok();
        for w in waiters {
            assert_eq!(w.join().unwrap().ok().trim(), "3");
        }
    });
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    // The same for a foreground `run --rm`.
    std::thread::scope(|s| {
        let fg = s.spawn(|| {
            let script = "sleep 0.5; exit 4";
            sb.minibox(&[
                "run",
                "--rm",
                "--name",
                "fg",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                script,
            ])
        });
        eventually("the foreground container to run", || {
            sb.minibox(&["ps", "-q"]).stdout().lines().count() == 1
        });
        assert_eq!(sb.minibox(&["wait", "fg"]).ok().trim(), "4");
        assert_eq!(fg.join().unwrap().code(), 4);
    });
    sb.finish();
}

/// A foreground `run --rm` container renamed while it runs gives back the name it has at its
/// end: that end reads the name again from the config, where `rename` changed it.
#[test]
fn a_foreground_rm_container_renamed_while_it_runs_frees_its_new_name() {
    let sb = sandbox();
    std::thread::scope(|s| {
        let fg = s.spawn(|| {
            let args = ["--network", "none", "busybox", "sh", "-c", "sleep 1"];
            sb.minibox(&[&["run", "--rm", "--name", "before"][..], &args].concat())
        });
        eventually("the foreground container to run", || {
            sb.minibox(&["ps", "-q"]).stdout().lines().count() == 1
        });
        sb.minibox(&["rename", "before", "after"]).ok();
        fg.join().unwrap().ok();
    });
    for name in ["before", "after"] {
        let args = ["--network", "none", "busybox", "true"];
        sb.minibox(&[&["run", "--rm", "--name", name][..], &args].concat())
            .ok();
    }
    sb.finish();
}

#[test]
fn published_ports_show_in_ps_and_inspect_and_answer() {
    let sb = Sandbox::new();
    sb.import_web();
    let id = run_d(&sb, &["--name", "web", "-p", "8080:8081", "web"]);
    let ps = sb.minibox(&["ps"]).ok();
    assert!(ps.contains("0.0.0.0:8080->8081/tcp"), "{ps}");
    let doc = inspect(&sb, "web");
    let ip = doc["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ip.is_empty());
    assert!(!doc["NetworkSettings"]["Gateway"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(!doc["NetworkSettings"]["MacAddress"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(
        doc["NetworkSettings"]["Ports"]["8081/tcp"][0]["HostPort"],
        "8080"
    );
    eventually("the web server", || {
        sb.sh("curl -s -m 2 http://127.0.0.1:8080/").stdout() == "web\n"
    });
    assert!(sb.minibox(&["logs", "web"]).ok().contains("listen :8081"));
    // restart: a new attachment, the same published port.
    sb.minibox(&["restart", "-t", "1", "web"]).ok();
    let doc = inspect(&sb, "web");
    assert_eq!(doc["State"]["Running"], true);
    assert_eq!(
        doc["NetworkSettings"]["Ports"]["8081/tcp"][0]["HostPort"],
        "8080"
    );
    eventually("the web server after restart", || {
        sb.sh("curl -s -m 2 http://127.0.0.1:8080/").stdout() == "web\n"
    });
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn start_runs_a_stopped_container_again_with_its_files() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "counter",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo x >> /count; wc -l < /count",
        ],
    );
    assert_eq!(sb.minibox(&["wait", "counter"]).ok().trim(), "0");
    sb.minibox(&["start", "counter"]).ok();
    assert_eq!(sb.minibox(&["wait", "counter"]).ok().trim(), "0");
    assert_eq!(sb.minibox(&["logs", "counter"]).ok(), "1\n2\n");
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

/// A container recorded by an older minibox, whose Spec binds its /etc files from its
/// persistent dir, still starts: its start mounts their tmpfs where its Spec says and writes
/// them there (bounded as ever), and its removal unmounts it.
#[test]
fn a_container_whose_spec_binds_its_etc_files_from_its_persistent_dir_starts() {
    let sb = sandbox();
    let id = run_d(&sb, &["--name", "old", "busybox", "sleep", "100"]);
    sb.minibox(&["stop", "-t", "0", "old"]).ok();
    // What an older minibox recorded: the binds' sources in <root>/containers/<id>/etc.
    let old = sb.root().join("containers").join(&id).join("etc");
    let file = sb.root().join("containers").join(&id).join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut rewritten = 0;
    for m in config["spec"]["mounts"].as_array_mut().unwrap() {
        let dest = m["destination"].as_str().unwrap().to_string();
        if let Some(name @ ("hostname" | "hosts" | "resolv.conf")) = dest.strip_prefix("/etc/") {
            m["source"] = old.join(name).to_string_lossy().into();
            rewritten += 1;
        }
    }
    assert_eq!(rewritten, 3, "{config}");
    std::fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
    // minibox's own files are not the user's binds, wherever they are.
    assert_eq!(inspect(&sb, "old")["Mounts"], serde_json::json!([]));

    sb.minibox(&["start", "old"]).ok();
    let seen = sb
        .minibox(&["exec", "old", "cat", "/etc/hostname", "/etc/hosts"])
        .ok();
    assert!(seen.starts_with(&format!("{}\n", &id[..12])), "{seen}");
    // Its address, written once its network was wired, reached the files it has bound.
    assert!(seen.contains(&format!("\t{} old", &id[..12])), "{seen}");
    let mountinfo =
        std::fs::read_to_string(format!("/proc/{}/mountinfo", sb.holder_pid())).unwrap();
    let on_old = format!(" {} ", old.display());
    assert!(
        mountinfo
            .lines()
            .any(|l| l.contains(&on_old) && l.contains(" - tmpfs ")),
        "no tmpfs on {}:\n{mountinfo}",
        old.display()
    );
    let write = sb.minibox(&[
        "exec",
        "old",
        "sh",
        "-c",
        "dd if=/dev/zero of=/etc/hosts bs=1M count=64 2>&1",
    ]);
    assert!(
        write.stdout().contains("No space left on device"),
        "{write}"
    );
    sb.minibox(&["rm", "-f", "old"]).ok();
    sb.finish();
}

#[test]
fn exec_joins_the_containers_namespaces_cgroup_and_privileges() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "box",
            "--hostname",
            "boxhost",
            "-e",
            "FOO=bar",
            "busybox",
            "sleep",
            "100",
        ],
    );
    let ex = |args: &[&str]| {
        let mut all = vec!["exec"];
        all.extend_from_slice(args);
        sb.minibox(&all)
    };
    assert_eq!(ex(&["box", "hostname"]).ok().trim(), "boxhost");
    // The same PID namespace: the container's command is PID 1.
    assert_eq!(
        ex(&["box", "cat", "/proc/1/cmdline"]).ok(),
        "sleep\x00100\x00"
    );
    assert_eq!(
        ex(&["box", "cat", "/proc/self/cgroup"]).ok(),
        ex(&["box", "cat", "/proc/1/cgroup"]).ok()
    );
    let net_inside = ex(&["box", "readlink", "/proc/self/ns/net"]).ok();
    assert_eq!(net_inside, ex(&["box", "readlink", "/proc/1/ns/net"]).ok());
    let status = |who: &str| -> Vec<String> {
        ex(&["box", "cat", &format!("/proc/{who}/status")])
            .ok()
            .lines()
            .filter(|l| l.starts_with("Cap") || l.starts_with("NoNewPrivs"))
            .map(String::from)
            .collect()
    };
    assert_eq!(status("self"), status("1"));
    // no_new_privs is off by default, as in Docker, in both.
    assert!(status("self").contains(&"NoNewPrivs:\t0".to_string()));
    let env = ex(&["-e", "X=1", "box", "env"]).ok();
    assert!(env.contains("FOO=bar\n") && env.contains("X=1\n"), "{env}");
    assert_eq!(
        ex(&["-u", "app", "-w", "/tmp", "box", "sh", "-c", "id -u; pwd"]).ok(),
        "1000\n/tmp\n"
    );
    assert_eq!(ex(&["box", "sh", "-c", "exit 7"]).code(), 7);
    assert_eq!(ex(&["box", "nosuchcmd"]).code(), 127);
    let mut cat = sb.command(&["exec", "-i", "box", "cat"]);
    cat.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cat.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through\n");

    sb.minibox(&["stop", "-t", "0", "box"]).ok();
    ex(&["box", "true"]).fails(1, "not running");
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

#[test]
fn containers_without_a_name_get_one() {
    let sb = sandbox();
    let id = run_d(&sb, &["--network", "none", "busybox", "sleep", "100"]);
    let name = inspect(&sb, &id)["Name"].as_str().unwrap().to_string();
    let name = name.strip_prefix('/').unwrap();
    assert!(name.contains('_'), "{name}");
    assert!(sb.minibox(&["ps"]).ok().contains(name));
    assert_eq!(inspect(&sb, name)["Id"], id.as_str());
    sb.minibox(&["rm", "-f", name]).ok();
    sb.finish();
}

#[test]
fn exec_t_gives_the_process_a_pty_and_run_d_t_logs_the_pty() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "-t",
            "--name",
            "tty",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "tty; sleep 100",
        ],
    );
    eventually("the pty output in the log", || {
        sb.minibox(&["logs", "tty"]).stdout().contains("/dev/pts/0")
    });
    let out = sb
        .terminal("stty rows 21 cols 77; $MINIBOX exec -t tty sh -c 'tty; stty size; echo $TERM'")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{text}");
    for want in ["/dev/pts/1", "21 77", "xterm"] {
        assert!(text.contains(want), "lacks {want}:\n{text}");
    }
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn stop_lets_a_container_exit_on_sigterm() {
    let sb = sandbox();
    let id = run_sh(
        &sb,
        "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    );
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    sb.minibox(&["stop", &id]).ok();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "stop waited for the grace period"
    );
    let doc = inspect(&sb, &id);
    assert_eq!(doc["State"]["ExitCode"], 0);
    assert_eq!(doc["State"]["Running"], false);
    assert!(
        doc["State"]["FinishedAt"].as_str().unwrap() >= doc["State"]["StartedAt"].as_str().unwrap()
    );
    assert_eq!(sb.minibox(&["logs", &id]).ok(), "bye\n");
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

#[test]
fn logs_keep_long_lines_and_a_last_line_without_newline_intact() {
    let sb = sandbox();
    let id = run_sh(
        &sb,
        "head -c 40000 /dev/zero | tr '\\0' x; echo; printf end",
    );
    assert_eq!(sb.minibox(&["wait", &id]).ok().trim(), "0");
    let out = sb.minibox(&["logs", &id]).ok();
    assert_eq!(out, format!("{}\nend", "x".repeat(40000)));
    sb.minibox(&["rm", &id]).ok();
    sb.finish();
}

#[test]
fn run_d_of_a_missing_command_fails_like_run_and_leaves_nothing() {
    let sb = sandbox();
    sb.minibox(&["run", "-d", "--name", "bad", "busybox", "nosuchcmd"])
        .fails(127, "executable file not found");
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
    sb.minibox(&[
        "run", "-d", "--name", "bad", "-p", "8088:80", "busybox", "sleep", "100",
    ])
    .ok();
    sb.minibox(&["rm", "-f", "bad"]).ok();
    sb.finish();
}

#[test]
fn port_finds_containers_as_every_command_does() {
    let sb = sandbox();
    // Not a path into the store: a name or an id prefix, or nothing.
    sb.minibox(&["port", "../../../../etc/hostname"])
        .fails(1, "no such container");
    sb.minibox(&["port", "nosuch"])
        .fails(1, "no such container");
    sb.finish();
}

/// Containers' mount namespaces are copies of a base one, pinned under the runroot: made by the
/// first set-up and kept, made again when its pin is gone (a crash between the pin's file and
/// its mount leaves the file alone), and unpinned by `system reset`.
#[test]
fn the_base_mount_namespace_is_kept_remade_after_a_crash_and_reset_removes_it() {
    let sb = sandbox();
    let pin = "/run/minibox/mntns/base";
    let pinned = || -> Option<String> {
        let fs = sb.sh(&format!("stat -f -c %T {pin}")).stdout();
        (fs.trim() == "nsfs").then(|| sb.sh(&format!("stat -L -c %i {pin}")).ok())
    };
    let run = || {
        let out = sb.minibox(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "cat",
            "/etc/hostname",
        ]);
        assert!(!out.ok().is_empty(), "{out}");
    };
    assert_eq!(pinned(), None);
    run();
    let first = pinned().expect("the first run pins a base namespace");
    run();
    assert_eq!(
        pinned().as_ref(),
        Some(&first),
        "a second run makes another"
    );

    sb.sh(&format!("umount {pin}")).ok();
    assert!(sb.path(pin).exists());
    assert_eq!(pinned(), None);
    run();
    assert!(
        pinned().is_some(),
        "a run after the pin went pins a new one"
    );

    sb.minibox(&["system", "reset", "-f"]).ok();
    assert!(!sb.path("/run/minibox/mntns").exists());
    let mounts = sb.sh("grep -c mntns /proc/self/mountinfo || true").stdout();
    assert_eq!(mounts.trim(), "0");
    sb.finish();
}
