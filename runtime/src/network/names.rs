//! How a container finds other hosts by name: its network's DNS server (run by the network
//! library, see `minibox_netns::Dns`) for containers and aliases, its own /etc/hosts for
//! `--add-host`, and its resolv.conf, Docker's options (`--dns`, `--dns-search`,
//! `--dns-option`) over the host's.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{Error, Mode, Result};

/// `--add-host NAME:host-gateway`: the host, as the container reaches it.
const HOST_GATEWAY: &str = "host-gateway";

/// The container's naming options, as given (validated) and recorded in its config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// `--network-alias`: more names for the container on its networks' DNS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--link NAME[:ALIAS]`, as `(NAME, ALIAS)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(String, String)>,
    /// `--add-host NAME:IP|host-gateway`, as `(NAME, IP or "host-gateway")`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns`: the servers for names the network does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `--ip`: the container's address on its user-defined network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// `--ip6`: its IPv6 address there (a dual-stack network's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// `--mac-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The `--network`s after the first: eth1, eth2, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_networks: Vec<String>,
    /// What `network connect` gave those of `more_networks` it connected (`--alias`, `--ip`,
    /// `--ip6`): each start reconnects them with it, as Docker does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connected: BTreeMap<String, Connected>,
}

/// A network's own options for one container (`network connect --alias --ip --ip6`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connected {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
}

/// The flags as given on the command line.
#[derive(Debug, Default)]
pub struct Flags<'a> {
    pub aliases: &'a [String],
    pub links: &'a [String],
    pub add_hosts: &'a [String],
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
    pub ip: Option<&'a str>,
    pub ip6: Option<&'a str>,
    pub mac_address: Option<&'a str>,
}

impl Names {
    /// Checks the flags before anything is made: one line per mistake, saying what is expected.
    pub fn parse(flags: &Flags, mode: &Mode) -> Result<Self> {
        let Flags {
            aliases,
            links,
            add_hosts,
            dns,
            dns_search,
            dns_options,
            ip,
            ip6,
            mac_address,
        } = *flags;
        let ip = ip
            .map(|ip| match mode {
                Mode::Bridge(net) if net != minibox_netns::DEFAULT_NETWORK => {
                    ip.parse::<Ipv4Addr>().map_err(|_| {
                        Error::Invalid(format!("invalid --ip {ip:?}: expected an IPv4 address"))
                    })
                }
                _ => Err(Error::Invalid(format!(
                    "--ip {ip}: a chosen address needs a user-defined network (--network NAME)"
                ))),
            })
            .transpose()?;
        let ip6 = ip6
            .map(|ip| match mode {
                Mode::Bridge(net) if net != minibox_netns::DEFAULT_NETWORK => {
                    ip.parse::<std::net::Ipv6Addr>().map_err(|_| {
                        Error::Invalid(format!("invalid --ip6 {ip:?}: expected an IPv6 address"))
                    })
                }
                _ => Err(Error::Invalid(format!(
                    "--ip6 {ip}: a chosen address needs a user-defined network with IPv6 (--network NAME)"
                ))),
            })
            .transpose()?;
        let mac = mac_address
            .map(|m| {
                parse_mac(m).map(|_| m.to_lowercase()).ok_or_else(|| {
                    Error::Invalid(format!("invalid --mac-address {m:?}: expected a unicast address like 02:42:0a:00:00:02"))
                })
            })
            .transpose()?;
        if mac.is_some() && !matches!(mode, Mode::Bridge(_)) {
            return Err(Error::Invalid(
                "--mac-address needs a bridge network (not --network none or host)".into(),
            ));
        }
        for a in aliases {
            if !matches!(mode, Mode::Bridge(_)) {
                return Err(Error::Invalid(format!(
                    "--network-alias {a}: aliases need a bridge network (not --network none or host)"
                )));
            }
            if !valid_name(a) {
                return Err(Error::Invalid(format!(
                    "invalid --network-alias {a:?}: use letters, digits, '.', '-' and '_'"
                )));
            }
        }
        let links = links
            .iter()
            .map(|l| {
                let (name, alias) = l.split_once(':').unwrap_or((l, l));
                let name = name.strip_prefix('/').unwrap_or(name);
                if !valid_name(name) || !valid_name(alias) {
                    return Err(Error::Invalid(format!(
                        "invalid --link {l:?}: expected NAME or NAME:ALIAS"
                    )));
                }
                if !matches!(mode, Mode::Bridge(_)) {
                    return Err(Error::Invalid(format!(
                        "--link {l}: links need a bridge network (not --network none or host)"
                    )));
                }
                Ok((name.to_string(), alias.to_string()))
            })
            .collect::<Result<_>>()?;
        let extra_hosts = add_hosts
            .iter()
            .map(|h| {
                let (name, addr) = h
                    .split_once([':', '='])
                    .filter(|(n, a)| {
                        valid_name(n) && (*a == HOST_GATEWAY || a.parse::<IpAddr>().is_ok())
                    })
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "invalid --add-host {h:?}: expected NAME:IP or NAME:host-gateway"
                        ))
                    })?;
                if addr == HOST_GATEWAY && *mode == Mode::None {
                    return Err(Error::Invalid(format!(
                        "--add-host {h}: host-gateway needs a network (not --network none)"
                    )));
                }
                Ok((name.to_string(), addr.to_string()))
            })
            .collect::<Result<_>>()?;
        let dns = dns
            .iter()
            .map(|d| {
                d.parse().map_err(|_| {
                    Error::Invalid(format!("invalid --dns {d:?}: expected an IP address"))
                })
            })
            .collect::<Result<_>>()?;
        for (flag, values) in [("--dns-search", dns_search), ("--dns-option", dns_options)] {
            if let Some(v) = values
                .iter()
                .find(|v| v.is_empty() || v.contains(char::is_whitespace))
            {
                return Err(Error::Invalid(format!(
                    "invalid {flag} {v:?}: expected one word"
                )));
            }
        }
        Ok(Names {
            aliases: aliases.to_vec(),
            links,
            extra_hosts,
            dns,
            dns_search: dns_search.to_vec(),
            dns_options: dns_options.to_vec(),
            ip,
            ip6,
            mac,
            more_networks: Vec::new(),
            connected: BTreeMap::new(),
        })
    }

    /// The networks after the first, each with what `network connect` gave it.
    pub fn more(&self) -> Vec<(String, Connected)> {
        self.more_networks
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    self.connected.get(n).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// `--mac-address` as bytes.
    pub fn mac_bytes(&self) -> Option<[u8; 6]> {
        self.mac.as_deref().and_then(parse_mac)
    }

    /// What the container answers to on its networks' DNS: its name, its short id, its aliases.
    pub fn endpoint(&self, name: Option<&str>, id: &str) -> minibox_netns::Dns {
        let mut names: Vec<String> = name.into_iter().map(str::to_string).collect();
        names.push(id[..12].to_string());
        names.extend(self.aliases.iter().cloned());
        minibox_netns::Dns {
            names,
            servers: self.dns.clone(),
            served: false,
            group: id.to_string(),
        }
    }

    /// The /etc/hosts lines of `--add-host`; `host-gateway` is `gateway` (the host as the
    /// container reaches it).
    pub fn hosts_lines(&self, gateway: Ipv4Addr) -> String {
        self.extra_hosts
            .iter()
            .map(|(name, addr)| match addr.as_str() {
                HOST_GATEWAY => format!("{gateway}\t{name}\n"),
                ip => format!("{ip}\t{name}\n"),
            })
            .collect()
    }

    /// The container's resolv.conf. `server`: the network's DNS server (then `ndots:0`, as
    /// Docker's embedded server has it, so that a container's name is asked as it is first).
    /// Else the host's servers, without loopback ones unless the container shares the host's
    /// network (Google's when none is left, as Docker does), or `--dns`.
    pub fn resolv_conf(&self, host: &str, server: Option<Ipv4Addr>, host_network: bool) -> String {
        let own =
            !(self.dns.is_empty() && self.dns_search.is_empty() && self.dns_options.is_empty());
        if host_network && !own {
            return host.to_string();
        }
        let values = |key: &str| -> Vec<String> {
            host.lines()
                .filter_map(|l| l.trim().strip_prefix(key))
                .flat_map(|rest| rest.split('#').next().unwrap_or("").split_whitespace())
                .map(str::to_string)
                .collect()
        };
        let servers: Vec<String> = match server {
            Some(gateway) => vec![gateway.to_string()],
            None if !self.dns.is_empty() => self.dns.iter().map(IpAddr::to_string).collect(),
            None => {
                let kept: Vec<String> = minibox_netns::nameservers(host)
                    .into_iter()
                    .filter(|ip| host_network || !ip.is_loopback())
                    .map(|ip| ip.to_string())
                    .collect();
                match kept.is_empty() {
                    true => vec!["8.8.8.8".into(), "8.8.4.4".into()],
                    false => kept,
                }
            }
        };
        let search = match self.dns_search.is_empty() {
            true => values("search"),
            false => self.dns_search.clone(),
        };
        let mut options = match self.dns_options.is_empty() {
            true => values("options"),
            false => self.dns_options.clone(),
        };
        if server.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".into());
        }
        let mut out: String = servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect();
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }
}

/// `aa:bb:cc:dd:ee:ff`, a unicast address (the first octet's low bit clear).
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let mac: [u8; 6] = bytes.try_into().ok()?;
    (mac[0] & 1 == 0).then_some(mac)
}

/// Host names and aliases: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as container names.
fn valid_name(name: &str) -> bool {
    name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(add_hosts: &[&str], dns: &[&str]) -> Result<Names> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (add_hosts, dns) = (s(add_hosts), s(dns));
        let flags = Flags {
            add_hosts: &add_hosts,
            dns: &dns,
            ..Flags::default()
        };
        Names::parse(&flags, &Mode::Bridge("minibox".into()))
    }

    #[test]
    fn ip_and_mac_are_checked() {
        let lab = Mode::Bridge("lab".into());
        let with = |ip: Option<&str>, mac: Option<&str>, mode: &Mode| {
            let flags = Flags {
                ip,
                mac_address: mac,
                ..Flags::default()
            };
            Names::parse(&flags, mode)
        };
        let n = with(Some("10.99.0.9"), Some("02:AA:00:00:00:01"), &lab).unwrap();
        assert_eq!(n.ip, Some([10, 99, 0, 9].into()));
        assert_eq!(n.mac_bytes(), Some([2, 0xaa, 0, 0, 0, 1]));
        let default = Mode::Bridge("minibox".into());
        let err = |r: Result<Names>| r.unwrap_err().to_string();
        assert!(err(with(Some("10.77.0.9"), None, &default)).contains("user-defined network"));
        assert!(err(with(Some("nope"), None, &lab)).contains("invalid --ip"));
        assert!(err(with(None, Some("01:00:00:00:00:01"), &lab)).contains("unicast"));
        assert!(err(with(None, Some("02:00:00:00:01"), &lab)).contains("--mac-address"));
    }

    #[test]
    fn add_host_takes_an_ip_or_host_gateway() {
        let n = names(&["db:10.0.0.5", "v6=::1", "gw:host-gateway"], &[]).unwrap();
        assert_eq!(
            n.hosts_lines([10, 77, 0, 1].into()),
            "10.0.0.5\tdb\n::1\tv6\n10.77.0.1\tgw\n"
        );
        for bad in ["db", "db:", ":1.2.3.4", "db:nowhere", "a b:1.2.3.4"] {
            let e = names(&[bad], &[]).unwrap_err().to_string();
            assert!(e.contains("NAME:IP"), "{bad}: {e}");
        }
        let none = Names::parse(
            &Flags {
                add_hosts: &["gw:host-gateway".to_string()],
                ..Flags::default()
            },
            &Mode::None,
        );
        assert!(none.unwrap_err().to_string().contains("--network none"));
        assert!(names(&[], &["nope"])
            .unwrap_err()
            .to_string()
            .contains("--dns"));
    }

    #[test]
    fn resolv_conf_keeps_the_hosts_search_and_options() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n";
        let n = Names::default();
        assert_eq!(
            n.resolv_conf(host, Some([10, 77, 0, 1].into()), false),
            "nameserver 10.77.0.1\nsearch lan\noptions edns0 ndots:0\n"
        );
        assert_eq!(
            n.resolv_conf(host, None, false),
            "nameserver 10.0.0.1\nsearch lan\noptions edns0\n"
        );
        assert!(n
            .resolv_conf("nameserver ::1\n", None, false)
            .contains("8.8.8.8"));
        let own = names(&[], &["9.9.9.9"]).unwrap();
        let own = Names {
            dns_search: vec!["corp".into()],
            dns_options: vec!["ndots:2".into()],
            ..own
        };
        assert_eq!(
            own.resolv_conf(host, None, false),
            "nameserver 9.9.9.9\nsearch corp\noptions ndots:2\n"
        );
        assert_eq!(
            own.resolv_conf(host, Some([10, 77, 0, 1].into()), false),
            "nameserver 10.77.0.1\nsearch corp\noptions ndots:2\n"
        );
    }
}
