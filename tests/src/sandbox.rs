//! The sandbox host: a fresh network + mount namespace that a test's minibox runs in.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Sets the sandbox up: `/run` becomes a private tmpfs (so `/run/netns` and the default runroot
/// `/run/minibox` start empty), loopback comes up, and the holder waits to be killed.
const HOLDER: &str =
    "mount -t tmpfs -o mode=755 sandbox-run /run && mkdir -p /run/netns /run/minibox \
                      && ip link set lo up && echo ready && exec sleep infinity";

pub struct Sandbox {
    holder: Child,
    root: PathBuf,
    cgroup_parent: String,
    firewall: &'static str,
}

/// The firewall driver tests run under unless they choose: `MINIBOX_FIREWALL_DRIVER` of the
/// test run, else minibox's own default (nftables where `nft` is installed).
pub fn default_firewall() -> &'static str {
    match std::env::var("MINIBOX_FIREWALL_DRIVER").as_deref() {
        Ok("iptables") => "iptables",
        Ok("nftables") => "nftables",
        _ if Path::new("/usr/sbin/nft").exists() => "nftables",
        _ => "iptables",
    }
}

/// The result of a command run in a sandbox, with the command line kept for failure messages.
pub struct Out {
    pub what: String,
    pub output: Output,
}

impl Out {
    /// The exit code (128+N when killed by signal N, as a shell reports it).
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let s = self.output.status;
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(self.code(), 0, "{} failed:\n{}", self.what, self);
        self.stdout()
    }
    /// Asserts failure with `code` and a one-line `minibox: ...` error containing `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) -> String {
        assert_eq!(
            self.code(),
            code,
            "{}: wrong exit code:\n{}",
            self.what,
            self
        );
        let err = self.stderr();
        assert!(
            err.contains(needle),
            "{}: stderr lacks {needle:?}:\n{}",
            self.what,
            self
        );
        assert!(
            err.lines().any(|l| l.starts_with("minibox: ")),
            "{}: no `minibox: ` error line:\n{}",
            self.what,
            self
        );
        err
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
}

impl Sandbox {
    pub fn new() -> Self {
        Self::with_firewall(default_firewall())
    }

    /// A sandbox whose minibox commands use this firewall driver (`nftables` or `iptables`).
    pub fn with_firewall(firewall: &'static str) -> Self {
        crate::require_root();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                HOLDER,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the sandbox holder (unshare, from util-linux)");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "sandbox holder failed to start");
        let root = crate::target_dir().join("sandboxes").join(&unique);
        fs::create_dir_all(&root).unwrap();
        Self {
            holder,
            root,
            cgroup_parent: format!("minibox-test-{unique}"),
            firewall,
        }
    }

    /// The firewall driver this sandbox's minibox commands use.
    pub fn firewall(&self) -> &'static str {
        self.firewall
    }

    /// What the firewall holds, as text: minibox's nftables table (and iptables' FORWARD, where
    /// it adds accepts), or iptables-save.
    pub fn firewall_rules(&self) -> String {
        match self.firewall {
            "nftables" => self
                .sh("nft list table inet minibox; iptables-save -t filter")
                .stdout(),
            _ => self.sh("iptables-save").ok(),
        }
    }

    /// The sandbox's `--root` (persistent data).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cgroup parent every container of this sandbox is created under.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn holder_pid(&self) -> i32 {
        self.holder.id() as i32
    }

    /// A path as the sandbox sees it (its `/run` is private).
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.holder.id()))
    }

    /// `program args...` inside the sandbox's namespaces, with minibox's environment set.
    pub fn exec<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["--net", "--mount", "--"])
            .arg(program)
            .args(args)
            .env("MINIBOX_ROOT", &self.root)
            .env("MINIBOX_CGROUP_PARENT", &self.cgroup_parent)
            .env("MINIBOX_FIREWALL_DRIVER", self.firewall)
            .env_remove("MINIBOX_RUNROOT")
            .stdin(Stdio::null());
        cmd
    }

    /// The minibox binary with `args`, to pipe or spawn yourself.
    pub fn command(&self, args: &[&str]) -> Command {
        self.exec(crate::minibox_bin(), args)
    }

    /// A shell command line run under a real pseudo-terminal (script(1)), with `$MINIBOX` the
    /// binary under test: for `-t`, terminal sizes and Ctrl-C.
    pub fn terminal(&self, script: &str) -> Command {
        let mut cmd = self.exec("script", ["-qec", script, "/dev/null"]);
        cmd.env("MINIBOX", crate::minibox_bin());
        cmd
    }

    /// Runs minibox with `args` and waits for it.
    pub fn minibox(&self, args: &[&str]) -> Out {
        let output = self.command(args).output().unwrap();
        Out {
            what: format!("minibox {}", args.join(" ")),
            output,
        }
    }

    /// Runs minibox-runc (the OCI runtime, its default `--root` in the sandbox's /run) with
    /// `args` and waits for it.
    pub fn runc(&self, args: &[&str]) -> Out {
        let output = self.exec(crate::minibox_runc_bin(), args).output().unwrap();
        Out {
            what: format!("minibox-runc {}", args.join(" ")),
            output,
        }
    }

    /// Runs a host-side shell script inside the sandbox.
    pub fn sh(&self, script: &str) -> Out {
        let output = self.exec("sh", ["-c", script]).output().unwrap();
        Out {
            what: format!("sh -c {script:?}"),
            output,
        }
    }

    /// An HTTP GET from the sandbox host (busybox wget: its -T crashes, hence timeout), or from
    /// inside the network namespace `netns`, that expects an answer: a refused first try is
    /// retried for a moment (the web demo prints "listen" just before it listens). Empty when
    /// nothing answered.
    pub fn http_get(&self, netns: Option<&str>, url: &str) -> String {
        let wget = format!("timeout 5 busybox wget -qO- http://{url}/");
        let cmd = match netns {
            Some(ns) => format!("ip netns exec {ns} {wget}"),
            None => wget,
        };
        for _ in 0..20 {
            let got = self.sh(&cmd).stdout();
            if !got.is_empty() {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        String::new()
    }

    /// Creates the dual-stack network `name` with the subnets `v4` and `v6`.
    pub fn dual_stack_network(&self, name: &str, v4: &str, v6: &str) {
        self.minibox(&[
            "network", "create", name, "--ipv6", "--subnet", v4, "--subnet", v6,
        ])
        .ok();
    }

    /// Imports the busybox fixture as `busybox`.
    pub fn import_busybox(&self) {
        let tar = crate::fixtures::busybox_tarball();
        self.minibox(&["import", tar.to_str().unwrap(), "busybox"])
            .ok();
    }

    /// Imports the Go web demo fixture as `web`.
    pub fn import_web(&self) {
        let tar = crate::fixtures::web_tarball();
        self.minibox(&[
            "import",
            tar.to_str().unwrap(),
            "web",
            "--change",
            r#"CMD ["/bin/web","web"]"#,
            "--change",
            "EXPOSE 8081",
        ])
        .ok();
    }

    /// Imports the postgres-like fixture ([`crate::fixtures::pgish_tarball`]) as `name`, its
    /// command `/bin/pgish`, with `changes` (`STOPSIGNAL SIGINT`, as postgres' image has).
    pub fn import_pgish(&self, name: &str, changes: &[&str]) {
        let tar = crate::fixtures::pgish_tarball();
        let mut args = vec!["import", tar.to_str().unwrap(), name];
        args.extend(["--change", r#"CMD ["/bin/pgish"]"#]);
        for c in changes {
            args.extend(["--change", c]);
        }
        self.minibox(&args).ok();
    }

    /// Imports the busybox fixture with the security tests' `/bin/probe` as `probe`.
    pub fn import_probe(&self) {
        let tar = crate::fixtures::probe_tarball();
        self.minibox(&["import", tar.to_str().unwrap(), "probe"])
            .ok();
    }

    /// Waits for the work minibox finishes in the background: the removals of `--rm`
    /// containers (each holds the lock of its record, renamed `.rm-<id>`, until it is done) and
    /// network teardowns (they hold the network lock until the rules and records are gone; the
    /// kernel frees the veth of a dropped netns shortly after: a veth still there after 2 s is
    /// reported as left behind).
    pub fn settle(&self) {
        let containers = self.path("/run/minibox/containers");
        let removals = read_dir(&containers)
            .into_iter()
            .filter(|e| e.starts_with(".rm-"));
        let locks = removals.map(|e| containers.join(e).join("lock"));
        for lock in locks.chain([self.path("/run/minibox/networks/lock")]) {
            if let Ok(file) = fs::File::open(lock) {
                let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive);
            }
        }
        let start = std::time::Instant::now();
        while !self.veths().is_empty() && start.elapsed() < std::time::Duration::from_secs(2) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The host ends of container veths (`mb-<id12>`).
    fn veths(&self) -> Vec<String> {
        let links = self.sh("ip -o link show").ok();
        links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .filter(|n| n.starts_with("mb-"))
            .map(str::to_string)
            .collect()
    }

    /// What minibox left in this sandbox, by the naming `leakcheck` relies on.
    pub fn leftovers(&self) -> Vec<String> {
        self.settle();
        let mut found = Vec::new();
        for entry in read_dir(&self.path("/run/netns")) {
            found.push(format!("netns {entry}"));
        }
        for link in self.veths() {
            found.push(format!("link {link}"));
        }
        let rules = self
            .sh("iptables-save 2>/dev/null; ip6tables-save 2>/dev/null")
            .stdout();
        for rule in rules.lines().filter(|l| l.contains("minibox:")) {
            found.push(format!("rule {rule}"));
        }
        // nft prints several elements on a line: each one tagged is a leftover.
        let nft = self.sh("nft list ruleset 2>/dev/null").stdout();
        for line in nft.lines() {
            for _ in line.matches("\"minibox:") {
                found.push(format!("nftables {}", line.trim()));
            }
        }
        let containers = self.root.join("containers");
        let mountinfo =
            fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id())).unwrap();
        // The containers' dirs, and their volatile dirs (each with its /etc files' tmpfs).
        for mp in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
            if Path::new(mp).starts_with(&containers)
                || Path::new(mp).starts_with("/run/minibox/containers")
            {
                found.push(format!("mount {mp}"));
            }
        }
        for dir in cgroup_dirs(&self.cgroup_parent) {
            for child in read_dir(&dir) {
                if dir.join(&child).is_dir() {
                    found.push(format!("cgroup {}/{child}", dir.display()));
                }
            }
        }
        for entry in read_dir(&self.path("/run/minibox/containers")) {
            found.push(format!("state {entry}"));
        }
        // A network's DNS server, and a container's proxy of ports on [::1], run while they
        // hold their lock (see netns/src/background.rs).
        for (dir, what) in [("dns", "DNS server"), ("proxy", "[::1] proxy")] {
            let dir = self.path(&format!("/run/minibox/networks/{dir}"));
            for entry in read_dir(&dir) {
                let held = fs::File::open(dir.join(&entry)).is_ok_and(|f| {
                    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
                });
                if held {
                    found.push(format!("{what} {entry}"));
                }
            }
        }
        // Its seccomp cache and its base mount namespace are no containers.
        for entry in read_dir(&self.path(crate::oci::ROOT)) {
            if entry != "seccomp" && entry != "mntns" {
                found.push(format!("OCI container {entry}"));
            }
        }
        for entry in read_dir(&containers) {
            found.push(format!("container dir {entry}"));
        }
        found
    }

    /// Asserts that the sandbox holds nothing of minibox's any more (tests remove their containers
    /// first). `../shared/tools/leakcheck` runs too when it is there.
    #[track_caller]
    pub fn finish(self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "minibox left behind:\n{}", left.join("\n"));
        let leakcheck = crate::workspace().join("../shared/tools/leakcheck");
        if leakcheck.exists() {
            let out = self.exec("bash", [&leakcheck]).output().unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            let ours: Vec<&str> = report
                .lines()
                .filter(|l| l.starts_with("leftover ") && self.owns(l))
                .collect();
            assert!(ours.is_empty(), "leakcheck: {}", ours.join("\n"));
        }
    }
}

impl Sandbox {
    /// A simulated reboot of the sandbox host, its `--root` kept (the disk) and everything else
    /// lost: minibox's supervisors and every container process killed (none finishes anything),
    /// the mounts below the root and the network namespaces' files gone, the runroot (a tmpfs)
    /// emptied, the bridges and the whole firewall ruleset gone, forwarding off again.
    pub fn reboot(&self) {
        let root = self.root.as_os_str().as_encoded_bytes().to_vec();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            if args.contains(&b"--supervise".as_slice()) && args.contains(&root.as_slice()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        for dir in cgroup_dirs(&self.cgroup_parent) {
            for child in read_dir(&dir) {
                if dir.join(&child).is_dir() {
                    remove_cgroup(&dir.join(child));
                }
            }
        }
        let containers = self.root.join("containers");
        self.sh(&format!(
            "awk '{{print $5}}' /proc/self/mountinfo | grep -e '^{}/' -e '^/run/minibox/' | sort -r \
                 | xargs -r -n1 umount -l
             for ns in /run/netns/*; do [ -e \"$ns\" ] && umount -l \"$ns\" && rm -f \"$ns\"; done
             rm -rf /run/minibox && mkdir -p /run/minibox
             ip -o link show type bridge | awk -F': ' '{{print $2}}' | xargs -r -n1 ip link del
             nft flush ruleset
             sysctl -qw net.ipv4.ip_forward=0",
            containers.display()
        ))
        .ok();
    }

    /// Whether a leakcheck line is this sandbox's. Processes are the one thing it sees host-wide
    /// (the sandbox has no PID namespace): those of other sandboxes, which tests running in
    /// parallel own, name another root (followed by a space: `…/12-1` is not `…/12-10`).
    fn owns(&self, line: &str) -> bool {
        !line.starts_with("leftover process:")
            || line.contains(&format!("{} ", self.root.display()))
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    /// Kills whatever still runs in the sandbox's cgroups and the holder (which takes the network
    /// namespace, its links and rules, and the mount namespace with it), then removes the rest.
    fn drop(&mut self) {
        for dir in cgroup_dirs(&self.cgroup_parent) {
            remove_cgroup(&dir);
        }
        let _ = kill(Pid::from_raw(self.holder.id() as i32), Signal::SIGKILL);
        let _ = self.holder.wait();
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn read_dir(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `parent` in every mounted cgroup hierarchy (v1 controllers, the hybrid unified one, or v2).
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let mut roots = vec![base.to_path_buf()];
    roots.extend(read_dir(base).into_iter().map(|d| base.join(d)));
    roots
        .into_iter()
        .map(|r| r.join(parent))
        .filter(|d| d.is_dir())
        .collect()
}

/// Kills every process below `dir` and removes the cgroups, deepest first.
fn remove_cgroup(dir: &Path) {
    for child in read_dir(dir) {
        let child = dir.join(child);
        if child.is_dir() {
            remove_cgroup(&child);
        }
    }
    for _ in 0..100 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            break;
        }
        for pid in procs.lines().filter_map(|p| p.parse().ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = fs::remove_dir(dir);
}
