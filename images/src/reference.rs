//! Image names: `NAME[:TAG]`, normalised the way Docker shows them, and registry references.

use crate::digest::hex_of;
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
    /// Parses `[REGISTRY/]NAME[:TAG][@sha256:HEX]` by the grammar of Docker's distribution
    /// reference package. Checked by hand: oci-spec's parser compiles a regular expression of
    /// Unicode classes that costs some 50 ms of CPU, a tenth of a whole pull.
    pub fn parse(reference: &str) -> Result<Remote, Error> {
        let bad = |why: &str| Error::invalid(format!("invalid reference {reference:?}: {why}"));
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, d)) if hex_of(d).is_some() => (rest, Some(d.to_string())),
            Some(_) => return Err(bad("only sha256 digests are supported")),
            None => (reference, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(bad(
                    "tags are 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
                ));
            }
        }
        // A first component with a '.' or a ':', or `localhost`, names a registry.
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                if !is_registry(first) {
                    return Err(bad("the registry is not a host name with an optional port"));
                }
                (first, path)
            }
            _ => ("docker.io", name),
        };
        if path.is_empty() || path.len() > 255 || !path.split('/').all(is_path_component) {
            return Err(bad(
                "names are lowercase letters and digits, separated by '/', '.', '_', '__' or '-'",
            ));
        }
        let registry = if registry == "index.docker.io" {
            "docker.io"
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(Remote {
            registry: registry.to_string(),
            repository,
            // A digest decides; a tag beside it is only decoration (as in Docker).
            tag: match (&digest, tag) {
                (Some(_), _) => None,
                (None, t) => Some(t.unwrap_or("latest").to_string()),
            },
            digest,
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

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= 128
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// Host components (letters, digits, inner '-') joined by '.', then an optional `:PORT`.
fn is_registry(registry: &str) -> bool {
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Runs of `[a-z0-9]` separated by exactly one of `.`, `_`, `__` or any number of `-`.
fn is_path_component(c: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    alnum(first)
        && alnum(last)
        && bytes
            .split(alnum)
            .all(|sep| matches!(sep, b"" | b"." | b"_" | b"__") || sep.iter().all(|&b| b == b'-'))
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
        let r = Remote::parse("index.docker.io/busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let r = Remote::parse(&format!("reg.example:443/a-b/c__d.e---f:V_1.0-x@{d}")).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("reg.example:443", "a-b/c__d.e---f")
        );
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        let long_tag = format!("a:{}", "t".repeat(129));
        for bad in [
            "",
            "a:",
            "a:-x",
            ".a",
            "a.",
            "a..b",
            "a___b",
            "a//b",
            "a/",
            "/a",
            "a/B",
            "a b",
            "localhost:x/a",
            "-reg.io/a",
            "a@sha256:00",
            "a@md5:00",
            &long_tag,
        ] {
            assert!(Remote::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
