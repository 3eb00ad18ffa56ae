//! The session middleware: the layer around every request of the app
//! listener.
//!
//! Before the handler runs it does three cheap things:
//!
//! 1. notes the time, for the request metrics ([`crate::metrics`]), which
//!    it records after the session is written back (so a refused write
//!    counts as the 413 the client saw);
//! 2. in url tracking mode, takes the `;sid=` parameter off the path before
//!    the router sees it ([`crate::tracking`]);
//! 3. opens a tracing span for the request (node id, method, path, and
//!    later the session id's *prefix*: never the whole id, it is a
//!    credential). At the default log level the span is disabled and
//!    skipped entirely.
//!
//! It is one layer rather than three because every layer costs an
//! allocation and an indirect call per request, and this path is measured
//! against a bare handler (`scripts/bench-node.sh`).
//!
//! It does not load the session: a handler that wants it asks for a
//! [`WebSession`], which loads it on demand. After the handler, if a session
//! was used, it applies the recorded change ([`websession::finalize`]) and
//! writes the answer's session headers:
//!
//! - cookie mode: `Set-Cookie` for a new or rotated id (attributes from
//!   [`CookiePolicy`](crate::cookie::CookiePolicy)), or an expired cookie at
//!   logout;
//! - url mode: no cookies at all; a new or rotated id is announced in
//!   `X-Session-Path-Param: ;sid=<value>` for API clients (pages and
//!   redirects already carry it in their links);
//! - `X-Replication-Ack` on writes, saying what the store did beyond this
//!   node (`none` for the memory store).
//!
//! If the store refuses the write, the handler's answer is replaced by the
//! error's (413 for data over the per-session limit, 503 for a full store).
//! Errors become responses here rather than propagating, and every response
//! leaving this layer gets `X-Served-By: <node-id>`, 404s and errors too.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};
use std::time::Instant;

use tracing::Instrument;

use crate::config::Tracking;
use crate::server::SERVED_BY;
use crate::state::NodeState;
use crate::tracking::{self, SID_PARAM};
use crate::websession::{self, CookieAction, WebSession};

/// `X-Session-Path-Param`: the `;sid=` value of a new id in url mode.
pub const SESSION_PATH_PARAM: HeaderName = HeaderName::from_static("x-session-path-param");
/// `X-Replication-Ack`: what a write's replication did.
pub const REPLICATION_ACK: HeaderName = HeaderName::from_static("x-replication-ack");

/// The middleware function (wrapped with `actix_web::middleware::from_fn`).
pub async fn handle<B: MessageBody>(
    node: &NodeState,
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let started = Instant::now();
    if node.policy.tracking == Tracking::Url {
        let sid = tracking::strip_from_request(&mut req);
        req.extensions_mut().insert(sid);
    }
    let span = tracing::debug_span!(
        "request",
        node = %node.id,
        method = %req.method(),
        // The path after stripping, so `;sid=` never reaches the logs.
        path = %req.path(),
        sid = tracing::field::Empty,
    );
    // A disabled span (the default log level) costs nothing to skip.
    let mut res = if span.is_disabled() {
        serve(node, req, next).await
    } else {
        serve(node, req, next).instrument(span).await
    };
    if let Ok(res) = &mut res {
        res.headers_mut().insert(SERVED_BY, node.served_by.clone());
        node.metrics.observe(
            res.request().match_name(),
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    res
}

/// Call the app, then write back the session the handler used (if any).
async fn serve<B: MessageBody>(
    node: &NodeState,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let mut res = next.call(req).await?;
    let ws = res.request().extensions_mut().remove::<WebSession>();
    let Some(ws) = ws else {
        return Ok(res.map_into_left_body());
    };
    match websession::finalize(node, ws).await {
        Ok(done) => {
            write_headers(node, &mut res, done);
            Ok(res.map_into_left_body())
        }
        Err(e) => {
            tracing::debug!(error = %e, "session write refused");
            let (req, _) = res.into_parts();
            Ok(ServiceResponse::new(req, e.error_response()).map_into_right_body())
        }
    }
}

fn write_headers<B>(node: &NodeState, res: &mut ServiceResponse<B>, done: websession::Finalized) {
    let policy = &node.policy;
    match (policy.tracking, done.cookie) {
        (_, CookieAction::Keep) => {}
        (Tracking::Cookie, CookieAction::Set { id, max_age_secs }) => {
            let secure = policy.cookie.secure_for(res.request());
            let v = policy.cookie.set(&id, secure, max_age_secs);
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        (Tracking::Cookie, CookieAction::Expire) => {
            let secure = policy.cookie.secure_for(res.request());
            let v = policy.cookie.expire(secure);
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        (Tracking::Url, CookieAction::Set { id, .. }) => {
            let param = format!("{SID_PARAM}{}", policy.cookie.value(&id));
            if let Ok(v) = HeaderValue::from_str(&param) {
                res.headers_mut().insert(SESSION_PATH_PARAM, v);
            }
        }
        (Tracking::Url, CookieAction::Expire) => {}
    }
    if let Some(ack) = done.replication {
        if let Ok(v) = HeaderValue::from_str(&ack.header_value()) {
            res.headers_mut().insert(REPLICATION_ACK, v);
        }
    }
}
