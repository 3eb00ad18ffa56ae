//! The cluster listener's replication endpoints (actix-web).
//!
//! | route | what |
//! |---|---|
//! | `POST /cluster/v1/batch` | a [`Batch`] from a peer: the whole protocol travels here |
//! | `GET /cluster/v1/digest?after=ID&limit=N` | this node's digest page (inspection, tests) |
//! | `GET /cluster/v1/snapshot?after=ID` | a snapshot page (inspection, tests) |
//! | `POST /cluster/v1/swim` | a failure-detector message ([`crate::membership`]); 404 without run-time membership, 409 for a join with an id in use |
//! | `GET /cluster/v1/fetch?id=ID` | one session this node holds, or 404 ([`crate::fetch`]) |
//! | `POST /admin/v1/faults` | replace the fault set ([`crate::faults`]) |
//! | `GET /admin/v1/faults` | the current fault set |
//! | `GET /admin/v1/replication?since=SEQ&limit=N` | recent events and this node's links ([`crate::events`]; unsigned, like the node's own admin views) |
//!
//! Every route except the event view is signed ([`crate::auth`]). The
//! checks run cheapest first, and each refusal has its status, a JSON body
//! `{"error": ...}` and a counter (`replication_rejected_total{reason}`):
//!
//! | check | status | reason |
//! |---|---|---|
//! | signature headers missing / malformed, timestamp stale (before the body is read) | 401 | `unsigned`, `malformed`, `stale` |
//! | body over the limit (4 MiB by default) | 413 | `oversized` |
//! | forged / replayed signature | 401 | `forged`, `replay` |
//! | body is not a valid batch (JSON, or the binary form when the content type is [`codec::CONTENT_TYPE`]) | 400 | `bad_json`, `bad_binary` |
//! | signer is not the batch's sender | 401 | `sender_mismatch` |
//! | too many messages or entries, a `user` or node id over its limit | 413 | `oversized` |
//! | a Lamport value at or above `MAX_LAMPORT` (near `u64::MAX`) | 400 | `invalid` |
//! | not addressed to this node / not a peer | 400 / 403 | `misrouted`, `unknown_peer` |
//!
//! A batch comes in either form: peers send the binary one (see
//! [`crate::transport`]); JSON stays accepted for people and tests. The
//! content type chooses the decoder, and the two cannot be mistaken for
//! each other: a binary batch starts with its format byte, never `{`.
//!
//! A refused request changes nothing: the body is parsed only after the
//! signature is checked, and applied only after everything else passed.
//! Traffic from a peer in the fault set's `drop` list is answered with 503
//! after authentication, before it reaches the replica.
//!
//! The routes are mounted as resources, not as a scope, so the node's own
//! `/admin/v1/...` routes can live beside `/admin/v1/faults`, provided they
//! are resources too (an actix scope for `/admin/v1` registered first would
//! hide this one).

use std::sync::Arc;

use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev, web};
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::json;
use sessionlab_session::{SessionId, clock};

use crate::auth::{self, PresentedHeaders};
use crate::faults::FaultSet;
use crate::metrics::Direction;
use crate::runtime::Shared;
use sessionlab_replication_core::membership::SwimMessage;
use sessionlab_replication_core::{Batch, MAX_LIST_ENTRIES, Rejected, codec};

/// Mount the routes; see the module docs.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, shared: Arc<Shared>) {
    crate::events::configure(cfg, shared.clone());
    let data = web::Data::from(shared);
    cfg.service(
        web::resource("/cluster/v1/batch")
            .app_data(data.clone())
            .route(web::post().to(receive_batch)),
    )
    .service(
        web::resource("/cluster/v1/digest")
            .app_data(data.clone())
            .route(signed_page_route(digest_page)),
    )
    .service(
        web::resource("/cluster/v1/snapshot")
            .app_data(data.clone())
            .route(signed_page_route(snapshot_page)),
    )
    .service(
        web::resource(crate::membership::SWIM_PATH)
            .app_data(data.clone())
            .route(web::post().to(receive_swim)),
    )
    .service(
        web::resource(crate::fetch::FETCH_PATH)
            .app_data(data.clone())
            .route(web::get().to(fetch_session)),
    )
    .service(
        web::resource("/admin/v1/faults")
            .app_data(data)
            .route(web::post().to(set_faults))
            .route(web::get().to(get_faults)),
    );
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.to_string() }))
}

fn refuse(
    shared: &Shared,
    status: StatusCode,
    reason: &'static str,
    message: impl std::fmt::Display,
) -> HttpResponse {
    shared.metrics.on_rejected(reason);
    tracing::debug!(node = %shared.node_id, %status, reason, "refused a cluster request");
    error(status, message)
}

/// Check the signature headers and their freshness, then read the body
/// (bounded), then check the signature over it. Returns the body and the
/// signer, or the refusal to send. An unsigned, malformed or stale request
/// is refused (401) before a byte of its body is read, and a body over the
/// limit (413) before its signature is computed.
async fn authenticate(
    shared: &Shared,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(web::Bytes, String), HttpResponse> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let presented = PresentedHeaders {
        node: header(auth::HEADER_NODE),
        timestamp: header(auth::HEADER_TIMESTAMP),
        nonce: header(auth::HEADER_NONCE),
        signature: header(auth::HEADER_SIGNATURE),
    };
    let checked = auth::check_headers(&presented, clock::now_ms())
        .map_err(|e| refuse(shared, StatusCode::UNAUTHORIZED, e.reason(), e))?;
    let limit = shared.max_body_bytes;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(refuse(
            shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            "oversized",
            format!("body over {limit} bytes"),
        ));
    }
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(refuse(shared, StatusCode::BAD_REQUEST, "bad_body", e)),
        Err(_) => {
            return Err(refuse(
                shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                "oversized",
                format!("body over {limit} bytes"),
            ));
        }
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path(), |p| p.as_str());
    match auth::verify_body(
        &shared.secret,
        req.method().as_str(),
        path,
        &body,
        checked,
        clock::now_ms(),
        &shared.replays,
    ) {
        Ok(node) => Ok((body, node)),
        Err(e) => Err(refuse(shared, StatusCode::UNAUTHORIZED, e.reason(), e)),
    }
}

/// A signed request that has passed [`authenticate`], as a handler
/// argument: the signed `GET`s (fetch, pages, the fault set), whose input
/// is their query, take it and never see an unsigned request. A refusal is
/// answered as [`authenticate`] built it.
struct Verified;

impl FromRequest for Verified {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Verified, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let req = req.clone();
        let payload = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let refused = |resp| InternalError::from_response("refused", resp).into();
            let shared = req
                .app_data::<web::Data<Shared>>()
                .cloned()
                .ok_or_else(|| refused(error(StatusCode::INTERNAL_SERVER_ERROR, "no state")))?;
            authenticate(&shared, &req, payload.await?)
                .await
                .map(|_| Verified)
                .map_err(refused)
        })
    }
}

/// A signed request's JSON body, who signed it, and its size on the wire.
struct Signed<T> {
    value: T,
    signer: String,
    bytes: usize,
}

/// [`authenticate`], then the body as JSON of type `T` (400 if it is not).
async fn signed_json<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Signed<T>, HttpResponse> {
    signed_as(
        shared,
        req,
        payload,
        |_| (StatusCode::BAD_REQUEST, "bad_json"),
        |b| serde_json::from_slice(b),
    )
    .await
}

/// [`authenticate`], then the body decoded by `decode`; refused with the
/// status and reason `refusal` gives for the error if it does not decode.
async fn signed_as<T, E: std::fmt::Display>(
    shared: &Shared,
    req: &HttpRequest,
    payload: web::Payload,
    refusal: impl FnOnce(&E) -> (StatusCode, &'static str),
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<Signed<T>, HttpResponse> {
    let (body, signer) = authenticate(shared, req, payload).await?;
    match decode(&body) {
        Ok(value) => Ok(Signed {
            value,
            signer,
            bytes: body.len(),
        }),
        Err(e) => {
            let (status, reason) = refusal(&e);
            Err(refuse(shared, status, reason, e))
        }
    }
}

/// [`authenticate`], then the body as a batch: binary if the content type
/// says so, JSON otherwise.
async fn signed_batch(
    shared: &Shared,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Signed<Batch>, HttpResponse> {
    let binary = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == codec::CONTENT_TYPE.as_bytes());
    if binary {
        // Too many messages is "oversized", as for JSON (found before the
        // messages are decoded); anything else a malformed body.
        let refusal = |e: &codec::DecodeError| match e {
            codec::DecodeError::TooMany(_) => (StatusCode::PAYLOAD_TOO_LARGE, "oversized"),
            _ => (StatusCode::BAD_REQUEST, "bad_binary"),
        };
        signed_as(shared, req, payload, refusal, codec::decode).await
    } else {
        signed_json(shared, req, payload).await
    }
}

async fn receive_batch(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let Signed {
        value: batch,
        signer,
        bytes,
    } = match signed_batch(&shared, &req, payload).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if signer != batch.from {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            "sender_mismatch",
            format!("signed by {signer} but sent as {}", batch.from),
        );
    }
    if shared.faults.drops(&batch.from) {
        shared
            .metrics
            .on_fault_drop(&batch.from, Direction::Received);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "dropped by fault injection",
        );
    }
    if let Some(d) = shared.faults.delay() {
        tokio::time::sleep(d).await;
    }
    let from = batch.from.clone();
    let messages = batch.messages.len();
    match shared.with_replica(|r, now| r.on_batch(batch, now)) {
        Ok(()) => {
            shared.metrics.on_received(&from, messages, bytes);
            HttpResponse::NoContent().finish()
        }
        Err(e) => {
            let status = match e {
                Rejected::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                Rejected::Invalid(_) => StatusCode::BAD_REQUEST,
                Rejected::Misrouted(_) => StatusCode::BAD_REQUEST,
                Rejected::UnknownPeer(_) => StatusCode::FORBIDDEN,
            };
            refuse(&shared, status, e.reason(), e)
        }
    }
}

async fn receive_swim(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let Some(link) = shared.membership.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "this node's members are the static --peer list (no --join, --discover or backup topology)",
        );
    };
    let Signed {
        value: msg,
        signer,
        bytes,
    } = match signed_json::<SwimMessage>(&shared, &req, payload).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let from = msg.sender().clone();
    if signer != from.id {
        return refuse(
            &shared,
            StatusCode::UNAUTHORIZED,
            "sender_mismatch",
            format!("signed by {signer} but sent as {}", from.id),
        );
    }
    if let Err(e) = msg.check() {
        let status = match e {
            Rejected::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        return refuse(&shared, status, e.reason(), e);
    }
    if shared.faults.drops(&from.id) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "dropped by fault injection",
        );
    }
    if matches!(msg, SwimMessage::Join { .. }) {
        if let Some(why) = link.id_conflict(&from) {
            tracing::warn!(node = %shared.node_id, from = %from.addr, "{why}: join refused");
            return refuse(&shared, StatusCode::CONFLICT, "id_in_use", why);
        }
    }
    shared
        .metrics
        .on_swim(Direction::Received, msg.kind(), bytes);
    let step = link.swim.lock().on_message(msg, clock::now_ms());
    shared.swim_step(step);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct FetchQuery {
    id: String,
}

async fn fetch_session(_: Verified, req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let id = match web::Query::<FetchQuery>::from_query(req.query_string())
        .map_err(|e| e.to_string())
        .and_then(|q| SessionId::parse(&q.id).map_err(|e| e.to_string()))
    {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match shared.store.get_live(&id, clock::now_ms()) {
        Some(session) => HttpResponse::Ok().json(session),
        None => error(StatusCode::NOT_FOUND, "no live copy here"),
    }
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// Reads one page from the replica for [`signed_page`].
type PageAnswer = fn(&Shared, Option<SessionId>, usize) -> HttpResponse;

/// The `GET` route of a signed page request answered by `answer`.
fn signed_page_route(answer: PageAnswer) -> actix_web::Route {
    web::get().to(
        move |v: Verified, req: HttpRequest, shared: web::Data<Shared>| {
            signed_page(v, req, shared, answer)
        },
    )
}

/// A signed page request (`GET /digest`, `GET /snapshot`): the signature
/// is checked first, then `?after=&limit=` parsed, then `answer` reads the
/// page from the replica.
async fn signed_page(
    _: Verified,
    req: HttpRequest,
    shared: web::Data<Shared>,
    answer: PageAnswer,
) -> HttpResponse {
    match parse_page(&req) {
        Ok((after, limit)) => answer(&shared, after, limit),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

fn parse_page(req: &HttpRequest) -> Result<(Option<SessionId>, usize), String> {
    let q = web::Query::<PageQuery>::from_query(req.query_string())
        .map_err(|e| e.to_string())?
        .into_inner();
    let after = match q.after {
        Some(a) => Some(SessionId::parse(&a).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok((
        after,
        q.limit
            .unwrap_or(MAX_LIST_ENTRIES)
            .clamp(1, MAX_LIST_ENTRIES),
    ))
}

fn digest_page(shared: &Shared, after: Option<SessionId>, limit: usize) -> HttpResponse {
    let (entries, upto) = shared
        .replica
        .lock()
        .digest(after.as_ref(), limit, clock::now_ms());
    HttpResponse::Ok().json(json!({ "node": shared.node_id, "entries": entries, "upto": upto }))
}

/// A snapshot page has its own bounds (entries and bytes); `limit` is unused.
fn snapshot_page(shared: &Shared, after: Option<SessionId>, _limit: usize) -> HttpResponse {
    let page = shared.replica.lock().snapshot_page(after, clock::now_ms());
    HttpResponse::Ok().json(page)
}

async fn set_faults(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let Signed {
        value: set, signer, ..
    } = match signed_json::<FaultSet>(&shared, &req, payload).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    match shared.faults.set(set) {
        Ok(applied) => {
            tracing::info!(node = %shared.node_id, by = %signer, drop = ?applied.drop, delay_ms = applied.delay_ms, "fault set replaced");
            HttpResponse::Ok().json(applied)
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_faults(_: Verified, shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.faults.get())
}
