//! pull, push, tag, login, logout, and `run --pull`: thin wrappers around minibox-images'
//! registry client, with Docker's output (a progress line per layer on a terminal, plain lines
//! otherwise, nothing with -q).

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use minibox_images::reference::Remote;
use minibox_images::registry::{self, auth, Credentials, Event, Options, Progress};
use minibox_images::{Error, Store};

use crate::cli::{Global, LoginArgs, PullArgs, PullPolicy, PushArgs};
use crate::paths::Paths;

fn options(global: &Global) -> Options {
    let mut opts = Options {
        insecure: global.insecure_registries.clone(),
        ..Options::default()
    };
    if !global.certs_dirs.is_empty() {
        opts.certs_dirs = global.certs_dirs.clone();
    }
    opts
}

/// The full name Docker prints last: `docker.io/library/busybox:latest`.
fn full_name(remote: &Remote) -> String {
    let at = match &remote.digest {
        Some(d) => format!("@{d}"),
        None => format!(":{}", remote.tag.as_deref().unwrap_or("latest")),
    };
    format!("{}/{}{at}", remote.registry, remote.repository)
}

pub fn pull(paths: &Paths, global: &Global, args: &PullArgs) -> Result<u8> {
    let what = || format!("pull {}", args.reference);
    let (remote, store, shown) = start(paths, &args.reference, args.quiet).with_context(what)?;
    fetch(
        &store,
        global,
        &remote,
        &args.reference,
        args.platform.as_deref(),
        shown,
    )
    .with_context(what)?;
    println!("{}", full_name(&remote));
    Ok(0)
}

/// What `pull` and `push` start from: the reference, the store, and where progress is shown.
fn start(paths: &Paths, reference: &str, quiet: bool) -> Result<(Remote, Store, Shown)> {
    let remote = Remote::parse(reference)?;
    let store = Store::open(&paths.images())?;
    let shown = if quiet { Shown::Quiet } else { Shown::Stdout };
    Ok((remote, store, shown))
}

/// Pulls and reports as Docker does, on stdout or (for `run`) stderr.
fn fetch(
    store: &Store,
    global: &Global,
    remote: &Remote,
    reference: &str,
    platform: Option<&str>,
    shown: Shown,
) -> Result<()> {
    shown.line(&format!(
        "{}: Pulling from {}",
        remote.reference(),
        remote.repository
    ));
    let display = Display::new(shown, &PULL_WORDS);
    let pulled = registry::pull(store, &options(global), reference, platform, &display);
    display.finish();
    let pulled = pulled?;
    let digest = pulled.repo_digest.split_once('@').map_or("", |(_, d)| d);
    shown.line(&format!("Digest: {digest}"));
    let status = if pulled.up_to_date {
        "Image is up to date"
    } else {
        "Downloaded newer image"
    };
    let name = pulled.name.unwrap_or(pulled.repo_digest);
    shown.line(&format!("Status: {status} for {name}"));
    Ok(())
}

/// `run`'s `--pull`: makes sure the image is in the store, reporting on stderr.
pub fn ensure(
    paths: &Paths,
    global: &Global,
    reference: &str,
    policy: PullPolicy,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    if policy == PullPolicy::Never {
        return Ok(());
    }
    let store = Store::open(&paths.images()).context("opening the image store")?;
    if policy == PullPolicy::Missing {
        match store.image(reference) {
            Err(Error::NoSuchImage(_)) => {}
            _ => return Ok(()),
        }
    }
    // An id or a malformed name cannot be pulled: finding it reports it.
    let Ok(remote) = Remote::parse(reference) else {
        return Ok(());
    };
    let shown = if quiet { Shown::Quiet } else { Shown::Stderr };
    if policy == PullPolicy::Missing {
        shown.line(&format!("Unable to find image '{reference}' locally"));
    }
    fetch(&store, global, &remote, reference, platform, shown)
        .with_context(|| format!("image {reference:?} is not in the store, and pulling it failed"))
}

pub fn push(paths: &Paths, global: &Global, args: &PushArgs) -> Result<u8> {
    let what = || format!("push {}", args.reference);
    let (remote, store, shown) = start(paths, &args.reference, args.quiet).with_context(what)?;
    shown.line(&format!(
        "The push refers to repository [{}/{}]",
        remote.registry, remote.repository
    ));
    let display = Display::new(shown, &PUSH_WORDS);
    let pushed = registry::push(&store, &options(global), &args.reference, &display);
    display.finish();
    let pushed = pushed.with_context(what)?;
    println!(
        "{}: digest: {} size: {}",
        pushed.tag, pushed.digest, pushed.size
    );
    Ok(0)
}

pub fn tag(paths: &Paths, source: &str, target: &str) -> Result<u8> {
    let store = Store::open(&paths.images())?;
    store
        .tag(source, target)
        .with_context(|| format!("tag {source} {target}"))?;
    Ok(0)
}

pub fn login(global: &Global, args: &LoginArgs) -> Result<u8> {
    let host = auth::registry_host(args.registry.as_deref().unwrap_or("docker.io"));
    let what = || format!("login {host}");
    let username = match &args.username {
        Some(u) => u.clone(),
        None => prompt("Username: ", true).with_context(what)?,
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).with_context(what)?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        prompt("Password: ", false).with_context(what)?
    };
    if username.is_empty() || password.is_empty() {
        bail!("login {host}: a username and a password are needed");
    }
    let creds = Credentials { username, password };
    let file = auth::login(&options(global), &host, creds).with_context(what)?;
    println!(
        "WARNING! Your password will be stored unencrypted in {}.",
        file.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(registry: Option<&str>) -> Result<u8> {
    let host = auth::registry_host(registry.unwrap_or("docker.io"));
    if auth::logout(&host).with_context(|| format!("logout {host}"))? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(0)
}

/// Asks on the terminal; without `echo`, what is typed is not shown.
fn prompt(question: &str, echo: bool) -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        bail!("no terminal to ask on: give -u and --password-stdin");
    }
    eprint!("{question}");
    io::stderr().flush()?;
    let saved = tcgetattr(&stdin)?;
    if !echo {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if !echo {
        tcsetattr(&stdin, SetArg::TCSANOW, &saved)?;
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Where a command's report goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    Stdout,
    Stderr,
    Quiet,
}

impl Shown {
    fn line(self, text: &str) {
        match self {
            Shown::Stdout => println!("{text}"),
            Shown::Stderr => eprintln!("{text}"),
            Shown::Quiet => {}
        }
    }

    fn is_terminal(self) -> bool {
        match self {
            Shown::Stdout => io::stdout().is_terminal(),
            Shown::Stderr => io::stderr().is_terminal(),
            Shown::Quiet => false,
        }
    }
}

/// Docker's words for each event.
struct Words {
    exists: &'static str,
    waiting: &'static str,
    started: &'static str,
    retrying: &'static str,
    mounted: &'static str,
    done: &'static str,
}

const PULL_WORDS: Words = Words {
    exists: "Already exists",
    waiting: "Pulling fs layer",
    started: "Downloading",
    retrying: "Retrying",
    mounted: "Mounted",
    done: "Pull complete",
};

const PUSH_WORDS: Words = Words {
    exists: "Layer already exists",
    waiting: "Waiting",
    started: "Pushing",
    retrying: "Retrying",
    mounted: "Mounted from another repository",
    done: "Pushed",
};

/// A progress bar per blob on a terminal; plain lines (no byte counts) otherwise.
struct Display {
    shown: Shown,
    words: &'static Words,
    bars: Option<MultiProgress>,
    lines: Mutex<HashMap<String, ProgressBar>>,
}

impl Display {
    fn new(shown: Shown, words: &'static Words) -> Self {
        let bars = shown.is_terminal().then(|| {
            MultiProgress::with_draw_target(match shown {
                Shown::Stderr => ProgressDrawTarget::stderr(),
                _ => ProgressDrawTarget::stdout(),
            })
        });
        Display {
            shown,
            words,
            bars,
            lines: Mutex::new(HashMap::new()),
        }
    }

    fn finish(&self) {
        for bar in self.lines.lock().unwrap().values() {
            bar.abandon();
        }
    }
}

impl Progress for Display {
    fn event(&self, blob: &str, event: Event) {
        let w = self.words;
        let word = match event {
            Event::Exists => w.exists,
            Event::Waiting => w.waiting,
            Event::Started { .. } => w.started,
            Event::Bytes(_) => "",
            Event::Retrying => w.retrying,
            Event::Mounted => w.mounted,
            Event::Done => w.done,
        };
        let Some(multi) = &self.bars else {
            if !word.is_empty() && !matches!(event, Event::Started { .. }) {
                self.shown.line(&format!("{blob}: {word}"));
            }
            return;
        };
        let mut lines = self.lines.lock().unwrap();
        let bar = lines.entry(blob.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(text_style());
            bar.set_prefix(blob.to_string());
            bar
        });
        match event {
            Event::Started { size } => {
                bar.set_length(size);
                bar.set_position(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix}: {msg:<12} [{bar:40}] {bytes}/{total_bytes}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
            }
            Event::Bytes(n) => {
                bar.inc(n);
                return;
            }
            Event::Done | Event::Exists | Event::Mounted => bar.set_style(text_style()),
            _ => {}
        }
        bar.set_message(word);
    }
}

fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").expect("a valid template")
}
