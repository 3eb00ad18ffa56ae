//! The whole cluster in one answer: what the LB knows about each backend,
//! plus what each node says about itself, for the dashboard.
//!
//! The browser talks only to the LB's admin listener (same origin, one
//! token), so the LB gathers what the page shows. It already has the
//! backends (state, drain, in-flight, counters, latency). What only the
//! nodes know (sessions held and their versions, memory, replication
//! links, queue depths, lag, recent replication events) is on each node's
//! *cluster* listener, whose address the LB learns from `--node-admin
//! node-1=127.0.0.1:9081` or from the `admin` field of an add call
//! ([`NodeDirectory`]).
//!
//! `GET /admin/v1/cluster` ([`ClusterView::gather`]) asks every node, all at
//! once, for `/admin/v1/status`, `/admin/v1/sessions` and
//! `/admin/v1/replication` (the last only exists on replicating nodes; a
//! 404 there just means "no replication"). Each request has a short
//! deadline ([`NODE_TIMEOUT`]) and a bounded body ([`MAX_NODE_BODY`]), so a
//! dead or hung node costs the page at most that long and is shown as
//! unreachable, never as a spinner. Answers are parsed as JSON and passed
//! on as data; the page escapes everything it renders.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::admin::backend_json;
use crate::backend::{Backend, MAX_BACKENDS};

/// Deadline of one request to a node's cluster listener.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(800);
/// Largest answer read from a node.
pub const MAX_NODE_BODY: usize = 4 * 1024 * 1024;
/// Sessions asked of each node (the page shows the most recent).
pub const SESSIONS_PER_NODE: usize = 200;
/// Replication events asked of each node per call.
pub const EVENTS_PER_NODE: usize = 60;

/// Where each node's cluster listener is, by backend id.
#[derive(Debug, Default)]
pub struct NodeDirectory {
    admins: RwLock<BTreeMap<String, SocketAddr>>,
}

/// The directory is full (one entry per backend at most).
#[derive(Debug, thiserror::Error)]
#[error("too many node admin addresses (at most {MAX_BACKENDS})")]
pub struct DirectoryFull;

impl NodeDirectory {
    pub fn set(&self, id: &str, addr: SocketAddr) -> Result<(), DirectoryFull> {
        let mut admins = self.admins.write();
        if !admins.contains_key(id) && admins.len() >= MAX_BACKENDS {
            return Err(DirectoryFull);
        }
        admins.insert(id.to_string(), addr);
        Ok(())
    }

    pub fn remove(&self, id: &str) {
        self.admins.write().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<SocketAddr> {
        self.admins.read().get(id).copied()
    }
}

/// Why a node's answer is missing.
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
}

/// Fetches node views; see the module docs.
pub struct ClusterView {
    pub directory: NodeDirectory,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for ClusterView {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(NODE_TIMEOUT));
        // No idle pooling: a few requests a second to loopback, and a
        // fresh connection never meets a keep-alive the node just closed.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        ClusterView {
            directory: NodeDirectory::default(),
            client,
        }
    }
}

/// What one node said, each part on its own (a node may answer one and
/// time out on another).
struct NodeAnswers {
    status: Result<Value, FetchError>,
    sessions: Result<Value, FetchError>,
    replication: Result<Value, FetchError>,
}

impl ClusterView {
    /// `GET http://{addr}{path}`, parsed as JSON, within [`NODE_TIMEOUT`].
    async fn fetch(&self, addr: SocketAddr, path: &str) -> Result<Value, FetchError> {
        let uri: Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Unreachable(e.to_string()))?;
        let req = Request::get(uri)
            .body(Empty::new())
            .map_err(|e| FetchError::Unreachable(e.to_string()))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Unreachable(connect_reason(&e)))?;
            if resp.status() != StatusCode::OK {
                return Err(FetchError::Status(resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_NODE_BODY)
                .collect()
                .await
                .map_err(|e| FetchError::Body(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))
        };
        tokio::time::timeout(NODE_TIMEOUT, work)
            .await
            .unwrap_or(Err(FetchError::Timeout(NODE_TIMEOUT)))
    }

    async fn ask_node(self: Arc<Self>, addr: SocketAddr) -> NodeAnswers {
        let sessions = format!("/admin/v1/sessions?limit={SESSIONS_PER_NODE}");
        let replication = format!("/admin/v1/replication?limit={EVENTS_PER_NODE}");
        let (status, sessions, replication) = tokio::join!(
            self.fetch(addr, "/admin/v1/status"),
            self.fetch(addr, &sessions),
            self.fetch(addr, &replication),
        );
        NodeAnswers {
            status,
            sessions,
            replication,
        }
    }

    /// Every backend of `list`, in table order, with its node's answers.
    pub async fn gather(self: &Arc<Self>, list: &[Arc<Backend>]) -> Vec<Value> {
        let mut asks = JoinSet::new();
        for (i, b) in list.iter().enumerate() {
            if let Some(addr) = self.directory.get(b.id()) {
                let view = self.clone();
                asks.spawn(async move { (i, view.ask_node(addr).await) });
            }
        }
        let mut answers: Vec<Option<NodeAnswers>> = list.iter().map(|_| None).collect();
        while let Some(joined) = asks.join_next().await {
            if let Ok((i, a)) = joined {
                answers[i] = Some(a);
            }
        }
        list.iter()
            .zip(answers)
            .map(|(b, a)| node_json(b, self.directory.get(b.id()), a))
            .collect()
    }
}

/// hyper's error chain, shortened to its root cause ("Connection refused").
fn connect_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn node_json(b: &Backend, admin: Option<SocketAddr>, answers: Option<NodeAnswers>) -> Value {
    let mut lb = backend_json(b);
    if let Some(obj) = lb.as_object_mut() {
        obj.remove("health_history");
    }
    let (reachable, error, status, sessions, replication) = match answers {
        None => (
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ),
        Some(a) => {
            let reachable = a.status.is_ok();
            let error = a.status.as_ref().err().map(|e| e.to_string());
            let sessions = a
                .sessions
                .ok()
                .and_then(|mut v| v.get_mut("sessions").map(Value::take))
                .unwrap_or(Value::Null);
            // 404: the node does not replicate; anything else: unknown.
            let replication = a.replication.unwrap_or(Value::Null);
            (
                json!(reachable),
                json!(error),
                a.status.unwrap_or(Value::Null),
                sessions,
                replication,
            )
        }
    };
    json!({
        "id": b.id(),
        "admin_addr": admin.map(|a| a.to_string()),
        "lb": lb,
        "reachable": reachable,
        "error": error,
        "status": status,
        "sessions": sessions,
        "replication": replication,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendSpec;
    use crate::health::HealthConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn backend(id: &str) -> Arc<Backend> {
        Arc::new(Backend::new(
            BackendSpec::new(id, "127.0.0.1:1").unwrap(),
            &HealthConfig::default(),
        ))
    }

    /// A fake node: answers every request with `body` (or never, if None).
    async fn fake_node(body: Option<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let path = String::from_utf8_lossy(&buf);
                    let Some(body) = body else {
                        // Hang: hold the connection without answering.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    };
                    let (status, body) = if path.starts_with("GET /admin/v1/replication") {
                        ("404 Not Found", "{}")
                    } else {
                        ("200 OK", body)
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_dead_or_hung_node_is_shown_unreachable_within_the_deadline() {
        let view = Arc::new(ClusterView::default());
        let ok = fake_node(Some(
            r#"{"node_id":"node-1","sessions":[{"id_prefix":"abc123"}]}"#,
        ))
        .await;
        let hung = fake_node(None).await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap() // closed when `l` drops at the end of this block
        };
        view.directory.set("node-1", ok).unwrap();
        view.directory.set("node-2", hung).unwrap();
        view.directory.set("node-3", dead).unwrap();
        let list = vec![
            backend("node-1"),
            backend("node-2"),
            backend("node-3"),
            backend("node-4"),
        ];
        let began = std::time::Instant::now();
        let nodes = view.gather(&list).await;
        assert!(began.elapsed() < NODE_TIMEOUT * 3, "{:?}", began.elapsed());

        assert_eq!(nodes[0]["id"], "node-1");
        assert_eq!(nodes[0]["reachable"], true);
        assert_eq!(nodes[0]["status"]["node_id"], "node-1");
        assert_eq!(nodes[0]["sessions"][0]["id_prefix"], "abc123");
        assert_eq!(nodes[0]["replication"], Value::Null, "404: no replication");
        assert_eq!(nodes[0]["lb"]["state"], "up");
        assert_eq!(nodes[0]["admin_addr"], ok.to_string());

        assert_eq!(nodes[1]["reachable"], false);
        assert!(nodes[1]["error"].as_str().unwrap().contains("no answer"));
        assert_eq!(nodes[2]["reachable"], false);
        assert!(nodes[2]["error"].as_str().unwrap().contains("unreachable"));
        // No admin address: nothing asked, nothing claimed.
        assert_eq!(nodes[3]["reachable"], Value::Null);
        assert_eq!(nodes[3]["admin_addr"], Value::Null);
    }

    #[test]
    fn the_directory_is_bounded_and_forgets() {
        let d = NodeDirectory::default();
        let addr: SocketAddr = "127.0.0.1:9081".parse().unwrap();
        for i in 0..MAX_BACKENDS {
            d.set(&format!("n{i}"), addr).unwrap();
        }
        assert!(d.set("one-more", addr).is_err());
        d.set("n0", "127.0.0.1:9999".parse().unwrap()).unwrap();
        assert_eq!(d.get("n0").unwrap().port(), 9999);
        d.remove("n0");
        assert_eq!(d.get("n0"), None);
        d.set("one-more", addr).unwrap();
    }
}
