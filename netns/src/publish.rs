//! Docker's `-p` grammar: `[HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, with ranges on either side,
//! as `run -p`, `-P` and EXPOSE write it, turned into the [`PortRequest`]s the core takes. The
//! core itself never sees this grammar (a CNI plugin hands it requests directly).

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::ports::{HostPort, PortRequest, Proto, Range};

/// One parsed `-p` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// `None` publishes on every host address (IPv6 ones too, on a dual-stack network);
    /// `0.0.0.0` on every IPv4 one, `::` on every IPv6 one, as in Docker.
    pub host_ip: Option<IpAddr>,
    pub host: Option<Range>,
    pub container: Range,
    pub proto: Proto,
}

impl PortSpec {
    /// Parses one `-p` value.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| Error::PortSpec {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (rest, proto.parse::<Proto>().map_err(|e| bad(&e))?),
            None => (spec, Proto::Tcp),
        };
        // An IPv6 host address comes in brackets; anything else splits on ':'.
        let bracketed = rest.starts_with('[');
        let (ip, ports): (Option<&str>, &str) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, tail) = after
                .split_once(']')
                .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
            let tail = tail
                .strip_prefix(':')
                .ok_or_else(|| bad("expected ':' after the host address"))?;
            (Some(ip), tail)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => {
                    let (ip, tail) = rest.split_once(':').unwrap();
                    (Some(ip), tail)
                }
                _ => return Err(bad("too many ':' (IPv6 host addresses go in brackets)")),
            }
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) if bracketed => {
                    return Err(bad("brackets are for IPv6 host addresses"))
                }
                Ok(IpAddr::V6(_)) if !bracketed => {
                    return Err(bad("IPv6 host addresses go in brackets: [::1]:8080:80"))
                }
                Ok(ip) => Some(ip),
                Err(_) => return Err(bad(&format!("{ip:?} is not an IP address"))),
            },
        };
        let (host, container) = match ports.split_once(':') {
            None => (None, ports),
            Some(("", c)) => (None, c),
            Some((h, c)) => (Some(parse_range(h).map_err(|e| bad(&e))?), c),
        };
        if container.is_empty() {
            return Err(bad("no container port"));
        }
        let container = parse_range(container).map_err(|e| bad(&e))?;
        if let Some(host) = host {
            if host.len() != container.len() && container.len() != 1 {
                return Err(bad(&format!(
                    "host range {}-{} and container range {}-{} differ in length",
                    host.first, host.last, container.first, container.last
                )));
            }
        }
        Ok(PortSpec {
            host_ip,
            host,
            container,
            proto,
        })
    }

    /// `-P`: an image's EXPOSE entry (`80`, `80/udp`, `8000-8002/tcp`) to a random host port.
    pub fn exposed(entry: &str) -> Result<Self> {
        let mut spec = PortSpec::parse(entry)?;
        if spec.host.is_some() || spec.host_ip.is_some() {
            return Err(Error::PortSpec {
                spec: entry.to_string(),
                why: "EXPOSE takes a container port only".into(),
            });
        }
        spec.host = None;
        Ok(spec)
    }

    /// One entry per container port.
    pub fn requests(&self) -> Vec<PortRequest> {
        (self.container.first..=self.container.last)
            .enumerate()
            .map(|(i, container)| PortRequest {
                host_ip: self.host_ip,
                host: match self.host {
                    None => HostPort::Random,
                    Some(h) if h.len() == self.container.len() => {
                        HostPort::Fixed(h.first + i as u16)
                    }
                    Some(h) => HostPort::AnyIn(h),
                },
                container,
                proto: self.proto,
            })
            .collect()
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is out of range 1-65535")),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

fn parse_range(s: &str) -> Result<Range, String> {
    let (first, last) = match s.split_once('-') {
        Some((a, b)) => (parse_port(a)?, parse_port(b)?),
        None => {
            let p = parse_port(s)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("range {s} ends before it starts"));
    }
    Ok(Range { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn r(first: u16, last: u16) -> Option<Range> {
        Some(Range { first, last })
    }

    #[test]
    fn forms() {
        let p = PortSpec::parse("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host, p.container.first, p.proto),
            (None, r(8080, 8080), 80, Proto::Tcp)
        );
        let p = PortSpec::parse("80").unwrap();
        assert_eq!(
            (p.host, p.container),
            (
                None,
                Range {
                    first: 80,
                    last: 80
                }
            )
        );
        let p = PortSpec::parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            (p.host_ip, p.host, p.proto),
            (Some(Ipv4Addr::LOCALHOST.into()), r(8080, 8080), Proto::Udp)
        );
        let p = PortSpec::parse("127.0.0.1::80").unwrap();
        assert_eq!(
            (p.host_ip, p.host),
            (Some(Ipv4Addr::LOCALHOST.into()), None)
        );
        // Docker's: 0.0.0.0 is every IPv4 address only, [::] every IPv6 one.
        let p = PortSpec::parse("0.0.0.0:9000:90/TCP").unwrap();
        assert_eq!(
            (p.host_ip, p.proto),
            (Some(Ipv4Addr::UNSPECIFIED.into()), Proto::Tcp)
        );
        let p = PortSpec::parse("[::1]:8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host),
            (Some(Ipv6Addr::LOCALHOST.into()), r(8080, 8080))
        );
        let p = PortSpec::parse("[::]::80/udp").unwrap();
        assert_eq!(
            (p.host_ip, p.host),
            (Some(Ipv6Addr::UNSPECIFIED.into()), None)
        );
        let p = PortSpec::parse("53/sctp").unwrap();
        assert_eq!(p.proto, Proto::Sctp);
    }

    #[test]
    fn ranges() {
        let p = PortSpec::parse("8080-8082:80-82").unwrap();
        let w = p.requests();
        assert_eq!(w.len(), 3);
        assert_eq!((w[2].host, w[2].container), (HostPort::Fixed(8082), 82));
        let w = PortSpec::parse("8000-8010:80").unwrap().requests();
        assert_eq!(
            w,
            vec![PortRequest {
                host_ip: None,
                host: HostPort::AnyIn(Range {
                    first: 8000,
                    last: 8010
                }),
                container: 80,
                proto: Proto::Tcp
            }]
        );
        let w = PortSpec::parse("80-81").unwrap().requests();
        assert!(w.iter().all(|w| w.host == HostPort::Random));
    }

    #[test]
    fn rejects() {
        for bad in [
            "70000:80",
            "a:b",
            "8080-8081:80-82",
            "80:0",
            "",
            "8080:",
            "1.2.3:80:80",
            "80/icmp",
            "82-80",
            "1:2:3:4",
            "[::1:80:80",
            "[127.0.0.1]:80:80",
            "::1:80:80",
            "8080:80-81",
        ] {
            let err = PortSpec::parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid port spec {bad:?}: ")),
                "{bad}: {err}"
            );
        }
        assert!(PortSpec::parse("70000:80")
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        assert!(PortSpec::parse("8080-8081:80-82")
            .unwrap_err()
            .to_string()
            .contains("differ in length"));
    }

    #[test]
    fn exposed_entries() {
        assert_eq!(PortSpec::exposed("8081/tcp").unwrap().container.first, 8081);
        assert!(PortSpec::exposed("1:2").is_err());
    }
}
