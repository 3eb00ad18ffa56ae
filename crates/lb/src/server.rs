//! Serving HTTP/1.1 on an already-bound listener, with graceful shutdown.
//!
//! The public proxy, the admin API and the echo test backend all run the
//! same loop: accept a connection, set `TCP_NODELAY`, serve it with hyper's
//! HTTP/1.1 connection driver (keep-alive on), and hand each request to a
//! [`Handler`]. Taking the listener already bound (instead of an address)
//! lets tests bind port 0 and run many servers in one process, and lets
//! `main` report a busy port against the right flag.
//!
//! Bounds, so no client can make the server allocate without limit: request
//! heads larger than [`MAX_HEAD_BYTES`] are refused by hyper, and a client
//! must send its request head within [`HEADER_READ_TIMEOUT`].
//!
//! Shutdown: when the `shutdown` future completes, the loop stops accepting,
//! asks every open connection to finish its current request and close
//! (hyper's graceful shutdown), and waits up to [`DRAIN_TIMEOUT`] for them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// The largest request head (request line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Time a client has to send a request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers requests on one connection.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static;
    /// Per-connection context, made once at accept time.
    type Conn: Send + Sync + 'static;

    fn connect(&self, peer: SocketAddr) -> Self::Conn;
    /// Answer a request; `None` closes the connection without an answer
    /// (only the echo test tool uses that, to simulate a crashing backend).
    fn call(
        &self,
        req: Request<Incoming>,
        conn: &Self::Conn,
    ) -> impl Future<Output = Option<Response<Self::Body>>> + Send;
}

/// The error that makes hyper drop a connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped without a response")]
pub struct NoResponse;

/// Serve `handler` on `listener` until `shutdown` completes.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .writev(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little
                    // instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(handler.connect(peer));
        let handler = handler.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let conn = conn.clone();
            async move { handler.call(req, &conn).await.ok_or(NoResponse) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing");
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed when this is *called* (it must be called
/// inside the runtime), not when the future is first polled, so a signal
/// that arrives right after start-up is not lost to the default action.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
