//! Teaching: `--explain` as a script that rebuilds on a fresh host what minibox built, and the
//! commands that explain the host (`doctor`, `network topology`) or take it back (`system reset`).
//! Traffic only to loopback and to namespaces the tests create.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use minibox_tests::{fixtures, Sandbox};

/// What of an explanation a replay on another host runs: all but the signals to the original
/// container's PID 1 (that pid means nothing there).
fn replayable(explained: &str) -> String {
    explained
        .lines()
        .filter(|l| !l.starts_with("kill "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `script` with `bash -e` on `sb`'s host; it must succeed.
#[track_caller]
fn replay(sb: &Sandbox, what: &str, script: &str) {
    let out = sb.exec("bash", ["-e", "-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "the {what} failed on a fresh host:\n{}\n--- script\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process that is killed when the test lets go of it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A client namespace `client` on a link of its own to the host (198.51.100.1 there, .2 inside):
/// another machine reaching the host's published ports.
fn add_client(sb: &Sandbox) {
    sb.sh("set -e; ip netns add client
         ip link add cl0 type veth peer name eth0 netns client
         ip addr add 198.51.100.1/24 dev cl0 && ip link set cl0 up
         ip -n client addr add 198.51.100.2/24 dev eth0
         ip -n client link set eth0 up && ip -n client link set lo up")
        .ok();
}

fn remove_client(sb: &Sandbox) {
    sb.sh("ip netns delete client").ok();
}

/// `--explain` of a detached `run` and of its `rm -f` (whose teardown its supervisor does) are
/// a set-up and a teardown script: replayed with bash in a fresh sandbox host, the set-up builds
/// the same addresses, routes and DNAT rules (the netns made by name), a server started in that
/// netns answers on the published port from 127.0.0.1 and from another namespace, and the
/// teardown leaves nothing of the container. Under either firewall driver, whose batch is
/// printed as the `nft -f -` or `iptables-restore` here-document minibox fed it.
#[test]
fn teach_explain_replays_on_a_fresh_host() {
    replays_on_a_fresh_host("nftables");
}

#[test]
fn teach_explain_replays_on_a_fresh_host_under_iptables() {
    replays_on_a_fresh_host("iptables");
}

fn replays_on_a_fresh_host(firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_web();
    let run = sb.minibox(&[
        "--explain",
        "run",
        "-d",
        "--name",
        "w",
        "-p",
        "8080:8081",
        "web",
        "/bin/web",
        "w",
    ]);
    run.ok();
    let setup = run.stderr();
    assert!(
        setup.contains("# ---- The container: its OCI runtime config"),
        "{setup}"
    );
    assert!(
        !replayable(&setup)
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("/proc/")),
        "a pid in the script:\n{setup}"
    );
    assert_eq!(sb.http_get(None, "127.0.0.1:8080"), "w\n");
    let ns = sb.sh("ls /run/netns").ok().trim().to_string();
    let (rules, port_rule, deleted) = match firewall {
        "nftables" => (
            "nft list table inet minibox",
            "tcp . 8080",
            "\ndelete element inet minibox anyports4 { tcp . 8080 }",
        ),
        _ => (
            "iptables -t nat -S MINIBOX-DNAT",
            "--dport 8080",
            "\n-D MINIBOX-DNAT ",
        ),
    };
    let view = |s: &Sandbox| {
        s.sh(&format!(
            "ip -n {ns} -o -4 addr show eth0 | awk '{{print $4}}'; ip -n {ns} route
             ip -o -4 addr show minibox0 | awk '{{print $4}}'
             {rules}; sysctl -n net.ipv4.conf.minibox0.route_localnet"
        ))
        .ok()
    };
    let original = view(&sb);
    assert!(original.contains(port_rule), "{original}");
    let rm = sb.minibox(&["--explain", "rm", "-f", "w"]);
    rm.ok();
    let teardown = rm.stderr();
    assert!(teardown.starts_with("kill -s KILL "), "{teardown}");
    assert!(teardown.contains(deleted), "{teardown}");
    assert!(
        teardown.contains(&format!("ip netns delete {ns}")),
        "{teardown}"
    );
    sb.finish();

    let fresh = Sandbox::new();
    replay(&fresh, "set-up", &replayable(&setup));
    assert_eq!(view(&fresh), original);
    let web = fixtures::web_binary();
    let mut server = KillOnDrop(
        fresh
            .exec("ip", ["netns", "exec", &ns])
            .arg(&web)
            .arg("w")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Kept open: the server would die of SIGPIPE writing to a closed pipe.
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("w listen"), "{line}");
    assert_eq!(fresh.http_get(None, "127.0.0.1:8080"), "w\n");
    add_client(&fresh);
    assert_eq!(fresh.http_get(Some("client"), "198.51.100.1:8080"), "w\n");
    drop(server);
    replay(&fresh, "teardown", &replayable(&teardown));
    assert!(!fresh.sh(rules).ok().contains(port_rule));
    remove_client(&fresh);
    fresh.finish();
}

/// `--explain` of a network already complete still prints all of it, each step marked as in
/// place (a comment line) and still runnable; `stop` and `kill` of a detached container show
/// the signal and the teardown its supervisor does.
#[test]
fn teach_explain_marks_steps_in_place_and_explains_stop_and_kill() {
    marks_steps_in_place("nftables");
}

#[test]
fn teach_explain_marks_steps_in_place_and_explains_stop_and_kill_under_iptables() {
    marks_steps_in_place("iptables");
}

fn marks_steps_in_place(firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.import_busybox();
    sb.minibox(&["run", "--rm", "busybox", "true"]).ok();
    let out = sb.minibox(&["--explain", "run", "--rm", "busybox", "true"]);
    out.ok();
    let err = out.stderr();
    let marked = |cmd: &str| err.contains(&format!("# already in place (not redone):\n{cmd}"));
    assert!(marked("ip link add minibox0 "), "{err}");
    let batch = match firewall {
        "nftables" => "nft -f - <<'EOF'\nadd table inet minibox\n",
        _ => "iptables-restore --noflush --wait <<'EOF'\n*nat\n:MINIBOX-DNAT",
    };
    assert!(marked(batch), "{err}");
    assert!(marked("sysctl -w net.ipv4.ip_forward=1"), "{err}");
    assert!(!marked("ip netns add"), "{err}");

    for (name, command) in [("s", ["stop", "s"]), ("k", ["kill", "k"])] {
        sb.minibox(&["run", "-d", "--name", name, "busybox", "sleep", "30"])
            .ok();
        let ns = sb.sh("ls /run/netns").ok().trim().to_string();
        let out = sb.minibox(&["--explain", command[0], command[1]]);
        out.ok();
        let err = out.stderr();
        let signal = if name == "s" { "TERM" } else { "KILL" };
        assert!(err.starts_with(&format!("kill -s {signal} ")), "{err}");
        assert!(err.contains(&format!("ip netns delete {ns}\n")), "{err}");
        sb.minibox(&["rm", name]).ok();
    }
    sb.finish();
}

/// `network topology` names containers, shows those without a bridge, and draws the same as a
/// Graphviz graph and as an SVG picture (well-formed XML).
#[test]
fn teach_topology_names_containers_and_draws_them() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let detached = |args: &[&str]| {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["busybox", "sleep", "30"]);
        sb.minibox(&all).ok();
    };
    detached(&["--name", "web1", "-p", "8080:80"]);
    detached(&["--name", "quiet", "--network", "none"]);
    detached(&["--name", "hosty", "--network", "host"]);
    let text = sb.minibox(&["network", "topology"]).ok();
    let web1 = text
        .lines()
        .find(|l| l.contains("web1"))
        .unwrap_or_default();
    assert!(web1.contains("══ eth0  10.77.0.2/16"), "{text}");
    assert!(
        text.contains("published: 0.0.0.0:8080/tcp ─DNAT→ 10.77.0.2:80"),
        "{text}"
    );
    assert!(text.contains("quiet  --network none"), "{text}");
    assert!(text.contains("hosty  --network host"), "{text}");
    let dot = sb.minibox(&["network", "topology", "--format", "dot"]).ok();
    assert!(dot.starts_with("graph minibox {"), "{dot}");
    assert!(dot.contains("web1 [netns minibox-"), "{dot}");
    let svg = sb.minibox(&["network", "topology", "--format", "svg"]).ok();
    for part in ["web1", "bridge of network minibox", "--network host"] {
        assert!(svg.contains(part), "no {part:?} in\n{svg}");
    }
    let mut xml = sb
        .exec(
            "python3",
            ["-c", "import sys, xml.dom.minidom as m; m.parse(sys.stdin)"],
        )
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    xml.stdin.take().unwrap().write_all(svg.as_bytes()).unwrap();
    assert!(xml.wait().unwrap().success(), "not well-formed:\n{svg}");
    sb.minibox(&["network", "topology", "--format", "png"])
        .fails(125, "png");
    sb.minibox(&["rm", "-f", "web1", "quiet", "hosty"]).ok();
    sb.finish();
}

/// `system reset` says what it will remove and asks; refused, it changes nothing. Confirmed
/// (`-f`), it leaves the host as it was before minibox: no container, bridge, netns, veth or
/// chain, forwarding and the FORWARD policy of both families back to what they were (a
/// dual-stack network turned IPv6 forwarding on); images stay unless `--all`.
#[test]
fn teach_system_reset_gives_the_host_back() {
    reset_gives_the_host_back("nftables");
}

#[test]
fn teach_system_reset_gives_the_host_back_under_iptables() {
    reset_gives_the_host_back("iptables");
}

fn reset_gives_the_host_back(firewall: &'static str) {
    let sb = Sandbox::with_firewall(firewall);
    sb.sh("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0")
        .ok();
    let policies = "iptables -S FORWARD | head -1; ip6tables -S FORWARD | head -1";
    let before = sb.sh(policies).ok();
    sb.import_busybox();
    sb.dual_stack_network("lab", "10.99.0.0/24", "fd00:99::/64");
    for args in [
        &["--name", "a", "-p", "8080:80"][..],
        &["--name", "b", "--network", "lab"],
        &["--name", "c", "--network", "none"],
    ] {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["busybox", "sleep", "30"]);
        sb.minibox(&all).ok();
    }
    sb.minibox(&["system", "prune", "-f"]).ok();
    let forwarding = "sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding";
    assert_eq!(sb.sh(forwarding).ok(), "1\n1\n");
    if firewall == "iptables" {
        let dropping = "-P FORWARD DROP\n-P FORWARD DROP\n";
        assert_eq!(sb.sh(policies).ok(), dropping);
    }

    let refused = sb.minibox(&["system", "reset"]);
    let err = refused.fails(1, "not confirmed");
    for what in [
        "a (running)",
        "lab (bridge minibox1",
        "net.ipv4.ip_forward = 0",
        "net.ipv6.conf.all.forwarding = 0",
    ] {
        assert!(err.contains(what), "{err}");
    }
    if firewall == "iptables" {
        assert!(err.contains("ip6tables.filter.FORWARD = ACCEPT"), "{err}");
    }
    assert_eq!(sb.minibox(&["ps", "-q"]).ok().lines().count(), 3);

    sb.minibox(&["system", "reset", "-f"]).ok();
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    assert_eq!(sb.sh("ip -o link | wc -l").ok().trim(), "1", "only lo");
    assert!(!sb.sh("iptables-save").ok().contains("MINIBOX"));
    assert!(!sb.sh("nft list tables").ok().contains("minibox"));
    assert_eq!(sb.sh(policies).ok(), before);
    assert_eq!(sb.sh(forwarding).ok(), "0\n0\n");
    let nets = sb.minibox(&["network", "ls"]).ok();
    assert!(!nets.contains("lab"), "{nets}");
    assert!(sb.minibox(&["images"]).ok().contains("busybox"));

    sb.minibox(&["system", "reset", "--all", "-f"]).ok();
    assert!(!sb.minibox(&["images"]).ok().contains("busybox"));
    sb.finish();
}

/// Runs the web demo as `w` (with `args`, on the default network without), publishing 8080 to
/// its 8081, checks it answers there, and returns `doctor w 8080`, which finds no problem.
fn doctor_subject(sb: &Sandbox, args: &[&str]) -> minibox_tests::Out {
    let mut run = vec!["run", "-d", "--name", "w"];
    run.extend_from_slice(args);
    run.extend_from_slice(&["-p", "8080:8081", "web", "/bin/web", "w"]);
    sb.minibox(&run).ok();
    assert_eq!(sb.http_get(None, "127.0.0.1:8080"), "w\n");
    let clean = sb.minibox(&["doctor", "w", "8080"]);
    assert!(clean.ok().ends_with("no problem found\n"), "{clean}");
    clean
}

/// The fix commands `doctor` prints under the failed check whose line contains `needle`.
#[track_caller]
fn diagnosis(out: &minibox_tests::Out, needle: &str) -> Vec<String> {
    let text = out.stdout();
    assert_eq!(out.code(), 1, "{needle}: {out}");
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.starts_with("FAIL") && l.contains(needle)));
    assert!(
        lines.next().is_some(),
        "no FAIL line with {needle:?} in:\n{text}"
    );
    lines
        .map_while(|l| l.strip_prefix("      fix: "))
        .map(str::to_string)
        .collect()
}

/// `doctor` finds each of the classic breakages, done here on purpose one at a time, names it,
/// and the command it prints fixes it (doctor is clean again after running it).
#[test]
fn teach_doctor_diagnoses_each_breakage_and_its_fix_works() {
    let sb = Sandbox::with_firewall("iptables");
    sb.import_web();
    doctor_subject(&sb, &[]);
    let ns = sb.sh("ls /run/netns").ok().trim().to_string();
    let veth = ns.replace("minibox-", "mb-");
    let bridge_netfilter = sb
        .sh("sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null")
        .stdout();
    let mut breaks = vec![
        (format!("ip link set {veth} nomaster"), "is not attached to bridge minibox0"),
        (format!("ip link set {veth} down"), "is down"),
        ("ip link set minibox0 down".into(), "bridge minibox0 is down"),
        ("ip addr del 10.77.0.1/16 dev minibox0".into(), "lacks the gateway address 10.77.0.1/16"),
        (format!("ip -n {ns} route del default"), "has no default route via 10.77.0.1"),
        ("sysctl -qw net.ipv4.ip_forward=0".into(), "ip_forward is off"),
        ("iptables -t nat -F MINIBOX-DNAT".into(), "no DNAT rule sends 0.0.0.0:8080/tcp to 10.77.0.2:8081"),
        (
            "iptables -t nat -D PREROUTING -m addrtype --dst-type LOCAL -j MINIBOX-DNAT".into(),
            "nat PREROUTING does not jump to MINIBOX-DNAT",
        ),
        (
            "iptables -t nat -I PREROUTING -p tcp --dport 8080 -j ACCEPT".into(),
            "nat PREROUTING decides before minibox's DNAT",
        ),
        ("iptables -I FORWARD -o minibox0 -j DROP".into(), "a foreign FORWARD rule ahead of minibox's"),
        (
            "sysctl -qw net.ipv4.conf.minibox0.route_localnet=0".into(),
            "route_localnet is off for minibox0",
        ),
        (
            "conntrack -I -p tcp -s 198.51.100.2 -d 198.51.100.1 --sport 40000 --dport 8080 --state ESTABLISHED -t 60".into(),
            "conntrack entries for port 8080/tcp lead elsewhere than 10.77.0.2",
        ),
        ("ip addr add 10.77.0.2/16 dev minibox0".into(), "bridge minibox0 holds 10.77.0.2/16 besides its gateway"),
        (
            "ip link add x0 type veth peer name x1 && ip addr add 10.77.9.9/24 dev x0".into(),
            "x0 holds 10.77.9.9/24, an address of the containers' subnet",
        ),
    ];
    if bridge_netfilter.trim() == "1" {
        breaks.push((
            format!("ip link set {veth} type bridge_slave hairpin off"),
            "hairpin mode off",
        ));
    }
    for (broken, needle) in &breaks {
        sb.sh(broken).ok();
        let fixes = diagnosis(&sb.minibox(&["doctor", "w", "8080"]), needle);
        assert!(!fixes.is_empty(), "{needle}: no fix");
        for fix in fixes {
            sb.sh(&fix).ok();
        }
        // A fix can uncover the next finding (a flushed chain lost more than one rule): its
        // fix is printed then, and applied too.
        for _ in 0..2 {
            let again = sb.minibox(&["doctor", "w", "8080"]);
            if again.code() == 0 {
                break;
            }
            for fix in again
                .stdout()
                .lines()
                .filter_map(|l| l.strip_prefix("      fix: "))
            {
                sb.sh(fix).ok();
            }
        }
        let again = sb.minibox(&["doctor", "w", "8080"]);
        assert!(
            again.ok().ends_with("no problem found\n"),
            "after fixing {needle:?}: {again}"
        );
    }
    sb.sh("ip link del x0").ok();
    assert_eq!(sb.http_get(None, "127.0.0.1:8080"), "w\n");

    // A host process on the published port.
    let mut nc = sb
        .exec("busybox", ["nc", "-l", "-p", "8080"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    diagnosis(
        &sb.minibox(&["doctor", "w", "8080"]),
        "a host process listens on 0.0.0.0:8080/tcp",
    );
    let _ = nc.kill();
    let _ = nc.wait();

    // What the container's process listens on: 127.0.0.1 only, or nothing at all.
    sb.minibox(&[
        "run",
        "-d",
        "--name",
        "l",
        "-p",
        "8090:9999",
        "-p",
        "8091:7777",
        "web",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "127.0.0.1:9999",
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(300));
    diagnosis(
        &sb.minibox(&["doctor", "l", "8090"]),
        "l's process listens on 127.0.0.1:9999/tcp inside minibox-",
    );
    diagnosis(
        &sb.minibox(&["doctor", "l", "8091"]),
        "nothing listens on 7777/tcp inside minibox-",
    );
    diagnosis(&sb.minibox(&["doctor", "w", "9"]), "w publishes no port 9");
    sb.minibox(&["rm", "-f", "w", "l"]).ok();
    sb.finish();
}

/// Under the nftables driver `doctor` checks the table instead of iptables' chains: a published
/// port's map element, the table's rules, and iptables' own FORWARD (whose drop wins over any
/// accept of minibox's table). Each breakage is found and its printed fix works.
#[test]
fn teach_doctor_diagnoses_nftables_breakages() {
    let sb = Sandbox::with_firewall("nftables");
    sb.import_web();
    let clean = doctor_subject(&sb, &[]);
    assert!(
        clean.stdout().contains("(element of map anyports4)"),
        "{clean}"
    );
    let breaks = [
        (
            "nft delete element inet minibox anyports4 '{ tcp . 8080 }'",
            "no map element sends 0.0.0.0:8080/tcp to 10.77.0.2:8081",
        ),
        (
            "nft flush chain inet minibox postrouting",
            "table inet minibox lacks",
        ),
        ("nft delete table inet minibox", "table inet minibox lacks"),
        (
            "iptables -I FORWARD -o minibox0 -j DROP",
            "a foreign iptables FORWARD rule drops",
        ),
        (
            "iptables -P FORWARD DROP",
            "iptables' FORWARD policy is DROP and nothing there accepts minibox0's traffic",
        ),
    ];
    for (broken, needle) in breaks {
        sb.sh(broken).ok();
        let fixes = diagnosis(&sb.minibox(&["doctor", "w", "8080"]), needle);
        assert!(!fixes.is_empty(), "{needle}: no fix");
        // The fixes of every finding, again until none is left: one can need another first
        // (a deleted table's element is added once `network reload` made the table).
        for _ in 0..3 {
            let again = sb.minibox(&["doctor", "w", "8080"]);
            if again.code() == 0 {
                break;
            }
            for fix in again
                .stdout()
                .lines()
                .filter_map(|l| l.strip_prefix("      fix: "))
            {
                // `minibox ...` fixes are the binary under test.
                let _ = match fix.strip_prefix("minibox ") {
                    Some(args) => sb.minibox(&args.split_whitespace().collect::<Vec<_>>()),
                    None => sb.sh(fix),
                };
            }
        }
        let again = sb.minibox(&["doctor", "w", "8080"]);
        assert!(
            again.ok().ends_with("no problem found\n"),
            "after fixing {needle:?}: {again}"
        );
        assert_eq!(
            sb.http_get(None, "127.0.0.1:8080"),
            "w\n",
            "after {needle:?}"
        );
    }
    sb.minibox(&["rm", "-f", "w"]).ok();
    sb.sh("iptables -P FORWARD ACCEPT").ok();
    sb.finish();
}

/// On a dual-stack network `doctor` also checks the IPv6 half: the bridge's IPv6 gateway address
/// and IPv6 forwarding. Each breakage is found, and the command it prints fixes it: the host
/// reaches the container over IPv6 again.
#[test]
fn teach_doctor_diagnoses_ipv6_breakages() {
    let sb = Sandbox::new();
    sb.import_web();
    sb.dual_stack_network("lab", "10.99.0.0/24", "fd00:99::/64");
    let bridge = sb
        .minibox(&[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            "lab",
        ])
        .ok()
        .trim()
        .to_string();
    let clean = doctor_subject(&sb, &["--network", "lab"]);
    let v6 = sb
        .minibox(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.GlobalIPv6Address}}",
            "w",
        ])
        .ok()
        .trim()
        .to_string();
    let url = format!("[{v6}]:8081");
    assert_eq!(sb.http_get(None, &url), "w\n");
    assert!(clean.stdout().contains("IPv6 forwarding is on"), "{clean}");
    for (broken, needle, unreachable) in [
        (
            "sysctl -qw net.ipv6.conf.all.forwarding=0".to_string(),
            "IPv6 forwarding is off",
            false,
        ),
        (
            format!("ip -6 addr del fd00:99::1/64 dev {bridge}"),
            "lacks the IPv6 gateway address fd00:99::1/64",
            true,
        ),
    ] {
        sb.sh(&broken).ok();
        if unreachable {
            assert_eq!(sb.http_get(None, &url), "", "{broken}");
        }
        for fix in diagnosis(&sb.minibox(&["doctor", "w", "8080"]), needle) {
            sb.sh(&fix).ok();
        }
        let again = sb.minibox(&["doctor", "w", "8080"]);
        assert!(
            again.ok().ends_with("no problem found\n"),
            "after fixing {needle:?}: {again}"
        );
        assert_eq!(sb.http_get(None, &url), "w\n", "after fixing {needle:?}");
    }
    sb.minibox(&["rm", "-f", "w"]).ok();
    sb.minibox(&["network", "rm", "lab"]).ok();
    sb.finish();
}

/// Every command that changes the host says, under `--explain`, what it does to it: `network
/// create` (a note: nothing yet), `run`, `network connect`/`disconnect`, `network reload`, `stop`,
/// `start`, `kill`, `system prune` (finishing a run that died), `network rm` and `system reset`.
#[test]
fn teach_every_host_changing_command_explains_itself() {
    let sb = Sandbox::new();
    sb.sh("sysctl -qw net.ipv4.ip_forward=0").ok();
    sb.import_busybox();
    let said = |args: &[&str], wants: &[&str]| {
        let mut all = vec!["--explain"];
        all.extend_from_slice(args);
        let out = sb.command(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        for want in wants {
            assert!(err.contains(want), "{args:?}: no {want:?} in:\n{err}");
        }
        out
    };
    let ok = |args: &[&str], wants: &[&str]| {
        let out = said(args, wants);
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    ok(
        &["network", "create", "lab", "--subnet", "10.99.0.0/24"],
        &["# network lab (10.99.0.0/24, bridge minibox1) is recorded only"],
    );
    ok(
        &[
            "run",
            "-d",
            "--name",
            "a",
            "--network",
            "lab",
            "busybox",
            "sleep",
            "60",
        ],
        &[
            "ip link add minibox1 ",
            "ip netns add minibox-",
            "nft -f - <<'EOF'\n",
        ],
    );
    ok(
        &["network", "connect", "minibox", "a"],
        &[
            "ip link add minibox0 ",
            " peer name eth1 ",
            "ip -n minibox-",
        ],
    );
    ok(
        &["network", "disconnect", "minibox", "a"],
        &["ip link del mb-"],
    );
    ok(
        &["network", "reload"],
        &["nft -f - <<'EOF'\nadd table inet minibox\ndelete table inet minibox\n"],
    );
    ok(
        &["stop", "a"],
        &["kill -s TERM ", "ip netns delete minibox-"],
    );
    ok(
        &["start", "a"],
        &["ip netns add minibox-", "ip link add mb-"],
    );
    ok(
        &["kill", "a"],
        &["kill -s KILL ", "ip netns delete minibox-"],
    );
    // A run that died after its set-up: prune finishes its teardown, and says so.
    let died = sb
        .command(&[
            "run", "--rm", "--name", "d", "-p", "8080:80", "busybox", "sleep", "60",
        ])
        .env("MINIBOX_FAULT", "attached")
        .output()
        .unwrap();
    assert!(!died.status.success());
    ok(
        &["system", "prune", "-f"],
        &[
            "\ndelete element inet minibox anyports4 { tcp . 8080 }",
            "ip netns delete minibox-",
        ],
    );
    sb.minibox(&["rm", "a"]).ok();
    ok(&["network", "rm", "lab"], &["ip link del minibox1"]);
    ok(
        &["system", "reset", "-f"],
        &[
            "nft -f - <<'EOF'\ndelete table inet minibox\nEOF",
            "ip link del minibox0",
            "sysctl -w net.ipv4.ip_forward=0",
        ],
    );
    sb.finish();
}

/// `make demo`'s script leaves what the README says (the image, the bridge with its address,
/// minibox's table, `ip_forward` on, no container), and `system reset --all -f`, the README's
/// way back, takes the host back to only its loopback, forwarding off and no minibox table.
#[test]
fn teach_demo_leaves_what_the_readme_says_and_reset_undoes_it() {
    let sb = Sandbox::new();
    sb.sh("sysctl -qw net.ipv4.ip_forward=0").ok();
    let demo = minibox_tests::workspace().join("examples/demo.sh");
    let out = sb
        .exec("bash", [&demo])
        .env("MINIBOX", minibox_tests::minibox_bin())
        .env("WEB_TAR", fixtures::web_tarball())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "127.0.0.1:8080 -> demo-a",
        "127.0.0.1:8081 -> demo-b",
        "system reset",
    ] {
        assert!(said.contains(want), "no {want:?} in:\n{said}");
    }
    let readme = std::fs::read_to_string(minibox_tests::workspace().join("README.md")).unwrap();
    assert!(
        readme.contains("minibox system reset --all -f"),
        "the README's way back"
    );
    assert_eq!(sb.minibox(&["ps", "-aq"]).ok(), "");
    assert!(sb.minibox(&["images"]).ok().contains("web"));
    assert!(sb
        .sh("ip -o -4 addr show minibox0")
        .ok()
        .contains("10.77.0.1/16"));
    sb.sh("nft list table inet minibox").ok();
    assert_eq!(sb.sh("sysctl -n net.ipv4.ip_forward").ok().trim(), "1");

    sb.minibox(&["system", "reset", "--all", "-f"]).ok();
    assert_eq!(sb.sh("ip -o link | wc -l").ok().trim(), "1", "only lo");
    assert!(!sb.sh("nft list tables").ok().contains("minibox"));
    assert_eq!(sb.sh("sysctl -n net.ipv4.ip_forward").ok().trim(), "0");
    assert!(!sb.minibox(&["images"]).ok().contains("web"));
    sb.finish();
}

/// Every section of docs/tutorial.md runs as written (its `sh` blocks, with bash -e) in a fresh
/// sandbox host, with `minibox` on the PATH and `$WEB_TAR` the fixture the tutorial says to
/// build, and leaves nothing behind.
#[test]
fn teach_tutorial_sections_run_as_written() {
    let text =
        std::fs::read_to_string(minibox_tests::workspace().join("docs/tutorial.md")).unwrap();
    let bin = minibox_tests::minibox_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let web = fixtures::web_tarball();
    let mut ran = 0;
    for section in text.split("\n## ").skip(1) {
        let title = section.lines().next().unwrap_or_default();
        let script: String = section
            .split("```sh\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        if script.is_empty() {
            continue;
        }
        let sb = Sandbox::new();
        let out = sb
            .exec("bash", ["-e", "-c", &script])
            .env("PATH", &path)
            .env("WEB_TAR", &web)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "section {title:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sb.finish();
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} sections ran");
}
