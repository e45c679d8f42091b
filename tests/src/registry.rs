//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) started inside a
//! sandbox's network namespace on 127.0.0.1:5000, in one of three set-ups, with skopeo to put
//! images into it and a builder of OCI layouts (several layers, compressions and platforms).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::{Out, Sandbox};

pub const ADDR: &str = "127.0.0.1:5000";
const TOKEN_PORT: u16 = 5001;
pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-pw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Plain HTTP, no authentication.
    Plain,
    /// HTTPS with a certificate from a test CA, and htpasswd (bcrypt) basic authentication.
    Tls,
    /// Plain HTTP with token authentication: a small token server (tests/src/token_server.py,
    /// RS256, the certificate in `x5c`) gives anyone pull tokens and `alice` push tokens.
    Token,
}

pub struct Registry {
    pub setup: Setup,
    /// Holds the registry's storage, config, certificates and the clients' config.
    pub dir: PathBuf,
    registry: Option<Child>,
    token: Option<Child>,
}

impl Registry {
    pub fn start(sb: &Sandbox, setup: Setup) -> Registry {
        let dir = sb.root().join("registry");
        fs::create_dir_all(dir.join("data")).unwrap();
        fs::create_dir_all(dir.join("docker")).unwrap();
        fs::create_dir_all(dir.join("certs")).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ADDR}\n",
            dir.join("data").display()
        );
        let mut token = None;
        match setup {
            Setup::Plain => {}
            Setup::Tls => {
                make_certs(&dir);
                let htpasswd = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(htpasswd.status.success());
                fs::write(dir.join("htpasswd"), &htpasswd.stdout).unwrap();
                config += &format!(
                    "  tls:\n    certificate: {d}/server.crt\n    key: {d}/server.key\nauth:\n  htpasswd:\n    realm: minibox-test\n    path: {d}/htpasswd\n",
                    d = dir.display()
                );
                // Where minibox (and skopeo) find the CA: certs.d/HOST:PORT/ca.crt.
                let ca_dir = dir.join("certs").join(ADDR);
                fs::create_dir_all(&ca_dir).unwrap();
                fs::copy(dir.join("ca.crt"), ca_dir.join("ca.crt")).unwrap();
            }
            Setup::Token => {
                let ok = Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .args(["-subj", "/CN=minibox-test-token"])
                    .arg("-keyout")
                    .arg(dir.join("token.key"))
                    .arg("-out")
                    .arg(dir.join("token.crt"))
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(ok.success(), "openssl req");
                config += &format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{TOKEN_PORT}/token\n    service: minibox-test\n    issuer: minibox-test\n    rootcertbundle: {}/token.crt\n",
                    dir.display()
                );
                let script = crate::workspace().join("tests/src/token_server.py");
                let child = sb
                    .exec("/usr/bin/python3", [script.as_os_str()])
                    .arg(TOKEN_PORT.to_string())
                    .arg(dir.join("token.key"))
                    .arg(dir.join("token.crt"))
                    .arg(format!("{USER}:{PASSWORD}"))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("python3 with python3-jwt");
                token = Some(child);
                wait_listening(sb, TOKEN_PORT);
            }
        }
        fs::write(dir.join("config.yml"), config).unwrap();
        let mut reg = Registry {
            setup,
            dir,
            registry: None,
            token,
        };
        reg.restart(sb);
        reg
    }

    /// Starts the registry (again), on the same storage, and waits until it listens.
    pub fn restart(&mut self, sb: &Sandbox) {
        self.kill();
        let child = sb
            .exec("docker-registry", ["serve"])
            .arg(self.dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        self.registry = Some(child);
        wait_listening(sb, 5000);
    }

    /// Kills the registry (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.registry.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The directory to give minibox as `--certs-dir` (holds `127.0.0.1:5000/ca.crt` for TLS).
    /// Makes the TLS registry ask clients for a certificate signed by the test CA (mutual TLS),
    /// and returns a client certificate and key so signed, as `client.cert` and `client.key`.
    pub fn require_client_certs(&mut self, sb: &Sandbox) -> (PathBuf, PathBuf) {
        assert_eq!(
            self.setup,
            Setup::Tls,
            "client certificates need the TLS set-up"
        );
        let dir = &self.dir.clone();
        sign(
            dir,
            "client",
            "/CN=minibox test client",
            "extendedKeyUsage=clientAuth\n",
            "client.cert",
        );
        let config = fs::read_to_string(dir.join("config.yml")).unwrap();
        let key_line = format!("    key: {}/server.key\n", dir.display());
        assert!(config.contains(&key_line));
        let config = config.replace(
            &key_line,
            &format!(
                "{key_line}    clientcas:\n      - {}/ca.crt\n",
                dir.display()
            ),
        );
        fs::write(dir.join("config.yml"), config).unwrap();
        self.restart(sb);
        (dir.join("client.cert"), dir.join("client.key"))
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// minibox with this registry's client set-up: a private Docker config and certs.d.
    pub fn minibox(&self, sb: &Sandbox, args: &[&str]) -> Out {
        let output = self.command(sb, args).output().unwrap();
        Out {
            what: format!("minibox {}", args.join(" ")),
            output,
        }
    }

    pub fn command(&self, sb: &Sandbox, args: &[&str]) -> Command {
        let mut cmd = sb.command(args);
        cmd.env("DOCKER_CONFIG", self.dir.join("docker"))
            .env("HOME", &self.dir)
            .env("MINIBOX_CERTS_DIR", self.certs())
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR");
        cmd
    }

    /// skopeo's options to reach this registry.
    fn skopeo_opts(&self, dest: bool) -> Vec<String> {
        let p = if dest { "dest-" } else { "" };
        let mut opts = Vec::new();
        match self.setup {
            Setup::Plain => opts.push(format!("--{p}tls-verify=false")),
            Setup::Tls => opts.push(format!(
                "--{p}cert-dir={}",
                self.certs().join(ADDR).display()
            )),
            Setup::Token => opts.push(format!("--{p}tls-verify=false")),
        }
        if self.setup != Setup::Plain {
            opts.push(format!("--{p}creds={USER}:{PASSWORD}"));
        }
        opts
    }

    /// `skopeo copy SRC docker://127.0.0.1:5000/DEST` (`--all` copies every platform).
    pub fn push(&self, sb: &Sandbox, src: &str, dest: &str) {
        let mut args: Vec<String> = vec!["copy".into(), "-q".into(), "--all".into()];
        args.push("--preserve-digests".into());
        args.extend(self.skopeo_opts(true));
        args.push(src.to_string());
        args.push(format!("docker://{ADDR}/{dest}"));
        let out = sb.exec("skopeo", &args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `skopeo inspect` (`--raw` for the manifest as stored) of `127.0.0.1:5000/NAME`.
    pub fn inspect(&self, sb: &Sandbox, name: &str, raw: bool) -> Vec<u8> {
        let mut args: Vec<String> = vec!["inspect".into()];
        if raw {
            args.push("--raw".into());
        }
        args.extend(self.skopeo_opts(false));
        args.push(format!("docker://{ADDR}/{name}"));
        let out = sb.exec("skopeo", &args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Where the registry keeps a blob.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut c) = self.token.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_listening(sb: &Sandbox, port: u16) {
    let script = format!(
        "for i in $(seq 500); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && exit 0; sleep 0.02; done; exit 1"
    );
    let out = sb.exec("bash", ["-c", &script]).output().unwrap();
    assert!(out.status.success(), "nothing listens on port {port}");
}

/// A test CA and a server certificate for 127.0.0.1 and localhost signed by it.
/// `openssl ARGS` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl {args:?}");
}

fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=minibox test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    sign(
        dir,
        "server",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        "server.crt",
    );
}

/// A key `NAME.key` and a certificate `out` for `subject`, signed by the test CA in `dir` with
/// the extensions `ext`.
fn sign(dir: &Path, name: &str, subject: &str, ext: &str, out: &str) {
    let (key, csr, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &csr,
        ],
    );
    fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext_file,
            "-out",
            out,
        ],
    );
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// How a layer of a hand-made image is stored.
#[derive(Debug, Clone, Copy)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

/// One image of a layout: its platform and its layers (uncompressed tars).
pub struct ImageSpec {
    pub arch: &'static str,
    pub layers: Vec<(Compression, Vec<u8>)>,
}

/// What [`write_layout`] made, per image: the config digest (the image ID) and the diff_ids.
pub struct Made {
    pub id: String,
    pub diff_ids: Vec<String>,
    pub manifest: String,
}

/// Writes an OCI image layout at `dir` holding one index of `images` (one per platform) under
/// the ref name `name`; returns what each image is, and the index's digest.
pub fn write_layout(dir: &Path, name: &str, images: &[ImageSpec]) -> (Vec<Made>, String) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        fs::write(blobs.join(&d[7..]), bytes).unwrap();
        (d, bytes.len())
    };
    let mut made = Vec::new();
    let mut entries = Vec::new();
    for image in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (kind, tar) in &image.layers {
            diff_ids.push(sha256(tar));
            let (bytes, media) = match kind {
                Compression::Plain => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
                Compression::Gzip => {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    e.write_all(tar).unwrap();
                    (
                        e.finish().unwrap(),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
                Compression::Zstd => (
                    zstd::encode_all(&tar[..], 3).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
            };
            let (d, size) = put(&bytes);
            layers.push(serde_json::json!({"mediaType": media, "digest": d, "size": size}));
        }
        let config = serde_json::json!({
            "architecture": image.arch,
            "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let (m, msize) = put(&serde_json::to_vec(&manifest).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": msize,
            "platform": {"architecture": image.arch, "os": "linux"},
        }));
        made.push(Made {
            id: config_digest,
            diff_ids,
            manifest: m,
        });
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let (index_digest, index_size) = put(&serde_json::to_vec(&index).unwrap());
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index_size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (made, index_digest)
}

/// A tar of `files` (path, content), with the parent directories, as a layer.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, data) in files {
        let mut parent = Path::new(path).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mode(0o755);
                h.set_mtime(1_700_000_000);
                h.set_size(0);
                tar.append_data(&mut h, &d, std::io::empty()).unwrap();
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, *data).unwrap();
    }
    tar.into_inner().unwrap()
}
