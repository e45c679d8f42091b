//! `minibox-cni`, the CNI plugin, end to end: driven by hand exactly as the spec says a runtime
//! drives a plugin (CNI_* variables, the configuration on stdin, the result or error on stdout),
//! chained after Debian's `loopback` plugin, with Debian's `host-local` as delegated IPAM, and
//! under Podman's CNI backend. Every test runs in a sandbox host and leaves nothing behind.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use minibox_tests::{cni_bin, Out, Sandbox};
use serde_json::{json, Value};

/// Debian's reference plugins (containernetworking-plugins).
const DEBIAN_PLUGINS: &str = "/usr/lib/cni";

/// Calls the plugin in the sandbox: `command` with `vars`, `conf` on stdin.
fn call(sb: &Sandbox, command: &str, vars: &[(&str, &str)], conf: &Value) -> (Out, Value) {
    call_plugin(sb, &cni_bin().display().to_string(), command, vars, conf)
}

fn call_plugin(
    sb: &Sandbox,
    plugin: &str,
    command: &str,
    vars: &[(&str, &str)],
    conf: &Value,
) -> (Out, Value) {
    let mut cmd: Command = sb.exec(plugin, [] as [&str; 0]);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_PATH", DEBIAN_PLUGINS)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = Out {
        what: format!("{plugin} {command} {vars:?}"),
        output,
    };
    let json = serde_json::from_str(out.stdout().trim()).unwrap_or(Value::Null);
    (out, json)
}

/// The variables of one attachment.
fn vars<'a>(id: &'a str, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
    ]
}

/// A network configuration for `version` on its own bridge and subnet, with the sandbox's
/// minibox store.
fn conf(sb: &Sandbox, version: &str, name: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "minibox-cni",
        "bridge": format!("cni-{name}"),
        "subnet": subnet,
        "root": sb.root(),
    })
}

fn with_ports(mut conf: Value, ports: Value) -> Value {
    conf["runtimeConfig"] = json!({ "portMappings": ports });
    conf
}

/// A pod's network namespace, made by "the runtime", with a web server on :80 inside.
fn pod(sb: &Sandbox, name: &str) -> String {
    sb.sh(&format!(
        "set -e; ip netns add {name}; ip -n {name} link set lo up
         mkdir -p /run/www-{name} && echo {name} > /run/www-{name}/index.html
         ip netns exec {name} busybox httpd -p 80 -h /run/www-{name}"
    ))
    .ok();
    format!("/run/netns/{name}")
}

fn remove_pod(sb: &Sandbox, name: &str) {
    sb.sh(&format!(
        "ip netns pids {name} | xargs -r kill; ip netns delete {name}; rm -rf /run/www-{name}"
    ))
    .ok();
}

/// Runs a command in the client namespace that [`build_client`] makes.
const CLIENT: &str = "ip netns exec client";

/// A client namespace on an uplink of the sandbox host, which is 198.51.100.1 to it.
fn build_client(sb: &Sandbox) {
    sb.sh("set -e; ip netns add client
         ip link add up0 type veth peer name up1 netns client
         ip addr add 198.51.100.1/24 dev up0 && ip link set up0 up
         ip -n client addr add 198.51.100.2/24 dev up1 && ip -n client link set up1 up")
        .ok();
}

fn remove_client(sb: &Sandbox) {
    sb.sh("ip netns delete client; ip link del up0 2>/dev/null; true")
        .ok();
}

/// The plugin's records and the network library's attachment records in the sandbox.
fn records(sb: &Sandbox) -> String {
    sb.sh("ls /run/minibox/networks/cni /run/minibox/networks/attachments 2>/dev/null")
        .stdout()
        .lines()
        .filter(|l| l.ends_with(".json"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One HTTP GET from the sandbox host or a namespace, retried for a moment.
fn get(sb: &Sandbox, prefix: &str, url: &str) -> String {
    for _ in 0..20 {
        let got = sb
            .sh(&format!(
                "{prefix} timeout 5 busybox wget -qO- http://{url}/"
            ))
            .stdout();
        if !got.is_empty() {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    String::new()
}

#[test]
fn version_lists_what_the_plugin_speaks() {
    let sb = Sandbox::new();
    let (out, v) = call(&sb, "VERSION", &[], &json!({"cniVersion": "0.4.0"}));
    out.ok();
    assert_eq!(v["cniVersion"], "0.4.0");
    let supported: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(supported.contains(&want), "{want} missing from {v}");
    }
    sb.finish();
}

#[test]
fn add_publishes_check_verifies_del_removes_everything() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "pod1");
    let conf = with_ports(
        conf(&sb, "1.0.0", "podnet", "10.66.0.0/24"),
        json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let (out, result) = call(&sb, "ADD", &vars("pod1", &ns), &conf);
    out.ok();
    assert_eq!(result["cniVersion"], "1.0.0");
    let ip = &result["ips"][0];
    let address = ip["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.66.0.") && address.ends_with("/24"),
        "{result}"
    );
    assert_eq!(ip["gateway"], "10.66.0.1");
    assert!(
        ip.get("version").is_none(),
        "1.0.0 has no ips[].version: {result}"
    );
    let eth0 = &result["interfaces"][ip["interface"].as_u64().unwrap() as usize];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["sandbox"], ns.as_str());
    let inside = sb.sh("ip -n pod1 -4 -o addr show eth0").ok();
    assert!(inside.contains(address), "{inside}");

    // A second ADD of the same attachment is refused and changes nothing.
    let (again, err) = call(&sb, "ADD", &vars("pod1", &ns), &conf);
    assert_ne!(again.code(), 0, "{again}");
    assert_eq!(err["code"], 104, "{again}");

    // The published port, from the host's 127.0.0.1 at kernel speed (no proxy process).
    assert_eq!(get(&sb, "", "127.0.0.1:18080").trim(), "pod1");
    // And from a client namespace on the sandbox host's uplink.
    build_client(&sb);
    assert_eq!(get(&sb, CLIENT, "198.51.100.1:18080").trim(), "pod1");

    let mut check = conf.clone();
    check["prevResult"] = result.clone();
    call(&sb, "CHECK", &vars("pod1", &ns), &check).0.ok();

    // What a firewall restart does: CHECK names what is missing.
    match sb.firewall() {
        "nftables" => sb.sh("nft flush table inet minibox").ok(),
        _ => sb.sh("iptables -t nat -F").ok(),
    };
    let (out, err) = call(&sb, "CHECK", &vars("pod1", &ns), &check);
    assert_ne!(out.code(), 0, "CHECK passed with the rules flushed: {out}");
    assert!(err["code"].as_u64().is_some(), "{out}");
    assert!(err["msg"].as_str().unwrap().contains("rule"), "{err}");

    let mut del = conf.clone();
    del["prevResult"] = result;
    call(&sb, "DEL", &vars("pod1", &ns), &del).0.ok();
    sb.settle(); // DEL leaves the kernel's part to a background process holding the lock
    assert!(
        sb.sh("ip -n pod1 -o link show eth0").code() != 0,
        "eth0 left in the pod"
    );
    // DEL is idempotent: again, without the netns, and for an id never added.
    call(&sb, "DEL", &vars("pod1", &ns), &del).0.ok();
    call(
        &sb,
        "DEL",
        &[("CNI_CONTAINERID", "pod1"), ("CNI_IFNAME", "eth0")],
        &del,
    )
    .0
    .ok();
    call(&sb, "DEL", &vars("never-added", &ns), &conf).0.ok();

    remove_client(&sb);
    remove_pod(&sb, "pod1");
    sb.finish();
}

#[test]
fn older_versions_get_their_result_shape() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "old");
    for version in ["0.3.1", "0.4.0"] {
        let conf = conf(&sb, version, "oldnet", "10.68.0.0/24");
        let (out, result) = call(&sb, "ADD", &vars("old", &ns), &conf);
        out.ok();
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["ips"][0]["version"], "4", "{result}");
        call(&sb, "DEL", &vars("old", &ns), &conf).0.ok();
    }
    remove_pod(&sb, "old");
    sb.finish();
}

#[test]
fn mtu_and_hairpin_mode_are_honoured_and_ip_masq_false_is_refused() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "opts");
    let mut conf = conf(&sb, "1.0.0", "optnet", "10.75.0.0/24");
    conf["mtu"] = 1400.into();
    conf["hairpinMode"] = false.into();
    let (out, result) = call(&sb, "ADD", &vars("opts", &ns), &conf);
    out.ok();
    let inside = sb.sh("ip -n opts -o link show eth0").ok();
    assert!(inside.contains("mtu 1400"), "{inside}");
    let veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let port = sb.sh(&format!("ip -d -o link show {veth}")).ok();
    assert!(port.contains("hairpin off"), "hairpinMode false: {port}");
    call(&sb, "DEL", &vars("opts", &ns), &conf).0.ok();

    let mut masq = conf.clone();
    masq["ipMasq"] = false.into();
    let (out, err) = call(&sb, "ADD", &vars("opts", &ns), &masq);
    assert_ne!(out.code(), 0, "{out}");
    assert_eq!(err["code"], 2, "{out}");
    sb.settle();
    assert_eq!(records(&sb), "");
    remove_pod(&sb, "opts");
    sb.finish();
}

#[test]
fn bad_input_gets_the_spec_error_and_leaves_nothing() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "bad");
    let good = conf(&sb, "1.0.0", "badnet", "10.69.0.0/24");
    let fails = |what: &str, out: &Out, err: &Value, code: u64| {
        assert_ne!(out.code(), 0, "{what}: exit 0: {out}");
        assert_eq!(err["code"], code, "{what}: {out}");
        assert!(
            !err["msg"].as_str().unwrap_or_default().is_empty(),
            "{what}: {out}"
        );
    };

    let mut unknown = good.clone();
    unknown["cniVersion"] = "0.2.0".into();
    let (out, err) = call(&sb, "ADD", &vars("bad", &ns), &unknown);
    fails("unknown cniVersion", &out, &err, 1);

    let (out, err) = call(
        &sb,
        "ADD",
        &[("CNI_CONTAINERID", "bad"), ("CNI_IFNAME", "eth0")],
        &good,
    );
    fails("missing CNI_NETNS", &out, &err, 4);

    let (out, err) = call(&sb, "ADD", &vars("bad", "/run/netns/nosuch"), &good);
    fails("a missing netns", &out, &err, 3);
    assert_eq!(records(&sb), "", "a refused ADD left records");

    let (out, err) = call(
        &sb,
        "ADD",
        &vars("bad", &ns),
        &json!({"cniVersion": "1.0.0"}),
    );
    fails("a config without name and type", &out, &err, 6);

    // A subnet that a route of the host already covers.
    sb.sh(
        "ip link add ov0 type veth peer name ov1 && ip link set ov1 up \
         && ip addr add 10.70.0.1/24 dev ov0 && ip link set ov0 up",
    )
    .ok();
    let overlap = conf(&sb, "1.0.0", "overlapnet", "10.70.0.0/24");
    let (out, err) = call(&sb, "ADD", &vars("bad", &ns), &overlap);
    assert_ne!(out.code(), 0, "overlapping subnet: {out}");
    assert!(err["msg"].as_str().unwrap().contains("overlaps"), "{out}");
    assert_eq!(records(&sb), "", "a refused ADD left records");

    // A host port another pod holds.
    let ns2 = pod(&sb, "bad2");
    let ports = json!([{"hostPort": 18081, "containerPort": 80}]);
    call(
        &sb,
        "ADD",
        &vars("bad", &ns),
        &with_ports(good.clone(), ports.clone()),
    )
    .0
    .ok();
    let (out, err) = call(
        &sb,
        "ADD",
        &vars("bad2", &ns2),
        &with_ports(good.clone(), ports.clone()),
    );
    assert_ne!(out.code(), 0, "a port taken twice: {out}");
    assert!(err["msg"].as_str().unwrap().contains("18081"), "{out}");
    assert!(
        sb.sh("ip -n bad2 -o link show eth0").code() != 0,
        "half-made eth0"
    );
    call(
        &sb,
        "DEL",
        &vars("bad2", &ns2),
        &with_ports(good.clone(), ports.clone()),
    )
    .0
    .ok();
    call(&sb, "DEL", &vars("bad", &ns), &with_ports(good, ports))
        .0
        .ok();

    sb.sh("ip link del ov0").ok();
    remove_pod(&sb, "bad");
    remove_pod(&sb, "bad2");
    sb.finish();
}

/// ADD killed at various points of its work: the DEL that a runtime sends next (with or
/// without the netns) releases whatever the killed one made.
#[test]
fn del_after_an_add_killed_half_way_leaves_nothing() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "killed");
    let conf = with_ports(
        conf(&sb, "1.0.0", "killnet", "10.74.0.0/24"),
        json!([{"hostPort": 18083, "containerPort": 80}]),
    );
    let plugin = cni_bin();
    for delay_ms in [1, 3, 6, 10, 15, 25, 40] {
        sb.sh(&format!(
            "echo '{conf}' | CNI_COMMAND=ADD CNI_CONTAINERID=killed CNI_NETNS={ns} CNI_IFNAME=eth0 \
             timeout -s KILL {delay} {plugin} >/dev/null; true",
            delay = delay_ms as f64 / 1000.0,
            plugin = plugin.display()
        ))
        .ok();
        call(&sb, "DEL", &vars("killed", &ns), &conf).0.ok();
        sb.settle();
        assert_eq!(
            records(&sb),
            "",
            "records left after DEL (killed at {delay_ms} ms)"
        );
        assert!(
            sb.sh("ip -n killed -o link show eth0").code() != 0,
            "eth0 left after DEL (killed at {delay_ms} ms)"
        );
        // The pod's own namespace is the runtime's, not a leftover.
        let left: Vec<String> = sb
            .leftovers()
            .into_iter()
            .filter(|l| l != "netns killed")
            .collect();
        assert!(left.is_empty(), "killed at {delay_ms} ms, left: {left:?}");
    }
    remove_pod(&sb, "killed");
    sb.finish();
}

#[test]
fn chained_after_loopback_with_host_local_ipam() {
    let sb = Sandbox::new();
    let ns = pod(&sb, "chain");
    let lo_conf = json!({"cniVersion": "1.0.0", "name": "chainnet", "type": "loopback"});
    let (out, lo) = call_plugin(
        &sb,
        &format!("{DEBIAN_PLUGINS}/loopback"),
        "ADD",
        &vars("chain", &ns),
        &lo_conf,
    );
    out.ok();
    let mut conf = conf(&sb, "1.0.0", "chainnet", "10.71.0.0/24");
    conf["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{"subnet": "10.71.0.0/24", "rangeStart": "10.71.0.100"}]],
        "dataDir": "/run/cni-ipam",
    });
    conf["prevResult"] = lo.clone();
    let (out, result) = call(&sb, "ADD", &vars("chain", &ns), &conf);
    out.ok();
    // The loopback plugin's interface stays first; ours follow, with host-local's address.
    assert_eq!(result["interfaces"][0]["name"], "lo", "{result}");
    let ours = result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ip| ip["address"].as_str().unwrap().starts_with("10.71."))
        .expect("our address in the result")
        .clone();
    assert_eq!(ours["address"], "10.71.0.100/24", "{result}");
    let reserved = sb.sh("ls /run/cni-ipam/chainnet").ok();
    assert!(reserved.contains("10.71.0.100"), "{reserved}");
    assert!(sb
        .sh("ip -n chain -4 -o addr show eth0")
        .ok()
        .contains("10.71.0.100/24"));

    conf["prevResult"] = result;
    call(&sb, "DEL", &vars("chain", &ns), &conf).0.ok();
    let reserved = sb.sh("ls /run/cni-ipam/chainnet").stdout();
    assert!(
        !reserved.contains("10.71.0.100"),
        "host-local kept {reserved}"
    );
    call_plugin(
        &sb,
        &format!("{DEBIAN_PLUGINS}/loopback"),
        "DEL",
        &vars("chain", &ns),
        &lo_conf,
    )
    .0
    .ok();
    remove_pod(&sb, "chain");
    sb.finish();
}

#[test]
fn pods_and_cli_containers_share_the_default_network() {
    let sb = Sandbox::new();
    sb.import_busybox();
    let cid = sb
        .minibox(&["run", "-d", "busybox", "sleep", "300"])
        .ok()
        .trim()
        .to_string();
    let ns = pod(&sb, "shared");
    let conf =
        json!({"cniVersion": "1.0.0", "name": "minibox", "type": "minibox-cni", "root": sb.root()});
    let (out, result) = call(&sb, "ADD", &vars("shared", &ns), &conf);
    out.ok();
    let pod_ip = result["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(pod_ip.starts_with("10.77."), "{result}");
    let inspect: Value = serde_json::from_str(&sb.minibox(&["inspect", &cid]).ok()).unwrap();
    let cli_ip = inspect[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(pod_ip.split('/').next().unwrap(), cli_ip);
    // One bridge: the CLI's container reaches the pod's server directly.
    let got = sb
        .minibox(&[
            "exec",
            &cid,
            "timeout",
            "5",
            "wget",
            "-qO-",
            &format!("http://{}/", pod_ip.split('/').next().unwrap()),
        ])
        .ok();
    assert_eq!(got.trim(), "shared");
    call(&sb, "DEL", &vars("shared", &ns), &conf).0.ok();
    sb.minibox(&["rm", "-f", &cid]).ok();
    remove_pod(&sb, "shared");
    sb.finish();
}

#[test]
fn gc_removes_what_the_runtime_no_longer_knows_and_status_answers() {
    let sb = Sandbox::new();
    let conf = conf(&sb, "1.1.0", "gcnet", "10.72.0.0/24");
    let ns_a = pod(&sb, "gca");
    let ns_b = pod(&sb, "gcb");
    call(&sb, "ADD", &vars("gca", &ns_a), &conf).0.ok();
    call(&sb, "ADD", &vars("gcb", &ns_b), &conf).0.ok();
    call(&sb, "STATUS", &[], &conf).0.ok();

    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "gca", "ifname": "eth0"}]);
    call(&sb, "GC", &[], &gc).0.ok();
    sb.settle();
    assert!(
        sb.sh("ip -n gca -o link show eth0").code() == 0,
        "GC removed a valid one"
    );
    assert!(
        sb.sh("ip -n gcb -o link show eth0").code() != 0,
        "GC kept a stale one"
    );

    call(&sb, "DEL", &vars("gca", &ns_a), &conf).0.ok();
    remove_pod(&sb, "gca");
    remove_pod(&sb, "gcb");
    sb.finish();
}

/// Podman 4.3's CNI backend with a conflist whose plugin is minibox-cni: `podman run -p`.
#[test]
fn podman_runs_pods_on_minibox_cni() {
    let sb = Sandbox::new();
    let dir = sb.root().join("podman");
    let plugins = dir.join("plugins");
    let netd = dir.join("net.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&netd).unwrap();
    std::os::unix::fs::symlink(cni_bin(), plugins.join("minibox-cni")).unwrap();
    std::fs::write(
        netd.join("mbnet.conflist"),
        json!({
            "cniVersion": "1.0.0",
            "name": "mbnet",
            "plugins": [{
                "type": "minibox-cni",
                "bridge": "cni-mbnet",
                "subnet": "10.73.0.0/24",
                "root": sb.root(),
                "capabilities": {"portMappings": true},
            }],
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[network]\nnetwork_backend=\"cni\"\ncni_plugin_dirs=[\"{}\"]\nnetwork_config_dir=\"{}\"\n\
             [engine]\nruntime=\"runc\"\ncgroup_manager=\"cgroupfs\"\nevents_logger=\"file\"\n",
            plugins.display(),
            netd.display()
        ),
    )
    .unwrap();
    let podman = format!(
        "CONTAINERS_CONF={dir}/containers.conf podman --root {dir}/storage --runroot /run/podman \
         --storage-driver vfs --cgroup-manager cgroupfs",
        dir = dir.display()
    );
    // libcni's cache is hard-coded under /var/lib/cni: keep it inside the sandbox.
    sb.sh("mkdir -p /var/lib/cni && mount -t tmpfs cni-cache /var/lib/cni")
        .ok();
    let tar = minibox_tests::fixtures::busybox_tarball();
    sb.sh(&format!("{podman} import {} bb", tar.display())).ok();
    let ulimits = "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024";
    sb.sh(&format!(
        "{podman} run -d --name web --network mbnet -p 18082:80 {ulimits} bb \
         sh -c 'mkdir -p /www && echo podman-pod > /www/index.html && exec httpd -f -p 80 -h /www'"
    ))
    .ok();
    assert_eq!(get(&sb, "", "127.0.0.1:18082").trim(), "podman-pod");
    build_client(&sb);
    assert_eq!(get(&sb, CLIENT, "198.51.100.1:18082").trim(), "podman-pod");
    sb.sh(&format!("{podman} rm -f -t 0 web")).ok();
    remove_client(&sb);
    sb.sh("umount /var/lib/cni").ok();
    sb.finish();
}
