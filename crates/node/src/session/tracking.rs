//! URL tracking mode: the session id as a `;sid=` path parameter.
//!
//! Before cookies were universal, servers kept track of users by *rewriting
//! every URL* they sent out to carry the session id (Java servlets still do it
//! as `;jsessionid=`). The id rides at the end of the path, before the query:
//! `/cart/add;sid=<id>`. It works without cookies, and that is its only
//! virtue: the id now shows in the address bar, in bookmarks, in server and
//! proxy logs, and in the `Referer` header sent to other sites, and anyone
//! who copies a link hands over their login. The lab has it to show exactly
//! that (`--tracking url`).
//!
//! In this mode the node strips the parameter from the path *before routing*
//! (so `/api/session;sid=...` reaches the `/api/session` handler), ignores the
//! `Cookie` header entirely, and every link and form it renders goes through
//! [`Links`] so it carries the parameter. An unknown or malformed `;sid=` is
//! treated like a missing one: the server never adopts an id the client made
//! up (that would invite session fixation).

use actix_web::dev::ServiceRequest;
use actix_web::http::Uri;
use actix_web::http::uri::PathAndQuery;

use crate::config::Tracking;
use crate::session::cookie::{self, PresentedId};

/// The path parameter's spelling.
pub const SID_PARAM: &str = ";sid=";

/// Split `/path;sid=VALUE` into `("/path", Some("VALUE"))`. The parameter is
/// accepted only as the last thing in the path.
pub fn split_sid(path: &str) -> (&str, Option<&str>) {
    match path.find(SID_PARAM) {
        Some(at) => (&path[..at], Some(&path[at + SID_PARAM.len()..])),
        None => (path, None),
    }
}

/// What the client presented in the URL, put in the request's extensions by
/// the session middleware in url mode.
#[derive(Debug, Clone)]
pub struct UrlSid(pub Option<PresentedId>);

/// Remove a `;sid=` parameter from the request path before it is routed, and
/// return what it held. Requests without the parameter are left untouched.
pub fn strip_from_request(req: &mut ServiceRequest) -> UrlSid {
    let uri = req.uri();
    let (path, Some(value)) = split_sid(uri.path()) else {
        return UrlSid(None);
    };
    let presented = cookie::parse_value(value);
    let path = if path.is_empty() { "/" } else { path };
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = PathAndQuery::try_from(pq) {
        parts.path_and_query = Some(pq);
        if let Ok(new_uri) = Uri::from_parts(parts) {
            req.match_info_mut().get_mut().update(&new_uri);
            req.head_mut().uri = new_uri;
        }
    }
    UrlSid(presented)
}

/// Builds the links a page or redirect sends: plain paths in cookie mode,
/// paths with `;sid=<value>` in url mode.
#[derive(Debug, Clone)]
pub struct Links {
    suffix: Option<String>,
}

impl Links {
    /// `value` is the session's cookie value (id, maybe with route suffix);
    /// `None` when there is no session yet.
    pub fn new(tracking: Tracking, value: Option<String>) -> Self {
        let suffix = match (tracking, value) {
            (Tracking::Url, Some(v)) => Some(format!("{SID_PARAM}{v}")),
            _ => None,
        };
        Links { suffix }
    }

    /// The link for `path` (a path without query).
    pub fn to(&self, path: &str) -> String {
        match &self.suffix {
            Some(s) => format!("{path}{s}"),
            None => path.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use sessionlab_session::SessionId;

    #[test]
    fn splits_the_parameter_off() {
        assert_eq!(split_sid("/a/b;sid=xyz"), ("/a/b", Some("xyz")));
        assert_eq!(split_sid("/;sid="), ("/", Some("")));
        assert_eq!(split_sid("/plain"), ("/plain", None));
    }

    #[test]
    fn strips_before_routing_and_keeps_the_query() {
        let id = SessionId::generate();
        let mut req = TestRequest::with_uri(&format!("/api/session;sid={}?x=1", id.as_str()))
            .to_srv_request();
        let UrlSid(p) = strip_from_request(&mut req);
        assert_eq!(p.unwrap().id, id);
        assert_eq!(req.path(), "/api/session");
        assert_eq!(req.query_string(), "x=1");

        let mut req = TestRequest::with_uri("/;sid=made-up").to_srv_request();
        assert!(strip_from_request(&mut req).0.is_none());
        assert_eq!(req.path(), "/");
    }

    #[test]
    fn links_carry_the_id_only_in_url_mode() {
        assert_eq!(
            Links::new(Tracking::Url, Some("abc".into())).to("/x"),
            "/x;sid=abc"
        );
        assert_eq!(Links::new(Tracking::Url, None).to("/x"), "/x");
        assert_eq!(
            Links::new(Tracking::Cookie, Some("abc".into())).to("/x"),
            "/x"
        );
    }
}
