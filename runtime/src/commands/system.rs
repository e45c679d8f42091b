//! `minibox system prune` and `system reset`: the ways back to a clean host.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};

use crate::cli::ResetArgs;
use crate::container::{lifecycle, state};
use crate::network::{explainer, store};
use crate::paths::Paths;

/// `system prune`: recovers containers whose owner died, and removes records no container
/// owns any more.
pub fn prune(paths: &Paths, explain: bool) -> Result<u8> {
    let pruned = lifecycle::prune(paths, explain);
    for id in pruned.recovered {
        println!("recovered {id}");
    }
    for id in pruned.removed {
        println!("removed {id}");
    }
    Ok(0)
}

/// `system reset`: removes every container, every network (bridges, minibox's firewall chains
/// and rules), puts back the host settings minibox changed (each to the value it had before
/// minibox first changed it), and with `--all` the store; says what it will do and asks first.
pub fn reset(paths: &Paths, explain: bool, args: &ResetArgs) -> Result<u8> {
    if args.all && paths.root.parent().is_none() {
        bail!(
            "refusing to remove the store at {}: give minibox a root of its own (--root)",
            paths.root.display()
        );
    }
    let store = store(paths);
    let ids = state::ids(paths);
    let mut plan = Vec::new();
    let names: Vec<String> = ids
        .iter()
        .map(|id| {
            let st = state::load_state(paths, id).unwrap_or_default();
            let name = st.name.unwrap_or_else(|| format!("{id:.12}"));
            format!("{name} ({})", st.status.as_str())
        })
        .collect();
    if !names.is_empty() {
        plan.push(format!("containers: {}", names.join(", ")));
    }
    let nets: Vec<String> = store
        .networks()?
        .iter()
        .map(|n| format!("{} (bridge {}, {})", n.name, n.bridge, n.subnet))
        .collect();
    plan.push(format!(
        "networks: {}, with minibox's firewall chains (MINIBOX-*) and their jumps",
        nets.join(", ")
    ));
    for (key, prior) in store.priors()? {
        plan.push(format!("put back {key} = {prior}"));
    }
    if args.all {
        plan.push(format!(
            "the store, images included: {} and {}",
            paths.root.display(),
            paths.runroot.display()
        ));
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "This removes everything minibox made on this host:");
    for line in &plan {
        let _ = writeln!(err, "  - {line}");
    }
    if !args.force && !confirmed()? {
        bail!("system reset: not confirmed: nothing was changed (-f skips the question)");
    }
    let mut failed = Vec::new();
    for id in &ids {
        if let Err(e) = lifecycle::remove(paths, explain, id, true) {
            failed.push(format!("container {id:.12}: {e:#}"));
        }
    }
    let ex = explainer(explain);
    if let Err(e) = minibox_netns::reset(&store, &ex) {
        failed.push(format!("{e}"));
    }
    if args.all && failed.is_empty() {
        ex.say(|| {
            format!(
                "rm -rf {} {}",
                paths.root.display(),
                paths.runroot.display()
            )
        });
        for dir in [&paths.root, &paths.runroot] {
            std::fs::remove_dir_all(dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    if !failed.is_empty() {
        bail!(
            "system reset: {} (run it again once that is fixed)",
            failed.join("; ")
        );
    }
    Ok(0)
}

/// Asks on the terminal (or reads stdin's first line): only `y` or `yes` goes on.
fn confirmed() -> Result<bool> {
    let stdin = std::io::stdin();
    eprint!("Are you sure you want to continue? [y/N] ");
    if !stdin.is_terminal() {
        eprintln!();
    }
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
