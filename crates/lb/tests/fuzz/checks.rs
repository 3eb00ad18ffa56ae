//! The properties the LB request head fuzz target checks.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`) and the
//! coverage-guided target (`fuzz/fuzz_targets/lb_head.rs`). The function
//! takes arbitrary bytes and panics only when a property fails.

use http::header::{self, COOKIE, HeaderMap, HeaderName, HeaderValue};
use sessionlab_lb::head as forward;
use sessionlab_lb::head as cookie;
use sessionlab_wire::{ROUTE_COOKIE, SESSION_COOKIE};

/// The headers every proxy must drop (RFC 9110 §7.6.1), besides those that
/// `Connection` names.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// A request head from the input: one `name: value` per line, the lines
/// that hyper would refuse (bad name or value) left out.
pub fn headers_of(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

/// Target `lb_head`: what the LB does to a request head before it forwards
/// it: hop-by-hop stripping, `X-Forwarded-*`, dropping its own cookie.
///
/// Properties: no panic; after stripping no hop-by-hop header and none that
/// `Connection` named is left, and every other header is kept as it was;
/// `X-Forwarded-For` ends with the client, `-Proto` and `-Host` are the
/// LB's own; after dropping `SLROUTE` no `SLROUTE` pair is left and every
/// other cookie reads as before.
pub fn lb_head(data: &[u8]) {
    let original = headers_of(data);
    let mut h = original.clone();

    // Hop-by-hop.
    let named: Vec<HeaderName> = original
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    forward::strip_hop_by_hop(&mut h);
    for name in HOP_BY_HOP {
        assert!(!h.contains_key(name), "{name} forwarded");
    }
    for name in &named {
        assert!(
            !h.contains_key(name),
            "{name} (named by Connection) forwarded"
        );
    }
    for name in original.keys() {
        if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
            continue;
        }
        let before: Vec<_> = original.get_all(name).iter().collect();
        let after: Vec<_> = h.get_all(name).iter().collect();
        assert_eq!(before, after, "{name} changed");
    }

    // X-Forwarded-*.
    let client = HeaderValue::from_static("192.0.2.7");
    let mut fwd = h.clone();
    forward::add_forwarded(&mut fwd, &client, forward::Scheme::Http, false);
    assert_eq!(
        fwd.get_all(forward::X_FORWARDED_FOR)
            .iter()
            .collect::<Vec<_>>(),
        [&client],
        "an untrusted client's X-Forwarded-For is replaced"
    );
    assert_eq!(fwd.get_all(forward::X_FORWARDED_PROTO).iter().count(), 1);
    assert_eq!(fwd[forward::X_FORWARDED_PROTO], "http");
    assert_eq!(
        fwd.get_all(forward::X_FORWARDED_HOST)
            .iter()
            .collect::<Vec<_>>(),
        h.get(header::HOST).into_iter().collect::<Vec<_>>()
    );

    // Dropping SLROUTE keeps every other cookie as it reads.
    let mut stripped = h.clone();
    cookie::strip(&mut stripped, ROUTE_COOKIE);
    assert!(
        stripped
            .get_all(COOKIE)
            .iter()
            .all(|v| sessionlab_wire::cookie::pairs(v.as_bytes()).all(|(n, _)| n != b"SLROUTE")),
        "SLROUTE forwarded: {stripped:?}"
    );
    let names: Vec<Vec<u8>> = h
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| sessionlab_wire::cookie::pairs(v.as_bytes()).map(|(n, _)| n.to_vec()))
        .chain([SESSION_COOKIE.as_bytes().to_vec()])
        .collect();
    for name in names.iter().filter_map(|n| std::str::from_utf8(n).ok()) {
        if name == ROUTE_COOKIE {
            continue;
        }
        assert_eq!(
            sessionlab_wire::cookie::find(h.get_all(COOKIE), name),
            sessionlab_wire::cookie::find(stripped.get_all(COOKIE), name),
            "cookie {name} reads differently after dropping SLROUTE"
        );
    }
}
