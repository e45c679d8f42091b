//! A container's life, in one place:
//!
//! ```text
//!            setup               finish(Exited)             start
//!  Created ─────────> Running ─────────────────> Exited ─────────> Created ...
//!     │                  │                          │
//!     └── finish(Failed, OwnerDied) ────────────────┴── finish(Removed), or --rm,
//!                                                       or never started: removed
//! ```
//!
//! Whoever is in charge of a container holds its lock ([`state::Lock`]): the foreground `run`,
//! its supervisor (`run -d`, `start`), or a command removing or recovering it. Every end goes
//! through [`finish`]: release what the container holds on the host (processes, network,
//! cgroup), then either remove its records or keep them as exited, with its exit code.
//!
//! Liveness: a minibox-supervised container's owner is alive while it holds the lock (the
//! kernel drops a dead process's flock), and its PID 1 is identified by pid *and* start time
//! ([`liveness`]), so signals go only to the verified process. A container supervised by
//! someone else (a shim) is never recovered as an orphan: its lock says nothing about it.
//!
//! The library prints nothing: what went wrong is returned, and the command prints it.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::cgroups::Cgroup;
use super::liveness::{self, Init};
use super::process::EXIT_RUNTIME;
use super::state::{self, Config, Ending, Lock, State, Status, Supervisor};
use super::teardown;
use super::{events, signal};
use crate::network;
use crate::paths::Paths;

/// What can go wrong in a container's life.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error("it is not running")]
    NotRunning,
    #[error("it is running; stop it first or use rm -f")]
    Running,
    #[error(
        "cannot join the {typ} namespace of container {id:.12}: it is not running (start it first)"
    )]
    NotJoinable { typ: String, id: String },
    #[error(
        "its process still runs {secs} s after SIGKILL (pid {pid}, cgroup {cgroup}): it is stuck \
         in the kernel, or its cgroup is frozen again; look at its processes, then retry"
    )]
    Resists { secs: u64, pid: i32, cgroup: String },
    #[error("sending the signal")]
    Signal(#[source] std::io::Error),
    /// Releasing its processes or its cgroup failed.
    #[error(transparent)]
    Cgroup(#[from] super::cgroups::Error),
    #[error("removing the network of {id:.12}")]
    Network {
        id: String,
        #[source]
        source: Box<crate::network::Error>,
    },
    #[error("removing the root filesystem of {id:.12}")]
    Rootfs {
        id: String,
        #[source]
        source: super::image::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long `stop` and `rm -f` wait for a killed container to let go, before they give up
/// with a message rather than hang.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// How a container's life ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its PID 1 exited with `code` (128+N for signal N); `oom`: the OOM killer did it.
    Exited { code: u8, oom: bool },
    /// Its set-up failed, or was interrupted: Docker's 125 for "the runtime failed".
    Failed,
    /// Its owner (a `run`, a supervisor) died: the container went down with it, as killed.
    OwnerDied,
    /// The user removes it (`rm`, `system prune`): its records go whatever it was.
    Removed,
}

impl End {
    /// The exit code recorded when none was recorded before.
    fn code(self) -> u8 {
        match self {
            End::Exited { code, .. } => code,
            End::Failed | End::Removed => EXIT_RUNTIME,
            End::OwnerDied => 128 + Signal::SIGKILL as u8,
        }
    }
}

/// Ends container `id`, whose lock the caller holds: releases what it holds on the host, then
/// removes its records (when it has `--rm`, never started, or is being removed) or keeps them
/// as exited. Every step is tried; the first failure is returned once all are done.
pub fn finish(paths: &Paths, explain: bool, id: &str, st: &mut State, end: End) -> Result<()> {
    finish_as(paths, explain, id, st, end, None)
}

/// [`finish`] for a user waiting on the container's end: the network's teardown finished in
/// the background, and a removal too, by a process that keeps `lock` (see [`teardown`]). The
/// caller exits next, waiting for no child of its own: the removal's process is its child.
pub fn finish_quickly(
    paths: &Paths,
    explain: bool,
    id: &str,
    st: &mut State,
    end: End,
    lock: &Lock,
) -> Result<()> {
    finish_as(paths, explain, id, st, end, Some(lock))
}

/// `background`: the lock that a background process finishing the end keeps.
fn finish_as(
    paths: &Paths,
    explain: bool,
    id: &str,
    st: &mut State,
    end: End,
    background: Option<&Lock>,
) -> Result<()> {
    let explain = network::explain_if_asked(&state::state_dir(paths, id)) || explain;
    if let End::Exited { code, oom } = end {
        // Recorded first: whoever finishes after a crash from here on keeps how it ended.
        st.exit_code = Some(code);
        st.oom_killed = oom;
        st.finished_at = Some(state::now_ns());
        state::save_state(paths, id, st)?;
        fault("finishing");
    }
    let config = state::load_ending(paths, id).ok();
    let actor = config.as_ref().map(Ending::actor).unwrap_or_default();
    if matches!(end, End::Exited { .. } | End::OwnerDied) && st.status == Status::Running {
        let code = st.exit_code.unwrap_or(end.code());
        events::record_as(paths, id, &actor, "die", &[("exitCode", code.to_string())]);
    }
    let remove = end == End::Removed
        || (st.started_at.is_none() && !st.unstarted)
        || config.as_ref().is_none_or(|c| c.rm);
    if let (true, Some(lock), false) = (remove, background, explain) {
        events::record_as(paths, id, &actor, "destroy", &[]);
        return teardown::remove_in_background(paths, id, st, config.as_ref(), lock);
    }
    let released = teardown::release(paths, explain, id, st, background.is_some());
    if remove {
        events::record_as(paths, id, &actor, "destroy", &[]);
        teardown::remove(paths, id, st, config.as_ref())?;
    } else if st.unstarted {
        // A start of a created container failed: it stays created.
        st.status = Status::Created;
        state::save_state(paths, id, st)?;
    } else {
        st.status = Status::Exited;
        if st.exit_code.is_none() {
            st.exit_code = Some(end.code());
            st.finished_at = Some(state::now_ns());
        }
        state::save_state(paths, id, st)?;
    }
    released
}

/// A container this process is in charge of (it holds the lock): a foreground `run`, or the
/// set-up of `run -d` and `start`. It ends through [`Container::finish`]; dropped unfinished
/// (its set-up failed), it ends as [`End::Failed`].
pub struct Container {
    pub paths: Paths,
    pub explain: bool,
    pub id: String,
    pub state: State,
    pub cgroup: Option<Cgroup>,
    /// Whom its events are about, from the config it was made with.
    actor: events::Actor,
    lock: Lock,
    armed: bool,
}

impl Container {
    pub fn new(paths: &Paths, explain: bool, config: &Config, lock: Lock, state: State) -> Self {
        let mut state = state;
        state.name = config.name.clone();
        Self {
            paths: paths.clone(),
            explain,
            id: config.id.clone(),
            state,
            cgroup: None,
            actor: config.actor(),
            lock,
            armed: true,
        }
    }

    pub fn save(&self) -> state::Result<()> {
        state::save_state(&self.paths, &self.id, &self.state)
    }

    /// Records the container's PID 1, as the process itself identifies it (saved with the next
    /// step of the set-up).
    pub fn spawned(&mut self, pid: i32) {
        self.state.pid = pid;
        self.state.pid_start = liveness::start_time(pid);
    }

    /// Created → Running: its PID 1 runs the container's command.
    pub fn running(&mut self) -> state::Result<()> {
        self.state.status = Status::Running;
        self.state.started_at = Some(state::now_ns());
        self.state.finished_at = None;
        self.state.exit_code = None;
        self.state.oom_killed = false;
        self.state.restarting = false;
        self.state.unstarted = false;
        self.state.input = None;
        self.save()?;
        events::record_as(&self.paths, &self.id, &self.actor, "start", &[]);
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.oom_killed())
    }

    /// The lock, to hand over to a supervisor.
    pub fn lock(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Another descriptor of its lock (see [`Lock::try_clone`]).
    pub fn lock_clone(&self) -> std::io::Result<Lock> {
        self.lock.try_clone()
    }

    /// Ends the container (see [`finish_quickly`]).
    pub fn finish(mut self, end: End) -> Result<()> {
        self.armed = false;
        let (paths, id) = (&self.paths, &self.id);
        finish_quickly(paths, self.explain, id, &mut self.state, end, &self.lock)
    }

    /// Forgets the container without undoing anything: someone else is in charge now.
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.armed {
            let (paths, id) = (&self.paths, &self.id);
            let (st, lock) = (&mut self.state, &self.lock);
            if let Err(e) = finish_quickly(paths, self.explain, id, st, End::Failed, lock) {
                tracing::error!("ending container {id:.12}: {}", crate::error::one_line(&e));
            }
        }
    }
}

/// What recovery does with a container, from its state and whether its lock is free.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Alive, finished, or not minibox's to judge.
    Leave,
    /// Its minibox owner died without finishing it: finish it for them.
    Recover,
}

/// The recovery decision, pure. Only a container minibox supervises can be proven orphaned
/// (its owner's lock is free while it is not exited); one supervised by someone else (a shim)
/// is left to them, whatever its lock says.
pub fn verdict(st: &State, lock_free: bool) -> Verdict {
    // Made by `create` and holding nothing yet: nobody's to own.
    if st.unstarted && st.pid == 0 && st.cgroup.is_none() && st.network.is_none() {
        return Verdict::Leave;
    }
    match (st.status, st.supervisor, lock_free) {
        (Status::Exited, _, _) | (_, Supervisor::External, _) | (_, _, false) => Verdict::Leave,
        (Status::Created | Status::Running, Supervisor::Minibox, true) => Verdict::Recover,
    }
}

/// Recovers every container whose owner died (and network teardowns left unfinished); returns
/// their ids. One small read and one non-blocking `flock` per container.
pub fn recover_all(paths: &Paths, explain: bool) -> Vec<String> {
    crate::network::recover(paths);
    let Ok(dir) = std::fs::read_dir(paths.container_state()) else {
        return vec![];
    };
    let mut recovered = vec![];
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".new-") {
            // A record that never got its final name (only a lock and a state inside): one
            // being made now takes microseconds, so only an old one is abandoned.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60));
            // No lock file (a crash right after the mkdir) counts as free.
            if old && !matches!(state::try_lock_at(&entry.path()), Ok(None)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
            continue;
        }
        // A removal whose process died is finished; one under way is left to its process.
        if let Some(id) = teardown::removal_of(&name) {
            if teardown::settle(paths, id, false) {
                recovered.push(id.to_string());
            }
            continue;
        }
        if settle(paths, explain, &name) {
            recovered.push(name);
        }
    }
    recovered
}

/// [`settle`], and for a container being removed in the background, waits until it is gone:
/// for a command that needs what its files hold (`rmi`, its image). The others need only what
/// that removal frees at once (its name) or under the network lock (its ports and address).
pub fn settle_removed(paths: &Paths, explain: bool, id: &str) -> bool {
    teardown::settle(paths, id, true) || settle(paths, explain, id)
}

/// Recovers container `id` if its owner died, or finishes its removal if the process doing it
/// died; true if it did.
pub fn settle(paths: &Paths, explain: bool, id: &str) -> bool {
    if teardown::settle(paths, id, false) {
        return true;
    }
    let st = state::load_state(paths, id).unwrap_or_default();
    // Cheap first look without the lock: most containers are alive or exited.
    if verdict(&st, true) == Verdict::Leave {
        return false;
    }
    let Ok(Some(lock)) = state::try_lock(paths, id) else {
        return false;
    };
    // Re-read under the lock: the owner may have finished in between.
    let st = state::load_state(paths, id).unwrap_or(st);
    if verdict(&st, true) == Verdict::Leave {
        return false;
    }
    recover(paths, explain, id, st, lock);
    true
}

/// Finishes a container whose owner died, holding its lock.
pub fn recover(paths: &Paths, explain: bool, id: &str, mut st: State, lock: Lock) {
    tracing::info!("recovering container {id:.12}: its owner died");
    if let Err(e) = finish(paths, explain, id, &mut st, End::OwnerDied) {
        tracing::warn!(
            "recovering container {id:.12}: {}",
            crate::error::one_line(&e)
        );
    }
    drop(lock);
}

/// Takes charge of container `id` for the user to start it (again): its lock, and its state
/// made `created`, its restart count and the user's stop forgotten (an orphan is recovered
/// first). `None` when it runs already.
pub fn restart(paths: &Paths, explain: bool, id: &str) -> Result<Option<(Lock, State)>> {
    loop {
        let Some(lock) = lock_once_ended(paths, id)? else {
            return Ok(None);
        };
        let mut st = state::load_state(paths, id)?;
        let startable = st.status == Status::Exited || st.unstarted;
        match (startable, verdict(&st, true)) {
            (true, _) => {
                st.status = Status::Created;
                st.exit_code = None;
                st.restart_count = 0;
                st.backoff_ms = 0;
                st.restarting = false;
                state::save_state(paths, id, &st)?;
                state::set_stopped_by_user(paths, id, false)?;
                return Ok(Some((lock, st)));
            }
            // Its owner died: undo what it held first, then look again.
            (_, Verdict::Recover) => recover(paths, explain, id, st, lock),
            // Someone else's: not minibox's to start.
            (_, Verdict::Leave) => return Ok(None),
        }
    }
}

/// The container's PID 1 as recorded.
pub fn init(st: &State) -> Init<'_> {
    Init {
        pid: st.pid,
        start: st.pid_start,
        cgroup: st.cgroup.as_deref(),
    }
}

/// Whether the container runs: recorded as running and its PID 1 still the process started.
pub fn running(st: &State) -> bool {
    st.status == Status::Running && init(st).alive()
}

/// Thaws the container's cgroup, should it be frozen (by itself, or by anyone): a frozen
/// process handles no signal, so every stop, kill and removal thaws first.
fn thaw(st: &State) -> Result<()> {
    match &st.cgroup {
        Some(path) => Ok(Cgroup::open(path).thaw()?),
        None => Ok(()),
    }
}

/// Sends `sig` to the container's PID 1, verified (never to a process that took its pid since).
/// As in Docker, SIGKILL or the container's stop signal ends it for good: its restart policy
/// leaves it stopped.
pub fn kill(paths: &Paths, explain: bool, id: &str, sig: Signal) -> Result<()> {
    let st = state::load_state(paths, id)?;
    if st.status != Status::Running {
        return Err(Error::NotRunning);
    }
    let stop = state::load_config(paths, id).map_or(Signal::SIGTERM, |c| {
        signal::stop_signal(c.stop_signal.as_deref())
    });
    if sig == Signal::SIGKILL || sig == stop {
        state::set_stopped_by_user(paths, id, true)?;
    }
    thaw(&st)?;
    let _asked = explain.then(|| network::ask_to_explain(&state::state_dir(paths, id)));
    say_signal(explain, &st, sig);
    if !init(&st).signal(sig).map_err(Error::Signal)? {
        return Err(Error::NotRunning);
    }
    events::record(paths, id, "kill", &[("signal", (sig as i32).to_string())]);
    if explain {
        // A signal that ends the container: its teardown, explained by its owner, comes soon.
        wait_released(paths, explain, id, Some(Instant::now() + EXPLAIN_WAIT));
    }
    Ok(())
}

/// How long `--explain kill` waits for the teardown a signal may cause, to show it.
const EXPLAIN_WAIT: Duration = Duration::from_secs(2);

/// `--explain`: the signal as the `kill` command that sends it.
fn say_signal(explain: bool, st: &State, sig: Signal) {
    network::explainer(explain).say(|| {
        format!(
            "kill -s {} {}  # the container's PID 1",
            &sig.as_str()[3..],
            st.pid
        )
    });
}

/// Stops container `id`: `sig` (its stop signal), and SIGKILL after `timeout`; returns once it
/// is torn down, or an error when its PID 1 still lives [`KILL_GRACE`] after the SIGKILL. It
/// stays stopped: marked so first, its supervisor does not restart it (and one waiting to
/// restart it gives up).
pub fn stop(paths: &Paths, explain: bool, id: &str, sig: Signal, timeout: Duration) -> Result<()> {
    let st = state::load_state(paths, id)?;
    state::set_stopped_by_user(paths, id, true)?;
    if st.status != Status::Running && !st.restarting {
        return Ok(());
    }
    let _asked = explain.then(|| network::ask_to_explain(&state::state_dir(paths, id)));
    if st.status == Status::Running {
        thaw(&st)?;
        say_signal(explain, &st, sig);
        let _ = init(&st).signal(sig);
        events::record(paths, id, "kill", &[("signal", (sig as i32).to_string())]);
    }
    if !wait_released(paths, explain, id, Some(Instant::now() + timeout)) {
        say_signal(explain, &st, Signal::SIGKILL);
        drop(kill_until_released(paths, id)?);
        wait_released(paths, explain, id, Some(Instant::now()));
    }
    events::record(paths, id, "stop", &[]);
    Ok(())
}

/// SIGKILLs the container, as recorded now (its supervisor may be starting it again), until
/// its owner lets go; then holds its lock (`None`: it was removed meanwhile).
fn kill_until_released(paths: &Paths, id: &str) -> Result<Option<Lock>> {
    loop {
        match state::try_lock(paths, id) {
            Ok(Some(lock)) => return Ok(Some(lock)),
            Ok(None) => {}
            Err(_) => return Ok(None), // removed meanwhile (--rm)
        }
        let st = state::load_state(paths, id).unwrap_or_default();
        if st.pid > 0 || st.cgroup.is_some() {
            kill_until_gone(&st)?;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILLs the container until it is gone: its verified PID 1, and every process of its
/// cgroup (thawed first), whose membership identifies them as the container's too. Gives up,
/// with [`Error::Resists`], on what still lives [`KILL_GRACE`] later.
fn kill_until_gone(st: &State) -> Result<()> {
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        let _ = thaw(st);
        let _ = init(st).signal(Signal::SIGKILL);
        let emptied = st
            .cgroup
            .as_deref()
            .is_none_or(|path| Cgroup::open(path).kill_all().is_ok());
        if emptied && !init(st).alive() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(resists(st));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lock of container `id`; when its exit is recorded and its owner still tears down what
/// it held (its network, its cgroup), once the owner is done: `rm` or `start` right after
/// `logs -f` waits for that rather than taking the container for a running one. `None` while
/// it runs, or is to run again (its restart policy).
fn lock_once_ended(paths: &Paths, id: &str) -> Result<Option<Lock>> {
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        if let Some(lock) = state::try_lock(paths, id)? {
            return Ok(Some(lock));
        }
        let ended = state::load_state(paths, id).is_ok_and(|s| {
            s.status == Status::Exited
                || (!s.restarting && s.finished_at.is_some() && s.finished_at >= s.started_at)
        });
        if !ended || Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes container `id`; with `force`, a running one is killed first. The error when it
/// runs and `force` is not given says "running".
pub fn remove(paths: &Paths, explain: bool, id: &str, force: bool) -> Result<()> {
    let lock = match state::try_lock(paths, id)? {
        Some(lock) => lock,
        None if !force => lock_once_ended(paths, id)?.ok_or(Error::Running)?,
        None => {
            // Kill it until its owner lets go: the owner tears it down once its PID 1 is gone
            // (a container still being set up gets its PID later). Only a PID 1 that outlives
            // SIGKILL is given up on; the owner's teardown may wait its turn for the network.
            // Marked stopped first, so that its supervisor does not start it again.
            let _ = state::set_stopped_by_user(paths, id, true);
            let _asked = explain.then(|| network::ask_to_explain(&state::state_dir(paths, id)));
            say_signal(
                explain,
                &state::load_state(paths, id).unwrap_or_default(),
                Signal::SIGKILL,
            );
            match kill_until_released(paths, id)? {
                Some(lock) => lock,
                None => return Ok(()),
            }
        }
    };
    // Gone meanwhile: its supervisor removed it (--rm), or a concurrent rm did.
    let Ok(mut st) = state::load_state(paths, id) else {
        return Ok(());
    };
    let done = finish(paths, explain, id, &mut st, End::Removed);
    drop(lock);
    done
}

/// The error for a container that does not go away when killed.
fn resists(st: &State) -> Error {
    Error::Resists {
        secs: KILL_GRACE.as_secs(),
        pid: st.pid,
        cgroup: st.cgroup.clone().unwrap_or_else(|| "none".into()),
    }
}

/// Waits until nobody is in charge of container `id` any more (it stopped and was torn down),
/// up to `deadline`; recovers it if its owner died. True when it is stopped.
pub fn wait_released(paths: &Paths, explain: bool, id: &str, deadline: Option<Instant>) -> bool {
    loop {
        match state::try_lock(paths, id) {
            Ok(Some(lock)) => {
                if let Ok(st) = state::load_state(paths, id) {
                    if verdict(&st, true) == Verdict::Recover {
                        recover(paths, explain, id, st, lock);
                    }
                }
                return true;
            }
            Ok(None) => {}
            Err(_) => return true, // removed (--rm)
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for container `id` to end (without polling: on its owner's lock); its exit code, or
/// `None` when it was removed as it exited and the code was not recorded. An orphan is
/// recovered on the way.
pub fn wait(paths: &Paths, explain: bool, id: &str) -> Option<u8> {
    wait_from(paths, explain, id, None)
}

/// [`wait`], first on the lock file opened earlier ([`state::lock_file`]): a container removed
/// meanwhile (`--rm`) still tells its exit code.
pub fn wait_from(
    paths: &Paths,
    explain: bool,
    id: &str,
    mut opened: Option<std::fs::File>,
) -> Option<u8> {
    loop {
        let released = match opened.take() {
            Some(file) => state::released(&file, paths, id),
            None => state::wait_released(paths, id),
        };
        match released {
            Ok(state::Released::Finished(code)) => return code,
            // Recover it, unless someone took it over meanwhile.
            Ok(state::Released::Orphaned) => {
                if !wait_released(paths, explain, id, Some(Instant::now())) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(_) => return None, // removed before we got to its lock
        }
    }
}

/// What `system prune` did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Containers whose owner died, finished for them.
    pub recovered: Vec<String>,
    /// Records no container owned any more (what a removal killed halfway left).
    pub removed: Vec<String>,
}

/// `system prune`: recovers containers whose owner died, and removes records no container
/// owns any more (a persistent dir without state, a name without container).
pub fn prune(paths: &Paths, explain: bool) -> Pruned {
    let mut pruned = Pruned {
        recovered: recover_all(paths, explain),
        ..Default::default()
    };
    let mut live = state::ids(paths);
    // A record without its config is what a removal killed halfway left.
    live.retain(|id| {
        if state::dir(paths, id).join("config.json").exists() {
            return true;
        }
        let Ok(Some(lock)) = state::try_lock(paths, id) else {
            return true; // being created
        };
        let mut st = state::load_state(paths, id).unwrap_or_default();
        if let Err(e) = finish(paths, explain, id, &mut st, End::Removed) {
            tracing::warn!("removing {id:.12}: {}", crate::error::one_line(&e));
        }
        drop(lock);
        pruned.removed.push(id.clone());
        false
    });
    for entry in std::fs::read_dir(paths.containers())
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = entry.file_name().to_string_lossy().into_owned();
        // One being removed in the background is its removal's (recover_all finished those
        // whose process died).
        if !live.contains(&id) && !teardown::under_way(paths, &id) {
            if let Err(e) = teardown::remove(paths, &id, &State::default(), None) {
                tracing::warn!("removing {id:.12}: {}", crate::error::one_line(&e));
            }
            pruned.removed.push(id);
        }
    }
    for entry in std::fs::read_dir(paths.root.join("names"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if !live.contains(&owner.trim().to_string()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    pruned
}

/// Test hook for the fault tests: `MINIBOX_FAULT=<point>` kills this process (a `run`, a
/// supervisor, an `rm`) at that point, as a crash would.
pub fn fault(point: &str) {
    if std::env::var_os("MINIBOX_FAULT").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(status: Status, supervisor: Supervisor) -> State {
        State {
            status,
            supervisor,
            ..Default::default()
        }
    }

    #[test]
    fn only_a_dead_minibox_owner_makes_an_orphan() {
        use Status::*;
        use Supervisor::*;
        for status in [Created, Running] {
            assert_eq!(verdict(&st(status, Minibox), true), Verdict::Recover);
            assert_eq!(verdict(&st(status, Minibox), false), Verdict::Leave);
            // A shim's container: its free lock proves nothing.
            assert_eq!(verdict(&st(status, External), true), Verdict::Leave);
        }
        assert_eq!(verdict(&st(Exited, Minibox), true), Verdict::Leave);
        // Made by `create`: owned by nobody, and nothing to undo, until a start records some.
        let mut created = st(Created, Minibox);
        created.unstarted = true;
        assert_eq!(verdict(&created, true), Verdict::Leave);
        created.cgroup = Some("minibox/x".into());
        assert_eq!(verdict(&created, true), Verdict::Recover);
    }

    #[test]
    fn default_exit_codes() {
        assert_eq!(End::OwnerDied.code(), 137);
        assert_eq!(End::Failed.code(), 125);
        assert_eq!(
            End::Exited {
                code: 3,
                oom: false
            }
            .code(),
            3
        );
    }

    #[test]
    fn a_dead_pid_is_not_running() {
        let mut s = st(Status::Running, Supervisor::Minibox);
        s.pid = std::process::id() as i32;
        s.pid_start = liveness::start_time(s.pid);
        assert!(running(&s));
        s.pid_start = s.pid_start.map(|t| t + 1);
        assert!(!running(&s));
    }
}
