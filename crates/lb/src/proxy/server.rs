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
//!
//! Threads: the public listener can be served by several threads, each a
//! single-threaded runtime that owns its connections ([`serve_on_threads`]).

use std::cell::Cell;
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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

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

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker thread this code runs on (0 for the main one).
/// Per-thread state, like each backend's connection pool, is sharded by it.
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// Connections accepted and waiting to be handed to a worker thread.
const HANDOFF_QUEUE: usize = 1024;
/// Open connections per listener unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

type Handoff = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// Serve `handler` on `listener` until `shutdown` completes, on this task's
/// runtime only.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    serve_on_threads(listener, handler, 1, DEFAULT_MAX_CONNECTIONS, shutdown).await;
}

/// Serve `handler` on `listener` with `threads` threads, thread-per-core
/// style (HAProxy's `nbthread`, pingora's and nginx's workers): this task
/// accepts and hands connections round-robin to `threads - 1` worker
/// threads, each running its own single-threaded runtime, and keeps every
/// `threads`-th connection itself. A connection then lives on one thread
/// for its whole life, with its upstream connections, so no request ever
/// crosses threads, and no lock or wake-up is shared between them.
///
/// At most `max_connections` are open at once; beyond that the loop stops
/// accepting (the kernel's backlog holds the rest) until one closes.
pub async fn serve_on_threads<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    threads: usize,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(max_connections.max(1)));
    let local = ConnServer::new(handler.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers: Vec<Worker> = (1..threads.max(1))
        .filter_map(
            |index| match Worker::spawn(index, handler.clone(), stop_rx.clone()) {
                Ok(worker) => Some(worker),
                Err(e) => {
                    tracing::warn!(error = %e, index, "could not start a worker thread");
                    None
                }
            },
        )
        .collect();
    let mut turn = 0usize;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
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
        turn = turn.wrapping_add(1);
        match workers.get(turn % (workers.len() + 1)) {
            None => local.spawn(stream, peer, permit),
            Some(worker) => worker.hand_off(stream, peer, permit).await,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    local.drain().await;
    for worker in workers {
        worker.join().await;
    }
}

/// Serves accepted connections on the current runtime.
struct ConnServer<H> {
    handler: Arc<H>,
    builder: http1::Builder,
    graceful: GracefulShutdown,
}

impl<H: Handler> ConnServer<H> {
    fn new(handler: Arc<H>) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            // Small responses: one copy into the head buffer and one
            // write() beat a writev() of two slices.
            .writev(false)
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES);
        ConnServer {
            handler,
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    fn spawn(&self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        // One allocation per connection holds both the handler and the
        // connection's context; a request clones only this `Arc`, whose
        // count no other thread touches (the handler's own is shared by all
        // workers).
        let state = Arc::new((self.handler.clone(), self.handler.connect(peer)));
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { state.0.call(req, &state.1).await.ok_or(NoResponse) }
        });
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }

    /// Ask open connections to finish their current request, and wait.
    async fn drain(self) {
        if tokio::time::timeout(DRAIN_TIMEOUT, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing");
        }
    }
}

/// A worker thread with its own single-threaded runtime.
struct Worker {
    handoff: mpsc::Sender<Handoff>,
    done: oneshot::Receiver<()>,
}

impl Worker {
    fn spawn<H: Handler>(
        index: usize,
        handler: Arc<H>,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (handoff, mut incoming) = mpsc::channel::<Handoff>(HANDOFF_QUEUE);
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("lb-worker-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                runtime.block_on(async move {
                    let server = ConnServer::new(handler);
                    loop {
                        tokio::select! {
                            next = incoming.recv() => match next {
                                Some((stream, peer, permit)) => match TcpStream::from_std(stream) {
                                    Ok(stream) => server.spawn(stream, peer, permit),
                                    Err(e) => tracing::warn!(error = %e, "could not adopt a connection"),
                                },
                                None => break,
                            },
                            _ = stop.wait_for(|stop| *stop) => break,
                        }
                    }
                    server.drain().await;
                });
                let _ = done_tx.send(());
            })?;
        Ok(Worker { handoff, done })
    }

    /// Move a connection to this worker's runtime (waits if its queue is full).
    async fn hand_off(&self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        match stream.into_std() {
            Ok(stream) => {
                let _ = self.handoff.send((stream, peer, permit)).await;
            }
            Err(e) => tracing::warn!(error = %e, "could not hand a connection off"),
        }
    }

    async fn join(self) {
        drop(self.handoff);
        let _ = self.done.await;
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
