//! Flushing stale UDP flows to a host port, over ctnetlink (what `conntrack -D -p udp
//! --orig-port-dst PORT` does): dump the IPv4 conntrack table, then delete each entry whose
//! original direction is UDP to that port, by its original tuple.

use crate::error::{io, Result};
use crate::nfnetlink::{attrs, for_each_message, message, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_{GET,DELETE}.
const CT_GET: u16 = 0x0101;
const CT_DELETE: u16 = 0x0102;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;

/// Deletes every UDP flow whose original destination port is `port`; how many went.
pub fn flush_udp_port(port: u16) -> Result<usize> {
    let sock = crate::nfnetlink::socket("ctnetlink")?;
    let tuples = dump_matching(&sock, port)?;
    for (seq, tuple) in tuples.iter().enumerate() {
        let msg = ct_message(CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq as u32 + 2, tuple);
        sock.send(&msg, 0)
            .map_err(io("deleting a conntrack entry"))?;
        // ENOENT (already gone) is as good as deleted.
        for_each_message(&sock, "ctnetlink", |_, _| {})?;
    }
    Ok(tuples.len())
}

/// A ctnetlink message about IPv4 entries.
fn ct_message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    message(kind, flags, seq, libc::AF_INET as u8, payload)
}

/// The original-tuple attributes (ready to send back) of the entries to delete.
fn dump_matching(sock: &netlink_sys::Socket, port: u16) -> Result<Vec<Vec<u8>>> {
    sock.send(&ct_message(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]), 0)
        .map_err(io("listing conntrack entries"))?;
    let mut found = Vec::new();
    for_each_message(sock, "ctnetlink", |kind, body| {
        if kind & 0xff00 != CT_GET & 0xff00 || body.len() < 4 {
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
