//! The netfilter netlink family (`NETLINK_NETFILTER`) by hand, for what minibox asks of it:
//! ctnetlink's conntrack entries ([`crate::conntrack`]), nf_tables' rules and chains
//! ([`crate::firewall`]'s cheap check) and the published ports' map elements, changed in
//! batches. Messages are a header, an nfgenmsg and attributes; replies are read until the dump
//! is done or the request acknowledged.

use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{io, Result};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, and the subsystem a batch is for.
const BATCH_BEGIN: u16 = 0x10;
const BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// A connected netfilter netlink socket; `what` names it in errors.
pub fn socket(what: &str) -> Result<Socket> {
    let mut sock =
        Socket::new(NETLINK_NETFILTER).map_err(io(format!("opening a {what} socket")))?;
    sock.bind_auto()
        .map_err(io(format!("binding a {what} socket")))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io(format!("connecting a {what} socket")))?;
    Ok(sock)
}

/// A netlink message: header, nfgenmsg (`family`, version 0), payload.
pub fn message(kind: u16, flags: u16, seq: u32, family: u8, payload: &[u8]) -> Vec<u8> {
    with_res_id(kind, flags, seq, family, 0, payload)
}

fn with_res_id(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, body: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0]);
    m.extend_from_slice(&res_id.to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// nf_tables `messages` (numbered 1, 2, ...) as one transaction: between a batch's begin
/// (sequence 0) and end (the next number). The kernel applies all of them or none.
pub fn batch(messages: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut b = with_res_id(BATCH_BEGIN, NLM_F_REQUEST, 0, 0, NFNL_SUBSYS_NFTABLES, &[]);
    let mut seq = 1;
    for m in messages {
        b.extend(m);
        seq += 1;
    }
    b.extend(with_res_id(
        BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    b
}

/// Sends a batch, which the kernel takes in one piece (its begin and end in one send): the
/// socket's send buffer is grown for a big one (thousands of ports), as nft does.
pub fn send_batch(sock: &Socket, batch: &[u8]) -> Result<()> {
    const DEFAULT_SNDBUF: usize = 64 << 10;
    if batch.len() > DEFAULT_SNDBUF {
        let size = batch.len() as libc::c_int;
        // SAFETY: an int option on a socket this process owns.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io("growing an nf_tables socket's send buffer")(
                std::io::Error::last_os_error(),
            ));
        }
    }
    sock.send(batch, 0)
        .map_err(io("sending an nf_tables batch"))?;
    Ok(())
}

/// One attribute holding `value`, padded to 4 bytes.
pub fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut a = Vec::with_capacity((len + 3) & !3);
    a.extend_from_slice(&(len as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize((len + 3) & !3, 0);
    a
}

/// One attribute holding a NUL-terminated string.
pub fn string_attr(kind: u16, value: &str) -> Vec<u8> {
    attr(kind, &[value.as_bytes(), &[0]].concat())
}

/// One attribute holding the attributes `inner`.
pub fn nested(kind: u16, inner: &[u8]) -> Vec<u8> {
    attr(kind | NLA_F_NESTED, inner)
}

/// Netlink attributes: (type, value, the whole attribute including its header).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let item = (kind, &buf[4..len], &buf[..len]);
        buf = &buf[((len + 3) & !3).min(buf.len())..];
        Some(item)
    })
}

/// Reads the acknowledgements of a batch's `count` acknowledged messages; the first failure
/// (the message's sequence number and errno) when there is one. A failed batch was applied
/// not at all, whatever else it acknowledges.
pub fn failure(sock: &Socket, what: &str, count: usize) -> Result<Option<(u32, i32)>> {
    let mut acked = 0;
    while acked < count {
        let (buf, _) = sock
            .recv_from_full()
            .map_err(io(format!("reading from {what}")))?;
        let mut rest = &buf[..];
        while rest.len() >= 20 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 20 || len > rest.len() {
                break;
            }
            if kind == NLMSG_ERROR {
                let seq = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
                match i32::from_ne_bytes(rest[16..20].try_into().unwrap()) {
                    0 => acked += 1,
                    code => return Ok(Some((seq, -code))),
                }
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
    Ok(None)
}

/// Reads replies until the dump is done or the request is acknowledged; `f` gets each
/// (message type & 0xff00, body). An error reply other than ENOENT fails.
pub fn for_each_message(sock: &Socket, what: &str, mut f: impl FnMut(u16, &[u8])) -> Result<()> {
    loop {
        let (buf, _) = sock
            .recv_from_full()
            .map_err(io(format!("reading from {what}")))?;
        let mut rest = &buf[..];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 16 || len > rest.len() {
                return Ok(());
            }
            let body = &rest[16..len];
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                    if code == 0 || -code == libc::ENOENT {
                        return Ok(());
                    }
                    return Err(io(what.to_string())(std::io::Error::from_raw_os_error(
                        -code,
                    )));
                }
                _ => f(kind, body),
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}
