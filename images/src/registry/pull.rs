//! `pull`: a reference → its manifest (through an index for the wanted platform) → the config
//! and the layers the store lacks, downloaded a few at a time into a staging area, each
//! verified and unpacked as it streams → one short commit under the store's lock.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use oci_spec::image::ImageConfiguration;
use serde_json::Value;
use ureq::http::Method;

use super::client::{transient_io, Body, Failed, Session};
use super::{auth, short, Event, Options, Progress};
use crate::digest::{self, sha256};
use crate::layout::{
    host_arch, Descriptor, Index, Manifest, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, INDEX_V1,
    MANIFEST_V1,
};
use crate::reference::Remote;
use crate::staging::Staging;
use crate::store::{chain_of, stream_layer};
use crate::{Error, Image, Store};

/// Layers downloaded at once: enough to fill a link, few enough not to thrash two cores.
const PARALLEL: usize = 3;
/// Attempts of one layer whose connection drops mid-stream.
const LAYER_ATTEMPTS: u32 = 5;
/// Manifests and configs are small; anything bigger is refused.
const SMALL_LIMIT: u64 = 8 << 20;

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    /// The local name (`busybox:latest`); none for a pull by digest.
    pub name: Option<String>,
    /// `REPO@sha256:...`: what the reference resolved to in the registry.
    pub repo_digest: String,
    pub image: Image,
    /// Nothing changed: the store had this image under this name already.
    pub up_to_date: bool,
}

/// The platform asked for: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    os: String,
    arch: String,
    variant: Option<String>,
    /// Given by the user (checked against a single-platform image's config too).
    explicit: bool,
}

impl Wanted {
    fn parse(platform: Option<&str>) -> Result<Wanted, Error> {
        let Some(p) = platform else {
            return Ok(Wanted {
                os: "linux".into(),
                arch: host_arch().into(),
                variant: None,
                explicit: false,
            });
        };
        let parts: Vec<&str> = p.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Wanted {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
                explicit: true,
            }),
            _ => Err(Error::invalid(format!(
                "invalid platform {p:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64"
            ))),
        }
    }

    fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.arch == arch
            && (self.variant.is_none() || self.variant.as_deref() == variant)
    }
}

fn show(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

/// Pulls `reference` into `store` for `platform` (default: this machine's).
pub fn pull(
    store: &Store,
    opts: &Options,
    reference: &str,
    platform: Option<&str>,
    progress: &dyn Progress,
) -> Result<Pulled, Error> {
    loop {
        if let Some(pulled) = pull_once(store, opts, reference, platform, progress)? {
            return Ok(pulled);
        }
    }
}

/// One try; `None` when a layer the store had at the start was removed before the commit.
fn pull_once(
    store: &Store,
    opts: &Options,
    reference: &str,
    platform: Option<&str>,
    progress: &dyn Progress,
) -> Result<Option<Pulled>, Error> {
    let remote = Remote::parse(reference)?;
    let wanted = Wanted::parse(platform)?;
    let repo = &remote.repository;
    let creds = auth::credentials_for(&remote.registry)?;
    let session = Session::connect(
        opts,
        &remote.registry,
        vec![format!("repository:{repo}:pull")],
        creds,
    )?;
    let shown = format!("{}/{repo}:{}", remote.registry, remote.reference())
        .replacen(":sha256:", "@sha256:", 1);

    // The manifest the reference names, and the one for the platform when that is an index.
    let (top, kind) = fetch_manifest(&session, repo, remote.reference(), &shown)?;
    let top_digest = sha256(&top);
    if let Some(d) = &remote.digest {
        if *d != top_digest {
            return Err(mismatch(&format!("manifest of {shown}"), d, &top_digest));
        }
    }
    let (manifest_bytes, manifest_kind) = if is_index(&kind) {
        let index: Index = parse(&top, &format!("index of {shown}"))?;
        let desc = select(&index, &wanted, &shown)?;
        let (bytes, kind) = fetch_manifest(&session, repo, &desc.digest, &shown)?;
        let got = sha256(&bytes);
        if got != desc.digest {
            return Err(mismatch(
                &format!("manifest of {shown}"),
                &desc.digest,
                &got,
            ));
        }
        (bytes, kind)
    } else {
        (top, kind)
    };
    let manifest: Manifest = parse(&manifest_bytes, &format!("manifest of {shown}"))?;
    let manifest_desc = Descriptor::new(
        &kind_or(&manifest_kind, MANIFEST_V1),
        &sha256(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    let repo_digest = format!("{}@{top_digest}", remote.local_repo());
    let name = remote.local_name();

    if let Some(image) = store.image_by_manifest(&manifest_desc.digest)? {
        let up_to_date = name.as_ref().is_none_or(|n| image.names.contains(n))
            && image.repo_digests.contains(&repo_digest);
        if !up_to_date {
            let mut txn = store.begin()?;
            txn.record_remote(&manifest_desc, &image.id, name.as_deref(), &repo_digest)?;
            txn.commit()?;
        }
        return Ok(Some(Pulled {
            image: store.image(&image.id)?,
            name,
            repo_digest,
            up_to_date,
        }));
    }

    // The config: small, verified, and it must describe the layers the manifest lists.
    let config_id = &manifest.config.digest;
    let config_bytes = fetch_small(&session, repo, config_id, &format!("config of {shown}"))?;
    let config: ImageConfiguration = parse(&config_bytes, &format!("config of {shown}"))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::invalid(format!(
            "{shown}: the config lists {} layers, the manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    if wanted.explicit && !wanted.matches(&os, &arch, wanted.variant.as_deref()) {
        return Err(Error::registry(format!(
            "{shown} is for {os}/{arch}, not {}: it has no other platform",
            show(&wanted.os, &wanted.arch, wanted.variant.as_deref())
        )));
    }

    // The layers the store lacks, into a staging area, without the store's lock.
    let staging = store.staging()?;
    let chains = digest::chain_ids(&diff_ids);
    let mut jobs = VecDeque::new();
    for (n, ((layer, diff_id), chain)) in manifest
        .layers
        .iter()
        .zip(&diff_ids)
        .zip(&chains)
        .enumerate()
    {
        let present = store.blob_path(&layer.digest)?.exists()
            && store.layer_dir(chain)?.join("meta.json").exists();
        if present {
            progress.event(short(&layer.digest), Event::Exists);
        } else {
            progress.event(short(&layer.digest), Event::Waiting);
            jobs.push_back(Job {
                n,
                layer,
                diff_id,
                parent: n.checked_sub(1).map(|p| chains[p].as_str()),
            });
        }
    }
    let fetched: Vec<(usize, &Descriptor)> = jobs.iter().map(|j| (j.n, j.layer)).collect();
    download(&session, repo, &staging, jobs, progress)?;

    // The commit: move everything into place, then index.json.
    let mut txn = store.begin()?;
    // What was here when the pull began may have been removed since (rmi): fetch it then.
    let kept = |n: usize, l: &Descriptor, chain: &str| {
        fetched.iter().any(|(f, _)| *f == n) || txn.has_blob(&l.digest) && txn.has_layer(chain)
    };
    let gone = (manifest.layers.iter().zip(&chains).enumerate()).any(|(n, (l, c))| !kept(n, l, c));
    if gone {
        return Ok(None);
    }
    for (n, layer) in fetched {
        txn.place_layer(&staging.layer(&chains[n]), &chains[n])?;
        txn.place_blob(&staging.blob(n, &layer.digest), &layer.digest)?;
    }
    txn.put_blob(&config_bytes)?;
    txn.put_blob(&manifest_bytes)?;
    txn.record_remote(&manifest_desc, config_id, name.as_deref(), &repo_digest)?;
    txn.commit()?;
    drop(staging);
    Ok(Some(Pulled {
        image: store.image(config_id)?,
        name,
        repo_digest,
        up_to_date: false,
    }))
}

struct Job<'a> {
    /// The layer's position in the manifest.
    n: usize,
    layer: &'a Descriptor,
    diff_id: &'a str,
    parent: Option<&'a str>,
}

/// Downloads the jobs, [`PARALLEL`] at a time; the first failure stops the others.
fn download(
    session: &Session,
    repo: &str,
    staging: &Staging,
    jobs: VecDeque<Job<'_>>,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let queue = Mutex::new(jobs);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some(job) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                if let Err(e) = fetch_layer(session, repo, staging, &job, progress, &stop) {
                    if !stop.swap(true, Ordering::Relaxed) {
                        *failure.lock().unwrap() = Some(e);
                    }
                    return;
                }
            });
        }
    });
    match failure.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One layer: streamed, verified and unpacked; started again when the connection drops.
fn fetch_layer(
    session: &Session,
    repo: &str,
    staging: &Staging,
    job: &Job<'_>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let digest = &job.layer.digest;
    let id = short(digest);
    let what = format!("layer {digest} of {}/{repo}", session.host);
    let chain = chain_of(job.parent, job.diff_id);
    let (blob, dir) = (staging.blob(job.n, digest), staging.layer(&chain));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = session
            .send(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &[],
                Body::Empty,
            )
            .map_err(|f| session.failed(f, &what))?;
        if !resp.status().is_success() {
            return Err(session.status_error(resp, &what));
        }
        progress.event(
            id,
            Event::Started {
                size: job.layer.size,
            },
        );
        let mut net = NetReader {
            inner: resp.into_body().into_reader(),
            remaining: job.layer.size,
            size: job.layer.size,
            dropped: None,
            stop,
            progress,
            id,
        };
        let result = stream_layer(
            &mut net,
            &what,
            &blob,
            Some(&dir),
            Some(digest),
            Some(job.diff_id),
        );
        match (result, net.dropped) {
            (Ok(_), _) => {
                progress.event(id, Event::Done);
                return Ok(());
            }
            (Err(_), Some(why)) if attempt < LAYER_ATTEMPTS && !stop.load(Ordering::Relaxed) => {
                tracing::debug!("{what}: {why}; starting it again");
                progress.event(id, Event::Retrying);
                let _ = std::fs::remove_file(&blob);
                let _ = std::fs::remove_dir_all(&dir);
                std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
            }
            (Err(_), Some(why)) => {
                return Err(Error::registry(format!(
                    "{what}: the download failed {attempt} times: {why}"
                )))
            }
            (Err(e), None) => return Err(e),
        }
    }
}

/// The body of a blob download: stops at the size the manifest gives, reports progress, and
/// records a connection that failed (so that the layer is fetched again, not reported corrupt).
struct NetReader<'a, R> {
    inner: R,
    remaining: u64,
    size: u64,
    dropped: Option<String>,
    stop: &'a AtomicBool,
    progress: &'a dyn Progress,
    id: &'a str,
}

impl<R: Read> Read for NetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("another layer failed"));
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        match self.inner.read(&mut buf[..max]) {
            Ok(0) => {
                let why = format!(
                    "the connection closed after {} of {} bytes",
                    self.size - self.remaining,
                    self.size
                );
                self.dropped = Some(why.clone());
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, why))
            }
            Ok(n) => {
                self.remaining -= n as u64;
                self.progress.event(self.id, Event::Bytes(n as u64));
                Ok(n)
            }
            Err(e) => {
                if transient_io(&e) || e.kind() == io::ErrorKind::Other {
                    self.dropped = Some(e.to_string());
                }
                Err(e)
            }
        }
    }
}

/// GETs a manifest by tag or digest: its bytes and media type.
fn fetch_manifest(
    session: &Session,
    repo: &str,
    reference: &str,
    shown: &str,
) -> Result<(Vec<u8>, String), Error> {
    let accept = [
        INDEX_V1,
        DOCKER_MANIFEST_LIST,
        MANIFEST_V1,
        DOCKER_MANIFEST_V2,
    ]
    .join(", ");
    let what = if reference.starts_with("sha256:") {
        format!("manifest {reference} of {shown}")
    } else {
        format!("manifest of {shown} (tag {reference})")
    };
    let mut resp = session
        .send(
            Method::GET,
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", &accept)],
            Body::Empty,
        )
        .map_err(|f| session.failed(f, &what))?;
    if resp.status() == ureq::http::StatusCode::NOT_FOUND {
        return Err(not_found(session, repo, reference));
    }
    if !resp.status().is_success() {
        return Err(session.status_error(resp, &what));
    }
    let header_kind = super::client::header(&resp, "content-type").unwrap_or_default();
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(SMALL_LIMIT)
        .read_to_vec()
        .map_err(|e| session.failed(Failed::Transport(e), &what))?;
    let body: Value = parse(&bytes, &what)?;
    let kind = body["mediaType"]
        .as_str()
        .map(str::to_string)
        .unwrap_or(header_kind);
    if body["schemaVersion"] == 1
        || kind.starts_with("application/vnd.docker.distribution.manifest.v1")
    {
        return Err(Error::registry(format!(
            "{what}: schema 1 manifests are not supported (push the image again with a current tool)"
        )));
    }
    // Without a media type, the shape tells.
    let kind = if kind.is_empty() || kind.contains("json") && !kind.contains("vnd.") {
        if body.get("manifests").is_some() {
            INDEX_V1.to_string()
        } else {
            MANIFEST_V1.to_string()
        }
    } else {
        kind
    };
    Ok((bytes, kind))
}

/// Which part is missing: the repository, or the tag (or digest) in it.
fn not_found(session: &Session, repo: &str, reference: &str) -> Error {
    let tags = session.send(
        Method::GET,
        &format!("/v2/{repo}/tags/list"),
        &[],
        Body::Empty,
    );
    let host = &session.host;
    match tags {
        Ok(resp) if resp.status().is_success() => {
            let part = if reference.starts_with("sha256:") {
                "manifest"
            } else {
                "tag"
            };
            Error::registry(format!(
                "not found: repository {host}/{repo} has no {part} {reference}"
            ))
        }
        _ => Error::registry(format!("not found: no repository {repo} at {host}")),
    }
}

fn is_index(kind: &str) -> bool {
    kind == INDEX_V1 || kind == DOCKER_MANIFEST_LIST
}

fn kind_or(kind: &str, default: &str) -> String {
    if kind.is_empty() {
        default.to_string()
    } else {
        kind.to_string()
    }
}

/// The index entry for the wanted platform, or an error listing the platforms there are.
fn select<'a>(index: &'a Index, wanted: &Wanted, shown: &str) -> Result<&'a Descriptor, Error> {
    let platform = |d: &Descriptor| d.platform.clone();
    if let Some(d) = index.manifests.iter().find(|d| {
        platform(d).is_some_and(|p| wanted.matches(&p.os, &p.architecture, p.variant.as_deref()))
    }) {
        return Ok(d);
    }
    let have: Vec<String> = index
        .manifests
        .iter()
        .filter_map(platform)
        .filter(|p| p.os != "unknown")
        .map(|p| show(&p.os, &p.architecture, p.variant.as_deref()))
        .collect();
    Err(Error::registry(format!(
        "{shown} has no image for {}: it has {}",
        show(&wanted.os, &wanted.arch, wanted.variant.as_deref()),
        if have.is_empty() {
            "none with a platform".to_string()
        } else {
            have.join(", ")
        }
    )))
}

/// GETs a small blob (a config) and checks its digest.
fn fetch_small(session: &Session, repo: &str, digest: &str, what: &str) -> Result<Vec<u8>, Error> {
    let mut resp = session
        .send(
            Method::GET,
            &format!("/v2/{repo}/blobs/{digest}"),
            &[],
            Body::Empty,
        )
        .map_err(|f| session.failed(f, what))?;
    if !resp.status().is_success() {
        return Err(session.status_error(resp, what));
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(SMALL_LIMIT)
        .read_to_vec()
        .map_err(|e| session.failed(Failed::Transport(e), what))?;
    let got = sha256(&bytes);
    if got != digest {
        return Err(mismatch(what, digest, &got));
    }
    Ok(bytes)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("{what}: {e}")))
}

fn mismatch(what: &str, expected: &str, actual: &str) -> Error {
    Error::DigestMismatch {
        what: what.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}
