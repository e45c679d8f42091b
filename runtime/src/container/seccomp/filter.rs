//! The OCI `linux.seccomp` form compiled by libseccomp, as runc and youki read it: the default
//! action and errno, extra architectures, one rule per syscall name with its action, errno and
//! argument conditions (ANDed in one rule; as separate, ORed rules when an argument is compared
//! more than once), names this architecture does not know skipped.
//!
//! [`compile`] runs in the runtime; the container's process only [`Program::load`]s the result.
//! Compiling Docker's profile takes milliseconds, so [`compile_cached`] keeps each program in a
//! root-only directory, named by a digest of the filter, the libseccomp version and this format.

use std::io::{Read, Seek, Write};
use std::path::Path;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

use super::Error;

/// A compiled filter: the kernel's BPF instructions and the flags to load them with.
pub struct Program {
    code: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// Compiles `seccomp` for this machine.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Program, Error> {
    let fail = |what: &str| {
        let what = what.to_string();
        move |source| Error::Compile { what, source }
    };
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(fail("creating the filter"))?;
    // A binary tree of syscall numbers instead of a list: far fewer instructions run per call,
    // and the kernel's per-syscall verdict cache, computed when the filter is loaded, is built
    // in a fraction of the time.
    ctx.set_ctl_optimize(2).map_err(fail("optimising"))?;
    for arch in seccomp.architectures().iter().flatten() {
        let name = arch.to_string();
        let arch = ScmpArch::from_str(&name).map_err(fail(&name))?;
        ctx.add_arch(arch).map_err(fail(&name))?;
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        // libseccomp refuses a rule that repeats the default; it changes nothing anyway.
        if act == default {
            continue;
        }
        for name in rule.names() {
            // Names of other architectures, or newer than this libseccomp, are skipped, as
            // runc skips them: the default action applies to them.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            add_rule(&mut ctx, act, call, rule).map_err(fail(name))?;
        }
    }
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    Ok(Program {
        code: export(&ctx)?,
        flags,
    })
}

/// [`compile`], or the program compiled for the same filter before, read from `cache`. A cache
/// that cannot be written only costs the time to compile again.
pub fn compile_cached(seccomp: &LinuxSeccomp, cache: &Path) -> Result<Program, Error> {
    use sha2::{Digest, Sha256};
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut digest = Sha256::new();
    digest.update(format!("minibox-seccomp 1 libseccomp {version}\n"));
    digest.update(serde_json::to_vec(seccomp).unwrap_or_default());
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = cache.join(format!("{hex}.bpf"));
    if let Some(p) = std::fs::read(&file)
        .ok()
        .and_then(|b| Program::from_bytes(&b))
    {
        return Ok(p);
    }
    let program = compile(seccomp)?;
    let _ = program.store(cache, &file);
    Ok(program)
}

impl Program {
    /// Loads the filter into this process (inherited by its children and kept across exec).
    /// Needs no_new_privs set, or CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<(), Error> {
        let prog = libc::sock_fprog {
            len: self.code.len() as u16,
            filter: self.code.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `len` instructions that live as long as `self`; the kernel
        // copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(Error::Load(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The flags, then the instructions, each in the machine's byte order.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.flags.to_ne_bytes().to_vec();
        for i in &self.code {
            out.extend(i.code.to_ne_bytes());
            out.extend([i.jt, i.jf]);
            out.extend(i.k.to_ne_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Program> {
        let (flags, code) = bytes.split_first_chunk::<{ size_of::<libc::c_ulong>() }>()?;
        if code.is_empty() || code.len() % 8 != 0 || code.len() / 8 > u16::MAX as usize {
            return None;
        }
        Some(Program {
            flags: libc::c_ulong::from_ne_bytes(*flags),
            code: instructions(code),
        })
    }

    /// Written under a temporary name, then renamed: readers see a whole program or none.
    fn store(&self, dir: &Path, file: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&self.to_bytes())?;
        std::fs::rename(&tmp, file)
    }
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, Error> {
    // EPERM when a profile gives no errno, as the OCI spec and runc have it.
    let errno = errno.map_or(libc::EPERM, |e| e as i32);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Unsupported(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which minibox does not have".into(),
            ))
        }
    })
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    act: ScmpAction,
    call: ScmpSyscall,
    rule: &LinuxSyscall,
) -> Result<(), libseccomp::error::SeccompError> {
    let conds: Vec<ScmpArgCompare> = rule
        .args()
        .iter()
        .flatten()
        .map(|a| {
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                // The OCI form gives the mask as value and the expected bits as valueTwo.
                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                    return ScmpArgCompare::new(
                        a.index() as u32,
                        ScmpCompareOp::MaskedEqual(a.value()),
                        a.value_two().unwrap_or(0),
                    )
                }
            };
            ScmpArgCompare::new(a.index() as u32, op, a.value())
        })
        .collect();
    let indexes: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
    let repeated = (1..indexes.len()).any(|i| indexes[..i].contains(&indexes[i]));
    if repeated {
        for cond in conds {
            ctx.add_rule_conditional(act, call, &[cond])?;
        }
    } else {
        ctx.add_rule_conditional(act, call, &conds)?;
    }
    Ok(())
}

/// libseccomp's BPF for the filter, read back from a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, Error> {
    let io = |e: std::io::Error| Error::Unsupported(format!("exporting the program: {e}"));
    let fd =
        nix::sys::memfd::memfd_create(c"minibox-seccomp", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| io(e.into()))?;
    ctx.export_bpf(&fd).map_err(|source| Error::Compile {
        what: "exporting the program".into(),
        source,
    })?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind().map_err(io)?;
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(instructions(&bytes))
}

/// BPF instructions from their bytes: u16 code, u8 jt, u8 jf, u32 k, in the machine's order.
fn instructions(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::profile::{docker_default, Host};
    use super::*;

    /// Runs `f` in a forked child with no_new_privs set (so that loading needs no privilege)
    /// and returns its exit code.
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` and leaves without the parent's exit handlers.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: a plain prctl.
                    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                    f()
                }))
                .unwrap_or(99);
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                match nix::sys::wait::waitpid(child, None).unwrap() {
                    nix::sys::wait::WaitStatus::Exited(_, code) => code,
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    fn errno_of(r: libc::c_long) -> i32 {
        if r < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap()
        } else {
            0
        }
    }

    #[test]
    fn docker_default_loads_and_answers_as_docker() {
        let caps = crate::container::spec::DEFAULT_CAPS.into_iter().collect();
        let p = docker_default(&caps, &Host::current());
        let dir = std::env::temp_dir().join(format!("minibox-bpf-{}", std::process::id()));
        let prog = compile_cached(&p, &dir).unwrap();
        // The second time from the cache, the same program.
        let again = compile_cached(&p, &dir).unwrap();
        assert_eq!(again.to_bytes(), prog.to_bytes());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();

        // SAFETY (all three): raw system calls with integer arguments.
        let unshare = || errno_of(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) });
        let clone3 = || errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) });
        let getpid = || errno_of(unsafe { libc::syscall(libc::SYS_getpid) });
        let code = in_child(|| {
            prog.load().unwrap();
            (unshare() == libc::EPERM && clone3() == libc::ENOSYS && getpid() == 0) as i32
        });
        assert_eq!(code, 1);
    }

    #[test]
    fn rules_with_arguments_and_errnos() {
        // mkdir refused with EACCES; personality allowed for 0 only (one rule, two argument
        // conditions on different arguments); umask refused for two values (the same argument
        // twice: separate rules).
        let p: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["getpriority"],"action":"SCMP_ACT_ERRNO","errnoRet":22,
                 "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":1,"value":0,"op":"SCMP_CMP_NE"}]},
                {"names":["umask"],"action":"SCMP_ACT_ERRNO","errnoRet":33,
                 "args":[{"index":0,"value":18,"op":"SCMP_CMP_EQ"},{"index":0,"value":63,"op":"SCMP_CMP_EQ"}]},
                {"names":["setpgid"],"action":"SCMP_ACT_ERRNO","errnoRet":34,
                 "args":[{"index":0,"value":4095,"valueTwo":7,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        )
        .unwrap();
        let prog = compile(&p).unwrap();
        let code = in_child(|| {
            prog.load().unwrap();
            // SAFETY (all): raw system calls with valid arguments; the child is thrown away.
            let call = |n: libc::c_long, a: libc::c_long, b: libc::c_long| {
                errno_of(unsafe { libc::syscall(n, a, b) })
            };
            let results = [
                call(libc::SYS_mkdir, c"/nonexistent/x".as_ptr() as _, 0o755) == libc::EACCES,
                call(libc::SYS_getpriority, 0, 0) == 0,
                call(libc::SYS_getpriority, 0, 1) == libc::EINVAL,
                call(libc::SYS_getpriority, 1, 1) != libc::EINVAL,
                call(libc::SYS_umask, 0o22, 0) == 33,
                call(libc::SYS_umask, 0o77, 0) == 33,
                call(libc::SYS_umask, 0o27, 0) == 0,
                call(libc::SYS_setpgid, 0x1007, 0) == 34,
                call(libc::SYS_setpgid, 0x1006, 0) != 34,
            ];
            results
                .iter()
                .enumerate()
                .find(|(_, ok)| !**ok)
                .map_or(0, |(i, _)| 10 + i as i32)
        });
        assert_eq!(code, 0, "check {} failed", code - 10);
    }

    #[test]
    fn unsupported_actions_are_refused() {
        let p: LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap();
        let e = compile(&p).err().unwrap().to_string();
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
        assert!(Program::from_bytes(&[0; 12]).is_none());
    }
}
