//! Image names: `NAME[:TAG]`, normalised the way Docker shows them.

use crate::Error;

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
}
