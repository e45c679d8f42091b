//! One module per group of subcommands; each returns the process exit code.

mod container;
mod cp;
mod doctor;
mod events;
mod exec;
mod filesystem;
mod image;
mod inspect;
mod network;
mod ps;
mod registry;
mod reset;
mod run;
mod stats;
mod system;
mod table;
mod template;
mod top;
mod units;
mod update;
mod volume;

use anyhow::Result;

use crate::cli::{
    Cli, Command, ContainerCommand, ImageCommand, ObjectType, ProcessArgs, SystemCommand,
};
use crate::paths::Paths;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let paths = Paths::new(&cli.global.root, &cli.global.runroot);
    let explain = cli.global.explain;
    paths.secure()?;
    // `ps` and `container prune` first undo what containers whose owner died still hold (`ps`
    // shows them exited, and leaves nothing of a crash behind); other commands recover only
    // the containers in their way: `run` and `create` the holders of the name, ports and
    // address they claim, `rmi` the users of its images, `network` the containers on the
    // networks it removes or rebuilds, a command on one container that one (`resolve`).
    // `system prune` says what it found.
    if sweeps(&cli.command) {
        crate::container::lifecycle::recover_all(&paths, explain);
    } else if matches!(
        cli.command,
        Command::Run(_) | Command::Create(_) | Command::Network(_)
    ) {
        crate::network::recover(&paths);
    }
    match cli.command {
        Command::Import(args) => image::import(&paths, args),
        Command::Load(args) => image::load(&paths, args),
        Command::Save(args) => image::save(&paths, args),
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => {
            image::list(&paths, &args)
        }
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => {
            image::remove(&paths, explain, args)
        }
        Command::Image(ImageCommand::Inspect { format, images }) => inspect::inspect(
            &paths,
            explain,
            Some(ObjectType::Image),
            &images,
            format.as_deref(),
        ),
        Command::Pull(args) => registry::pull(&paths, &cli.global, &args),
        Command::Push(args) => registry::push(&paths, &cli.global, &args),
        Command::Tag { source, target } => registry::tag(&paths, &source, &target),
        Command::Login(args) => registry::login(&cli.global, &args),
        Command::Logout { registry } => registry::logout(registry.as_deref()),
        Command::Run(args) => run::run(&paths, &cli.global, *args),
        Command::Create(args) => run::create(&paths, &cli.global, *args),
        Command::Network(cmd) => network::network(&paths, &cli.global, cmd),
        Command::Port(args) => network::port(&paths, args),
        Command::Ps(args) => ps::ps(&paths, &args),
        Command::Inspect(args) => inspect::inspect(
            &paths,
            explain,
            args.kind,
            &args.names,
            args.format.as_deref(),
        ),
        Command::Logs(args) => container::logs(&paths, &args),
        Command::Stop(args) => container::stop(&paths, explain, &args),
        Command::Kill(args) => container::kill(&paths, explain, &args),
        Command::Rm(args) => container::rm(&paths, explain, &args),
        Command::Start(args) => container::start(&paths, explain, &args),
        Command::Events(args) => events::events(&paths, &args),
        Command::Healthcheck { container } => container::healthcheck(&paths, &container),
        Command::Restart(args) => container::restart(&paths, explain, &args),
        Command::Wait { containers } => container::wait(&paths, explain, &containers),
        Command::Exec(args) => exec::exec(&paths, args),
        Command::Doctor(args) => doctor::doctor(&paths, explain, &args),
        Command::Update(args) => update::update(&paths, explain, &args),
        Command::Volume(cmd) => volume::volume(&paths, cmd),
        Command::Diff { container } => filesystem::diff(&paths, explain, &container),
        Command::Export { output, container } => {
            filesystem::export(&paths, explain, &container, output.as_deref())
        }
        Command::Commit(args) => filesystem::commit(&paths, explain, &args),
        Command::Cp {
            source,
            destination,
        } => cp::cp(&paths, explain, &source, &destination),
        Command::System(SystemCommand::Prune { .. }) => container::prune(&paths, explain),
        Command::System(SystemCommand::Reset(args)) => reset::reset(&paths, explain, &args),
        Command::System(SystemCommand::Boot) => container::boot(&paths, explain),
        Command::System(SystemCommand::Df { format }) => system::df(&paths, format.as_deref()),
        Command::Top { container, options } => top::top(&paths, explain, &container, &options),
        Command::Stats(args) => stats::stats(&paths, explain, &args),
        Command::Pause { containers } => container::pause(&paths, explain, &containers),
        Command::Unpause { containers } => container::unpause(&paths, explain, &containers),
        Command::Rename { container, name } => {
            container::rename(&paths, explain, &container, &name)
        }
        Command::History(args) | Command::Image(ImageCommand::History(args)) => {
            image::history(&paths, &args)
        }
        Command::Image(ImageCommand::Prune(args)) => image::prune(&paths, &args),
        Command::Version { format } => system::version(format.as_deref()),
        Command::Info { format } => system::info(&paths, format.as_deref()),
        Command::Attach { container, .. } => container::attach(&paths, explain, &container),
        Command::Container(ContainerCommand::Prune { force }) => {
            container::container_prune(&paths, explain, force)
        }
    }
}

/// Whether `command` first recovers every container whose owner died.
fn sweeps(command: &Command) -> bool {
    matches!(
        command,
        Command::Ps(_) | Command::Container(ContainerCommand::Prune { .. })
    )
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
