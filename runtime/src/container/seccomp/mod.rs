//! Seccomp: which system calls a container's processes may make.
//!
//! Two steps, as Docker and runc split them. [`profile`] turns a profile in Docker's format
//! (Docker's default one is built in) into the OCI `linux.seccomp` form for one container, given
//! its capabilities and the host; that form is what the container's config keeps, and what an OCI
//! bundle's config.json carries. [`filter`] compiles that form with libseccomp into the kernel's
//! BPF program, in the runtime before the container's process is created (compiling costs far
//! more than loading), and loads it in the container's process just before exec.

mod filter;
mod profile;

pub use filter::{compile, compile_cached, Program};
pub use profile::{docker_default, from_docker_profile, Host};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid seccomp profile: {0}")]
    Profile(String),
    #[error("compiling the seccomp filter: {what}: {source}")]
    Compile {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("compiling the seccomp filter: {0}")]
    Unsupported(String),
    #[error("loading the seccomp filter: {0}")]
    Load(std::io::Error),
}
