//! minibox's error: what the library's parts report, gathered in one type that decides the
//! exit code Docker users expect (125 when minibox failed, 126 and 127 when the container's
//! command cannot be executed or is not found).

use crate::container::error::SetupError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Setting up the container's process failed (the executor's error).
    #[error(transparent)]
    Setup(#[from] SetupError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Setup(e) => e.exit_code(),
        }
    }
}
