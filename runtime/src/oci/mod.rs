//! The OCI runtime: the operations of runc's command line (what containerd's shim, Podman's
//! conmon and Kubernetes' CRI call) over a bundle's `config.json`, one file per operation. The
//! container's process is made by the same executor as `minibox run`
//! ([`crate::container::process`]); this layer adds what the OCI mode owns: its records under
//! `--root`, the create/start split (an exec fifo), the pid file, the console socket, hooks.
//!
//! No minibox process stays between the caller and the container: `create` leaves the
//! container's process itself as the caller's child, and every later command finds it by pid and
//! start time.

pub mod console;
pub mod create;
pub mod delete;
pub mod error;
pub mod events;
pub mod exec;
pub mod features;
pub mod hooks;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

pub use error::{OciError, Result};
pub use state::{Root, Status};
