//! The admin API, on its own listener (`--admin-listen`, default
//! 127.0.0.1:8079), never on the public port.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /healthz` | 200 `ok` (the LB itself is alive) |
//! | `GET /metrics` | Prometheus text (`metrics.rs`) |
//! | `GET /admin/v1/backends` | strategy and every backend's state, counters, latency, health history, requests/s history; with `--discover`, what the lookups found (`discovery`) |
//! | `POST /admin/v1/backends` | add `{"id":"node-4","addr":"127.0.0.1:8084"}` (201, down until its checks pass; 409 if the id exists) |
//! | `DELETE /admin/v1/backends/{id}` | remove (200; 404 if unknown) |
//! | `POST /admin/v1/backends/{id}/drain` | no new users; sticky users stay |
//! | `POST /admin/v1/backends/{id}/undrain` | take new users again |
//! | `GET /admin/v1/requests?limit=N` | the last N routing decisions, newest first (`recent.rs`) |
//! | `GET /admin/v1/latency` | every backend's request count and latency histogram since start (below) |
//!
//! The add call may name the node's cluster listener too,
//! `{"id":"node-4","addr":"127.0.0.1:8084","admin":"127.0.0.1:9084"}`. The
//! LB does nothing with it but show it (`"admin"` in the backend's JSON),
//! so that the dashboard (`sessionlab-dashboard`, a process of its own)
//! finds the nodes added at run time.
//!
//! `GET /admin/v1/latency` is for readers that chart windows of traffic
//! (the dashboard's requests/s and p99 per second): percentiles cannot be
//! subtracted, histograms can. Each backend's histogram (microseconds) is
//! in HdrHistogram's V2 serialization, base64: `{"encoding":
//! "hdrhistogram-v2-base64", "backends": [{"id", "requests", "histogram"}]}`.
//!
//! Every route and method is behind one guard (`sessionlab_wire::admin_auth::Guard`,
//! the dashboard's too), checked in this order:
//!
//! | check | refused with | stops |
//! |---|---|---|
//! | `Host` is `localhost`, `127.0.0.1`, `[::1]` or the listen address, with the listener's port (when it listens on loopback) | 403 `foreign_host` | DNS rebinding (a site's own name pointed at 127.0.0.1 reads `/admin/v1/requests`) |
//! | a browser's `Origin` is the listener's own, `Sec-Fetch-Site` is not `cross-site` | 403 `cross_origin` | a page posting to the API (a `text/plain` `fetch` needs no CORS preflight) |
//! | `/admin/...` with `--admin-token`: `Authorization: Bearer <token>`, compared in constant time | 401 `unauthorized` | anyone without the token |
//! | a body, or a route that takes one, is `Content-Type: application/json` | 415 `unsupported_media_type` | HTML forms, which cannot send JSON |
//!
//! A listener on a non-loopback address needs a token (checked at
//! start-up), and there the `Host` may be any name. `/healthz` and
//! `/metrics` need no token, for probes and scrapers, but pass the other
//! checks. A backend added here starts *down* and takes traffic only
//! after `--health-rise` good checks. Bad input gets a 4xx with a JSON body
//! `{"error": "...", "detail": "..."}`; request bodies are capped at 64 KiB.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use sessionlab_wire::admin_auth::{Guard, Needs};
use sessionlab_wire::lb_admin::{AddBackend, BackendList, BackendState, BackendView};

use crate::admin::metrics;
use crate::admin::recent::CAPACITY;
use crate::backend::{Backend, BackendSpec, TableError};
use crate::balancer::Balancer;
use crate::health::Initial;
use crate::proxy::error::json_response;
use crate::proxy::server::Handler;

const MAX_ADMIN_BODY: usize = 64 * 1024;
/// How long an admin request's (small) body may take to arrive.
const ADMIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const DEFAULT_REQUESTS_LIMIT: usize = 100;

pub struct Admin {
    balancer: Arc<Balancer>,
    guard: Guard,
}

type AdminResponse = Response<Full<Bytes>>;

fn error(status: StatusCode, error: &str, detail: impl std::fmt::Display) -> AdminResponse {
    json_response(
        status,
        &json!({ "error": error, "detail": detail.to_string() }),
    )
}

/// The admin API's view of one backend (the wire type the lab reads).
pub fn backend_view(b: &Backend) -> BackendView {
    BackendView {
        id: b.id().to_string(),
        addr: b.addr().to_string(),
        state: if b.is_up() {
            BackendState::Up
        } else {
            BackendState::Down
        },
        draining: b.is_draining(),
        in_flight: b.in_flight() as u64,
        requests: b.requests(),
        errors: b.errors(),
        connects: b.connects(),
        idle_connections: b.idle_connections() as u64,
        latency_ms_p50: b.latency_ms(0.5),
        latency_ms_p99: b.latency_ms(0.99),
        health_history: b.health_history(),
        requests_per_sec: b.rate_history(),
        admin: b.cluster_addr().map(|a| a.to_string()),
    }
}

impl Admin {
    pub fn new(balancer: Arc<Balancer>, guard: Guard) -> Self {
        Admin { balancer, guard }
    }

    async fn route(&self, req: Request<Incoming>) -> AdminResponse {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let needs = Needs {
            token: segments.first() == Some(&"admin"),
            body: req.method() == Method::POST && segments == ["admin", "v1", "backends"],
        };
        if let Err(refused) = self.guard.check(req.headers(), needs) {
            return error(refused.status(), refused.kind(), refused.detail());
        }
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["healthz"]) => text(StatusCode::OK, "ok\n".into(), "text/plain"),
            (&Method::GET, ["metrics"]) => text(
                StatusCode::OK,
                metrics::render(&self.balancer.registry),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (&Method::GET, ["admin", "v1", "backends"]) => self.list(),
            (&Method::POST, ["admin", "v1", "backends"]) => self.add(req).await,
            (&Method::DELETE, ["admin", "v1", "backends", id]) => {
                match self.balancer.remove_backend(id) {
                    Ok(b) => json_response(StatusCode::OK, &backend_view(&b)),
                    Err(e) => table_error(e),
                }
            }
            (
                &Method::POST,
                [
                    "admin",
                    "v1",
                    "backends",
                    id,
                    action @ ("drain" | "undrain"),
                ],
            ) => match self.balancer.backends.get(id) {
                Some(b) => {
                    b.set_draining(*action == "drain");
                    tracing::info!(
                        backend = b.id(),
                        draining = b.is_draining(),
                        "drain changed"
                    );
                    json_response(StatusCode::OK, &backend_view(&b))
                }
                None => table_error(TableError::NotFound(id.to_string())),
            },
            (&Method::GET, ["admin", "v1", "requests"]) => self.requests(req.uri().query()),
            (&Method::GET, ["admin", "v1", "latency"]) => self.latency(),
            (_, ["healthz"] | ["metrics"] | ["admin", "v1", "requests" | "latency"])
            | (_, ["admin", "v1", "backends", ..]) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on {path}", req.method()),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {path}"),
            ),
        }
    }

    fn list(&self) -> AdminResponse {
        let snap = self.balancer.backends.snapshot();
        let list = BackendList {
            strategy: self.balancer.strategy.as_str().to_string(),
            backends: snap.list.iter().map(|b| backend_view(b)).collect(),
            discovery: self
                .balancer
                .discovery
                .as_ref()
                .map(|v| v.lock().unwrap_or_else(|e| e.into_inner()).clone()),
        };
        json_response(StatusCode::OK, &list)
    }

    async fn add(&self, req: Request<Incoming>) -> AdminResponse {
        let read = Limited::new(req.into_body(), MAX_ADMIN_BODY).collect();
        let body = match tokio::time::timeout(ADMIN_BODY_TIMEOUT, read).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return error(StatusCode::PAYLOAD_TOO_LARGE, "bad_body", e),
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the body did not arrive within {ADMIN_BODY_TIMEOUT:?}"),
                );
            }
        };
        let add: AddBackend = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_json", e),
        };
        let spec = match BackendSpec::resolved(&add.id, &add.addr).await {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_backend", e),
        };
        let node_admin = match add.admin.as_deref().map(str::parse::<SocketAddr>) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_backend",
                    "admin must be the node's cluster listener as IP:PORT",
                );
            }
        };
        match self.balancer.add_backend(spec, Initial::Down) {
            Ok(b) => {
                if let Some(a) = node_admin {
                    b.set_cluster_addr(a);
                }
                json_response(StatusCode::CREATED, &backend_view(&b))
            }
            Err(e) => table_error(e),
        }
    }

    fn requests(&self, query: Option<&str>) -> AdminResponse {
        let limit = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("limit="));
        let limit = match limit.map(str::parse::<usize>) {
            None => DEFAULT_REQUESTS_LIMIT,
            Some(Ok(n)) if n <= CAPACITY => n,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_limit",
                    format!("limit must be a number from 0 to {CAPACITY}"),
                );
            }
        };
        let requests: Vec<Value> = self
            .balancer
            .recent
            .latest(limit)
            .iter()
            .map(|r| r.to_json())
            .collect();
        json_response(StatusCode::OK, &json!({ "requests": requests }))
    }
}

impl Admin {
    fn latency(&self) -> AdminResponse {
        let snap = self.balancer.backends.snapshot();
        let mut backends = Vec::with_capacity(snap.list.len());
        for b in &snap.list {
            let mut bytes = Vec::new();
            if let Err(e) = V2Serializer::new().serialize(&b.latency_histogram(), &mut bytes) {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "histogram", e);
            }
            backends.push(json!({
                "id": b.id(),
                "requests": b.requests(),
                "histogram": BASE64.encode(&bytes),
            }));
        }
        json_response(
            StatusCode::OK,
            &json!({ "encoding": "hdrhistogram-v2-base64", "backends": backends }),
        )
    }
}

fn table_error(e: TableError) -> AdminResponse {
    let status = match e {
        TableError::NotFound(_) => StatusCode::NOT_FOUND,
        TableError::Duplicate(_) | TableError::Full => StatusCode::CONFLICT,
    };
    let kind = match e {
        TableError::NotFound(_) => "not_found",
        TableError::Duplicate(_) => "duplicate",
        TableError::Full => "table_full",
    };
    error(status, kind, e)
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> AdminResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

impl Handler for Admin {
    type Body = Full<Bytes>;
    type Conn = ();

    fn connect(&self, _peer: SocketAddr, _secure: bool) {}

    async fn call(&self, req: Request<Incoming>, _conn: &()) -> Option<AdminResponse> {
        Some(self.route(req).await)
    }
}
