//! `run`: create and start; with `--detach` that is all, otherwise wait for the process (this
//! process is its parent: signals are forwarded to it) and delete the container.

use nix::sys::wait::waitpid;

use super::{create, delete, start, Result, Root};
use crate::container::process;

pub fn run(root: &Root, id: &str, opts: &create::Options, detach: bool) -> Result<i32> {
    let pid = create::create(root, id, opts)?;
    if let Err(e) = start::start(root, id) {
        let _ = delete::delete(root, id, true);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    // Signals were blocked by create (they are read from a signalfd and forwarded).
    let signals =
        process::Signals::block().map_err(|e| super::OciError::io("blocking signals", e.into()))?;
    let status = process::wait(pid, &signals, None, &mut [None, None], None)
        .map_err(|e| super::OciError::io("waiting for the container", e.into()));
    let deleted = delete::delete(root, id, true);
    let code = process::exit_code(status?);
    deleted?;
    Ok(code.into())
}
