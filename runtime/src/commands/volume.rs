//! `minibox volume create|ls|inspect|rm|prune`.

use anyhow::{bail, Result};

use crate::cli::{ObjectType, VolumeCommand};
use crate::container::volume;
use crate::paths::Paths;

pub fn volume(paths: &Paths, cmd: VolumeCommand) -> Result<u8> {
    match cmd {
        VolumeCommand::Create { name } => {
            let name = match name {
                Some(n) => n,
                None => volume::anonymous_name()?,
            };
            let _lock = volume::lock(paths)?;
            volume::create(paths, &name, false)?;
            println!("{name}");
        }
        VolumeCommand::Ls { quiet } => {
            let mut rows = vec![["DRIVER", "VOLUME NAME"].map(String::from)];
            for v in volume::list(paths) {
                match quiet {
                    true => println!("{}", v.name),
                    false => rows.push(["local".to_string(), v.name]),
                }
            }
            if !quiet {
                print!("{}", super::table::render(&rows));
            }
        }
        VolumeCommand::Inspect { format, volumes } => {
            return super::inspect::inspect(
                paths,
                false,
                Some(ObjectType::Volume),
                &volumes,
                format.as_deref(),
            );
        }
        VolumeCommand::Rm { force, volumes } => {
            let _lock = volume::lock(paths)?;
            let mut failed = None;
            for name in &volumes {
                match volume::remove(paths, name) {
                    Ok(()) => println!("{name}"),
                    Err(volume::Error::NoSuchVolume(_)) if force => {}
                    Err(e) => {
                        eprintln!("minibox: cannot remove volume {name}: {e}");
                        failed = Some(name.clone());
                    }
                }
            }
            if failed.is_some() {
                return Ok(1);
            }
        }
        VolumeCommand::Prune { all, force: _ } => {
            let _lock = volume::lock(paths)?;
            let mut freed = 0u64;
            println!("Deleted Volumes:");
            for v in volume::list(paths) {
                if (v.anonymous || all) && volume::users(paths, &v.name).is_empty() {
                    freed += du(&volume::data(paths, &v.name));
                    match volume::remove(paths, &v.name) {
                        Ok(()) => println!("{}", v.name),
                        Err(e) => bail!("removing volume {}: {e}", v.name),
                    }
                }
            }
            println!("\nTotal reclaimed space: {freed}B");
        }
    }
    Ok(0)
}

/// A volume as Docker's `volume inspect` shows it.
pub(super) fn document(paths: &Paths, name: &str) -> Result<serde_json::Value> {
    let v = volume::get(paths, name)?;
    let created = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(v.created),
    );
    let mut labels = serde_json::Map::new();
    if v.anonymous {
        labels.insert("com.docker.volume.anonymous".into(), "".into());
    }
    Ok(serde_json::json!({
        "CreatedAt": created.to_string(),
        "Driver": "local",
        "Labels": labels,
        "Mountpoint": volume::data(paths, &v.name),
        "Name": v.name,
        "Options": null,
        "Scope": "local",
    }))
}

/// Bytes of file content under `dir` (not following symlinks).
fn du(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
