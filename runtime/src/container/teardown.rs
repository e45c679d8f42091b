//! Undoing a container, from what its state records: the same steps whether its owner finished
//! normally, failed halfway, or died and left the records to someone else. Called by
//! [`super::lifecycle`] only.
//!
//! A removal a user waits on (the end of `run --rm`) is split: what the user can observe goes
//! at once (the container's name, its record in `ps -a`, its exit code handed to whoever waits),
//! and a detached background process does the slow part (the network's kernel teardown, the
//! cgroup, the unmounts and the removal of its files) while it holds the container's lock, in
//! the record renamed `.rm-<id>`. Should that process die, the next command that sweeps
//! (`ps`, `prune`) or that needs what it held ([`settle`]) finishes the removal.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::fcntl::{Flock, FlockArg};

use super::cgroups::Cgroup;
use super::image;
use super::lifecycle::{fault, Error, Result};
use super::state::{self, Ending, Lock, State};
use crate::network;
use crate::paths::Paths;

/// Releases what the container holds on the host: its processes (killed through its cgroup,
/// thawed first), its network and its cgroup. Each step is recorded as undone once it is; all
/// are tried, and the first failure is returned. `background`: the network's kernel teardown
/// is finished by a background process that holds the network lock (and leaves a record that
/// recovery redoes it from, should it die), for a user waiting on the container's end.
pub fn release(
    paths: &Paths,
    explain: bool,
    id: &str,
    st: &mut State,
    background: bool,
) -> Result<()> {
    let mut result = Ok(());
    if let Some(path) = &st.cgroup {
        result = Cgroup::open(path).kill_all().map_err(Error::from);
    }
    if st.network.is_some() || st.attachment.is_some() {
        match network::detach(paths, explain, id, background) {
            Ok(()) => {
                st.network = None;
                st.attachment = None;
            }
            Err(source) => result = result.and(Err(network_error(id, source))),
        }
    }
    if let Some(path) = st.cgroup.take() {
        Cgroup::open(&path).delete();
    }
    st.pid = 0;
    st.pid_start = None;
    result
}

fn network_error(id: &str, source: network::Error) -> Error {
    Error::Network {
        id: id.to_string(),
        source: Box::new(source),
    }
}

/// Removes the container's records: its anonymous volumes when it goes with them, its root
/// filesystem and persistent dir, its name, and last its volatile dir (which holds the lock).
/// `config`: what its end needs of its config, read before (the files take it along).
pub fn remove(paths: &Paths, id: &str, st: &State, config: Option<&Ending>) -> Result<()> {
    if let Some(code) = st.exit_code {
        state::record_exit(paths, id, code);
    }
    remove_with_volumes(paths, id, st, config)?;
    release_names(paths, id, st, config);
    state::remove_state(paths, id);
    Ok(())
}

/// Frees the container's name, and the one it was given last: `rename` changes the config's
/// under a running container.
fn release_names(paths: &Paths, id: &str, st: &State, config: Option<&Ending>) {
    for name in st.name.iter().chain(config.and_then(|c| c.name.as_ref())) {
        state::release_name(paths, name, id);
    }
}

/// The root filesystem (unmounted first) and the persistent dir.
fn remove_files(paths: &Paths, id: &str) -> Result<()> {
    image::remove(&state::dir(paths, id)).map_err(|source| Error::Rootfs {
        id: id.to_string(),
        source,
    })?;
    state::remove_dir(paths, id);
    fault("removing");
    Ok(())
}

/// Where the record of a container being removed in the background is: `.rm-<id>`, a name that
/// container listings skip (see [`state::ids`]).
fn removing(id: &str) -> String {
    format!(".rm-{id}")
}

/// Whether container `id` is being removed in the background.
pub fn under_way(paths: &Paths, id: &str) -> bool {
    state::state_dir(paths, &removing(id)).exists()
}

/// The id of a record [`removing`] named, if `name` is one.
pub fn removal_of(name: &str) -> Option<&str> {
    name.strip_prefix(".rm-")
}

/// Removes container `id` (released or not), whose `lock` the caller holds, as a user waiting on
/// it sees it: gone when this returns, the rest finished by a detached process that keeps the
/// lock (see the module's docs). `config`: what its end needs of its config, if it could be
/// read (for its anonymous volumes). Falls back to removing it here when the record cannot be
/// renamed or no process can be forked.
pub fn remove_in_background(
    paths: &Paths,
    id: &str,
    st: &mut State,
    config: Option<&Ending>,
    lock: &Lock,
) -> Result<()> {
    if let Some(code) = st.exit_code {
        state::record_exit(paths, id, code);
    }
    let record = state::state_dir(paths, id);
    if let Err(e) = std::fs::rename(&record, state::state_dir(paths, &removing(id))) {
        tracing::debug!("removing {id:.12} here: {e}");
        let released = release(paths, false, id, st, true);
        remove(paths, id, st, config)?;
        return released;
    }
    release_names(paths, id, st, config);
    // Its volumes too, which `volume ls` would show: a container has none, or a few.
    remove_volumes(paths, st, config);
    let net = match (st.network.is_some() || st.attachment.is_some())
        .then(|| network::start_detach(paths, id))
        .transpose()
    {
        Ok(net) => net.flatten(),
        // Left to the removal, which detaches all of it.
        Err(e) => {
            tracing::warn!("removing {id:.12}: {}", crate::error::one_line(&e));
            None
        }
    };
    let mut keep: Vec<RawFd> = vec![lock.as_fd().as_raw_fd()];
    keep.extend(net.as_ref().map(network::Detach::lock_fd));
    // The caller returns to the user, and exits (see `lifecycle::finish_quickly`).
    match minibox_netns::background::fork_detached_at_exit(&keep) {
        Ok(true) => {
            let done = finish_removal(paths, id, st, config, net);
            minibox_netns::background::exit(i32::from(done.is_err()))
        }
        Ok(false) => {
            if let Some(net) = net {
                net.hand_over();
            }
            Ok(())
        }
        Err(e) => {
            tracing::debug!("removing {id:.12} here: cannot fork: {e}");
            finish_removal(paths, id, st, config, net)
        }
    }
}

/// The slow part of [`remove_in_background`], also what recovery redoes: the network (`net`,
/// when begun), the processes and cgroup, the anonymous volumes, the files, and last the
/// renamed record.
fn finish_removal(
    paths: &Paths,
    id: &str,
    st: &mut State,
    config: Option<&Ending>,
    net: Option<network::Detach>,
) -> Result<()> {
    let mut result = Ok(());
    if let Some(net) = net {
        match net.finish() {
            Ok(()) => {
                st.network = None;
                st.attachment = None;
            }
            Err(source) => result = Err(network_error(id, source)),
        }
    }
    result = result.and(release(paths, false, id, st, false));
    fault("released");
    remove_with_volumes(paths, id, st, config)?;
    state::remove_state(paths, &removing(id));
    result
}

/// The container's files, after its anonymous volumes (its config names them, and the files
/// take it along).
fn remove_with_volumes(paths: &Paths, id: &str, st: &State, config: Option<&Ending>) -> Result<()> {
    remove_volumes(paths, st, config);
    remove_files(paths, id)
}

/// The container's anonymous volumes, when it goes with them: `run --rm`, or a container that
/// never started.
fn remove_volumes(paths: &Paths, st: &State, config: Option<&Ending>) {
    if let Some(c) = config.filter(|c| c.rm || st.started_at.is_none()) {
        super::volume::remove_anonymous(paths, &c.volumes);
    }
}

/// Finishes the removal of container `id` if one was begun and its process died; with `wait`,
/// first waits for that process if it still works. True if this finished or waited for one.
pub fn settle(paths: &Paths, id: &str, wait: bool) -> bool {
    let record = removing(id);
    let Ok(file) = state::lock_file(paths, &record) else {
        return false;
    };
    let how = match wait {
        true => FlockArg::LockExclusive,
        false => FlockArg::LockExclusiveNonblock,
    };
    // Granted once the removal's process exited, finished or not.
    let Ok(lock) = Flock::lock(file, how) else {
        return false;
    };
    let abandoned = state::state_dir(paths, &record).exists();
    if abandoned {
        tracing::info!("finishing the removal of container {id:.12}: its process died");
        let mut st = state::load_state(paths, &record).unwrap_or_default();
        let config = state::load_ending(paths, id).ok();
        if let Err(e) = finish_removal(paths, id, &mut st, config.as_ref(), None) {
            tracing::warn!("removing {id:.12}: {}", crate::error::one_line(&e));
        }
    }
    drop(lock);
    abandoned || wait
}
