//! Where a peer's cluster listener is: an IP address or a host name, with a
//! port.
//!
//! On one machine peers are `127.0.0.1:9082`. In containers they are
//! service names (`node-2:9081`), which exist in DNS only while that
//! container runs and may point at a new IP after it restarts. So a host
//! name is **not resolved at start**: it is kept as written, put in the
//! request URL, and resolved by the HTTP client each time it opens a
//! connection. A peer whose name does not resolve yet is simply a peer that
//! is down; the protocol tries it again at every heartbeat, exactly as it
//! would a peer whose port refuses connections.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A peer's cluster listener; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// An IP address and port, used as is.
    Socket(SocketAddr),
    /// A DNS name and port, resolved when a connection is opened.
    Host { host: String, port: u16 },
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> Self {
        PeerAddr::Socket(a)
    }
}

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not HOST:PORT: {0}")]
pub struct BadPeerAddr(String);

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

impl FromStr for PeerAddr {
    type Err = BadPeerAddr;
    fn from_str(s: &str) -> Result<Self, BadPeerAddr> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(PeerAddr::Socket(a));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| BadPeerAddr("the port is missing".into()))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| BadPeerAddr(format!("{port:?} is not a port (1-65535)")))?;
        if !valid_host(host) {
            return Err(BadPeerAddr(format!(
                "{host:?} is neither an IP address nor a host name"
            )));
        }
        Ok(PeerAddr::Host {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// `127.0.0.1:9082`, `[::1]:9082` or `node-2:9081`: the authority part of
/// a URL.
impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Socket(a) => write!(f, "{a}"),
            PeerAddr::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ips_and_host_names() {
        assert_eq!(
            "127.0.0.1:9082".parse::<PeerAddr>().unwrap(),
            PeerAddr::Socket("127.0.0.1:9082".parse().unwrap())
        );
        assert_eq!(
            "[::1]:9082".parse::<PeerAddr>().unwrap().to_string(),
            "[::1]:9082"
        );
        let host = "Node-2:9081".parse::<PeerAddr>().unwrap();
        assert_eq!(
            host,
            PeerAddr::Host {
                host: "node-2".into(),
                port: 9081
            }
        );
        assert_eq!(host.to_string(), "node-2:9081");
        assert_eq!(
            "sessionlab-node-2.lab:1"
                .parse::<PeerAddr>()
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
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
    }
}
