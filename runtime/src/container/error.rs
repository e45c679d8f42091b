//! The error of a container's set-up (everything the executor does between clone and exec): a
//! kind, the errno when a system call failed, and what was being done. It crosses the channel
//! from the child to the runtime as those three fields ([`SetupError::encode`]), and decides the
//! exit code Docker users expect ([`SetupError::exit_code`]) in one place.

use std::fmt;

/// Docker's exit code when the runtime itself failed.
pub const EXIT_RUNTIME: u8 = 125;
/// Docker's exit code when the command cannot be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Docker's exit code when the command is not found.
pub const EXIT_NOT_FOUND: u8 = 127;

/// What kind of failure it is: it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A step of the set-up failed (125).
    Setup = 1,
    /// The command is not found (127).
    NotFound = 2,
    /// The command exists but cannot be executed (126).
    NotExecutable = 3,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.kind, .errno, .context))]
pub struct SetupError {
    pub kind: Kind,
    /// The errno of the system call that failed; 0 when none did.
    pub errno: i32,
    /// What was being done (and, without an errno, why it failed).
    pub context: String,
}

pub type Result<T> = std::result::Result<T, SetupError>;

impl SetupError {
    /// A set-up step failed without a system call failing.
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            kind: Kind::Setup,
            errno: 0,
            context: context.into(),
        }
    }

    /// A system call failed with `errno` while doing `context`.
    pub fn sys(context: impl Into<String>, errno: nix::Error) -> Self {
        Self {
            kind: Kind::Setup,
            errno: errno as i32,
            context: context.into(),
        }
    }

    /// The last system call failed (errno from the thread).
    pub fn last(context: impl Into<String>) -> Self {
        Self::sys(context, nix::Error::last())
    }

    /// An I/O error of the standard library.
    pub fn io(context: impl Into<String>, e: &std::io::Error) -> Self {
        Self::sys(
            context,
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    }

    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// Puts `outer` in front of the context: `outer: context`.
    pub fn within(mut self, outer: impl fmt::Display) -> Self {
        self.context = format!("{outer}: {}", self.context);
        self
    }

    /// The exit code `run` and `exec` report for this failure.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Setup => EXIT_RUNTIME,
            Kind::NotFound => EXIT_NOT_FOUND,
            Kind::NotExecutable => EXIT_NOT_EXECUTABLE,
        }
    }

    /// The wire form: kind, errno (4 bytes, little endian), context.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind as u8];
        out.extend(self.errno.to_le_bytes());
        out.extend(self.context.as_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Option<Self> {
        let (&kind, rest) = data.split_first()?;
        let kind = match kind {
            1 => Kind::Setup,
            2 => Kind::NotFound,
            3 => Kind::NotExecutable,
            _ => return None,
        };
        let errno = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        let context = String::from_utf8_lossy(&rest[4..]).into_owned();
        Some(Self {
            kind,
            errno,
            context,
        })
    }
}

fn render(kind: &Kind, errno: &i32, context: &str) -> String {
    let err = nix::Error::from_raw(*errno);
    match (errno, kind) {
        (0, _) => context.to_string(),
        // As Docker words a failed exec: `exec: "/x": permission denied`.
        (_, Kind::NotFound | Kind::NotExecutable) => {
            format!("{context}: {}", err.desc().to_lowercase())
        }
        _ => format!("{context}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_codes() {
        let e = SetupError::sys("mounting proc", nix::Error::EPERM);
        assert_eq!(SetupError::decode(&e.encode()), Some(e.clone()));
        assert_eq!(e.exit_code(), 125);
        assert_eq!(
            e.to_string(),
            "mounting proc: EPERM: Operation not permitted"
        );
        let e = SetupError::sys("exec: \"/x\"", nix::Error::EACCES).with_kind(Kind::NotExecutable);
        assert_eq!(e.exit_code(), 126);
        assert_eq!(e.to_string(), "exec: \"/x\": permission denied");
        assert_eq!(SetupError::decode(&[9, 0, 0, 0, 0]), None);
    }
}
