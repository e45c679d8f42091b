//! The attack list: each defence of minibox's container boundary, tested by performing the attack
//! from a container (or a hostile local user) and showing that it fails, with nothing left behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use minibox_tests::Sandbox;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// --- The network: localhost, other networks, the host as a router. ---------------------------

/// A process of the test's own (a server in the sandbox host), killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `busybox httpd` in the foreground on `addr` (`[IP:]PORT`) in the sandbox host (or, with
/// `netns`, in that named netns), serving `body`.
fn httpd(sb: &Sandbox, netns: Option<&str>, addr: &str, body: &str) -> Server {
    let dir = sb.root().join(format!(
        "www-{}-{}",
        netns.unwrap_or("host"),
        addr.replace(':', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), body).unwrap();
    let dir = dir.to_str().unwrap().to_string();
    let mut args = vec!["httpd", "-f", "-p", addr, "-h", &dir];
    let prefixed;
    if let Some(ns) = netns {
        prefixed = [vec!["ip", "netns", "exec", ns, "busybox"], args].concat();
        args = prefixed;
    } else {
        args.insert(0, "busybox");
    }
    let server = Server(
        sb.exec(args[0], &args[1..])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Listening once a connection is answered (from the host or the netns itself).
    let host = if addr.contains(':') {
        addr.to_string()
    } else {
        format!("127.0.0.1:{addr}")
    };
    let run_in = netns.map_or(String::new(), |ns| format!("ip netns exec {ns} "));
    for _ in 0..50 {
        let probe = sb.sh(&format!(
            "{run_in}busybox nc -z -w 1 {}",
            host.replace(':', " ")
        ));
        if probe.code() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

/// An HTTP GET from a fresh container of `network` (busybox wget; its -T crashes, hence timeout).
fn get_from(sb: &Sandbox, network: &str, url: &str) -> String {
    sb.minibox(&[
        "run",
        "--rm",
        "--network",
        network,
        "web",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://{url}/"),
    ])
    .stdout()
}

/// An HTTP GET from the sandbox host (or from inside `netns`).
fn get_on_host(sb: &Sandbox, netns: Option<&str>, url: &str) -> String {
    let run_in = netns.map_or(String::new(), |ns| format!("ip netns exec {ns} "));
    sb.sh(&format!(
        "{run_in}timeout 3 busybox wget -qO- http://{url}/"
    ))
    .stdout()
}

/// A container of the web demo run in the foreground (as a test's parallel neighbours must not
/// see a supervisor of ours), stopped when dropped.
struct Web(Child);

impl Drop for Web {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

/// Starts the web demo as `name` (more `run` options in `args`), answering `name`; returns it
/// and its address once it answers there.
fn web(sb: &Sandbox, name: &str, args: &[&str]) -> (Web, String) {
    let mut full = vec!["run", "--rm", "--name", name];
    full.extend_from_slice(args);
    full.extend_from_slice(&["web", "/bin/web", name]);
    let mut child = sb.command(&full).stdout(Stdio::piped()).spawn().unwrap();
    // The demo prints "NAME listen" once it listens.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let web = Web(child);
    assert!(line.contains("listen"), "{name} did not start: {line:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&sb.minibox(&["inspect", name]).ok()).unwrap();
    let ip = inspect[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    (web, ip)
}

/// `probe syn IP PORT` from a fresh container: a hand-made TCP SYN sent as a raw frame to the
/// gateway's MAC (what NET_RAW, in the default capabilities, allows). "answered" or "no answer".
fn raw_syn(sb: &Sandbox, ip: &str, port: &str) -> String {
    sb.minibox(&["run", "--rm", "probe", "probe", "syn", ip, port])
        .ok()
        .trim()
        .to_string()
}

/// Deletes the rule of `chain` containing `needle`, as an administrator could: the control that
/// shows the attack itself works and that this rule is what stops it.
fn delete_rule(sb: &Sandbox, chain: &str, needle: &str) {
    let rules = sb.sh(&format!("iptables -S {chain}")).ok();
    let rule = rules
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in {chain}:\n{rules}"));
    sb.sh(&format!("iptables {}", rule.replacen("-A ", "-D ", 1)))
        .ok();
}

/// CVE-2020-8558's pattern: `route_localnet`, which publishing on 127.0.0.1 needs, must not let a
/// container's frames for 127.0.0.0/8 in. A container sends SYNs to 127.0.0.1 through the gateway:
/// neither a host service bound to 127.0.0.1 only nor a port another container published on
/// 127.0.0.1 answers, while the host itself still reaches that port and the same frames reach
/// what is meant to be reachable.
#[test]
fn localhost_is_not_reachable_from_containers() {
    let sb = Sandbox::new();
    sb.import_web();
    sb.import_probe();
    let _local = httpd(&sb, None, "127.0.0.1:7001", "host-local\n");
    let _public = httpd(&sb, None, "7002", "host\n");
    let (web_a, a) = web(&sb, "a", &["-p", "127.0.0.1:8080:8081"]);
    // The frames work: the host answers on its gateway address, the other container on its own.
    assert_eq!(raw_syn(&sb, "10.77.0.1", "7002"), "answered");
    assert_eq!(raw_syn(&sb, &a, "8081"), "answered");
    // The attacks.
    assert_eq!(raw_syn(&sb, "127.0.0.1", "7001"), "no answer");
    assert_eq!(raw_syn(&sb, "127.0.0.1", "8080"), "no answer");
    // The host's own processes keep their localhost-published port.
    assert_eq!(get_on_host(&sb, None, "127.0.0.1:8080"), "a\n");
    assert_eq!(get_on_host(&sb, None, "127.0.0.1:7001"), "host-local\n");
    // Without minibox's rules both attacks would win: each rule is what stops its attack.
    delete_rule(&sb, "MINIBOX-INPUT", "-d 127.0.0.0/8");
    assert_eq!(raw_syn(&sb, "127.0.0.1", "7001"), "answered");
    delete_rule(&sb, "MINIBOX-FORWARD", "--ctorigdst 127.0.0.0/8");
    assert_eq!(raw_syn(&sb, "127.0.0.1", "8080"), "answered");
    drop(web_a);
    sb.finish();
}

/// Networks are isolated from each other as Docker's are, whatever the FORWARD policy: a container
/// reaches one on another network only through a published port, in both directions.
fn networks_isolated(policy: &str) {
    let sb = Sandbox::new();
    sb.import_web();
    sb.minibox(&["network", "create", "lab", "--subnet", "10.99.0.0/24"])
        .ok();
    let (web_a, a) = web(&sb, "a", &["-p", "8081:8081"]);
    let (web_b, b) = web(&sb, "b", &["--network", "lab", "-p", "8082:8081"]);
    sb.sh(&format!("iptables -P FORWARD {policy}")).ok();
    // Within a network, by address.
    assert_eq!(get_from(&sb, "minibox", &format!("{a}:8081")), "a\n");
    assert_eq!(get_from(&sb, "lab", &format!("{b}:8081")), "b\n");
    // Across networks, by address: refused both ways.
    assert_eq!(get_from(&sb, "minibox", &format!("{b}:8081")), "");
    assert_eq!(get_from(&sb, "lab", &format!("{a}:8081")), "");
    // Through the published ports, at each network's gateway.
    assert_eq!(get_from(&sb, "minibox", "10.77.0.1:8082"), "b\n");
    assert_eq!(get_from(&sb, "lab", "10.99.0.1:8081"), "a\n");
    drop((web_a, web_b));
    sb.settle();
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.finish();
}

#[test]
fn networks_are_isolated_with_forward_policy_accept() {
    networks_isolated("ACCEPT");
}

#[test]
fn networks_are_isolated_with_forward_policy_drop() {
    networks_isolated("DROP");
}

/// Two namespaces routed through the sandbox host ("left" 192.0.2.0/30 and "right"
/// 192.0.2.4/30, a web server on right), and an "internet" namespace on the uplink with a web
/// server, none with a route to the containers' subnet.
fn build_routed_namespaces(sb: &Sandbox) -> Vec<Server> {
    for (ns, host, peer, len) in [
        ("left", "192.0.2.1", "192.0.2.2", 30),
        ("right", "192.0.2.5", "192.0.2.6", 30),
        ("internet", "198.51.100.1", "198.51.100.2", 24),
    ] {
        sb.sh(&format!(
            "set -e
             ip netns add {ns}
             ip link add to-{ns} type veth peer name eth0 netns {ns}
             ip addr add {host}/{len} dev to-{ns} && ip link set to-{ns} up
             ip -n {ns} addr add {peer}/{len} dev eth0
             ip -n {ns} link set eth0 up && ip -n {ns} link set lo up
             ip -n {ns} route add default via {host}"
        ))
        .ok();
    }
    vec![
        httpd(sb, Some("right"), "80", "right\n"),
        httpd(sb, Some("internet"), "80", "internet\n"),
    ]
}

fn remove_routed_namespaces(sb: &Sandbox, servers: Vec<Server>) {
    drop(servers);
    sb.sh("for ns in left right internet; do ip netns delete $ns; done")
        .ok();
}

/// When minibox is what turns `ip_forward` on, the host must not become a router between all its
/// interfaces: the FORWARD policy becomes DROP (as Docker sets it), while containers still reach
/// the internet and their published ports. A host that forwarded already keeps its policy.
#[test]
fn forwarding_turned_on_by_minibox_routes_nothing_else() {
    for forwarding_before in [false, true] {
        let sb = Sandbox::new();
        sb.import_web();
        let servers = build_routed_namespaces(&sb);
        sb.sh(&format!(
            "sysctl -qw net.ipv4.ip_forward={}",
            u8::from(forwarding_before)
        ))
        .ok();
        let (web_a, _) = web(&sb, "a", &["-p", "8080:8081"]);
        assert_eq!(sb.sh("sysctl -n net.ipv4.ip_forward").ok(), "1\n");
        let policy = sb.sh("iptables -S FORWARD").ok();
        let routed = get_on_host(&sb, Some("left"), "192.0.2.6:80");
        if forwarding_before {
            assert!(policy.contains("-P FORWARD ACCEPT"), "{policy}");
            assert_eq!(routed, "right\n", "the host's own routing changed");
        } else {
            assert!(policy.contains("-P FORWARD DROP"), "{policy}");
            assert_eq!(routed, "", "minibox made the host an open router");
        }
        // Containers still reach the internet, and the internet their published port.
        assert_eq!(get_from(&sb, "minibox", "198.51.100.2:80"), "internet\n");
        assert_eq!(
            get_on_host(&sb, Some("internet"), "198.51.100.1:8080"),
            "a\n"
        );
        drop(web_a);
        remove_routed_namespaces(&sb, servers);
        sb.finish();
    }
}
