//! `import`: an image of one layer from a plain rootfs tarball.

use std::io::Read;

use oci_spec::image::{
    Arch, Config, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder,
};

use crate::layout::host_arch;
use crate::{changes, reference, Error, Image, Store};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `NAME[:TAG]` to give the image.
    pub name: Option<String>,
    /// Dockerfile instructions (`CMD ["x"]`, `ENV A=b`, ...).
    pub changes: Vec<String>,
    /// What the tarball was (a file name, or `-`): names it in errors and in the history.
    pub source: String,
}

impl Store {
    /// Imports a rootfs tarball (plain, gzip or zstd) read from `reader` in one pass: it is kept
    /// as the layer blob, hashed and unpacked as it streams.
    pub fn import(&self, reader: &mut dyn Read, opts: &ImportOptions) -> Result<Image, Error> {
        // Check the cheap things before reading anything.
        let names = match &opts.name {
            Some(n) => vec![reference::normalize(n)?],
            None => vec![],
        };
        let mut config = Config::default();
        let mut extra = changes::Extra::new();
        for change in &opts.changes {
            changes::apply(&mut config, &mut extra, change)?;
        }
        let mut txn = self.begin()?;
        let layer = txn.add_layer(reader, &opts.source, None, None, None)?;
        let now = created(std::time::SystemTime::now());
        let image_config = ImageConfigurationBuilder::default()
            .created(now.clone())
            .architecture(Arch::from(host_arch()))
            .os(Os::from("linux"))
            .config(config)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![layer.diff_id.clone()])
                    .build()
                    .map_err(|e| Error::invalid(e.to_string()))?,
            )
            .history(vec![HistoryBuilder::default()
                .created(now)
                .created_by("minibox import")
                .comment(format!("Imported from {}", opts.source))
                .build()
                .map_err(|e| Error::invalid(e.to_string()))?])
            .build()
            .map_err(|e| Error::invalid(e.to_string()))?;
        let bytes = config_bytes(&image_config, &extra);
        let id = txn.add_image(&bytes, vec![layer.blob], &names)?;
        txn.commit()?;
        self.image(&id)
    }
}

/// The config as Go's encoding/json writes it: fields in declaration order (as serde writes
/// them) and map keys sorted (oci-spec writes its maps from a HashMap, in any order), with the
/// `extra` fields oci-spec has no place for after its own. The same config then always has the
/// same ID, which re-encoding by Go tools (skopeo) keeps.
pub(crate) fn config_bytes(config: &ImageConfiguration, extra: &changes::Extra) -> Vec<u8> {
    let mut value = serde_json::to_value(config).expect("serializable");
    if !extra.is_empty() {
        if let Some(image) = value.as_object_mut() {
            let section = image
                .entry("config")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let Some(c) = section.as_object_mut() {
                for (k, v) in extra {
                    c.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if let Some(c) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        for map in c.values_mut().filter_map(|v| v.as_object_mut()) {
            map.sort_keys();
        }
    }
    serde_json::to_vec(&value).expect("serializable")
}

/// The creation time as Go's RFC3339Nano writes it (trailing zeros of the fraction dropped),
/// as Docker does: tools that re-encode the config in Go (skopeo converting to OCI) then
/// reproduce the same bytes, so the image keeps its ID.
pub(crate) fn created(time: std::time::SystemTime) -> String {
    let full = humantime::format_rfc3339_nanos(time).to_string();
    let fraction = full.trim_end_matches('Z').trim_end_matches('0');
    format!("{}Z", fraction.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::created;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn created_is_written_as_go_writes_it() {
        let at = |ns: u64| created(UNIX_EPOCH + Duration::from_nanos(ns));
        assert_eq!(at(1_795_890_277_000_000_000), "2026-11-28T18:24:37Z");
        assert_eq!(at(1_795_890_277_120_000_000), "2026-11-28T18:24:37.12Z");
        assert_eq!(
            at(1_795_890_277_000_000_005),
            "2026-11-28T18:24:37.000000005Z"
        );
        assert_eq!(at(1_795_890_277_100_000_000), "2026-11-28T18:24:37.1Z");
    }
}
