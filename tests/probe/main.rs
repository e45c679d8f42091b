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

use std::ffi::c_void;
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
        _ => {
            eprintln!("usage: probe syn IP PORT | euid | key read|update ID");
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
            "read" => syscall(SYS_KEYCTL, KEYCTL_READ, id as i64, buf.as_mut_ptr(), buf.len()),
            _ => syscall(SYS_KEYCTL, KEYCTL_UPDATE, id as i64, payload.as_ptr(), payload.len()),
        }
    };
    match (r, what) {
        (r, _) if r < 0 => println!("denied: {}", std::io::Error::last_os_error()),
        (n, "read") => println!("read: {}", String::from_utf8_lossy(&buf[..(n as usize).min(256)])),
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
            check(what, ioctl(fd, request, &mut req as *mut _ as *mut c_void).into());
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
fn syn_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
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
        let fd = check("AF_PACKET socket", socket(AF_PACKET, SOCK_RAW, i32::from(ETH_P_IP.to_be())).into()) as i32;
        let ll = SockaddrLl {
            family: AF_PACKET as u16,
            protocol: ETH_P_IP.to_be(),
            ifindex: index,
            hatype: 0,
            pkttype: 0,
            halen: 0,
            addr: [0; 8],
        };
        check("bind", bind(fd, &ll as *const _ as *const c_void, std::mem::size_of::<SockaddrLl>() as u32).into());
        let tick = [0i64, 200_000]; // struct timeval: 200 ms
        check("SO_RCVTIMEO", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tick.as_ptr() as *const c_void, 16).into());
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut next_send = Instant::now();
        let mut buf = [0u8; 2048];
        let mut answered = false;
        while !answered && Instant::now() < deadline {
            if Instant::now() >= next_send {
                check("send", send(fd, frame.as_ptr() as *const c_void, frame.len(), 0) as i64);
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
