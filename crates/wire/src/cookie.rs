//! The cookie names and the one `Cookie` request header parser.
//!
//! Two processes read cookies: the node reads its session cookie, and the
//! load balancer reads its own sticky cookie (`SLROUTE`, `sticky-cookie`)
//! and the node's session cookie (for its route suffix in `sticky-route`,
//! or to hash it in `consistent-hash`). They must agree on what a request
//! presented, or the LB routes a user by one value while the node loads
//! another. So both call [`find`], with these semantics:
//!
//! - a `Cookie` header is `name=value; name2=value2` (RFC 6265 §4.2); the
//!   pairs of every `Cookie` header of the request are scanned, as bytes,
//!   and the answer borrows from the header (no allocation);
//! - spaces around names and values are ignored, and a value wrapped in
//!   double quotes (`name="value"`, allowed by RFC 6265) is the text inside;
//! - a pair without `=` (`garbage`) is not a cookie and is skipped;
//! - a name that appears **more than once** is [`Presented::Unusable`]: two
//!   values under one name are a sign of tampering (a cookie planted for a
//!   parent domain) or of two sites' cookies colliding, and picking either
//!   one would let the planted one win; a value that is not UTF-8 is
//!   unusable too. Callers treat unusable as absent ("no session", "no
//!   affinity"), never as an error.
//!
//! The session cookie's name is configurable on the node (`--cookie-name`),
//! so the LB (`--session-cookie`) and the load tool take it as a setting,
//! with [`SESSION_COOKIE`] as the default.

/// The node's session cookie, unless `--cookie-name` says otherwise.
pub const SESSION_COOKIE: &str = "SLSESSION";
/// The load balancer's own sticky cookie (`sticky-cookie`: the backend id).
pub const ROUTE_COOKIE: &str = "SLROUTE";

/// Whether `name` is a cookie name every process accepts: 1 to 64
/// characters of `A-Z a-z 0-9 - _` (a safe subset of RFC 6265 tokens).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a request presented under one cookie name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No cookie of that name.
    Absent,
    /// Exactly one, with this value (quotes removed).
    One(&'a str),
    /// The name appeared more than once (or with a value that is not even
    /// text): to be treated as absent.
    Unusable,
}

impl<'a> Presented<'a> {
    /// The value, when exactly one usable cookie was presented.
    pub fn value(self) -> Option<&'a str> {
        match self {
            Presented::One(v) => Some(v),
            Presented::Absent | Presented::Unusable => None,
        }
    }
}

/// The `(name, value)` pairs of one `Cookie` header value, spaces trimmed
/// (quotes are kept: this is the raw pair, for rewriting a header). Pairs
/// without `=` are skipped.
pub fn pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|&b| b == b';').filter_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
    })
}

/// Find cookie `name` in a request's `Cookie` header values (all of them:
/// a request may carry several `Cookie` headers). See the module docs.
pub fn find<'a, I, B>(cookie_headers: I, name: &str) -> Presented<'a>
where
    I: IntoIterator<Item = &'a B>,
    B: AsRef<[u8]> + ?Sized + 'a,
{
    let name = name.as_bytes();
    let mut found = Presented::Absent;
    for header in cookie_headers {
        for (n, v) in pairs(header.as_ref()) {
            if n != name {
                continue;
            }
            if found != Presented::Absent {
                return Presented::Unusable;
            }
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            found = match std::str::from_utf8(v) {
                Ok(v) => Presented::One(v),
                Err(_) => Presented::Unusable,
            };
        }
    }
    found
}

/// Whether a `Set-Cookie` header value sets the cookie `name`.
pub fn sets_cookie(set_cookie: &[u8], name: &str) -> bool {
    let v = set_cookie.trim_ascii_start();
    v.len() > name.len() && v.starts_with(name.as_bytes()) && v[name.len()] == b'='
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers<'a>(cookies: &[&'a str]) -> Vec<&'a str> {
        cookies.to_vec()
    }

    #[test]
    fn finds_one_ignores_others_and_refuses_duplicates() {
        assert_eq!(
            find(&headers(&["a=1; SLSESSION=abc; b=2"]), "SLSESSION"),
            Presented::One("abc")
        );
        assert_eq!(find(&headers(&["a=1"]), "SLSESSION"), Presented::Absent);
        assert_eq!(
            find(&headers(&["SLSESSION=a; SLSESSION=b"]), "SLSESSION"),
            Presented::Unusable
        );
        assert_eq!(
            find(&headers(&["SLSESSION=a", "SLSESSION=b"]), "SLSESSION"),
            Presented::Unusable
        );
        assert_eq!(
            find(&headers(&["garbage;;==;"]), "SLSESSION"),
            Presented::Absent
        );
        assert_eq!(
            find(&headers(&["SLSESSIONX=1; XSLSESSION=2"]), "SLSESSION"),
            Presented::Absent
        );
        assert_eq!(
            find(&headers(&[" SLSESSION = \"abc\" ;x=1"]), "SLSESSION"),
            Presented::One("abc")
        );
    }

    #[test]
    fn values_that_are_not_text_are_unusable() {
        let raw: [&[u8]; 1] = [b"SLSESSION=\xff\xfe"];
        assert_eq!(find(raw, "SLSESSION"), Presented::Unusable);
        assert_eq!(find(raw, "SLSESSION").value(), None);
        assert_eq!(
            find(&["SLROUTE=node-2"], ROUTE_COOKIE).value(),
            Some("node-2")
        );
    }

    #[test]
    fn cookie_names_are_safe_tokens() {
        assert!(is_valid_name(SESSION_COOKIE) && is_valid_name("my_app-1"));
        assert!(!is_valid_name("") && !is_valid_name("a=b") && !is_valid_name("a;b"));
        assert!(!is_valid_name(&"x".repeat(65)));
    }

    #[test]
    fn recognises_set_cookie_by_name() {
        assert!(sets_cookie(b"SLROUTE=x; Path=/", "SLROUTE"));
        assert!(!sets_cookie(b"SLROUTEX=x", "SLROUTE"));
        assert!(!sets_cookie(b"a=b", "SLROUTE"));
    }

    proptest! {
        #[test]
        fn find_never_panics(h in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = find([h.as_slice()], "SLSESSION");
        }
    }
}
