//! `list`: every container of `--root` with its state.

use super::Root;

/// The `state` documents of every container.
pub fn list(root: &Root) -> Vec<serde_json::Value> {
    root.ids()
        .iter()
        .filter_map(|id| root.load(id).ok())
        .map(|record| root.document(&record))
        .collect()
}
