//! Published ports: what is asked for ([`PortRequest`]) and what was made ([`PortMapping`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            other => Err(format!("unknown protocol {other:?} (tcp, udp or sctp)")),
        }
    }
}

/// An inclusive range of ports; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub first: u16,
    pub last: u16,
}

impl Range {
    pub fn len(self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }
}

/// Which host port a mapping wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPort {
    /// Exactly this one.
    Fixed(u16),
    /// Any free one in this range.
    AnyIn(Range),
    /// Any free one from `ip_local_port_range`.
    Random,
}

/// One container port to publish and the host port it wants, before host ports are chosen:
/// what [`crate::attach`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRequest {
    /// `None`: every address of the host (see [`crate::PortSpec::host_ip`]).
    pub host_ip: Option<IpAddr>,
    pub host: HostPort,
    pub container: u16,
    pub proto: Proto,
}

/// A published port, host side resolved: what the firewall forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// 0.0.0.0 for every IPv4 address of the host, :: for every IPv6 one.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// Whether it is published on `::1`, which only a proxy in user space can do (see the
    /// `proxy` module): the firewall leaves it out.
    pub fn proxied(&self) -> bool {
        self.host_ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    }

    /// Where the host listens, as `docker port` prints it: `0.0.0.0:8080`, `[::]:8080`.
    pub fn host(&self) -> String {
        format!("{}:{}", bracketed(self.host_ip), self.host_port)
    }
}

/// An address as it goes before `:PORT`: IPv6 ones in brackets.
pub fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl fmt::Display for PortMapping {
    /// Docker's `ps` form: `0.0.0.0:8080->80/tcp`, `:::8080->80/tcp`, `[::1]:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host_ip {
            IpAddr::V6(v6) if v6.is_unspecified() => "::".to_string(),
            ip => bracketed(ip),
        };
        write!(
            f,
            "{host}:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn display() {
        let m = PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port: 8080,
            container_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(m.to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!("UDP".parse::<Proto>(), Ok(Proto::Udp));
        assert!("icmp".parse::<Proto>().is_err());
    }
}
