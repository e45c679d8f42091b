//! Pull, push and login against a real registry (Debian's docker-registry, distribution 2.8) on
//! 127.0.0.1 inside each sandbox: plain HTTP, TLS with a test CA and htpasswd, and token auth.
//! Images go in with skopeo and come out through minibox, compared with the originals by image
//! ID and diff_ids; what minibox pushes is read back with skopeo.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minibox_tests::registry::{
    tar_of, write_layout, Compression, ImageSpec, Registry, Setup, ADDR, PASSWORD, USER,
};
use minibox_tests::{fixtures, Out, Sandbox};
use serde_json::Value;

/// Imports the busybox fixture, pushes it to the registry as `dest` with skopeo (from a
/// docker-archive), removes it locally, and returns its image ID and diff_ids.
fn publish_busybox(sb: &Sandbox, reg: &Registry, dest: &str) -> (String, Value) {
    sb.import_busybox();
    let original = inspect(sb, reg, "busybox");
    let archive = reg.dir.join("busybox.tar");
    sb.minibox(&["save", "-o", archive.to_str().unwrap(), "busybox"])
        .ok();
    reg.push(sb, &format!("docker-archive:{}", archive.display()), dest);
    sb.minibox(&["rmi", "busybox"]).ok();
    (
        original["Id"].as_str().unwrap().to_string(),
        original["RootFS"]["Layers"].clone(),
    )
}

fn inspect(sb: &Sandbox, reg: &Registry, image: &str) -> Value {
    let out = reg.minibox(sb, &["image", "inspect", image]).ok();
    serde_json::from_str::<Value>(&out).unwrap()[0].clone()
}

/// The digest skopeo reports for a name in the registry.
fn remote_digest(sb: &Sandbox, reg: &Registry, name: &str) -> String {
    let info: Value = serde_json::from_slice(&reg.inspect(sb, name, false)).unwrap();
    info["Digest"].as_str().unwrap().to_string()
}

fn with_stdin(mut cmd: Command, input: &str, what: &str) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Out {
        what: what.to_string(),
        output: child.wait_with_output().unwrap(),
    }
}

fn login(sb: &Sandbox, reg: &Registry, password: &str) -> Out {
    let args = ["login", "-u", USER, "--password-stdin", ADDR];
    with_stdin(
        reg.command(sb, &args),
        &format!("{password}\n"),
        "minibox login",
    )
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn pull_over_http_gives_the_original_image_and_runs_it() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Plain);
    let (id, diff_ids) = publish_busybox(&sb, &reg, "bb:v1");
    let name = format!("{ADDR}/bb:v1");

    let out = reg.minibox(&sb, &["pull", &name]).ok();
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(last_line(&out), name);
    let image = inspect(&sb, &reg, &name);
    assert_eq!(image["Id"], id.as_str(), "the image ID changed on the way");
    assert_eq!(image["RootFS"]["Layers"], diff_ids);
    let digest = remote_digest(&sb, &reg, "bb:v1");
    assert_eq!(
        image["RepoDigests"],
        serde_json::json!([format!("{ADDR}/bb@{digest}")])
    );
    let passwd = reg
        .minibox(&sb, &["run", "--rm", &name, "cat", "/etc/passwd"])
        .ok();
    assert!(passwd.contains("app:x:1000:1000"), "{passwd}");

    // The same again downloads nothing.
    let again = reg.minibox(&sb, &["pull", &name]).ok();
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    assert!(!again.contains("Pulling fs layer"), "{again}");

    // By digest: no tag, found by NAME@DIGEST, same image.
    let by_digest = format!("{ADDR}/bb@{digest}");
    let quiet = reg.minibox(&sb, &["pull", "-q", &by_digest]).ok();
    assert_eq!(quiet.trim(), by_digest);
    assert_eq!(inspect(&sb, &reg, &by_digest)["Id"], id.as_str());

    let listed = reg.minibox(&sb, &["images", "--digests"]).ok();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{ADDR}/bb ")) && l.contains(&digest)),
        "{listed}"
    );

    // What minibox pushes, Podman pulls (into a private root), as the same image.
    let pushed = format!("{ADDR}/pushed:v1");
    reg.minibox(&sb, &["tag", &name, &pushed]).ok();
    reg.minibox(&sb, &["push", &pushed]).ok();
    let podman = reg.dir.join("podman");
    let out = sb
        .exec("podman", ["--root"])
        .arg(podman.join("root"))
        // The sandbox's own /run: podman wants a short runroot.
        .args(["--runroot", "/run/podman"])
        .args([
            "--storage-driver",
            "vfs",
            "pull",
            "-q",
            "--tls-verify=false",
        ])
        .arg(&pushed)
        .env("HOME", &reg.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        format!("sha256:{}", String::from_utf8_lossy(&out.stdout).trim()),
        id
    );

    // run's --pull: never, missing (the default), always.
    let archive = reg.dir.join("busybox.tar");
    reg.push(
        &sb,
        &format!("docker-archive:{}", archive.display()),
        "bb:v2",
    );
    let v2 = format!("{ADDR}/bb:v2");
    reg.minibox(&sb, &["run", "--rm", "--pull", "never", &v2, "true"])
        .fails(125, "no such image");
    let first = reg.minibox(&sb, &["run", "--rm", &v2, "true"]);
    first.ok();
    assert!(first.stderr().contains("Unable to find image"), "{first}");
    let always = reg.minibox(&sb, &["run", "--rm", "--pull", "always", &v2, "true"]);
    always.ok();
    assert!(always.stderr().contains("Image is up to date"), "{always}");

    reg.minibox(&sb, &["rmi", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn multi_platform_index_with_gzip_zstd_and_plain_layers() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Plain);
    let busybox = fs::read(fixtures::busybox_tarball()).unwrap();
    let layout = reg.dir.join("layout");
    let (made, index) = write_layout(
        &layout,
        "multi",
        &[
            ImageSpec {
                arch: host_arch(),
                layers: vec![
                    (Compression::Gzip, busybox),
                    (
                        Compression::Zstd,
                        tar_of(&[("etc/layer2", b"from a zstd layer\n")]),
                    ),
                    (
                        Compression::Plain,
                        tar_of(&[("etc/layer3", b"from a plain layer\n")]),
                    ),
                ],
            },
            ImageSpec {
                arch: "arm64",
                layers: vec![(Compression::Gzip, tar_of(&[("etc/arch", b"arm64\n")]))],
            },
        ],
    );
    reg.push(&sb, &format!("oci:{}:multi", layout.display()), "multi:v1");
    let name = format!("{ADDR}/multi:v1");

    reg.minibox(&sb, &["pull", &name]).ok();
    let image = inspect(&sb, &reg, &name);
    assert_eq!(image["Id"], made[0].id.as_str());
    assert_eq!(
        image["RootFS"]["Layers"],
        serde_json::json!(made[0].diff_ids)
    );
    // RepoDigests names the index, as Docker's does.
    assert_eq!(
        image["RepoDigests"],
        serde_json::json!([format!("{ADDR}/multi@{index}")])
    );
    let out = reg
        .minibox(
            &sb,
            &["run", "--rm", &name, "cat", "/etc/layer2", "/etc/layer3"],
        )
        .ok();
    assert_eq!(out, "from a zstd layer\nfrom a plain layer\n");

    reg.minibox(&sb, &["pull", "--platform", "linux/arm64", &name])
        .ok();
    let arm = inspect(&sb, &reg, &name);
    assert_eq!(arm["Id"], made[1].id.as_str());
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["RootFS"]["Layers"], serde_json::json!(made[1].diff_ids));

    let err = reg
        .minibox(&sb, &["pull", "--platform", "linux/s390x", &name])
        .fails(1, "no image for linux/s390x");
    assert!(
        err.contains(&format!("it has linux/{}, linux/arm64", host_arch())),
        "{err}"
    );

    reg.minibox(&sb, &["rmi", &made[1].id, &made[0].id]).ok();
    sb.finish();
}

#[test]
fn tls_and_htpasswd_login_pull_push_logout() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Tls);
    let (id, diff_ids) = publish_busybox(&sb, &reg, "bb:v1");
    let name = format!("{ADDR}/bb:v1");

    // Not logged in: refused, and told how to log in.
    reg.minibox(&sb, &["pull", &name]).fails(
        1,
        &format!("unauthorized: authentication required: log in with `minibox login {ADDR}`"),
    );
    // Without the test CA the certificate is not trusted, and the error says where it goes.
    let empty = reg.dir.join("no-certs");
    fs::create_dir_all(&empty).unwrap();
    let mut cmd = reg.command(&sb, &["pull", &name]);
    cmd.env("MINIBOX_CERTS_DIR", &empty);
    let out = Out {
        what: "pull without the CA".into(),
        output: cmd.output().unwrap(),
    };
    out.fails(1, "certificate is not trusted");
    assert!(
        out.stderr().contains(&format!("certs.d/{ADDR}/ca.crt")),
        "{out}"
    );

    // A wrong password stores nothing.
    let config = reg.dir.join("docker/config.json");
    login(&sb, &reg, "wrong").fails(1, "unauthorized");
    assert!(!config.exists());

    let ok = login(&sb, &reg, PASSWORD).ok();
    assert!(ok.contains("Login Succeeded"), "{ok}");
    assert_eq!(
        fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stored: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    let auth = stored["auths"][ADDR]["auth"].as_str().unwrap().to_string();
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(auth.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&decoded.stdout),
        format!("{USER}:{PASSWORD}")
    );

    reg.minibox(&sb, &["pull", &name]).ok();
    let image = inspect(&sb, &reg, &name);
    assert_eq!(image["Id"], id.as_str());
    assert_eq!(image["RootFS"]["Layers"], diff_ids);

    // Push under another name: the blobs are mounted from bb, the manifest keeps its digest.
    let target = format!("{ADDR}/copy:v7");
    reg.minibox(&sb, &["tag", &name, &target]).ok();
    let pushed = reg.minibox(&sb, &["push", &target]).ok();
    assert!(pushed.contains("Mounted from"), "{pushed}");
    let digest = remote_digest(&sb, &reg, "copy:v7");
    assert!(
        last_line(&pushed).starts_with(&format!("v7: digest: {digest} size: ")),
        "{pushed}"
    );
    assert_eq!(digest, remote_digest(&sb, &reg, "bb:v1"));
    // Pushed again: everything is there already.
    let again = reg.minibox(&sb, &["push", &target]).ok();
    assert!(again.contains("Layer already exists"), "{again}");
    assert!(!again.contains("Pushed"), "{again}");

    // Podman's auth file is read too.
    let auth_file = reg.dir.join("auth.json");
    fs::write(
        &auth_file,
        serde_json::json!({"auths": {ADDR: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let out = reg.minibox(&sb, &["logout", ADDR]).ok();
    assert_eq!(out.trim(), format!("Removing login credentials for {ADDR}"));
    reg.minibox(&sb, &["rmi", &name, &target]).ok();
    reg.minibox(&sb, &["pull", &name]).fails(1, "unauthorized");
    let mut cmd = reg.command(&sb, &["pull", &name]);
    cmd.env("REGISTRY_AUTH_FILE", &auth_file);
    Out {
        what: "pull with Podman's auth file".into(),
        output: cmd.output().unwrap(),
    }
    .ok();

    reg.minibox(&sb, &["rmi", &name]).ok();
    sb.finish();
}

#[test]
fn token_auth_gives_anonymous_pulls_and_pushes_after_login() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Token);
    let (id, diff_ids) = publish_busybox(&sb, &reg, "bb:v1");
    let name = format!("{ADDR}/bb:v1");

    // Anonymous: a pull token.
    reg.minibox(&sb, &["pull", &name]).ok();
    let image = inspect(&sb, &reg, &name);
    assert_eq!(image["Id"], id.as_str());
    assert_eq!(image["RootFS"]["Layers"], diff_ids);

    let target = format!("{ADDR}/mine:v1");
    reg.minibox(&sb, &["tag", &name, &target]).ok();
    reg.minibox(&sb, &["push", &target])
        .fails(1, "unauthorized");
    login(&sb, &reg, "wrong").fails(1, "unauthorized");
    login(&sb, &reg, PASSWORD).ok();
    let pushed = reg.minibox(&sb, &["push", &target]).ok();
    let digest = remote_digest(&sb, &reg, "mine:v1");
    assert!(
        last_line(&pushed).starts_with(&format!("v1: digest: {digest}")),
        "{pushed}"
    );
    // What skopeo reads back is what minibox stored.
    let raw = reg.inspect(&sb, "mine:v1", true);
    assert_eq!(minibox_tests::registry::sha256(&raw), digest);
    assert_eq!(
        inspect(&sb, &reg, &target)["RepoDigests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d.as_str() == Some(&format!("{ADDR}/mine@{digest}")))
            .count(),
        1
    );

    reg.minibox(&sb, &["rmi", &name, &target]).ok();
    sb.finish();
}

/// A credential helper as Docker's protocol has it (`docker-credential-NAME get|store|erase`),
/// keeping each server's record in a file of its own under `dir/creds`.
fn install_credential_helper(dir: &Path, name: &str) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
store="$(dirname "$0")/../creds"
mkdir -p "$store"
input=$(cat)
case "$1" in
store) server=$(printf '%s' "$input" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ServerURL"])')
       printf '%s' "$input" > "$store/$(printf '%s' "$server" | tr '/:' '__')" ;;
get|erase) f="$store/$(printf '%s' "$input" | tr '/:' '__')"
       [ -f "$f" ] || { echo "credentials not found in native keychain"; exit 1; }
       if [ "$1" = get ]; then cat "$f"; else rm "$f"; fi ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
"#;
    let path = bin.join(format!("docker-credential-{name}"));
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn credential_helpers_keep_the_password_out_of_config_json() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Tls);
    publish_busybox(&sb, &reg, "bb:v1");
    let name = format!("{ADDR}/bb:v1");
    let bin = install_credential_helper(&reg.dir, "mbtest");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config = reg.dir.join("docker/config.json");
    fs::write(
        &config,
        r#"{"credsStore": "mbtest", "detachKeys": "ctrl-x"}"#,
    )
    .unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = reg.command(&sb, args);
        cmd.env("PATH", &path);
        match stdin {
            Some(input) => with_stdin(cmd, input, &format!("minibox {}", args.join(" "))),
            None => Out {
                what: format!("minibox {}", args.join(" ")),
                output: cmd.output().unwrap(),
            },
        }
    };
    let login = ["login", "-u", USER, "--password-stdin", ADDR];

    // The secret goes to the helper; the file only says the registry has credentials.
    run(&login, Some(&format!("{PASSWORD}\n"))).ok();
    let stored: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert_eq!(stored["auths"][ADDR], serde_json::json!({}), "{stored}");
    assert_eq!(stored["detachKeys"], "ctrl-x", "other settings are kept");
    assert!(!fs::read_to_string(&config).unwrap().contains(PASSWORD));
    let kept: Value = serde_json::from_slice(
        &fs::read(reg.dir.join("creds").join(ADDR.replace(':', "_"))).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["Username"], USER);
    assert_eq!(kept["Secret"], PASSWORD);

    // Pulls ask the helper.
    run(&["pull", &name], None).ok();
    run(&["rmi", &name], None).ok();

    // Logout erases it there; pulls are refused again.
    run(&["logout", ADDR], None).ok();
    assert!(!reg.dir.join("creds").join(ADDR.replace(':', "_")).exists());
    run(&["pull", &name], None).fails(1, "unauthorized");

    // A helper for this registry alone takes precedence; one that is not installed is named.
    fs::write(
        &config,
        format!(r#"{{"credsStore": "mbtest", "credHelpers": {{"{ADDR}": "absent"}}}}"#),
    )
    .unwrap();
    run(&["pull", &name], None).fails(
        1,
        "the credential helper docker-credential-absent (named in",
    );
    sb.finish();
}

#[test]
fn client_certificates_from_certs_d_for_a_registry_that_asks_for_one() {
    let sb = Sandbox::new();
    let mut reg = Registry::start(&sb, Setup::Tls);
    publish_busybox(&sb, &reg, "bb:v1");
    let name = format!("{ADDR}/bb:v1");
    login(&sb, &reg, PASSWORD).ok();
    let (cert, key) = reg.require_client_certs(&sb);

    // Without a client certificate the handshake is refused, and the error says so.
    let refused = reg.minibox(&sb, &["pull", &name]);
    refused.fails(1, ADDR);
    assert!(
        refused.stderr().to_lowercase().contains("certificate"),
        "{refused}"
    );
    assert_eq!(refused.stderr().trim().lines().count(), 1, "{refused}");

    // certs.d/HOST/client.cert with its client.key beside it, as Docker reads them.
    let host_dir = reg.certs().join(ADDR);
    fs::copy(&cert, host_dir.join("client.cert")).unwrap();
    fs::copy(&key, host_dir.join("client.key")).unwrap();
    reg.minibox(&sb, &["pull", &name]).ok();
    reg.minibox(&sb, &["rmi", &name]).ok();

    // A certificate without its key is named.
    fs::remove_file(host_dir.join("client.key")).unwrap();
    reg.minibox(&sb, &["pull", &name]).fails(1, "client.key");
    sb.finish();
}

#[test]
fn missing_images_and_tags_are_named_in_the_error() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Plain);
    publish_busybox(&sb, &reg, "bb:v1");
    reg.minibox(&sb, &["pull", &format!("{ADDR}/nope:v1")])
        .fails(1, "not found: no repository nope at 127.0.0.1:5000");
    reg.minibox(&sb, &["pull", &format!("{ADDR}/bb:v9")])
        .fails(1, "not found: repository 127.0.0.1:5000/bb has no tag v9");
    reg.minibox(&sb, &["pull", "Not/A/Name"])
        .fails(1, "invalid reference");
    sb.finish();
}

/// Where pulls stage their downloads.
fn staging(sb: &Sandbox) -> PathBuf {
    sb.root().join("images/staging")
}

fn staged_bytes(sb: &Sandbox) -> u64 {
    fn walk(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => walk(&e.path()),
                        _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&staging(sb))
}

fn staged_entries(sb: &Sandbox) -> Vec<String> {
    fs::read_dir(staging(sb))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_corrupted_blob_is_refused_and_nothing_is_stored() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Plain);
    publish_busybox(&sb, &reg, "bb:v1");
    let manifest: Value = serde_json::from_slice(&reg.inspect(&sb, "bb:v1", true)).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = reg.blob_file(&layer);
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x55;
    fs::write(&blob, &bad).unwrap();

    let name = format!("{ADDR}/bb:v1");
    reg.minibox(&sb, &["pull", &name])
        .fails(1, &format!("digest mismatch: expected {layer}"));
    let images = reg.minibox(&sb, &["images"]).ok();
    assert_eq!(images.lines().count(), 1, "an image was left:\n{images}");
    let stored = sb.root().join("images/blobs/sha256").join(&layer[7..]);
    assert!(!stored.exists(), "the corrupt blob was kept");
    assert!(staged_entries(&sb).is_empty(), "{:?}", staged_entries(&sb));

    // Repaired, it pulls.
    fs::write(&blob, &good).unwrap();
    reg.minibox(&sb, &["pull", &name]).ok();
    reg.minibox(&sb, &["rmi", &name]).ok();
    sb.finish();
}

/// An image with one big incompressible layer, behind a throttled loopback (the sandbox's own),
/// so that a pull takes a few seconds and can be interrupted in the middle.
fn slow_image(sb: &Sandbox, reg: &Registry) -> (String, String) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..24 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let layout = reg.dir.join("big-layout");
    let (made, _) = write_layout(
        &layout,
        "big",
        &[ImageSpec {
            arch: host_arch(),
            layers: vec![
                (
                    Compression::Gzip,
                    fs::read(fixtures::busybox_tarball()).unwrap(),
                ),
                (Compression::Plain, tar_of(&[("big", &big)])),
            ],
        }],
    );
    reg.push(sb, &format!("oci:{}:big", layout.display()), "big:v1");
    sb.sh("tc qdisc add dev lo root tbf rate 40mbit burst 256kb latency 2s")
        .ok();
    (format!("{ADDR}/big:v1"), made[0].id.clone())
}

/// Starts a pull and waits until part of a layer has arrived.
fn pull_in_flight(sb: &Sandbox, reg: &Registry, name: &str) -> std::process::Child {
    let child = reg
        .command(sb, &["pull", "-q", name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while staged_bytes(sb) < 2 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the pull never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn the_registry_killed_mid_pull_then_the_next_pull_completes() {
    let sb = Sandbox::new();
    let mut reg = Registry::start(&sb, Setup::Plain);
    let (name, id) = slow_image(&sb, &reg);
    let child = pull_in_flight(&sb, &reg, &name);
    reg.kill();
    reg.restart(&sb);
    // The interrupted pull either retried its way through or failed cleanly.
    let first = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&first.stderr);
    if !first.status.success() {
        assert!(err.starts_with("minibox: pull "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    reg.minibox(&sb, &["pull", &name]).ok();
    assert_eq!(inspect(&sb, &reg, &name)["Id"], id.as_str());
    assert!(staged_entries(&sb).is_empty(), "{:?}", staged_entries(&sb));
    reg.minibox(&sb, &["rmi", &name]).ok();
    sb.finish();
}

#[test]
fn minibox_killed_mid_pull_leaves_nothing_and_the_next_pull_works() {
    let sb = Sandbox::new();
    let reg = Registry::start(&sb, Setup::Plain);
    let (name, id) = slow_image(&sb, &reg);
    let mut child = pull_in_flight(&sb, &reg, &name);
    child.kill().unwrap();
    child.wait().unwrap();

    // No image, and the dead pull's staging area goes at the next command.
    let images = reg.minibox(&sb, &["images"]).ok();
    assert_eq!(images.lines().count(), 1, "a half image:\n{images}");
    assert!(staged_entries(&sb).is_empty(), "{:?}", staged_entries(&sb));
    let tmp = sb.root().join("images/tmp");
    assert!(fs::read_dir(&tmp).map_or(true, |mut d| d.next().is_none()));

    reg.minibox(&sb, &["pull", &name]).ok();
    assert_eq!(inspect(&sb, &reg, &name)["Id"], id.as_str());
    reg.minibox(&sb, &["rmi", &name]).ok();
    sb.finish();
}
