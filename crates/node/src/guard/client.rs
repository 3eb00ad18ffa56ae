//! Who the client is.
//!
//! A node sees the TCP peer's address. Behind a load balancer that is the
//! LB's address for every user, so the LB appends the real client to
//! `X-Forwarded-For`. Anybody can send that header, though, so it is
//! believed only from a peer given with `--trusted-proxy` (an address or a
//! CIDR block): then the client is the rightmost address in the header that
//! is not itself a trusted proxy (the one the nearest untrusted hop
//! connected from; addresses to its left were written by the client and
//! prove nothing). From any other peer the header is ignored.
//!
//! The key a client is counted under is [`client_key`], the LB's too: an
//! IPv6 client by its /64 (one machine commonly holds a whole /64, and
//! counting single addresses would let it pick a fresh one per request),
//! an IPv4 client seen as `::ffff:a.b.c.d` by its IPv4 address.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;
use sessionlab_wire::addr::client_key;

/// The client of `req`; see the module docs.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_key(resolve(peer, forwarded, trusted))
}

/// Whether `req` came straight from a `--trusted-proxy` (so its
/// `X-Forwarded-*` headers are the proxy's, not the client's).
pub fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && req.peer_addr().is_some_and(|a| is_trusted(a.ip(), trusted))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// `::ffff:1.2.3.4` is 1.2.3.4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client by the module's rule, from the peer and the header values
/// (in the order received).
fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops = forwarded.rev().flat_map(|v| v.rsplit(','));
    // Bounded: a header longer than this many hops is not believed further.
    let mut client = peer;
    for _ in 0..32 {
        let Some(hop) = hops.next() else { break };
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // Garbage where an address should be: stop at the last good hop.
            break;
        };
        client = canonical(ip);
        if !is_trusted(client, trusted) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Asserts that [`resolve`] takes a request from `peer` with these
    /// `X-Forwarded-For` header lines, behind `trusted` proxies, for one
    /// from `client`.
    #[track_caller]
    fn assert_client(peer: &str, forwarded: &[&str], trusted: &[IpNet], client: &str) {
        assert_eq!(
            resolve(ip(peer), forwarded.iter().copied(), trusted),
            ip(client)
        );
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let lb = nets(&["127.0.0.1/32"]);
        // From the LB: the address it appended.
        assert_client("127.0.0.1", &["203.0.113.9"], &lb, "203.0.113.9");
        // From anybody else: the peer, whatever the header says.
        assert_client("198.51.100.7", &["203.0.113.9"], &lb, "198.51.100.7");
        // No proxies trusted: the peer.
        assert_client("127.0.0.1", &["203.0.113.9"], &[], "127.0.0.1");
        // A mapped IPv4 peer is the IPv4 address.
        assert_client("::ffff:127.0.0.1", &["203.0.113.9"], &lb, "203.0.113.9");
    }

    #[test]
    fn a_client_cannot_choose_its_address_by_prepending() {
        let proxies = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client wrote "1.1.1.1" itself; the LB appended its real
        // address; an inner proxy appended the LB's.
        let header = ["1.1.1.1, 203.0.113.9", "10.0.0.2"];
        assert_client("127.0.0.1", &header, &proxies, "203.0.113.9");
        // Garbage stops the walk at the last good hop.
        assert_client("127.0.0.1", &["junk, 10.0.0.3"], &proxies, "10.0.0.3");
        // Only trusted hops: the leftmost.
        assert_client("127.0.0.1", &["10.0.0.3"], &proxies, "10.0.0.3");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
        // A dual-stack listener's view of an IPv4 client is that client.
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
