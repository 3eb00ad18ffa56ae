//! Serving HTTP/1.1 on an already-bound listener, with graceful shutdown.
//!
//! The public proxy, the admin API and the echo test backend all run the
//! same loop: accept a connection, set `TCP_NODELAY`, serve it with hyper's
//! HTTP/1.1 connection driver (keep-alive on), and hand each request to a
//! [`Handler`]. Taking the listener already bound (instead of an address)
//! lets tests bind port 0 and run many servers in one process, and lets
//! `main` report a busy port against the right flag.
//!
//! Bounds ([`ConnLimits`]), so no client can make the server allocate or
//! hold connections without limit:
//!
//! | bound | flag | default | beyond it |
//! |---|---|---|---|
//! | request head size | (fixed, [`MAX_HEAD_BYTES`]) | 64 KiB | hyper answers 431 |
//! | time to send a request head | `--header-timeout` | 10 s | connection closed (slowloris) |
//! | time without a request on a keep-alive connection | `--keepalive-timeout` | 60 s | connection closed |
//! | open connections | `--max-connections` | 10 000 | no more accepts (the kernel's backlog waits) |
//! | open connections per client (an IPv4 address, an IPv6 /64: `wire::addr::client_key`) | `--max-connections-per-ip` | 1 024 | closed at once, counted |
//! | time a response body moves nothing (a backend that stalls after its head, a client that stops reading) | the same bound as idle | connection closed |
//!
//! **One timer per connection** enforces both time bounds. A connection
//! that is not answering a request is waiting for a head, so the head
//! bound and the idle bound run from the same moment (the end of the last
//! response, or the accept) and the shorter one decides: the connection is
//! closed once it has had no request in flight for
//! `min(--header-timeout, --keepalive-timeout)`, whether its client sent
//! part of a head (slowloris) or nothing (nothing is in flight, so it is
//! simply dropped, as hyper's head timeout did). hyper's own `header_read_timeout`
//! would do the first half with a fresh timer for every request (an
//! allocation and a timer-wheel insert and removal each time); here a
//! request costs a few counter updates and clock reads (when its head is
//! ready, at each body frame, when its response ends), and the timer is
//! only re-armed when it fires. Body bounds are the proxy's (`path.rs`).
//!
//! The same timer watches a response while its body streams: every frame
//! handed to hyper stamps the connection's progress, and a body with no
//! frame for that bound is cut off with its connection (hyper has no
//! write timeout, and `--read-timeout` ends with the response head). While
//! the handler runs (the request body, the wait for the backend's head)
//! the proxy's own deadlines apply instead.
//!
//! Shutdown: when the `shutdown` future completes, the loop stops accepting,
//! asks every open connection to finish its current request and close
//! (hyper's graceful shutdown), and waits up to [`DRAIN_TIMEOUT`] for them.
//!
//! Threads: the public listener can be served by several threads, each a
//! single-threaded runtime that owns its connections ([`serve_on_threads`]).
//!
//! HTTPS: with a TLS listener beside the plain one, the same loop accepts
//! on both and the same workers serve both; a TLS connection's handshake
//! runs on its own task before HTTP starts (`tls/handshake.rs`), so the
//! accept loop never waits on a client.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::tls::handshake::{ClientStream, TlsSide};

/// The largest request head (request line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long shutdown waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What one listener allows its clients (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for ConnLimits {
    /// The defaults of the flags (the admin listener and the echo tool use them).
    fn default() -> Self {
        ConnLimits {
            max_connections: 10_000,
            max_per_ip: 1024,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
        }
    }
}

/// Answers requests on one connection.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Unpin
        + 'static;
    /// Per-connection context, made once at accept time.
    type Conn: Send + Sync + 'static;

    /// `secure`: the connection came in on the TLS listener (and its
    /// handshake succeeded).
    fn connect(&self, peer: SocketAddr, secure: bool) -> Self::Conn;
    /// A connection from `peer` was closed at once: its IP is over the cap.
    fn refused(&self, _peer: SocketAddr) {}
    /// A TLS connection from `peer` was closed: its handshake failed or
    /// timed out.
    fn handshake_failed(&self, _peer: SocketAddr) {}
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

/// What a connection holds while open: its place under both caps.
struct Slots {
    _open: OwnedSemaphorePermit,
    _ip: IpSlot,
}

/// An accepted connection: the socket, the peer, its slots, and whether it
/// came in on the TLS listener.
type Handoff = (std::net::TcpStream, SocketAddr, Slots, bool);

/// Open connections per client IP. Entries exist only while their IP has a
/// connection open, so the map is bounded by `--max-connections`.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's count in [`PerIp`], given back when dropped.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<IpSlot> {
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serve `handler` on `listener` until `shutdown` completes, on this task's
/// runtime only.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    serve_on_threads(listener, None, handler, 1, ConnLimits::default(), shutdown).await;
}

/// The HTTPS listener of [`serve_on_threads`] and how its handshakes run.
pub struct TlsListener {
    pub listener: TcpListener,
    pub side: TlsSide,
}

/// Accept on `tls` if there is one; never completes otherwise.
async fn accept_tls(tls: Option<&TlsListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tls {
        Some(t) => t.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serve `handler` on `listener` with `threads` threads, thread-per-core
/// style (HAProxy's `nbthread`, pingora's and nginx's workers): this task
/// accepts and hands connections round-robin to `threads - 1` worker
/// threads, each running its own single-threaded runtime, and keeps every
/// `threads`-th connection itself. A connection then lives on one thread
/// for its whole life, with its upstream connections, so no request ever
/// crosses threads, and no lock or wake-up is shared between them.
///
/// At most `limits.max_connections` are open at once; beyond that the loop
/// stops accepting (the kernel's backlog holds the rest) until one closes.
/// A connection from an IP that already has `limits.max_per_ip` open is
/// closed at once (and [`Handler::refused`] told).
pub async fn serve_on_threads<H: Handler>(
    listener: TcpListener,
    tls: Option<TlsListener>,
    handler: Arc<H>,
    threads: usize,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let side = tls.as_ref().map(|t| t.side.clone());
    let local = ConnServer::new(handler.clone(), limits, stop_rx.clone(), side.clone());
    let workers: Vec<Worker> = (1..threads.max(1))
        .filter_map(|index| {
            match Worker::spawn(
                index,
                handler.clone(),
                limits,
                stop_rx.clone(),
                side.clone(),
            ) {
                Ok(worker) => Some(worker),
                Err(e) => {
                    tracing::warn!(error = %e, index, "could not start a worker thread");
                    None
                }
            }
        })
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
        let (accepted, secure) = tokio::select! {
            accepted = listener.accept() => (accepted, false),
            accepted = accept_tls(tls.as_ref()) => (accepted, true),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off a little
                // instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let client = sessionlab_wire::addr::client_key(peer.ip());
        let Some(ip_slot) = per_ip.take(client, limits.max_per_ip.max(1)) else {
            handler.refused(peer);
            tracing::debug!(%peer, "over --max-connections-per-ip; closed");
            drop(stream);
            continue;
        };
        let slots = Slots {
            _open: permit,
            _ip: ip_slot,
        };
        let _ = stream.set_nodelay(true);
        turn = turn.wrapping_add(1);
        match workers.get(turn % (workers.len() + 1)) {
            None => local.spawn(stream, peer, slots, secure),
            Some(worker) => worker.hand_off(stream, peer, slots, secure).await,
        }
    }
    drop(listener);
    drop(tls);
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
    /// How long a connection may go without a request in flight.
    idle_timeout: Duration,
    /// Flips to `true` at shutdown: every connection finishes and closes.
    stop: watch::Receiver<bool>,
    /// Connections open on this runtime, and a wake-up when one closes.
    open: Arc<(AtomicUsize, Notify)>,
    /// Handshakes for connections from the TLS listener.
    tls: Option<TlsSide>,
}

/// When a connection last finished a response, and how many of its
/// requests are in flight (their response bodies included), for the one
/// timer of the module docs. Atomics, not a lock: the request path only
/// adds, subtracts and stores.
struct Activity {
    /// The connection's start: `last_ns` counts from here.
    base: Instant,
    /// When the last response ended (0: none yet, so the accept).
    last_ns: AtomicU64,
    busy: AtomicUsize,
    /// Responses whose body is streaming, and when one last moved a frame.
    streaming: AtomicUsize,
    progress_ns: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_ns: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            streaming: AtomicUsize::new(0),
            progress_ns: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64
    }

    /// A response's head is ready: its body starts streaming.
    fn stream_start(&self) {
        self.progress_ns.store(self.now_ns(), Ordering::Relaxed);
        self.streaming.fetch_add(1, Ordering::Relaxed);
    }

    /// A streaming body handed hyper a frame.
    fn progress(&self) {
        self.progress_ns.store(self.now_ns(), Ordering::Relaxed);
    }

    fn stream_end(&self) {
        self.streaming.fetch_sub(1, Ordering::Relaxed);
    }

    fn start(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.last_ns.store(self.now_ns(), Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }

    /// The timer fired at `now`: `None` if the connection has been without
    /// a request for `idle`, or its streaming response has moved nothing
    /// for `idle`; else when to look again.
    fn next_check(&self, idle: Duration, now: Instant) -> Option<Instant> {
        if self.streaming.load(Ordering::Relaxed) > 0 {
            let moved = self.base + Duration::from_nanos(self.progress_ns.load(Ordering::Relaxed));
            let due = moved + idle;
            return (due > now).then_some(due);
        }
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Some(now + idle);
        }
        let last = self.base + Duration::from_nanos(self.last_ns.load(Ordering::Relaxed));
        let due = last + idle;
        (due > now).then_some(due)
    }
}

/// Ends a request on [`Activity`] when dropped: when its response body is
/// done (hyper drops it after writing the last byte), or when hyper drops
/// the request's future or the response unsent.
struct Busy<H: Handler>(Arc<ConnState<H>>);

impl<H: Handler> Drop for Busy<H> {
    fn drop(&mut self) {
        self.0.2.end();
    }
}

/// A response body that holds its request's [`Busy`] until it is dropped
/// and stamps the connection's progress on every frame.
struct Tracked<B, H: Handler> {
    body: B,
    busy: Busy<H>,
}

impl<B, H: Handler> Tracked<B, H> {
    fn new(body: B, busy: Busy<H>) -> Self {
        busy.0.2.stream_start();
        Tracked { body, busy }
    }
}

impl<B, H: Handler> Drop for Tracked<B, H> {
    fn drop(&mut self) {
        self.busy.0.2.stream_end();
    }
}

impl<B: http_body::Body + Unpin, H: Handler> http_body::Body for Tracked<B, H> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if frame.is_ready() {
            this.busy.0.2.progress();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The handler, the connection's context and its activity, in one
/// allocation per connection.
type ConnState<H> = (Arc<H>, <H as Handler>::Conn, Activity);

impl<H: Handler> ConnServer<H> {
    fn new(
        handler: Arc<H>,
        limits: ConnLimits,
        stop: watch::Receiver<bool>,
        tls: Option<TlsSide>,
    ) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .keep_alive(true)
            // Small responses: one copy into the head buffer and one
            // write() beat a writev() of two slices.
            .writev(false)
            // The head bound is this module's own timer (see the docs).
            .header_read_timeout(None)
            .max_buf_size(MAX_HEAD_BYTES);
        ConnServer {
            handler,
            builder,
            idle_timeout: limits.header_timeout.min(limits.keepalive_timeout),
            stop,
            open: Arc::new((AtomicUsize::new(0), Notify::new())),
            tls,
        }
    }

    fn spawn(&self, stream: TcpStream, peer: SocketAddr, slots: Slots, secure: bool) {
        let open = self.open.clone();
        open.0.fetch_add(1, Ordering::Relaxed);
        let tls = match (secure, &self.tls) {
            (false, _) => None,
            (true, Some(tls)) => Some(tls.clone()),
            (true, None) => {
                // Unreachable: only a TLS listener sets `secure`.
                Self::closed(&open, slots);
                return;
            }
        };
        let this = ConnTask {
            handler: self.handler.clone(),
            builder: self.builder.clone(),
            idle_timeout: self.idle_timeout,
            stop: self.stop.clone(),
        };
        tokio::spawn(async move {
            let stream = match tls {
                None => ClientStream::Plain(stream),
                Some(tls) => match tls.handshake(stream).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        this.handler.handshake_failed(peer);
                        tracing::debug!(error = %e, %peer, "TLS handshake failed; closed");
                        Self::closed(&open, slots);
                        return;
                    }
                },
            };
            this.serve(stream, peer, secure).await;
            Self::closed(&open, slots);
        });
    }

    /// A connection has ended: give its slots back, wake the drain.
    fn closed(open: &(AtomicUsize, Notify), slots: Slots) {
        drop(slots);
        open.0.fetch_sub(1, Ordering::Relaxed);
        open.1.notify_waiters();
    }

    /// Wait for open connections (told to finish by the stop signal).
    async fn drain(self) {
        let open = &self.open;
        let all_closed = async {
            loop {
                let closed = open.1.notified();
                tokio::pin!(closed);
                closed.as_mut().enable();
                if open.0.load(Ordering::Relaxed) == 0 {
                    return;
                }
                closed.await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, all_closed)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing");
        }
    }
}

/// What one connection's task needs from its [`ConnServer`].
struct ConnTask<H> {
    handler: Arc<H>,
    builder: http1::Builder,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl<H: Handler> ConnTask<H> {
    /// Serve HTTP/1.1 on `stream` until the client closes, the connection
    /// idles out, or shutdown.
    async fn serve(self, stream: ClientStream, peer: SocketAddr, secure: bool) {
        // One allocation per connection holds the handler, the connection's
        // context and its activity; a request clones only this `Arc`, whose
        // count no other thread touches (the handler's own is shared by all
        // workers).
        let state: Arc<ConnState<H>> = Arc::new((
            self.handler.clone(),
            self.handler.connect(peer, secure),
            Activity::new(),
        ));
        let conn_state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move {
                state.2.start();
                let busy = Busy(state.clone());
                let resp = state.0.call(req, &state.1).await.ok_or(NoResponse)?;
                Ok::<_, NoResponse>(resp.map(|body| Tracked::new(body, busy)))
            }
        });
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = self.stop;
        let idle = self.idle_timeout;
        let timer = tokio::time::sleep(idle);
        tokio::pin!(connection, timer);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = stop.wait_for(|stop| *stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = timer.as_mut(), if !closing => {
                    match conn_state.2.next_check(idle, Instant::now()) {
                        Some(next) => timer.as_mut().reset(next),
                        // No request in flight, so nothing to finish: close
                        // (hyper's graceful shutdown would go on waiting for
                        // a head that has started to arrive).
                        None => break Ok(()),
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
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
        limits: ConnLimits,
        mut stop: watch::Receiver<bool>,
        tls: Option<TlsSide>,
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
                    let server = ConnServer::new(handler, limits, stop.clone(), tls);
                    loop {
                        tokio::select! {
                            next = incoming.recv() => match next {
                                Some((stream, peer, slots, secure)) => match TcpStream::from_std(stream) {
                                    Ok(stream) => server.spawn(stream, peer, slots, secure),
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
    async fn hand_off(&self, stream: TcpStream, peer: SocketAddr, slots: Slots, secure: bool) {
        match stream.into_std() {
            Ok(stream) => {
                let _ = self.handoff.send((stream, peer, slots, secure)).await;
            }
            Err(e) => tracing::warn!(error = %e, "could not hand a connection off"),
        }
    }

    async fn join(self) {
        drop(self.handoff);
        let _ = self.done.await;
    }
}

/// The one SIGTERM/Ctrl-C future (see the `sessionlab-shutdown` crate).
pub use sessionlab_shutdown::shutdown_signal;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connection_timer_runs_from_the_last_response_and_never_during_one() {
        let idle = Duration::from_secs(10);
        let a = Activity::new();
        let opened = Instant::now();
        // Nothing yet: due `idle` after the accept.
        assert_eq!(a.next_check(idle, opened), Some(opened + idle));
        tokio::time::advance(Duration::from_secs(4)).await;
        a.start();
        tokio::time::advance(Duration::from_secs(20)).await;
        // A request (or its body) in flight, however long: look again later.
        let now = Instant::now();
        assert_eq!(a.next_check(idle, now), Some(now + idle));
        a.end();
        let ended = Instant::now();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(a.next_check(idle, Instant::now()), Some(ended + idle));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.next_check(idle, Instant::now()), None, "idle for 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_response_that_moves_nothing_for_the_bound_is_cut() {
        let idle = Duration::from_secs(10);
        let a = Activity::new();
        a.start();
        a.stream_start();
        // Frames keep coming: the body may take as long as it likes.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(8)).await;
            a.progress();
            let now = Instant::now();
            assert_eq!(a.next_check(idle, now), Some(now + idle));
        }
        // Then nothing (a stalled backend, a client that stopped reading).
        let moved = Instant::now();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(a.next_check(idle, Instant::now()), Some(moved + idle));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            a.next_check(idle, Instant::now()),
            None,
            "no frame for 10 s"
        );
        // Once it ends, the idle rule is back.
        a.stream_end();
        a.end();
        let now = Instant::now();
        assert_eq!(a.next_check(idle, now), Some(now + idle));
    }
}
