//! A container's published ports as elements of `inet minibox`'s maps, added and deleted over
//! nf_tables netlink: the messages `nft -f -` sends for the driver's `add element` and `delete
//! element` lines, in one batch, without starting nft (a process, its library and a fetch of
//! the kernel's sets per container, which cost more than everything else of a port).
//!
//! Each field of a concatenated key or value takes whole 4-byte registers (addresses as they
//! are, the protocol's byte and the port's two bytes, big-endian, zero-padded), and the comment
//! `minibox:<id12>` travels in the element's userdata as nft writes it (a type-0 TLV holding the
//! NUL-terminated string): `nft list map` and the tag-counting dumps see what nft would have made.

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::nfnetlink::{self, attr, nested, string_attr, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST};
use crate::ports::Proto;

use super::nfrules::NFPROTO_INET;
use super::Published;

/// NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM.
const NEW_SETELEM: u16 = 0x0a0c;
const DEL_SETELEM: u16 = 0x0a0e;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
const NFTA_DATA_VALUE: u16 = 1;
/// libnftnl's NFTNL_UDATA_SET_ELEM_COMMENT: the TLV type nft reads an element's comment from.
const UDATA_COMMENT: u8 = 0;

/// One published port: its map, key (host address if not all, protocol, port) and value
/// (container address, port).
pub(super) struct Element {
    pub map: &'static str,
    host: Option<IpAddr>,
    proto: Proto,
    port: u16,
    to: IpAddr,
    to_port: u16,
}

impl Element {
    /// A container's elements: in the maps of each port's host address family.
    pub fn of(p: &Published) -> Vec<Element> {
        p.ports
            .iter()
            .map(|m| {
                let (maps, to) = match (m.host_ip.is_ipv6(), p.ipv6) {
                    (true, Some((_, addr6))) => (["anyports6", "ports6"], IpAddr::V6(addr6)),
                    _ => (["anyports4", "ports4"], IpAddr::V4(p.addr)),
                };
                let host = (!m.host_ip.is_unspecified()).then_some(m.host_ip);
                Element {
                    map: maps[host.is_some() as usize],
                    host,
                    proto: m.proto,
                    port: m.host_port,
                    to,
                    to_port: m.container_port,
                }
            })
            .collect()
    }

    /// The key as nft writes it.
    pub fn key(&self) -> String {
        match self.host {
            Some(host) => format!("{host} . {} . {}", self.proto, self.port),
            None => format!("{} . {}", self.proto, self.port),
        }
    }

    /// The value as nft writes it.
    pub fn value(&self) -> String {
        format!("{} . {}", self.to, self.to_port)
    }

    fn key_bytes(&self) -> Vec<u8> {
        let mut key = self.host.map(address).unwrap_or_default();
        key.extend([proto_number(self.proto), 0, 0, 0]);
        key.extend(port(self.port));
        key
    }

    fn value_bytes(&self) -> Vec<u8> {
        [address(self.to), port(self.to_port).to_vec()].concat()
    }
}

fn address(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn port(p: u16) -> [u8; 4] {
    let [hi, lo] = p.to_be_bytes();
    [hi, lo, 0, 0]
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
        Proto::Sctp => libc::IPPROTO_SCTP as u8,
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Change {
    Add,
    Delete,
}

/// How many elements one message carries at most: an attribute's length is 16 bits, and the
/// list of a wide range of ports (`-p 20000-25000:...`) would overflow it.
const PER_MESSAGE: usize = 256;

/// The messages of a change of `elements`: per map, in the order the maps first appear, one
/// for each [`PER_MESSAGE`] elements, each acknowledged. An addition carries values and the
/// `tag` comment; a deletion only keys. NLM_F_CREATE without NLM_F_EXCL, as nft's `add
/// element`: adding an element that is there with the same value succeeds, with another value
/// fails (EEXIST).
fn messages(change: Change, elements: &[Element], tag: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut maps: Vec<&'static str> = Vec::new();
    for e in elements {
        if !maps.contains(&e.map) {
            maps.push(e.map);
        }
    }
    let comment = [&[UDATA_COMMENT, tag.len() as u8 + 1], tag.as_bytes(), &[0]].concat();
    let (kind, flags) = match change {
        Change::Add => (NEW_SETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE),
        Change::Delete => (DEL_SETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut messages = Vec::new();
    for map in maps {
        let of_map: Vec<&Element> = elements.iter().filter(|e| e.map == map).collect();
        for chunk in of_map.chunks(PER_MESSAGE) {
            let mut list = Vec::new();
            for e in chunk {
                let value = |v: Vec<u8>| attr(NFTA_DATA_VALUE, &v);
                let mut elem = nested(NFTA_SET_ELEM_KEY, &value(e.key_bytes()));
                if change == Change::Add {
                    elem.extend(nested(NFTA_SET_ELEM_DATA, &value(e.value_bytes())));
                    elem.extend(attr(NFTA_SET_ELEM_USERDATA, &comment));
                }
                list.extend(nested(NFTA_LIST_ELEM, &elem));
            }
            let mut body = string_attr(NFTA_SET_ELEM_LIST_TABLE, "minibox");
            body.extend(string_attr(NFTA_SET_ELEM_LIST_SET, map));
            body.extend(nested(NFTA_SET_ELEM_LIST_ELEMENTS, &list));
            let seq = messages.len() as u32 + 1;
            messages.push((
                map,
                nfnetlink::message(kind, flags, seq, NFPROTO_INET, &body),
            ));
        }
    }
    messages
}

/// Applies a change of `elements` as one transaction: all of it or, on an error, none. The
/// error reads as nft's would (`Could not process rule: File exists`), naming the map.
pub(super) fn apply(change: Change, elements: &[Element], tag: &str) -> Result<()> {
    match send(change, elements, tag)? {
        None => Ok(()),
        Some((map, errno)) => Err(failed(change, map, errno)),
    }
}

/// Deletes each of `elements` in a transaction of its own, so that one already gone (ENOENT)
/// does not keep the others: after a batch that failed.
pub(super) fn delete_each(elements: &[Element]) -> Result<()> {
    for e in elements {
        match send(Change::Delete, std::slice::from_ref(e), "")? {
            Some((map, errno)) if errno != libc::ENOENT => {
                return Err(failed(Change::Delete, map, errno))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sends the batch; the map and errno of the message that failed it, if one did.
fn send(change: Change, elements: &[Element], tag: &str) -> Result<Option<(&'static str, i32)>> {
    if elements.is_empty() {
        return Ok(None);
    }
    let messages = messages(change, elements, tag);
    let maps: Vec<&'static str> = messages.iter().map(|(map, _)| *map).collect();
    let sock = nfnetlink::socket("nf_tables")?;
    nfnetlink::send_batch(
        &sock,
        &nfnetlink::batch(messages.into_iter().map(|(_, m)| m)),
    )?;
    let failure = nfnetlink::failure(&sock, "nf_tables", maps.len())?;
    if change == Change::Delete {
        linger(sock);
    }
    // Sequence numbers count from 1 (the batch's begin is 0); one outside names no map.
    Ok(failure.map(|(seq, errno)| {
        let map = (seq as usize).checked_sub(1).and_then(|i| maps.get(i));
        (map.copied().unwrap_or_default(), errno)
    }))
}

/// Keeps the socket of a batch that deleted open until the next such batch, or until the
/// process exits. Releasing a netfilter socket after an nf_tables commit that deleted waits
/// for the kernel to free what was deleted (a grace period, 10-20 ms here), and the caller
/// usually holds the network lock, which the next container's set-up waits for. What the
/// batch deleted is gone once its acknowledgements are read.
fn linger(sock: netlink_sys::Socket) {
    static LAST: std::sync::Mutex<Option<netlink_sys::Socket>> = std::sync::Mutex::new(None);
    let previous = LAST.lock().map(|mut last| last.replace(sock));
    drop(previous);
}

fn failed(change: Change, map: &str, errno: i32) -> Error {
    let verb = match change {
        Change::Add => "add",
        Change::Delete => "delete",
    };
    Error::Firewall {
        what: format!("{verb} element {} {map}", super::nftables::TABLE),
        why: format!(
            "Could not process rule: {}",
            nix::errno::Errno::from_raw(errno).desc()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfnetlink::attrs;
    use crate::ports::PortMapping;

    /// What nft 1.0.6 sent (x86-64) for the lines in each test, recorded once in a scratch
    /// network namespace with the maps made by the driver's `base`:
    /// `unshare -n sh -c 'nft -f base.nft && strace -e trace=sendmsg -e write=3 nft -f lines'`,
    /// the hex of the dump joined.
    const NFT_ADD4: &str = "140000001000010000000000000000000000000a7c0000000c0a01040100000000000000010000000c0001006d696e69626f78000b000200706f7274733400000800040000000001480003804400018014000180100001007f000001060000001f900000100002800c0001000a630002005000001b00060000156d696e69626f783a30313233343536373839616200007c0000000c0a01040200000000000000010000000c0001006d696e69626f78000e000200616e79706f7274733400000008000400000000024400038040000180100001800c0001001100000014e90000100002800c0001000a630002003500001b00060000156d696e69626f783a3031323334353637383961620000140000001100010003000000000000000000000a";
    const NFT_DELETE4: &str = "140000001000010000000000000000000000000a480000000e0a01000100000000000000010000000c0001006d696e69626f78000b000200706f7274733400001c0003801800018014000180100001007f000001060000001f900000480000000e0a01000200000000000000010000000c0001006d696e69626f78000e000200616e79706f727473340000001800038014000180100001800c0001001100000014e90000140000001100010003000000000000000000000a";
    const NFT_ADD6: &str = "140000001000010000000000000000000000000a940000000c0a01040100000000000000010000000c0001006d696e69626f78000b000200706f7274733600000800040000000003600003805c000180200001801c000100fd000000000000000000000000000001060000001f9000001c00028018000100fd990000000000000000000000000002005000001b00060000156d696e69626f783a3031323334353637383961620000140000001100010002000000000000000000000a";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// nft's batch as minibox sends it: each change acknowledged, and without the set's id
    /// (nft's number for the set in its own cache, which the kernel needs only for a set made
    /// in the same batch: it finds ours by name).
    fn as_minibox_sends(nft: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = nft;
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            let (m, next) = rest.split_at(len);
            let kind = u16::from_ne_bytes([m[4], m[5]]);
            if kind == NEW_SETELEM || kind == DEL_SETELEM {
                let body: Vec<u8> = attrs(&m[20..])
                    .filter(|(t, _, _)| *t != 4)
                    .flat_map(|(_, _, whole)| {
                        let mut padded = whole.to_vec();
                        padded.resize((whole.len() + 3) & !3, 0);
                        padded
                    })
                    .collect();
                let flags = u16::from_ne_bytes([m[6], m[7]]) | NLM_F_ACK;
                let seq = u32::from_ne_bytes(m[8..12].try_into().unwrap());
                out.extend(nfnetlink::message(kind, flags, seq, m[16], &body));
            } else {
                out.extend(m);
            }
            rest = next;
        }
        out
    }

    fn batch(change: Change, p: &Published) -> Vec<u8> {
        let messages = messages(change, &Element::of(p), &p.tag());
        nfnetlink::batch(messages.into_iter().map(|(_, m)| m))
    }

    fn published(ports: &[(&str, u16, u16, Proto)]) -> Published {
        Published {
            id12: "0123456789ab".into(),
            subnet: "10.99.0.0/24".parse().unwrap(),
            addr: "10.99.0.2".parse().unwrap(),
            ipv6: Some(("fd99::/64".parse().unwrap(), "fd99::2".parse().unwrap())),
            ports: ports
                .iter()
                .map(|&(host, host_port, container_port, proto)| PortMapping {
                    host_ip: host.parse().unwrap(),
                    host_port,
                    container_port,
                    proto,
                })
                .collect(),
        }
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_bytes_nft_sends_for_the_same_lines() {
        // add element inet minibox ports4 { 127.0.0.1 . tcp . 8080 comment "minibox:0123456789ab" : 10.99.0.2 . 80 }
        // add element inet minibox anyports4 { udp . 5353 comment "minibox:0123456789ab" : 10.99.0.2 . 53 }
        let p = published(&[
            ("127.0.0.1", 8080, 80, Proto::Tcp),
            ("0.0.0.0", 5353, 53, Proto::Udp),
        ]);
        assert_eq!(batch(Change::Add, &p), as_minibox_sends(&unhex(NFT_ADD4)));
        // delete element inet minibox ports4 { 127.0.0.1 . tcp . 8080 }
        // delete element inet minibox anyports4 { udp . 5353 }
        assert_eq!(
            batch(Change::Delete, &p),
            as_minibox_sends(&unhex(NFT_DELETE4))
        );
        // add element inet minibox ports6 { fd00::1 . tcp . 8080 comment "minibox:0123456789ab" : fd99::2 . 80 }
        let p = published(&[("fd00::1", 8080, 80, Proto::Tcp)]);
        assert_eq!(batch(Change::Add, &p), as_minibox_sends(&unhex(NFT_ADD6)));
    }

    #[test]
    fn one_message_per_map_and_text_as_nft_writes_it() {
        let p = published(&[
            ("0.0.0.0", 8080, 80, Proto::Tcp),
            ("::", 8080, 80, Proto::Tcp),
            ("0.0.0.0", 8081, 81, Proto::Sctp),
        ]);
        let elements = Element::of(&p);
        let texts: Vec<String> = elements
            .iter()
            .map(|e| format!("{} {} : {}", e.map, e.key(), e.value()))
            .collect();
        assert_eq!(
            texts,
            [
                "anyports4 tcp . 8080 : 10.99.0.2 . 80",
                "anyports6 tcp . 8080 : fd99::2 . 80",
                "anyports4 sctp . 8081 : 10.99.0.2 . 81",
            ]
        );
        let maps: Vec<&str> = messages(Change::Add, &elements, &p.tag())
            .iter()
            .map(|(m, _)| *m)
            .collect();
        assert_eq!(maps, ["anyports4", "anyports6"]);
        // The sctp port's key: its protocol number, then the port, each in its own register.
        assert_eq!(elements[2].key_bytes(), [132, 0, 0, 0, 0x1f, 0x91, 0, 0]);
        assert!(messages(Change::Delete, &[], "").is_empty());
    }

    #[test]
    fn a_wide_range_is_split_into_messages_of_one_transaction() {
        let ports: Vec<(&str, u16, u16, Proto)> = (0..5001)
            .map(|i| ("0.0.0.0", 20000 + i, 20000 + i, Proto::Tcp))
            .collect();
        let p = published(&ports);
        let messages = messages(Change::Add, &Element::of(&p), &p.tag());
        assert_eq!(messages.len(), 5001usize.div_ceil(PER_MESSAGE));
        let mut elements = 0;
        for ((_, m), seq) in messages.iter().zip(1..) {
            assert!(m.len() < u16::MAX as usize);
            assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), seq);
            let list = attrs(&m[20..]).find(|(t, _, _)| *t == NFTA_SET_ELEM_LIST_ELEMENTS);
            elements += attrs(list.unwrap().1).count();
        }
        assert_eq!(elements, 5001);
    }

    #[test]
    fn errors_read_as_nfts() {
        let e = failed(Change::Add, "ports4", libc::EEXIST);
        assert_eq!(
            e.to_string(),
            "add element inet minibox ports4: Could not process rule: File exists"
        );
    }
}
