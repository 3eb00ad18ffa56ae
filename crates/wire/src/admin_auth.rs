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
//! Plain functions over header values (no HTTP types), so every server
//! uses them whatever its framework.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
}
