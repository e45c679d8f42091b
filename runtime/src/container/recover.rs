//! Crash recovery: a container whose lock is free while its state says it is being set up or
//! running lost its owner (a `run` or supervisor that was killed). Whoever notices takes the lock
//! and undoes what the state recorded. Cheap enough to run at the start of every command: one
//! small read and one non-blocking `flock` per live container.

use std::fs;

use super::state::{self, Lock, State, Status};
use super::teardown;
use crate::paths::Paths;

/// Recovers every container whose owner died; returns their ids.
pub fn check(paths: &Paths, explain: bool) -> Vec<String> {
    crate::network::recover(paths);
    let Ok(dir) = fs::read_dir(paths.container_state()) else {
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
                let _ = fs::remove_dir_all(entry.path());
            }
            continue;
        }
        let st = state::load_state(paths, &name).unwrap_or_default();
        if st.status == Status::Exited {
            continue;
        }
        if let Ok(Some(lock)) = state::try_lock(paths, &name) {
            // Re-read under the lock: the owner may have finished in between.
            let st = state::load_state(paths, &name).unwrap_or(st);
            if st.status != Status::Exited {
                recover(paths, explain, &name, st, lock);
                recovered.push(name);
            }
        }
    }
    recovered
}

/// Undoes a container whose owner died, holding its lock. A container that never started, or
/// that was run with `--rm`, goes entirely; others stay, as exited (killed).
pub fn recover(paths: &Paths, explain: bool, id: &str, mut st: State, lock: Lock) {
    tracing::info!("recovering container {id:.12}: its owner died");
    teardown::release(paths, explain, id, &mut st);
    let rm = st.started_at.is_none() || state::load_config(paths, id).map_or(true, |c| c.rm);
    if rm {
        teardown::remove(paths, id, &st);
    } else {
        if st.exit_code.is_none() {
            st.exit_code = Some(137);
        }
        st.status = Status::Exited;
        st.finished_at = Some(state::now_ns());
        if let Err(e) = state::save_state(paths, id, &st) {
            eprintln!("minibox: recording the end of {id:.12}: {e:#}");
        }
    }
    drop(lock);
}

/// Test hook for the fault tests: `MINIBOX_FAULT=<point>` kills this process (a `run`, a
/// supervisor, an `rm`) at that point, as a crash would.
pub fn fault(point: &str) {
    if std::env::var_os("MINIBOX_FAULT").is_some_and(|v| v == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
