//! `network connect` and `disconnect` last across stop and start, as in Docker.

use minibox_tests::Sandbox;

#[test]
fn connected_networks_are_kept_across_stop_and_start() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&["network", "create", "back", "--subnet", "10.95.0.0/24"])
        .ok();
    sb.minibox(&["run", "-d", "--name", "app", "busybox", "sleep", "1d"])
        .ok();
    sb.minibox(&["network", "connect", "back", "app"]).ok();
    let addresses = || {
        sb.minibox(&["exec", "app", "ip", "-o", "-4", "addr", "show"])
            .ok()
    };
    assert!(addresses().contains("inet 10.95.0."), "{}", addresses());
    sb.minibox(&["stop", "-t", "1", "app"]).ok();
    sb.minibox(&["start", "app"]).ok();
    let after = addresses();
    assert!(
        after.contains("eth1") && after.contains("inet 10.95.0."),
        "{after}"
    );
    // Disconnected: gone now and after the next start.
    sb.minibox(&["network", "disconnect", "back", "app"]).ok();
    sb.minibox(&["stop", "-t", "1", "app"]).ok();
    sb.minibox(&["start", "app"]).ok();
    assert!(!addresses().contains("10.95.0."), "{}", addresses());
    sb.minibox(&["network", "disconnect", "back", "app"])
        .fails(1, "not connected to network back");
    sb.minibox(&["rm", "-f", "app"]).ok();
    sb.minibox(&["network", "rm", "back"]).ok();
    sb.finish();
}

/// `network connect --alias --ip` lasts across a restart as Docker's does: the container takes
/// the same address on that network again, and the network's DNS still answers its alias.
#[test]
fn a_connected_networks_alias_and_address_last_across_a_restart() {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb.minibox(&["network", "create", "back", "--subnet", "10.94.0.0/24"])
        .ok();
    sb.minibox(&["run", "-d", "--name", "app", "busybox", "sleep", "1d"])
        .ok();
    let peer = [
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "back",
        "busybox",
        "sleep",
        "1d",
    ];
    sb.minibox(&peer).ok();
    let connect = [
        "network",
        "connect",
        "--alias",
        "api",
        "--ip",
        "10.94.0.50",
        "back",
        "app",
    ];
    sb.minibox(&connect).ok();
    // busybox's nslookup asks a full name only when given one (resolv.conf has a search list).
    let lookup = || {
        sb.minibox(&["exec", "peer", "nslookup", "-type=a", "api."])
            .stdout()
    };
    assert!(lookup().contains("10.94.0.50"), "{}", lookup());
    sb.minibox(&["stop", "-t", "1", "app"]).ok();
    sb.minibox(&["start", "app"]).ok();
    let eth1 = sb
        .minibox(&["exec", "app", "ip", "-o", "-4", "addr", "show", "eth1"])
        .ok();
    assert!(eth1.contains("inet 10.94.0.50/"), "{eth1}");
    assert!(lookup().contains("10.94.0.50"), "{}", lookup());
    sb.minibox(&["rm", "-f", "app", "peer"]).ok();
    sb.minibox(&["network", "rm", "back"]).ok();
    sb.finish();
}
