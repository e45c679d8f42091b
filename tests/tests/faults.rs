//! Crash recovery: minibox (the foreground `run`, or a container's supervisor) killed with
//! SIGKILL at each point of the set-up and while the container runs. The next command finds
//! the container's owner gone and undoes what it held; then nothing is left, and a new
//! container takes the same name and port.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use minibox_tests::Sandbox;

/// The points of the set-up where `MINIBOX_FAULT` kills minibox (see `container/start.rs`).
const POINTS: [&str; 8] = [
    "created", "config", "rootfs", "etc", "spawned", "cgroup", "attached", "running",
];

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_web();
    sb
}

/// After a crash: one command recovers, then nothing is left, and the name and port are free.
#[track_caller]
fn recovered_and_reusable(sb: &Sandbox, what: &str) {
    let ps = sb.minibox(&["ps", "-a"]);
    ps.ok();
    assert_eq!(ps.stderr(), "", "{what}: the recovery complained");
    let left = sb.leftovers();
    if !left.is_empty() {
        // Who still holds a lock, and what still runs: what kept the recovery away.
        let seen = sb.sh("cat /proc/locks; ps -eo pid,ppid,stat,wchan:24,args | grep minibox");
        panic!(
            "{what}: left behind:\n{}\n{}",
            left.join("\n"),
            seen.stdout()
        );
    }
    let id = sb
        .minibox(&["run", "-d", "--name", "svc", "-p", "8080:8081", "web"])
        .ok();
    let start = Instant::now();
    while sb.sh("curl -s -m 2 http://127.0.0.1:8080/").stdout() != "web\n" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the new container does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.minibox(&["rm", "-f", id.trim()]).ok();
    let left = sb.leftovers();
    assert!(
        left.is_empty(),
        "{what}: left behind after rm:\n{}",
        left.join("\n")
    );
}

/// `run [-d] --rm` of a service killed at each point of its set-up (the foreground `run`, or with
/// `-d` the process that becomes the supervisor), then recovered by the next command.
fn killed_at_each_point_of_the_set_up(detach: bool) {
    use std::os::unix::process::ExitStatusExt;
    let sb = sandbox();
    let mut args = vec!["run", "--rm", "--name", "svc", "-p", "8080:8081", "web"];
    if detach {
        args.insert(1, "-d");
    }
    for point in POINTS {
        let out = sb
            .command(&args)
            .env("MINIBOX_FAULT", point)
            .output()
            .unwrap();
        if detach {
            // "created" and "config" are reached before the fork: the command itself dies.
            assert_ne!(out.status.code(), Some(0), "{point}: {out:?}");
        } else {
            assert_eq!(out.status.signal(), Some(9), "{point}: not killed");
        }
        recovered_and_reusable(&sb, point);
    }
    sb.finish();
}

#[test]
fn foreground_run_killed_at_each_point_of_the_set_up() {
    killed_at_each_point_of_the_set_up(false);
}

#[test]
fn supervisor_killed_at_each_point_of_the_set_up() {
    killed_at_each_point_of_the_set_up(true);
}

/// Starts a foreground `run` of the web demo named svc, waits until it listens and is
/// recorded as running (a moment after its exec), then SIGKILLs that `run`.
fn kill_foreground_run(sb: &Sandbox, args: &[&str]) {
    let mut child = sb.command(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listen"), "{line}");
    let start = Instant::now();
    while !sb
        .minibox(&["inspect", "svc"])
        .stdout()
        .contains("\"running\"")
    {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `run` does not sweep every container: it recovers the holders of the name and the port it
/// claims, so a dead run's leftovers never stand in its way, with no other command between.
#[test]
fn the_next_run_frees_the_name_and_port_a_dead_run_held() {
    let sb = sandbox();
    kill_foreground_run(
        &sb,
        &["run", "--rm", "--name", "svc", "-p", "8080:8081", "web"],
    );
    let id = sb
        .minibox(&["run", "-d", "--name", "svc", "-p", "8080:8081", "web"])
        .ok();
    let start = Instant::now();
    while sb.sh("curl -s -m 2 http://127.0.0.1:8080/").stdout() != "web\n" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new container does not answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A live holder still wins: the name is refused, in one line.
    sb.minibox(&["run", "--name", "svc", "web"])
        .fails(125, "already in use");
    sb.minibox(&["rm", "-f", id.trim()]).ok();
    sb.finish();
}

#[test]
fn foreground_run_killed_while_the_container_runs() {
    let sb = sandbox();
    for rm in [true, false] {
        let mut args = vec!["run", "--name", "svc", "-p", "8080:8081", "web"];
        if rm {
            args.insert(1, "--rm");
        }
        kill_foreground_run(&sb, &args);
        if !rm {
            // Kept, as killed: its name stays taken until it is removed.
            let ps = sb.minibox(&["ps", "-a"]).ok();
            assert!(ps.contains("Exited (137)"), "{ps}");
            sb.minibox(&["run", "--name", "svc", "web"])
                .fails(125, "already in use");
            sb.minibox(&["rm", "svc"]).ok();
        }
        recovered_and_reusable(&sb, if rm { "--rm" } else { "kept" });
    }
    sb.finish();
}

/// SIGKILLs the supervisor of the running container `name`, and waits for the container to die
/// with it.
fn kill_supervisor(sb: &Sandbox, name: &str) {
    let doc: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
    let pid = doc[0]["State"]["Pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let supervisor: i32 = after.split(' ').nth(1).unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the container outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn supervisor_killed_while_the_container_runs() {
    let sb = sandbox();
    for rm in [true, false] {
        let mut args = vec!["run", "-d", "--name", "svc", "-p", "8080:8081", "web"];
        if rm {
            args.insert(1, "--rm");
        }
        sb.minibox(&args).ok();
        kill_supervisor(&sb, "svc");
        if !rm {
            let ps = sb.minibox(&["ps", "-a"]).ok();
            assert!(ps.contains("Exited (137)"), "{ps}");
            sb.minibox(&["rm", "svc"]).ok();
        }
        recovered_and_reusable(&sb, if rm { "--rm" } else { "kept" });
    }
    sb.finish();
}

/// Recovery is scoped to what a command needs: `network rm` recovers the dead containers on
/// that network, `rmi` those made from its image, and neither touches another dead container
/// (left for `ps`, which shows it exited, or for whatever claims what it holds).
#[test]
fn network_rm_and_rmi_recover_only_the_containers_in_their_way() {
    let sb = sandbox();
    sb.import_busybox();
    sb.minibox(&["network", "create", "lab", "--subnet", "10.99.71.0/24"])
        .ok();
    let run = |name: &str, args: &[&str]| {
        let mut all = vec!["run", "-d", "--rm", "--name", name];
        all.extend(args);
        let id = sb.minibox(&all).ok().trim().to_string();
        kill_supervisor(&sb, name);
        id
    };
    let on_lab = run("onlab", &["--network", "lab", "web"]);
    let of_busybox = run("ofbusybox", &["busybox", "sleep", "600"]);
    let bystander = run("bystander", &["web"]);
    // Each is in the way of its command: without recovery both would be refused as in use.
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.minibox(&["rmi", "busybox"]).ok();
    let left = sb.leftovers();
    for gone in [&on_lab, &of_busybox] {
        assert!(
            left.iter().all(|l| !l.contains(&gone[..12])),
            "{gone:.12} is left:\n{}",
            left.join("\n")
        );
    }
    // The bystander was in nobody's way: its records wait for the next command that needs
    // them, here `ps`, which finds it dead and recovers it.
    assert!(
        left.iter().any(|l| l.contains(&bystander[..12])),
        "{left:?}"
    );
    let ps = sb.minibox(&["ps", "-a"]).ok();
    assert!(!ps.contains("bystander"), "{ps}");
    sb.finish();
}

#[test]
fn system_prune_recovers_too() {
    let sb = sandbox();
    let out = sb
        .command(&["run", "--rm", "--name", "svc", "-p", "8080:8081", "web"])
        .env("MINIBOX_FAULT", "attached")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let pruned = sb.minibox(&["system", "prune"]).ok();
    assert!(pruned.contains("recovered"), "{pruned}");
    assert!(sb.leftovers().is_empty(), "{:?}", sb.leftovers());
    sb.finish();
}

#[test]
fn supervisor_killed_while_tearing_down() {
    let sb = sandbox();
    for rm in [true, false] {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            "svc",
            "-p",
            "8080:8081",
            "web",
            "sh",
            "-c",
            "exit 3",
        ];
        if rm {
            args.insert(2, "--rm");
        }
        // The supervisor inherits the environment: it dies once it recorded the exit.
        let id = sb
            .command(&args)
            .env("MINIBOX_FAULT", "finishing")
            .output()
            .unwrap();
        assert!(id.status.success(), "{id:?}");
        let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
        let start = Instant::now();
        while sb.minibox(&["ps", "-q"]).stdout().contains(&id[..12]) {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(20));
        }
        if !rm {
            // The exit recorded before the crash is kept.
            let doc: serde_json::Value =
                serde_json::from_str(&sb.minibox(&["inspect", &id]).ok()).unwrap();
            assert_eq!(doc[0]["State"]["ExitCode"], 3);
            sb.minibox(&["rm", &id]).ok();
        }
        recovered_and_reusable(&sb, if rm { "--rm" } else { "kept" });
    }
    sb.finish();
}

#[test]
fn rm_killed_halfway_is_finished_by_prune() {
    let sb = sandbox();
    let id = sb
        .minibox(&["run", "-d", "--name", "svc", "web", "true"])
        .ok();
    sb.minibox(&["wait", id.trim()]).ok();
    let out = sb
        .command(&["rm", "svc"])
        .env("MINIBOX_FAULT", "removing")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let pruned = sb.minibox(&["system", "prune"]).ok();
    assert!(pruned.contains("removed"), "{pruned}");
    recovered_and_reusable(&sb, "rm");
    sb.finish();
}

/// `run --rm --name svc -p 8080:8081 web CMD` with the fault point `fault` armed.
fn run_svc_with_fault(sb: &Sandbox, fault: &str, cmd: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--rm", "--name", "svc", "-p", "8080:8081", "web"];
    args.extend_from_slice(cmd);
    sb.command(&args)
        .env("MINIBOX_FAULT", fault)
        .output()
        .unwrap()
}

/// The process that finishes a foreground run's network teardown in the background dies before
/// it does: the next command finds the teardown unfinished and finishes it.
#[test]
fn background_network_teardown_killed() {
    let sb = sandbox();
    let out = run_svc_with_fault(&sb, "detaching", &["true"]);
    assert!(out.status.success(), "{out:?}");
    let rules = sb.firewall_rules();
    assert!(
        rules.contains("minibox:"),
        "nothing was left to recover:\n{rules}"
    );
    recovered_and_reusable(&sb, "background teardown");
    sb.finish();
}

/// The background process that removes a `run --rm` container once `run` returned dies halfway
/// (after the network and cgroup are released; after the files too): its record is left,
/// renamed, and the next command finishes the removal: nothing is left, and the name and port
/// are free.
#[test]
fn background_removal_killed_halfway() {
    let sb = sandbox();
    for point in ["released", "removing"] {
        let out = run_svc_with_fault(&sb, point, &["sh", "-c", "exit 5"]);
        assert_eq!(out.status.code(), Some(5), "{point}: {out:?}");
        // The removal's process died (its lock is free): its record is still there.
        sb.settle();
        let records = sb.sh("ls -A /run/minibox/containers").stdout();
        assert!(
            records.starts_with(".rm-"),
            "{point}: nothing was left to recover: {records:?}"
        );
        recovered_and_reusable(&sb, point);
    }
    sb.finish();
}
