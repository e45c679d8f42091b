//! The container itself: its process, filesystem, cgroup and security, and its records.

pub mod cgroups;
pub mod clock;
pub mod error;
pub mod events;
pub mod health;
pub mod image;
pub mod init;
pub mod lifecycle;
pub mod liveness;
pub mod log;
pub mod mounts;
pub mod process;
pub mod restart;
pub mod seccomp;
pub mod security;
pub mod security_opt;
pub mod signal;
pub mod spec;
pub mod start;
pub mod state;
pub mod supervisor;
pub mod sync;
pub mod teardown;
pub mod tty;
pub mod user;
