//! `version`, `info` and `system df`: what minibox is, what it runs on, and what its store
//! holds. Each has Docker's shape and takes `--format` over Docker's field names.

use std::path::Path;

use anyhow::Result;
use minibox_images::Store;
use serde_json::{json, Value};

use super::{template::Template, units};
use crate::container::cgroups::Cgroup;
use crate::container::state::{self, Status};
use crate::paths::Paths;

/// Prints `data` through `format`, or as `default` renders it.
fn show(data: &Value, format: Option<&str>, default: impl Fn(&Value) -> String) -> Result<u8> {
    match format {
        Some(f) => println!("{}", Template::parse(f)?.render(data)?),
        None => print!("{}", default(data)),
    }
    Ok(0)
}

/// This machine's architecture in Go's (and so Docker's) words.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `version`: minibox has no daemon, so the client and the "server" are the same program.
pub fn version(format: Option<&str>) -> Result<u8> {
    let me = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": "none (no daemon)",
        "Os": "linux",
        "Arch": arch(),
    });
    let data = json!({"Client": me, "Server": me});
    show(&data, format, |d| {
        let c = &d["Client"];
        format!(
            "Client:\n Version:           {}\n OS/Arch:           linux/{}\n\nServer: none (minibox runs \
             containers itself, without a daemon)\n",
            c["Version"].as_str().unwrap_or_default(),
            c["Arch"].as_str().unwrap_or_default()
        )
    })
}

/// Containers by state: total, running, paused, stopped.
fn counts(paths: &Paths) -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for id in state::ids(paths) {
        let Ok(st) = state::load_state(paths, &id) else {
            continue;
        };
        c.0 += 1;
        match st.status {
            Status::Running
                if st
                    .cgroup
                    .as_deref()
                    .is_some_and(|p| Cgroup::open(p).frozen()) =>
            {
                c.2 += 1
            }
            Status::Running => c.1 += 1,
            _ => c.3 += 1,
        }
    }
    c
}

pub fn info(paths: &Paths, format: Option<&str>) -> Result<u8> {
    let (total, running, paused, stopped) = counts(paths);
    let images = Store::open(&paths.images())?.images()?.len();
    let uname = nix::sys::utsname::uname()?;
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let data = json!({
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if v2 { "2" } else { "1" },
        "KernelVersion": uname.release().to_string_lossy(),
        "OperatingSystem": os,
        "OSType": "linux",
        "Architecture": uname.machine().to_string_lossy(),
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": super::stats::host_memory(),
        "Name": uname.nodename().to_string_lossy(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DockerRootDir": paths.root.display().to_string(),
        "RunRoot": paths.runroot.display().to_string(),
        "SecurityOptions": ["name=seccomp,profile=builtin"],
    });
    show(&data, format, |d| {
        let s = |k: &str| match &d[k] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        format!(
            "Containers: {}\n Running: {}\n Paused: {}\n Stopped: {}\nImages: {}\nServer Version: {}\n\
             Storage Driver: {}\nCgroup Driver: {}\nCgroup Version: {}\nSecurity Options:\n seccomp\n  \
             Profile: builtin\nKernel Version: {}\nOperating System: {}\nOSType: {}\nArchitecture: {}\n\
             CPUs: {}\nTotal Memory: {}\nName: {}\nRoot Dir: {}\nRun Root: {}\n",
            s("Containers"),
            s("ContainersRunning"),
            s("ContainersPaused"),
            s("ContainersStopped"),
            s("Images"),
            s("ServerVersion"),
            s("Driver"),
            s("CgroupDriver"),
            s("CgroupVersion"),
            s("KernelVersion"),
            s("OperatingSystem"),
            s("OSType"),
            s("Architecture"),
            s("NCPU"),
            units::binary(d["MemTotal"].as_u64().unwrap_or(0)),
            s("Name"),
            s("DockerRootDir"),
            s("RunRoot"),
        )
    })
}

/// The bytes of the files under `dir` (each hard-linked file once; mount points not crossed).
pub(super) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != top.dev() {
                continue;
            }
            if m.is_dir() {
                stack.push(e.path());
            } else if m.nlink() == 1 || seen.insert(m.ino()) {
                total += m.len();
            }
        }
    }
    total
}

/// Docker's `system df` table: images, containers, volumes, build cache.
const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

pub fn df(paths: &Paths, format: Option<&str>) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    let images = store.images()?;
    let mut used_images = std::collections::HashSet::new();
    let (mut containers, mut running, mut size, mut reclaimable) = (0, 0, 0, 0);
    for id in state::ids(paths) {
        let Ok(st) = state::load_state(paths, &id) else {
            continue;
        };
        if let Ok(s) = state::load_summary(paths, &id) {
            used_images.insert(s.image);
        }
        // The container's own files: its writable layer (not the image's).
        let own = disk_usage(&state::dir(paths, &id).join("fs/upper"));
        containers += 1;
        size += own;
        if st.status == Status::Running {
            running += 1;
        } else {
            reclaimable += own;
        }
    }
    let image_size: u64 = images.iter().map(|i| i.size).sum();
    let unused: u64 = images
        .iter()
        .filter(|i| !used_images.contains(&i.id))
        .map(|i| i.size)
        .sum();
    let percent = |part: u64, all: u64| {
        (part * 100)
            .checked_div(all)
            .map_or(String::new(), |p| format!(" ({p}%)"))
    };
    let rows = [
        json!({"Type": "Images", "TotalCount": images.len().to_string(),
               "Active": images.iter().filter(|i| used_images.contains(&i.id)).count().to_string(),
               "Size": units::decimal(image_size),
               "Reclaimable": format!("{}{}", units::decimal(unused), percent(unused, image_size))}),
        json!({"Type": "Containers", "TotalCount": containers.to_string(),
               "Active": running.to_string(), "Size": units::decimal(size),
               "Reclaimable": format!("{}{}", units::decimal(reclaimable), percent(reclaimable, size))}),
        json!({"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B",
               "Reclaimable": "0B"}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
               "Reclaimable": "0B"}),
    ];
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                         "Reclaimable": "RECLAIMABLE"});
    print!(
        "{}",
        super::template::render_rows(format.unwrap_or(DF_TABLE), &rows, &headers)?
    );
    Ok(0)
}
