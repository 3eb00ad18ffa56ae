//! `NodeState`: what every handler of a node can reach.
//!
//! One value per node, shared by all worker threads through actix's
//! `web::Data` (an `Arc`). Everything in it is either immutable after start
//! or safe to use from many threads at once (the store, the metrics, the
//! readiness flag).

use std::sync::Arc;
use std::time::Instant;

use sessionlab_session::SessionStore;

use crate::auth::tokens::TokenAuth;
use crate::auth::users::Users;
use crate::config::NodeOptions;
use crate::ops::metrics::Metrics;
use crate::session::websession::SessionPolicy;
use crate::store::wiring::{Readiness, StatusProvider};

pub struct NodeState {
    pub(crate) id: String,
    /// `id` as the value of the `X-Served-By` header.
    pub(crate) served_by: actix_web::http::header::HeaderValue,
    /// The typed configuration (never the raw flags).
    pub(crate) options: NodeOptions,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) readiness: Readiness,
    pub(crate) status: Option<Arc<dyn StatusProvider>>,
    pub(crate) users: Users,
    pub(crate) metrics: Metrics,
    pub(crate) policy: Arc<SessionPolicy>,
    pub(crate) started: Instant,
    /// jwt mode (`--auth jwt`): the token service; `None` in session mode.
    pub(crate) tokens: Option<Arc<TokenAuth>>,
}

impl NodeState {
    /// Why the store cannot be reached now, if it cannot (the node is then
    /// *degraded*; see [`crate::store::redis`]).
    pub(crate) fn store_problem(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.store_problem())
    }
}
