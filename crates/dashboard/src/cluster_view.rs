//! The whole cluster in one answer: what the LB knows about each backend,
//! plus what each node says about itself, for the page.
//!
//! The LB's admin API has the backends (state, drain, in-flight, counters,
//! latency; read as the contract's `sessionlab_wire::lb_admin` types, the
//! ones the LB serializes). What only the nodes know (sessions held and their versions,
//! memory, replication links, queue depths, lag, recent replication events)
//! is on each node's *cluster* listener. Its address comes from the LB (the
//! `admin` of a backend added at run time with one, as `sessionlab scale`
//! does) or else from `--node-admin node-1=127.0.0.1:9081`
//! ([`NodeDirectory`]).
//!
//! `GET /admin/v1/cluster` ([`ClusterView::gather`]) asks every node, all at
//! once, for `/admin/v1/status` (read as the contract's
//! [`NodeStatus`], the type the node serves), `/admin/v1/sessions` and
//! `/admin/v1/replication` (the last only exists on replicating nodes; a
//! 404 there just means "no replication"), each within the deadline and
//! bound of [`crate::fetch`]. A dead or hung node is shown as unreachable.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use sessionlab_wire::NodeStatus;
use sessionlab_wire::lb_admin::BackendView;
use sessionlab_wire::replication_log::ReplicationView;

use crate::config::HostPort;
use crate::fetch::{FetchError, Fetcher};

/// The most nodes remembered (the LB's bound on its backend table).
pub const MAX_NODES: usize = 1024;
/// Sessions asked of each node (the page shows the most recent).
pub const SESSIONS_PER_NODE: usize = 200;
/// Replication events asked of each node per call.
pub const EVENTS_PER_NODE: usize = 60;

/// Where each node's cluster listener is, by node id (`--node-admin`).
#[derive(Debug, Default)]
pub struct NodeDirectory {
    admins: RwLock<BTreeMap<String, HostPort>>,
}

/// The directory is full.
#[derive(Debug, thiserror::Error)]
#[error("too many node admin addresses (at most {MAX_NODES})")]
pub struct DirectoryFull;

impl NodeDirectory {
    pub fn set(&self, id: &str, addr: HostPort) -> Result<(), DirectoryFull> {
        let mut admins = self.admins.write();
        if !admins.contains_key(id) && admins.len() >= MAX_NODES {
            return Err(DirectoryFull);
        }
        admins.insert(id.to_string(), addr);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<HostPort> {
        self.admins.read().get(id).cloned()
    }

    /// Every node id known, in order.
    pub fn ids(&self) -> Vec<String> {
        self.admins.read().keys().cloned().collect()
    }
}

/// Fetches node views; see the module docs.
#[derive(Default)]
pub struct ClusterView {
    pub directory: NodeDirectory,
    fetch: Fetcher,
}

/// What one node said, each part on its own (a node may answer one and
/// time out on another).
struct NodeAnswers {
    status: Result<NodeStatus, FetchError>,
    sessions: Result<Value, FetchError>,
    replication: Result<ReplicationView, FetchError>,
}

impl ClusterView {
    async fn ask_node(self: Arc<Self>, addr: HostPort) -> NodeAnswers {
        let sessions = format!("/admin/v1/sessions?limit={SESSIONS_PER_NODE}");
        let replication = format!("/admin/v1/replication?limit={EVENTS_PER_NODE}");
        let (status, sessions, replication) = tokio::join!(
            self.fetch
                .typed::<NodeStatus>(&addr, "/admin/v1/status", None),
            self.fetch.json(&addr, &sessions, None),
            self.fetch
                .typed::<ReplicationView>(&addr, &replication, None),
        );
        NodeAnswers {
            status,
            sessions,
            replication,
        }
    }

    /// Where node `backend` answers: the LB's `admin` of it, else the
    /// directory.
    fn admin_of(&self, backend: &BackendView) -> Option<HostPort> {
        backend
            .admin
            .as_deref()
            .and_then(|a| a.parse().ok())
            .or_else(|| self.directory.get(&backend.id))
    }

    /// Every backend of the LB's `list` (`GET /admin/v1/backends`), in
    /// table order, with its node's answers.
    pub async fn gather(self: &Arc<Self>, list: &[BackendView]) -> Vec<Value> {
        let admins: Vec<Option<HostPort>> = list.iter().map(|b| self.admin_of(b)).collect();
        let mut asks = JoinSet::new();
        for (i, admin) in admins.iter().enumerate() {
            if let Some(addr) = admin.clone() {
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
            .zip(admins)
            .zip(answers)
            .map(|((b, admin), a)| node_json(b, admin, a))
            .collect()
    }
}

fn node_json(b: &BackendView, admin: Option<HostPort>, answers: Option<NodeAnswers>) -> Value {
    let mut lb = json!(b);
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
            // The page walks these: only a list of objects goes on to it.
            let sessions = match a
                .sessions
                .ok()
                .and_then(|mut v| v.get_mut("sessions").map(Value::take))
            {
                Some(Value::Array(list)) => {
                    Value::Array(list.into_iter().filter(Value::is_object).collect())
                }
                _ => Value::Null,
            };
            // Typed (the contract's shape, or nothing): 404, the node does
            // not replicate; anything else, unknown.
            let replication = a.replication.map_or(Value::Null, |r| json!(r));
            (
                json!(reachable),
                json!(error),
                a.status.map_or(Value::Null, |s| json!(s)),
                sessions,
                replication,
            )
        }
    };
    json!({
        "id": b.id,
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
    use crate::fetch::TIMEOUT as NODE_TIMEOUT;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A backend as the LB's `GET /admin/v1/backends` lists it.
    fn backend(id: &str) -> BackendView {
        BackendView {
            id: id.into(),
            addr: "127.0.0.1:1".into(),
            state: sessionlab_wire::lb_admin::BackendState::Up,
            draining: false,
            health_history: vec![true],
            admin: None,
            ..Default::default()
        }
    }

    /// A fake node: answers `/admin/v1/status` with `status`, the other
    /// views with `body` (or never, if `body` is None).
    async fn fake_node(body: Option<&'static str>) -> SocketAddr {
        fake_node_with(r#"{"node_id":"node-1"}"#, body).await
    }

    async fn fake_node_with(status: &'static str, body: Option<&'static str>) -> SocketAddr {
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
                    let (code, body) = if path.starts_with("GET /admin/v1/replication") {
                        ("404 Not Found", "{}")
                    } else if path.starts_with("GET /admin/v1/status") {
                        ("200 OK", status)
                    } else {
                        ("200 OK", body)
                    };
                    let resp = format!(
                        "HTTP/1.1 {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
        let ok = fake_node(Some(r#"{"sessions":[{"id_prefix":"abc123"}]}"#)).await;
        let hung = fake_node(None).await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap() // closed when `l` drops at the end of this block
        };
        view.directory.set("node-1", ok.into()).unwrap();
        view.directory.set("node-2", hung.into()).unwrap();
        view.directory.set("node-3", dead.into()).unwrap();
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
        assert_eq!(nodes[0]["lb"]["health_history"], Value::Null, "left out");
        assert_eq!(nodes[0]["admin_addr"], ok.to_string());

        assert_eq!(nodes[1]["reachable"], false);
        assert!(nodes[1]["error"].as_str().unwrap().contains("no answer"));
        assert_eq!(nodes[2]["reachable"], false);
        assert!(nodes[2]["error"].as_str().unwrap().contains("unreachable"));
        // No admin address: nothing asked, nothing claimed.
        assert_eq!(nodes[3]["reachable"], Value::Null);
        assert_eq!(nodes[3]["admin_addr"], Value::Null);
    }

    #[tokio::test]
    async fn a_status_of_another_shape_is_named_as_such() {
        let view = Arc::new(ClusterView::default());
        let odd = fake_node_with(r#"{"node_id":7}"#, Some("{}")).await;
        view.directory.set("node-1", odd.into()).unwrap();
        let nodes = view.gather(&[backend("node-1")]).await;
        assert_eq!(nodes[0]["reachable"], false);
        assert!(
            nodes[0]["error"]
                .as_str()
                .unwrap()
                .contains("another shape"),
            "{}",
            nodes[0]
        );
    }

    #[test]
    fn the_directory_is_bounded() {
        let d = NodeDirectory::default();
        let addr: HostPort = "127.0.0.1:9081".parse().unwrap();
        for i in 0..MAX_NODES {
            d.set(&format!("n{i}"), addr.clone()).unwrap();
        }
        assert!(d.set("one-more", addr.clone()).is_err());
        d.set("n0", "127.0.0.1:9999".parse().unwrap()).unwrap();
        assert_eq!(d.get("n0").unwrap().port(), 9999);
        assert_eq!(d.get("unknown"), None);
    }
}
