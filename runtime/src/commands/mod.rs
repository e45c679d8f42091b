//! One module per group of subcommands; each returns the process exit code.

mod container;
mod doctor;
mod events;
mod exec;
mod image;
mod network;
mod registry;
mod run;
mod system;
mod table;
mod update;

use anyhow::Result;

use crate::cli::{Cli, Command, ImageCommand, ProcessArgs, SystemCommand};
use crate::paths::Paths;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let paths = Paths::new(&cli.global.root, &cli.global.runroot);
    let explain = cli.global.explain;
    paths.secure()?;
    // Commands that list containers or claim names, ports and addresses first undo what
    // containers whose owner died still hold; a command on one container recovers only that
    // one (`resolve`); image commands touch no container. `system prune` says what it found.
    if sweeps(&cli.command) {
        crate::container::lifecycle::recover_all(&paths, explain);
    }
    match cli.command {
        Command::Import(args) => image::import(&paths, args),
        Command::Load(args) => image::load(&paths, args),
        Command::Save(args) => image::save(&paths, args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => {
            image::list(&paths, &args)
        }
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => image::remove(&paths, args),
        Command::Image(ImageCommand::Inspect { images }) => image::inspect(&paths, &images),
        Command::Pull(args) => registry::pull(&paths, &cli.global, &args),
        Command::Push(args) => registry::push(&paths, &cli.global, &args),
        Command::Tag { source, target } => registry::tag(&paths, &source, &target),
        Command::Login(args) => registry::login(&cli.global, &args),
        Command::Logout { registry } => registry::logout(registry.as_deref()),
        Command::Run(args) => run::run(&paths, &cli.global, *args),
        Command::Create(args) => run::create(&paths, &cli.global, *args),
        Command::Network(cmd) => network::network(&paths, &cli.global, cmd),
        Command::Port(args) => network::port(&paths, args),
        Command::Ps(args) => container::ps(&paths, &args),
        Command::Inspect { containers } => container::inspect(&paths, explain, &containers),
        Command::Logs(args) => container::logs(&paths, &args),
        Command::Stop(args) => container::stop(&paths, explain, &args),
        Command::Kill(args) => container::kill(&paths, explain, &args),
        Command::Rm(args) => container::rm(&paths, explain, &args),
        Command::Start { containers } => container::start(&paths, explain, &containers),
        Command::Events(args) => events::events(&paths, &args),
        Command::Healthcheck { container } => container::healthcheck(&paths, &container),
        Command::Restart(args) => container::restart(&paths, explain, &args),
        Command::Wait { containers } => container::wait(&paths, explain, &containers),
        Command::Exec(args) => exec::exec(&paths, args),
        Command::Doctor(args) => doctor::doctor(&paths, explain, &args),
        Command::Update(args) => update::update(&paths, explain, &args),
        Command::System(SystemCommand::Prune { .. }) => system::prune(&paths, explain),
        Command::System(SystemCommand::Reset(args)) => system::reset(&paths, explain, &args),
        Command::System(SystemCommand::Boot) => container::boot(&paths, explain),
    }
}

/// Whether `command` first recovers every container whose owner died.
fn sweeps(command: &Command) -> bool {
    matches!(
        command,
        Command::Run(_)
            | Command::Create(_)
            | Command::Ps(_)
            | Command::Network(_)
            | Command::Rmi(_)
    ) || matches!(command, Command::Image(ImageCommand::Rm(_)))
}

/// Finds a container by name, full id or unique id prefix, recovering it first if its owner
/// died.
fn resolve(paths: &Paths, explain: bool, what: &str) -> Result<String> {
    let id = crate::container::state::resolve(paths, what)?;
    crate::container::lifecycle::settle(paths, explain, &id);
    Ok(id)
}

/// Docker's refusal of `-it` when standard input is not a terminal: there is no terminal to put
/// in raw mode and relay.
#[derive(Debug, thiserror::Error)]
#[error("the input device is not a TTY: drop -t, or run from a terminal")]
pub struct NotATty;

/// Checks `-i -t` against the caller's standard input.
fn check_tty(process: &ProcessArgs) -> Result<()> {
    if process.tty && process.interactive && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
    {
        return Err(NotATty.into());
    }
    Ok(())
}
