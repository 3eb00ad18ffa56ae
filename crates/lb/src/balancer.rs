//! The running load balancer: wires the parts together and runs them.
//!
//! [`run`] is the one entry point, used by `main.rs` and by the tests. It
//! takes already-bound listeners and a shutdown future, builds the shared
//! state ([`Balancer`]), and runs until shutdown:
//!
//! - the public listener, serving [`Proxy`] (`proxy.rs`), and with
//!   `--tls-listen` the HTTPS listener beside it, on the same threads;
//! - the admin listener, serving the admin API (`admin.rs`);
//! - one active health-check task per backend (`health.rs`), started when
//!   the backend is added and ended when it is removed or at shutdown;
//! - a once-a-second task sampling each backend's request counter into its
//!   requests-per-second history (for the admin API);
//! - with `--discover`, the DNS discovery loop (`discovery.rs`), adding and
//!   removing backends through [`Balancer`] as the name's answer changes.
//!
//! Adding and removing backends goes through [`Balancer`] so that the table
//! and the health tasks never disagree.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use sessionlab_wire::lb_admin::DiscoveryView;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::admin::metrics::{self, ProxyStats};
use crate::admin::recent::RecentRequests;
use crate::backend::{Backend, BackendSpec, Backends, TableError};
use crate::config::LbOptions;
use crate::discovery::{self, DnsLookup};
use crate::health::{HealthConfig, HttpProbe, Initial, run_active_checks};
use crate::proxy::Proxy;
use crate::proxy::server::{self, TlsListener};
use crate::proxy::upstream::Upstream;
use crate::select::{Selector, Strategy};
use crate::tls::handshake::TlsSide;
use crate::tls::https::HttpsPolicy;

/// The shared state behind both listeners.
pub struct Balancer {
    pub backends: Arc<Backends>,
    pub recent: Arc<RecentRequests>,
    pub registry: Registry,
    pub strategy: Strategy,
    /// With `--discover`: what the lookups found, for the admin API.
    pub discovery: Option<Arc<Mutex<DiscoveryView>>>,
    health: HealthConfig,
    probe: Arc<HttpProbe>,
    stop_checks: watch::Receiver<bool>,
}

impl Balancer {
    /// Add a backend and start checking its health. The configured
    /// backends start [`Initial::Up`]; one added through the admin API
    /// starts [`Initial::Down`] and takes traffic only after `rise` good
    /// checks.
    pub fn add_backend(
        &self,
        spec: BackendSpec,
        initial: Initial,
    ) -> Result<Arc<Backend>, TableError> {
        let backend = self.backends.add_with(spec, initial)?;
        tokio::spawn(run_active_checks(
            backend.clone(),
            self.health.clone(),
            self.probe.clone(),
            self.stop_checks.clone(),
        ));
        tracing::info!(backend = backend.id(), addr = %backend.addr(), "backend added");
        Ok(backend)
    }

    /// Remove a backend; its health task ends at its next tick. Requests
    /// already on it finish normally.
    pub fn remove_backend(&self, id: &str) -> Result<Arc<Backend>, TableError> {
        let backend = self.backends.remove(id)?;
        tracing::info!(backend = id, "backend removed");
        Ok(backend)
    }
}

/// Discovery adds and removes backends the way the admin API does: through
/// the balancer, so each one has its health task.
impl discovery::Table for Arc<Balancer> {
    fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.backends.get(id).map(|b| b.addr())
    }

    fn has_addr(&self, addr: SocketAddr) -> bool {
        self.backends
            .snapshot()
            .list
            .iter()
            .any(|b| b.addr() == addr)
    }

    fn add(&self, spec: BackendSpec, admin: Option<SocketAddr>) -> Result<(), String> {
        let backend = self
            .add_backend(spec, Initial::Down)
            .map_err(|e| e.to_string())?;
        if let Some(admin) = admin {
            backend.set_cluster_addr(admin);
        }
        Ok(())
    }

    fn remove(&self, id: &str) {
        let _ = self.remove_backend(id);
    }
}

/// The listeners, bound before `run` is called: public, admin, and the
/// HTTPS one when the options have `tls`.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
    pub tls: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
#[error("{flag} {addr}: {source}")]
pub struct BindError {
    flag: &'static str,
    addr: SocketAddr,
    source: std::io::Error,
}

impl Listeners {
    pub async fn bind(options: &LbOptions) -> Result<Self, BindError> {
        let bind = |flag, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { flag, addr, source })
        };
        Ok(Listeners {
            public: bind("--listen", options.listen.addr).await?,
            admin: bind("--admin-listen", options.admin.addr).await?,
            tls: match &options.tls {
                Some(tls) => Some(bind("--tls-listen", tls.addr).await?),
                None => None,
            },
        })
    }
}

fn local(l: &TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// Run the load balancer until `shutdown` completes.
pub async fn run(
    options: LbOptions,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TableError> {
    let threads = options.listen.threads;
    let backends = Arc::new(Backends::with_pool_limits(
        options.health.clone(),
        options.pool,
    ));
    let recent = Arc::new(RecentRequests::new(threads));
    let stats = Arc::new(ProxyStats::new(threads));
    let (stop_tx, stop_rx) = watch::channel(false);
    let strategy = options.selection.strategy;
    let balancer = Arc::new(Balancer {
        backends: backends.clone(),
        recent: recent.clone(),
        registry: metrics::registry(backends.clone(), stats.clone()),
        strategy,
        discovery: options
            .discovery
            .as_ref()
            .map(|d| Arc::new(Mutex::new(discovery::initial_view(d)))),
        health: options.health.clone(),
        probe: Arc::new(HttpProbe::new(&options.health.path)),
        stop_checks: stop_rx.clone(),
    });
    for spec in options.backends.iter().cloned() {
        balancer.add_backend(spec, Initial::Up)?;
    }
    let tls = match (options.tls.as_ref(), listeners.tls) {
        (Some(o), Some(listener)) => Some((o, listener)),
        _ => None,
    };
    let https = tls.as_ref().map_or_else(HttpsPolicy::default, |(o, l)| {
        let port = l.local_addr().map_or(o.addr.port(), |a| a.port());
        HttpsPolicy::new(o.hsts_max_age, o.redirect_http, port)
    });
    let tls_listen = tls.as_ref().map(|(_, l)| local(l));
    let tls = tls.map(|(o, listener)| TlsListener {
        listener,
        side: TlsSide {
            acceptor: o.identity.acceptor(),
            timeout: o.handshake_timeout,
        },
    });
    let proxy = Arc::new(Proxy {
        backends: backends.clone(),
        selector: Selector::new(strategy, options.selection.max_candidates, threads)
            .with_session_cookie(&options.selection.session_cookie)
            .with_balance_factor(options.selection.balance_factor)
            .with_strict(options.selection.sticky_strict),
        upstream: Upstream::new(&options.upstream),
        bodies: options.bodies,
        recent,
        stats,
        https,
        trusted_proxies: options.trusted_proxies.clone(),
    });
    tokio::spawn(sample_rates(backends, stop_rx.clone()));
    if let (Some(d), Some(view)) = (options.discovery.as_ref(), balancer.discovery.clone()) {
        let lookup = DnsLookup::new(d, &options.health.path, options.health.timeout);
        tokio::spawn(discovery::run(
            lookup,
            balancer.clone(),
            d.clone(),
            view,
            stop_rx.clone(),
        ));
    }
    tracing::info!(
        listen = %local(&listeners.public),
        tls_listen = tls_listen.as_deref().unwrap_or("-"),
        admin = %local(&listeners.admin),
        strategy = strategy.as_str(),
        "sessionlab-lb started"
    );

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    // The guard needs the bound port (the flag may say 0).
    let admin_addr = listeners.admin.local_addr().unwrap_or(options.admin.addr);
    let token = options.admin.token.as_ref().map(|t| t.as_str().to_string());
    let admin = Arc::new(Admin::new(
        balancer,
        sessionlab_wire::admin_auth::Guard::new(admin_addr, token),
    ));
    tokio::join!(
        server::serve_on_threads(
            listeners.public,
            tls,
            proxy,
            threads,
            options.clients,
            stopped(stop_rx.clone()),
        ),
        server::serve(listeners.admin, admin, stopped(stop_rx.clone())),
        async {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        },
    );
    Ok(())
}

async fn sample_rates(backends: Arc<Backends>, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        for b in &backends.snapshot().list {
            b.sample_rate();
        }
    }
}
