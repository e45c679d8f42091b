//! Podman (Debian's package) runs its containers with minibox-runc: `--runtime`, private root
//! and runroot, cgroupfs, netavark networking inside the sandbox. This VM lacks
//! CAP_SYS_RESOURCE: the ulimits Podman asks for are kept within the current hard limits.

use std::path::PathBuf;

use minibox_tests::{Out, Sandbox};

struct Podman {
    sb: Sandbox,
    conf: PathBuf,
}

impl Podman {
    fn new() -> Self {
        let sb = Sandbox::new();
        sb.import_busybox();
        let archive = sb.root().join("busybox.tar");
        sb.minibox(&["save", "-o", archive.to_str().unwrap(), "busybox"])
            .ok();
        let conf = sb.root().join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n\
                 [network]\nnetwork_config_dir = {:?}\n",
                sb.root().join("podman-networks").display()
            ),
        )
        .unwrap();
        let this = Self { sb, conf };
        this.podman(&["load", "-i", archive.to_str().unwrap()]).ok();
        this
    }

    /// The global flags: private storage, minibox-runc, cgroupfs.
    fn flags(&self) -> Vec<String> {
        let runc = minibox_tests::minibox_runc_bin();
        [
            "--root",
            &self.sb.root().join("podman").to_string_lossy(),
            "--runroot",
            "/run/podman-run",
            "--tmpdir",
            "/run/podman-tmp",
            "--runtime",
            &runc.to_string_lossy(),
            "--cgroup-manager",
            "cgroupfs",
        ]
        .map(String::from)
        .to_vec()
    }

    /// `run`'s options every container needs here: limits within the hard ones, and a cgroup
    /// under the sandbox's parent.
    fn run_flags(&self) -> Vec<String> {
        [
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--cgroup-parent",
            &format!("/{}/podman", self.sb.cgroup_parent()),
        ]
        .map(String::from)
        .to_vec()
    }

    fn podman(&self, args: &[&str]) -> Out {
        let mut all = self.flags();
        all.extend(args.iter().map(|a| a.to_string()));
        let output = self
            .sb
            .exec("podman", &all)
            .env("CONTAINERS_CONF", &self.conf)
            .output()
            .unwrap();
        Out {
            what: format!("podman {}", args.join(" ")),
            output,
        }
    }

    fn run(&self, opts: &[&str], cmd: &[&str]) -> Out {
        let mut args: Vec<&str> = vec!["run"];
        let flags = self.run_flags();
        args.extend(flags.iter().map(String::as_str));
        args.extend_from_slice(opts);
        args.push("localhost/busybox:latest");
        args.extend_from_slice(cmd);
        self.podman(&args)
    }

    /// Checks Podman has nothing left, then removes the cgroup Podman itself makes for conmon
    /// under the parent (`<parent>/conmon`, which it never removes, with runc too).
    fn finish(self) {
        assert_eq!(self.podman(&["ps", "-aq"]).ok(), "");
        for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let podman = dir.path().join(self.sb.cgroup_parent()).join("podman");
            let _ = std::fs::remove_dir(podman.join("conmon"));
            let _ = std::fs::remove_dir(&podman);
        }
        let unified = PathBuf::from("/sys/fs/cgroup")
            .join(self.sb.cgroup_parent())
            .join("podman");
        let _ = std::fs::remove_dir(unified.join("conmon"));
        let _ = std::fs::remove_dir(unified);
        self.sb.finish();
    }
}

#[test]
fn ocirt_podman_run_rm_and_exit_code() {
    let p = Podman::new();
    let out = p.run(
        &["--rm", "--network", "none"],
        &["sh", "-c", "echo hi from $$; exit 4"],
    );
    assert_eq!(out.code(), 4, "{out}");
    assert_eq!(out.stdout(), "hi from 1\n");
    p.finish();
}

#[test]
fn ocirt_podman_published_port_exec_logs_stop() {
    let p = Podman::new();
    let id = p
        .run(
            &["-d", "--name", "web", "-p", "18080:8081"],
            &[
                "sh",
                "-c",
                "echo served > /tmp/index.html; echo started; exec httpd -f -p 8081 -h /tmp",
            ],
        )
        .ok();
    assert_eq!(id.trim().len(), 64, "{id}");
    // The published port answers from the host's loopback (netavark's DNAT, in the sandbox).
    let start = std::time::Instant::now();
    let page = loop {
        let out =
            p.sb.sh("busybox wget -qO- http://127.0.0.1:18080/index.html");
        if out.code() == 0 {
            break out.stdout();
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "the port never answered: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(page, "served\n");
    assert_eq!(p.podman(&["logs", "web"]).ok(), "started\n");

    let out = p.podman(&["exec", "web", "sh", "-c", "echo in; exit 6"]);
    assert_eq!(out.code(), 6, "{out}");
    assert_eq!(out.stdout(), "in\n");
    // exec -it: the terminal comes through conmon's console socket.
    let flags = p.flags().join(" ");
    let script = format!(
        "CONTAINERS_CONF={} podman {flags} exec -it web sh -c 'tty; echo $TERM'",
        p.conf.display()
    );
    let out = p.sb.terminal(&script).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");

    // httpd as PID 1 has no SIGTERM handler: stop ends it with SIGKILL after the timeout.
    p.podman(&["stop", "-t", "1", "web"]).ok();
    let ps = p
        .podman(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .ok();
    assert!(ps.starts_with("web Exited (137)"), "{ps}");
    p.podman(&["rm", "web"]).ok();
    p.finish();
}
