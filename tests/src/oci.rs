//! OCI bundles for the OCI runtime's tests: the busybox fixture unpacked as a bundle's rootfs,
//! with a config.json from `minibox-runc spec` adjusted to the test (its process, a cgroup under
//! the sandbox's parent).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::Sandbox;

/// minibox-runc's default `--root`, inside the sandbox's private /run.
pub const ROOT: &str = "/run/minibox-runc";

pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

impl Bundle {
    /// A busybox bundle named `name` in the sandbox's root, running `args` without a terminal,
    /// on a writable root, its cgroup `/<sandbox's parent>/<name>`.
    pub fn busybox(sb: &Sandbox, name: &str, args: &[&str]) -> Self {
        let dir = sb.root().join("bundles").join(name);
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        let tar = crate::fixtures::busybox_tarball();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(status.success(), "unpacking the busybox rootfs");
        sb.runc(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
        let text = fs::read_to_string(dir.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["hostname"] = json!(name);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("/{}/{name}", sb.cgroup_parent()));
        let bundle = Self { dir, config };
        bundle.save();
        bundle
    }

    /// Writes `config` back to config.json.
    pub fn save(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    /// A file next to the bundle (for pid files and the like).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The cgroup directory of `controller` for a container's cgroup path.
pub fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    match v1.is_dir() {
        true => v1.join(path.trim_start_matches('/')),
        false => Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')),
    }
}

/// A daemon (containerd, say) started by a test inside the sandbox, in a cgroup of its own under
/// the sandbox's parent, so that it and everything it forks (shims, conmon) is killed and its
/// cgroup removed when it is dropped, whatever the test did.
pub struct Daemon {
    child: std::process::Child,
    cgroups: Vec<PathBuf>,
}

impl Daemon {
    /// Starts `cmd` (a command from [`Sandbox::exec`]) with its output in `log`.
    pub fn start(sb: &Sandbox, name: &str, mut cmd: std::process::Command, log: &Path) -> Self {
        let out = fs::File::create(log).unwrap();
        let child = cmd
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let cgroups = cgroup_roots()
            .into_iter()
            .map(|root| root.join(sb.cgroup_parent()).join(name))
            .collect::<Vec<_>>();
        let mut placed = false;
        for dir in &cgroups {
            fs::create_dir_all(dir).unwrap();
            // A v1 cpuset cgroup takes no process before its cpus are set: one is enough.
            placed |= fs::write(dir.join("cgroup.procs"), child.id().to_string()).is_ok();
        }
        assert!(placed, "placing {name} in a cgroup");
        Self { child, cgroups }
    }

    /// Waits up to 10 s for `path` to appear (its socket, say).
    pub fn wait_for(&mut self, path: &Path) {
        let start = std::time::Instant::now();
        while !path.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited: {status}");
            }
            assert!(start.elapsed().as_secs() < 10, "no {}", path.display());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..200 {
            let mut left = false;
            for dir in &self.cgroups {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    left = true;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if !left {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for dir in &self.cgroups {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The root of every mounted cgroup hierarchy that takes processes (v1 controllers and named
/// hierarchies, the unified one).
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_path_buf()];
    }
    fs::read_dir(base)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists() && !p.is_symlink())
        .collect()
}
