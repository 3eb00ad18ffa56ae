//! Just enough cookie handling for routing, without allocating.
//!
//! The LB reads two cookies and never needs a full cookie parser:
//!
//! - `SLROUTE=<backend-id>`: its own sticky cookie (`sticky-cookie`);
//! - `SLSESSION=<session-id>[.<node-id>]`: the node's session cookie, read
//!   for its route suffix (`sticky-route`) or hashed (`consistent-hash`).
//!
//! A `Cookie` request header is `name=value; name2=value2` (RFC 6265 §4.2);
//! we scan it as bytes and return slices into the header, so looking a
//! cookie up costs no allocation. Only [`strip`] (HAProxy's `indirect`:
//! the backend must never see `SLROUTE`) builds a new header, and only when
//! the cookie is there alongside others; when `SLROUTE` is the whole header,
//! the header is simply removed.

use http::header::{COOKIE, HeaderMap, HeaderValue};

/// The node's session cookie.
pub const SESSION_COOKIE: &str = "SLSESSION";

/// Iterate `(name, value)` pairs of one Cookie header value.
fn pairs(value: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    value.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// The value of the first cookie called `name`, if any.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get_all(COOKIE).iter().find_map(|v| {
        pairs(v.as_bytes())
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, value)| value)
    })
}

/// Remove every cookie called `name` from the request's Cookie headers.
pub fn strip(headers: &mut HeaderMap, name: &str) {
    let values = headers.get_all(COOKIE);
    if !values
        .iter()
        .any(|v| pairs(v.as_bytes()).any(|(n, _)| n == name.as_bytes()))
    {
        return;
    }
    let mut rebuilt: Vec<HeaderValue> = Vec::new();
    for v in values.iter() {
        let mut kept = Vec::with_capacity(v.len());
        for (n, value) in pairs(v.as_bytes()).filter(|(n, _)| *n != name.as_bytes()) {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(n);
            kept.push(b'=');
            kept.extend_from_slice(value);
        }
        if !kept.is_empty() {
            if let Ok(value) = HeaderValue::from_bytes(&kept) {
                rebuilt.push(value);
            }
        }
    }
    headers.remove(COOKIE);
    for v in rebuilt {
        headers.append(COOKIE, v);
    }
}

/// The route suffix of a session id: the part after the last `.`
/// (`abc123.node-2` -> `node-2`), Tomcat `jvmRoute` style.
pub fn route_suffix(session_id: &[u8]) -> Option<&[u8]> {
    let dot = session_id.iter().rposition(|&b| b == b'.')?;
    let suffix = &session_id[dot + 1..];
    (!suffix.is_empty()).then_some(suffix)
}

/// Is this `Set-Cookie` value setting the cookie `name`?
pub fn sets_cookie(set_cookie: &HeaderValue, name: &str) -> bool {
    let v = set_cookie.as_bytes().trim_ascii_start();
    v.len() > name.len() && v.starts_with(name.as_bytes()) && v[name.len()] == b'='
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn finds_cookies_among_others() {
        let h = headers(&["a=1; SLROUTE=node-2 ;b=3", "SLSESSION=xyz.node-1"]);
        assert_eq!(find(&h, "SLROUTE"), Some(&b"node-2"[..]));
        assert_eq!(find(&h, "SLSESSION"), Some(&b"xyz.node-1"[..]));
        assert_eq!(find(&h, "b"), Some(&b"3"[..]));
        assert_eq!(find(&h, "SLROUT"), None);
        assert_eq!(find(&headers(&["garbage;;="]), "SLROUTE"), None);
    }

    #[test]
    fn strip_removes_only_the_named_cookie() {
        let mut h = headers(&["a=1; SLROUTE=node-2; b=3"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=3");

        let mut h = headers(&["SLROUTE=node-2"]);
        strip(&mut h, "SLROUTE");
        assert!(h.get(COOKIE).is_none(), "empty Cookie header dropped");

        let mut h = headers(&["a=1", "SLROUTE=x"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");

        let mut h = headers(&["a=1"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");
    }

    #[test]
    fn route_suffix_is_after_the_last_dot() {
        assert_eq!(route_suffix(b"abc.def.node-3"), Some(&b"node-3"[..]));
        assert_eq!(route_suffix(b"abc"), None);
        assert_eq!(route_suffix(b"abc."), None);
    }

    #[test]
    fn recognises_set_cookie_by_name() {
        assert!(sets_cookie(
            &HeaderValue::from_static("SLROUTE=x; Path=/"),
            "SLROUTE"
        ));
        assert!(!sets_cookie(
            &HeaderValue::from_static("SLROUTEX=x"),
            "SLROUTE"
        ));
        assert!(!sets_cookie(&HeaderValue::from_static("a=b"), "SLROUTE"));
    }
}
