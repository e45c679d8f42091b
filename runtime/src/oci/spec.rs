//! `spec`: writes a starting config.json into a bundle, as `runc spec` does: `sh` on a terminal,
//! the usual namespaces, mounts, masks and capabilities.

use std::path::Path;

use oci_spec::runtime::Spec;

use super::{OciError, Result};

pub fn write(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(OciError::Invalid(format!(
            "{} exists: remove it first",
            path.display()
        )));
    }
    let mut spec = Spec::default();
    // runc's starting spec runs `sh` on a terminal.
    if let Some(mut process) = spec.process().clone() {
        process.set_terminal(Some(true));
        spec.set_process(Some(process));
    }
    let data = serde_json::to_vec_pretty(&spec).expect("a Spec serialises");
    std::fs::write(&path, data).map_err(|e| OciError::io(format!("writing {}", path.display()), e))
}
