//! The OCI runtime's errors. Callers match some texts: containerd's shim "container not
//! running" and "no such process" (kill), Podman "does not exist" (state).

use crate::container::error::SetupError;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container \"{0}\" already exists: delete it first")]
    Exists(String),
    #[error("container not running")]
    NotRunning,
    #[error("container is {0}: {1}")]
    WrongState(&'static str, &'static str),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Bad input (a flag, a config.json, a process.json): what is wrong and what to do.
    #[error("{0}")]
    Invalid(String),
    /// The default devices' Spec entries (see `container::spec`).
    #[error(transparent)]
    Spec(#[from] crate::container::spec::Error),
    #[error(transparent)]
    Cgroup(#[from] crate::container::cgroups::Error),
    #[error("{0}")]
    Hook(String),
}

pub type Result<T> = std::result::Result<T, OciError>;

impl OciError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
