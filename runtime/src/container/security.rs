//! The child's last steps before exec: identity, capabilities, no_new_privs, rlimits, fds.

use caps::{CapSet, CapsHashSet};
use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};

use super::user::User;

/// Makes the process non-dumpable: no ptrace and a root-owned /proc/PID until exec (which resets
/// it), so the container cannot reach the runtime's memory or binary (CVE-2019-5736).
pub fn set_non_dumpable() -> Result<(), String> {
    prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")
}

/// Drops capabilities outside `keep` from the bounding set, switches to `user`, then sets the
/// permitted and effective sets: `keep` for root, empty for other users (as Docker does).
pub fn switch_user(user: &User, keep: &CapsHashSet) -> Result<(), String> {
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    // Keep the permitted set across setuid so a dropped CAP_SETUID does not stop us midway.
    prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    let groups: Vec<Gid> = user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).map_err(|e| format!("setgroups: {e}"))?;
    setgid(Gid::from_raw(user.gid)).map_err(|e| format!("setgid {}: {e}", user.gid))?;
    setuid(Uid::from_raw(user.uid)).map_err(|e| format!("setuid {}: {e}", user.uid))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")?;
    // Never more than this process holds (this VM's root lacks CAP_SYS_RESOURCE, for one).
    let held =
        caps::read(None, CapSet::Permitted).map_err(|e| format!("reading capabilities: {e}"))?;
    let set = if user.uid == 0 {
        keep.intersection(&held).copied().collect()
    } else {
        CapsHashSet::new()
    };
    let fail = |what: &str, e: caps::errors::CapsError| format!("setting {what} capabilities: {e}");
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    caps::set(None, CapSet::Effective, &set).map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &set).map_err(|e| fail("permitted", e))?;
    Ok(())
}

/// Kills the container's PID 1 (and so the whole container) if `minibox run` dies: nothing else
/// would tear it down. Set after the switch of user, which clears it.
pub fn die_with_parent() -> Result<(), String> {
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "PR_SET_PDEATHSIG",
    )
}

pub fn set_no_new_privs() -> Result<(), String> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
}

/// RLIMIT_NOFILE 1024 like runc's default, but never above the current hard limit (raising it
/// needs CAP_SYS_RESOURCE, which the container does not get).
pub fn set_rlimits() -> Result<(), String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit: {e}"))?;
    let n = hard.min(1024);
    setrlimit(Resource::RLIMIT_NOFILE, n, n).map_err(|e| format!("setrlimit NOFILE: {e}"))
}

/// Marks every fd >= 3 close-on-exec, so nothing of the runtime's leaks into the container
/// (CVE-2024-21626) while the sync socket still reports an exec failure.
/// Closes every descriptor above stdio that the set-up inherited from the runtime but `keep`
/// (its channel): the container's lock above all, which must go with the runtime, so that a
/// runtime killed during the set-up leaves a container that the next command recovers at once.
pub fn close_inherited(keep: std::os::fd::RawFd) -> Result<(), String> {
    let keep = keep as u32;
    for (first, last) in [(3, keep.saturating_sub(1)), (keep + 1, u32::MAX)] {
        // SAFETY: closes only this process's own descriptors, none of which is used again.
        if first <= last && unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } < 0 {
            return Err(format!("close_range: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

pub fn cloexec_from_3() -> Result<(), String> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(format!("close_range: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<(), String> {
    // SAFETY: plain prctl calls with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
