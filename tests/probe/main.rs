//! `probe`: what the security tests run inside containers to act as an attacker would. One
//! static program with a subcommand per attack, built by `tests/src/fixtures.rs` with rustc alone
//! (`-C target-feature=+crt-static`, no crates, so it runs in a busybox image) and put into the
//! `probe` test image as `/bin/probe`.
//!
//! - `probe syn IP PORT`: a TCP SYN for IP:PORT, hand-made and sent as a raw Ethernet frame
//!   (AF_PACKET, which the default NET_RAW allows) from eth0 to the default gateway's MAC, so it
//!   reaches the host whatever the container's routes say (127.0.0.1 included). Prints
//!   `answered` when a TCP segment (SYN-ACK or RST) comes back from IP:PORT within two seconds,
//!   else `no answer`.
//! - `probe euid`: prints the effective uid (a setuid copy shows whether setuid took effect).
//! - `probe key read|update ID`: reads key ID, or changes its payload (keyctl). Prints `read:
//!   PAYLOAD`, `updated`, or `denied: ERROR`.
//! - `probe syscalls`: calls each system call family Docker's default seccomp profile refuses,
//!   each in a child of its own (so that one that succeeds changes nothing for the next), and
//!   prints `NAME ERRNO` per call (0 when it succeeded). The arguments are chosen so that the call
//!   does nothing even when it is allowed and privileged, and, where the kernel allows it, so
//!   that the kernel's own answer differs from the filter's (a bad argument it checks first).
//! - `probe cgroup-escape`: the attack of issue #10: a new user, mount and cgroup namespace with 0
//!   mapped to 0, the cgroup v1 memory controller mounted there and its limit lifted, then 100 MB
//!   allocated. Prints each step's result; under `--memory 32m` it is OOM-killed unless the
//!   attack won.

use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["syn", ip, port] => syn(ip.parse().expect("IP"), port.parse().expect("PORT")),
        // SAFETY: geteuid cannot fail.
        ["euid"] => println!("{}", unsafe { geteuid() }),
        ["key", what @ ("read" | "update"), id] => key(what, id.parse().expect("ID")),
        ["syscalls"] => syscalls(),
        ["cgroup-escape"] => cgroup_escape(),
        _ => {
            eprintln!(
                "usage: probe syn IP PORT | euid | key read|update ID | syscalls | cgroup-escape"
            );
            std::process::exit(2);
        }
    }
}

const AF_INET: i32 = 2;
const AF_PACKET: i32 = 17;
const SOCK_DGRAM: i32 = 2;
const SOCK_RAW: i32 = 3;
const ETH_P_IP: u16 = 0x0800;
const SIOCGIFHWADDR: u64 = 0x8927;
const SIOCGIFADDR: u64 = 0x8915;
const SIOCGIFINDEX: u64 = 0x8933;
const SOL_SOCKET: i32 = 1;
const SO_RCVTIMEO: i32 = 20;

extern "C" {
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn ioctl(fd: i32, request: u64, arg: *mut c_void) -> i32;
    fn bind(fd: i32, addr: *const c_void, len: u32) -> i32;
    fn send(fd: i32, buf: *const c_void, len: usize, flags: i32) -> isize;
    fn recv(fd: i32, buf: *mut c_void, len: usize, flags: i32) -> isize;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const c_void, len: u32) -> i32;
    fn geteuid() -> u32;
    fn syscall(number: i64, ...) -> i64;
}

const SYS_KEYCTL: i64 = 250;
const KEYCTL_UPDATE: i64 = 2;
const KEYCTL_READ: i64 = 11;

/// Reads or changes a key by its id, as a process that does not possess it but runs as its
/// owner's uid would try.
fn key(what: &str, id: i32) {
    let mut buf = [0u8; 256];
    let payload = b"changed by the container";
    // SAFETY: keyctl with buffers that outlive the calls and their true lengths.
    let r = unsafe {
        match what {
            "read" => syscall(
                SYS_KEYCTL,
                KEYCTL_READ,
                id as i64,
                buf.as_mut_ptr(),
                buf.len(),
            ),
            _ => syscall(
                SYS_KEYCTL,
                KEYCTL_UPDATE,
                id as i64,
                payload.as_ptr(),
                payload.len(),
            ),
        }
    };
    match (r, what) {
        (r, _) if r < 0 => println!("denied: {}", std::io::Error::last_os_error()),
        (n, "read") => println!(
            "read: {}",
            String::from_utf8_lossy(&buf[..(n as usize).min(256)])
        ),
        _ => println!("updated"),
    }
}

/// `struct ifreq`: a name and a 24-byte union.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

#[repr(C)]
struct SockaddrLl {
    family: u16,
    protocol: u16,
    ifindex: i32,
    hatype: u16,
    pkttype: u8,
    halen: u8,
    addr: [u8; 8],
}

fn check(what: &str, ret: i64) -> i64 {
    if ret < 0 {
        eprintln!("probe: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    ret
}

/// eth0's index, MAC and IPv4 address.
fn eth0() -> (i32, [u8; 6], Ipv4Addr) {
    // SAFETY: plain socket and ioctl calls on a zeroed, properly sized ifreq.
    unsafe {
        let fd = check("socket", socket(AF_INET, SOCK_DGRAM, 0).into()) as i32;
        let mut req = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        req.name[..4].copy_from_slice(b"eth0");
        let mut get = |request, what| {
            check(
                what,
                ioctl(fd, request, &mut req as *mut _ as *mut c_void).into(),
            );
            req.data
        };
        let index = get(SIOCGIFINDEX, "eth0's index");
        let hw = get(SIOCGIFHWADDR, "eth0's MAC");
        let addr = get(SIOCGIFADDR, "eth0's address");
        (
            i32::from_ne_bytes(index[..4].try_into().unwrap()),
            hw[2..8].try_into().unwrap(),
            Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]),
        )
    }
}

/// The default gateway, from /proc/net/route.
fn gateway() -> Ipv4Addr {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    let hex = routes
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[1] == "00000000")
        .map(|f| f[2].to_string())
        .expect("a default route");
    Ipv4Addr::from(u32::from_str_radix(&hex, 16).unwrap().swap_bytes())
}

/// The gateway's MAC: an ordinary datagram to it makes the kernel resolve it (and tells the
/// host where this container is, so its answers can come back).
fn gateway_mac(gw: Ipv4Addr) -> [u8; 6] {
    let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let _ = udp.send_to(b"probe", (gw, 9));
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let arp = std::fs::read_to_string("/proc/net/arp").unwrap();
        for l in arp.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 3 && f[0] == gw.to_string() && f[3] != "00:00:00:00:00:00" {
                let mac: Vec<u8> = f[3]
                    .split(':')
                    .map(|b| u8::from_str_radix(b, 16).unwrap())
                    .collect();
                return mac.try_into().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("probe: the gateway {gw} did not answer ARP");
    std::process::exit(1);
}

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 + TCP SYN.
fn syn_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 5 << 4; // header length: 5 words
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let sum = checksum(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::new();
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

fn syn(dst: Ipv4Addr, dport: u16) {
    let (index, mac, src) = eth0();
    let gw_mac = gateway_mac(gateway());
    let sport = 40000 + (std::process::id() % 20000) as u16;
    let frame = syn_frame(mac, gw_mac, src, dst, sport, dport);
    // SAFETY: socket calls on buffers that outlive them.
    let answered = unsafe {
        let fd = check(
            "AF_PACKET socket",
            socket(AF_PACKET, SOCK_RAW, i32::from(ETH_P_IP.to_be())).into(),
        ) as i32;
        let ll = SockaddrLl {
            family: AF_PACKET as u16,
            protocol: ETH_P_IP.to_be(),
            ifindex: index,
            hatype: 0,
            pkttype: 0,
            halen: 0,
            addr: [0; 8],
        };
        check(
            "bind",
            bind(
                fd,
                &ll as *const _ as *const c_void,
                std::mem::size_of::<SockaddrLl>() as u32,
            )
            .into(),
        );
        let tick = [0i64, 200_000]; // struct timeval: 200 ms
        check(
            "SO_RCVTIMEO",
            setsockopt(
                fd,
                SOL_SOCKET,
                SO_RCVTIMEO,
                tick.as_ptr() as *const c_void,
                16,
            )
            .into(),
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut next_send = Instant::now();
        let mut buf = [0u8; 2048];
        let mut answered = false;
        while !answered && Instant::now() < deadline {
            if Instant::now() >= next_send {
                check(
                    "send",
                    send(fd, frame.as_ptr() as *const c_void, frame.len(), 0) as i64,
                );
                next_send += Duration::from_millis(500);
            }
            let n = recv(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), 0);
            if n >= 14 + 20 + 20 {
                answered = is_answer(&buf[14..n as usize], dst, dport, src, sport);
            }
        }
        answered
    };
    println!("{}", if answered { "answered" } else { "no answer" });
}

/// Whether an IPv4 packet is a TCP segment from dst:dport to src:sport.
fn is_answer(ip: &[u8], dst: Ipv4Addr, dport: u16, src: Ipv4Addr, sport: u16) -> bool {
    let header = usize::from(ip[0] & 0x0f) * 4;
    ip.len() >= header + 4
        && ip[9] == 6
        && ip[12..16] == dst.octets()
        && ip[16..20] == src.octets()
        && ip[header..header + 2] == dport.to_be_bytes()
        && ip[header + 2..header + 4] == sport.to_be_bytes()
}

// ---- Seccomp: the system calls Docker's profile refuses, and issue #10's attack ----

extern "C" {
    fn fork() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn pause() -> c_int;
    fn getpid() -> c_int;
    fn _exit(code: c_int) -> !;
    fn __errno_location() -> *mut c_int;
}

// x86_64 system call numbers.
#[cfg(not(target_arch = "x86_64"))]
compile_error!("the probe knows x86_64's system call numbers only");
const SYS_SOCKET: c_long = 41;
const SYS_PTRACE: c_long = 101;
const SYS_SYSLOG: c_long = 103;
const SYS_PERSONALITY: c_long = 135;
const SYS_PIVOT_ROOT: c_long = 155;
const SYS_ACCT: c_long = 163;
const SYS_SETTIMEOFDAY: c_long = 164;
const SYS_MOUNT: c_long = 165;
const SYS_UMOUNT2: c_long = 166;
const SYS_SWAPON: c_long = 167;
const SYS_REBOOT: c_long = 169;
const SYS_IOPL: c_long = 172;
const SYS_INIT_MODULE: c_long = 175;
const SYS_DELETE_MODULE: c_long = 176;
const SYS_CLOCK_SETTIME: c_long = 227;
const SYS_GET_MEMPOLICY: c_long = 239;
const SYS_KEXEC_LOAD: c_long = 246;
const SYS_ADD_KEY: c_long = 248;
const SYS_REQUEST_KEY: c_long = 249;
const SYS_UNSHARE: c_long = 272;
const SYS_PERF_EVENT_OPEN: c_long = 298;
const SYS_OPEN_BY_HANDLE_AT: c_long = 304;
const SYS_SETNS: c_long = 308;
const SYS_KCMP: c_long = 312;
const SYS_FINIT_MODULE: c_long = 313;
const SYS_BPF: c_long = 321;
const SYS_USERFAULTFD: c_long = 323;
const SYS_IO_URING_SETUP: c_long = 425;
const SYS_FSOPEN: c_long = 430;
const SYS_CLONE3: c_long = 435;

const CLONE_NEWNS: c_long = 0x0002_0000;
const CLONE_NEWCGROUP: c_long = 0x0200_0000;
const CLONE_NEWUSER: c_long = 0x1000_0000;
const READ_IMPLIES_EXEC: c_long = 0x0040_0000;
const PTRACE_SEIZE: c_long = 0x4206;
const AF_VSOCK: c_long = 40;
const SOCK_STREAM: c_long = 1;
const UFFD_USER_MODE_ONLY: c_long = 1;
const KCMP_FILE: c_long = 0;

fn errno() -> c_int {
    // SAFETY: glibc's per-thread errno.
    unsafe { *__errno_location() }
}

fn c(s: &CStr) -> *const c_char {
    s.as_ptr()
}

/// Runs `call` in a child and returns 0 if it returned >= 0, else its errno.
fn in_child(call: impl FnOnce() -> c_long) -> c_int {
    // SAFETY: single-threaded; the child only makes the call and leaves.
    unsafe {
        match fork() {
            0 => {
                let r = call();
                _exit(if r < 0 { errno() } else { 0 })
            }
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            pid => {
                let mut status = 0;
                waitpid(pid, &mut status, 0);
                if status & 0x7f != 0 {
                    // Killed (by a signal, e.g. SIGSYS): 1000 + the signal.
                    1000 + (status & 0x7f)
                } else {
                    (status >> 8) & 0xff
                }
            }
        }
    }
}

fn syscalls() {
    let nowhere = c(c"/nonexistent-minibox-probe");
    // An invalid time: the kernel refuses it before it checks CAP_SYS_TIME.
    let bad_time: [i64; 2] = [0, 2_000_000_000];
    let zeros = [0u8; 256];
    let calls: Vec<(&str, Box<dyn Fn() -> c_long>)> = vec![
        // The attack's first step: user, mount and cgroup namespaces at once.
        (
            "unshare",
            Box::new(|| unsafe {
                syscall(SYS_UNSHARE, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP)
            }),
        ),
        (
            "mount",
            Box::new(move || unsafe { syscall(SYS_MOUNT, c(c"none"), nowhere, c(c"tmpfs"), 0, 0) }),
        ),
        // Invalid flags: EINVAL from the kernel.
        (
            "umount2",
            Box::new(|| unsafe { syscall(SYS_UMOUNT2, c(c"/"), 0xffff) }),
        ),
        (
            "pivot_root",
            Box::new(move || unsafe { syscall(SYS_PIVOT_ROOT, nowhere, nowhere) }),
        ),
        ("setns", Box::new(|| unsafe { syscall(SYS_SETNS, -1, 0) })),
        // An unknown command, a key type that does not exist.
        (
            "keyctl",
            Box::new(|| unsafe { syscall(SYS_KEYCTL, 9999, 0, 0, 0, 0) }),
        ),
        (
            "add_key",
            Box::new(|| unsafe {
                syscall(SYS_ADD_KEY, c(c"minibox_none"), c(c"d"), c(c"x"), 1, -2)
            }),
        ),
        (
            "request_key",
            Box::new(|| unsafe { syscall(SYS_REQUEST_KEY, c(c"minibox_none"), c(c"d"), 0, 0) }),
        ),
        (
            "io_uring_setup",
            Box::new(move || unsafe {
                let mut params = zeros;
                syscall(SYS_IO_URING_SETUP, 1, params.as_mut_ptr())
            }),
        ),
        (
            "userfaultfd",
            Box::new(|| unsafe { syscall(SYS_USERFAULTFD, UFFD_USER_MODE_ONLY) }),
        ),
        // Invalid flags: EINVAL before any permission check.
        (
            "perf_event_open",
            Box::new(move || unsafe {
                syscall(
                    SYS_PERF_EVENT_OPEN,
                    zeros.as_ptr(),
                    0,
                    -1,
                    -1,
                    0xffff_ffffu32,
                )
            }),
        ),
        (
            "personality",
            Box::new(|| unsafe { syscall(SYS_PERSONALITY, READ_IMPLIES_EXEC) }),
        ),
        ("bpf", Box::new(|| unsafe { syscall(SYS_BPF, 9999, 0, 0) })),
        (
            "kexec_load",
            Box::new(|| unsafe { syscall(SYS_KEXEC_LOAD, 0, 0, 0, 0xffff_0000u32) }),
        ),
        (
            "init_module",
            Box::new(|| unsafe { syscall(SYS_INIT_MODULE, 0, 0, c(c"")) }),
        ),
        (
            "finit_module",
            Box::new(|| unsafe { syscall(SYS_FINIT_MODULE, -1, c(c""), 0) }),
        ),
        (
            "delete_module",
            Box::new(|| unsafe { syscall(SYS_DELETE_MODULE, c(c"minibox_none"), 0) }),
        ),
        (
            "clock_settime",
            Box::new(move || unsafe { syscall(SYS_CLOCK_SETTIME, 0, bad_time.as_ptr()) }),
        ),
        (
            "settimeofday",
            Box::new(move || unsafe { syscall(SYS_SETTIMEOFDAY, bad_time.as_ptr(), 0) }),
        ),
        // A wrong magic number: EINVAL once the capability is there.
        (
            "reboot",
            Box::new(|| unsafe { syscall(SYS_REBOOT, 0, 0, 0, 0) }),
        ),
        (
            "swapon",
            Box::new(move || unsafe { syscall(SYS_SWAPON, nowhere, 0) }),
        ),
        (
            "acct",
            Box::new(move || unsafe { syscall(SYS_ACCT, nowhere) }),
        ),
        (
            "open_by_handle_at",
            Box::new(|| unsafe { syscall(SYS_OPEN_BY_HANDLE_AT, -1, 0, 0) }),
        ),
        // An unknown action.
        (
            "syslog",
            Box::new(|| unsafe { syscall(SYS_SYSLOG, 9999, 0, 0) }),
        ),
        ("iopl", Box::new(|| unsafe { syscall(SYS_IOPL, 0) })),
        (
            "get_mempolicy",
            Box::new(|| unsafe { syscall(SYS_GET_MEMPOLICY, 0, 0, 0, 0, 0) }),
        ),
        (
            "kcmp",
            Box::new(|| unsafe {
                let me = getpid() as c_long;
                syscall(SYS_KCMP, me, me, KCMP_FILE, 0, 0)
            }),
        ),
        (
            "fsopen",
            Box::new(|| unsafe { syscall(SYS_FSOPEN, c(c"tmpfs"), 0) }),
        ),
        // Too small a size: EINVAL from the kernel.
        ("clone3", Box::new(|| unsafe { syscall(SYS_CLONE3, 0, 0) })),
        (
            "socket_vsock",
            Box::new(|| unsafe { syscall(SYS_SOCKET, AF_VSOCK, SOCK_STREAM, 0) }),
        ),
    ];
    for (name, call) in &calls {
        println!("{name} {}", in_child(call));
    }
    println!("ptrace {}", ptrace_sibling());
}

/// PTRACE_SEIZE of a sibling process (Docker allows ptrace from kernel 4.8).
fn ptrace_sibling() -> c_int {
    // SAFETY: single-threaded; the sibling only waits to be killed.
    unsafe {
        let sibling = match fork() {
            0 => loop {
                pause();
            },
            pid => pid,
        };
        let r = in_child(|| syscall(SYS_PTRACE, PTRACE_SEIZE, sibling as c_long, 0, 0));
        kill(sibling, 9);
        waitpid(sibling, std::ptr::null_mut(), 0);
        r
    }
}

fn cgroup_escape() {
    let step = |name: &str, r: Result<(), std::io::Error>| match r {
        Ok(()) => println!("{name} ok"),
        Err(e) => println!("{name} {}", e.raw_os_error().unwrap_or(-1)),
    };
    let check = |r: c_long| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: a plain unshare of this single-threaded process.
    let unshared =
        check(unsafe { syscall(SYS_UNSHARE, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP) });
    let won = unshared.is_ok();
    step("unshare", unshared);
    if won {
        let write = |path: &str, data: &str| std::fs::write(path, data);
        step("setgroups", write("/proc/self/setgroups", "deny"));
        step("uid_map", write("/proc/self/uid_map", "0 0 1"));
        step("gid_map", write("/proc/self/gid_map", "0 0 1"));
        let dir = c"/tmp/probe-memcg";
        let _ = std::fs::create_dir("/tmp/probe-memcg");
        // SAFETY: mount with valid strings.
        step(
            "mount",
            check(unsafe {
                syscall(
                    SYS_MOUNT,
                    c(c"cgroup"),
                    c(dir),
                    c(c"cgroup"),
                    0,
                    c(c"memory"),
                )
            }),
        );
        step(
            "limit",
            write("/tmp/probe-memcg/memory.limit_in_bytes", "-1"),
        );
    }
    // 100 MB, touched page by page: beyond a 32m limit unless it was lifted.
    let mut block = vec![0u8; 100 << 20];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    std::hint::black_box(&block);
    println!("allocated");
}
