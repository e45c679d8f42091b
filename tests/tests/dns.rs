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
