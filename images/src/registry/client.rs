//! One registry, as a session: the transport (HTTPS with the right roots, or plain HTTP where
//! allowed), authentication (Bearer tokens or basic), retries, and errors users can act on.

use std::fs::{self, File};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use oci_spec::distribution::ErrorResponse;
use ureq::http::{self, Response, StatusCode};
use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::auth::Credentials;
use super::Options;
use crate::Error;

/// Attempts of one request when the registry fails in a way that may pass (5xx, a dropped
/// connection); the waits between them double from [`FIRST_WAIT`].
const ATTEMPTS: u32 = 6;
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// Where Debian (and most distributions) keep the system's trusted roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What a request sends.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8], &'a str),
    /// A file, sent with its length (reopened on each attempt).
    File(&'a Path),
}

pub(crate) struct Session {
    agent: ureq::Agent,
    /// The registry as the user names it: `docker.io`, `localhost:5000`.
    pub host: String,
    /// `https://HOST` or `http://HOST`.
    base: String,
    creds: Option<Credentials>,
    /// What tokens are asked for (`repository:NAME:pull`...).
    scopes: Vec<String>,
    /// The `Authorization` header value in use.
    auth: Mutex<Option<String>>,
    /// The CA files found for this registry, named in TLS errors.
    cas: Vec<String>,
}

impl Session {
    /// Reaches the registry `host` (checking `/v2/`) and authenticates for `scopes`.
    pub fn connect(
        opts: &Options,
        host: &str,
        scopes: Vec<String>,
        creds: Option<Credentials>,
    ) -> Result<Session, Error> {
        // Docker Hub's name and its registry's address differ.
        let endpoint = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let (tls, cas) = tls_config(opts, host)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("minibox/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_idle_connections_per_host(8)
            .build()
            .new_agent();
        let mut session = Session {
            agent,
            host: host.to_string(),
            base: format!("https://{endpoint}"),
            creds,
            scopes,
            auth: Mutex::new(None),
            cas,
        };
        match session.ping() {
            Err(Failed::Transport(e)) if !connection_failed(&e) && may_use_http(opts, host) => {
                // An insecure registry: HTTPS did not work out, plain HTTP may.
                let https = session.transport_error(&e);
                session.base = format!("http://{endpoint}");
                match session.ping() {
                    Ok(()) => Ok(session),
                    Err(Failed::Transport(_)) => Err(https),
                    Err(Failed::Status(resp)) if resp.status() == StatusCode::BAD_REQUEST => {
                        Err(https)
                    }
                    Err(f) => Err(session.failed(f, "logging in")),
                }
            }
            Ok(()) => Ok(session),
            Err(f) => Err(session.failed(f, "logging in")),
        }
    }

    /// `GET /v2/`: authenticates as the registry asks, and checks that it worked.
    fn ping(&self) -> Result<(), Failed> {
        let resp = self.send(http::Method::GET, "/v2/", &[], Body::Empty)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Failed::Status(Box::new(resp)))
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request, authenticating when challenged and retrying what may pass. Returns the
    /// response whatever its status; only transport failures are errors here.
    pub fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>, Failed> {
        let url = self.url(path);
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            let auth = self.auth.lock().unwrap().clone();
            let result = self.send_once(&method, &url, auth.as_deref(), headers, &body);
            attempt += 1;
            let retry = match &result {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    authenticated = true;
                    let challenge = header(resp, "www-authenticate").unwrap_or_default();
                    self.authenticate(&challenge)?;
                    continue;
                }
                Ok(resp) => resp.status().is_server_error(),
                Err(e) => transient(e),
            };
            if !retry || attempt >= ATTEMPTS {
                return result.map_err(Failed::Transport);
            }
            tracing::debug!("{method} {url}: attempt {attempt} failed, retrying");
            std::thread::sleep(FIRST_WAIT * 2u32.pow(attempt - 1));
        }
    }

    fn send_once(
        &self,
        method: &http::Method,
        url: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: &Body<'_>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut req = http::Request::builder().method(method.clone()).uri(url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match body {
            Body::Empty => self.agent.run(req.body(())?),
            Body::Bytes(bytes, kind) => self
                .agent
                .run(req.header("Content-Type", *kind).body(*bytes)?),
            Body::File(path) => {
                let file = File::open(path)?;
                let len = file.metadata()?.len().to_string();
                self.agent.run(
                    req.header("Content-Type", "application/octet-stream")
                        .header("Content-Length", len)
                        .body(file)?,
                )
            }
        }
    }

    /// Answers a `WWW-Authenticate` challenge: basic credentials, or a token from the realm.
    fn authenticate(&self, challenge: &str) -> Result<(), Failed> {
        let (scheme, params) = parse_challenge(challenge);
        let basic = self.creds.as_ref().map(|c| {
            let pair = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let value = if scheme.eq_ignore_ascii_case("bearer") {
            let realm = params
                .iter()
                .find(|(k, _)| k == "realm")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    Failed::Error(Error::registry(format!(
                        "{}: the registry asks for a token but names no realm",
                        self.host
                    )))
                })?;
            let mut req = self.agent.get(&realm);
            if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                req = req.query("service", service);
            }
            for scope in &self.scopes {
                req = req.query("scope", scope);
            }
            if let Some(b) = &basic {
                req = req.header("Authorization", b);
            }
            let mut resp = req.call().map_err(Failed::Transport)?;
            if !resp.status().is_success() {
                return Err(Failed::Status(Box::new(resp)));
            }
            let answer: serde_json::Value = resp
                .body_mut()
                .read_to_vec()
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                .map_err(|e| {
                    Failed::Error(Error::registry(format!(
                        "{}: token from {realm}: {e}",
                        self.host
                    )))
                })?;
            let token = answer
                .get("token")
                .or_else(|| answer.get("access_token"))
                .and_then(|t| t.as_str())
                .ok_or_else(|| {
                    Failed::Error(Error::registry(format!(
                        "{}: the token server {realm} answered without a token",
                        self.host
                    )))
                })?;
            format!("Bearer {token}")
        } else if scheme.eq_ignore_ascii_case("basic") {
            basic.ok_or_else(|| Failed::Error(self.unauthorized("authentication required")))?
        } else {
            return Err(Failed::Error(Error::registry(format!(
                "{}: unsupported authentication scheme {scheme:?}",
                self.host
            ))));
        };
        *self.auth.lock().unwrap() = Some(value);
        Ok(())
    }

    fn unauthorized(&self, why: &str) -> Error {
        let hint = match &self.creds {
            None => format!("log in with `minibox login {}`", self.host),
            Some(c) => format!(
                "check the password of {} (`minibox login {}`)",
                c.username, self.host
            ),
        };
        Error::registry(format!("{}: unauthorized: {why}: {hint}", self.host))
    }

    /// The error for a failed request about `what` (`manifest of x:1`, `blob sha256:..`).
    pub fn failed(&self, failure: Failed, what: &str) -> Error {
        match failure {
            Failed::Error(e) => e,
            Failed::Transport(e) => self.transport_error(&e),
            Failed::Status(resp) => self.status_error(*resp, what),
        }
    }

    /// The error for a response with an unexpected status.
    pub fn status_error(&self, mut resp: Response<ureq::Body>, what: &str) -> Error {
        let status = resp.status();
        let retry_after = header(&resp, "retry-after");
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = registry_message(&text);
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                self.unauthorized(message.as_deref().unwrap_or("access denied"))
            }
            StatusCode::NOT_FOUND => Error::registry(format!(
                "{what}: not found at {}{}",
                self.host,
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            )),
            StatusCode::TOO_MANY_REQUESTS => Error::registry(format!(
                "{what}: rate limited by {}: retry {}",
                self.host,
                match retry_after {
                    Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => format!("in {t} s"),
                    Some(t) => format!("after {t}"),
                    None => "later".to_string(),
                }
            )),
            _ => Error::registry(format!(
                "{what}: {} answered {status}{}",
                self.host,
                message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
        }
    }

    pub fn transport_error(&self, e: &ureq::Error) -> Error {
        let text = error_chain(e);
        if text.contains("certificate") || text.contains("Certificate") {
            let trusted = if self.cas.is_empty() {
                "the system's roots (no certs.d CA found for it)".to_string()
            } else {
                format!("the system's roots and {}", self.cas.join(", "))
            };
            return Error::registry(format!(
                "{}: TLS: the registry's certificate is not trusted ({text}); trusted: {trusted}: \
                 put its CA in /etc/docker/certs.d/{}/ca.crt",
                self.host, self.host
            ));
        }
        Error::registry(format!("{}: cannot reach the registry: {text}", self.host))
    }
}

/// Why a request did not give the expected answer.
pub(crate) enum Failed {
    /// The registry answered, with this unexpected status.
    Status(Box<Response<ureq::Body>>),
    /// No answer: the connection or TLS failed.
    Transport(ureq::Error),
    Error(Error),
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Error(e)
    }
}

pub(crate) fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The messages of a registry's error body (`{"errors":[{"code":..,"message":..}]}`).
fn registry_message(body: &str) -> Option<String> {
    let parsed: ErrorResponse = serde_json::from_str(body).ok()?;
    let messages: Vec<String> = parsed
        .detail()
        .iter()
        .map(|e| e.message().clone().unwrap_or_else(|| e.code().to_string()))
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

fn error_chain(e: &ureq::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// Whether a failure may pass by itself: a dropped or refused connection, a timeout.
pub(crate) fn transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => transient_io(io),
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

pub(crate) fn transient_io(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionRefused
            | ConnectionAborted
            | BrokenPipe
            | UnexpectedEof
            | TimedOut
            | NotConnected
    )
}

/// No TCP connection at all: nothing listens (HTTP would fail the same way).
fn connection_failed(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::ConnectionFailed | ureq::Error::HostNotFound)
        || matches!(e, ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused)
}

/// Plain HTTP is allowed for loopback registries and those the user named insecure.
fn may_use_http(opts: &Options, host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || opts.insecure.iter().any(|i| i == host || i == name)
}

/// The system's roots plus the registry's own CAs (`certs.d/HOST/*.crt`), and a client
/// certificate (`*.cert` with its `*.key`) when there is one, as Docker reads them.
fn tls_config(opts: &Options, host: &str) -> Result<(TlsConfig, Vec<String>), Error> {
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    if let Ok(pem) = fs::read(SYSTEM_ROOTS) {
        roots.extend(certificates(&pem));
    }
    let mut cas = Vec::new();
    let mut client = None;
    for dir in &opts.certs_dirs {
        let dir = dir.join(host);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let read = || fs::read(&path).map_err(|e| Error::path(&path, e));
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let found: Vec<_> = certificates(&read()?).collect();
                    if found.is_empty() {
                        return Err(Error::invalid(format!(
                            "{}: no PEM certificate in it",
                            path.display()
                        )));
                    }
                    roots.extend(found);
                    cas.push(path.display().to_string());
                }
                Some("cert") if client.is_none() => {
                    let key_path = path.with_extension("key");
                    let key = fs::read(&key_path).map_err(|e| Error::path(&key_path, e))?;
                    let key = PrivateKey::from_pem(&key)
                        .map_err(|e| Error::invalid(format!("{}: {e}", key_path.display())))?;
                    let chain: Vec<_> = certificates(&read()?).collect();
                    client = Some(ClientCert::new_with_certs(&chain, key));
                }
                _ => {}
            }
        }
    }
    let roots = if roots.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&roots)
    };
    let config = TlsConfig::builder()
        .root_certs(roots)
        .client_cert(client)
        .build();
    Ok((config, cas))
}

fn certificates(pem: &[u8]) -> impl Iterator<Item = Certificate<'static>> + '_ {
    parse_pem(pem).filter_map(|item| match item {
        Ok(PemItem::Certificate(c)) => Some(c),
        _ => None,
    })
}

/// `Bearer realm="..",service="..",scope="a,b"` → (`Bearer`, [(realm, ..), ...]).
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "registry".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        assert_eq!(parse_challenge(r#"Basic realm="x""#).0, "Basic");
    }

    #[test]
    fn plain_http_only_for_loopback_and_named_registries() {
        let opts = Options {
            insecure: vec!["reg.lan:5000".into()],
            ..Options::default()
        };
        assert!(may_use_http(&opts, "localhost:5000"));
        assert!(may_use_http(&opts, "127.0.0.1:5000"));
        assert!(may_use_http(&opts, "127.3.2.1"));
        assert!(may_use_http(&opts, "[::1]:5000"));
        assert!(may_use_http(&opts, "reg.lan:5000"));
        assert!(!may_use_http(&opts, "reg.lan"));
        assert!(!may_use_http(&opts, "docker.io"));
        assert!(!may_use_http(&opts, "10.0.0.1:5000"));
    }
}
