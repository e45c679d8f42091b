//! Networking end to end: bridge, veth, addresses, NAT, published ports and the teaching views,
//! with the real binary in sandbox hosts. Traffic only ever goes to the sandbox's own namespaces:
//! an "outside" namespace on an uplink the test builds plays both the remote client and the
//! upstream server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use minibox_tests::Sandbox;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The sandbox host's uplink address, and the outside namespace's.
const HOST: &str = "198.51.100.1";
const OUTSIDE: &str = "198.51.100.2";

/// Gives the sandbox host an uplink to a namespace `outside` (a client, and an upstream web server
/// on :80 answering "upstream") with no route back to the containers' subnet: replies to
/// containers only arrive when NAT works.
fn build_uplink(sb: &Sandbox) {
    sb.sh(&format!(
        "set -e
         ip netns add outside
         ip link add up0 type veth peer name up1 netns outside
         ip addr add {HOST}/24 dev up0 && ip link set up0 mtu 1400 up
         ip -n outside addr add {OUTSIDE}/24 dev up1
         ip -n outside link set up1 up && ip -n outside link set lo up
         ip route add default via {OUTSIDE}
         mkdir -p /run/upstream && echo upstream > /run/upstream/index.html
         ip netns exec outside busybox httpd -p 80 -h /run/upstream"
    ))
    .ok();
}

fn remove_uplink(sb: &Sandbox) {
    sb.sh("ip netns pids outside | xargs -r kill; ip netns delete outside")
        .ok();
}

/// A `minibox run` left running in the background, until it is stopped (its stdout kept open).
struct Running(
    Child,
    #[allow(dead_code)] BufReader<std::process::ChildStdout>,
);

impl Running {
    /// Starts `run ARGS` and waits until the container prints a line containing `ready`.
    fn start(sb: &Sandbox, args: &[&str], ready: &str) -> Self {
        let mut full = vec!["run", "--rm"];
        full.extend_from_slice(args);
        let mut child = sb
            .command(&full)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        if !line.contains(ready) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "run {args:?} did not get ready: {line:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Running(child, out)
    }

    /// SIGTERM to minibox, which passes it to the container and tears everything down.
    fn stop(mut self) {
        kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.0.wait().unwrap();
        assert!(status.code().is_some(), "minibox itself died: {status:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
}

/// An HTTP GET from the sandbox host (busybox wget: its -T crashes, hence timeout).
fn get_once(sb: &Sandbox, url: &str) -> String {
    sb.sh(&format!("timeout 5 busybox wget -qO- http://{url}/"))
        .stdout()
}

/// An HTTP GET that expects an answer: the demo prints "listen" just before it listens, so a
/// refused first try is retried for a moment.
fn get(sb: &Sandbox, url: &str) -> String {
    for _ in 0..20 {
        let got = get_once(sb, url);
        if !got.is_empty() {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    String::new()
}

/// A one-shot HTTP GET from a fresh container (busybox wget; its -T crashes, hence timeout).
fn get_from_container(sb: &Sandbox, image: &str, url: &str) -> String {
    sb.minibox(&[
        "run",
        "--rm",
        image,
        "timeout",
        "5",
        "wget",
        "-qO-",
        &format!("http://{url}/"),
    ])
    .stdout()
}

fn web_demo(forward_drop: bool, firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_web();
    build_uplink(&sb);
    if forward_drop {
        // As Docker leaves it.
        sb.sh("iptables -P FORWARD DROP").ok();
    }
    let web1 = Running::start(
        &sb,
        &[
            "--name",
            "web1",
            "-p",
            "8080:8081",
            "web",
            "/bin/web",
            "web1",
        ],
        "web1 listen",
    );
    let web2 = Running::start(
        &sb,
        &[
            "--name",
            "web2",
            "-p",
            "8081:8081",
            "web",
            "/bin/web",
            "web2",
        ],
        "web2 listen",
    );
    let addr = |name: &str| {
        let out = sb.minibox(&["network", "inspect", "minibox"]).ok();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = std::fs::read_to_string(sb.root().join("names").join(name)).unwrap();
        assert_eq!(v[0]["Containers"][id.trim()]["Name"], name);
        let a = v[0]["Containers"][id.trim()]["IPv4Address"]
            .as_str()
            .unwrap()
            .to_string();
        a.split('/').next().unwrap().to_string()
    };
    let (a1, a2) = (addr("web1"), addr("web2"));
    // The MTU of the default route's interface, on the bridge and inside the containers.
    assert!(sb.sh("ip -o link show minibox0").ok().contains("mtu 1400"));
    let inside = sb
        .sh("for n in /run/netns/minibox-*; do ip -n ${n##*/} -o link show eth0; done")
        .ok();
    assert_eq!(inside.matches("mtu 1400").count(), 2, "{inside}");
    assert_ne!(a1, a2);

    for (port, name) in [("8080", "web1\n"), ("8081", "web2\n")] {
        // From the host itself: 127.0.0.1 and its own address.
        assert_eq!(
            get(&sb, &format!("127.0.0.1:{port}")),
            name,
            "127.0.0.1:{port}"
        );
        assert_eq!(get(&sb, &format!("{HOST}:{port}")), name, "{HOST}:{port}");
        // From another machine on the uplink.
        let out = sb
            .sh(&format!(
                "ip netns exec outside timeout 5 busybox wget -qO- http://{HOST}:{port}/"
            ))
            .stdout();
        assert_eq!(out, name, "outside -> {HOST}:{port}");
        // From a container, through the host's address and through the gateway (hairpin).
        assert_eq!(
            get_from_container(&sb, "web", &format!("{HOST}:{port}")),
            name
        );
        assert_eq!(
            get_from_container(&sb, "web", &format!("10.77.0.1:{port}")),
            name
        );
    }
    // Container to container, by address.
    assert_eq!(
        get_from_container(&sb, "web", &format!("{a1}:8081")),
        "web1\n"
    );
    assert_eq!(
        get_from_container(&sb, "web", &format!("{a2}:8081")),
        "web2\n"
    );
    // A container reaching its own published port through the host address.
    let own = sb
        .minibox(&[
            "run",
            "--rm",
            "-p",
            "8090:8081",
            "web",
            "sh",
            "-c",
            &format!(
                "/bin/web self >/dev/null & sleep 0.5; timeout 5 wget -qO- http://{HOST}:8090/"
            ),
        ])
        .ok();
    assert_eq!(own, "self\n");
    // Outbound NAT to the upstream server, which has no route back to the subnet.
    assert_eq!(
        get_from_container(&sb, "web", &format!("{OUTSIDE}:80")),
        "upstream\n"
    );
    // A host service, through the gateway.
    sb.sh("mkdir -p /run/hostsvc && echo host > /run/hostsvc/index.html && (busybox httpd -f -p 7000 -h /run/hostsvc >/dev/null 2>&1 & echo $! > /run/hostsvc.pid)").ok();
    assert_eq!(get_from_container(&sb, "web", "10.77.0.1:7000"), "host\n");
    sb.sh("kill $(cat /run/hostsvc.pid)").ok();

    // `port` in Docker's format, by name.
    assert_eq!(
        sb.minibox(&["port", "web1"]).ok(),
        "8081/tcp -> 0.0.0.0:8080\n"
    );
    assert_eq!(sb.minibox(&["port", "web2", "8081"]).ok(), "0.0.0.0:8081\n");
    sb.minibox(&["port", "web2", "9999/udp"])
        .fails(1, "no public port '9999/udp' published for web2");
    let topo = sb.minibox(&["network", "topology"]).ok();
    for want in [
        "minibox0  bridge of network minibox  10.77.0.1/16",
        &format!("eth0  {a1}/16"),
        "published: 0.0.0.0:8080/tcp ─DNAT→",
        "up0  198.51.100.1/24",
    ] {
        assert!(topo.contains(want), "topology lacks {want:?}:\n{topo}");
    }

    web1.stop();
    web2.stop();
    // The ports are free again, and nothing answers on them.
    assert_eq!(get_once(&sb, "127.0.0.1:8080"), "");
    remove_uplink(&sb);
    sb.finish();
}

#[test]
fn web_demo_reachable_from_everywhere() {
    web_demo(false, "nftables");
}

/// iptables' FORWARD policy DROP (as Docker leaves it): under the nftables driver, minibox's
/// table cannot override another table's drop, so each network gets its accepts there.
#[test]
fn web_demo_with_forward_policy_drop() {
    web_demo(true, "nftables");
}

#[test]
fn web_demo_reachable_from_everywhere_under_iptables() {
    web_demo(false, "iptables");
}

#[test]
fn web_demo_with_forward_policy_drop_under_iptables() {
    web_demo(true, "iptables");
}

#[test]
fn localhost_only_and_random_ports() {
    localhost_only(Sandbox::with_firewall("nftables"));
}

#[test]
fn localhost_only_and_random_ports_under_iptables() {
    localhost_only(Sandbox::with_firewall("iptables"));
}

fn localhost_only(sb: Sandbox) {
    sb.import_web();
    build_uplink(&sb);
    let web = Running::start(
        &sb,
        &[
            "--name",
            "w",
            "-p",
            "127.0.0.1:8080:8081",
            "-P",
            "-p",
            "9000-9010:8081",
            "web",
            "/bin/web",
            "w",
        ],
        "w listen",
    );
    assert_eq!(get(&sb, "127.0.0.1:8080"), "w\n");
    // Published on 127.0.0.1 only: not through the host's other address, nor from outside.
    assert_eq!(get_once(&sb, &format!("{HOST}:8080")), "");
    assert_eq!(
        sb.sh(&format!(
            "ip netns exec outside timeout 2 busybox wget -qO- http://{HOST}:8080/"
        ))
        .stdout(),
        ""
    );
    let ports = sb.minibox(&["port", "w", "8081"]).ok();
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 3, "{ports}");
    assert_eq!(lines[0], "127.0.0.1:8080");
    let range = sb.sh("cat /proc/sys/net/ipv4/ip_local_port_range").ok();
    let bounds: Vec<u16> = range
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // In the order given: -p, -p, then -P's.
    let ranged: u16 = lines[1].rsplit(':').next().unwrap().parse().unwrap();
    let random: u16 = lines[2].rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (bounds[0]..=bounds[1]).contains(&random),
        "-P port {random} outside {range}"
    );
    assert!((9000..=9010).contains(&ranged));
    assert_eq!(get(&sb, &format!("{HOST}:{random}")), "w\n");
    assert_eq!(get(&sb, &format!("{HOST}:{ranged}")), "w\n");
    web.stop();
    remove_uplink(&sb);
    sb.finish();
}

#[test]
fn bad_input_leaves_nothing() {
    let sb = Sandbox::new();
    sb.import_busybox();
    for (spec, why) in [
        ("70000:80", "out of range"),
        ("a:b", "not a port number"),
        ("8080-8081:80-82", "differ in length"),
        ("80/icmp", "unknown protocol"),
    ] {
        let err = sb
            .minibox(&["run", "--rm", "-p", spec, "busybox", "true"])
            .fails(125, &format!("invalid port spec {spec:?}: "));
        assert!(err.contains(why), "{spec}: no {why:?} in {err}");
    }
    sb.minibox(&["run", "--rm", "--network", "nope", "busybox", "true"])
        .fails(125, "network nope not found");
    sb.minibox(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-p",
        "80",
        "busybox",
        "true",
    ])
    .fails(125, "publishing ports needs a bridge network");
    sb.minibox(&["network", "create", "x", "--subnet", "10.1.0.0/33"])
        .fails(1, "not an IPv4 CIDR");
    sb.minibox(&["network", "create", "x", "--subnet", "10.77.5.0/24"])
        .fails(1, "overlaps 10.77.0.0/16");
    sb.minibox(&["network", "rm", "minibox"])
        .fails(1, "predefined");
    // A bridge name clash: minibox0 exists and is something else.
    let sb2 = Sandbox::new();
    sb2.import_busybox();
    sb2.sh("ip link add minibox0 type veth peer name other0")
        .ok();
    sb2.minibox(&["run", "--rm", "busybox", "true"])
        .fails(125, "minibox0 exists and is not a minibox bridge");
    sb2.sh("ip link del minibox0").ok();
    sb2.finish();
    sb.finish();
}

#[test]
fn port_in_use_is_refused_before_anything_is_made() {
    let sb = Sandbox::new();
    sb.import_web();
    // By a host process.
    let mut listener = sb
        .exec("busybox", ["nc", "-l", "-p", "8085"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    sb.minibox(&["run", "--rm", "-p", "8085:8081", "web", "true"])
        .fails(
            125,
            "host port 8085/tcp is already in use by a process on the host",
        );
    let _ = listener.kill();
    let _ = listener.wait();
    // By another container.
    let web = Running::start(
        &sb,
        &["-p", "8086:8081", "web", "/bin/web", "a"],
        "a listen",
    );
    sb.minibox(&["run", "--rm", "-p", "8086:80", "web", "true"])
        .fails(125, "host port 8086/tcp is already in use by container");
    // The same port over UDP is another port.
    sb.minibox(&["run", "--rm", "-p", "8086:80/udp", "web", "true"])
        .ok();
    web.stop();
    sb.finish();
}

#[test]
fn networks_create_inspect_rm() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let id = sb
        .minibox(&[
            "network",
            "create",
            "blue",
            "--subnet",
            "10.88.0.0/24",
            "--gateway",
            "10.88.0.254",
        ])
        .ok();
    assert_eq!(id.trim().len(), 64);
    sb.minibox(&["network", "create", "blue", "--subnet", "10.89.0.0/24"])
        .fails(1, "already exists");
    let ls = sb.minibox(&["network", "ls"]).ok();
    assert!(
        ls.contains("blue") && ls.contains("10.88.0.0/24") && ls.contains("minibox0"),
        "{ls}"
    );
    let out = sb
        .minibox(&[
            "run",
            "--rm",
            "--network",
            "blue",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; ip route",
        ])
        .ok();
    assert!(out.contains("inet 10.88.0.1/24"), "{out}");
    assert!(out.contains("default via 10.88.0.254"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["network", "inspect", "blue"]).ok()).unwrap();
    assert_eq!(v[0]["Name"], "blue");
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.88.0.0/24");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.88.0.254");
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.name"],
        "minibox1"
    );
    // In use: refused.
    let mut hold = sb
        .command(&[
            "run",
            "--rm",
            "--network",
            "blue",
            "busybox",
            "sh",
            "-c",
            "trap \"exit 0\" TERM; echo up; sleep 30 & wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["network", "inspect", "blue"]).ok()).unwrap();
    let c = v[0]["Containers"].as_object().unwrap();
    assert_eq!(c.len(), 1);
    let (_, c) = c.iter().next().unwrap();
    // Round robin: the first container had .1.
    assert_eq!(c["IPv4Address"], "10.88.0.2/24");
    assert_eq!(c["MacAddress"], "02:42:0a:58:00:02");
    sb.minibox(&["network", "rm", "blue"])
        .fails(1, "in use by 1 container");
    kill(Pid::from_raw(hold.id() as i32), Signal::SIGTERM).unwrap();
    hold.wait().unwrap();
    sb.minibox(&["network", "rm", "blue"]).ok();
    assert!(!sb.sh("ip -o link").ok().contains("minibox1"));
    assert!(!sb.firewall_rules().contains("minibox-network:blue"));
    sb.minibox(&["network", "inspect", "blue"])
        .fails(1, "network blue not found");
    sb.finish();
}

/// The firewall goes through whichever iptables is first in PATH: here iptables-legacy.
#[test]
fn works_with_iptables_legacy() {
    let sb = Sandbox::with_firewall("iptables");
    sb.import_web();
    sb.sh(
        "mkdir -p /run/legacy && for t in iptables iptables-save iptables-restore; do \
         ln -s /usr/sbin/xtables-legacy-multi /run/legacy/$t; done",
    )
    .ok();
    let path = format!("/run/legacy:{}", std::env::var("PATH").unwrap_or_default());
    let mut child = sb
        .command(&[
            "run",
            "--rm",
            "-p",
            "8080:8081",
            "web",
            "/bin/web",
            "legacy",
        ])
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("legacy listen"), "{line}");
    assert_eq!(get(&sb, "127.0.0.1:8080"), "legacy\n");
    let legacy = sb.sh("iptables-legacy-save").ok();
    assert!(legacy.contains("minibox:"), "{legacy}");
    assert!(!sb.sh("iptables-nft-save").ok().contains("MINIBOX"));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    sb.settle();
    assert!(!sb.sh("iptables-legacy-save").ok().contains("minibox:"));
    sb.finish();
}

/// Publishing a UDP port flushes its stale conntrack entries (or a client's flow would keep
/// going wherever it went before), and only those.
#[test]
fn udp_publish_flushes_stale_conntrack() {
    let sb = Sandbox::new();
    sb.import_busybox();
    for (sport, port) in [(40000, 5300), (40001, 5300), (40000, 5301)] {
        sb.sh(&format!(
            "conntrack -I -p udp -s 198.51.100.2 -d 198.51.100.1 --sport {sport} --dport {port} -t 60"
        ))
        .ok();
    }
    // A TCP flow to the same port number is not UDP's business.
    sb.sh("conntrack -I -p tcp -s 198.51.100.2 -d 198.51.100.1 --sport 40000 --dport 5300 --state ESTABLISHED -t 60").ok();
    sb.minibox(&["run", "--rm", "-p", "5300:53/udp", "busybox", "true"])
        .ok();
    let left = sb.sh("conntrack -L -p udp 2>/dev/null").ok();
    assert!(!left.contains("dport=5300"), "{left}");
    assert!(left.contains("dport=5301"), "{left}");
    let tcp = sb.sh("conntrack -L -p tcp 2>/dev/null").ok();
    assert!(tcp.contains("dport=5300"), "{tcp}");
    sb.finish();
}

/// Several first uses at once: one bridge, one set of chains, distinct addresses, all cleaned.
#[test]
fn concurrent_runs_on_a_fresh_host() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let children: Vec<Child> = (0..6)
        .map(|_| {
            sb.command(&[
                "run",
                "--rm",
                "-p",
                "80",
                "busybox",
                "sh",
                "-c",
                "ip -o -4 addr show eth0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut addrs = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        addrs.push(s.split_whitespace().nth(3).unwrap().to_string());
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 6, "{addrs:?}");
    let rules = sb.firewall_rules();
    let (jumps, forward, network) = match sb.firewall() {
        "nftables" => ("jump published", "type filter hook forward", 8),
        _ => ("-j MINIBOX-DNAT", "-j MINIBOX-FORWARD", 6),
    };
    assert_eq!(rules.matches(jumps).count(), 2, "{rules}");
    assert_eq!(rules.matches(forward).count(), 1, "{rules}");
    assert_eq!(
        rules.matches("minibox-network:minibox").count(),
        network,
        "{rules}"
    );
    assert_eq!(sb.sh("ip -o link show type bridge").ok().lines().count(), 1);
    sb.finish();
}

/// A /30 has one address for a container: the second is refused, and leaves nothing behind.
#[test]
fn exhausted_subnet_is_refused() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&["network", "create", "tiny", "--subnet", "10.99.0.0/30"])
        .ok();
    let mut hold = sb
        .command(&[
            "run",
            "--rm",
            "--network",
            "tiny",
            "busybox",
            "sh",
            "-c",
            "trap \"exit 0\" TERM; echo up; sleep 30 & wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(hold.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    sb.minibox(&["run", "--rm", "--network", "tiny", "busybox", "true"])
        .fails(125, "no free address left in tiny (10.99.0.0/30)");
    kill(Pid::from_raw(hold.id() as i32), Signal::SIGTERM).unwrap();
    hold.wait().unwrap();
    sb.minibox(&["run", "--rm", "--network", "tiny", "busybox", "true"])
        .ok();
    sb.minibox(&["network", "rm", "tiny"]).ok();
    sb.finish();
}

/// A foreground `run` returns before its network is torn down (a background process finishes
/// that, holding the network lock): the next `run` publishing the same port waits for it instead
/// of being refused, and once it is done nothing is left.
#[test]
fn same_port_back_to_back() {
    let sb = Sandbox::new();
    sb.import_busybox();
    for _ in 0..3 {
        sb.minibox(&["run", "--rm", "-p", "8080:80", "busybox", "true"])
            .ok();
    }
    sb.settle();
    assert!(sb.sh("ls /run/minibox/networks/ports").ok().is_empty());
    sb.finish();
}

/// A container on an IPv4-only network has no IPv6 on its interface, as Docker's: bringing it up
/// sends no IPv6 multicast that the bridge would flood to every other container. A dual-stack
/// network's interface keeps it (ipv6.rs), and loopback keeps ::1 either way.
#[test]
fn an_ipv4_only_network_gives_its_interface_no_ipv6() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let inside = sb
        .minibox(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 addr",
        ])
        .ok();
    assert!(inside.starts_with("1\n"), "{inside}");
    assert!(inside.contains("inet6 ::1/128"), "{inside}");
    assert!(!inside.contains("fe80:"), "{inside}");
    sb.finish();
}

/// A bridge port (the host's end of a container's veth) has no IPv6 of its own, on an IPv4-only
/// and on a dual-stack network: no address and no route in the host's tables, which the kernel
/// walks whole on every link change. The dual-stack container still reaches the bridge over
/// IPv6 (ipv6.rs tests the rest).
#[test]
fn a_bridge_port_has_no_ipv6_of_its_own() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.97.0.0/24",
        "--subnet",
        "fd42:7::/64",
        "dual",
    ])
    .ok();
    let v4 = sb.minibox(&["run", "-d", "busybox", "sleep", "100"]).ok();
    let dual = sb
        .minibox(&["run", "-d", "--network", "dual", "busybox", "sleep", "100"])
        .ok();
    let ports = sb
        .sh("ip -o link show type veth | awk -F': ' '{ sub(\"@.*\", \"\", $2); print $2 }'")
        .ok();
    let ports: Vec<&str> = ports.lines().collect();
    assert_eq!(ports.len(), 2, "{ports:?}");
    for port in &ports {
        let off = sb
            .sh(&format!("cat /proc/sys/net/ipv6/conf/{port}/disable_ipv6"))
            .ok();
        assert_eq!(off.trim(), "1", "{port}");
        let routes = sb
            .sh(&format!(
                "ip -6 route show table all dev {port}; ip -6 addr show dev {port}"
            ))
            .ok();
        assert!(routes.trim().is_empty(), "{port}: {routes}");
    }
    let ping = sb
        .minibox(&[
            "exec",
            dual.trim(),
            "ping6",
            "-c",
            "1",
            "-W",
            "5",
            "fd42:7::1",
        ])
        .ok();
    assert!(ping.contains("1 packets received"), "{ping}");
    sb.minibox(&["rm", "-f", v4.trim(), dual.trim()]).ok();
    sb.minibox(&["network", "rm", "dual"]).ok();
    sb.finish();
}

/// The bridge floods multicast rather than snooping it: with snooping, each port that joins or
/// leaves restarts every other port's multicast timers.
#[test]
fn the_bridge_does_not_snoop_multicast() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let id = sb.minibox(&["run", "-d", "busybox", "sleep", "100"]).ok();
    let bridge = sb.sh("ip -d link show minibox0").ok();
    assert!(bridge.contains("mcast_snooping 0"), "{bridge}");
    sb.minibox(&["rm", "-f", id.trim()]).ok();
    sb.finish();
}

/// The bridge keeps the uplink's MTU after its last container leaves (the kernel would reset an
/// MTU given only at creation to 1500), so the next container gets it too.
#[test]
fn bridge_keeps_the_uplink_mtu_when_empty() {
    let sb = Sandbox::new();
    sb.import_busybox();
    build_uplink(&sb);
    let mtu = |sb: &Sandbox| {
        sb.minibox(&["run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu"])
            .ok()
    };
    assert_eq!(mtu(&sb).trim(), "1400");
    sb.settle();
    let bridge = sb.sh("ip -o link show minibox0").ok();
    assert!(
        bridge.contains(" mtu 1400 "),
        "the empty bridge lost its MTU: {bridge}"
    );
    assert_eq!(mtu(&sb).trim(), "1400");
    remove_uplink(&sb);
    sb.finish();
}

/// With `-d`, `--explain` still speaks to the user, and the container's log keeps only what the
/// container wrote.
#[test]
fn explain_with_detach_goes_to_the_user_not_the_log() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let run = sb.minibox(&[
        "--explain",
        "run",
        "-d",
        "--name",
        "x",
        "busybox",
        "sh",
        "-c",
        "echo hello; sleep 30",
    ]);
    run.ok();
    assert!(run.stderr().contains("ip netns add minibox-"), "{run}");
    for _ in 0..50 {
        if sb.minibox(&["logs", "x"]).ok().contains("hello") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let logs = sb.minibox(&["logs", "x"]);
    assert_eq!(logs.ok(), "hello\n");
    assert!(!logs.stderr().contains("ip "), "{logs}");
    sb.minibox(&["rm", "-f", "x"]).ok();
    sb.finish();
}

/// A step that the system refuses (here the firewall batch) fails the run with one clear line and
/// undoes the steps already taken: no netns, veth, address, port record or rule is left.
#[test]
fn a_refused_step_leaves_nothing() {
    let sb = Sandbox::new();
    sb.import_busybox();
    // The network itself is set up by a first, normal run.
    sb.minibox(&["run", "--rm", "busybox", "true"]).ok();
    let (what, needle) = match sb.firewall() {
        // The kernel refuses the element: another one has its key, with another value.
        "nftables" => {
            sb.sh("nft add element inet minibox anyports4 '{ tcp . 8080 : 10.77.250.250 . 80 }'")
                .ok();
            ("a clashing element", "File exists")
        }
        _ => {
            sb.sh(
                "mkdir -p /run/refuse && printf '#!/bin/sh\\necho \"refused\" >&2\\nexit 4\\n' \
                 > /run/refuse/iptables-restore && chmod +x /run/refuse/iptables-restore",
            )
            .ok();
            ("a refusing iptables-restore", "refused")
        }
    };
    let path = format!("/run/refuse:{}", std::env::var("PATH").unwrap_or_default());
    let out = sb
        .command(&["run", "--rm", "-p", "8080:80", "busybox", "true"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let out = minibox_tests::Out {
        what: format!("run with {what}"),
        output: out,
    };
    out.fails(125, needle);
    sb.settle();
    assert!(sb
        .sh("ls /run/minibox/networks/ports")
        .stdout()
        .trim()
        .is_empty());
    let ipam = sb.sh("ls /run/minibox/networks/ipam/minibox").stdout();
    assert!(
        ipam.lines().all(|l| !l.starts_with("10.")),
        "an address stayed allocated: {ipam}"
    );
    // And the port is free for the next run.
    sb.minibox(&["run", "--rm", "-p", "8080:80", "busybox", "true"])
        .ok();
    sb.finish();
}

/// `--explain` reads in the order a learner types the commands: the container's namespace and
/// cable before its DNAT rules, and at teardown the rules before the namespace goes.
#[test]
fn explain_follows_the_tutorials_order() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let out = sb.minibox(&[
        "--explain",
        "run",
        "--rm",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    out.ok();
    let err = out.stderr();
    let at = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{err}"))
    };
    let (add, delete) = match sb.firewall() {
        "nftables" => (
            "\nadd element inet minibox anyports4 { tcp . 8080",
            "\ndelete element inet minibox anyports4 { tcp . 8080 }",
        ),
        _ => ("\n-A MINIBOX-DNAT -p tcp", "\n-D MINIBOX-DNAT -p tcp"),
    };
    assert!(at("ip link add minibox0") < at("ip netns add"), "{err}");
    assert!(at("ip netns add") < at("ip link add mb-"), "{err}");
    assert!(at("route add default") < at(add), "{err}");
    assert!(at(add) < at(delete), "{err}");
    assert!(at(delete) < at("ip netns delete"), "{err}");
    sb.finish();
}

/// How a breakage is repaired: by `network reload`, or by the next set-up on the network.
#[derive(Clone, Copy, Debug)]
enum Repair {
    Reload,
    NextRun,
}

/// Each breakage, done while two published containers run on two networks, breaks a published
/// port; `topology` marks what is missing, and the repair makes both ports answer again.
fn repaired(firewall: &'static str, breakages: &[(&str, Repair)]) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_web();
    sb.minibox(&["network", "create", "lab", "--subnet", "10.99.0.0/24"])
        .ok();
    let w1 = Running::start(
        &sb,
        &["-p", "8080:8081", "web", "/bin/web", "w1"],
        "w1 listen",
    );
    let w2 = Running::start(
        &sb,
        &[
            "--network",
            "lab",
            "-p",
            "8082:8081",
            "web",
            "/bin/web",
            "w2",
        ],
        "w2 listen",
    );
    let answering = |sb: &Sandbox| {
        assert_eq!(get(sb, "127.0.0.1:8080"), "w1\n");
        assert_eq!(get(sb, "127.0.0.1:8082"), "w2\n");
    };
    answering(&sb);
    for (breakage, repair) in breakages {
        sb.sh(breakage).ok();
        assert_eq!(
            get_once(&sb, "127.0.0.1:8080"),
            "",
            "{breakage}: nothing was broken"
        );
        let topo = sb.minibox(&["network", "topology"]).ok();
        assert!(topo.contains("MISSING"), "{breakage}: {topo}");
        match repair {
            Repair::Reload => {
                let out = sb.minibox(&["network", "reload"]).ok();
                assert_eq!(out, "lab\nminibox\n", "{breakage}");
            }
            Repair::NextRun => {
                sb.minibox(&["run", "--rm", "web", "true"]).ok();
            }
        }
        answering(&sb);
        let topo = sb.minibox(&["network", "topology"]).ok();
        assert!(!topo.contains("MISSING"), "{breakage} ({repair:?}): {topo}");
    }
    w1.stop();
    w2.stop();
    sb.settle();
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.finish();
}

/// What a firewall restart or an administrator does to the nftables driver's table, and a
/// bridge deleted under running containers.
#[test]
fn repaired_after_firewall_flushes_and_bridge_deletion() {
    repaired(
        "nftables",
        &[
            ("nft flush ruleset", Repair::NextRun),
            ("nft delete table inet minibox", Repair::Reload),
            (
                "nft flush chain inet minibox prerouting && nft flush chain inet minibox output",
                Repair::NextRun,
            ),
            ("ip link del minibox0", Repair::NextRun),
            (
                "ip link del minibox1 && ip link del minibox0",
                Repair::Reload,
            ),
        ],
    );
}

/// The same under the iptables driver: `iptables -F`, `iptables -t nat -F`, minibox's chains
/// deleted, `nft flush ruleset` (iptables-nft's tables with it), a bridge deleted.
#[test]
fn repaired_after_firewall_flushes_and_bridge_deletion_under_iptables() {
    repaired(
        "iptables",
        &[
            ("iptables -F && iptables -t nat -F", Repair::NextRun),
            ("iptables -t nat -F", Repair::Reload),
            (
                "iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT \
                 && iptables -t nat -D OUTPUT -m addrtype --dst-type LOCAL -j MINIBOX-DNAT \
                 && iptables -t nat -F MINIBOX-DNAT && iptables -t nat -X MINIBOX-DNAT",
                Repair::NextRun,
            ),
            ("nft flush ruleset", Repair::Reload),
            ("ip link del minibox0", Repair::Reload),
        ],
    );
}

/// Under the nftables driver a container's published ports are map elements made and removed
/// over netlink: no `nft` process runs for `run -p` or `rm` (an `nft` first in PATH notes every
/// start), yet the kernel holds the element with the container's comment, as `nft list map`
/// shows it, the port answers, and after `rm` the element is gone.
#[test]
fn nftnl_published_ports_are_elements_made_without_nft() {
    let sb = Sandbox::with_firewall("nftables");
    sb.import_busybox();
    sb.sh(
        "mkdir -p /run/watch && printf '#!/bin/sh\\necho \"nft $*\" >> /run/watch/calls\\n\
         exec /usr/sbin/nft \"$@\"\\n' > /run/watch/nft && chmod +x /run/watch/nft",
    )
    .ok();
    let path = format!("/run/watch:{}", std::env::var("PATH").unwrap_or_default());
    let watched = |args: &[&str]| {
        let output = sb.command(args).env("PATH", &path).output().unwrap();
        minibox_tests::Out {
            what: format!("minibox {}", args.join(" ")),
            output,
        }
    };
    // The network's table and rules are made once, on first use, by `nft -f -`: the watch
    // sees it.
    watched(&["run", "--rm", "busybox", "true"]).ok();
    sb.settle();
    let calls = sb.sh("cat /run/watch/calls && rm /run/watch/calls").ok();
    assert!(calls.contains("nft -f -"), "{calls}");
    let id = watched(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8081:80",
        "busybox",
        "sh",
        "-c",
        "mkdir /w && echo served > /w/index.html && exec httpd -f -p 80 -h /w",
    ])
    .ok();
    let tag = format!("comment \"minibox:{}\"", &id.trim()[..12]);
    let any = sb.sh("nft list map inet minibox anyports4").ok();
    assert!(
        any.contains(&format!("tcp . 8080 {tag} : 10.77.0.")),
        "{any}"
    );
    let one = sb.sh("nft list map inet minibox ports4").ok();
    assert!(
        one.contains(&format!("127.0.0.1 . tcp . 8081 {tag} : 10.77.0.")),
        "{one}"
    );
    assert_eq!(get(&sb, "127.0.0.1:8080").trim(), "served");
    assert_eq!(get(&sb, "127.0.0.1:8081").trim(), "served");
    watched(&["rm", "-f", "web"]).ok();
    sb.settle();
    let maps = sb.sh("nft list table inet minibox").ok();
    assert!(!maps.contains("tcp . 808"), "{maps}");
    assert_eq!(sb.sh("cat /run/watch/calls 2>/dev/null").stdout(), "");
    sb.finish();
}

/// A wide range of published ports (more elements than one netlink message can list) is added
/// and removed whole, in one transaction, as `nft -f -` did it.
#[test]
fn nftnl_a_wide_port_range_is_published_and_removed_whole() {
    let sb = Sandbox::with_firewall("nftables");
    sb.import_busybox();
    let id = sb
        .minibox(&[
            "run",
            "-d",
            "-p",
            "20000-21199:20000-21199",
            "busybox",
            "sleep",
            "60",
        ])
        .ok();
    let tagged = |sb: &Sandbox| {
        let listing = sb.sh("nft list map inet minibox anyports4").ok();
        listing
            .matches(&format!("comment \"minibox:{}\"", &id.trim()[..12]))
            .count()
    };
    assert_eq!(tagged(&sb), 1200);
    sb.minibox(&["rm", "-f", id.trim()]).ok();
    sb.settle();
    assert_eq!(tagged(&sb), 0);
    sb.finish();
}
