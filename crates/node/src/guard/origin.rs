//! Refusing state-changing requests from other sites (CSRF, login CSRF
//! included).
//!
//! The session cookie is `SameSite=Lax`, which keeps it off cross-site
//! POSTs, but it does nothing for a request that needs no cookie: *login
//! CSRF* is a page on another site posting a form to `/login` with the
//! attacker's own user name and password, so the victim's browser ends up
//! logged in as the attacker (and whatever the victim then types, a
//! search, a card number, lands in the attacker's account). `Lax` also
//! treats sibling subdomains as the same site. So the node checks, on
//! every request that is not `GET`, `HEAD` or `OPTIONS`, what the browser
//! says about where the request comes from (the rule of Go's
//! `http.CrossOriginProtection`):
//!
//! | `Sec-Fetch-Site` | `Origin` | verdict |
//! |---|---|---|
//! | `same-origin` or `none` (typed, bookmarked) | any | allowed |
//! | `same-site`, `cross-site` | any | 403 |
//! | absent | absent | allowed: not a browser, or one too old to say; such a client is not a victim's browser carrying out another page's form |
//! | absent | its host equals `Host` (or `X-Forwarded-Host` from a trusted proxy) | allowed |
//! | absent | another host, or `null` | 403 |
//!
//! Browsers set both headers themselves; a page's script cannot forge
//! them. Scripts, the load tool and curl send neither and pass.
//! `--csrf-check off` turns the check off, only so that `sessionlab attack
//! csrf` can show the attack working.

use actix_web::HttpRequest;
use actix_web::http::{Method, header};

/// Why a request was refused as cross-site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossSite(pub &'static str);

/// Check `req` by the table in the module docs. `forwarded_host_trusted`:
/// the request came from a trusted proxy, so its `X-Forwarded-Host` is
/// the host the browser addressed.
pub fn check(req: &HttpRequest, forwarded_host_trusted: bool) -> Result<(), CrossSite> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(CrossSite(
                "refused: the browser says this request comes from another site (Sec-Fetch-Site)",
            )),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    let host = forwarded_host_trusted
        .then(|| headers.get("x-forwarded-host"))
        .flatten()
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok());
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(CrossSite(
            "refused: the Origin of this request is another site than this one",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn post(headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::post()
            .uri("/login")
            .insert_header(("host", "shop.example:8080"));
        for h in headers {
            r = r.insert_header(*h);
        }
        r.to_http_request()
    }

    #[test]
    fn the_table_of_the_module_docs() {
        let ok = |h: &[(&str, &str)]| check(&post(h), false).is_ok();
        assert!(ok(&[]), "no headers: not a browser");
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("sec-fetch-site", "none")]));
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(!ok(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://shop.example:8080")
        ]));
        assert!(ok(&[("origin", "http://shop.example:8080")]));
        assert!(!ok(&[("origin", "http://evil.example")]));
        assert!(!ok(&[("origin", "null")]));
        // Reads are never refused.
        let get = TestRequest::get()
            .insert_header(("sec-fetch-site", "cross-site"))
            .to_http_request();
        assert!(check(&get, false).is_ok());
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_host_is_the_host() {
        let r = post(&[
            ("origin", "http://lab.example"),
            ("x-forwarded-host", "lab.example"),
        ]);
        assert!(check(&r, true).is_ok());
        assert!(
            check(&r, false).is_err(),
            "an untrusted peer's header is ignored"
        );
    }
}
