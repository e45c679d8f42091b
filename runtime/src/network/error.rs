//! What can go wrong on the runtime's side of networking: the network library's own errors,
//! flags that do not make sense, and the named netns. Each reads `what failed: why`.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Net(#[from] minibox_netns::Error),
    /// A flag or an image setting that cannot be honoured; the text says what is expected.
    #[error("{0}")]
    Invalid(String),
    #[error("the image's EXPOSE")]
    Exposed(#[source] minibox_netns::Error),
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to network {network}")]
    Connect {
        network: String,
        #[source]
        source: Box<Error>,
    },
    #[error("disconnecting the network")]
    Disconnect(#[source] Box<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
