//! Proxy hygiene: the header rewrites every forwarded message gets.
//!
//! **Hop-by-hop headers** (RFC 9110 §7.6.1) describe one connection, not the
//! message: `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
//! `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Authenticate`,
//! `Proxy-Authorization`, plus any header that `Connection` itself names. A
//! proxy terminates the connection, so it must drop them in both directions;
//! forwarding them would let a client control the LB-to-backend connection
//! (or smuggle a `Transfer-Encoding` past it). hyper then frames the message
//! again for the next hop (`Content-Length` or chunked, keep-alive).
//!
//! **X-Forwarded-\*** tell the backend what the LB hid: who the client is
//! and whether it spoke HTTPS (a node marks its cookie `Secure` by
//! `X-Forwarded-Proto: https`). Any client can send these headers itself,
//! so whose values count depends on who connected (`--trusted-proxy`):
//!
//! | header | from a trusted proxy | from anyone else |
//! |---|---|---|
//! | `X-Forwarded-For` | its list kept, the peer *appended* | replaced by the peer's address |
//! | `X-Forwarded-Proto` | its value kept if it is one `http` or `https`, else ours | ours: `https` on the TLS listener, `http` on the plain one |
//! | `X-Forwarded-Host` | the `Host` header | the `Host` header |
//!
//! Appending is a new field line, which is equivalent to a comma-joined list
//! and costs no allocation. Without `--trusted-proxy` the LB is the edge: a
//! client cannot make a node believe it came from another address, or over
//! HTTPS when it did not.
//!
//! The common case (no hop-by-hop header present) costs one pass over the
//! header names and no allocation.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fixed hop-by-hop list.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TRANSFER_ENCODING
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
}

/// Remove hop-by-hop headers, including those named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // Headers listed in Connection (e.g. `Connection: close, X-Trace`).
    let mut named: smallvec::SmallVec<[HeaderName; 4]> = smallvec::SmallVec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            // Every name counts: the list is bounded by the request head's
            // own size limit, and a cap here would forward the names past it.
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                named.push(name);
            }
        }
    }
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
}

/// The scheme the client spoke to the LB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// `--trusted-proxy`: the peers whose `X-Forwarded-*` are kept.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// Whether `peer` is one (an IPv4 peer on an IPv6 socket counts as IPv4).
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// Set `X-Forwarded-For`, `-Proto` and `-Host` by the table in the module
/// docs. `client_ip` is built once per client connection; `trusted` is
/// whether that client is a `--trusted-proxy`.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: Scheme,
    trusted: bool,
) {
    if trusted {
        headers.append(X_FORWARDED_FOR, client_ip.clone());
        let mut protos = headers.get_all(X_FORWARDED_PROTO).iter();
        let kept = match (protos.next(), protos.next()) {
            (Some(v), None) => v == "http" || v == "https",
            _ => false,
        };
        if !kept {
            headers.insert(X_FORWARDED_PROTO, scheme.header_value());
        }
    } else {
        headers.insert(X_FORWARDED_FOR, client_ip.clone());
        headers.insert(X_FORWARDED_PROTO, scheme.header_value());
    }
    match headers.get(header::HOST).cloned() {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_naming_seventeen_headers_strips_them_all() {
        let mut headers = HeaderMap::new();
        let names: Vec<String> = (0..17).map(|i| format!("x-h{i}")).collect();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_str(&names.join(", ")).unwrap(),
        );
        for n in &names {
            headers.insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        strip_hop_by_hop(&mut headers);
        assert!(headers.is_empty(), "forwarded: {headers:?}");
    }

    use super::*;

    #[test]
    fn strips_fixed_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn an_untrusted_client_cannot_claim_an_address_or_https() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        add_forwarded(
            &mut h,
            &HeaderValue::from_static("127.0.0.1"),
            Scheme::Http,
            false,
        );
        let xff: Vec<_> = h.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, ["127.0.0.1"]);
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "shop.example");

        let mut h = HeaderMap::new();
        add_forwarded(
            &mut h,
            &HeaderValue::from_static("::1"),
            Scheme::Https,
            false,
        );
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert!(!h.contains_key(X_FORWARDED_HOST));
    }

    #[test]
    fn a_trusted_proxy_keeps_its_chain_and_a_valid_proto() {
        let ip = HeaderValue::from_static("10.1.1.1");
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        add_forwarded(&mut h, &ip, Scheme::Http, true);
        let xff: Vec<_> = h.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(xff, ["203.0.113.9", "10.1.1.1"]);
        assert_eq!(h[X_FORWARDED_PROTO], "https");

        for bad in [&["gopher"][..], &["https", "http"]] {
            let mut h = HeaderMap::new();
            for v in bad {
                h.append(X_FORWARDED_PROTO, HeaderValue::from_static(v));
            }
            add_forwarded(&mut h, &ip, Scheme::Http, true);
            let protos: Vec<_> = h.get_all(X_FORWARDED_PROTO).iter().collect();
            assert_eq!(protos, ["http"], "{bad:?}");
        }
    }

    #[test]
    fn trusted_proxies_match_addresses_and_blocks() {
        let t = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ]);
        assert!(t.contains("10.2.3.4".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!t.contains("192.0.2.1".parse().unwrap()));
        assert!(!TrustedProxies::default().contains("127.0.0.1".parse().unwrap()));
    }
}
