//! minibox: a small container runtime that runs a process in its own network stack. This binary
//! is the Docker-style command line: it parses, calls the library (`lib.rs`) and prints.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
// The library's modules, under the same paths the commands have always used.
use minibox::container::process::EXIT_RUNTIME;
use minibox::{container, network, paths};

fn main() -> ExitCode {
    // A container's supervisor: exec'd by `run -d`, kept lean (no command line parsing).
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(container::supervisor::FLAG.as_ref()) {
        container::supervisor::main(args.collect());
    }
    let cli = cli::Cli::parse();
    init_logging(&cli.global.log_level);
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("minibox: {}", one_line(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The one place a failure becomes an exit code: its kind's when the library says (126, 127 for
/// a command that cannot be executed or is not found, wherever in the chain of causes), else 125.
fn exit_code(err: &anyhow::Error) -> u8 {
    minibox::error::exit_code(err.as_ref())
}

/// Joins an error chain into the one line users see: `what failed: why`.
fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
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
