//! What changes for a client depending on the listener it came in on.
//!
//! **HSTS** (RFC 6797): `Strict-Transport-Security: max-age=N` on an HTTPS
//! response tells the browser to use HTTPS for this host for the next N
//! seconds, even when the user types `http://` or follows an old link. That
//! closes the gap a redirect leaves open: the very first plain request,
//! which an attacker on the path can answer himself (SSL stripping). The
//! header is only sent over HTTPS; over HTTP a browser must ignore it.
//!
//! **The redirect** (`--redirect-http`): every request on the plain listener
//! gets `308 Permanent Redirect` to the same host, the HTTPS port and the
//! same path and query. 308 rather than 301 keeps the method and body (a
//! POST stays a POST). The request is not forwarded, so a cookie sent over
//! plain HTTP never reaches a node; it has crossed the network in clear
//! all the same, which is why the cookie must be `Secure` (the browser then
//! never sends it over HTTP at all).
//!
//! The host comes from the request's `Host` header, without its port. A
//! request without a valid one gets a 400: there is nothing to redirect to.

use std::time::Duration;

use http::HeaderMap;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};

/// The HTTPS rules of one LB (from `--hsts-max-age`, `--redirect-http`).
#[derive(Debug, Clone, Default)]
pub struct HttpsPolicy {
    /// The HSTS header value, `None` for `--hsts-max-age 0` or without TLS.
    pub hsts: Option<HeaderValue>,
    /// With `--redirect-http`: the HTTPS port the plain listener sends to.
    pub redirect_to_port: Option<u16>,
}

impl HttpsPolicy {
    /// The policy for a TLS listener on `tls_port`.
    pub fn new(hsts_max_age: Duration, redirect: bool, tls_port: u16) -> Self {
        let secs = hsts_max_age.as_secs();
        HttpsPolicy {
            hsts: (secs > 0).then(|| hsts_value(secs)),
            redirect_to_port: redirect.then_some(tls_port),
        }
    }
}

fn hsts_value(max_age_secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("max-age={max_age_secs}"))
        .unwrap_or(HeaderValue::from_static("max-age=31536000"))
}

/// `https://host[:port]/path?query` for a plain request, or `None` when it
/// names no usable host.
pub fn redirect_location(
    headers: &HeaderMap,
    path: Option<&PathAndQuery>,
    port: u16,
) -> Option<HeaderValue> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let authority: Authority = host.parse().ok()?;
    // `Authority::host` keeps the brackets of an IPv6 literal.
    let host = authority.host();
    if host.is_empty() || authority.as_str().contains('@') {
        return None;
    }
    let path = path.map_or("/", PathAndQuery::as_str);
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    HeaderValue::from_str(&location).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, path: &str, port: u16) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        let path = PathAndQuery::try_from(path).unwrap();
        redirect_location(&h, Some(&path), port).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query_and_changes_the_port() {
        assert_eq!(
            location("127.0.0.1:8080", "/cart?x=1", 8443).as_deref(),
            Some("https://127.0.0.1:8443/cart?x=1")
        );
        assert_eq!(
            location("[::1]:8080", "/", 8443).as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(
            location("shop.example", "/login", 443).as_deref(),
            Some("https://shop.example/login")
        );
    }

    #[test]
    fn no_usable_host_no_redirect() {
        assert_eq!(location("user@evil.example", "/", 8443), None);
        assert_eq!(location("a b", "/", 8443), None);
        assert_eq!(redirect_location(&HeaderMap::new(), None, 8443), None);
    }

    #[test]
    fn hsts_is_off_at_zero() {
        let p = HttpsPolicy::new(Duration::ZERO, false, 8443);
        assert!(p.hsts.is_none() && p.redirect_to_port.is_none());
        let p = HttpsPolicy::new(Duration::from_secs(300), true, 8443);
        assert_eq!(p.hsts.unwrap(), "max-age=300");
        assert_eq!(p.redirect_to_port, Some(8443));
    }
}
