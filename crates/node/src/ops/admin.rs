//! The cluster listener: health, metrics and admin views, on a port of their own.
//!
//! Operators, the lab runner and (with replication) the other nodes talk to
//! a node on `--cluster-listen`, never on the app port the load balancer
//! exposes. Keeping the two apart is a security boundary: the admin views
//! list every session (shortened ids, sizes, versions, times) and must not be
//! reachable by the users whose sessions they list.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status":"ok"}` (`"degraded"` while Redis is unreachable), 503 `{"status":"starting"}` until ready |
//! | `GET /metrics` | Prometheus text ([`crate::ops::metrics`]) |
//! | `GET /admin/v1/status` | node id, store (and `store_ok`), modes, readiness, counts, uptime, memory (`memory_rss_bytes`), peers |
//! | `GET /admin/v1/sessions?limit=N` | up to N (default 100, at most 10000) sessions' metadata (backup topology: each with its `owners`, primary first) |
//!
//! Features that need more routes here (the replication protocol) pass them
//! in as [`ClusterRoutes`] through the store wiring.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sessionlab_session::SessionMeta;

use crate::error::NodeError;
use crate::state::NodeState;
use crate::store::wiring::ClusterRoutes;

/// Most sessions one `/admin/v1/sessions` answer lists.
pub const MAX_LIST: usize = 10_000;

/// Register the cluster listener's routes, then the caller's extra ones.
pub fn configure(cfg: &mut web::ServiceConfig, extra: Option<&ClusterRoutes>) {
    cfg.route("/healthz", web::get().to(crate::app::routes::healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/admin/v1/status", web::get().to(status))
        .route("/admin/v1/sessions", web::get().to(sessions));
    if let Some(extra) = extra {
        extra(cfg);
    }
}

async fn metrics(node: web::Data<NodeState>) -> HttpResponse {
    let text = node.metrics.render(node.store.as_ref()).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

/// `GET /admin/v1/status` (the shared contract type, read by the lab).
pub use sessionlab_wire::NodeStatus as Status;

async fn status(node: web::Data<NodeState>) -> Result<HttpResponse, NodeError> {
    // A store that cannot be reached still gets a status page: that is
    // when it is needed most.
    let mut store_problem = node.store_problem();
    let stats = match node.store.stats().await {
        Ok(stats) => stats,
        Err(e) => {
            store_problem.get_or_insert_with(|| e.to_string());
            Default::default()
        }
    };
    let mut status = Status {
        node_id: node.id.clone(),
        store: node.store.kind().to_owned(),
        auth: node.options.auth.as_str().to_owned(),
        tracking: node.policy.tracking.as_str().to_owned(),
        ready: node.readiness.is_ready(),
        store_ok: store_problem.is_none(),
        store_problem,
        sessions: stats.sessions,
        session_bytes: stats.bytes,
        uptime_ms: node.started.elapsed().as_millis() as u64,
        memory_rss_bytes: sessionlab_wire::rss::resident_bytes(),
        peers: node.status.as_ref().map(|s| s.peers()).unwrap_or_default(),
        ..Status::default()
    };
    if let Some(s) = node.status.as_ref() {
        s.cluster(&mut status);
    }
    Ok(HttpResponse::Ok().json(status))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
struct SessionList {
    node_id: String,
    sessions: Vec<SessionMeta>,
}

async fn sessions(
    node: web::Data<NodeState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, NodeError> {
    let limit = q.limit.unwrap_or(100).min(MAX_LIST);
    let sessions = node.store.list(limit).await?;
    Ok(HttpResponse::Ok().json(SessionList {
        node_id: node.id.clone(),
        sessions,
    }))
}
