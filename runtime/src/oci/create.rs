//! `create`: makes the container from a bundle and leaves its process waiting (on the exec
//! fifo) for `start`. The process is this process's child until it exits: the caller, a
//! subreaper (containerd's shim, conmon), inherits it and reads its pid from the pid file.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::hooks::{self, Point};
use super::state::{Record, Root};
use super::{console, OciError, Result};
use crate::container::cgroups::Cgroup;
use crate::container::clock::rfc3339;
use crate::container::liveness;
use crate::container::process::{self, Detached, Launch, Signals, Stdio};
use crate::container::spec as default_spec;
use crate::container::state::{now_ns, write_atomic};

#[derive(Debug, Default, Clone)]
pub struct Options {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Enter the root with MS_MOVE and chroot rather than pivot_root (a root on a ramdisk).
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// Creates container `id`; returns its process (this process's child).
pub fn create(root: &Root, id: &str, opts: &Options) -> Result<Pid> {
    Root::check_id(id)?;
    let bundle = fs::canonicalize(&opts.bundle)
        .map_err(|e| OciError::io(format!("bundle {}", opts.bundle.display()), e))?;
    let mut spec = load_spec(&bundle)?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && opts.console_socket.is_none() {
        return Err(OciError::Invalid(
            "process.terminal is true but no --console-socket was given: pass one, or set \
             process.terminal to false"
                .into(),
        ));
    }
    let cgroup = cgroup_path(&spec, id)?;
    let dir = root.dir(id);
    fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))
        .map_err(|e| OciError::io("creating the --root directory", e))?;
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(OciError::Exists(id.to_string()))
        }
        Err(e) => return Err(OciError::io(format!("creating {}", dir.display()), e)),
    }
    let mut made = Made::default();
    let result = build(root, id, opts, &bundle, &mut spec, &cgroup, &mut made);
    if result.is_err() {
        if let Some(pid) = made.child {
            process::abort(pid);
        }
        if let Some(cg) = made.cgroup {
            let _ = cg.kill_all();
            cg.delete();
        }
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// What `build` made so far, undone when it fails.
#[derive(Default)]
struct Made {
    child: Option<Pid>,
    cgroup: Option<Cgroup>,
}

fn build(
    root: &Root,
    id: &str,
    opts: &Options,
    bundle: &Path,
    spec: &mut Spec,
    cgroup: &str,
    made: &mut Made,
) -> Result<Pid> {
    let dir = root.dir(id);
    let rootfs = rootfs(bundle, spec)?;
    default_devices(spec)?;
    let config = serde_json::to_vec(&spec).expect("a Spec serialises");
    write_atomic(&dir.join("config.json"), &config)
        .map_err(|e| OciError::Invalid(crate::error::one_line(&e)))?;
    let fifo = root.fifo(id);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .and_then(|()| {
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                &fifo,
                Mode::from_bits_truncate(0o622),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        })
        .map_err(|e| OciError::io("creating the exec fifo", e.into()))?;
    // In a user namespace the process is no longer the host's root: the fifo is its root's,
    // as runc makes it.
    if let Some((uid, gid)) = namespace_root(spec) {
        nix::unistd::chown(&fifo, Some(uid.into()), Some(gid.into()))
            .map_err(|e| OciError::io("handing the exec fifo to the user namespace", e.into()))?;
    }
    let fifo_dir: OwnedFd = open(
        &dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| OciError::io(format!("opening {}", dir.display()), e.into()))?;

    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let cg = Cgroup::create(cgroup, &resources).map_err(OciError::from)?;
    let cg = made.cgroup.insert(cg);

    let signals = Signals::block().map_err(|e| OciError::io("blocking signals", e.into()))?;
    let launch = Launch {
        spec,
        rootfs: None,
        mount_ns_base: &root.mount_ns_base(),
        signals: &signals,
        stdio: Stdio {
            input: None,
            keep_stdin: true,
            output: None,
        },
        init: false,
        seccomp_cache: &root.seccomp_cache(),
        detached: Some(Detached {
            fifo_dir: fifo_dir.as_raw_fd(),
            preserve_fds: opts.preserve_fds,
            no_new_keyring: opts.no_new_keyring,
            no_pivot: opts.no_pivot,
            create_container_hooks: hooks::any(spec, Point::CreateContainer),
        }),
    };
    let child = process::spawn(&launch)?;
    made.child = Some(child.pid);
    // A set-up failure reported by the child explains any failure of ours that follows.
    let placed = cg.add(child.pid).map_err(OciError::from);
    if let Err(e) = placed {
        process::abort(child.pid);
        child.started()?;
        return Err(e);
    }
    let record = Record {
        id: id.to_string(),
        pid: child.pid.as_raw(),
        start_time: liveness::start_time(child.pid.as_raw()).unwrap_or(0),
        bundle: bundle.to_path_buf(),
        rootfs,
        created: rfc3339(now_ns()),
        cgroup: cgroup.to_string(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    root.save(&record)?;
    let state = root.document(&record);
    for point in [Point::Prestart, Point::CreateRuntime] {
        hooks::run(spec, point, &state)?;
    }
    // In the container's namespaces, its mounts made and its root not entered yet.
    if hooks::any(spec, Point::CreateContainer) {
        child.filesystem_ready()?;
        hooks::run(spec, Point::CreateContainer, &state)?;
        child
            .resume()
            .map_err(|e| OciError::io("resuming the container", e.into()))?;
    }
    let size = spec
        .process()
        .as_ref()
        .and_then(|p| p.console_size())
        .map(|b| (b.height() as u16, b.width() as u16));
    if let Err(e) = child.go(size, &[]) {
        tracing::debug!("sending go: {e}");
    }
    let started = child.started()?;
    if let (Some(master), Some(socket)) = (&started.pty, &opts.console_socket) {
        console::send(socket, master)?;
    }
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, child.pid)?;
    }
    Ok(child.pid)
}

/// The host's uid and gid that a new user namespace's root maps to.
fn namespace_root(spec: &Spec) -> Option<(u32, u32)> {
    let linux = spec.linux().as_ref()?;
    let host = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find_map(|m| (m.container_id() == 0 && m.size() > 0).then_some(m.host_id()))
    };
    let user =
        linux.namespaces().iter().flatten().any(|ns| {
            ns.typ() == oci_spec::runtime::LinuxNamespaceType::User && ns.path().is_none()
        });
    user.then(|| Some((host(linux.uid_mappings())?, host(linux.gid_mappings())?)))?
}

/// The devices every container has (/dev/null, zero, full, random, urandom, tty) added to the
/// bundle's, and allowed in its cgroup after the bundle's own rules, as runc does.
fn default_devices(spec: &mut Spec) -> Result<()> {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut devices = linux.devices().clone().unwrap_or_default();
    for d in default_spec::devices()? {
        if !devices.iter().any(|have| have.path() == d.path()) {
            devices.push(d);
        }
    }
    linux.set_devices(Some(devices));
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    if !rules.is_empty() {
        rules.extend(default_spec::allowed_device_rules()?);
        resources.set_devices(Some(rules));
        linux.set_resources(Some(resources));
    }
    spec.set_linux(Some(linux));
    Ok(())
}

/// Reads `config.json` from the bundle.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|e| {
        OciError::Invalid(format!(
            "reading {}: {e} (is it an OCI bundle? `minibox-runc spec` writes a config.json)",
            path.display()
        ))
    })
}

/// The root filesystem as an absolute path (config.json may give it relative to the bundle),
/// written back into the Spec.
fn rootfs(bundle: &Path, spec: &mut Spec) -> Result<PathBuf> {
    let Some(mut root) = spec.root().clone() else {
        return Err(OciError::Invalid("config.json has no root".into()));
    };
    let path = fs::canonicalize(bundle.join(root.path()))
        .map_err(|e| OciError::io(format!("root {}", root.path().display()), e))?;
    root.set_path(path.clone());
    spec.set_root(Some(root));
    Ok(path)
}

/// The cgroup for `linux.cgroupsPath` in cgroupfs form: an absolute path is taken from the
/// hierarchies' roots, a relative one (or the id, when none is given) from the runtime's own
/// cgroup, as runc does.
fn cgroup_path(spec: &Spec, id: &str) -> Result<String> {
    let given = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| PathBuf::from(id));
    let text = given.to_string_lossy();
    if text.contains(':') {
        return Err(OciError::Invalid(format!(
            "cgroupsPath {text:?} is in systemd form (slice:prefix:name): minibox-runc manages \
             cgroups itself; give a path such as /parent/{id}"
        )));
    }
    let path = match given.is_absolute() {
        true => given.clone(),
        false => own_cgroup().join(&given),
    };
    if path.components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::CurDir
        )
    }) {
        return Err(OciError::Invalid(format!(
            "cgroupsPath {text:?}: no . or .. components"
        )));
    }
    let path = path.to_string_lossy().trim_matches('/').to_string();
    if path.is_empty() {
        return Err(OciError::Invalid(
            "cgroupsPath names the root cgroup".into(),
        ));
    }
    Ok(path)
}

/// This process's cgroup (the memory controller's on v1, the unified one on v2).
fn own_cgroup() -> PathBuf {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let find = |controller: &str| {
        text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| PathBuf::from(path))
        })
    };
    find("memory")
        .or_else(|| find(""))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Writes the pid file (atomically: callers poll for it).
pub fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let path = std::path::absolute(path)
        .map_err(|e| OciError::io(format!("pid file {}", path.display()), e))?;
    write_atomic(&path, pid.to_string().as_bytes())
        .map_err(|e| OciError::Invalid(crate::error::one_line(&e)))
}
