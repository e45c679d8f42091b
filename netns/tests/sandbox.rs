//! The library against the real kernel, each test re-executed inside a throwaway sandbox host
//! (`unshare -n -m` with a private /run), so nothing touches the machine's own network.
//! A stand-in container is an `unshare -n sleep` process whose netns the test names, as a
//! runtime (or the caller of a CNI plugin) does. They need root: as another user they say so
//! and pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use minibox_netns::{
    attach, detach, ensure_network, Attachment, Endpoint, Explain, PortRequest, PortSpec, Store,
};

const IN_SANDBOX: &str = "MINIBOX_NETNS_SANDBOX";

/// Runs the named test again inside a sandbox; returns true when the caller *is* the sandbox.
fn sandboxed(test: &str) -> bool {
    sandboxed_with(test, "nftables")
}

/// [`sandboxed`], with minibox's firewall driver chosen.
fn sandboxed_with(test: &str, firewall: &str) -> bool {
    if std::env::var_os(IN_SANDBOX).is_some() {
        return true;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped {test}: it creates namespaces, links and rules, which needs root");
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    // A new netns inherits the host's ip_forward: start from a host that does not forward.
    let script = "mount --make-rprivate / && mount -t tmpfs tmpfs /run && ip link set lo up \
                  && sysctl -qw net.ipv4.ip_forward=0 \
                  && ip link add uplink0 type veth peer name uplink1 && ip link set uplink1 up && ip addr add 198.18.0.1/24 dev uplink0 \
                  && ip link set uplink0 up && ip route add default via 198.18.0.254 \
                  && exec \"$0\" \"$@\"";
    let status = Command::new("unshare")
        .args(["-n", "-m", "--", "sh", "-c", script])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_SANDBOX, "1")
        .env("MINIBOX_FIREWALL_DRIVER", firewall)
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed in its sandbox");
    false
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

struct Holder(Child);

impl Holder {
    fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .unwrap();
        // unshare execs sleep once the namespace is made.
        for _ in 0..200 {
            let ns = std::fs::read_link(format!("/proc/{}/ns/net", child.id())).unwrap();
            let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
            if ns != mine {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Holder(child)
    }
    /// Names the holder's netns `name` (`ip netns attach`) and returns its path.
    fn netns(&self, name: &str) -> PathBuf {
        let out = sh(&format!("ip netns attach {name} {}", self.0.id()));
        assert!(out.is_empty(), "{out}");
        PathBuf::from(format!("/run/netns/{name}"))
    }
}

/// `-p` values as the library's port requests.
fn ports(specs: &[&str]) -> Vec<PortRequest> {
    specs
        .iter()
        .flat_map(|s| PortSpec::parse(s).unwrap().requests())
        .collect()
}

/// The netns at `ns`, as the inner end of a veth named eth0.
fn ep(ns: &Path) -> Endpoint<'_> {
    Endpoint {
        netns: ns,
        ifname: "eth0",
        address: None,
        address6: None,
        mtu: None,
        hairpin: true,
        dns: None,
        mac: None,
        default_route: true,
    }
}

/// Connects the netns at `ns` to `network` under `id`.
fn connect(
    s: &Store,
    id: &str,
    ns: &Path,
    network: &str,
    specs: &[&str],
) -> minibox_netns::Result<Attachment> {
    let ready = ensure_network(s, &Explain::off(), network)?;
    attach(s, &Explain::off(), id, &ep(ns), ready, &ports(specs)).map(|a| a.serve())
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn store(dir: &Path) -> Store {
    Store::new(&dir.join("networks"), &dir.join("run"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = Path::new("/run").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

/// What the library would leave: netns names are the test's own (it removes them first).
fn leftovers() -> String {
    sh(
        "ls /run/netns; ip -o link | grep -o 'mb-[0-9a-f]*'; iptables-save | grep 'minibox:'; \
        nft list ruleset 2>/dev/null | grep 'minibox:'",
    )
}

#[test]
fn attach_publish_detach() {
    if sandboxed("attach_publish_detach") {
        attach_publish_detach_with("nftables");
    }
}

#[test]
fn attach_publish_detach_under_iptables() {
    if sandboxed_with("attach_publish_detach_under_iptables", "iptables") {
        attach_publish_detach_with("iptables");
    }
}

fn attach_publish_detach_with(firewall: &str) {
    let dir = tmpdir("t1");
    let s = store(&dir);
    let c = Holder::new();
    let ns = c.netns("c1");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    let ex = Explain::to(move |l| l2.lock().unwrap().push(l.to_string()));
    let requests = ports(&["8080:80", "127.0.0.1:9090:80"]);
    let ready = ensure_network(&s, &ex, "minibox").unwrap();
    let att = attach(&s, &ex, &id(1), &ep(&ns), ready, &requests)
        .unwrap()
        .serve();
    assert_eq!(att.address.to_string(), "10.77.0.2");
    assert_eq!(att.netns_label(), "c1");
    let inside = sh("ip -n c1 -o addr; ip -n c1 route; ip -n c1 -o link");
    assert!(inside.contains("inet 10.77.0.2/16"), "{inside}");
    assert!(
        inside.contains("default via 10.77.0.1 dev eth0"),
        "{inside}"
    );
    assert!(inside.contains("lo: <LOOPBACK,UP"), "{inside}");
    assert!(inside.contains("02:42:0a:4d:00:02"), "{inside}");
    assert!(sh("ip -o link show mb-010101010101").contains("master minibox0"));
    assert_eq!(sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    // Forwarding was off: minibox turned it on, and the FORWARD policy to DROP first.
    let (policy, drops, publish) = match firewall {
        "nftables" => (
            sh("nft list chain inet minibox forward"),
            "policy drop;",
            "\nadd element inet minibox anyports4 { tcp . 8080",
        ),
        _ => (
            sh("iptables -S FORWARD"),
            "-P FORWARD DROP",
            "\n-A MINIBOX-DNAT ",
        ),
    };
    assert!(policy.contains(drops), "{policy}");
    let explained = lines.lock().unwrap().join("\n");
    let policy_line = match firewall {
        "nftables" => "\nadd chain inet minibox forward { type filter hook forward priority filter; policy drop; }\n",
        _ => "\n-P FORWARD DROP\n",
    };
    for want in [
        "ip link add minibox0",
        "type veth peer name eth0",
        "netns c1",
        "ip -n c1 route add default via 10.77.0.1",
        "sysctl -w net.ipv4.conf.minibox0.route_localnet=1",
        policy_line,
        publish,
    ] {
        assert!(
            explained.contains(want),
            "missing {want:?} in:\n{explained}"
        );
    }

    // A web server in the container, reached through the published ports.
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "hello\n").unwrap();
    let httpd = Holder(
        Command::new("ip")
            .args([
                "netns", "exec", "c1", "busybox", "httpd", "-f", "-p", "80", "-h",
            ])
            .arg(dir.join("www"))
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    for url in [
        "127.0.0.1:8080",
        "198.18.0.1:8080",
        "10.77.0.2:80",
        "127.0.0.1:9090",
    ] {
        let got = sh(&format!("timeout 3 busybox wget -qO- http://{url}/"));
        assert_eq!(got, "hello\n", "{url}");
    }
    // 127.0.0.1-only publishing is not reachable through another address.
    let got = sh("timeout 1 busybox wget -qO- http://198.18.0.1:9090/");
    assert!(!got.contains("hello"), "{got}");

    // The port is taken now, by this container; the netns may be given by /proc path too.
    let c2 = Holder::new();
    let proc_ns = PathBuf::from(format!("/proc/{}/ns/net", c2.0.id()));
    let err = connect(&s, &id(2), &proc_ns, "minibox", &["8080:80"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("host port 8080/tcp is already in use by container 010101010101"),
        "{err}"
    );
    assert!(!leftovers().contains("020202020202"));

    drop(httpd);
    // Half gone already (a crash during an earlier teardown): one rule and the veth.
    match firewall {
        "nftables" => sh("nft delete element inet minibox anyports4 '{ tcp . 8080 }'"),
        _ => sh("iptables -t nat -D MINIBOX-DNAT -p tcp -m tcp --dport 8080 -m comment --comment minibox:010101010101 -j DNAT --to-destination 10.77.0.2:80"),
    };
    sh("ip link del mb-010101010101");
    detach(&s, &Explain::off(), &id(1)).unwrap();
    // Idempotent.
    detach(&s, &Explain::off(), &id(1)).unwrap();
    sh("ip netns delete c1");
    assert_eq!(leftovers().trim(), "");
    assert!(s.attachments().unwrap().is_empty());
}

#[test]
fn refusals_leave_nothing() {
    if !sandboxed("refusals_leave_nothing") {
        return;
    }
    let dir = tmpdir("t2");
    let s = store(&dir);
    let c = Holder::new();
    let ns = c.netns("c");
    // A listening host socket.
    let _l = std::net::TcpListener::bind("0.0.0.0:7070").unwrap();
    let err = connect(&s, &id(3), &ns, "minibox", &["7070:80"]).unwrap_err();
    assert!(
        err.to_string().contains("in use by a process on the host"),
        "{err}"
    );
    let err = connect(&s, &id(3), &ns, "nope", &[]).unwrap_err();
    assert!(err.to_string().contains("network nope not found"), "{err}");
    let err = connect(&s, &id(3), Path::new("/run/netns/absent"), "minibox", &[]).unwrap_err();
    assert!(err.to_string().contains("/run/netns/absent"), "{err}");
    // A subnet overlapping a route.
    let err =
        minibox_netns::create_network(&s, "clash", None, &["198.18.0.0/16".into()], &[], false)
            .unwrap_err();
    assert!(err.to_string().contains("on uplink0"), "{err}");
    // An exhausted subnet.
    minibox_netns::create_network(&s, "tiny", None, &["10.99.0.0/30".into()], &[], false).unwrap();
    connect(&s, &id(4), &ns, "tiny", &[]).unwrap();
    let c2 = Holder::new();
    let err = connect(&s, &id(5), &c2.netns("c2"), "tiny", &[]).unwrap_err();
    assert!(
        err.to_string().contains("no free address left in tiny"),
        "{err}"
    );
    let err = minibox_netns::remove_network(&s, &Explain::off(), "tiny").unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    detach(&s, &Explain::off(), &id(4)).unwrap();
    minibox_netns::remove_network(&s, &Explain::off(), "tiny").unwrap();
    assert!(!sh("ip -o link").contains("minibox1"));
    // A bridge name clash (the network's bridge, made by the attaches above, goes first).
    sh("ip link del minibox0; ip link add minibox0 type veth peer name minibox0p");
    let err = connect(&s, &id(6), &ns, "minibox", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("minibox0 exists and is not a minibox bridge"),
        "{err}"
    );
    sh("ip netns delete c; ip netns delete c2");
    assert_eq!(leftovers().trim(), "");
}
