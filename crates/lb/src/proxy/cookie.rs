//! Just enough cookie handling for routing, without allocating.
//!
//! The LB reads two cookies and never needs a full cookie parser:
//!
//! - `SLROUTE=<backend-id>`: its own sticky cookie (`sticky-cookie`);
//! - the node's session cookie (`--session-cookie`, `SLSESSION` unless the
//!   nodes run with another `--cookie-name`): `<session-id>[.<node-id>]`,
//!   read for its route suffix (`sticky-route`) or hashed (`consistent-hash`).
//!
//! The parser is the one the node uses ([`sessionlab_wire::cookie`]), so the
//! LB and the node agree on what a request presented: a cookie given twice
//! counts as absent (no affinity) here as on the node. Lookups return
//! slices into the header. Only [`strip`] (HAProxy's `indirect`: the backend
//! must never see `SLROUTE`) builds a new header, and only when the cookie
//! is there alongside others; when `SLROUTE` is the whole header, the header
//! is simply removed.

use http::header::{COOKIE, HeaderMap, HeaderValue};
use sessionlab_wire::cookie::pairs;

/// The value of the cookie called `name`, if the request presented exactly
/// one usable cookie of that name.
pub fn find<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    sessionlab_wire::cookie::find(headers.get_all(COOKIE), name)
        .value()
        .map(str::as_bytes)
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

/// Is this `Set-Cookie` value setting the cookie `name`?
pub fn sets_cookie(set_cookie: &HeaderValue, name: &str) -> bool {
    sessionlab_wire::cookie::sets_cookie(set_cookie.as_bytes(), name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_testkit::header_lines;

    #[test]
    fn finds_cookies_among_others() {
        let h = header_lines(
            "cookie",
            &["a=1; SLROUTE=node-2 ;b=3", "SLSESSION=xyz.node-1"],
        );
        assert_eq!(find(&h, "SLROUTE"), Some(&b"node-2"[..]));
        assert_eq!(find(&h, "SLSESSION"), Some(&b"xyz.node-1"[..]));
        assert_eq!(find(&h, "b"), Some(&b"3"[..]));
        assert_eq!(find(&h, "SLROUT"), None);
        assert_eq!(
            find(&header_lines("cookie", &["garbage;;="]), "SLROUTE"),
            None
        );
    }

    #[test]
    fn strip_removes_only_the_named_cookie() {
        let mut h = header_lines("cookie", &["a=1; SLROUTE=node-2; b=3"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1; b=3");

        let mut h = header_lines("cookie", &["SLROUTE=node-2"]);
        strip(&mut h, "SLROUTE");
        assert!(h.get(COOKIE).is_none(), "empty Cookie header dropped");

        let mut h = header_lines("cookie", &["a=1", "SLROUTE=x"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");

        let mut h = header_lines("cookie", &["a=1"]);
        strip(&mut h, "SLROUTE");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");
    }

    #[test]
    fn a_cookie_given_twice_gives_no_affinity() {
        let h = header_lines("cookie", &["SLROUTE=node-1", "SLROUTE=node-2"]);
        assert_eq!(find(&h, "SLROUTE"), None);
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
