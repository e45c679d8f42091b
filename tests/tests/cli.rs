//! The command line as Docker users know it: usage errors, exit codes, `-h`, closed pipes, `-it`
//! without a terminal, `rm -f` of what is gone; then the observing commands and the formats.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use minibox_tests::{Out, Sandbox};

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.import_busybox();
    sb
}

/// `run -d --network none busybox ARGS...`: returns the full id.
fn run_d(sb: &Sandbox, args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--network", "none"];
    all.extend_from_slice(args);
    let id = sb.minibox(&all).ok().trim().to_string();
    assert_eq!(id.len(), 64, "not a full id: {id:?}");
    id
}

#[test]
fn h_is_the_hostname_and_help_is_long_only() {
    let sb = sandbox();
    let out = sb.minibox(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-h",
        "box",
        "busybox",
        "hostname",
    ]);
    assert_eq!(out.ok(), "box\n");
    let help = sb.minibox(&["run", "--help"]).ok();
    assert!(help.contains("Usage: minibox run"), "{help}");
    assert!(help.contains("-h, --hostname"), "{help}");
    sb.finish();
}

#[test]
fn usage_errors_are_one_line_and_exit_125() {
    let sb = Sandbox::new();
    for (args, needle, help) in [
        (
            &["run", "--nosuchflag", "busybox"][..],
            "unexpected argument '--nosuchflag'",
            "see 'minibox run --help'",
        ),
        (&["ps", "--bogus"], "'--bogus'", "see 'minibox ps --help'"),
        (
            &["network", "create"],
            "<NAME>",
            "see 'minibox network create --help'",
        ),
        (&["kill", "-s"], "--signal", "see 'minibox kill --help'"),
        (&["nosuchcommand"], "nosuchcommand", "see 'minibox --help'"),
    ] {
        let out = sb.minibox(args);
        let err = out.fails(125, needle);
        assert!(err.contains(help), "{out}");
        assert_eq!(err.lines().count(), 1, "one line: {out}");
        assert_eq!(out.stdout(), "", "{out}");
    }
    sb.finish();
}

#[test]
fn failures_outside_run_exit_1_and_run_keeps_dockers_codes() {
    let sb = sandbox();
    for args in [
        &["stop", "nosuch"][..],
        &["inspect", "nosuch"],
        &["logs", "nosuch"],
        &["rmi", "nosuch"],
        &["exec", "nosuch", "true"],
        &["network", "rm", "nosuch"],
    ] {
        sb.minibox(args).fails(1, "nosuch");
    }
    sb.minibox(&["run", "--rm", "nosuchimage"])
        .fails(125, "nosuchimage");
    let out = sb.minibox(&["run", "--rm", "--network", "none", "busybox", "nosuch"]);
    out.fails(127, "nosuch");
    sb.finish();
}

/// Runs minibox with its standard output a pipe whose reader is already gone.
fn into_closed_pipe(sb: &Sandbox, args: &[&str]) -> Out {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    drop(read);
    let output = sb
        .command(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Out {
        what: format!("minibox {} >closed-pipe", args.join(" ")),
        output,
    }
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let sb = sandbox();
    let id = run_d(
        &sb,
        &[
            "--name",
            "piped",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 100",
        ],
    );
    for args in [
        &["images"][..],
        &["ps", "-a"],
        &["inspect", "piped"],
        &["network", "ls"],
        &["logs", "piped"],
        &["image", "inspect", "busybox"],
    ] {
        let out = into_closed_pipe(&sb, args);
        // Killed by SIGPIPE, as a shell's `ls | true` is: no panic, no message.
        assert_eq!(out.code(), 128 + 13, "{out}");
        assert_eq!(out.stderr(), "", "{out}");
    }
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn it_without_a_terminal_is_refused_before_anything_is_made() {
    let sb = sandbox();
    let out = sb.minibox(&["run", "--rm", "-it", "--network", "none", "busybox", "sh"]);
    let err = out.fails(1, "the input device is not a TTY");
    assert_eq!(err.lines().count(), 1, "{out}");
    assert_eq!(sb.minibox(&["ps", "-a", "-q"]).ok(), "", "nothing made");
    // Detached, there is no input to relay: Docker runs it.
    let id = run_d(&sb, &["-it", "busybox", "sh"]);
    sb.minibox(&["exec", "-it", &id, "true"])
        .fails(1, "the input device is not a TTY");
    sb.minibox(&["exec", "-t", &id, "true"]).ok();
    sb.minibox(&["rm", "-f", &id]).ok();
    sb.finish();
}

#[test]
fn rm_f_of_a_missing_name_is_no_error() {
    let sb = sandbox();
    assert_eq!(sb.minibox(&["rm", "-f", "nosuch"]).ok(), "");
    sb.minibox(&["rm", "nosuch"])
        .fails(1, "no such container: nosuch");
    let id = run_d(&sb, &["--name", "gone", "busybox", "sleep", "100"]);
    // Every name is tried: the missing one in the middle changes nothing for the others.
    let out = sb.minibox(&["rm", "-f", "nosuch", "gone"]).ok();
    assert_eq!(out, "gone\n");
    sb.minibox(&["inspect", &id]).fails(1, "no such container");
    sb.finish();
}
