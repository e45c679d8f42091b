//! Device access on cgroup v2. There is no devices controller there: the kernel asks an eBPF
//! program of type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the cgroup, as runc and crun set up.
//! This compiles the v1-style rules into such a program (a handful of compare-and-jump
//! instructions, so no BPF toolchain or crate is needed) and attaches it. The attachment keeps the
//! program alive until the cgroup is removed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use cgroups_rs::devices::{DevicePermissions, DeviceType};
use cgroups_rs::DeviceResource;

// From linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Lets programs of the parent cgroups (systemd's, a nesting runtime's) still have their say.
const BPF_F_ALLOW_MULTI: u32 = 2;
// `struct bpf_cgroup_dev_ctx`: access_type (type in the low 16 bits, access above), major, minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One `struct bpf_insn`: opcode, registers (dst low nibble, src high), offset, immediate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND_K: u8 = 0x57; // dst &= imm
const RSH_K: u8 = 0x77; // dst >>= imm
const MOV_K: u8 = 0xb7; // dst = imm
const MOV_X: u8 = 0xbf; // dst = src
const JEQ_K: u8 = 0x15; // if dst == imm: skip off
const JNE_K: u8 = 0x55; // if dst != imm: skip off
const EXIT: u8 = 0x95; // return r0

/// The program: the last rule that matches the access decides (as the rules would read in order
/// on v1), nothing matching is denied. r2 = type, r3 = access, r4 = major, r5 = minor. Rules
/// hidden behind one that matches everything are left out: the verifier refuses dead code.
fn program(rules: &[DeviceResource]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each test jumps past the rest of the block when the rule does not apply.
        let mut block: Vec<Insn> = Vec::new();
        match rule.devtype {
            DeviceType::All => {}
            DeviceType::Char => block.push(insn(JNE_K, 2, 0, 0, DEV_CHAR)),
            DeviceType::Block => block.push(insn(JNE_K, 2, 0, 0, DEV_BLOCK)),
        }
        let access = rule.access.iter().fold(0, |a, p| {
            a | match p {
                DevicePermissions::MkNod => ACC_MKNOD,
                DevicePermissions::Read => ACC_READ,
                DevicePermissions::Write => ACC_WRITE,
            }
        });
        if access != ACC_ALL {
            // An allow rule covers requests within its access; a deny rule any that touches it.
            block.push(insn(MOV_X, 6, 3, 0, 0));
            if rule.allow {
                block.push(insn(AND_K, 6, 0, 0, ACC_ALL & !access));
                block.push(insn(JNE_K, 6, 0, 0, 0));
            } else {
                block.push(insn(AND_K, 6, 0, 0, access));
                block.push(insn(JEQ_K, 6, 0, 0, 0));
            }
        }
        if rule.major >= 0 {
            block.push(insn(JNE_K, 4, 0, 0, rule.major as i32));
        }
        if rule.minor >= 0 {
            block.push(insn(JNE_K, 5, 0, 0, rule.minor as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, rule.allow as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        if len == 2 {
            // No test: this rule decides everything still undecided.
            prog.extend(block);
            return prog;
        }
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JNE_K | JEQ_K) {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.extend([insn(MOV_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0)]);
    prog
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields used.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a `bpf_attr` prefix of the given size; the kernel only reads it (and the
    // memory its pointers name, which outlives the call).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// Attaches a program allowing exactly what `rules` allow to the cgroup directory `dir`.
/// A failure names its step (loading, opening the cgroup, attaching) in the error's text.
pub fn attach(dir: &Path, rules: &[DeviceResource]) -> io::Result<()> {
    let step = |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let prog = program(rules);
    let license = c"Apache-2.0";
    let load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that we own.
    let prog_fd = unsafe {
        OwnedFd::from_raw_fd(
            bpf(BPF_PROG_LOAD, &load).map_err(step("loading the eBPF program".into()))? as i32,
        )
    };
    let cg = std::fs::File::open(dir).map_err(step(format!("opening {}", dir.display())))?;
    bpf(
        BPF_PROG_ATTACH,
        &ProgAttach {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: prog_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            replace_bpf_fd: 0,
        },
    )
    .map_err(step("attaching the eBPF program".into()))?;
    Ok(())
}
