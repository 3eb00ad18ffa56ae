//! `HOST:PORT`: where another process listens, as an IP address or a host
//! name, and which of a name's addresses to use.
//!
//! On one machine a node's peers are `127.0.0.1:9082`. In containers they
//! are service names (`node-2:9081`), which exist in DNS only while that
//! container runs and may point at a new IP after it restarts. So a host
//! name is **not resolved when it is parsed**: it is kept as written (in
//! lower case) and resolved by whoever connects, each time. The node's
//! `--peer`, `--join`, `--discover` and `--cluster-advertise` and the LB's
//! `--discover` and `--backend` all take this one form, so they accept and
//! refuse the same values.
//!
//! | written | parsed as |
//! |---|---|
//! | `127.0.0.1:9082`, `[::1]:9082` | [`HostPort::Socket`], used as is |
//! | `node-2:9081`, `Node-2.lab:1` | [`HostPort::Host`], the name in lower case |
//! | `node-2`, `node-2:0`, `-x:1`, `a..b:1`, `http://x:1` | refused ([`BadHostPort`]) |
//!
//! When a name has several addresses, [`prefer_ipv4`] picks the one to use:
//! the first IPv4 address, else the first. Container networks and most
//! clusters give services IPv4 addresses; a host's IPv6 entries (often
//! link-local or unreachable from a container) come first in some
//! resolvers' answers.
//!
//! [`client_key`] is the other side of an address: the key a connecting
//! client is counted under by every per-client limit (the node's rates,
//! the LB's connections per client).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An IP address or a host name, with a port; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPort {
    /// An IP address and port, used as is.
    Socket(SocketAddr),
    /// A DNS name and port, resolved when a connection is opened.
    Host { host: String, port: u16 },
}

impl From<SocketAddr> for HostPort {
    fn from(a: SocketAddr) -> Self {
        HostPort::Socket(a)
    }
}

impl HostPort {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            HostPort::Socket(a) => a.port(),
            HostPort::Host { port, .. } => *port,
        }
    }
}

/// Why a `HOST:PORT` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHostPort(String);

impl fmt::Display for BadHostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not HOST:PORT: {}", self.0)
    }
}

impl std::error::Error for BadHostPort {}

/// A DNS name as RFC 1123 allows it: dot-separated labels of letters,
/// digits and `-`, none empty or starting or ending with `-`.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl FromStr for HostPort {
    type Err = BadHostPort;
    fn from_str(s: &str) -> Result<Self, BadHostPort> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(HostPort::Socket(a));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| BadHostPort("the port is missing".into()))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| BadHostPort(format!("{port:?} is not a port (1-65535)")))?;
        if !valid_host(host) {
            return Err(BadHostPort(format!(
                "{host:?} is neither an IP address nor a host name"
            )));
        }
        Ok(HostPort::Host {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// `127.0.0.1:9082`, `[::1]:9082` or `node-2:9081`: the authority part of
/// a URL, and what `ToSocketAddrs` resolves.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPort::Socket(a) => write!(f, "{a}"),
            HostPort::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// An answer to a lookup: an IP address, or one with a port.
pub trait Answer: Copy {
    fn ip(&self) -> IpAddr;
}

impl Answer for IpAddr {
    fn ip(&self) -> IpAddr {
        *self
    }
}

impl Answer for SocketAddr {
    fn ip(&self) -> IpAddr {
        SocketAddr::ip(self)
    }
}

/// The address to use among a name's answers: the first IPv4 one, else the
/// first (see the module docs). `None` for no answers.
pub fn prefer_ipv4<A: Answer>(answers: &[A]) -> Option<A> {
    answers
        .iter()
        .find(|a| a.ip().is_ipv4())
        .or_else(|| answers.first())
        .copied()
}

/// The key a client at `ip` is counted under by per-client limits.
///
/// | the peer | its key |
/// |---|---|
/// | an IPv4 address | itself |
/// | an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack `[::]` listener sees of an IPv4 client) | the IPv4 address: otherwise every IPv4 client would share one key |
/// | another IPv6 address | its /64: one machine commonly holds a whole /64, and counting single addresses would let it take a fresh one per request |
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_ipv4_address_or_ipv6_64() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_ne!(key("::ffff:192.0.2.1"), key("::ffff:192.0.2.2"));
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff::9"), key("2001:db8:1:2::1"));
        assert_eq!(key("::1"), "::");
    }

    #[test]
    fn parses_ips_and_host_names() {
        assert_eq!(
            "127.0.0.1:9082".parse::<HostPort>().unwrap(),
            HostPort::Socket("127.0.0.1:9082".parse().unwrap())
        );
        assert_eq!(
            "[::1]:9082".parse::<HostPort>().unwrap().to_string(),
            "[::1]:9082"
        );
        let host = "Node-2:9081".parse::<HostPort>().unwrap();
        assert_eq!(
            host,
            HostPort::Host {
                host: "node-2".into(),
                port: 9081
            }
        );
        assert_eq!(host.to_string(), "node-2:9081");
        assert_eq!(host.port(), 9081);
        assert_eq!(
            "sessionlab-node-2.lab:1"
                .parse::<HostPort>()
                .unwrap()
                .to_string(),
            "sessionlab-node-2.lab:1"
        );
    }

    #[test]
    fn refuses_what_is_not_host_and_port() {
        for bad in [
            "node-2",
            "node-2:",
            "node-2:0",
            "node-2:65536",
            ":9081",
            "-node:9081",
            "a..b:9081",
            "no spaces:9081",
            "user@host:9081",
            "host/path:9081",
            "http://node-2:9081",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv4_is_preferred_then_the_first_answer() {
        let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
        let v4: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(prefer_ipv4(&[v6, v4]), Some(v4));
        assert_eq!(prefer_ipv4(&[v6.ip(), v4.ip()]), Some(v4.ip()));
        assert_eq!(prefer_ipv4(&[v6]), Some(v6));
        assert_eq!(prefer_ipv4::<IpAddr>(&[]), None);
    }
}
