//! sha256 digests, computed while data streams past.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest, checked so it is safe as a file name.
pub fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// The chain ID of each layer: the first is its diff_id, each next one
/// `sha256(parent_chain + " " + diff_id)`. It names an unpacked layer *with* its parents.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => sha256(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A reader that hashes (unless made with [`HashReader::counting`]) and counts what passes
/// through it.
pub struct HashReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
        }
    }

    /// Counts only, for a stream whose digest is known otherwise; `finish` gives no digest.
    pub fn counting(inner: R) -> Self {
        Self {
            inner,
            hasher: None,
            count: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it).
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest (`sha256:<hex>`; empty when only counting), the byte count and the inner reader.
    pub fn finish(self) -> (String, u64, R) {
        let digest = self
            .hasher
            .map(|h| format!("sha256:{}", hex::encode(h.finalize())))
            .unwrap_or_default();
        (digest, self.count, self.inner)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn hex_of_rejects_non_digests() {
        assert!(hex_of(&sha256(b"x")).is_some());
        assert!(hex_of("sha256:../../etc").is_none());
        assert!(hex_of("sha512:00").is_none());
    }
}
