//! `minibox-cni`: minibox's bridge, addresses and published ports as a CNI plugin. Runtimes run
//! it with `CNI_*` in the environment and the network configuration on stdin; the result (or
//! the spec's error object) goes to stdout.

use std::process::ExitCode;

fn main() -> ExitCode {
    let (answer, status) = minibox_netns::cni::main();
    if !answer.is_null() {
        println!("{answer}");
    }
    ExitCode::from(status as u8)
}
