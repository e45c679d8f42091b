//! minibox: a small container runtime that runs a process in its own network stack. This binary
//! is the Docker-style command line: it parses, calls the library (`lib.rs`) and prints.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use cli::Command;
// The library's modules, under the same paths the commands have always used.
use minibox::container::process::EXIT_RUNTIME;
use minibox::{container, network, paths};

fn main() -> ExitCode {
    // A container's supervisor: exec'd by `run -d`, kept lean (no command line parsing).
    let mut args = std::env::args_os();
    match args.nth(1) {
        Some(a) if a == container::supervisor::FLAG => container::supervisor::main(args.collect()),
        Some(a) if a == container::supervisor::WAIT_FLAG => {
            container::supervisor::wait_main(args.collect())
        }
        _ => {}
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage(err),
    };
    // Commands that relay a container's streams keep SIGPIPE ignored: they see EPIPE and end
    // the container as they should.
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Exec(_) | Command::Start(_) | Command::Restart(_)
    ) {
        quiet_on_closed_pipe();
    }
    init_logging(&cli.global.log_level);
    let command = match cli.command {
        // `create` fails as `run` does (Docker: 125).
        Command::Run(_) | Command::Create(_) => Failing::Run,
        Command::Exec(_) => Failing::Exec,
        _ => Failing::Other,
    };
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("minibox: {}", minibox::error::one_line(err.as_ref()));
            ExitCode::from(exit_code(&err, command))
        }
    }
}

/// Which exit codes a failed command uses.
#[derive(Clone, Copy)]
enum Failing {
    Run,
    Exec,
    Other,
}

/// The one place a failure becomes an exit code, as Docker's: 126 and 127 for a command that
/// cannot be executed or is not found (wherever in the chain of causes), any other failure of
/// `run` 125, and 1 for everything else, including the checks Docker makes before anything is
/// created (`-it` without a terminal).
fn exit_code(err: &anyhow::Error, command: Failing) -> u8 {
    let kind = minibox::error::exit_code(err.as_ref());
    match command {
        _ if err.chain().any(|e| e.is::<commands::NotATty>()) => 1,
        Failing::Run => kind,
        Failing::Exec if kind != EXIT_RUNTIME => kind,
        _ => 1,
    }
}

/// A usage error in one line and 125, as Docker's (`--help` and `--version` print and exit 0).
fn usage(err: clap::Error) -> ExitCode {
    if err.exit_code() == 0 {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let text = err.render().to_string();
    // "error: WHAT", and for a list ("…were not provided:") its indented items.
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut what = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if what.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        what = format!("{what} {}", items.join(", "));
    }
    eprintln!("minibox: {what}: see '{} --help'", command_path());
    ExitCode::from(EXIT_RUNTIME)
}

/// The subcommand the user was typing (`minibox network create`), for the help to point to.
fn command_path() -> String {
    let mut command = <cli::Cli as clap::CommandFactory>::command();
    let mut path = vec!["minibox".to_string()];
    for arg in std::env::args().skip(1) {
        if let Some(sub) = command.find_subcommand(&arg).cloned() {
            path.push(arg);
            command = sub;
        }
    }
    path.join(" ")
}

/// Dies quietly of SIGPIPE when the reader of our output goes away (`minibox images | head -1`),
/// as `ls` and Docker do, rather than panicking on the write.
fn quiet_on_closed_pipe() {
    // SAFETY: sets a signal's disposition to the default before any thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
