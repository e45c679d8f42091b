//! A throwaway cgroup v2 host: a small qemu VM that boots Debian's kernel with an initramfs holding
//! busybox, the minibox and minibox-runc binaries (and their libraries), the busybox image
//! tarball and a test script.
//! Its init mounts nothing but cgroup2 at `/sys/fs/cgroup`, so every controller is a v2 one, runs
//! the script and powers off. The VM has no network at all.
//!
//! The script reports results with `report NAME VALUE` (a shell function); [`VmRun::report`]
//! reads them back from the serial console. The kernel package is fetched once with
//! `apt-get download` (never installed) and cached under `target/vm/`.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Starts each report line on the console; the value follows, newlines turned into `\x1e`.
const MARK: &str = "@@minibox-vm@@";

/// The VM's `/init`. Stage 1 runs on the initramfs, which `pivot_root` can never leave (it has no
/// parent mount), so it copies everything to a tmpfs and switches to it, as a real host's initramfs
/// does. Stage 2 sets up a v2-only host and runs the test script.
const INIT: &str = r#"#!/bin/busybox sh
export PATH=/bin
if [ ! -e /.stage2 ]; then
    /bin/busybox --install -s /bin
    mount -t tmpfs -o mode=755 root /mnt
    cp -a /bin /lib /lib64 /image.tar /test.sh /init /mnt/
    touch /mnt/.stage2
    exec switch_root /mnt /init
fi
mkdir -p /proc /sys /dev /run /tmp /var/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for m in /lib/modules/*.ko; do insmod "$m" || echo "insmod $m failed"; done
report() { printf '%s %s %s\n' "@@minibox-vm@@" "$1" "$(printf %s "$2" | tr '\n' '\036')"; }
report start up
cd /
. /test.sh
report end done
poweroff -f
"#;

/// What a VM run printed on its console.
pub struct VmRun {
    pub console: String,
    pub elapsed: Duration,
    pub accel: &'static str,
}

impl VmRun {
    /// The value of the last `report NAME VALUE` of the script, with its newlines back.
    pub fn report(&self, name: &str) -> Option<String> {
        self.console
            .lines()
            .rev()
            .filter_map(|l| {
                l.trim_end_matches('\r')
                    .strip_prefix(MARK)?
                    .strip_prefix(' ')
            })
            .filter_map(|l| {
                let (n, v) = l.split_once(' ').unwrap_or((l, ""));
                (n == name).then(|| v.replace('\x1e', "\n"))
            })
            .next()
    }

    /// The last `n` lines of the console, for failure messages (newlines in values shown as ⏎).
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .join("\n")
            .replace('\x1e', "⏎")
    }
}

/// Boots a VM that runs `script` (sourced by a busybox `sh`, with `report` defined, the image
/// tarball at `/image.tar` and `minibox` on the PATH) and returns its console. Panics with the
/// console's tail when qemu cannot start, or the VM does not finish within `timeout`.
pub fn run(script: &str, timeout: Duration) -> VmRun {
    crate::require_root();
    let (vmlinuz, modules) = kernel();
    let initrd = dir().join(format!("initrd-{}.cpio", std::process::id()));
    write_initramfs(&initrd, &modules, script);
    let accel = if kvm_usable() { "kvm" } else { "tcg" };
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-m", "512", "-smp", "2", "-nic", "none"])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 quiet loglevel=1 panic=-1 mitigations=off",
        ]);
    if accel == "kvm" {
        qemu.args(["-accel", "kvm", "-cpu", "host"]);
    } else {
        qemu.args(["-accel", "tcg,thread=multi"]);
    }
    let start = Instant::now();
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qemu-system-x86_64 (install qemu-system-x86)");
    let console = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut pipe| {
        let console = console.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                console.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    })
    .collect();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    let _ = fs::remove_file(&initrd);
    let run = VmRun {
        console: String::from_utf8_lossy(&console.lock().unwrap()).into_owned(),
        elapsed: start.elapsed(),
        accel,
    };
    let Some(status) = status else {
        panic!(
            "the cgroup v2 VM ({accel}) did not finish within {timeout:?}: qemu killed; \
             console tail:\n{}",
            run.tail(40)
        );
    };
    assert!(
        status.success() && run.report("end").is_some(),
        "the cgroup v2 VM ({accel}) failed ({status}) before its script ended; console tail:\n{}",
        run.tail(40)
    );
    run
}

/// KVM needs hardware virtualisation: a /dev/kvm without it (a paravirtual backend such as PVM)
/// cannot boot a stock kernel, so TCG is used then.
fn kvm_usable() -> bool {
    let hw = fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
        c.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
    });
    hw && fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn dir() -> PathBuf {
    let dir = crate::target_dir().join("vm");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's kernel and the modules the VM needs (overlay, for the real rootfs path): the current
/// `linux-image-amd64` dependency, downloaded (not installed) once into `target/vm/kernel`.
fn kernel() -> (PathBuf, Vec<PathBuf>) {
    let dir = dir();
    let lock = File::create(dir.join(".lock")).unwrap();
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let cached = dir.join("kernel");
    if !cached.exists() {
        let tmp = dir.join(".kernel.tmp");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        fetch_kernel(&tmp);
        fs::rename(&tmp, &cached).unwrap();
    }
    let modules = ["overlay.ko"].map(|m| cached.join(m)).to_vec();
    (cached.join("vmlinuz"), modules)
}

fn fetch_kernel(out: &Path) {
    // The package lists may be missing on a machine that had everything installed already.
    let package = kernel_package().unwrap_or_else(|| {
        let updated = Command::new("apt-get").args(["update", "-qq"]).status();
        assert!(updated.is_ok_and(|s| s.success()), "apt-get update failed");
        kernel_package().expect("no kernel package behind linux-image-amd64")
    });
    let status = Command::new("apt-get")
        .args(["download", "-q", &package])
        .current_dir(out)
        .status()
        .expect("run apt-get download");
    assert!(status.success(), "apt-get download {package} failed");
    let deb = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the downloaded .deb");
    let tree = out.join("tree");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .expect("run dpkg-deb");
    assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
    let find = |dir: &Path, pick: &dyn Fn(&str) -> bool| -> PathBuf {
        walk(dir)
            .into_iter()
            .find(|p| p.file_name().is_some_and(|n| pick(&n.to_string_lossy())))
            .unwrap_or_else(|| panic!("{} lacks the file wanted", deb.display()))
    };
    fs::rename(
        find(&tree.join("boot"), &|n| n.starts_with("vmlinuz-")),
        out.join("vmlinuz"),
    )
    .unwrap();
    // Debian's 6.1 modules are uncompressed; overlay depends on no other module.
    fs::rename(
        find(&tree.join("lib/modules"), &|n| n == "overlay.ko"),
        out.join("overlay.ko"),
    )
    .unwrap();
    fs::remove_dir_all(&tree).unwrap();
    fs::remove_file(&deb).unwrap();
}

/// The versioned package `linux-image-amd64` stands for, as the package lists say.
fn kernel_package() -> Option<String> {
    let deps = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .expect("run apt-cache");
    String::from_utf8_lossy(&deps.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|v| format!("linux-image-{v}"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The initramfs: busybox, minibox and minibox-runc (debug info stripped, to keep the VM small)
/// with the shared libraries they load, the modules, the image tarball, `/init` and the script.
fn write_initramfs(out: &Path, modules: &[PathBuf], script: &str) {
    let bins = [crate::minibox_bin(), crate::minibox_runc_bin()];
    let stripped: Vec<Vec<u8>> = bins.iter().map(|bin| strip(bin, out)).collect();
    let mut cpio = Cpio::new(BufWriter::new(File::create(out).unwrap()));
    for d in [
        "bin",
        "lib",
        "lib/modules",
        "lib64",
        "mnt",
        "proc",
        "sys",
        "dev",
    ] {
        cpio.dir(d);
    }
    cpio.file("init", 0o755, INIT.as_bytes());
    cpio.file("test.sh", 0o644, script.as_bytes());
    cpio.file("bin/busybox", 0o755, &fs::read("/bin/busybox").unwrap());
    cpio.file("bin/minibox", 0o755, &stripped[0]);
    cpio.file("bin/minibox-runc", 0o755, &stripped[1]);
    cpio.file(
        "image.tar",
        0o644,
        &fs::read(crate::fixtures::busybox_tarball()).unwrap(),
    );
    for m in modules {
        let name = m.file_name().unwrap().to_string_lossy();
        cpio.file(&format!("lib/modules/{name}"), 0o644, &fs::read(m).unwrap());
    }
    let libs: std::collections::BTreeSet<PathBuf> =
        bins.iter().flat_map(|b| shared_libraries(b)).collect();
    for lib in libs {
        let inside = lib.strip_prefix("/").unwrap();
        let mut parent = PathBuf::new();
        for c in inside.parent().unwrap().components() {
            parent.push(c);
            cpio.dir(&parent.to_string_lossy());
        }
        let mode = fs::metadata(&lib).unwrap().permissions().mode() & 0o7777;
        cpio.file(&inside.to_string_lossy(), mode, &fs::read(&lib).unwrap());
    }
    cpio.finish();
}

/// `bin` without its debug info (through a file next to `out`).
fn strip(bin: &Path, out: &Path) -> Vec<u8> {
    let stripped = out.with_extension("stripped");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(bin)
        .status()
        .expect("run strip (install binutils)");
    assert!(status.success(), "strip {} failed", bin.display());
    let data = fs::read(&stripped).unwrap();
    fs::remove_file(&stripped).unwrap();
    data
}

/// The libraries `bin` loads, its ELF interpreter included, as ldd names them.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    assert!(out.status.success(), "ldd {} failed", bin.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=> ").map_or(l, |(_, p)| p);
            let path = path.split(" (").next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A cpio archive in the kernel's `newc` format: a fixed hex header, the name, the data, each
/// padded to 4 bytes.
struct Cpio<W: Write> {
    out: W,
    ino: u32,
    dirs: std::collections::HashSet<String>,
}

impl<W: Write> Cpio<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            ino: 0,
            dirs: Default::default(),
        }
    }

    fn dir(&mut self, path: &str) {
        if self.dirs.insert(path.to_string()) {
            self.entry(path, 0o040_755, &[]);
        }
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, 0o100_000 | mode, data);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.out.write_all(header.as_bytes()).unwrap();
        self.out.write_all(name.as_bytes()).unwrap();
        self.out.write_all(&[0]).unwrap();
        self.pad(header.len() + name.len() + 1);
        self.out.write_all(data).unwrap();
        self.pad(data.len());
    }

    fn pad(&mut self, len: usize) {
        self.out.write_all(&[0; 3][..(4 - len % 4) % 4]).unwrap();
    }

    fn finish(mut self) {
        self.entry("TRAILER!!!", 0, &[]);
        self.out.flush().unwrap();
    }
}
