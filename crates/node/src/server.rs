//! Starting and stopping a node: two actix-web servers on bound listeners.
//!
//! [`run`] takes listeners that are *already bound* and a *shutdown future*.
//! That shape is what makes the node testable: a test binds port 0, reads
//! the port the OS picked, runs several nodes in one process, and stops
//! each by completing its future. The binary binds the configured addresses
//! ([`Listeners::bind`]) and passes `sessionlab_shutdown::shutdown_signal` (SIGTERM or Ctrl-C).
//!
//! Two servers share one [`NodeState`]:
//!
//! - the **app** server (`--listen`, `--workers` threads): the demo app
//!   ([`crate::app::routes`]) inside the session middleware ([`crate::session::middleware`]),
//!   which also puts `X-Served-By` on every answer (errors and 404s too) and
//!   counts requests for the metrics;
//! - the **cluster** server (`--cluster-listen`, one thread): health,
//!   metrics, admin ([`crate::ops::admin`]) and whatever routes the store wiring
//!   adds.
//!
//! Shutdown is graceful: both servers stop accepting, requests in flight
//! finish (up to [`DRAIN_TIMEOUT`]), then `run` returns and the process
//! exits 0.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, UrlencodedError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, ResponseError, web};

use crate::app::routes as app;
use crate::auth::routes as auth_routes;
use crate::auth::tokens::TokenAuth;
use crate::auth::users::Users;
use crate::config::{ListenOptions, NodeOptions, UsersSource};
use crate::error::{NodeError, StartError};
use crate::guard::RateLimits;
use crate::ops::admin;
use crate::ops::metrics::Metrics;
use crate::session::middleware as session_mw;
use crate::session::websession::SessionPolicy;
use crate::state::NodeState;
use crate::store::wiring::{ClusterRoutes, StoreWiring};

/// How long in-flight requests may take to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The response header naming the node that answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static(sessionlab_wire::served_by::SERVED_BY);

/// The node's two bound listeners.
pub struct Listeners {
    pub app: TcpListener,
    pub cluster: TcpListener,
}

impl Listeners {
    /// Bind `--listen` and `--cluster-listen`.
    pub fn bind(cfg: &ListenOptions) -> Result<Self, StartError> {
        let bind = |addr, what: &str| {
            TcpListener::bind(addr).map_err(|source| StartError::Io {
                what: format!("cannot bind {what} {addr}"),
                source,
            })
        };
        Ok(Listeners {
            app: bind(cfg.app, "--listen")?,
            cluster: bind(cfg.cluster, "--cluster-listen")?,
        })
    }

    /// Two listeners on free loopback ports (for tests).
    pub fn ephemeral() -> std::io::Result<Self> {
        Ok(Listeners {
            app: TcpListener::bind("127.0.0.1:0")?,
            cluster: TcpListener::bind("127.0.0.1:0")?,
        })
    }
}

/// Build the shared state from the options and the store wiring.
pub fn node_state(cfg: NodeOptions, wiring: &StoreWiring) -> Result<NodeState, StartError> {
    let users = match &cfg.users {
        UsersSource::File(path) => Users::from_file(path)?,
        UsersSource::Demo => Users::demo(),
    }
    .with_login_queue(cfg.clients.login_queue);
    let mut metrics = Metrics::new(&cfg.id, app::ROUTES);
    if let Some(register) = &wiring.metrics {
        register(metrics.registry_mut());
    }
    Ok(NodeState {
        id: cfg.id.clone(),
        served_by: HeaderValue::from_str(&cfg.id).expect("node ids are validated as header-safe"),
        store: wiring.store.clone(),
        readiness: wiring.readiness.clone(),
        status: wiring.status.clone(),
        users,
        metrics,
        policy: Arc::new(SessionPolicy::new(&cfg)),
        started: Instant::now(),
        tokens: match cfg.auth.jwt() {
            Some(jwt) => Some(Arc::new(TokenAuth::new(
                jwt,
                &cfg.timeouts,
                wiring.store.clone(),
            )?)),
            None => None,
        },
        rate_limits: RateLimits::new(&cfg.clients),
        options: cfg,
    })
}

/// Map body-extractor errors to the JSON error shape (413 for too large).
fn body_error(too_large: bool, detail: String, limit: usize) -> actix_web::Error {
    let e = if too_large {
        NodeError::BodyTooLarge {
            limit: limit as u64,
        }
    } else {
        NodeError::BadRequest(detail)
    };
    actix_web::error::InternalError::from_response(e.to_string(), e.error_response()).into()
}

/// The service factory inside the `App` that [`app`] and [`cluster_app`]
/// return: what `HttpServer::new` and `actix_web::test::init_service` need
/// of it, named once. Stable Rust has no `impl Trait` in a type alias, so
/// this trait, implemented for every such factory, stands in for one.
pub trait AppFactory:
    ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<Self::Body>,
        Error = actix_web::Error,
        InitError = (),
    >
{
    /// The response body type.
    type Body: MessageBody;
}

impl<T, B> AppFactory for T
where
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        >,
    B: MessageBody,
{
    type Body = B;
}

/// The app listener's application: routes, body limits, and one middleware
/// layer ([`session_mw`]: session write-back, `X-Served-By`, request
/// metrics).
/// Tests drive it directly with `actix_web::test` under a paused clock.
pub fn app(node: web::Data<NodeState>) -> App<impl AppFactory> {
    let limit = node.options.limits.max_body_bytes;
    let mw_node = node.clone();
    App::new()
        .app_data(node)
        .app_data(web::PayloadConfig::new(limit))
        .app_data(
            web::FormConfig::default()
                .limit(limit)
                .error_handler(move |e, _| {
                    let too_large = matches!(e, UrlencodedError::Overflow { .. });
                    body_error(too_large, e.to_string(), limit)
                }),
        )
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(move |e, _| {
                    let too_large = matches!(
                        e,
                        JsonPayloadError::Overflow { .. }
                            | JsonPayloadError::OverflowKnownLength { .. }
                    );
                    body_error(too_large, e.to_string(), limit)
                }),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(move |e, _| body_error(false, e.to_string(), limit)),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(move |e, _| body_error(false, e.to_string(), limit)),
        )
        .configure(app::configure)
        .configure(auth_routes::configure)
        .default_service(web::to(crate::error::not_found))
        .wrap(session_mw::SessionLayer::new(mw_node))
}

/// The cluster listener's application: [`admin`] routes plus `extra`.
pub fn cluster_app(
    node: web::Data<NodeState>,
    extra: Option<ClusterRoutes>,
) -> App<impl AppFactory> {
    let served_by = node.served_by.clone();
    App::new()
        .app_data(node)
        .configure(move |c| admin::configure(c, extra.as_ref()))
        .default_service(web::to(crate::error::not_found))
        .wrap(DefaultHeaders::new().add((SERVED_BY, served_by)))
}

/// Run a node until `shutdown` completes; see the module docs.
pub async fn run(
    cfg: NodeOptions,
    listeners: Listeners,
    wiring: StoreWiring,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let node = web::Data::new(node_state(cfg, &wiring)?);
    let io_err = |what: &str| {
        let what = what.to_owned();
        move |source| StartError::Io { what, source }
    };
    let app_addr = listeners.app.local_addr().map_err(io_err("app listener"))?;
    let cluster_addr = listeners
        .cluster
        .local_addr()
        .map_err(io_err("cluster listener"))?;

    let app_node = node.clone();
    let app_server = HttpServer::new(move || app(app_node.clone()))
        .workers(node.options.listen.workers)
        .disable_signals()
        .shutdown_timeout(DRAIN_TIMEOUT.as_secs())
        .listen(listeners.app)
        .map_err(io_err("app listener"))?
        .run();

    let cluster_node = node.clone();
    let extra = wiring.cluster_routes.clone();
    let cluster_server = HttpServer::new(move || cluster_app(cluster_node.clone(), extra.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(DRAIN_TIMEOUT.as_secs())
        .listen(listeners.cluster)
        .map_err(io_err("cluster listener"))?
        .run();

    tracing::info!(
        node = %node.id,
        app = %app_addr,
        cluster = %cluster_addr,
        store = node.store.kind(),
        tracking = node.policy.tracking.as_str(),
        "node started: http://{app_addr}/"
    );

    let app_handle = app_server.handle();
    let cluster_handle = cluster_server.handle();
    let stopper = async move {
        shutdown.await;
        tracing::info!("shutting down: draining requests in flight");
        tokio::join!(app_handle.stop(true), cluster_handle.stop(true));
    };
    let (a, c, ()) = tokio::join!(app_server, cluster_server, stopper);
    if let Some(stop) = wiring.shutdown {
        stop().await;
    }
    for task in wiring.background {
        task.abort();
    }
    a.map_err(io_err("app server"))?;
    c.map_err(io_err("cluster server"))?;
    tracing::info!(node = %node.id, "node stopped");
    Ok(())
}
