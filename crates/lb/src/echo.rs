//! `sessionlab-echo`: a tiny, fast backend for tests and benchmarks.
//!
//! **A test tool, not part of the lab's cluster.** The LB's tests and
//! `scripts/bench-lb.sh` need backends that start in milliseconds, answer
//! as fast as the machine allows (so a benchmark measures the proxy, not the
//! app), and can be told to misbehave. `sessionlab-node` is the real app;
//! this is its stand-in.
//!
//! Every response carries `X-Served-By: <id>` (the lab's contract).
//! Behaviour, chosen per request by path and query:
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok`, or 503 after `/_echo/health/down` |
//! | `/_echo/health/down`, `/_echo/health/up` | flip `/healthz` |
//! | `/_echo/headers` | the request headers, one `name: value` per line |
//! | `/_echo/body` | the request body |
//! | `?delay_ms=N` | wait N ms (at most 60 000) first |
//! | `?status=N` | answer with status N |
//! | `?drop=1` | close the connection without answering |
//! | `?set_route=X` | also send `Set-Cookie: SLROUTE=X` (tests the LB removes it) |
//! | `?hop=1` | also send `X-Hop: 1` and `Connection: x-hop` (a hop-by-hop header) |
//! | anything else | 200 with the body `<id>\n` |
//!
//! `--delay-ms` (or [`EchoState::with_delay`]) makes every answer slow.
//! The body of an ordinary answer is built once at start-up; request bodies
//! are read up to 1 MiB. [`EchoState`] counts requests so in-process tests
//! can see where traffic went.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HeaderName, HeaderValue, SET_COOKIE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::proxy::server::{self, Handler};

pub const X_SERVED_BY: HeaderName = HeaderName::from_static(sessionlab_wire::served_by::SERVED_BY);
const MAX_BODY: usize = 1024 * 1024;
const MAX_DELAY_MS: u64 = 60_000;

/// One echo backend's identity and counters.
#[derive(Debug)]
pub struct EchoState {
    id: String,
    served_by: HeaderValue,
    greeting: Bytes,
    healthy: AtomicBool,
    requests: AtomicU64,
    /// Added to every answer (not health checks): a slow backend.
    delay: Duration,
}

impl EchoState {
    pub fn new(id: &str) -> Arc<Self> {
        Self::with_delay(id, Duration::ZERO)
    }

    /// A backend that waits `delay` before every answer.
    pub fn with_delay(id: &str, delay: Duration) -> Arc<Self> {
        Arc::new(EchoState {
            id: id.to_string(),
            served_by: HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("echo")),
            greeting: Bytes::from(format!("{id}\n")),
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            delay,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Requests answered, health checks excluded.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}

/// The query parameter `name`, if present.
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The request asked for the connection to be dropped.
#[derive(Debug)]
pub struct Dropped;

pub struct Echo(pub Arc<EchoState>);

impl Echo {
    async fn answer(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
        let state = &self.0;
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let query = parts.uri.query();
        if path == "/healthz" {
            let (status, body) = if state.healthy.load(Ordering::Relaxed) {
                (StatusCode::OK, "ok\n")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            };
            return Ok(self.reply(status, Bytes::from_static(body.as_bytes())));
        }
        state.requests.fetch_add(1, Ordering::Relaxed);
        if !state.delay.is_zero() {
            tokio::time::sleep(state.delay).await;
        }
        if let Some(ms) = param(query, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
            tokio::time::sleep(Duration::from_millis(ms.min(MAX_DELAY_MS))).await;
        }
        if param(query, "drop") == Some("1") {
            return Err(Dropped);
        }
        let status = param(query, "status")
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let set_route = param(query, "set_route")
            .and_then(|v| HeaderValue::from_str(&format!("SLROUTE={v}")).ok());
        let body = match path {
            "/_echo/health/down" | "/_echo/health/up" => {
                state.set_healthy(path.ends_with("/up"));
                Bytes::from_static(b"ok\n")
            }
            "/_echo/headers" => {
                let mut text = String::new();
                for (name, value) in &parts.headers {
                    text.push_str(name.as_str());
                    text.push_str(": ");
                    text.push_str(value.to_str().unwrap_or("<binary>"));
                    text.push('\n');
                }
                Bytes::from(text)
            }
            "/_echo/body" => match Limited::new(body, MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return Err(Dropped),
            },
            _ => state.greeting.clone(),
        };
        let mut resp = self.reply(status, body);
        if let Some(cookie) = set_route {
            resp.headers_mut().append(SET_COOKIE, cookie);
        }
        if param(query, "hop") == Some("1") {
            let h = resp.headers_mut();
            h.insert("x-hop", HeaderValue::from_static("1"));
            h.insert(CONNECTION, HeaderValue::from_static("x-hop"));
        }
        Ok(resp)
    }

    fn reply(&self, status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(X_SERVED_BY, self.0.served_by.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        resp
    }
}

impl Handler for Echo {
    type Body = Full<Bytes>;
    type Conn = ();

    fn connect(&self, _peer: SocketAddr, _secure: bool) {}

    async fn call(&self, req: Request<Incoming>, _conn: &()) -> Option<Response<Full<Bytes>>> {
        self.answer(req).await.ok()
    }
}

/// Run an echo backend on `listener` until `shutdown`.
pub async fn run(
    state: Arc<EchoState>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    server::serve(listener, Arc::new(Echo(state)), shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(param(Some("a=1&delay_ms=20"), "delay_ms"), Some("20"));
        assert_eq!(param(Some("a=1"), "delay_ms"), None);
        assert_eq!(param(None, "a"), None);
    }
}
