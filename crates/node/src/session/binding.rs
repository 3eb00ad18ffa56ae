//! Binding a session to a client fingerprint (`--bind-session user-agent`).
//!
//! A session id is a bearer credential: whoever presents it *is* the user.
//! One way to notice a stolen id is to remember something about the client
//! that created the session and refuse the id when it comes back from a
//! client that looks different. Here that something is the `User-Agent`
//! header: when a session is created or rotated at login, a hash of it is
//! stored in the session's data (`bound_ua`); a later request presenting the
//! id with a different `User-Agent` is treated as having no session, and the
//! event is logged (with the id's prefix only) and counted in
//! `sessionlab_session_binding_refused_total`.
//!
//! It is a *weak* defence, and the lab shows it as one: the header is sent by
//! the client, so a thief who copied the cookie can copy the `User-Agent` as
//! easily (`sessionlab attack hijack` does exactly that in its last step).
//! Binding to the IP address is stronger against remote thieves but breaks
//! users behind mobile networks and proxy pools, and does nothing against a
//! thief on the same network. Real sites use fingerprints as a *signal*
//! (ask for the password again), not as the lock.

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sessionlab_session::Session;
use sha2::{Digest, Sha256};

use crate::state::NodeState;

/// The data key holding the fingerprint.
pub const BOUND_KEY: &str = "bound_ua";

/// A short hash of the request's `User-Agent` (empty header included).
pub fn fingerprint(req: &HttpRequest) -> String {
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .map_or(&b""[..], |v| v.as_bytes());
    let digest = Sha256::digest(ua);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// Record the request's fingerprint in a new (or rotated) session.
pub fn bind(session: &mut Session, req: &HttpRequest) {
    let mut data = session.data();
    data.insert(BOUND_KEY.into(), Value::from(fingerprint(req)));
    session.set_data(&data);
}

/// The loaded session if it may be used by this request: a session bound to
/// another fingerprint reads as none.
pub fn check(node: &NodeState, req: &HttpRequest, loaded: Option<Session>) -> Option<Session> {
    let s = loaded?;
    let bound = s
        .data()
        .get(BOUND_KEY)
        .and_then(Value::as_str)
        .map(str::to_owned);
    match bound {
        Some(b) if b != fingerprint(req) => {
            node.metrics.binding_refused.inc();
            tracing::warn!(
                node = %node.id,
                sid = s.id.short(),
                "session presented with another User-Agent than it was bound to: treated as no session"
            );
            None
        }
        _ => Some(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_fingerprint_follows_the_user_agent() {
        let a = TestRequest::default()
            .insert_header((header::USER_AGENT, "Firefox"))
            .to_http_request();
        let b = TestRequest::default()
            .insert_header((header::USER_AGENT, "curl/8"))
            .to_http_request();
        let none = TestRequest::default().to_http_request();
        assert_eq!(fingerprint(&a), fingerprint(&a));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&none));
        assert_eq!(fingerprint(&a).len(), 16);
    }
}
