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
