//! Who may drive an operator-only HTTP surface (the LB's admin listener,
//! the dashboard): the checks both run, in one place.
//!
//! The admin listeners bind 127.0.0.1, but the browser of the person
//! running the lab also visits other web sites, and any page can send
//! requests to `127.0.0.1`. Three attacks follow, and one check each:
//!
//! | attack | check | function |
//! |---|---|---|
//! | a page posts a form or a `fetch` with `Content-Type: text/plain` (no CORS preflight) | a browser's `Origin` must be the listener's own; `Sec-Fetch-Site: cross-site` is refused | [`origin_allowed`] |
//! | DNS rebinding: the page's own name resolves to 127.0.0.1, so the browser calls it same-origin | the `Host` must be a local name with the listener's port | [`host_allowed`] |
//! | a stolen or guessed token | the bearer token compared in constant time, lengths hidden | [`bearer_matches`] |
//!
//! Request bodies must also be `application/json` ([`is_json`]): a form a
//! page can post without asking is never a valid admin call.
//!
//! [`Guard`] runs the four in one order over a request's headers, and is
//! what the LB's admin listener and the dashboard put in front of their
//! routes; the checks are also plain functions over header values, for a
//! server of another framework. A listener on a non-loopback address needs
//! a token (both binaries refuse to start without one); there the `Host`
//! may be any name (a container's service name, say): the token is the
//! guard, and a rebinding page cannot know it.

use std::net::SocketAddr;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused before any route ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    ForeignHost,
    CrossOrigin,
    Unauthorized,
    NotJson,
}

impl Refused {
    /// 403 for another site or name, 401 without the token, 415 for a body
    /// that is not JSON.
    pub fn status(self) -> StatusCode {
        match self {
            Refused::ForeignHost | Refused::CrossOrigin => StatusCode::FORBIDDEN,
            Refused::Unauthorized => StatusCode::UNAUTHORIZED,
            Refused::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// The `error` of the JSON answer.
    pub fn kind(self) -> &'static str {
        match self {
            Refused::ForeignHost => "foreign_host",
            Refused::CrossOrigin => "cross_origin",
            Refused::Unauthorized => "unauthorized",
            Refused::NotJson => "unsupported_media_type",
        }
    }

    /// The `detail` of the JSON answer.
    pub fn detail(self) -> &'static str {
        match self {
            Refused::ForeignHost => {
                "the admin listener answers only to localhost, 127.0.0.1, [::1] or its listen address in Host"
            }
            Refused::CrossOrigin => "a request from another web site is refused",
            Refused::Unauthorized => "admin calls need Authorization: Bearer <admin token>",
            Refused::NotJson => "request bodies must be Content-Type: application/json",
        }
    }
}

/// What a route asks of the guard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// An `/admin/...` route: the token, if one is set.
    pub token: bool,
    /// The route reads a JSON body.
    pub body: bool,
}

/// An admin listener's own address and token: the checks of the module
/// docs, in their order.
#[derive(Debug, Clone)]
pub struct Guard {
    listen: SocketAddr,
    token: Option<String>,
}

impl Guard {
    /// `listen` is the bound address (its port, not the flag's, which may be 0).
    pub fn new(listen: SocketAddr, token: Option<String>) -> Self {
        Guard { listen, token }
    }

    /// `Host` (on loopback), then `Origin` and `Sec-Fetch-Site`, then the
    /// token if `needs` it, then a JSON body if there is one or `needs` it.
    pub fn check(&self, headers: &HeaderMap, needs: Needs) -> Result<(), Refused> {
        let header = |name| headers.get(name).map(|v: &http::HeaderValue| v.as_bytes());
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if self.listen.ip().is_loopback()
            && !host_allowed(host, self.listen.ip(), self.listen.port())
        {
            return Err(Refused::ForeignHost);
        }
        if !origin_allowed(header(ORIGIN), header(SEC_FETCH_SITE), host.unwrap_or("")) {
            return Err(Refused::CrossOrigin);
        }
        if needs.token {
            if let Some(token) = &self.token {
                if !bearer_matches(header(AUTHORIZATION), token) {
                    return Err(Refused::Unauthorized);
                }
            }
        }
        let has_body = headers.contains_key(TRANSFER_ENCODING)
            || headers
                .get(CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if (needs.body || has_body) && !is_json(header(CONTENT_TYPE)) {
            return Err(Refused::NotJson);
        }
        Ok(())
    }
}

/// `Authorization: Bearer <token>` names `token`. The comparison is over
/// SHA-256 digests in constant time, so neither the token's bytes nor its
/// length leak through timing.
pub fn bearer_matches(authorization: Option<&[u8]>, token: &str) -> bool {
    let Some(presented) = authorization.and_then(|v| v.strip_prefix(b"Bearer ")) else {
        return false;
    };
    let a = Sha256::digest(presented);
    let b = Sha256::digest(token.as_bytes());
    a.ct_eq(&b).into()
}

/// Splits `name:port` (`[v6]:port`, or a name alone: port 80).
fn split_host(host: &str) -> Option<(&str, u16)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((ip, port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, port.parse().ok()?)),
        None => Some((host, 80)),
    }
}

/// The `Host` header names this listener by a local name: `localhost`,
/// `127.0.0.1`, `[::1]`, or `listen_ip` (the listener's own address), with
/// the listener's `port`. Anything else is a name some site controls
/// (DNS rebinding).
pub fn host_allowed(host: Option<&str>, listen_ip: std::net::IpAddr, port: u16) -> bool {
    let Some((name, p)) = host.and_then(split_host) else {
        return false;
    };
    if p != port {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip == listen_ip,
        Err(_) => false,
    }
}

/// A browser's `Origin` (if it sent one) is `http://<host>`, this
/// listener's own origin, and `Sec-Fetch-Site` (if sent) is not
/// `cross-site`. Requests from programs (curl, the lab, the dashboard's
/// server side) send neither header and pass.
pub fn origin_allowed(origin: Option<&[u8]>, sec_fetch_site: Option<&[u8]>, host: &str) -> bool {
    if sec_fetch_site.is_some_and(|s| s.eq_ignore_ascii_case(b"cross-site")) {
        return false;
    }
    match origin {
        None => true,
        Some(o) => o
            .strip_prefix(b"http://")
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host.as_bytes())),
    }
}

/// A `Content-Type` of `application/json` (parameters such as `charset`
/// allowed).
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(|&b| b == b';').next().unwrap_or(b"");
        essence
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/json")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn bearer_tokens() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer wrong"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cret2"), "s3cret"));
        assert!(!bearer_matches(Some(b"s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }

    #[test]
    fn hosts_are_local_names_with_the_port() {
        for ok in [
            "127.0.0.1:8078",
            "localhost:8078",
            "LocalHost:8078",
            "[::1]:8078",
        ] {
            assert!(host_allowed(Some(ok), LOOPBACK, 8078), "{ok}");
        }
        let lan: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(host_allowed(Some("10.0.0.5:8078"), lan, 8078));
        for bad in [
            "evil.example:8078",
            "127.0.0.1:8079",
            "127.0.0.1",
            "10.0.0.5:8078",
            "",
            "[::1",
            "[::1]x",
            "127.0.0.1:port",
        ] {
            assert!(!host_allowed(Some(bad), LOOPBACK, 8078), "{bad}");
        }
        assert!(host_allowed(Some("localhost"), LOOPBACK, 80));
        assert!(!host_allowed(None, LOOPBACK, 8078));
    }

    #[test]
    fn origins_must_be_the_listener_itself() {
        let host = "127.0.0.1:8078";
        assert!(origin_allowed(None, None, host));
        assert!(origin_allowed(Some(b"http://127.0.0.1:8078"), None, host));
        assert!(origin_allowed(None, Some(b"same-origin"), host));
        assert!(origin_allowed(None, Some(b"none"), host));
        assert!(!origin_allowed(Some(b"http://evil.example"), None, host));
        assert!(!origin_allowed(Some(b"null"), None, host));
        assert!(!origin_allowed(Some(b"https://127.0.0.1:8078"), None, host));
        assert!(!origin_allowed(None, Some(b"cross-site"), host));
        assert!(!origin_allowed(Some(b"http://"), None, ""));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some(b"application/json")));
        assert!(is_json(Some(b"Application/JSON; charset=utf-8")));
        assert!(!is_json(Some(b"text/plain")));
        assert!(!is_json(Some(b"application/json-seq")));
        assert!(!is_json(Some(b"application/x-www-form-urlencoded")));
        assert!(!is_json(None));
    }

    const ADMIN: Needs = Needs {
        token: true,
        body: false,
    };
    const ADD: Needs = Needs {
        token: true,
        body: true,
    };

    /// The headers of a `POST /admin/v1/backends`.
    fn req(headers: &[(&'static str, &str)]) -> HeaderMap {
        headers
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn local() -> Guard {
        Guard::new("127.0.0.1:8078".parse().unwrap(), None)
    }

    #[test]
    fn local_hosts_pass_and_foreign_ones_do_not() {
        let g = local();
        assert_eq!(g.check(&req(&[("host", "127.0.0.1:8078")]), ADMIN), Ok(()));
        assert_eq!(g.check(&req(&[("host", "localhost:8078")]), ADMIN), Ok(()));
        for host in ["evil.example:8078", "127.0.0.1:9999", "evil.example"] {
            assert_eq!(
                g.check(&req(&[("host", host)]), ADMIN),
                Err(Refused::ForeignHost),
                "{host}"
            );
        }
        assert_eq!(g.check(&req(&[]), ADMIN), Err(Refused::ForeignHost));
        // Off loopback (token required at start-up), any name.
        let lan = Guard::new("0.0.0.0:8078".parse().unwrap(), Some("t".into()));
        let ok = req(&[("host", "lb:8078"), ("authorization", "Bearer t")]);
        assert_eq!(lan.check(&ok, ADMIN), Ok(()));
    }

    #[test]
    fn other_sites_are_refused_before_anything_else() {
        let g = Guard::new("127.0.0.1:8078".parse().unwrap(), Some("t".into()));
        let evil = req(&[
            ("host", "127.0.0.1:8078"),
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(g.check(&evil, ADD), Err(Refused::CrossOrigin));
        let cross = req(&[("host", "127.0.0.1:8078"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(g.check(&cross, ADMIN), Err(Refused::CrossOrigin));
        let own = req(&[
            ("host", "127.0.0.1:8078"),
            ("origin", "http://127.0.0.1:8078"),
            ("authorization", "Bearer t"),
        ]);
        assert_eq!(g.check(&own, ADMIN), Ok(()));
    }

    #[test]
    fn the_token_and_json_bodies() {
        let g = Guard::new("127.0.0.1:8078".parse().unwrap(), Some("t".into()));
        let host = ("host", "127.0.0.1:8078");
        assert_eq!(g.check(&req(&[host]), ADMIN), Err(Refused::Unauthorized));
        let wrong = req(&[host, ("authorization", "Bearer u")]);
        assert_eq!(g.check(&wrong, ADMIN), Err(Refused::Unauthorized));
        // /healthz and /metrics: no token.
        assert_eq!(g.check(&req(&[host]), Needs::default()), Ok(()));
        let auth = ("authorization", "Bearer t");
        assert_eq!(g.check(&req(&[host, auth]), ADD), Err(Refused::NotJson));
        let text = req(&[
            host,
            auth,
            ("content-type", "text/plain"),
            ("content-length", "2"),
        ]);
        assert_eq!(g.check(&text, ADMIN), Err(Refused::NotJson));
        let json = req(&[host, auth, ("content-type", "application/json")]);
        assert_eq!(g.check(&json, ADD), Ok(()));
        let empty = req(&[host, auth, ("content-length", "0")]);
        assert_eq!(g.check(&empty, ADMIN), Ok(()), "drain has no body");
    }
}
