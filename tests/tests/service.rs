//! Containers as services: stop signals (a postgres-like fixture that needs SIGINT), restart
//! policies applied by the supervisor, `system boot` after a simulated reboot, health checks,
//! `create` then `start`, and the event journal.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use minibox_tests::Sandbox;
use serde_json::Value;

fn inspect(sb: &Sandbox, what: &str) -> Value {
    let out = sb.minibox(&["inspect", what]).ok();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Polls `cond` for up to 30 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs(sb: &Sandbox, what: &str) -> String {
    sb.minibox(&["logs", what]).ok()
}

/// The actions of the events of container `name` so far, oldest first.
fn actions(sb: &Sandbox, name: &str) -> Vec<String> {
    let filter = format!("container={name}");
    sb.minibox(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        &filter,
        "--format",
        "{{.Action}}",
    ])
    .ok()
    .lines()
    .map(str::to_string)
    .collect()
}

/// Runs pgish detached with `args`, and waits until it is ready.
fn run_pgish(sb: &Sandbox, name: &str, args: &[&str], image: &str) {
    let mut all = vec!["run", "-d", "--name", name, "--network", "none"];
    all.extend_from_slice(args);
    all.push(image);
    sb.minibox(&all).ok();
    eventually("pgish to be ready", || {
        logs(sb, name).contains("ready to accept connections")
    });
}

#[test]
fn a_postgres_like_service_stops_cleanly_with_its_stop_signal() {
    let sb = Sandbox::new();
    sb.import_pgish("pg", &["STOPSIGNAL SIGINT"]);
    sb.import_pgish("pgterm", &[]);

    // The image's STOPSIGNAL: a fast shutdown, exit 0.
    run_pgish(&sb, "pg", &[], "pg");
    assert_eq!(inspect(&sb, "pg")["Config"]["StopSignal"], "SIGINT");
    sb.minibox(&["stop", "pg"]).ok();
    let pg = inspect(&sb, "pg");
    assert_eq!(pg["State"]["Status"], "exited");
    assert_eq!(pg["State"]["ExitCode"], 0, "{}", logs(&sb, "pg"));
    assert!(logs(&sb, "pg").contains("received fast shutdown request"));

    // --stop-signal on an image without one, under --init too (which forwards it).
    for (name, init) in [("flag", false), ("flag-init", true)] {
        let mut args = vec!["--stop-signal", "INT"];
        if init {
            args.push("--init");
        }
        run_pgish(&sb, name, &args, "pgterm");
        sb.minibox(&["stop", name]).ok();
        assert_eq!(
            inspect(&sb, name)["State"]["ExitCode"],
            0,
            "{}",
            logs(&sb, name)
        );
        assert!(logs(&sb, name).contains("received fast shutdown request"));
    }

    // SIGTERM only asks for a smart shutdown: it is killed at the timeout (--stop-timeout).
    run_pgish(&sb, "term", &["--stop-timeout", "1"], "pgterm");
    sb.minibox(&["stop", "term"]).ok();
    assert_eq!(inspect(&sb, "term")["State"]["ExitCode"], 137);
    assert!(logs(&sb, "term").contains("smart shutdown"));

    // `stop -s` chooses the signal; `start` runs it again.
    sb.minibox(&["start", "term"]).ok();
    eventually("pgish to run again", || {
        inspect(&sb, "term")["State"]["Running"] == true
    });
    sb.minibox(&["stop", "-s", "SIGINT", "-t", "30", "term"])
        .ok();
    assert_eq!(inspect(&sb, "term")["State"]["ExitCode"], 0);
    sb.minibox(&["stop", "-s", "NOPE", "term"])
        .fails(1, "invalid signal \"NOPE\"");
    sb.minibox(&["run", "--stop-signal", "NOPE", "pg"])
        .fails(125, "invalid signal");

    for name in ["pg", "flag", "flag-init", "term"] {
        sb.minibox(&["rm", name]).ok();
    }
    sb.finish();
}

#[test]
fn on_failure_3_restarts_a_crashing_service_exactly_three_times() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--network",
        "none",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo started; exit 3",
    ])
    .ok();
    // Done once the supervisor let go: it holds the container while it may restart it.
    sb.minibox(&["wait", "crash"]).ok();
    let c = inspect(&sb, "crash");
    assert_eq!(c["RestartCount"], 3, "{c}");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["Restarting"], false);
    assert_eq!(c["State"]["ExitCode"], 3);
    assert_eq!(
        c["HostConfig"]["RestartPolicy"],
        serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    assert_eq!(logs(&sb, "crash").matches("started").count(), 4);
    let actions = actions(&sb, "crash");
    assert_eq!(
        actions.iter().filter(|a| *a == "start").count(),
        4,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "restart").count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "die").count(),
        4,
        "{actions:?}"
    );

    // A clean exit is no failure; --rm cannot go with a policy.
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "clean",
        "--network",
        "none",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ])
    .ok();
    sb.minibox(&["wait", "clean"]).ok();
    assert_eq!(inspect(&sb, "clean")["RestartCount"], 0);
    sb.minibox(&["run", "--rm", "--restart", "always", "busybox", "true"])
        .fails(125, "--restart and --rm");
    sb.minibox(&["run", "--restart", "sometimes", "busybox", "true"])
        .fails(125, "invalid restart policy");

    sb.minibox(&["rm", "crash", "clean"]).ok();
    sb.finish();
}

#[test]
fn always_comes_back_after_its_process_is_killed_but_not_after_stop() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let pid = inspect(&sb, "svc")["State"]["Pid"].as_i64().unwrap();
    // A crash: its process killed from the host, behind minibox's back.
    sb.sh(&format!("kill -9 {pid}")).ok();
    eventually("the container to come back", || {
        let c = inspect(&sb, "svc");
        c["State"]["Running"] == true && c["State"]["Pid"] != pid
    });
    let c = inspect(&sb, "svc");
    assert_eq!(c["RestartCount"], 1);
    assert!(sb.minibox(&["ps"]).ok().contains("svc"));

    // `stop` ends it for good: once its supervisor let go, nothing brings it back.
    sb.minibox(&["stop", "svc"]).ok();
    sb.minibox(&["wait", "svc"]).ok();
    let c = inspect(&sb, "svc");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["RestartCount"], 1);
    // `start` runs it again with a fresh count, and its policy applies again.
    sb.minibox(&["start", "svc"]).ok();
    let c = inspect(&sb, "svc");
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["RestartCount"], 0);
    let pid = c["State"]["Pid"].as_i64().unwrap();
    sb.sh(&format!("kill -9 {pid}")).ok();
    eventually("the container to come back", || {
        inspect(&sb, "svc")["RestartCount"] == 1
    });
    // `rm -f` ends it too.
    sb.minibox(&["rm", "-f", "svc"]).ok();
    sb.finish();
}

#[test]
fn a_crash_loop_shows_restarting_and_stop_cancels_the_wait() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 2",
    ])
    .ok();
    // The waits double (0.1 s, 0.2 s, ... up to a minute): soon it mostly waits.
    eventually("ps to show it restarting", || {
        sb.minibox(&["ps"]).ok().contains("Restarting (2)")
    });
    // `stop` during the wait: its supervisor gives up at once, the container stays exited.
    sb.minibox(&["stop", "loop"]).ok();
    let c = inspect(&sb, "loop");
    assert_eq!(c["State"]["Status"], "exited", "{c}");
    assert_eq!(c["State"]["Restarting"], false);
    assert_eq!(c["State"]["ExitCode"], 2);
    assert!(sb.minibox(&["ps", "-a"]).ok().contains("Exited (2)"));
    sb.minibox(&["rm", "loop"]).ok();
    sb.finish();
}

#[test]
fn system_boot_restarts_always_containers_after_a_simulated_reboot() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.import_web();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        sb.minibox(&all).ok();
    };
    run(&[
        "--name",
        "web",
        "--restart",
        "always",
        "-p",
        "8080:8081",
        "web",
    ]);
    run(&[
        "--name",
        "kept",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    run(&[
        "--name",
        "stopped",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "1000",
    ]);
    run(&["--name", "plain", "busybox", "sleep", "1000"]);
    sb.minibox(&["stop", "stopped"]).ok();
    let get = || sb.sh("timeout 5 busybox wget -qO- http://127.0.0.1:8080/");
    eventually("the web server to answer", || get().code() == 0);

    sb.reboot();
    assert!(
        get().code() != 0,
        "the web server still answers after the reboot"
    );
    assert!(sb.minibox(&["ps", "-q"]).ok().trim().is_empty());

    let booted = sb.minibox(&["system", "boot"]).ok();
    let mut started: Vec<&str> = booted.lines().collect();
    started.sort();
    assert_eq!(started, ["kept", "web"]);
    eventually("the web server to answer again", || get().code() == 0);
    assert_eq!(inspect(&sb, "web")["State"]["Running"], true);
    assert_eq!(inspect(&sb, "kept")["State"]["Running"], true);
    assert_eq!(inspect(&sb, "stopped")["State"]["Running"], false);
    assert_eq!(inspect(&sb, "plain")["State"]["Running"], false);
    // Booting again starts nothing twice.
    let again = sb.minibox(&["system", "boot"]).ok();
    assert_eq!(again.lines().count(), 2);
    assert_eq!(sb.minibox(&["ps", "-q"]).ok().lines().count(), 2);

    sb.minibox(&["rm", "-f", "web", "kept", "stopped", "plain"])
        .ok();
    sb.finish();
}

#[test]
fn health_goes_starting_healthy_unhealthy_as_the_service_changes() {
    let sb = Sandbox::new();
    sb.import_busybox();
    // Failures within the start period do not count: it stays starting until a success.
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "none",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "--health-start-period",
        "1h",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let health = || inspect(&sb, "db")["State"]["Health"].clone();
    assert_eq!(health()["Status"], "starting");
    assert!(sb.minibox(&["ps"]).ok().contains("(health: starting)"));
    eventually("a first probe", || {
        !health()["Log"].as_array().unwrap().is_empty()
    });
    assert_eq!(health()["Status"], "starting");

    sb.minibox(&["exec", "db", "touch", "/tmp/ok"]).ok();
    eventually("healthy", || health()["Status"] == "healthy");
    assert!(sb.minibox(&["ps"]).ok().contains("(healthy)"));
    let with_health = |status: &str| {
        let filter = format!("health={status}");
        let out = sb.minibox(&["ps", "--filter", &filter, "--format", "{{.Names}}"]);
        out.ok()
    };
    assert_eq!(with_health("healthy"), "db\n");
    assert_eq!(with_health("unhealthy"), "");
    assert_eq!(with_health("none"), "");
    let h = health();
    assert_eq!(h["FailingStreak"], 0);
    assert_eq!(h["Log"].as_array().unwrap().last().unwrap()["ExitCode"], 0);

    sb.minibox(&["exec", "db", "rm", "/tmp/ok"]).ok();
    eventually("unhealthy", || health()["Status"] == "unhealthy");
    assert!(sb.minibox(&["ps"]).ok().contains("(unhealthy)"));
    assert_eq!(with_health("unhealthy"), "db\n");
    sb.minibox(&["ps", "--filter", "health=sick"])
        .fails(1, "health=sick");
    let h = health();
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    assert_eq!(h["Log"].as_array().unwrap().last().unwrap()["ExitCode"], 1);
    let c = inspect(&sb, "db");
    assert_eq!(c["Config"]["Healthcheck"]["Test"][1], "test -e /tmp/ok");
    assert_eq!(c["Config"]["Healthcheck"]["Retries"], 2);

    let statuses: Vec<String> = actions(&sb, "db")
        .into_iter()
        .filter(|a| a.starts_with("health_status"))
        .collect();
    assert_eq!(
        statuses,
        ["health_status: healthy", "health_status: unhealthy"]
    );
    sb.minibox(&[
        "run",
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "busybox",
        "true",
    ])
    .fails(125, "--no-healthcheck");
    sb.minibox(&["rm", "-f", "db"]).ok();
    sb.finish();
}

#[test]
fn create_then_start_and_events_show_the_sequence_live() {
    let sb = Sandbox::new();
    sb.import_busybox();
    // Followed live from before the container exists (--since: whatever the follower reads
    // before it starts following shows too).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .to_string();
    let mut follow = sb
        .command(&[
            "events",
            "--since",
            &now,
            "--filter",
            "container=job",
            "--format",
            "{{.Action}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let id = sb
        .minibox(&[
            "create",
            "--name",
            "job",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo hi",
        ])
        .ok();
    assert_eq!(id.trim().len(), 64);
    let c = inspect(&sb, "job");
    assert_eq!(c["State"]["Status"], "created");
    // Docker leaves out what a container does not have.
    assert!(c["State"].get("Health").is_none(), "{c}");
    assert!(c["Config"].get("Healthcheck").is_none(), "{c}");
    assert!(sb.minibox(&["ps", "-a"]).ok().contains("Created"));
    // Nothing recovers a created container as an orphan.
    sb.minibox(&["system", "prune"]).ok();
    sb.minibox(&["start", "job"]).ok();
    assert_eq!(sb.minibox(&["wait", "job"]).ok().trim(), "0");
    assert_eq!(logs(&sb, "job"), "hi\n");
    sb.minibox(&["rm", "job"]).ok();

    let mut seen = Vec::new();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    while seen.last().map(String::as_str) != Some("destroy") {
        seen.push(lines.next().unwrap().unwrap());
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(seen, ["create", "start", "die", "destroy"]);

    // The journal keeps them, with Docker's fields.
    let json = sb
        .minibox(&[
            "events", "--since", "0", "--until", "0s", "--format", "json",
        ])
        .ok();
    let die: Value = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["Action"] == "die")
        .unwrap();
    assert_eq!(die["Type"], "container");
    assert_eq!(die["Actor"]["Attributes"]["name"], "job");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(die["Actor"]["Attributes"]["image"], "busybox");
    sb.minibox(&["events", "--filter", "colour=red"])
        .fails(1, "invalid filter");

    // create --pull never of an image the store lacks: a clear error, nothing made.
    sb.minibox(&["create", "--pull", "never", "nosuch"])
        .fails(125, "nosuch");
    assert!(sb.minibox(&["ps", "-aq"]).ok().trim().is_empty());
    sb.finish();
}

#[test]
fn the_images_healthcheck_from_import_and_commit_change_drives_its_containers() {
    let sb = Sandbox::new();
    let tar = minibox_tests::fixtures::busybox_tarball();
    sb.minibox(&[
        "import",
        tar.to_str().unwrap(),
        "checked",
        "--change",
        "HEALTHCHECK --interval=200ms --retries=2 CMD test -e /tmp/ok",
    ])
    .ok();
    let image: Value =
        serde_json::from_str(&sb.minibox(&["image", "inspect", "checked"]).ok()).unwrap();
    assert_eq!(
        image[0]["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 200_000_000u64,
            "Retries": 2})
    );
    let run = |name: &str, image: &str| {
        sb.minibox(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            image,
            "sleep",
            "1000",
        ])
        .ok();
    };
    // No --health-* flag: the image's check runs.
    run("db", "checked");
    let health = |name: &str| inspect(&sb, name)["State"]["Health"]["Status"].clone();
    assert_eq!(health("db"), "starting");
    sb.minibox(&["exec", "db", "touch", "/tmp/ok"]).ok();
    eventually("healthy", || health("db") == "healthy");
    sb.minibox(&["exec", "db", "rm", "/tmp/ok"]).ok();
    eventually("unhealthy", || health("db") == "unhealthy");
    assert_eq!(
        inspect(&sb, "db")["Config"]["Healthcheck"]["Test"][1],
        "test -e /tmp/ok"
    );

    // commit keeps the image's check; --change replaces it, HEALTHCHECK NONE removes it.
    sb.minibox(&["exec", "db", "touch", "/tmp/ok"]).ok();
    sb.minibox(&["commit", "db", "checked:kept"]).ok();
    sb.minibox(&[
        "commit",
        "--change",
        r#"HEALTHCHECK --interval=200ms CMD ["test", "-e", "/tmp/other"]"#,
        "db",
        "checked:other",
    ])
    .ok();
    sb.minibox(&[
        "commit",
        "--change",
        "HEALTHCHECK NONE",
        "db",
        "checked:none",
    ])
    .ok();
    sb.minibox(&["rm", "-f", "db"]).ok();
    run("kept", "checked:kept");
    eventually("healthy from the committed image", || {
        health("kept") == "healthy"
    });
    run("other", "checked:other");
    assert_eq!(
        inspect(&sb, "other")["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "test", "-e", "/tmp/other"])
    );
    eventually("unhealthy on the new test", || {
        health("other") == "unhealthy"
    });
    run("none", "checked:none");
    let c = inspect(&sb, "none");
    assert!(c["State"].get("Health").is_none(), "{c}");
    assert!(c["Config"].get("Healthcheck").is_none(), "{c}");
    sb.minibox(&[
        "import",
        tar.to_str().unwrap(),
        "x",
        "--change",
        "HEALTHCHECK --every=1s CMD true",
    ])
    .fails(1, "unknown HEALTHCHECK option --every");
    sb.minibox(&["rm", "-f", "kept", "other", "none"]).ok();
    sb.finish();
}

#[test]
fn a_foreground_run_with_a_policy_returns_and_its_container_goes_on_restarting() {
    let sb = Sandbox::new();
    sb.import_busybox();
    // As `docker run` does: the foreground run ends with the first exit's code, and the
    // container is restarted in the background by a supervisor of its own.
    let out = sb.minibox(&[
        "run",
        "--name",
        "fg",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.stdout(), "ran\n");
    eventually("two restarts", || {
        let c = inspect(&sb, "fg");
        c["RestartCount"] == 2
            && c["State"]["Status"] == "exited"
            && !c["State"]["Restarting"].as_bool().unwrap()
    });
    assert_eq!(logs(&sb, "fg"), "ran\nran\nran\n");
    assert_eq!(inspect(&sb, "fg")["State"]["ExitCode"], 3);
    assert_eq!(
        actions(&sb, "fg")
            .iter()
            .filter(|a| *a == "restart")
            .count(),
        2
    );

    // Once restarted it runs on under its supervisor until stopped.
    let out = sb.minibox(&[
        "run",
        "--name",
        "svc",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "test -e /tmp/again || { touch /tmp/again; exit 1; }; exec sleep 1000",
    ]);
    assert_eq!(out.code(), 1, "{out}");
    eventually("running again", || {
        inspect(&sb, "svc")["State"]["Status"] == "running"
    });
    assert_eq!(inspect(&sb, "svc")["RestartCount"], 1);
    sb.minibox(&["stop", "-t", "0", "svc"]).ok();
    assert_eq!(inspect(&sb, "svc")["State"]["Status"], "exited");

    // Without a policy, nothing comes back.
    sb.minibox(&[
        "run",
        "--name",
        "once",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inspect(&sb, "once")["RestartCount"], 0);
    sb.minibox(&["rm", "-f", "fg", "svc", "once"]).ok();
    sb.finish();
}
