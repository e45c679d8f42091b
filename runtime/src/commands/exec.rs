//! `minibox exec`: a new process in a running container: its Spec's namespaces, its cgroup, its
//! capabilities and no_new_privs, its environment with `-e` on top. Its stdio is relayed through
//! pipes (or its pty): the container never gets a descriptor of the caller's own files.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::ExecArgs;
use crate::container::cgroups::Cgroup;
use crate::container::lifecycle;
use crate::container::log::{Output, Stream};
use crate::container::process::{self, Signals, Stdio};
use crate::container::spec::{self, ImageConfig};
use crate::container::state;
use crate::container::{tty, user};
use crate::paths::Paths;

pub fn exec(paths: &Paths, args: ExecArgs) -> Result<u8> {
    if args.detach && (args.process.tty || args.process.interactive) {
        bail!(
            "exec -d: a process in the background has no terminal or input to keep: drop -t and -i"
        );
    }
    super::check_tty(&args.process)?;
    let id = state::resolve(paths, &args.container)?;
    let st = state::load_state(paths, &id)?;
    let config = state::load_config(paths, &id)?;
    // Joined only when its PID 1 is verified: a pid reused since would be a stranger's.
    let (true, Some(cgroup)) = (lifecycle::running(&st), st.cgroup.as_deref()) else {
        bail!(
            "container {} is not running: start it first",
            args.container
        );
    };
    // A frozen PID 1 would never let the new process in.
    if Cgroup::open(cgroup).frozen() {
        bail!("container {} is paused: unpause it first", args.container);
    }
    let mut spec = config.runtime_spec()?.clone();
    let mut process = spec.process().clone().unwrap_or_default();
    let base = ImageConfig {
        env: process.env().clone().unwrap_or_default(),
        ..Default::default()
    };
    process.set_env(Some(spec::environment(
        &base,
        &config.hostname(),
        args.process.tty,
        &args.process.env,
    )?));
    process.set_args(Some(args.command.clone()));
    if let Some(w) = &args.process.workdir {
        process.set_cwd(spec::workdir(&base, Some(w))?.into());
    }
    if let Some(u) = &args.process.user {
        // Resolved in the container's own files, through its root as its PID 1 sees it.
        let root = format!("/proc/{}/root", st.pid);
        let who = user::lookup(u, &[Path::new(&root)]).map_err(anyhow::Error::msg)?;
        let mut oci_user = process.user().clone();
        oci_user.set_uid(who.uid);
        oci_user.set_gid(who.gid);
        oci_user.set_additional_gids(Some(who.groups));
        process.set_user(oci_user);
        // Capabilities as `run -u` gives them: none effective for a non-root user.
        if let Some(caps) = process.capabilities().clone() {
            let mut caps = caps;
            let granted = match who.uid {
                0 => caps.bounding().clone(),
                _ => Some(Default::default()),
            };
            caps.set_effective(granted.clone());
            caps.set_permitted(granted.clone());
            caps.set_inheritable(granted);
            process.set_capabilities(Some(caps));
        }
    }
    process.set_terminal(Some(args.process.tty));
    spec.set_process(Some(process));

    let signals = Signals::block().context("blocking signals")?;
    let tty = args.process.tty;
    let output = Output::new(tty).context("creating a pipe")?;
    let input = match (tty, args.process.interactive) {
        (false, true) => {
            Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?)
        }
        _ => None,
    };
    // Detached, its output goes nowhere, as Docker discards it.
    let null = match args.detach {
        true => Some(std::fs::OpenOptions::new().write(true).open("/dev/null")?),
        false => None,
    };
    let stdio = Stdio {
        input: input.as_ref().map(|(r, _)| r.as_fd()),
        keep_stdin: false,
        output: match &null {
            Some(null) => Some((null.as_fd(), null.as_fd())),
            None => output.write_ends(),
        },
    };
    let pid = nix::unistd::Pid::from_raw(st.pid);
    let child = process::spawn_exec(pid, cgroup, &spec, stdio, &paths.seccomp_cache(), 0)
        .with_context(|| format!("entering container {}", args.container))?;
    // Only the container's process keeps its ends of the pipes.
    let input: Option<OwnedFd> = input.map(|(_, w)| w);
    let started = match child.started() {
        Ok(s) => s,
        Err(e) => {
            process::reap_blocking(child.pid);
            return Err(minibox::Error::from(e).into());
        }
    };
    if args.detach {
        // This process goes: the host's init (or the nearest subreaper) adopts and reaps it,
        // as containerd's shim does Docker's; `stop` reaches it through the cgroup.
        return Ok(0);
    }
    let raw = (tty && args.process.interactive).then(tty::RawMode::enter);
    let relay = match (&started.pty, input) {
        (Some(master), _) => Some(tty::Relay::new(
            master.try_clone().context("duplicating the terminal")?,
            args.process.interactive,
        )),
        (None, Some(pipe)) => Some(tty::Relay::new(pipe, true)),
        (None, None) => None,
    };
    // Copied to our stdout and stderr, not logged: Docker logs only the container's own process.
    let (out, err) = output.read_ends(started.pty);
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    let mut streams = [
        Some(Stream::new(out, b"stdout", Some(stdout.as_fd()))),
        err.map(|e| Stream::new(e, b"stderr", Some(stderr.as_fd()))),
    ];
    let status = process::wait(child.pid, &signals, relay, &mut streams, None);
    drop(raw);
    Ok(process::exit_code(
        status.context("waiting for the process")?,
    ))
}
