//! The running dashboard: [`run`] wires the parts together and serves the
//! page until shutdown.
//!
//! It takes an already-bound listener (so tests bind port 0 and `main`
//! reports a busy port against `--listen`) and a shutdown future, and runs:
//!
//! - the HTTP/1.1 server for the page and its endpoints (`routes.rs`), at
//!   most [`MAX_CONNECTIONS`] connections at once, each with a deadline for
//!   its request head; without `--admin-token`, another user's connection
//!   is answered 403 (`peer.rs`);
//! - the once-a-second sampler of the LB's latency totals (`history.rs`);
//! - the collector of exited child processes (`lab_control.rs`).
//!
//! On shutdown it stops accepting, lets open connections finish their
//! current request (up to [`DRAIN_TIMEOUT`]), and stops the tasks.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sessionlab_wire::admin_auth::Guard;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::cluster_view::ClusterView;
use crate::config::Settings;
use crate::fetch::LbAdmin;
use crate::history::{self, History};
use crate::lab_control::LabControl;
use crate::routes::Dashboard;

/// Open connections at most (a page or two keep one each).
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serve the dashboard on `listener` until `shutdown` completes.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let lb = Arc::new(LbAdmin::new(
        settings.lb_admin.clone(),
        settings.lb_token.clone(),
    ));
    let cluster = Arc::new(ClusterView::default());
    for n in &settings.node_admins {
        // Bounded: at most MAX_NODES entries are kept.
        let _ = cluster.directory.set(&n.id, n.addr.clone());
    }
    let history = Arc::new(History::default());
    let lab = LabControl::new(settings.lab_dir.clone(), lb.clone());
    let dashboard = Arc::new(
        Dashboard::new(
            lb.clone(),
            cluster,
            history.clone(),
            lab,
            Guard::new(listener.local_addr()?, settings.admin_token.clone()),
        )
        .behind(settings.lb_kind, settings.lab_dir.clone()),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    // HAProxy and nginx have no latency histograms to sample.
    let sampler = match settings.lb_kind.is_foreign() {
        false => tokio::spawn(history::run(history, lb, stop_rx.clone())),
        true => tokio::spawn(async {}),
    };
    let reaper = {
        let d = dashboard.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move { d.lab.reap(stop).await })
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        lb_admin = %settings.lb_admin,
        lab = settings.lab_dir.is_some(),
        "sessionlab-dashboard started"
    );

    let (local, tokenless) = (listener.local_addr()?, settings.admin_token.is_none());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Tokenless, so on loopback: only the operator's own connections
        // are served (`peer.rs`).
        let foreign = tokenless && !crate::peer::is_own_user(peer, local);
        if foreign {
            tracing::warn!(%peer, "a connection of another user refused (no --admin-token)");
        }
        let d = dashboard.clone();
        let service = service_fn(move |req| {
            let d = d.clone();
            async move {
                Ok::<_, Infallible>(match foreign {
                    true => crate::routes::another_users_connection(),
                    false => d.route(&req).await,
                })
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
    let _ = tokio::join!(sampler, reaper);
    Ok(())
}
