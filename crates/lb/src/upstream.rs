//! The upstream side: pooled keep-alive connections to the backends.
//!
//! Opening a TCP connection per request would cost a handshake (and, under
//! load, thousands of sockets in TIME_WAIT). Instead the LB keeps idle
//! HTTP/1.1 connections to every backend and reuses them: hyper-util's
//! pooled client, keyed by backend address, with `TCP_NODELAY` (small
//! requests must not wait for Nagle) and a bound on idle connections per
//! backend.
//!
//! This module also turns the client's errors into [`ProxyError`]s that know
//! *when* they happened, which is what the retry rule needs:
//!
//! - the connector failed (refused, unreachable, connect timeout): nothing
//!   was sent;
//! - anything after that (reset, EOF before a response, a malformed
//!   response): the request may have reached the backend;
//! - no response headers within `read_timeout`: a read timeout.
//!
//! hyper-util already re-sends, on a new connection, a request whose pooled
//! connection turned out to be closed before anything was written to it
//! (`retry_canceled_requests`), which covers the common race of a backend
//! closing an idle keep-alive connection.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, Error as ClientError, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::backend::Backend;
use crate::error::ProxyError;

/// Limits of the upstream side.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_idle_per_backend: usize,
    pub idle_timeout: Duration,
}

#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    read_timeout: Duration,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle_per_backend)
            .retry_canceled_requests(true)
            .set_host(true)
            .build(connector);
        Upstream {
            client,
            read_timeout: config.read_timeout,
        }
    }

    /// Send one request to `backend` and wait for its response headers.
    pub async fn send(
        &self,
        backend: &Backend,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(self.read_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(backend, &e)),
            Err(_) => Err(ProxyError::ReadTimeout {
                backend: backend.id().to_string(),
                timeout: self.read_timeout,
            }),
        }
    }
}

/// Map a client error to a proxy error that knows whether the request was sent.
fn classify(backend: &Backend, e: &ClientError) -> ProxyError {
    let backend = backend.id().to_string();
    let detail = root_cause(e);
    if e.is_connect() {
        if is_timeout(e) {
            ProxyError::ConnectTimeout { backend }
        } else {
            ProxyError::Connect { backend, detail }
        }
    } else {
        ProxyError::AfterSend { backend, detail }
    }
}

fn is_timeout(e: &ClientError) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// The innermost error message (e.g. "Connection refused (os error 111)").
fn root_cause(e: &ClientError) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}
