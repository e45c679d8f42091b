//! `-u NAME|UID[:GROUP|GID]` resolved against the container's own `/etc/passwd` and
//! `/etc/group`, read by the runtime while it builds the Spec (which carries numbers only): from
//! the image's layers for `run`, from the running container's root for `exec`. Each file is
//! opened with every symlink resolved inside that root, so an image cannot make the runtime read
//! a host file.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// Who the container's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those listing the user by name in `/etc/group`.
    pub groups: Vec<u32>,
    pub home: String,
}

/// Resolves `spec` with the given passwd and group file contents (either may be missing).
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<User, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = entries.iter().find(|f| f[0] == user).or_else(|| {
        user.parse::<u32>()
            .ok()
            .and_then(|_| entries.iter().find(|f| f[2] == user))
    });
    let (name, uid, mut gid, home) = match found {
        Some(f) => {
            let uid = f[2]
                .parse()
                .map_err(|_| format!("bad passwd entry for {user:?}"))?;
            let gid = f[3]
                .parse()
                .map_err(|_| format!("bad passwd entry for {user:?}"))?;
            (Some(f[0]), uid, gid, f[5].to_string())
        }
        None => match user.parse::<u32>() {
            Ok(uid) => (None, uid, 0, "/".to_string()),
            Err(_) => {
                return Err(format!(
                    "unable to find user {user}: no matching entries in passwd file"
                ))
            }
        },
    };
    let groups: Vec<Vec<&str>> = group
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2]
                .parse()
                .map_err(|_| format!("bad group entry for {g:?}"))?,
            None => g.parse().map_err(|_| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        };
    }
    let mut extra: Vec<u32> = match name {
        Some(n) => groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .collect(),
        None => vec![],
    };
    extra.retain(|g| *g != gid);
    extra.sort_unstable();
    extra.dedup();
    Ok(User {
        uid,
        gid,
        groups: extra,
        home,
    })
}

/// What a root holds at a path.
pub enum InRoot {
    File(String),
    /// An overlay whiteout (a 0:0 character device): deleted, lower layers do not count.
    Deleted,
    Missing,
}

/// Reads `path` (relative, such as `etc/passwd`) inside `root`, every symlink resolved within
/// `root` (openat2 RESOLVE_IN_ROOT).
pub fn read_in_root(root: &Path, path: &str) -> InRoot {
    let Ok(dir) = fs::File::open(root) else {
        return InRoot::Missing;
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let Ok(fd) = openat2(&dir, path, how) else {
        return InRoot::Missing;
    };
    let mut file = fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => {
            let mut text = String::new();
            // A passwd file is small: read at most 4 MiB of it.
            match (&mut file).take(4 << 20).read_to_string(&mut text) {
                Ok(_) => InRoot::File(text),
                Err(_) => InRoot::Missing,
            }
        }
        Ok(m) if m.file_type().is_char_device() => InRoot::Deleted,
        _ => InRoot::Missing,
    }
}

/// Resolves `spec` against the passwd and group files found first in `roots` (top first, as
/// overlay layers stack).
pub fn lookup(spec: &str, roots: &[&Path]) -> Result<User, String> {
    let find = |path: &str| {
        for root in roots {
            match read_in_root(root, path) {
                InRoot::File(text) => return Some(text),
                InRoot::Deleted => return None,
                InRoot::Missing => {}
            }
        }
        None
    };
    resolve(
        spec,
        find("etc/passwd").as_deref(),
        find("etc/group").as_deref(),
    )
}

/// The GID of `group` (a name in the group file found first in `roots`, or a number), for
/// `--group-add`.
pub fn group(group: &str, roots: &[&Path]) -> Result<u32, String> {
    lookup(&format!("0:{group}"), roots).map(|u| u.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app\napp:x:1000:\n";

    fn r(spec: &str) -> Result<User, String> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn names_and_ids() {
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(app.home, "/home/app");
        assert_eq!(r("1000").unwrap().home, "/home/app");
        assert_eq!(r("").unwrap().uid, 0);
        let u = r("1234:55").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 55, "/"));
        assert_eq!(r("app:wheel").unwrap().gid, 10);
    }

    #[test]
    fn unknown() {
        assert!(r("nobody")
            .unwrap_err()
            .contains("no matching entries in passwd"));
        assert!(r("app:nogroup").unwrap_err().contains("group file"));
    }
}
