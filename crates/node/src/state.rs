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
use crate::guard::{Limit, RateLimits};
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
    /// Per-client limits on new sessions and login attempts.
    pub(crate) rate_limits: RateLimits,
}

impl NodeState {
    /// Who sent `req` ([`crate::guard::client_ip`]).
    pub(crate) fn client_of(&self, req: &actix_web::HttpRequest) -> std::net::IpAddr {
        crate::guard::client_ip(req, &self.options.clients.trusted_proxies)
    }

    /// Count one `limit` event for the client of `req`; 429 if over.
    pub(crate) fn check_rate(
        &self,
        limit: Limit,
        req: &actix_web::HttpRequest,
    ) -> Result<(), crate::error::NodeError> {
        self.rate_limits
            .check(limit, self.client_of(req))
            .map_err(|retry_after_secs| {
                self.metrics.rate_limited(limit.label());
                crate::error::NodeError::RateLimited {
                    what: limit.what(),
                    retry_after_secs,
                }
            })
    }

    /// One login attempt of the client of `req`, the same in both auth
    /// modes: the per-client login rate (429), then the password of `name`
    /// through the bounded queue ([`crate::auth::users`]; 503 if it is
    /// full), counted as a success or a failure.
    pub(crate) async fn check_login(
        &self,
        req: &actix_web::HttpRequest,
        name: &str,
        password: &str,
    ) -> Result<bool, crate::error::NodeError> {
        self.check_rate(Limit::Login, req)?;
        let ok = self
            .users
            .verify_for(self.client_of(req), name, password)
            .await
            .map_err(|_| {
                self.metrics.login_queue_full.inc();
                crate::error::NodeError::LoginQueueFull
            })?;
        self.metrics.login(ok);
        Ok(ok)
    }

    /// Why the store cannot be reached now, if it cannot (the node is then
    /// *degraded*; see [`crate::store::redis`]).
    pub(crate) fn store_problem(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.store_problem())
    }
}
