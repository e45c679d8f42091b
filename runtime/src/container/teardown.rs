//! Undoing a container, from what its state records: the same steps whether its owner finished
//! normally, failed halfway, or died and left the records to someone else. Called by
//! [`super::lifecycle::finish`] only.

use super::cgroups::Cgroup;
use super::image;
use super::lifecycle::{Error, Result};
use super::state::{self, State};
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
            Err(source) => {
                result = result.and(Err(Error::Network {
                    id: id.to_string(),
                    source: Box::new(source),
                }))
            }
        }
    }
    if let Some(path) = st.cgroup.take() {
        Cgroup::open(&path).delete();
    }
    st.pid = 0;
    st.pid_start = None;
    result
}

/// Removes the container's records: its root filesystem and persistent dir, its name, and
/// last its volatile dir (which holds the lock).
pub fn remove(paths: &Paths, id: &str, st: &State) -> Result<()> {
    if let Some(code) = st.exit_code {
        state::record_exit(paths, id, code);
    }
    // The name it was given last: `rename` changes the config's under a running container.
    let renamed = state::load_summary(paths, id).ok().and_then(|s| s.name);
    let dir = state::dir(paths, id);
    image::remove(&dir).map_err(|source| Error::Rootfs {
        id: id.to_string(),
        source,
    })?;
    state::remove_dir(paths, id);
    super::lifecycle::fault("removing");
    for name in st.name.iter().chain(&renamed) {
        state::release_name(paths, name, id);
    }
    state::remove_state(paths, id);
    Ok(())
}
