//! `minibox exec`: a new process in a running container: all its namespaces, its cgroup, its
//! capabilities and no_new_privs, its environment with `-e` on top.

use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};

use crate::cli::ExecArgs;
use crate::container::log::Stream;
use crate::container::process::{self, Failure, Signals};
use crate::container::spec::{self, ImageConfig};
use crate::container::state::{self, Status};
use crate::container::{seccomp, tty};
use crate::paths::Paths;

pub fn exec(paths: &Paths, args: ExecArgs) -> Result<u8> {
    let id = state::resolve(paths, &args.container)?;
    let st = state::load_state(paths, &id)?;
    let config = state::load_config(paths, &id)?;
    let (Status::Running, Some(cgroup)) = (st.status, st.cgroup.as_deref()) else {
        bail!(
            "container {} is not running: start it first",
            args.container
        );
    };
    let mut s = config.spec.clone();
    let base = ImageConfig {
        env: s.env.clone(),
        ..Default::default()
    };
    s.env = spec::environment(&base, &s.hostname, args.process.tty, &args.process.env)?;
    s.args = args.command.clone();
    if let Some(w) = &args.process.workdir {
        s.cwd = spec::workdir(&base, Some(w))?;
    }
    if let Some(u) = &args.process.user {
        s.user = u.clone();
    }
    s.tty = args.process.tty;
    s.interactive = args.process.interactive;
    s.init = false;

    let seccomp = (s.seccomp.as_ref())
        .map(|f| seccomp::compile_cached(f, &paths.seccomp_cache()))
        .transpose()?;
    let signals = Signals::block().context("blocking signals")?;
    let pid = nix::unistd::Pid::from_raw(st.pid);
    let child = process::spawn_exec(pid, cgroup, &s, &signals, seccomp.as_ref())
        .with_context(|| format!("entering container {}", args.container))?;
    let started = match child.started() {
        Ok(s) => s,
        Err(Failure { code, msg }) => {
            process::reap_blocking(child.pid);
            eprintln!("minibox: {msg}");
            return Ok(code);
        }
    };
    let raw = (args.process.tty && args.process.interactive).then(tty::RawMode::enter);
    // With a terminal its output is copied from the pty (not logged: Docker logs only the
    // container's own process); without, the process writes to our stdout itself.
    let stdout = std::io::stdout();
    let (relay, mut streams) = match started.pty {
        Some(master) => {
            let input = master.try_clone().context("duplicating the terminal")?;
            let output = Stream::new(master, b"stdout", Some(stdout.as_fd()));
            (
                Some(tty::Relay::new(input, args.process.interactive)),
                [Some(output), None],
            )
        }
        None => (None, [None, None]),
    };
    let status = process::wait(child.pid, &signals, relay, &mut streams, None);
    drop(raw);
    Ok(process::exit_code(
        status.context("waiting for the process")?,
    ))
}
