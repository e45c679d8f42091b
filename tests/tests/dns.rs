//! Names (issue #14): containers find each other by name, short id and alias through their
//! networks' DNS servers, live as they come and go; `--add-host` and `host-gateway`; other names
//! through the host's own servers: here dnsmasq on the sandbox host's loopback, which the
//! sandbox's resolv.conf points at, so that no query ever leaves the sandbox.

use minibox_tests::Sandbox;

/// What the test's upstream servers answer for `outside.test`.
const OUTSIDE: &str = "192.0.2.7";
/// What the second upstream (the one given with `--dns`) answers for it.
const OUTSIDE_OWN: &str = "192.0.2.8";

/// Starts the test's upstream DNS servers on the sandbox host, and points its resolv.conf at
/// the first: 127.0.0.1 knows `outside.test` as OUTSIDE, 127.0.0.2 as OUTSIDE_OWN, both say
/// NXDOMAIN to everything else.
fn upstreams(sb: &Sandbox) {
    sb.sh(&format!(
        "set -e
         ip link set lo up
         ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
         for n in 1:{OUTSIDE} 2:{OUTSIDE_OWN}; do
           dnsmasq --user=root --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.${{n%%:*}} \
             --except-interface=minibox0 --address=/outside.test/${{n#*:}} --pid-file=/run/dnsmasq-${{n%%:*}}.pid
         done
         search=$(grep ^search /etc/resolv.conf || true)
         printf 'nameserver 127.0.0.1\\n%s\\n' \"$search\" > /run/resolv.test
         mount --bind /run/resolv.test /etc/resolv.conf"
    ))
    .ok();
}

fn stop_upstreams(sb: &Sandbox) {
    sb.sh("kill $(cat /run/dnsmasq-*.pid)").ok();
}

/// Starts a container that sleeps, with `flags`.
fn start(sb: &Sandbox, name: &str, flags: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sleep", "600"]);
    sb.minibox(&args).ok();
}

/// The IPv4 addresses busybox's nslookup finds for `name` from inside container `from` (asking
/// the server its resolv.conf names); empty when the name is unknown. Asked as a full name:
/// busybox's nslookup never asks a bare name when resolv.conf has a search list.
fn lookup(sb: &Sandbox, from: &str, name: &str) -> Vec<String> {
    lookup_at(sb, from, name, &[])
}

/// [`lookup`], asking `server` when one is given.
fn lookup_at(sb: &Sandbox, from: &str, name: &str, server: &[&str]) -> Vec<String> {
    let fqdn = format!("{name}.");
    let mut args = vec!["exec", from, "nslookup", "-type=a", &fqdn];
    args.extend_from_slice(server);
    let out = sb.minibox(&args);
    let mut found: Vec<String> = out
        .stdout()
        .split("Name:")
        .skip(1)
        .flat_map(|rec| {
            rec.lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found
}

/// A container's address, from `inspect`.
fn address(sb: &Sandbox, name: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
    json[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

fn short_id(sb: &Sandbox, name: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
    json[0]["Id"].as_str().unwrap()[..12].to_string()
}

#[test]
fn names_on_the_default_network_live() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    start(
        &sb,
        "web",
        &["--network-alias", "www", "--network-alias", "api"],
    );
    start(&sb, "client", &[]);
    let web = address(&sb, "web");
    // By name, alias and short id, in any case; the container's resolv.conf names the server.
    for name in ["web", "www", "API", &short_id(&sb, "web")] {
        assert_eq!(lookup(&sb, "client", name), vec![web.clone()], "{name}");
    }
    let resolv = sb
        .minibox(&["exec", "client", "cat", "/etc/resolv.conf"])
        .ok();
    assert!(resolv.starts_with("nameserver 10.77.0.1\n"), "{resolv}");
    // Both ways, and the host's name for itself.
    assert_eq!(lookup(&sb, "web", "client"), vec![address(&sb, "client")]);
    assert_eq!(
        lookup(&sb, "client", "host.minibox.internal"),
        vec!["10.77.0.1"]
    );
    assert_eq!(
        lookup(&sb, "client", "host.docker.internal"),
        vec!["10.77.0.1"]
    );
    // Live: a new container is found at once, a removed one is gone at once.
    start(&sb, "late", &[]);
    assert_eq!(lookup(&sb, "client", "late"), vec![address(&sb, "late")]);
    sb.minibox(&["rm", "-f", "web"]).ok();
    assert!(lookup(&sb, "client", "web").is_empty());
    assert!(lookup(&sb, "client", "www").is_empty());
    // A stopped container answers no more; started again, it does.
    sb.minibox(&["stop", "-t", "0", "late"]).ok();
    assert!(lookup(&sb, "client", "late").is_empty());
    sb.minibox(&["start", "late"]).ok();
    assert_eq!(lookup(&sb, "client", "late"), vec![address(&sb, "late")]);
    sb.minibox(&["rm", "-f", "client", "late"]).ok();
    stop_upstreams(&sb);
    // The network's last container took its DNS server with it (the leftovers check it).
    sb.finish();
}

#[test]
fn networks_do_not_see_each_others_names() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    sb.minibox(&["network", "create", "blue", "--subnet", "10.123.1.0/24"])
        .ok();
    start(&sb, "b1", &["--network", "blue", "--network-alias", "db"]);
    start(&sb, "b2", &["--network", "blue"]);
    start(&sb, "d1", &[]);
    let resolv = sb.minibox(&["exec", "b2", "cat", "/etc/resolv.conf"]).ok();
    assert!(resolv.starts_with("nameserver 10.123.1.1\n"), "{resolv}");
    assert_eq!(lookup(&sb, "b2", "db"), vec![address(&sb, "b1")]);
    assert_eq!(lookup(&sb, "b2", "b1"), vec![address(&sb, "b1")]);
    // Across networks nothing: neither by asking its own server nor the other network's.
    assert!(lookup(&sb, "d1", "b1").is_empty());
    assert!(lookup(&sb, "d1", "db").is_empty());
    assert!(lookup(&sb, "b1", "d1").is_empty());
    assert!(lookup_at(&sb, "d1", "b1", &["10.123.1.1"]).is_empty());
    // External names go to the host's servers, from both networks.
    assert_eq!(lookup(&sb, "b1", "outside.test"), vec![OUTSIDE]);
    assert_eq!(lookup(&sb, "d1", "outside.test"), vec![OUTSIDE]);
    sb.minibox(&["rm", "-f", "b1", "b2", "d1"]).ok();
    sb.minibox(&["network", "rm", "blue"]).ok();
    stop_upstreams(&sb);
    sb.finish();
}

#[test]
fn external_names_through_the_hosts_or_the_containers_servers() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    // The host's resolv.conf names 127.0.0.1: the network's server reaches it (Docker would
    // have to drop it); `--dns` sends the container's other queries elsewhere.
    start(&sb, "plain", &[]);
    start(
        &sb,
        "own",
        &[
            "--dns",
            "127.0.0.2",
            "--dns-search",
            "corp.test",
            "--dns-option",
            "timeout:3",
        ],
    );
    assert_eq!(lookup(&sb, "plain", "outside.test"), vec![OUTSIDE]);
    assert_eq!(lookup(&sb, "own", "outside.test"), vec![OUTSIDE_OWN]);
    // Container names still come first with `--dns`.
    assert_eq!(lookup(&sb, "own", "plain"), vec![address(&sb, "plain")]);
    assert!(lookup(&sb, "plain", "nowhere.test").is_empty());
    let resolv = sb.minibox(&["exec", "own", "cat", "/etc/resolv.conf"]).ok();
    assert_eq!(
        resolv,
        "nameserver 10.77.0.1\nsearch corp.test\noptions timeout:3 ndots:0\n"
    );
    sb.minibox(&["rm", "-f", "plain", "own"]).ok();
    // Over TCP too (what resolvers fall back to for long answers).
    start(&sb, "tcp", &[]);
    // A query for outside.test, framed for TCP (length first), sent from the sandbox host.
    let query = r"\000\036\022\064\001\000\000\001\000\000\000\000\000\000\007outside\004test\000\000\001\000\001";
    let out = sb.sh(&format!(
        "printf '{query}' | busybox nc -w 3 10.77.0.1 53 | od -An -tu1 | tr -s ' \\n' ' '"
    ));
    assert!(out.stdout().contains(" 192 0 2 7"), "{out}");
    sb.minibox(&["rm", "-f", "tcp"]).ok();
    // Without a bridge network, the flags still shape resolv.conf.
    let none = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "a.test",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ])
        .ok();
    assert_eq!(none, "nameserver 192.0.2.53\nsearch a.test\n");
    stop_upstreams(&sb);
    sb.finish();
}

#[test]
fn add_host_and_host_gateway() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    // A web server on the sandbox host, which containers reach through their gateway.
    sb.sh(
        "mkdir -p /run/www && echo from-the-host > /run/www/index.html
         busybox httpd -f -p 8099 -h /run/www >/dev/null 2>&1 &
         echo $! > /run/httpd.pid",
    )
    .ok();
    let got = sb
        .minibox(&[
            "run",
            "--rm",
            "--add-host",
            "db.local:10.9.8.7",
            "--add-host",
            "gw:host-gateway",
            "busybox",
            "sh",
            "-c",
            "grep -E 'db.local|gw' /etc/hosts; timeout 5 wget -qO- http://gw:8099/",
        ])
        .ok();
    assert_eq!(got, "10.9.8.7\tdb.local\n10.77.0.1\tgw\nfrom-the-host\n");
    // Through the network's DNS as well, by Docker's name for the host.
    let got = sb
        .minibox(&[
            "run",
            "--rm",
            "busybox",
            "timeout",
            "5",
            "wget",
            "-qO-",
            "http://host.docker.internal:8099/",
        ])
        .ok();
    assert_eq!(got, "from-the-host\n");
    // With the host's network, host-gateway is the host itself.
    let got = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "host",
            "--add-host",
            "gw:host-gateway",
            "busybox",
            "grep",
            "gw",
            "/etc/hosts",
        ])
        .ok();
    assert_eq!(got, "127.0.0.1\tgw\n");
    // Bad input: one line, nothing made.
    for (flags, needle) in [
        (
            vec!["--add-host", "nocolon"],
            "invalid --add-host \"nocolon\": expected NAME:IP",
        ),
        (
            vec!["--add-host", "x:notanip"],
            "expected NAME:IP or NAME:host-gateway",
        ),
        (
            vec!["--network", "none", "--add-host", "x:host-gateway"],
            "host-gateway needs a network",
        ),
        (
            vec!["--dns", "resolver"],
            "invalid --dns \"resolver\": expected an IP address",
        ),
        (
            vec!["--network", "host", "--network-alias", "a"],
            "aliases need a bridge network",
        ),
        (
            vec!["--network-alias", "bad name"],
            "invalid --network-alias",
        ),
        (
            vec!["--network", "minibox", "--network", "host"],
            "--network host cannot be combined",
        ),
        (
            vec!["--network", "minibox", "--network", "minibox"],
            "--network minibox is given twice",
        ),
        (
            vec!["--network", "minibox", "--network", "nosuch"],
            "network nosuch not found",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["busybox", "true"]);
        sb.minibox(&args).fails(125, needle);
    }
    sb.sh("kill $(cat /run/httpd.pid)").ok();
    stop_upstreams(&sb);
    sb.finish();
}

#[test]
fn chosen_ip_and_mac_address_and_their_errors() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    sb.minibox(&["network", "create", "lab", "--subnet", "10.124.0.0/24"])
        .ok();
    start(
        &sb,
        "fixed",
        &[
            "--network",
            "lab",
            "--ip",
            "10.124.0.50",
            "--mac-address",
            "02:42:AA:BB:CC:DD",
        ],
    );
    start(&sb, "peer", &["--network", "lab"]);
    let link = sb
        .minibox(&["exec", "fixed", "ip", "addr", "show", "eth0"])
        .ok();
    assert!(link.contains("inet 10.124.0.50/24"), "{link}");
    assert!(link.contains("link/ether 02:42:aa:bb:cc:dd"), "{link}");
    assert_eq!(lookup(&sb, "peer", "fixed"), vec!["10.124.0.50"]);
    // `network inspect` lists the containers by name, with their addresses, as Docker does.
    let json: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["network", "inspect", "lab"]).ok()).unwrap();
    let containers = json[0]["Containers"].as_object().unwrap();
    let fixed = containers
        .values()
        .find(|c| c["Name"] == "fixed")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(fixed["IPv4Address"], "10.124.0.50/24");
    assert_eq!(fixed["MacAddress"], "02:42:aa:bb:cc:dd");
    assert!(containers.values().any(|c| c["Name"] == "peer"), "{json}");
    // Refused in one line, nothing made: the address taken, outside the subnet, no such
    // network, an address on the default network.
    for (flags, needle) in [
        (
            vec!["--network", "lab", "--ip", "10.124.0.50"],
            "10.124.0.50 is already in use on lab",
        ),
        (
            vec!["--network", "lab", "--ip", "10.125.0.5"],
            "outside lab's subnet 10.124.0.0/24",
        ),
        (vec!["--network", "nosuch"], "network nosuch not found"),
        (vec!["--ip", "10.77.0.50"], "needs a user-defined network"),
        (
            vec!["--network", "lab", "--mac-address", "01:00:5e:00:00:01"],
            "unicast",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["busybox", "true"]);
        sb.minibox(&args).fails(125, needle);
    }
    let ps = sb.minibox(&["ps", "-a", "-q"]).ok();
    assert_eq!(ps.lines().count(), 2, "{ps}");
    sb.minibox(&["rm", "-f", "fixed", "peer"]).ok();
    // The address is free again.
    let got = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "lab",
            "--ip",
            "10.124.0.50",
            "busybox",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .ok();
    assert!(got.contains("10.124.0.50/24"), "{got}");
    sb.minibox(&["network", "rm", "lab"]).ok();
    stop_upstreams(&sb);
    sb.finish();
}

#[test]
fn network_prune_removes_unused_networks() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    for (name, subnet) in [("used", "10.126.0.0/24"), ("idle", "10.127.0.0/24")] {
        sb.minibox(&["network", "create", name, "--subnet", subnet])
            .ok();
    }
    start(&sb, "c", &["--network", "used"]);
    assert_eq!(
        sb.minibox(&["network", "prune", "-f"]).ok(),
        "Deleted Networks:\nidle\n"
    );
    let ls = sb.minibox(&["network", "ls"]).ok();
    assert!(ls.contains("used") && !ls.contains("idle"), "{ls}");
    sb.minibox(&["rm", "-f", "c"]).ok();
    assert_eq!(
        sb.minibox(&["network", "prune"]).ok(),
        "Deleted Networks:\nused\n"
    );
    // The default network is never pruned; nothing left: nothing said.
    assert!(sb.minibox(&["network", "ls"]).ok().contains("minibox"));
    assert_eq!(sb.minibox(&["network", "prune"]).ok(), "");
    stop_upstreams(&sb);
    sb.finish();
}

#[test]
fn three_containers_on_two_networks_and_connect_live() {
    let sb = Sandbox::new();
    sb.import_busybox();
    upstreams(&sb);
    for (name, subnet) in [("front", "10.128.0.0/24"), ("back", "10.129.0.0/24")] {
        sb.minibox(&["network", "create", name, "--subnet", subnet])
            .ok();
    }
    start(&sb, "web", &["--network", "front"]);
    start(
        &sb,
        "app",
        &[
            "--network",
            "front",
            "--network",
            "back",
            "--network-alias",
            "api",
        ],
    );
    start(&sb, "db", &["--network", "back"]);
    // app has one interface per network, in the order given.
    let links = sb.minibox(&["exec", "app", "ip", "-4", "-o", "addr"]).ok();
    assert!(
        links.contains("eth0    inet 10.128.0.") && links.contains("eth1    inet 10.129.0."),
        "{links}"
    );
    let on = |name: &str, prefix: &str| {
        let got = lookup(&sb, "app", name);
        assert!(
            got.len() == 1 && got[0].starts_with(prefix),
            "{name}: {got:?}"
        );
        got[0].clone()
    };
    // app, on both, sees both sides; web and db see app on their own network, not each other.
    let web = on("web", "10.128.0.");
    let db = on("db", "10.129.0.");
    assert_eq!(lookup(&sb, "web", "app").len(), 1);
    assert!(lookup(&sb, "web", "app")[0].starts_with("10.128.0."));
    assert!(lookup(&sb, "db", "api")[0].starts_with("10.129.0."));
    assert!(lookup(&sb, "web", "db").is_empty());
    assert!(lookup(&sb, "db", "web").is_empty());
    // Connected live, with an alias and an address of its choosing: web now finds db.
    sb.minibox(&[
        "network",
        "connect",
        "--alias",
        "store",
        "--ip",
        "10.128.0.77",
        "front",
        "db",
    ])
    .ok();
    assert_eq!(lookup(&sb, "web", "db"), vec!["10.128.0.77"]);
    assert_eq!(lookup(&sb, "web", "store"), vec!["10.128.0.77"]);
    assert_eq!(lookup(&sb, "db", "web"), vec![web.clone()]);
    let json: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["network", "inspect", "front"]).ok()).unwrap();
    let db_there = json[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .find(|c| c["Name"] == "db")
        .unwrap_or_else(|| panic!("{json}"))
        .clone();
    assert_eq!(db_there["IPv4Address"], "10.128.0.77/24");
    let ping = sb.minibox(&["exec", "web", "ping", "-c", "1", "-W", "2", "10.128.0.77"]);
    assert_eq!(ping.code(), 0, "{ping}");
    // Errors in one line, nothing changed.
    sb.minibox(&["network", "connect", "front", "db"])
        .fails(1, "container db is already connected to network front");
    sb.minibox(&["network", "connect", "--ip", "10.128.0.77", "back", "web"])
        .fails(1, "outside back's subnet");
    sb.minibox(&["network", "connect", "--ip", "10.129.0.99", "nosuch", "web"])
        .fails(1, "network nosuch not found");
    sb.minibox(&["network", "connect", "--ip", &db, "back", "web"])
        .fails(1, "is already in use on back");
    sb.minibox(&["network", "disconnect", "back", "web"])
        .fails(1, "container web is not connected to network back");
    // Disconnected live: the name is gone, the interface too.
    sb.minibox(&["network", "disconnect", "front", "db"]).ok();
    assert!(lookup(&sb, "web", "db").is_empty());
    assert!(lookup(&sb, "web", "store").is_empty());
    let links = sb.minibox(&["exec", "db", "ip", "-o", "link"]).ok();
    assert!(!links.contains("eth1"), "{links}");
    assert_eq!(on("db", "10.129.0."), db);
    sb.minibox(&["rm", "-f", "web", "app", "db"]).ok();
    sb.minibox(&["network", "rm", "front", "back"]).ok();
    stop_upstreams(&sb);
    sb.finish();
}

/// Whether something listens on UDP port 53 of `gateway` on the sandbox host.
fn served_at(sb: &Sandbox, gateway: &str) -> bool {
    sb.sh("ss -Hlnu 'sport = :53'")
        .ok()
        .contains(&format!("{gateway}:53"))
}

/// The network's DNS server starts after the container got its go, not before: still, it
/// answers the first container's own name as soon as `run -d` has returned.
#[test]
fn the_server_answers_as_soon_as_run_returns() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&["network", "create", "fresh", "--subnet", "10.123.2.0/24"])
        .ok();
    assert!(!served_at(&sb, "10.123.2.1"));
    start(&sb, "first", &["--network", "fresh"]);
    assert_eq!(lookup(&sb, "first", "first"), vec![address(&sb, "first")]);
    sb.minibox(&["rm", "-f", "first"]).ok();
    assert!(
        !served_at(&sb, "10.123.2.1"),
        "the server outlived its network's last container"
    );
    sb.minibox(&["network", "rm", "fresh"]).ok();
    sb.finish();
}

/// A `run` killed between its attach (which bound the network's port 53 and claimed its server)
/// and its container's go: no server runs, and the network's next container starts one.
#[test]
fn a_run_killed_after_its_attach_leaves_a_network_that_still_gets_a_server() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&["network", "create", "fresh", "--subnet", "10.123.2.0/24"])
        .ok();
    let killed = sb
        .command(&[
            "run",
            "--name",
            "lost",
            "--network",
            "fresh",
            "busybox",
            "sleep",
            "600",
        ])
        .env("MINIBOX_FAULT", "attached")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.status.signal(), Some(9), "{killed:?}");
    // Its sockets and its claim on the server died with it.
    assert!(!served_at(&sb, "10.123.2.1"));
    start(&sb, "next", &["--network", "fresh"]);
    assert!(served_at(&sb, "10.123.2.1"));
    assert_eq!(lookup(&sb, "next", "next"), vec![address(&sb, "next")]);
    sb.minibox(&["rm", "-f", "next"]).ok();
    // The next command recovers the dead run's container (and with it the server).
    sb.minibox(&["ps", "-a"]).ok();
    assert!(!served_at(&sb, "10.123.2.1"));
    sb.minibox(&["network", "rm", "fresh"]).ok();
    sb.finish();
}
