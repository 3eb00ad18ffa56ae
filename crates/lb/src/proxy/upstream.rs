//! The upstream side: sending one request to one backend.
//!
//! Opening a TCP connection per request would cost a handshake (and, under
//! load, thousands of sockets in TIME_WAIT), so each backend keeps idle
//! keep-alive connections in its [`Pool`](crate::proxy::pool::Pool), and a request
//! takes one from there or connects a new one (with `TCP_NODELAY`: small
//! requests must not wait for Nagle). The request and response are then
//! driven in the caller's task (see `pool.rs` for why).
//!
//! This module also decides *when* a failure happened, which is what the
//! retry rule in `error.rs` needs:
//!
//! - connect refused, unreachable or timed out: nothing was sent;
//! - a pooled connection that turns out not to be ready: the request is
//!   handed back unsent and the next idle connection (or a new one) is used;
//! - anything after the request was written (reset, EOF before a response,
//!   a malformed response): it may have reached the backend;
//! - no response headers within `read_timeout`: a read timeout.
//!
//! One special case: a *reused* connection that the backend closed just as
//! the request was written (the keep-alive race every proxy has). For an
//! idempotent request that is retried once on a fresh connection to the
//! same backend, so a sticky user is not moved to another backend because
//! of an idle timeout.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::backend::Backend;
use crate::proxy::error::ProxyError;
use crate::proxy::pool::Lease;

/// The largest response head accepted from a backend.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Limits of the upstream side.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    connect_timeout: Duration,
    read_timeout: Duration,
}

/// How one exchange on one connection ended badly.
enum Failure {
    /// The connection was not ready; here is the request back, unsent.
    NotSent(Box<Request<Full<Bytes>>>),
    /// Failed after (possibly) writing the request.
    Sent(String),
    /// The connection closed without an answer.
    Closed,
    TimedOut,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Self {
        Upstream {
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
        }
    }

    /// Send a request to `backend` and wait for its response head, at the
    /// latest `read_timeout` after `sent_at` (the caller's clock read, so the
    /// request path reads the clock once for this and its latency). The
    /// returned [`Lease`] must be driven while the body streams.
    ///
    /// `build` makes the request; it is called again only for the
    /// reused-connection race described in the module docs.
    pub async fn send(
        &self,
        backend: &Backend,
        build: impl Fn() -> Request<Full<Bytes>>,
        idempotent: bool,
        sent_at: Instant,
    ) -> Result<(Response<Incoming>, Lease), ProxyError> {
        let deadline = sent_at + self.read_timeout;
        let mut req = build();
        while let Some(mut lease) = backend.pool().take() {
            if !lease.is_usable().await {
                continue;
            }
            match exchange(&mut lease, req, deadline).await {
                Ok(resp) => return Ok((resp, lease)),
                Err(Failure::NotSent(unsent)) => req = *unsent,
                Err(Failure::Sent(_) | Failure::Closed) if idempotent => {
                    req = build();
                    break; // the keep-alive race: once more, on a new connection
                }
                Err(other) => return Err(self.failed(backend, other)),
            }
        }
        // Boxed: connecting is the rare path, and keeping its state out of
        // this future keeps every request's future small (cheap to move).
        let mut lease = Box::pin(self.connect(backend)).await?;
        match exchange(&mut lease, req, deadline).await {
            Ok(resp) => Ok((resp, lease)),
            // A brand-new connection that is not ready never sent anything.
            Err(Failure::NotSent(_)) => Err(ProxyError::Connect {
                backend: backend.id().to_string(),
                detail: "new connection closed before use".into(),
            }),
            Err(other) => Err(self.failed(backend, other)),
        }
    }

    async fn connect(&self, backend: &Backend) -> Result<Lease, ProxyError> {
        let id = || backend.id().to_string();
        let stream = match timeout(self.connect_timeout, TcpStream::connect(backend.addr())).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ProxyError::Connect {
                    backend: id(),
                    detail: e.to_string(),
                });
            }
            Err(_) => return Err(ProxyError::ConnectTimeout { backend: id() }),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .max_buf_size(MAX_RESPONSE_HEAD)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ProxyError::Connect {
                backend: id(),
                detail: e.to_string(),
            })?;
        backend.count_connect();
        Ok(Lease::new(sender, conn, backend.pool().clone()))
    }

    fn failed(&self, backend: &Backend, failure: Failure) -> ProxyError {
        let backend = backend.id().to_string();
        match failure {
            Failure::TimedOut => ProxyError::ReadTimeout {
                backend,
                timeout: self.read_timeout,
            },
            Failure::Sent(detail) => ProxyError::AfterSend { backend, detail },
            Failure::Closed | Failure::NotSent(_) => ProxyError::AfterSend {
                backend,
                detail: "connection closed before a response".into(),
            },
        }
    }
}

/// Write `req` on `lease` and read the response head, driving the
/// connection in this task, until `deadline`.
async fn exchange(
    lease: &mut Lease,
    req: Request<Full<Bytes>>,
    deadline: Instant,
) -> Result<Response<Incoming>, Failure> {
    lease.arm(deadline);
    let mut response = pin!(lease.sender().try_send_request(req));
    poll_fn(|cx| {
        // Drive the connection first (write the request, read the answer),
        // then see whether the answer has arrived.
        let closed = lease.poll_conn(cx).is_ready();
        match response.as_mut().poll(cx) {
            Poll::Ready(Ok(resp)) => Poll::Ready(Ok(resp)),
            Poll::Ready(Err(mut e)) => Poll::Ready(Err(match e.take_message() {
                Some(unsent) => Failure::NotSent(Box::new(unsent)),
                None => Failure::Sent(e.into_error().to_string()),
            })),
            Poll::Pending if closed => Poll::Ready(Err(Failure::Closed)),
            Poll::Pending => lease.poll_timer(cx).map(|()| Err(Failure::TimedOut)),
        }
    })
    .await
}
