//! Many minibox commands at once: detached runs with published ports, removals, and a race for
//! one name. Each container has its own lock, names are claimed atomically, and the network
//! store serialises its allocations.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use minibox_tests::Sandbox;

/// Runs `f(i)` for `0..n` on `n` threads at once.
fn all_at_once<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                s.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn fifty_concurrent_detached_runs_with_ports_then_fifty_concurrent_removals() {
    let sb = Sandbox::new();
    sb.import_web();
    // The default network is defined on first use; netns's definition is not yet written
    // atomically (reported), so define it before the race.
    sb.minibox(&["network", "ls"]).ok();
    let ids = all_at_once(50, |i| {
        let port = format!("{}:8081", 9100 + i);
        sb.minibox(&["run", "-d", "-p", &port, "web"])
            .ok()
            .trim()
            .to_string()
    });
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50);
    let mut addresses = HashSet::new();
    for id in &ids {
        let doc: serde_json::Value =
            serde_json::from_str(&sb.minibox(&["inspect", id]).ok()).unwrap();
        assert_eq!(doc[0]["State"]["Running"], true);
        addresses.insert(
            doc[0]["NetworkSettings"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        addresses.len(),
        50,
        "addresses are not distinct: {addresses:?}"
    );
    for i in 0..50 {
        let start = Instant::now();
        let url = format!("http://127.0.0.1:{}/", 9100 + i);
        while sb.sh(&format!("curl -s -m 2 {url}")).stdout() != "web\n" {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{url} does not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let ps = sb.minibox(&["ps", "-q"]).ok();
    assert_eq!(ps.lines().count(), 50);
    all_at_once(50, |i| sb.minibox(&["rm", "-f", &ids[i]]).ok());
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    sb.finish();
}

#[test]
fn concurrent_runs_with_one_name_exactly_one_wins() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let outs = all_at_once(20, |_| {
        sb.minibox(&[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "none",
            "busybox",
            "sleep",
            "100",
        ])
    });
    let winners: Vec<_> = outs.iter().filter(|o| o.code() == 0).collect();
    assert_eq!(
        winners.len(),
        1,
        "{}",
        outs.iter().map(|o| o.to_string()).collect::<String>()
    );
    for o in outs.iter().filter(|o| o.code() != 0) {
        o.fails(125, "already in use");
    }
    // The losers left nothing: one container, one state dir, one cgroup.
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok().lines().count(), 1);
    let winner = winners[0].stdout().trim().to_string();
    assert_eq!(sb.minibox(&["ps", "-q", "--no-trunc"]).ok().trim(), winner);
    sb.minibox(&["rm", "-f", "x"]).ok();
    sb.finish();
}

#[test]
fn ps_lists_a_hundred_containers() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let ids: Vec<String> = all_at_once(10, |_| {
        (0..10)
            .map(|_| {
                sb.minibox(&["run", "-d", "--network", "none", "busybox", "sleep", "1000"])
                    .ok()
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
    })
    .concat();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let out = sb.minibox(&["ps"]).ok();
        best = best.min(start.elapsed());
        assert_eq!(out.lines().count(), 101);
    }
    // Its speed is bench/run's to judge (a timed assertion fails on a loaded machine).
    println!("ps with 100 running containers: {best:?} (debug build, nsenter included)");
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    sb.minibox(&rm).ok();
    sb.finish();
}
