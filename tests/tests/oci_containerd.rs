//! containerd (Debian's package, started by the test with private root, state and address, its
//! /run on the sandbox's tmpfs) runs its containers with minibox-runc: `ctr run --runc-binary`.

use std::path::PathBuf;

use minibox_tests::oci::Daemon;
use minibox_tests::{Out, Sandbox};

struct Containerd {
    sb: Sandbox,
    address: String,
    daemon: Option<Daemon>,
}

impl Containerd {
    /// A sandbox with containerd running and the busybox image imported from a docker-archive
    /// that `minibox save` made.
    fn start() -> Self {
        let sb = Sandbox::new();
        sb.import_busybox();
        let archive = sb.root().join("busybox.tar");
        sb.minibox(&["save", "-o", archive.to_str().unwrap(), "busybox"])
            .ok();
        let root = sb.root().join("containerd");
        let config = sb.root().join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = \"/run/containerd\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"/run/containerd/containerd.sock\"\n",
                root.display()
            ),
        )
        .unwrap();
        let cmd = sb.exec("containerd", ["--config", config.to_str().unwrap()]);
        let mut daemon = Daemon::start(&sb, "containerd", cmd, &sb.root().join("containerd.log"));
        daemon.wait_for(&sb.path("/run/containerd/containerd.sock"));
        let this = Self {
            address: "/run/containerd/containerd.sock".into(),
            sb,
            daemon: Some(daemon),
        };
        this.ctr(&["image", "import", archive.to_str().unwrap()])
            .ok();
        this
    }

    fn ctr(&self, args: &[&str]) -> Out {
        let mut all = vec!["--address", self.address.as_str()];
        all.extend_from_slice(args);
        let output = self.sb.exec("ctr", &all).output().unwrap();
        Out {
            what: format!("ctr {}", args.join(" ")),
            output,
        }
    }

    /// `ctr run` with minibox-runc and the container's cgroup under the sandbox's parent.
    fn run(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Out {
        let runc = runc();
        let cgroup = format!("/{}/{id}", self.sb.cgroup_parent());
        let mut args = vec![
            "run",
            "--runc-binary",
            runc.to_str().unwrap(),
            "--cgroup",
            &cgroup,
        ];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox:latest", id]);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    fn finish(mut self) {
        assert_eq!(self.ctr(&["task", "ls", "-q"]).ok(), "");
        assert_eq!(self.ctr(&["container", "ls", "-q"]).ok(), "");
        drop(self.daemon.take());
        self.sb.finish();
    }
}

fn runc() -> PathBuf {
    minibox_tests::minibox_runc_bin()
}

#[test]
fn ocirt_containerd_run_rm_and_exit_codes() {
    let c = Containerd::start();
    let out = c.run(
        &["--rm"],
        "r1",
        &["sh", "-c", "echo hello from pid $$; exit 3"],
    );
    assert_eq!(out.code(), 3, "{out}");
    assert_eq!(out.stdout(), "hello from pid 1\n");
    let out = c.run(&["--rm"], "r2", &["true"]);
    assert_eq!(out.code(), 0, "{out}");
    let out = c.run(&["--rm"], "r3", &["/nope"]);
    assert_ne!(out.code(), 0, "{out}");
    // The failure reached containerd through minibox-runc's JSON log.
    assert!(out.stderr().contains("/nope"), "{out}");
    c.finish();
}

#[test]
fn ocirt_containerd_detached_exec_ps_pause_kill() {
    let c = Containerd::start();
    c.run(&["-d"], "d1", &["sleep", "100"]).ok();
    let tasks = c.ctr(&["task", "ls"]).ok();
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with("d1") && l.contains("RUNNING")),
        "{tasks}"
    );
    let pid: i32 = tasks
        .lines()
        .find(|l| l.starts_with("d1"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    // The task's pid is the container's process itself, whose parent is the shim.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim();
    let parent = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap();
    assert!(parent.starts_with("containerd-shim"), "{parent}");

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "d1",
        "sh",
        "-c",
        "echo in; ps -o comm | grep -c sleep; exit 5",
    ]);
    assert_eq!(out.code(), 5, "{out}");
    assert_eq!(out.stdout(), "in\n1\n");
    // With a terminal: the pty travels over the shim's console socket.
    let script = format!(
        "ctr --address {} task exec -t --exec-id e2 d1 tty",
        c.address
    );
    let out = c.sb.terminal(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");

    let ps = c.ctr(&["task", "ps", "d1"]).ok();
    assert!(ps.contains(&pid.to_string()), "{ps}");
    c.ctr(&["task", "pause", "d1"]).ok();
    assert!(c.ctr(&["task", "ls"]).ok().contains("PAUSED"));
    c.ctr(&["task", "resume", "d1"]).ok();
    assert!(c.ctr(&["task", "ls"]).ok().contains("RUNNING"));
    c.ctr(&["task", "kill", "-s", "KILL", "d1"]).ok();
    let start = std::time::Instant::now();
    while !c.ctr(&["task", "ls"]).ok().contains("STOPPED") {
        assert!(start.elapsed().as_secs() < 10, "d1 did not stop");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Killed by SIGKILL: 128 + 9.
    let deleted = c.ctr(&["task", "delete", "d1"]);
    deleted.ok();
    assert!(deleted.stderr().contains("exit code 137"), "{deleted}");
    c.ctr(&["container", "delete", "d1"]).ok();
    c.finish();
}

#[test]
fn ocirt_containerd_run_with_a_terminal() {
    let c = Containerd::start();
    let runc = runc();
    let script = format!(
        "ctr --address {} run -t --rm --runc-binary {} --cgroup /{}/t1 busybox:latest t1 \
         sh -c 'tty; stty size'",
        c.address,
        runc.display(),
        c.sb.cgroup_parent()
    );
    let out = c.sb.terminal(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "{text}");
    c.finish();
}
