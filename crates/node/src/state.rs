//! `NodeState`: what every handler of a node can reach.
//!
//! One value per node, shared by all worker threads through actix's
//! `web::Data` (an `Arc`). Everything in it is either immutable after start
//! or safe to use from many threads at once (the store, the metrics, the
//! readiness flag).

use std::sync::Arc;
use std::time::Instant;

use sessionlab_session::SessionStore;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::users::Users;
use crate::websession::SessionPolicy;
use crate::wiring::{Readiness, StatusProvider};

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
}
