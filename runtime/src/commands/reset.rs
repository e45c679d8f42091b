//! `minibox system reset`: the way back to a host as it was before minibox.

use anyhow::{bail, Context, Result};

use super::container::confirmed;
use crate::cli::ResetArgs;
use crate::container::{lifecycle, state};
use crate::network::{explainer, store};
use crate::paths::Paths;

/// Removes every container, every network (bridges, minibox's firewall), puts back the host
/// settings minibox changed (each to the value it had before minibox first changed it), and
/// with `--all` the store; says what it will do and asks first.
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
        "networks: {}, with minibox's firewall (the MINIBOX-* chains and their jumps, the \
         inet minibox table)",
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
    let warning = format!(
        "This removes everything minibox made on this host:\n{}",
        plan.iter()
            .map(|l| format!("  - {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if !confirmed(&warning, args.force) {
        bail!("system reset: not confirmed: nothing was changed (-f skips the question)");
    }
    let mut failed = Vec::new();
    for id in &ids {
        if let Err(e) = lifecycle::remove(paths, explain, id, true) {
            failed.push(format!(
                "container {id:.12}: {}",
                minibox::error::one_line(&e)
            ));
        }
    }
    let ex = explainer(explain);
    if let Err(e) = minibox_netns::reset(&store, &ex) {
        failed.push(format!("{e}"));
    }
    if let Err(e) = minibox::container::mntns::remove(&paths.mount_ns_base()) {
        failed.push(format!("unpinning the base mount namespace: {e}"));
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
