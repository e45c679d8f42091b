//! `exec`: a new process in a running container, described by a process.json (`--process`,
//! as containerd and conmon pass it) or by the command line on top of the container's own
//! process. With `--detach` it is left to the caller (a subreaper) once it runs; otherwise this
//! waits for it and returns its exit code.

use std::path::PathBuf;

use nix::sys::wait::waitpid;
use oci_spec::runtime::Process;

use super::create::write_pid_file;
use super::{console, OciError, Result, Root, Status};
use crate::container::process::{self, Stdio};

#[derive(Debug, Default, Clone)]
pub struct Options {
    /// A process.json; without, the process is `args` and the flags below.
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// `UID[:GID]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// The caller's descriptors 3 to 3+N-1 stay open in the process.
    pub preserve_fds: u32,
}

/// Runs the process; returns its exit code, or 0 once it runs with `--detach`.
pub fn exec(root: &Root, id: &str, opts: &Options) -> Result<i32> {
    let record = root.load(id)?;
    match root.status(&record) {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(OciError::WrongState("paused", "resume it first")),
        Status::Stopped => return Err(OciError::NotRunning),
    }
    let mut spec = root.config(id)?;
    let process = process_of(spec.process().clone().unwrap_or_default(), opts)?;
    if process.terminal() == Some(true) && opts.console_socket.is_none() {
        return Err(OciError::Invalid(
            "a terminal needs --console-socket: pass one, or run without --tty".into(),
        ));
    }
    spec.set_process(Some(process));
    let stdio = Stdio {
        input: None,
        keep_stdin: true,
        output: None,
    };
    let cache = root.seccomp_cache();
    let child = process::spawn_exec(
        record.pid(),
        &record.cgroup,
        &spec,
        stdio,
        &cache,
        opts.preserve_fds,
    )?;
    let started = match child.started() {
        Ok(s) => s,
        Err(e) => {
            process::reap_blocking(child.pid);
            return Err(e.into());
        }
    };
    if let (Some(master), Some(socket)) = (&started.pty, &opts.console_socket) {
        console::send(socket, master)?;
    }
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, child.pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    let status = waitpid(child.pid, None).map_err(|e| OciError::io("waiting", e.into()))?;
    Ok(process::exit_code(status).into())
}

/// The process to run: process.json as given, or the container's own process with the command
/// line's args, terminal, cwd, env, user and no_new_privs on top.
fn process_of(base: Process, opts: &Options) -> Result<Process> {
    if let Some(path) = &opts.process {
        let text = std::fs::read(path)
            .map_err(|e| OciError::io(format!("reading {}", path.display()), e))?;
        return serde_json::from_slice(&text).map_err(|e| {
            OciError::Invalid(format!("{}: not an OCI process: {e}", path.display()))
        });
    }
    if opts.args.is_empty() {
        return Err(OciError::Invalid(
            "no command: give one after the id, or --process process.json".into(),
        ));
    }
    let mut p = base;
    p.set_args(Some(opts.args.clone()));
    p.set_terminal(Some(opts.tty));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(opts.env.iter().cloned());
    p.set_env(Some(env));
    let mut user = p.user().clone();
    if let Some(spec) = &opts.user {
        let bad = || OciError::Invalid(format!("--user {spec:?}: give UID[:GID] as numbers"));
        let (uid, gid) = spec.split_once(':').unwrap_or((spec, "0"));
        user.set_uid(uid.parse().map_err(|_| bad())?);
        user.set_gid(gid.parse().map_err(|_| bad())?);
    }
    if !opts.additional_gids.is_empty() {
        user.set_additional_gids(Some(opts.additional_gids.clone()));
    }
    p.set_user(user);
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}
