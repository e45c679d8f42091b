//! Image names: `NAME[:TAG]`, normalised the way Docker shows them, and registry references.

use oci_spec::distribution::Reference;

use crate::Error;

/// A reference to an image in a registry, by Docker's rules: `busybox` is
/// `docker.io/library/busybox:latest`, `localhost:5000/x@sha256:...` names a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `docker.io`, `localhost:5000`...
    pub registry: String,
    /// `library/busybox`, `x`...
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Remote {
    pub fn parse(reference: &str) -> Result<Remote, Error> {
        let parsed = Reference::try_from(reference)
            .map_err(|e| Error::invalid(format!("invalid reference {reference:?}: {e}")))?;
        if parsed
            .digest()
            .is_some_and(|d| crate::digest::hex_of(d).is_none())
        {
            return Err(Error::invalid(format!(
                "invalid reference {reference:?}: only sha256 digests are supported"
            )));
        }
        Ok(Remote {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            // A digest decides; a tag beside it is only decoration (as in Docker).
            tag: parsed
                .tag()
                .filter(|_| parsed.digest().is_none())
                .map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// The repository as images are listed: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn local_repo(&self) -> String {
        if self.registry == "docker.io" {
            let short = self.repository.strip_prefix("library/");
            short.unwrap_or(&self.repository).to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The local name (`REPO:TAG`) a pull by tag gives; none for a pull by digest.
    pub fn local_name(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.local_repo()))
    }

    /// The tag or digest, as the registry's manifest URL takes it.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

/// `NAME@sha256:...` in the form RepoDigests list it (`busybox@sha256:..`), if it is one.
pub fn repo_digest(reference: &str) -> Option<String> {
    let remote = Remote::parse(reference).ok()?;
    let digest = remote.digest.as_deref()?;
    Some(format!("{}@{digest}", remote.local_repo()))
}

/// `busybox` → `busybox:latest`; `docker.io/library/busybox:1` → `busybox:1`.
pub fn normalize(reference: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::invalid(format!("invalid reference {reference:?}: {why}"));
    if reference.contains('@') {
        return Err(bad("digest references are not supported"));
    }
    let (repo, tag) = match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    };
    let repo = repo
        .strip_prefix("docker.io/library/")
        .or_else(|| repo.strip_prefix("docker.io/"))
        .unwrap_or(repo);
    if repo.is_empty() {
        return Err(bad("empty name"));
    }
    if !repo
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
    {
        return Err(bad(
            "names may contain lowercase letters, digits, '.', '_', '-' and '/'",
        ));
    }
    if tag.is_empty()
        || tag.len() > 128
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad("tags may contain letters, digits, '.', '_' and '-'"));
    }
    Ok(format!("{repo}:{tag}"))
}

/// Splits a normalised name into repository and tag.
pub fn split(name: &str) -> (&str, &str) {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    }
}

/// The hex prefix a reference names if it looks like an image id (`sha256:` optional).
pub fn id_prefix(reference: &str) -> Option<&str> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    (!hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_like_docker() {
        assert_eq!(normalize("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalize("docker.io/library/busybox:x").unwrap(),
            "busybox:x"
        );
        assert_eq!(
            normalize("localhost:5000/a/b").unwrap(),
            "localhost:5000/a/b:latest"
        );
        assert!(normalize("Busybox").is_err());
        assert!(normalize("a@sha256:00").is_err());
        assert_eq!(split("localhost:5000/a:v1"), ("localhost:5000/a", "v1"));
    }

    #[test]
    fn remote_references_follow_dockers_rules() {
        let r = Remote::parse("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        assert_eq!(r.local_name().as_deref(), Some("busybox:latest"));
        let r = Remote::parse("user/app:1").unwrap();
        assert_eq!(r.repository, "user/app");
        assert_eq!(r.local_name().as_deref(), Some("user/app:1"));
        let r = Remote::parse("localhost:5000/a/b").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.local_name().as_deref(), Some("localhost:5000/a/b:latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Remote::parse(&format!("127.0.0.1:5000/x:v1@{d}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.reference()), (None, d.as_str()));
        assert_eq!(
            repo_digest(&format!("busybox@{d}")),
            Some(format!("busybox@{d}"))
        );
        assert!(Remote::parse("Busybox").is_err());
    }
}
