//! The container itself: its process, filesystem, cgroup and security, and its records.

pub mod cgroups;
pub mod clock;
pub mod error;
pub mod image;
pub mod init;
pub mod lifecycle;
pub mod liveness;
pub mod log;
pub mod mounts;
pub mod process;
pub mod seccomp;
pub mod security;
pub mod security_opt;
pub mod spec;
pub mod state;
pub mod supervisor;
pub mod sync;
pub mod teardown;
pub mod tty;
pub mod user;
