//! What can go wrong while building a Spec: a flag or an image setting that cannot be honoured
//! (checked in the parent, before anything exists), or the OCI builder refusing a value.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text says what was given and what is expected.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Build(#[from] oci_spec::OciSpecError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
