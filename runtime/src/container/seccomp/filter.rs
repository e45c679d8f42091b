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
    use std::time::Instant;

    #[test]
    fn compiles_docker_default() {
        let caps = crate::container::spec::DEFAULT_CAPS.into_iter().collect();
        let host = Host::current();
        let t = Instant::now();
        let p = docker_default(&caps, &host);
        let converted = t.elapsed();
        let prog = compile(&p).unwrap();
        eprintln!(
            "convert {:?}, compile {:?}, {} instructions",
            converted,
            t.elapsed() - converted,
            prog.code.len()
        );
        assert!(prog.code.len() > 100);

        let dir = std::env::temp_dir().join(format!("minibox-bpf-{}", std::process::id()));
        let first = compile_cached(&p, &dir).unwrap();
        let t = Instant::now();
        let again = compile_cached(&p, &dir).unwrap();
        eprintln!("cached {:?}", t.elapsed());
        assert_eq!(first.to_bytes(), prog.to_bytes());
        assert_eq!(again.to_bytes(), prog.to_bytes());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
