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
use crate::config::Config;
use crate::ops::metrics::Metrics;
use crate::session::websession::SessionPolicy;
use crate::store::wiring::{Readiness, StatusProvider};

pub struct NodeState {
    pub id: String,
    /// `id` as the value of the `X-Served-By` header.
    pub served_by: actix_web::http::header::HeaderValue,
    pub config: Config,
    pub store: Arc<dyn SessionStore>,
    pub readiness: Readiness,
    pub status: Option<Arc<dyn StatusProvider>>,
    pub users: Users,
    pub metrics: Metrics,
    pub policy: Arc<SessionPolicy>,
    pub started: Instant,
    /// jwt mode (`--auth jwt`): the token service; `None` in session mode.
    pub tokens: Option<Arc<TokenAuth>>,
}

impl NodeState {
    /// Why the store cannot be reached now, if it cannot (the node is then
    /// *degraded*; see [`crate::store::redis`]).
    pub fn store_problem(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.store_problem())
    }
}
