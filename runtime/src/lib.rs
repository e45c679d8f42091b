//! minibox as a library: the container (its process, root filesystem, cgroup and security, its
//! records and lifecycle), the runtime's side of networking, and where things are kept.
//!
//! The `minibox` binary (`main.rs`, with `cli` and `commands/`) parses a Docker-style command
//! line, calls this library and prints; another front end (an OCI runtime command line) can be
//! added as `src/bin/<name>.rs` over the same modules.

pub mod container;
pub mod error;
pub mod network;
pub mod paths;

pub use error::Error;
