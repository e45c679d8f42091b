//! `--link NAME[:ALIAS]`, Docker's legacy option: the alias (and the name) of a running
//! container in the linking container's /etc/hosts, on the default network and on user ones.

use minibox_tests::Sandbox;

#[test]
fn links_name_a_running_container() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&[
        "network",
        "create",
        "lab",
        "--ipv6",
        "--subnet",
        "10.96.0.0/24",
        "--subnet",
        "fd00:96::/64",
    ])
    .ok();
    for (name, network) in [("db", "minibox"), ("cache", "lab")] {
        sb.minibox(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "busybox",
            "sleep",
            "1d",
        ])
        .ok();
    }
    let address = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
        let s = &v[0]["NetworkSettings"];
        (
            s["IPAddress"].as_str().unwrap().to_string(),
            s["GlobalIPv6Address"].as_str().unwrap().to_string(),
        )
    };
    // The default network: the alias resolves to the linked container, and reaches it.
    let (db, _) = address("db");
    let out = sb
        .minibox(&[
            "run",
            "--rm",
            "--link",
            "db:database",
            "busybox",
            "sh",
            "-c",
            "grep database /etc/hosts; ping -c 1 -W 5 database",
        ])
        .ok();
    assert!(out.contains(&format!("{db}\tdatabase db")), "{out}");
    assert!(out.contains("1 packets received"), "{out}");
    // A user network (dual-stack here): both addresses, the name alone when there is no alias.
    let (cache, cache6) = address("cache");
    let out = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "lab",
            "--link",
            "cache",
            "busybox",
            "cat",
            "/etc/hosts",
        ])
        .ok();
    assert!(out.contains(&format!("{cache}\tcache\n")), "{out}");
    assert!(out.contains(&format!("{cache6}\tcache\n")), "{out}");
    // Mistakes: one line each, nothing made.
    for (args, why) in [
        (&["--link", "nosuch"][..], "--link nosuch"),
        (
            &["--link", "cache"],
            "container cache is not running on network minibox",
        ),
        (&["--link", "db:bad alias"], "invalid --link"),
        (
            &["--network", "none", "--link", "db"],
            "links need a bridge network",
        ),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["busybox", "true"]);
        let err = sb.minibox(&full).fails(125, why);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    sb.minibox(&["rm", "-f", "db", "cache"]).ok();
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.finish();
}
