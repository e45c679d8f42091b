//! The image store's error type: each message names the file, image or digest at fault.

use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on `what` (a path, usually).
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// The input is malformed, truncated or unsupported.
    #[error("{0}")]
    Invalid(String),
    /// An archive entry tried to write outside the layer, or otherwise unsafely.
    #[error("refusing archive entry {entry:?}: {why}")]
    Unsafe { entry: String, why: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A registry refused, failed or could not be reached; the message says which and why.
    #[error("{0}")]
    Registry(String),
    /// The operation would break something in use; -f overrides where it makes sense.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl Error {
    pub(crate) fn io(what: impl std::fmt::Display, source: io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    pub(crate) fn path(path: &Path, source: io::Error) -> Self {
        Error::io(path.display(), source)
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub(crate) fn registry(msg: impl Into<String>) -> Self {
        Error::Registry(msg.into())
    }
}

/// Adds a path to an io::Result's error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, Error>;
    fn with(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, Error> {
        self.map_err(|e| Error::path(path, e.into()))
    }
    fn with(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::io(what(), e.into()))
    }
}
