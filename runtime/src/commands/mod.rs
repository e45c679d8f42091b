//! One module per group of subcommands; each returns the process exit code.

mod image;
mod network;
mod run;

use anyhow::Result;

use crate::cli::{Cli, Command, ImageCommand};
use crate::paths::Paths;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let paths = Paths::new(&cli.global.root, &cli.global.runroot);
    match cli.command {
        Command::Import(args) => image::import(&paths, args),
        Command::Load(args) => image::load(&paths, args),
        Command::Save(args) => image::save(&paths, args),
        Command::Images | Command::Image(ImageCommand::Ls) => image::list(&paths),
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => image::remove(&paths, args),
        Command::Image(ImageCommand::Inspect { images }) => image::inspect(&paths, &images),
        Command::Run(args) => run::run(&paths, &cli.global, *args),
        Command::Network(cmd) => network::network(&paths, &cli.global, cmd),
        Command::Port(args) => network::port(&paths, args),
    }
}
