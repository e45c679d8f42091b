//! Hooks (config.json's `hooks`): programs run by the runtime at points of the container's
//! life, each given the container's state on stdin.
//!
//! prestart, createRuntime and createContainer run at the end of `create`, poststart after
//! `start`, startContainer in `start` just before the process is released, poststop in
//! `delete`. createContainer and startContainer run in the container's namespaces (mount,
//! network, UTS, IPC, cgroup), as the spec asks: createContainer once its mounts are made and
//! before it enters its root (its path resolved in the runtime's view of the filesystem, the
//! container's mount namespace still holding it), startContainer with the path resolved in
//! the container's root. The others run in the runtime's namespaces.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};

use super::{OciError, Result};

/// The points of the life a hook can run at.
#[derive(Clone, Copy)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

/// Whether the Spec has hooks for `point`.
pub fn any(spec: &Spec, point: Point) -> bool {
    spec.hooks()
        .as_ref()
        .is_some_and(|h| !list(h, point).is_empty())
}

fn list(hooks: &Hooks, point: Point) -> &[Hook] {
    #[allow(deprecated)]
    let hooks = match point {
        Point::Prestart => hooks.prestart(),
        Point::CreateRuntime => hooks.create_runtime(),
        Point::CreateContainer => hooks.create_container(),
        Point::StartContainer => hooks.start_container(),
        Point::Poststart => hooks.poststart(),
        Point::Poststop => hooks.poststop(),
    };
    hooks.as_deref().unwrap_or_default()
}

/// Runs the Spec's hooks of `point` in order, each with `state` on its stdin; the first that
/// fails (or outlives its timeout) stops the rest. createContainer and startContainer hooks
/// enter the namespaces of the state's `pid`, the container's process.
pub fn run(spec: &Spec, point: Point, state: &serde_json::Value) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let hooks = list(hooks, point);
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).expect("a state serialises");
    let namespaces = match point {
        Point::CreateContainer | Point::StartContainer => match state["pid"].as_i64() {
            Some(pid) if pid > 0 => container_namespaces(pid)?,
            _ => {
                return Err(OciError::Hook(
                    "the container has no process to run its hooks in".into(),
                ))
            }
        },
        _ => Vec::new(),
    };
    for hook in hooks {
        run_one(hook, &input, &namespaces)
            .map_err(|why| OciError::Hook(format!("hook {}: {why}", hook.path().display())))?;
    }
    Ok(())
}

/// The container's namespaces a hook enters, the mount namespace last (the others are opened
/// through the host's /proc).
fn container_namespaces(pid: i64) -> Result<Vec<OwnedFd>> {
    ["ipc", "uts", "net", "cgroup", "mnt"]
        .iter()
        .map(|ns| {
            std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
                .map(OwnedFd::from)
                .map_err(|e| OciError::io(format!("opening the container's {ns} namespace"), e))
        })
        .collect()
}

fn run_one(hook: &Hook, input: &[u8], namespaces: &[OwnedFd]) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if !namespaces.is_empty() {
        let fds: Vec<i32> = namespaces.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: only setns, async-signal-safe, between fork and exec; the path is resolved
        // by exec afterwards, in the container's root.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::setns(*fd, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let args = hook.args().clone().unwrap_or_default();
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // A hook that does not read its stdin must not fail the write: ignore EPIPE.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return match status.success() {
                true => Ok(()),
                false => Err(format!("failed: {status}")),
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("timed out: killed".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
