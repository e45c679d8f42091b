//! The child's last steps before exec, as the Spec's `process` says: identity, the five
//! capability sets, no_new_privs, rlimits, a session keyring of its own, descriptors.

use caps::{CapSet, CapsHashSet};
use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimit, User};

use super::error::{Result, SetupError};
use super::spec::from_oci;

/// Makes the process non-dumpable: no ptrace and a root-owned /proc/PID until exec (which resets
/// it), so the container cannot reach the runtime's memory or binary (CVE-2019-5736).
pub fn set_non_dumpable() -> Result<()> {
    prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")
}

/// Makes the process root of the user namespace it was born in or joined (its uid and gid 0
/// there), as runc does before the rest of the set-up: files it makes are then owned by the
/// namespace's root, and it keeps its capabilities there.
pub fn become_namespace_root() -> Result<()> {
    let (gid, uid) = (Gid::from_raw(0), Uid::from_raw(0));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| {
        SetupError::sys("becoming gid 0 in the user namespace (is gid 0 mapped?)", e)
    })?;
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| SetupError::sys("becoming uid 0 in the user namespace (is uid 0 mapped?)", e))
}

/// Gives the process a new anonymous session keyring, as runc does: the keys of the session
/// minibox was started from (the host's) are not the container's to read or change.
pub fn new_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a null name joins a new anonymous keyring; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        return Err(SetupError::last("creating a session keyring"));
    }
    Ok(())
}

/// Applies the Spec's capability sets around the switch to `user`: the bounding set first, then
/// the identity (keeping the permitted set across it, so a dropped CAP_SETUID does not stop us
/// midway), then inheritable, permitted, effective and ambient. Never more than this process
/// holds (this VM's root lacks CAP_SYS_RESOURCE, for one).
pub fn switch_user(user: &User, sets: Option<&LinuxCapabilities>) -> Result<()> {
    let set = |s: Option<&oci_spec::runtime::Capabilities>| s.map(from_oci).unwrap_or_default();
    let bounding = set(sets.and_then(|c| c.bounding().as_ref()));
    for cap in caps::all() {
        if !bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                SetupError::new(format!("dropping {cap} from the bounding set: {e}"))
            })?;
        }
    }
    prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).map_err(|e| SetupError::sys("setgroups", e))?;
    setgid(Gid::from_raw(user.gid()))
        .map_err(|e| SetupError::sys(format!("setgid {}", user.gid()), e))?;
    setuid(Uid::from_raw(user.uid()))
        .map_err(|e| SetupError::sys(format!("setuid {}", user.uid()), e))?;
    prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS")?;
    let held = caps::read(None, CapSet::Permitted)
        .map_err(|e| SetupError::new(format!("reading capabilities: {e}")))?;
    let held = |s: CapsHashSet| -> CapsHashSet { s.intersection(&held).copied().collect() };
    let fail = |what: &str, e: caps::errors::CapsError| {
        SetupError::new(format!("setting {what} capabilities: {e}"))
    };
    // No `capabilities` at all means none (not oci-spec's default sets).
    let permitted = held(set(sets.and_then(|c| c.permitted().as_ref())));
    let inheritable = held(set(sets.and_then(|c| c.inheritable().as_ref())));
    caps::set(None, CapSet::Inheritable, &inheritable).map_err(|e| fail("inheritable", e))?;
    caps::set(
        None,
        CapSet::Effective,
        &held(set(sets.and_then(|c| c.effective().as_ref()))),
    )
    .map_err(|e| fail("effective", e))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| fail("permitted", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    // The kernel keeps an ambient capability only while it is permitted and inheritable; as
    // runc, one that is not is left out rather than failing (runc's own `spec` asks for some).
    for cap in set(sets.and_then(|c| c.ambient().as_ref())) {
        if permitted.contains(&cap) && inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap).map_err(|e| fail("ambient", e))?;
        }
    }
    Ok(())
}

/// Kills the container's PID 1 (and so the whole container) if `minibox run` dies: nothing else
/// would tear it down. Set after the switch of user, which clears it.
pub fn die_with_parent() -> Result<()> {
    prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "PR_SET_PDEATHSIG",
    )
}

/// Clears the parent-death signal: an OCI container outlives the `create` that made it.
pub fn keep_after_parent() -> Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, 0, "PR_SET_PDEATHSIG")
}

pub fn set_no_new_privs() -> Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
}

/// The Spec's rlimits, each never above the current hard limit: raising one needs
/// CAP_SYS_RESOURCE, which the container does not get (and this VM's root lacks).
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let resource = r.typ() as libc::c_int;
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid resource number and our own struct.
        if unsafe { libc::getrlimit(resource as _, &mut now) } < 0 {
            return Err(SetupError::last(format!("getrlimit {:?}", r.typ())));
        }
        let hard = r.hard().min(now.rlim_max);
        let new = libc::rlimit {
            rlim_cur: r.soft().min(hard),
            rlim_max: hard,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(resource as _, &new) } < 0 {
            return Err(SetupError::last(format!("setrlimit {:?}", r.typ())));
        }
    }
    Ok(())
}

/// Writes the process's OOM score adjustment (`process.oomScoreAdj`).
pub fn set_oom_score_adj(adj: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string())
        .map_err(|e| SetupError::io("setting oom_score_adj", &e))
}

/// `close_range(2)`: closes this process's descriptors `first..=last`, or with `cloexec` marks
/// them close-on-exec. The one place minibox's runtime side calls it.
pub fn close_range(first: u32, last: u32, cloexec: bool) -> Result<()> {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    // SAFETY: acts only on this process's own descriptors, which the callers use no more.
    if first <= last && unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) } < 0 {
        return Err(SetupError::last("close_range"));
    }
    Ok(())
}

/// Closes every descriptor above stdio that the set-up inherited from the runtime but `keep`
/// (its channel, and for OCI `create` the exec fifo's directory and `--preserve-fds`): the
/// container's lock above all, which must go with the runtime, so that a runtime killed during
/// the set-up leaves a container that the next command recovers at once.
pub fn close_inherited(keep: &[std::os::fd::RawFd]) -> Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .map(|&fd| fd as u32)
        .filter(|&fd| fd >= 3)
        .collect();
    keep.sort_unstable();
    let mut first = 3u32;
    for k in keep {
        close_range(first, k.saturating_sub(1), false)?;
        first = k.saturating_add(1);
    }
    close_range(first, u32::MAX, false)
}

/// Marks every fd from `first` on close-on-exec, so nothing of the runtime's leaks into the
/// container (CVE-2024-21626) while the sync socket still reports an exec failure.
pub fn cloexec_from(first: u32) -> Result<()> {
    close_range(first, u32::MAX, true)
}

fn prctl(option: libc::c_int, arg: libc::c_ulong, what: &str) -> Result<()> {
    // SAFETY: plain prctl calls with integer arguments.
    if unsafe { libc::prctl(option, arg, 0, 0, 0) } < 0 {
        return Err(SetupError::last(what));
    }
    Ok(())
}
