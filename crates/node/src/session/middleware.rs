//! The session middleware: the layer around every request of the app
//! listener.
//!
//! Before the handler runs it does four cheap things:
//!
//! 0. with `--csrf-check on` (the default), refuses a state-changing
//!    request that the browser marks as coming from another site, with 403
//!    `cross_site`, before any handler or store sees it
//!    ([`crate::guard::check_origin`]);
//! 1. notes the time, for the request metrics ([`crate::ops::metrics`]), which
//!    it records after the session is written back (so a refused write
//!    counts as the 413 the client saw);
//! 2. in url tracking mode, takes the `;sid=` parameter off the path before
//!    the router sees it ([`crate::session::tracking`]);
//! 3. opens a tracing span for the request (node id, method, path, and
//!    later the session id's *prefix*: never the whole id, it is a
//!    credential). At the default log level the span is disabled and
//!    skipped entirely.
//!
//! It is one layer rather than three, and written out as a `Transform` with
//! its own future rather than with `from_fn`, because every layer costs an
//! allocation and an indirect call per request, and this path is measured
//! against a bare handler (`scripts/bench-node.sh`): for a request that
//! leaves nothing to write back, the layer itself allocates nothing.
//!
//! It does not load the session: a handler that wants it asks for a
//! [`WebSession`], which loads it on demand. After the handler, if the
//! session registered work (a change, or a touch that is due), it applies it
//! ([`websession::finalize`]) and writes the answer's session headers:
//!
//! - cookie mode: `Set-Cookie` for a new or rotated id (attributes from
//!   [`CookiePolicy`](crate::session::cookie::CookiePolicy)), or an expired cookie at
//!   logout;
//! - url mode: no cookies at all; a new or rotated id is announced in
//!   `X-Session-Path-Param: ;sid=<value>` for API clients (pages and
//!   redirects already carry it in their links);
//! - `X-Replication-Ack` on writes, saying what the store did beyond this
//!   node (`none` for the memory store).
//!
//! If the store refuses the write, the handler's answer is replaced by the
//! error's (413 for data over the per-session limit, 503 for a full store or
//! an unreachable Redis, 409 for a compare-and-set conflict that outlasted
//! its retries). A write replayed after a conflict ([`crate::session::cas`]) gets the
//! answer rebuilt from the data really stored.
//! Errors become responses here rather than propagating, and every response
//! leaving this layer gets `X-Served-By: <node-id>`, 404s and errors too,
//! and the headers that keep session data where it belongs:
//!
//! | header | on | why |
//! |---|---|---|
//! | `Cache-Control: no-store` | every answer that set none itself | every app answer sets a cookie or shows session data; no shared cache may keep it for the next user |
//! | `X-Content-Type-Options: nosniff` | every answer | a JSON answer is never run as a script or page |
//! | `Content-Security-Policy` (no scripts, forms to this origin only, `frame-ancestors 'none'`), `X-Frame-Options: DENY` | HTML pages that set no CSP of their own | an injected tag runs nothing; no other site frames the page to click its buttons |

use actix_web::body::{EitherBody, MessageBody};
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, ResponseError, web};
use tracing::Span;

use crate::config::Tracking;
use crate::error::NodeError;
use crate::server::SERVED_BY;
use crate::session::tracking::{self, SID_PARAM};
use crate::session::websession::{self, CookieAction, WebSession};
use crate::state::NodeState;

/// `X-Session-Path-Param`: the `;sid=` value of a new id in url mode.
pub const SESSION_PATH_PARAM: HeaderName = HeaderName::from_static("x-session-path-param");
/// `X-Replication-Ack`: what a write's replication did.
pub const REPLICATION_ACK: HeaderName = HeaderName::from_static("x-replication-ack");

/// The session page's policy: no scripts at all, inline styles only, forms
/// post to this origin, no base tag, no framing.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The middleware: `App::new().wrap(SessionLayer::new(node))`.
pub struct SessionLayer {
    node: web::Data<NodeState>,
}

impl SessionLayer {
    pub fn new(node: web::Data<NodeState>) -> Self {
        SessionLayer { node }
    }
}

/// The service the layer wraps (the routes): what both [`SessionLayer`]
/// and [`SessionService`] need of it, named once.
pub trait Inner:
    Service<
        ServiceRequest,
        Response = ServiceResponse<Self::Body>,
        Error = Error,
        Future: Unpin + 'static,
    >
{
    /// The routes' response body.
    type Body: MessageBody + 'static;
}

impl<S, B> Inner for S
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    S::Future: Unpin + 'static,
    B: MessageBody + 'static,
{
    type Body = B;
}

impl<S: Inner> Transform<S, ServiceRequest> for SessionLayer {
    type Response = ServiceResponse<EitherBody<S::Body>>;
    type Error = Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service,
            node: self.node.clone(),
        }))
    }
}

/// The middleware's service (one per worker).
pub struct SessionService<S> {
    service: S,
    node: web::Data<NodeState>,
}

impl<S: Inner> Service<ServiceRequest> for SessionService<S> {
    type Response = ServiceResponse<EitherBody<S::Body>>;
    type Error = Error;
    type Future = LayerFuture<S::Future, S::Body>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let node = &self.node;
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
        // A disabled span (the default log level) is dropped at once and
        // costs nothing further.
        let span = (!span.is_disabled()).then_some(span);
        if node.options.clients.csrf_check {
            let trusted = &node.options.clients.trusted_proxies;
            let via_proxy = crate::guard::from_trusted_proxy(req.request(), trusted);
            if let Err(refused) = crate::guard::check_origin(req.request(), via_proxy) {
                node.metrics.cross_site_refused.inc();
                tracing::info!(node = %node.id, path = %req.path(), "cross-site request refused");
                let res = req.into_response(NodeError::CrossSite(refused.0).error_response());
                return LayerFuture {
                    stage: Stage::Refused(Some(Box::new(res.map_into_right_body()))),
                    node: self.node.clone(),
                    started,
                    span,
                };
            }
        }
        let inner = {
            let _entered = span.as_ref().map(Span::enter);
            self.service.call(req)
        };
        LayerFuture {
            stage: Stage::Inner(inner),
            node: self.node.clone(),
            started,
            span,
        }
    }
}

/// The future of one request through the layer. A read that leaves nothing
/// to write back completes without any allocation of its own; a request
/// whose session has work to do continues in a boxed `write_back` future.
pub struct LayerFuture<F, B> {
    stage: Stage<F, B>,
    node: web::Data<NodeState>,
    started: Instant,
    span: Option<Span>,
}

type BoxedWriteBack<B> = Pin<Box<dyn Future<Output = ServiceResponse<EitherBody<B>>>>>;

enum Stage<F, B> {
    /// Refused before the handler (a cross-site request).
    Refused(Option<Box<ServiceResponse<EitherBody<B>>>>),
    Inner(F),
    WriteBack(BoxedWriteBack<B>),
    Done,
}

impl<F, B> Future for LayerFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>> + Unpin,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let _entered = this.span.as_ref().map(Span::enter);
        loop {
            match &mut this.stage {
                Stage::Refused(res) => {
                    let res = *res.take().expect("taken once");
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(finish(&this.node, this.started, res)));
                }
                Stage::Inner(inner) => {
                    let res = match Pin::new(inner).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => {
                            this.stage = Stage::Done;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Ready(Ok(res)) => res,
                    };
                    let ws = res.request().extensions_mut().remove::<WebSession>();
                    match ws {
                        None => {
                            this.stage = Stage::Done;
                            return Poll::Ready(Ok(finish(
                                &this.node,
                                this.started,
                                res.map_into_left_body(),
                            )));
                        }
                        Some(ws) => {
                            let node = this.node.clone();
                            this.stage = Stage::WriteBack(Box::pin(async move {
                                write_back(&node, res, ws).await
                            }));
                        }
                    }
                }
                Stage::WriteBack(fut) => {
                    let res = match fut.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(res) => res,
                    };
                    this.stage = Stage::Done;
                    return Poll::Ready(Ok(finish(&this.node, this.started, res)));
                }
                Stage::Done => panic!("LayerFuture polled after completion"),
            }
        }
    }
}

/// Every answer leaving the layer: `X-Served-By`, and one count in the
/// request metrics (after the write-back, so a refused write counts as the
/// 413 the client saw).
fn finish<B>(
    node: &NodeState,
    started: Instant,
    mut res: ServiceResponse<B>,
) -> ServiceResponse<B> {
    let headers = res.headers_mut();
    headers.insert(SERVED_BY, node.served_by.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if html {
        if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            );
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    node.metrics.observe(
        res.request().match_name(),
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// Apply the session change the handler recorded; on a refused write,
/// replace the handler's answer with the error's.
async fn write_back<B: MessageBody>(
    node: &NodeState,
    mut res: ServiceResponse<B>,
    ws: WebSession,
) -> ServiceResponse<EitherBody<B>> {
    match websession::finalize(node, ws).await {
        Ok(mut done) => match done.rebuilt.take() {
            None => {
                write_headers(node, &mut res, done);
                res.map_into_left_body()
            }
            Some(answer) => {
                // The write was replayed after a conflict: answer from the
                // data really stored (crate::session::cas).
                let (req, _) = res.into_parts();
                let mut res = ServiceResponse::new(req, answer);
                write_headers(node, &mut res, done);
                res.map_into_right_body()
            }
        },
        Err(e) => {
            tracing::debug!(error = %e, "session write refused");
            let (req, _) = res.into_parts();
            ServiceResponse::new(req, e.error_response()).map_into_right_body()
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
