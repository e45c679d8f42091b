//! IPv6 end to end: dual-stack networks (`network create --ipv6`), container to container, ports
//! published on `[::]`, an outside client over IPv6, NAT66 out, under both firewall drivers.
//! Traffic only goes to the sandbox's own namespaces: an "outside" namespace on an uplink the
//! test builds plays the remote client and the upstream ("internet") server, with no route back
//! to the containers' subnets, so that replies only come back through NAT.

use std::time::Duration;

use minibox_tests::Sandbox;

/// The sandbox host's uplink addresses, and the outside namespace's (documentation ranges).
const HOST: &str = "198.51.100.1";
const OUTSIDE: &str = "198.51.100.2";
const HOST6: &str = "2001:db8:1::1";
const OUTSIDE6: &str = "2001:db8:1::2";

/// The uplink, dual-stack, with an upstream web server on the outside (`[::]:80`, "upstream").
fn build_uplink(sb: &Sandbox) {
    sb.sh(&format!(
        "set -e
         ip netns add outside
         ip link add up0 type veth peer name up1 netns outside
         ip addr add {HOST}/24 dev up0 && ip addr add {HOST6}/64 dev up0 nodad
         ip link set up0 up
         ip -n outside addr add {OUTSIDE}/24 dev up1 && ip -n outside addr add {OUTSIDE6}/64 dev up1 nodad
         ip -n outside link set up1 up && ip -n outside link set lo up
         ip route add default via {OUTSIDE} && ip -6 route add default via {OUTSIDE6}
         mkdir -p /run/upstream && echo upstream > /run/upstream/index.html
         ip netns exec outside busybox httpd -p [::]:80 -h /run/upstream"
    ))
    .ok();
}

fn remove_uplink(sb: &Sandbox) {
    sb.sh("ip netns pids outside | xargs -r kill; ip netns delete outside")
        .ok();
}

/// An HTTP GET from the sandbox host, retried for a moment while the server starts; `ns` runs
/// it in that namespace instead.
fn get(sb: &Sandbox, ns: Option<&str>, url: &str) -> String {
    let exec = ns
        .map(|n| format!("ip netns exec {n} "))
        .unwrap_or_default();
    for _ in 0..30 {
        let got = sb
            .sh(&format!("{exec}timeout 5 busybox wget -qO- http://{url}/"))
            .stdout();
        if !got.is_empty() {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    String::new()
}

/// An HTTP GET from a fresh container on `network`.
fn get_from_container(sb: &Sandbox, network: &str, url: &str) -> String {
    sb.minibox(&[
        "run",
        "--rm",
        "--network",
        network,
        "web",
        "timeout",
        "5",
        "wget",
        "-qO-",
        &format!("http://{url}/"),
    ])
    .stdout()
}

fn inspect(sb: &Sandbox, what: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect"];
    args.extend_from_slice(what);
    serde_json::from_str(&sb.minibox(&args).ok()).unwrap()
}

fn dual_stack(firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_web();
    build_uplink(&sb);
    // Forwarding drops by default in both families, as Docker leaves a host.
    sb.sh("iptables -P FORWARD DROP; ip6tables -P FORWARD DROP")
        .ok();
    sb.dual_stack_network("lab", "10.99.0.0/24", "fd00:99::/64");
    for (name, port) in [("web1", "8080"), ("web2", "8081")] {
        let publish = format!("{port}:8081");
        sb.minibox(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "lab",
            "-p",
            &publish,
            "web",
            "/bin/web",
            name,
        ])
        .ok();
    }
    // Addresses as inspect shows them: the IPv6 one at the IPv4 one's offset.
    let c = inspect(&sb, &["web1"]);
    let settings = &c[0]["NetworkSettings"];
    let (v4, v6) = (
        settings["IPAddress"].as_str().unwrap(),
        settings["GlobalIPv6Address"].as_str().unwrap(),
    );
    assert_eq!(v6, format!("fd00:99::{}", v4.rsplit('.').next().unwrap()));
    assert_eq!(settings["GlobalIPv6PrefixLen"], 64);
    assert_eq!(settings["IPv6Gateway"], "fd00:99::1");
    assert_eq!(settings["Networks"]["lab"]["GlobalIPv6Address"], v6);
    let ports = &settings["Ports"]["8081/tcp"];
    assert_eq!(ports[1]["HostIp"], "::", "{ports}");
    let net = inspect(&sb, &["--type", "network", "lab"]);
    assert_eq!(net[0]["EnableIPv6"], true);
    assert_eq!(net[0]["IPAM"]["Config"][1]["Subnet"], "fd00:99::/64");
    let id = c[0]["Id"].as_str().unwrap();
    assert_eq!(net[0]["Containers"][id]["IPv6Address"], format!("{v6}/64"));
    // `port` and `ps` as Docker prints them.
    assert_eq!(
        sb.minibox(&["port", "web1"]).ok(),
        "8081/tcp -> 0.0.0.0:8080\n8081/tcp -> [::]:8080\n"
    );
    let ps = sb.minibox(&["ps"]).ok();
    assert!(
        ps.contains("0.0.0.0:8080->8081/tcp, :::8080->8081/tcp"),
        "{ps}"
    );
    // Inside: the address (usable at once: no DAD) and the default route.
    let inside = sb
        .minibox(&[
            "exec",
            "web1",
            "sh",
            "-c",
            "ip -6 addr show eth0; ip -6 route",
        ])
        .ok();
    assert!(inside.contains(&format!("inet6 {v6}/64")), "{inside}");
    assert!(!inside.contains("tentative"), "{inside}");
    assert!(inside.contains("default via fd00:99::1"), "{inside}");

    let web2 = inspect(&sb, &["web2"]);
    let v6_2 = web2[0]["NetworkSettings"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    // Container to container over IPv6.
    assert_eq!(
        get_from_container(&sb, "lab", &format!("[{v6_2}]:8081")),
        "web2\n"
    );
    // By name: the network's DNS answers AAAA with the IPv6 address, and it is reachable.
    let aaaa = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "lab",
            "web",
            "sh",
            "-c",
            "nslookup -type=AAAA web2 && ping6 -c 1 -W 5 web2",
        ])
        .ok();
    assert!(aaaa.contains(&format!("Address: {v6_2}")), "{aaaa}");
    assert!(aaaa.contains("1 packets received"), "{aaaa}");
    for (port, name) in [("8080", "web1\n"), ("8081", "web2\n")] {
        // The host, through its own IPv6 address ([::] publishing), and through the gateway.
        assert_eq!(get(&sb, None, &format!("[{HOST6}]:{port}")), name);
        assert_eq!(get(&sb, None, &format!("[fd00:99::1]:{port}")), name);
        // A client on the uplink, over IPv6 and IPv4.
        let outside = Some("outside");
        assert_eq!(get(&sb, outside, &format!("[{HOST6}]:{port}")), name);
        assert_eq!(get(&sb, outside, &format!("{HOST}:{port}")), name);
        // Hairpin: a container through the host's IPv6 address.
        assert_eq!(
            get_from_container(&sb, "lab", &format!("[{HOST6}]:{port}")),
            name
        );
    }
    // NAT66 out: the outside has no route back to fd00:99::/64.
    assert_eq!(
        get_from_container(&sb, "lab", &format!("[{OUTSIDE6}]:80")),
        "upstream\n"
    );
    assert_eq!(
        sb.sh("sysctl -n net.ipv6.conf.all.forwarding").ok().trim(),
        "1"
    );
    // Self-repair covers IPv6: the firewall flushed and the bridge deleted, `network reload`
    // makes the rules, the bridge's IPv6 address and the attachments again.
    let bridge = net[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    sb.sh(match firewall {
        "nftables" => "nft flush ruleset",
        _ => "for t in iptables ip6tables; do $t -t nat -F; $t -F; done",
    })
    .ok();
    sb.sh(&format!("ip link del {bridge}")).ok();
    sb.minibox(&["network", "reload"]).ok();
    assert_eq!(
        get(&sb, Some("outside"), &format!("[{HOST6}]:8080")),
        "web1\n"
    );
    assert_eq!(
        sb.minibox(&[
            "exec",
            "web2",
            "wget",
            "-qO-",
            &format!("http://[{OUTSIDE6}]:80/")
        ])
        .ok(),
        "upstream\n"
    );
    sb.minibox(&["rm", "-f", "web1", "web2"]).ok();
    sb.minibox(&["network", "rm", "lab"]).ok();
    assert!(!sb.firewall_rules().contains("fd00:99::"));
    remove_uplink(&sb);
    sb.finish();
}

#[test]
fn dual_stack_reachability_under_nftables() {
    dual_stack("nftables");
}

#[test]
fn dual_stack_reachability_under_iptables() {
    dual_stack("iptables");
}

/// Mistakes give one line and leave nothing: no network, no container, no address.
#[test]
fn ipv6_bad_input_leaves_nothing() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let create = |args: &[&str]| {
        let mut full = vec!["network", "create", "bad"];
        full.extend_from_slice(args);
        sb.minibox(&full)
    };
    for (args, why) in [
        (
            &["--ipv6", "--subnet", "10.98.0.0/24"][..],
            "--ipv6 needs an IPv6 --subnet beside 10.98.0.0/24",
        ),
        (
            &["--subnet", "10.98.0.0/24", "--subnet", "fd00:98::/64"],
            "fd00:98::/64 is an IPv6 subnet: add --ipv6",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "10.98.0.0/24",
                "--subnet",
                "fd00:98::/127",
            ],
            "too small",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "10.98.0.0/24",
                "--subnet",
                "fd00:98::/64",
                "--gateway",
                "fd00:97::1",
            ],
            "gateway fd00:97::1 is not a host address of fd00:98::/64",
        ),
    ] {
        let err = create(args).fails(1, why);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert!(!sb.minibox(&["network", "ls"]).ok().contains("bad"));
    sb.dual_stack_network("lab6", "10.97.0.0/24", "fd00:97::/64");
    let run = |args: &[&str]| {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["busybox", "true"]);
        sb.minibox(&full)
    };
    for (args, why) in [
        (
            &["--network", "lab6", "--ip6", "fd00:96::5"][..],
            "--ip6 fd00:96::5 is outside lab6's subnet fd00:97::/64",
        ),
        (
            &["--network", "lab6", "--ip6", "10.97.0.5"],
            "invalid --ip6",
        ),
        (&["--ip6", "fd00:97::5"], "needs a user-defined network"),
        (
            &["-p", "[fd00:97::1]:8080:80"],
            "cannot publish on [fd00:97::1]: network minibox has no IPv6",
        ),
        (
            &["-p", "[::1]:5353:53/udp"],
            "cannot publish udp on [::1]: only TCP is relayed there",
        ),
    ] {
        let err = run(args).fails(125, why);
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // --ip6 inside the subnet works, and is the container's address.
    let out = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "lab6",
            "--ip6",
            "fd00:97::42",
            "busybox",
            "ip",
            "-6",
            "addr",
            "show",
            "eth0",
        ])
        .ok();
    assert!(out.contains("inet6 fd00:97::42/64"), "{out}");
    sb.minibox(&["network", "rm", "lab6"]).ok();
    assert!(!sb.path("/run/minibox/networks/ipam/lab6").exists());
    sb.finish();
}

/// `-p [::1]:PORT:PORT`: the kernel cannot DNAT from ::1, so a proxy relays it, on any network
/// (here the default, IPv4-only one); it goes with the container.
#[test]
fn loopback6_is_published_through_a_proxy() {
    let sb = Sandbox::new();
    sb.import_web();
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "web1",
        "-p",
        "[::1]:9091:8081",
        "-p",
        "9092:8081",
        "web",
        "/bin/web",
        "web1",
    ])
    .ok();
    assert_eq!(get(&sb, None, "[::1]:9091"), "web1\n");
    assert_eq!(get(&sb, None, "127.0.0.1:9092"), "web1\n");
    assert_eq!(
        sb.minibox(&["port", "web1", "8081"]).ok(),
        "[::1]:9091\n0.0.0.0:9092\n"
    );
    let ps = sb.minibox(&["ps"]).ok();
    assert!(ps.contains("[::1]:9091->8081/tcp"), "{ps}");
    // Not through the firewall: no rule or element for it.
    assert!(!sb.firewall_rules().contains("9091"));
    sb.minibox(&["rm", "-f", "web1"]).ok();
    assert_eq!(
        sb.sh("timeout 5 busybox wget -qO- http://[::1]:9091/")
            .stdout(),
        ""
    );
    sb.finish();
}
