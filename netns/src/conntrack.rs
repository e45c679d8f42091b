//! Flushing stale UDP flows to a host port, over ctnetlink (what `conntrack -D -p udp
//! --orig-port-dst PORT` does): dump the IPv4 conntrack table, then delete each entry whose
//! original direction is UDP to that port, by its original tuple.

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{io, Result};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_{GET,DELETE}.
const CT_GET: u16 = 0x0101;
const CT_DELETE: u16 = 0x0102;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IPPROTO_UDP: u8 = 17;

/// Deletes every UDP flow whose original destination port is `port`; how many went.
pub fn flush_udp_port(port: u16) -> Result<usize> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io("opening a ctnetlink socket"))?;
    sock.bind_auto().map_err(io("binding a ctnetlink socket"))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(io("connecting a ctnetlink socket"))?;
    let tuples = dump_matching(&sock, port)?;
    for (seq, tuple) in tuples.iter().enumerate() {
        let msg = message(CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq as u32 + 2, tuple);
        sock.send(&msg, 0)
            .map_err(io("deleting a conntrack entry"))?;
        // ENOENT (already gone) is as good as deleted.
        for_each_message(&sock, |_, _| {})?;
    }
    Ok(tuples.len())
}

/// A netlink message: header, nfgenmsg (AF_INET, version 0), payload.
fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    m.extend_from_slice(payload);
    m
}

/// The original-tuple attributes (ready to send back) of the entries to delete.
fn dump_matching(sock: &Socket, port: u16) -> Result<Vec<Vec<u8>>> {
    sock.send(&message(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]), 0)
        .map_err(io("listing conntrack entries"))?;
    let mut found = Vec::new();
    for_each_message(sock, |kind, body| {
        if kind != (CT_GET & 0xff00) || body.len() < 4 {
            return;
        }
        for (t, attr, whole) in attrs(&body[4..]) {
            if t == CTA_TUPLE_ORIG && is_udp_to(attr, port) {
                found.push(whole.to_vec());
            }
        }
    })?;
    Ok(found)
}

fn is_udp_to(tuple: &[u8], port: u16) -> bool {
    attrs(tuple)
        .filter(|(t, _, _)| *t == CTA_TUPLE_PROTO)
        .any(|(_, proto, _)| {
            let mut udp = false;
            let mut dport = None;
            for (t, v, _) in attrs(proto) {
                match (t, v) {
                    (CTA_PROTO_NUM, [n, ..]) => udp = *n == IPPROTO_UDP,
                    (CTA_PROTO_DST_PORT, [a, b, ..]) => dport = Some(u16::from_be_bytes([*a, *b])),
                    _ => {}
                }
            }
            udp && dport == Some(port)
        })
}

/// Netlink attributes: (type, value, the whole attribute including its header).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8], &[u8])> {
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

/// Reads replies until the dump is done or the request is acknowledged; `f` gets each
/// (message type & 0xff00, body). An error reply other than ENOENT fails.
fn for_each_message(sock: &Socket, mut f: impl FnMut(u16, &[u8])) -> Result<()> {
    loop {
        let (buf, _) = sock
            .recv_from_full()
            .map_err(io("reading from ctnetlink"))?;
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
                    return Err(io("ctnetlink")(std::io::Error::from_raw_os_error(-code)));
                }
                _ => f(kind & 0xff00, body),
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}
