//! minibox's error: each library module's own error, rolled into one, and the exit code each
//! kind means ([`Error::exit_code`]). A front end keeps what it shows users (Docker's codes:
//! 125 when the runtime failed, 126 and 127 when the command cannot be run) to this one place.
//!
//! The library uses no `anyhow`: that is for the binaries, which add what they were doing.

use crate::container::error::SetupError;
use crate::container::{
    cgroups, health, image, lifecycle, log, seccomp, security_opt, spec, state,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container's set-up (the executor), with its kind: 125, 126 or 127.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::Error),
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Log(#[from] log::Error),
    #[error(transparent)]
    Paths(#[from] crate::paths::Error),
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    #[error(transparent)]
    Cgroup(#[from] cgroups::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Spec(#[from] spec::Error),
    #[error(transparent)]
    Health(#[from] health::Error),
    #[error(transparent)]
    Seccomp(#[from] seccomp::Error),
    #[error(transparent)]
    SecurityOpt(#[from] security_opt::Error),
}

impl Error {
    /// The exit code Docker users expect for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Setup(e) => e.exit_code(),
            _ => crate::container::error::EXIT_RUNTIME,
        }
    }
}

/// The exit code for an error anywhere in a chain of causes: the set-up's own when a set-up
/// error is among them, else the runtime's (125).
pub fn exit_code(err: &(dyn std::error::Error + 'static)) -> u8 {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(e) = e.downcast_ref::<Error>() {
            return e.exit_code();
        }
        if let Some(e) = e.downcast_ref::<SetupError>() {
            return e.exit_code();
        }
        cause = e.source();
    }
    crate::container::error::EXIT_RUNTIME
}

/// An error and its causes in the one line users see: `what failed: why`. A cause that the
/// message before it already ends with (an error that shows its source) is not repeated.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::error::Kind;

    #[test]
    fn kinds_map_to_dockers_codes() {
        let setup = SetupError::new("exec").with_kind(Kind::NotFound);
        assert_eq!(Error::from(setup.clone()).exit_code(), 127);
        assert_eq!(exit_code(&setup), 127);
        assert_eq!(exit_code(&Error::from(lifecycle::Error::Running)), 125);
        assert_eq!(exit_code(&state::Error::NoContainer), 125);
    }

    #[test]
    fn one_line_names_each_cause_once() {
        let denied = || std::io::Error::from_raw_os_error(libc::EACCES);
        // The network library's errors show their source; the runtime's name only their step.
        let e = lifecycle::Error::Network {
            id: "0123456789abcdef".into(),
            source: Box::new(crate::network::Error::Net(minibox_netns::Error::Io {
                what: "writing the record".into(),
                source: denied(),
            })),
        };
        assert_eq!(
            one_line(&e),
            "removing the network of 0123456789ab: writing the record: \
             Permission denied (os error 13)"
        );
        let e = crate::network::Error::Io {
            what: "creating /run/netns".into(),
            source: denied(),
        };
        assert_eq!(
            one_line(&e),
            "creating /run/netns: Permission denied (os error 13)"
        );
    }
}
