//! The session cookie: how the id is read from a request and written back.
//!
//! A cookie is a name and a value the browser stores and sends back on every
//! request to the same site. In cookie tracking mode the value is the
//! session id, so the cookie *is* the login, and its attributes are the
//! first line of defence against hijacking:
//!
//! - `HttpOnly`: page scripts cannot read it, so an XSS bug cannot steal it;
//! - `SameSite=Lax`: the browser does not send it on cross-site POSTs, which
//!   stops most cross-site request forgery;
//! - `Secure`: the browser sends it only over HTTPS, so it never crosses the
//!   network in clear text (`--secure-cookies`, or automatically when the
//!   load balancer says the request came over HTTPS via `X-Forwarded-Proto`);
//! - `Path=/`: one cookie for the whole site;
//! - a name prefix the browser enforces (RFC 6265bis §4.1.3):
//!   `__Secure-NAME` is accepted only with `Secure` (set over HTTPS), and
//!   `__Host-NAME` also only with `Path=/` and no `Domain`, so it is locked
//!   to this exact host: a sibling subdomain cannot plant or overwrite it
//!   (a fixation route), and neither can a plain-HTTP page on the same
//!   host. The node refuses to start with such a name unless
//!   `--secure-cookies` is set ([`CookiePolicy::prefix`]);
//! - no `Max-Age` by default: a *session cookie*, gone when the browser
//!   closes. "Remember me" at login sets `Max-Age`, making it a *persistent
//!   cookie* that survives a browser restart (until the absolute timeout).
//!
//! Reading is strict and allocation-free, with the parser the load balancer
//! uses too ([`sessionlab_wire::cookie`]): the `Cookie` headers are scanned
//! for the name, and a cookie that appears more than once (a sign of
//! tampering or of two sites' cookies colliding) counts as absent, as does
//! any value that is not a well-formed id. Absent means "no session", never
//! an error. The route suffix is split by [`sessionlab_wire::route`].

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use sessionlab_session::SessionId;

pub use sessionlab_wire::Presented;

/// Find the value of cookie `name` in the request's `Cookie` headers
/// ([`sessionlab_wire::cookie::find`]: duplicates and non-text are
/// [`Presented::Unusable`]).
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Presented<'a> {
    sessionlab_wire::cookie::find(headers.get_all(header::COOKIE), name)
}

/// A presented id that parsed, and the route suffix it carried (if any).
#[derive(Debug, Clone)]
pub struct PresentedId {
    pub id: SessionId,
    pub route: Option<Box<str>>,
}

/// Parse a cookie or `;sid=` value: `<id>` or `<id>.<route>`.
pub fn parse_value(value: &str) -> Option<PresentedId> {
    let (id, route) = SessionId::parse_with_route(value).ok()?;
    Some(PresentedId {
        id,
        route: route.map(Into::into),
    })
}

/// How this node writes the session cookie.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub name: String,
    /// `--secure-cookies`: `Secure` on every cookie.
    pub secure_always: bool,
    /// `--route-suffix`: the node id to append to the value.
    pub route: Option<String>,
}

impl CookiePolicy {
    /// The cookie (or `;sid=`) value for `id`: `<id>` or `<id>.<node-id>`.
    pub fn value(&self, id: &SessionId) -> String {
        sessionlab_wire::route::with_route(id.as_str(), self.route.as_deref())
    }

    /// The browser-enforced prefix `name` starts with (`__Secure-` or
    /// `__Host-`, compared without case as browsers do), if any.
    pub fn prefix(name: &str) -> Option<&'static str> {
        ["__Secure-", "__Host-"].into_iter().find(|p| {
            name.get(..p.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(p))
        })
    }

    /// Whether cookies on this response get `Secure`.
    pub fn secure_for(&self, req: &HttpRequest) -> bool {
        self.secure_always
            || req
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// `Set-Cookie` for `id`; `max_age_secs` makes it persistent.
    pub fn set(&self, id: &SessionId, secure: bool, max_age_secs: Option<u64>) -> HeaderValue {
        let mut s = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax",
            self.name,
            self.value(id)
        );
        if secure {
            s.push_str("; Secure");
        }
        if let Some(age) = max_age_secs {
            s.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&s).expect("cookie names and ids are header-safe")
    }

    /// `Set-Cookie` that makes the browser drop the cookie (logout).
    pub fn expire(&self, secure: bool) -> HeaderValue {
        let mut s = format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            self.name
        );
        if secure {
            s.push_str("; Secure");
        }
        HeaderValue::from_str(&s).expect("cookie names are header-safe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(
                HeaderName::from_static("cookie"),
                HeaderValue::from_str(c).unwrap(),
            );
        }
        h
    }

    #[test]
    fn finds_the_cookie_in_every_cookie_header() {
        // The parser's own cases are in sessionlab_wire::cookie.
        assert_eq!(
            find(&headers(&["a=1", "SLSESSION=abc"]), "SLSESSION"),
            Presented::One("abc")
        );
        assert_eq!(
            find(&headers(&["SLSESSION=a", "SLSESSION=b"]), "SLSESSION"),
            Presented::Unusable
        );
    }

    #[test]
    fn parses_route_suffix_and_rejects_garbage() {
        let id = SessionId::generate();
        let p = parse_value(&format!("{}.node-2", id.as_str())).unwrap();
        assert_eq!(p.id, id);
        assert_eq!(p.route.as_deref(), Some("node-2"));
        assert!(parse_value("not-an-id").is_none());
        assert!(parse_value(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn set_cookie_attributes() {
        let p = CookiePolicy {
            name: "SLSESSION".into(),
            secure_always: false,
            route: Some("node-1".into()),
        };
        let id = SessionId::generate();
        let v = p.set(&id, false, None);
        let v = v.to_str().unwrap();
        assert!(v.starts_with(&format!("SLSESSION={}.node-1;", id.as_str())));
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Lax") && v.contains("Path=/"));
        assert!(!v.contains("Secure") && !v.contains("Max-Age"));
        let v = p.set(&id, true, Some(60));
        assert!(v.to_str().unwrap().ends_with("; Secure; Max-Age=60"));
        assert!(p.expire(false).to_str().unwrap().contains("Max-Age=0"));
    }
}
