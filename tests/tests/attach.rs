//! Input into background containers, as Docker passes it: `run -d -i` keeps the container's
//! stdin open, `attach` types into it (through a pipe, or the container's terminal with `-t`)
//! until ctrl-p ctrl-q detaches, `start -ai` starts and attaches, and a foreground
//! `run --sig-proxy=false` is only attached: a signal ends it, not the container.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use minibox_tests::Sandbox;

/// Docker's detach keys.
const DETACH: &[u8] = b"\x10\x11";

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// Polls `cond` for up to 30 s.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs(sb: &Sandbox, name: &str) -> String {
    sb.minibox(&["logs", name]).ok()
}

fn running(sb: &Sandbox, name: &str) -> bool {
    sb.minibox(&["inspect", "-f", "{{.State.Running}}", name])
        .ok()
        == "true\n"
}

/// `minibox ARGS` with a pipe for its stdin.
fn spawn(sb: &Sandbox, args: &[&str]) -> Child {
    sb.command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn type_in(child: &mut Child, bytes: &[u8]) {
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(bytes).unwrap();
    stdin.flush().unwrap();
}

#[test]
fn run_d_i_keeps_stdin_open_and_attach_types_into_it_until_the_detach_keys() {
    let sb = sandbox();
    sb.minibox(&[
        "run",
        "-d",
        "-i",
        "--name",
        "reader",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "while read line; do echo \"got $line\"; done; echo stdin-ended",
    ])
    .ok();
    let mut attach = spawn(&sb, &["attach", "reader"]);
    // The line and the keys at once: the line still goes in.
    type_in(&mut attach, &[b"hello\n", DETACH].concat());
    eventually("the line to reach the container", || {
        logs(&sb, "reader").contains("got hello")
    });
    let out = attach.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Docker's answer to the detach keys: exit code 1, "read escape sequence".
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("read escape sequence"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Detached, and the end of the attach's input is not the end of the container's.
    assert!(running(&sb, "reader"));

    // Once more, ending our input this time: the container's stays open.
    let mut attach = spawn(&sb, &["attach", "reader"]);
    type_in(&mut attach, b"again\n");
    drop(attach.stdin.take());
    eventually("the second line", || {
        logs(&sb, "reader").contains("got again")
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(running(&sb, "reader"));
    assert!(!logs(&sb, "reader").contains("stdin-ended"));
    sb.minibox(&["rm", "-f", "reader"]).ok();
    let out = attach.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("got again"),
        "{out:?}"
    );

    // --no-stdin: the output only, the input stays ours.
    sb.minibox(&[
        "run",
        "-d",
        "-i",
        "--name",
        "quiet",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "read line; echo \"got $line\"",
    ])
    .ok();
    let mut attach = spawn(&sb, &["attach", "--no-stdin", "quiet"]);
    type_in(&mut attach, b"ignored\n");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!logs(&sb, "quiet").contains("ignored"));
    sb.minibox(&["rm", "-f", "quiet"]).ok();
    attach.wait().unwrap();
    sb.finish();
}

#[test]
fn attach_types_into_a_terminal_and_the_detach_keys_leave_it_running() {
    let sb = sandbox();
    sb.minibox(&[
        "run",
        "-d",
        "-i",
        "-t",
        "--name",
        "shell",
        "--network",
        "none",
        "busybox",
        "sh",
    ])
    .ok();
    let mut script = sb
        .terminal("stty rows 21 cols 77; $MINIBOX attach shell")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    type_in(&mut script, b"echo typed-$((40+2)); stty size\n");
    eventually("the shell to run the line", || {
        logs(&sb, "shell").contains("typed-42")
    });
    // The container's terminal took the size of the attaching one.
    eventually("the size", || logs(&sb, "shell").contains("21 77"));
    type_in(&mut script, DETACH);
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("typed-42") && text.contains("read escape sequence"),
        "{text}"
    );
    assert!(running(&sb, "shell"));

    // Without a terminal, attaching input to a terminal is refused, as Docker does.
    sb.minibox(&["attach", "shell"])
        .fails(1, "the input device is not a TTY");
    sb.minibox(&["rm", "-f", "shell"]).ok();
    sb.finish();
}

#[test]
fn start_ai_passes_input_and_ends_with_the_exit_code() {
    let sb = sandbox();
    sb.minibox(&[
        "create",
        "-i",
        "--name",
        "job",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "read line; echo \"got $line\"; exit 7",
    ])
    .ok();
    let mut start = spawn(&sb, &["start", "-ai", "job"]);
    type_in(&mut start, b"input\n");
    let out = start.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got input\n");
    sb.minibox(&["rm", "job"]).ok();
    sb.finish();
}

#[test]
fn run_sig_proxy_false_attaches_and_a_signal_leaves_the_container_running() {
    let sb = sandbox();
    let mut run = spawn(
        &sb,
        &[
            "run",
            "-i",
            "--sig-proxy=false",
            "--name",
            "once",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "read line; echo \"got $line\"; exit 4",
        ],
    );
    type_in(&mut run, b"piped\n");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got piped\n");

    // SIGINT ends the attached minibox; the container, apart under its supervisor, goes on.
    let run = spawn(
        &sb,
        &[
            "run",
            "--sig-proxy=false",
            "--name",
            "apart",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    eventually("the container to run", || {
        sb.minibox(&["ps", "-q", "--filter", "name=apart"])
            .ok()
            .len()
            > 1
            && running(&sb, "apart")
    });
    let pid = nix::unistd::Pid::from_raw(run.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(running(&sb, "apart"));
    sb.minibox(&["rm", "-f", "apart", "once"]).ok();
    sb.finish();
}
