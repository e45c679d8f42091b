//! The CNI error result: `{"cniVersion", "code", "msg", "details"}` on stdout, exit status 1.

use serde::Serialize;

/// The spec's well-known codes (CNI 1.0 "Error" section); 100 and up are the plugin's own.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// A host port another attachment holds.
    pub const PORT_IN_USE: u32 = 100;
    /// The subnet clashes with a route of the host.
    pub const OVERLAP: u32 = 101;
    /// The network's addresses are used up.
    pub const EXHAUSTED: u32 = 102;
    /// A delegated IPAM plugin failed.
    pub const IPAM: u32 = 103;
    /// ADD of an attachment that exists (the runtime must DEL it first).
    pub const ALREADY_ATTACHED: u32 = 104;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON the runtime reads, in the version it asked for.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut v =
            serde_json::json!({ "cniVersion": cni_version, "code": self.code, "msg": self.msg });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}

impl From<crate::Error> for CniError {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        let c = match &e {
            E::PortInUse { .. } | E::NoFreePort(_) => code::PORT_IN_USE,
            E::Overlap { .. } => code::OVERLAP,
            E::Exhausted { .. } => code::EXHAUSTED,
            E::Attached(_) => code::ALREADY_ATTACHED,
            E::InvalidNetwork(_) | E::PortSpec { .. } | E::NotLocal(_) | E::BridgeClash(_) => {
                code::INVALID_CONFIG
            }
            _ => code::IO_FAILURE,
        };
        CniError::new(c, e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, CniError>;
