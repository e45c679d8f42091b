//! What nf_tables holds, read over netlink without listing the ruleset: the rules of one table
//! or chain (each with its handle, and its comments found in its raw message), a base chain's
//! policy, and how many set elements carry a tag. Both drivers' cheap checks use it: the
//! nftables driver's own table, and iptables-nft's tables (where iptables' rules live in
//! nf_tables too).

use crate::error::Result;
use crate::nfnetlink::{
    self, attrs, for_each_message, message, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};

pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;
/// NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETCHAIN, NFT_MSG_GETRULE.
const GET_CHAIN: u16 = 0x0a04;
const GET_RULE: u16 = 0x0a07;
/// NFT_MSG_NEWRULE: what a dump of rules answers with.
const NEW_RULE: u16 = 0x0a06;
/// NFT_MSG_GETSETELEM, and NFT_MSG_NEWSETELEM that a dump answers with.
const GET_SETELEM: u16 = 0x0a0d;
const NEW_SETELEM: u16 = 0x0a0c;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
pub const NF_DROP: u32 = 0;

/// One rule as the kernel holds it: its chain, handle and whole message (where comments are,
/// as rule userdata or an xt comment match's data, each NUL-terminated).
pub struct NftRule {
    pub chain: String,
    pub handle: u64,
    pub raw: Vec<u8>,
}

impl NftRule {
    pub fn tagged(&self, tag: &str) -> bool {
        let needle = format!("{tag}\0");
        self.raw
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    pub fn deletion(&self) -> String {
        format!(
            "delete rule {} {} handle {}",
            super::nftables::TABLE,
            self.chain,
            self.handle
        )
    }
}

pub fn count_tagged(rules: &[NftRule], tag: &str) -> usize {
    rules.iter().filter(|r| r.tagged(tag)).count()
}

fn c_string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// The rules of `table` (of one `chain` of it); none when it does not exist.
pub fn rules(family: u8, table: &str, chain: Option<&str>) -> Result<Vec<NftRule>> {
    let sock = nfnetlink::socket("nf_tables")?;
    let mut payload = nfnetlink::string_attr(NFTA_RULE_TABLE, table);
    if let Some(chain) = chain {
        payload.extend(nfnetlink::string_attr(NFTA_RULE_CHAIN, chain));
    }
    let request = message(GET_RULE, NLM_F_REQUEST | NLM_F_DUMP, 1, family, &payload);
    sock.send(&request, 0)
        .map_err(crate::error::io("listing nf_tables rules"))?;
    let mut found = Vec::new();
    for_each_message(&sock, "nf_tables", |kind, body| {
        if kind != NEW_RULE || body.len() < 4 {
            return;
        }
        let mut rule = NftRule {
            chain: String::new(),
            handle: 0,
            raw: body.to_vec(),
        };
        for (t, v, _) in attrs(&body[4..]) {
            match t {
                NFTA_RULE_CHAIN => rule.chain = c_string(v),
                NFTA_RULE_HANDLE if v.len() == 8 => {
                    rule.handle = u64::from_be_bytes(v.try_into().unwrap())
                }
                _ => {}
            }
        }
        found.push(rule);
    })?;
    Ok(found)
}

/// A base chain's policy; `None` when there is no such chain.
pub fn chain_policy(family: u8, table: &str, chain: &str) -> Result<Option<u32>> {
    let sock = nfnetlink::socket("nf_tables")?;
    let mut payload = nfnetlink::string_attr(NFTA_CHAIN_TABLE, table);
    payload.extend(nfnetlink::string_attr(NFTA_CHAIN_NAME, chain));
    // Acknowledged, so that the reply ends whether or not the chain exists.
    sock.send(
        &message(GET_CHAIN, NLM_F_REQUEST | NLM_F_ACK, 1, family, &payload),
        0,
    )
    .map_err(crate::error::io("reading an nf_tables chain"))?;
    let mut policy = None;
    for_each_message(&sock, "nf_tables", |_, body| {
        if body.len() < 4 {
            return;
        }
        for (t, v, _) in attrs(&body[4..]) {
            if t == NFTA_CHAIN_POLICY && v.len() == 4 {
                policy = Some(u32::from_be_bytes(v.try_into().unwrap()));
            }
        }
    })?;
    Ok(policy)
}

/// How many elements of the two maps carry `tag` (a dump of every element: only for repairs
/// and checks, never on a set-up's way).
pub fn tagged_elements(tag: &str) -> Result<usize> {
    let needle = format!("{tag}\0");
    let mut count = 0;
    for map in ["ports4", "anyports4", "ports6", "anyports6"] {
        let sock = nfnetlink::socket("nf_tables")?;
        let mut payload = nfnetlink::string_attr(NFTA_SET_ELEM_LIST_TABLE, "minibox");
        payload.extend(nfnetlink::string_attr(NFTA_SET_ELEM_LIST_SET, map));
        let request = message(
            GET_SETELEM,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            NFPROTO_INET,
            &payload,
        );
        sock.send(&request, 0)
            .map_err(crate::error::io("listing nf_tables elements"))?;
        for_each_message(&sock, "nf_tables", |kind, body| {
            if kind == NEW_SETELEM {
                count += body
                    .windows(needle.len())
                    .filter(|w| *w == needle.as_bytes())
                    .count();
            }
        })?;
    }
    Ok(count)
}
