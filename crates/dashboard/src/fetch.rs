//! Where the dashboard's data comes from: HTTP calls to the LB's admin API
//! ([`LbAdmin`]) and to the nodes' cluster listeners ([`Fetcher::json`]).
//!
//! The browser talks only to the dashboard (same origin, one token), so the
//! dashboard asks everyone else. Every call has a short deadline
//! ([`TIMEOUT`]) and a bounded answer ([`MAX_BODY`]): a dead or hung process
//! costs the page at most that long and shows as unreachable, never as a
//! spinner. Answers are parsed as JSON and passed on as data; the page
//! escapes everything it renders.

use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::HostPort;

/// Deadline of one request to the LB or a node.
pub const TIMEOUT: Duration = Duration::from_millis(800);
/// Largest answer read.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Why an answer is missing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("answer unreadable: {0}")]
    Body(String),
    #[error("answer is not JSON: {0}")]
    Json(String),
    #[error("answer is JSON of another shape: {0}")]
    Shape(String),
}

impl From<serde_json::Error> for FetchError {
    fn from(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => FetchError::Shape(e.to_string()),
            _ => FetchError::Json(e.to_string()),
        }
    }
}

/// One HTTP client for every call.
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for Fetcher {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(TIMEOUT));
        // No idle pooling: a few requests a second to loopback, and a
        // fresh connection never meets a keep-alive the other side closed.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Fetcher { client }
    }
}

impl Fetcher {
    /// `METHOD http://{addr}{path}` within [`TIMEOUT`]: status and body.
    pub async fn send(
        &self,
        method: Method,
        addr: &HostPort,
        path: &str,
        token: Option<&str>,
    ) -> Result<(StatusCode, Bytes), FetchError> {
        let uri: Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Unreachable(e.to_string()))?;
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Unreachable(root_cause(&e)))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .unwrap_or(Err(FetchError::Timeout(TIMEOUT)))
    }

    /// `GET http://{addr}{path}`, 200 and parsed as JSON.
    pub async fn json(
        &self,
        addr: &HostPort,
        path: &str,
        token: Option<&str>,
    ) -> Result<Value, FetchError> {
        self.typed(addr, path, token).await
    }

    /// `GET http://{addr}{path}`, 200 and read as a `T` (a contract type
    /// of `sessionlab-wire`, or any JSON as [`Value`]).
    pub async fn typed<T: DeserializeOwned>(
        &self,
        addr: &HostPort,
        path: &str,
        token: Option<&str>,
    ) -> Result<T, FetchError> {
        let (status, body) = self.send(Method::GET, addr, path, token).await?;
        if status != StatusCode::OK {
            return Err(FetchError::Status(status));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// hyper's error chain, shortened to its root cause ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The LB's admin API, with its token.
pub struct LbAdmin {
    pub addr: HostPort,
    token: Option<String>,
    fetch: Fetcher,
}

impl LbAdmin {
    pub fn new(addr: HostPort, token: Option<String>) -> Self {
        LbAdmin {
            addr,
            token,
            fetch: Fetcher::default(),
        }
    }

    /// `GET` a JSON document of the admin API, read as a `T` (the
    /// contract's `sessionlab_wire::lb_admin` types, or any JSON as [`Value`]).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, FetchError> {
        self.fetch
            .typed(&self.addr, path, self.token.as_deref())
            .await
    }

    /// Any call, answered with the LB's status and JSON body (`null` if the
    /// body is not JSON), for passing on.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Value), FetchError> {
        let (status, body) = self
            .fetch
            .send(method, &self.addr, path, self.token.as_deref())
            .await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}
