//! Idle keep-alive connections to one backend, and the lease that drives a
//! busy one.
//!
//! A general-purpose HTTP client (hyper-util's pooled `Client`) runs every
//! upstream connection as its own task and talks to it through channels:
//! per request, a message to the connection task, a oneshot back, a task
//! spawned to return the connection to the pool, and two cross-task
//! wake-ups. A proxy can do better, because HTTP/1.1 is strictly one
//! request at a time per connection and the proxy already has a task for
//! the *client* connection: it can drive the upstream connection *inside
//! that task* (pingora's design). Here, a [`Lease`] is an upstream
//! connection (hyper's low-level `SendRequest` + `Connection` pair) checked
//! out of the backend's [`Pool`]; the request future polls it while waiting
//! for the response head, and the response body polls it while streaming.
//! When the body ends, the connection is idle again and goes back on the
//! pool. No extra task, no channel hop.
//!
//! The pool is a LIFO stack (the most recently used connection is the one
//! most likely still open, and keeping the hot set small lets old ones time
//! out), bounded at `max_idle` connections, each dropped after
//! `idle_timeout` unused. A connection taken from the pool is polled once
//! before use, so one the backend has closed is noticed and discarded
//! instead of failing a request.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// Limits of each backend's pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolLimits {
    /// Per backend and worker thread.
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// Worker threads, each with its own pool per backend.
    pub shards: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_idle: 1024,
            idle_timeout: Duration::from_secs(4),
            shards: 1,
        }
    }
}

/// An upstream HTTP/1.1 connection, driven by whoever holds it.
///
/// Boxed once per connection (not per request): hyper's connection state
/// is about a kilobyte, and request futures that hold a lease stay small
/// and cheap to move.
pub struct Lease(Box<Leased>);

struct Leased {
    sender: SendRequest<Full<Bytes>>,
    conn: Conn,
    /// The read-timeout timer, made once per connection and pushed forward
    /// for each request: moving a tokio timer to a *later* deadline is an
    /// atomic store, where a fresh timer per request costs a wheel insert
    /// and removal under a lock.
    timer: Pin<Box<Sleep>>,
    pool: Arc<Pool>,
}

impl Lease {
    pub(crate) fn new(sender: SendRequest<Full<Bytes>>, conn: Conn, pool: Arc<Pool>) -> Self {
        Lease(Box::new(Leased {
            sender,
            conn,
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
            pool,
        }))
    }

    /// Set the deadline for the next response head.
    pub(crate) fn arm(&mut self, deadline: Instant) {
        self.0.timer.as_mut().reset(deadline);
    }

    /// Has the deadline passed?
    pub(crate) fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.timer.as_mut().poll(cx)
    }

    pub(crate) fn sender(&mut self) -> &mut SendRequest<Full<Bytes>> {
        &mut self.0.sender
    }

    /// Drive the connection's I/O. `Ready` means the connection is finished
    /// (closed by the peer, or failed) and must not be reused.
    pub fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0.conn).poll(cx).map(|_| ())
    }

    /// Poll the connection once without waiting: is it still usable?
    pub async fn is_usable(&mut self) -> bool {
        poll_fn(|cx| Poll::Ready(self.poll_conn(cx).is_pending())).await && self.0.sender.is_ready()
    }

    /// The exchange is over: let the connection settle, then pool it if it
    /// is ready for another request (otherwise it is dropped and closed).
    pub fn release(mut self, cx: &mut Context<'_>) {
        if self.poll_conn(cx).is_pending() && self.0.sender.is_ready() {
            let pool = self.0.pool.clone();
            pool.put(self);
        }
    }
}

struct Idle {
    lease: Lease,
    since: Instant,
}

/// One backend's idle connections.
pub struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    limits: PoolLimits,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle.lock().len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Pool {
    pub fn new(limits: PoolLimits) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(VecDeque::new()),
            limits,
        })
    }

    /// The most recently pooled connection that has not timed out.
    pub fn take(&self) -> Option<Lease> {
        let (found, stale) = {
            let mut idle = self.idle.lock();
            match idle.pop_back() {
                Some(entry) if entry.since.elapsed() < self.limits.idle_timeout => {
                    (Some(entry.lease), VecDeque::new())
                }
                // Timed out, and everything below it is older still.
                Some(entry) => {
                    let mut stale = std::mem::take(&mut *idle);
                    stale.push_back(entry);
                    (None, stale)
                }
                None => (None, VecDeque::new()),
            }
        };
        drop(stale); // close sockets outside the lock
        found
    }

    fn put(&self, lease: Lease) {
        let now = Instant::now();
        let expired = {
            let mut idle = self.idle.lock();
            // Expire from the old end, a few at a time, so closing is cheap.
            let mut expired = Vec::new();
            while expired.len() < 4
                && idle
                    .front()
                    .is_some_and(|e| now.duration_since(e.since) >= self.limits.idle_timeout)
            {
                expired.extend(idle.pop_front());
            }
            let rejected = if idle.len() < self.limits.max_idle {
                idle.push_back(Idle { lease, since: now });
                None
            } else {
                Some(lease)
            };
            (expired, rejected)
        };
        drop(expired); // close sockets outside the lock
    }

    /// Idle connections right now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    /// A real (idle) HTTP/1.1 connection to a listener that never answers.
    async fn lease(pool: &Arc<Pool>, listener: &TcpListener) -> Lease {
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        Lease::new(sender, conn, pool.clone())
    }

    /// A pool of one shard keeping `max_idle` connections for 4 s.
    fn one_shard(max_idle: usize) -> Arc<Pool> {
        Pool::new(PoolLimits {
            max_idle,
            idle_timeout: Duration::from_secs(4),
            shards: 1,
        })
    }

    async fn release(lease: Lease) {
        let mut lease = Some(lease);
        poll_fn(|cx| {
            if let Some(l) = lease.take() {
                l.release(cx);
            }
            Poll::Ready(())
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_expire_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = one_shard(8);
        release(lease(&pool, &listener).await).await;
        assert_eq!(pool.idle_count(), 1);

        tokio::time::advance(Duration::from_secs(3)).await;
        let again = pool.take().expect("still fresh after 3 s");
        release(again).await;

        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(pool.take().is_none(), "expired after 4 s idle");
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pool_is_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = one_shard(2);
        for _ in 0..3 {
            let l = lease(&pool, &listener).await;
            release(l).await;
        }
        assert_eq!(pool.idle_count(), 2, "the third was closed, not pooled");
    }
}
