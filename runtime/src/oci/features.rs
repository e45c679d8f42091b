//! `features`: what this runtime supports, in the runtime-spec's features document.

use super::state::OCI_VERSION;

pub fn document() -> serde_json::Value {
    let caps: Vec<String> = caps::all()
        .into_iter()
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "dev", "diratime", "dirsync", "exec",
                         "noatime", "nodev", "nodiratime", "noexec", "norelatime",
                         "nostrictatime", "nosuid", "private", "rbind", "relatime", "ro",
                         "rprivate", "rshared", "rslave", "runbindable", "rw", "shared",
                         "slave", "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": true },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.runtime": "minibox-runc",
            "io.github.minibox.version": env!("CARGO_PKG_VERSION")
        }
    })
}
