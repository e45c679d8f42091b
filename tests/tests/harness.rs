//! The harness itself: a sandbox is isolated from the host, and its leak check sees leaks.

use minibox_tests::Sandbox;

#[test]
fn cli_answers_help_and_version() {
    let sb = Sandbox::new();
    let version = sb.minibox(&["--version"]).ok();
    assert!(version.starts_with("minibox "), "{version}");
    let help = sb.minibox(&["--help"]).ok();
    for word in ["run", "import", "load", "images", "--root", "--runroot"] {
        assert!(help.contains(word), "help lacks {word}:\n{help}");
    }
    sb.finish();
}

#[test]
fn sandbox_network_is_private_and_leaks_are_seen() {
    let sb = Sandbox::new();
    let lo = sb.sh("ip -o link show").ok();
    assert_eq!(lo.lines().count(), 1, "a fresh netns holds only lo:\n{lo}");
    assert!(lo.contains("LOOPBACK,UP"), "{lo}");

    // Plant what a leaking minibox would leave and check that the sandbox reports each.
    let name = format!("mb-h{}", sb.holder_pid());
    sb.sh(&format!(
        "ip link add {name} type veth peer name p{name} && touch /run/netns/minibox-x && \
         iptables -A INPUT -m comment --comment minibox:x -j ACCEPT"
    ))
    .ok();
    let pids = format!("/sys/fs/cgroup/pids/{}/c", sb.cgroup_parent());
    std::fs::create_dir_all(&pids).unwrap();
    let mnt = sb.root().join("containers/c/rootfs");
    std::fs::create_dir_all(&mnt).unwrap();
    sb.sh(&format!("mount -t tmpfs t {}", mnt.display())).ok();
    let left = sb.leftovers();
    assert!(
        left.contains(&format!(
            "cgroup /sys/fs/cgroup/pids/{}/c",
            sb.cgroup_parent()
        )),
        "{left:?}"
    );
    assert!(
        left.contains(&format!("mount {}", mnt.display())),
        "{left:?}"
    );
    assert!(
        left.iter().any(|l| l == &format!("link {name}")),
        "{left:?}"
    );
    assert!(left.iter().any(|l| l == "netns minibox-x"), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("rule ")), "{left:?}");

    // None of it is visible on the host.
    let host = std::process::Command::new("ip")
        .args(["-o", "link", "show", &name])
        .output()
        .unwrap();
    assert!(
        !host.status.success(),
        "the sandbox's link leaked to the host"
    );
    assert!(!std::path::Path::new("/run/netns/minibox-x").exists());
    let parent = format!("/sys/fs/cgroup/pids/{}", sb.cgroup_parent());
    drop(sb);
    assert!(
        !std::path::Path::new(&parent).exists(),
        "the sandbox's cgroup parent outlived it"
    );
}
