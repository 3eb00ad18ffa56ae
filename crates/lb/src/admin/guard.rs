//! The one guard in front of every admin route and method.
//!
//! The admin listener reconfigures the LB, so only its operator may drive
//! it. A web page in the operator's browser can reach `127.0.0.1` too, so
//! before any route runs, every request passes, in this order:
//!
//! | check | refused with | stops |
//! |---|---|---|
//! | `Host` is `localhost`, `127.0.0.1`, `[::1]` or the listen address, with the listener's port (when it listens on loopback) | 403 `foreign_host` | DNS rebinding (a site's own name pointed at 127.0.0.1 reads `/admin/v1/requests`) |
//! | a browser's `Origin` is the listener's own, `Sec-Fetch-Site` is not `cross-site` | 403 `cross_origin` | a page posting to the API (a `text/plain` `fetch` needs no CORS preflight) |
//! | `/admin/...` with `--admin-token`: `Authorization: Bearer <token>`, compared in constant time | 401 `unauthorized` | anyone without the token |
//! | a body, or a route that takes one, is `Content-Type: application/json` | 415 `unsupported_media_type` | HTML forms, which cannot send JSON |
//!
//! A listener on a non-loopback address needs a token (`--admin-token`,
//! checked at start-up); there the `Host` may be any name (a container's
//! service name, say): the token is the guard, and a rebinding page cannot
//! know it. `/healthz` and `/metrics` need no token, but pass the other
//! checks. The checks themselves live in `sessionlab_wire::admin_auth`,
//! shared with the dashboard.

use std::net::SocketAddr;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use http::{HeaderName, Request, StatusCode};
use sessionlab_wire::admin_auth;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused before any route ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    ForeignHost,
    CrossOrigin,
    Unauthorized,
    NotJson,
}

impl Refused {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refused::ForeignHost | Refused::CrossOrigin => StatusCode::FORBIDDEN,
            Refused::Unauthorized => StatusCode::UNAUTHORIZED,
            Refused::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Refused::ForeignHost => "foreign_host",
            Refused::CrossOrigin => "cross_origin",
            Refused::Unauthorized => "unauthorized",
            Refused::NotJson => "unsupported_media_type",
        }
    }

    pub(crate) fn detail(self) -> &'static str {
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
pub(crate) struct Needs {
    /// An `/admin/...` route: the token, if one is set.
    pub token: bool,
    /// The route reads a JSON body.
    pub body: bool,
}

/// The admin listener's own address and token.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    listen: SocketAddr,
    token: Option<String>,
}

impl Guard {
    /// `listen` is the bound address (its port, not the flag's, which may be 0).
    pub(crate) fn new(listen: SocketAddr, token: Option<String>) -> Self {
        Guard { listen, token }
    }

    pub(crate) fn check<B>(&self, req: &Request<B>, needs: Needs) -> Result<(), Refused> {
        let headers = req.headers();
        let header = |name| headers.get(name).map(|v: &http::HeaderValue| v.as_bytes());
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if self.listen.ip().is_loopback()
            && !admin_auth::host_allowed(host, self.listen.ip(), self.listen.port())
        {
            return Err(Refused::ForeignHost);
        }
        if !admin_auth::origin_allowed(header(ORIGIN), header(SEC_FETCH_SITE), host.unwrap_or("")) {
            return Err(Refused::CrossOrigin);
        }
        if needs.token {
            if let Some(token) = &self.token {
                if !admin_auth::bearer_matches(header(AUTHORIZATION), token) {
                    return Err(Refused::Unauthorized);
                }
            }
        }
        let has_body = headers.contains_key(TRANSFER_ENCODING)
            || headers
                .get(CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        if (needs.body || has_body) && !admin_auth::is_json(header(CONTENT_TYPE)) {
            return Err(Refused::NotJson);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: Needs = Needs {
        token: true,
        body: false,
    };
    const ADD: Needs = Needs {
        token: true,
        body: true,
    };

    fn req(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::post("/admin/v1/backends");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
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
