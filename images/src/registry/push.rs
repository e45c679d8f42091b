//! `push`: the blobs the registry lacks (mounted from another repository of the same registry
//! when the image came from there, uploaded otherwise), then the manifest exactly as stored, so
//! the image keeps its digest.

use ureq::http::{Method, StatusCode};

use super::client::{header, Body, Session};
use super::{auth, short, Event, Options, Progress};
use crate::digest::sha256;
use crate::layout::{Descriptor, Manifest, MANIFEST_V1};
use crate::reference::{self, Remote};
use crate::{Error, Store};

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest in the registry.
    pub digest: String,
    /// The manifest's size.
    pub size: u64,
}

/// Pushes the image named `reference` (`REGISTRY/REPO[:TAG]`) to its registry.
pub fn push(
    store: &Store,
    opts: &Options,
    reference: &str,
    progress: &dyn Progress,
) -> Result<Pushed, Error> {
    let remote = Remote::parse(reference)?;
    let Some(name) = remote.local_name() else {
        return Err(Error::invalid(format!(
            "push {reference}: push a NAME[:TAG], not a digest"
        )));
    };
    let image = store.image(&reference::normalize(&name)?)?;
    let tag = remote.tag.clone().unwrap_or_else(|| "latest".into());
    let repo = &remote.repository;
    let manifest_bytes = store.read_blob(&image.manifest)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::invalid(format!("manifest {}: {e}", image.manifest)))?;
    let kind = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MANIFEST_V1.to_string());

    // Where the registry may already hold these blobs: repositories this image came from.
    let sources: Vec<String> = image
        .repo_digests
        .iter()
        .filter_map(|r| Remote::parse(r).ok())
        .filter(|r| r.registry == remote.registry && r.repository != *repo)
        .map(|r| r.repository)
        .collect();
    let mut scopes = vec![format!("repository:{repo}:pull,push")];
    scopes.extend(sources.iter().map(|s| format!("repository:{s}:pull")));
    let creds = auth::credentials_for(&remote.registry)?;
    let session = Session::connect(opts, &remote.registry, scopes, creds)?;

    let blobs = manifest
        .layers
        .iter()
        .chain(std::iter::once(&manifest.config));
    for blob in blobs {
        push_blob(store, &session, repo, blob, sources.first(), progress)?;
    }

    let what = format!("manifest of {}/{repo}:{tag}", remote.registry);
    let resp = session
        .send(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[],
            Body::Bytes(&manifest_bytes, &kind),
        )
        .map_err(|f| session.failed(f, &what))?;
    if resp.status() != StatusCode::CREATED {
        return Err(session.status_error(resp, &what));
    }
    let digest = sha256(&manifest_bytes);
    let mut txn = store.begin()?;
    let desc = Descriptor::new(&kind, &image.manifest, manifest_bytes.len() as u64);
    txn.record_remote(
        &desc,
        &image.id,
        None,
        &format!("{}@{digest}", remote.local_repo()),
    )?;
    txn.commit()?;
    Ok(Pushed {
        tag,
        digest,
        size: manifest_bytes.len() as u64,
    })
}

/// One blob: skipped when the registry has it, mounted from `source` when it can be, uploaded
/// in one request otherwise.
fn push_blob(
    store: &Store,
    session: &Session,
    repo: &str,
    blob: &Descriptor,
    source: Option<&String>,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let digest = &blob.digest;
    let id = short(digest);
    let what = format!("blob {digest} for {}/{repo}", session.host);
    let path = format!("/v2/{repo}/blobs/{digest}");
    let head = session
        .send(Method::HEAD, &path, &[], Body::Empty)
        .map_err(|f| session.failed(f, &what))?;
    if head.status().is_success() {
        progress.event(id, Event::Exists);
        return Ok(());
    }
    let start = match source {
        Some(from) => format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
        None => format!("/v2/{repo}/blobs/uploads/"),
    };
    let resp = session
        .send(Method::POST, &start, &[], Body::Empty)
        .map_err(|f| session.failed(f, &what))?;
    if resp.status() == StatusCode::CREATED && source.is_some() {
        progress.event(id, Event::Mounted);
        return Ok(());
    }
    if resp.status() != StatusCode::ACCEPTED {
        return Err(session.status_error(resp, &what));
    }
    let location = header(&resp, "location")
        .ok_or_else(|| Error::registry(format!("{what}: the registry gave no upload location")))?;
    let sep = if location.contains('?') { '&' } else { '?' };
    progress.event(id, Event::Started { size: blob.size });
    let file = store.blob_path(digest)?;
    let resp = session
        .send(
            Method::PUT,
            &format!("{location}{sep}digest={digest}"),
            &[],
            Body::File(&file),
        )
        .map_err(|f| session.failed(f, &what))?;
    if resp.status() != StatusCode::CREATED {
        return Err(session.status_error(resp, &what));
    }
    progress.event(id, Event::Bytes(blob.size));
    progress.event(id, Event::Done);
    Ok(())
}
