//! `sessionlab status`: one table of what runs and how it is doing.
//!
//! The LB and the dashboard have a row each, then every node (and the
//! redis mode's Redis). Each node row joins three views of a process: whether its pid still runs
//! (the run folder), what the process says about itself (node
//! `/admin/v1/status`: sessions held, peers up), and what the LB thinks of
//! it (`/admin/v1/backends`: up/down, draining). They disagree on purpose in
//! the interesting moments: right after `kill node-2` the pid is gone but
//! the LB still says `up` until its next health check, and during a
//! partition every node is `up` in the LB while its peers count drops.
//!
//! `--json` prints the same rows for scripts and tests.

use std::fmt::Write as _;

use futures::future::join_all;
use serde::Serialize;

use crate::api::{Api, Backends, NodeStatus};
use crate::error::Result;
use crate::faults::drop_set;
use crate::lb::LbKind;
use crate::process::ProcRecord;
use crate::runfolder::{ClusterState, DASHBOARD, RunFolder};

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub process: String,
    pub pid: Option<u32>,
    /// `running` or `stopped`.
    pub state: String,
    pub port: u16,
    /// Cluster port (nodes) or admin port (LB).
    pub admin_port: u16,
    /// `ok`, `degraded` (its store is unreachable), `starting` or `-` (not
    /// answering).
    pub health: String,
    /// The LB's view of this node: `up`, `down`, `draining`, `absent`.
    pub lb: Option<String>,
    pub sessions: Option<u64>,
    pub peers_up: Option<usize>,
    pub peers: Option<usize>,
    /// Peers this node is cut off from by `partition`.
    pub cut_from: Vec<String>,
}

impl Row {
    /// A process that is not a node and has no admin port of its own (the
    /// dashboard, Redis): running or not, answering or not.
    fn plain(name: &str, record: Option<ProcRecord>, alive: bool, port: u16, answers: bool) -> Row {
        Row {
            process: name.into(),
            pid: record.filter(|_| alive).map(|p| p.pid),
            state: if alive { "running" } else { "stopped" }.into(),
            port,
            admin_port: 0,
            health: if answers { "ok" } else { "-" }.into(),
            lb: None,
            sessions: None,
            peers_up: None,
            peers: None,
            cut_from: Vec::new(),
        }
    }
}

/// The whole status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub mode: String,
    /// Which LB runs (`sessionlab`, `haproxy`, `nginx`).
    pub lb_kind: LbKind,
    pub strategy: String,
    pub app_url: String,
    /// The dashboard, if this cluster has one.
    pub dashboard_url: Option<String>,
    /// The LB's admin API.
    pub admin_url: String,
    /// `redis-ha`: the server a quorum of Sentinels names as primary now
    /// (`None` while they do not agree, as during a failover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_primary: Option<String>,
    pub rows: Vec<Row>,
}

/// The rows of a `redis-ha` topology: each server with its own word on its
/// role (`primary`, `replica`; `-` when it does not answer), each Sentinel
/// `ok` when it answers; and the primary the Sentinels name. Blocking
/// (short timeouts): run off the async threads.
fn redis_ha_rows(ha: &crate::redis_ha::HaState) -> (Vec<Row>, Option<String>) {
    let primary = ha.primary().map(|m| m.id.clone());
    let rows = ha
        .members()
        .map(|m| {
            let alive = m.process.is_some_and(|p| p.is_alive());
            let mut row = Row::plain(&m.id, m.process, alive, m.port, false);
            row.health = match alive.then(|| crate::redis_ha::role(m.port)).flatten() {
                Some(crate::redis_ha::Role::Sentinel) => "ok".into(),
                Some(role) => role.name().into(),
                None => "-".into(),
            };
            row
        })
        .collect();
    (rows, primary)
}

async fn node_row(api: &Api, state: &ClusterState, i: usize, lb: Option<&Backends>) -> Row {
    let node = &state.nodes[i];
    let alive = node.process.is_some_and(|p| p.is_alive());
    let cluster = format!("127.0.0.1:{}", node.cluster_port);
    let app = format!("127.0.0.1:{}", node.app_port);
    let (health, status): (String, Option<NodeStatus>) = if alive {
        let (app_ok, cluster_ok, status) = futures::join!(
            api.healthy(&app),
            api.healthy(&cluster),
            api.node_status(&cluster)
        );
        let status = status.ok();
        let degraded = status.as_ref().is_some_and(|s| s.store_problem.is_some());
        let health = match (app_ok, cluster_ok) {
            (true, true) if degraded => "degraded",
            (true, true) => "ok",
            (true, false) => "starting",
            _ => "-",
        };
        (health.to_string(), status)
    } else {
        ("-".to_string(), None)
    };
    let lb_view = lb.map(
        |view| match view.backends.iter().find(|b| b.id == node.id) {
            None => "absent".to_string(),
            Some(b) if b.draining => format!("{} draining", b.state),
            Some(b) => b.state.to_string(),
        },
    );
    Row {
        process: node.id.clone(),
        pid: node.process.filter(|_| alive).map(|p| p.pid),
        state: if alive { "running" } else { "stopped" }.into(),
        port: node.app_port,
        admin_port: node.cluster_port,
        health,
        lb: lb_view,
        sessions: status.as_ref().map(|s| s.sessions),
        peers_up: status
            .as_ref()
            .filter(|_| state.mode.preset().replication)
            .map(|s| s.peers.iter().filter(|p| p.up).count()),
        peers: status
            .as_ref()
            .filter(|_| state.mode.preset().replication)
            .map(|s| s.peers.len()),
        cut_from: drop_set(&state.cuts, &node.id),
    }
}

/// Gathers the status of every process (in parallel).
pub async fn gather(api: &Api, rf: &RunFolder) -> Result<Status> {
    let state = rf.load_required()?;
    let lb_alive = state.lb.process.is_some_and(|p| p.is_alive());
    let admin = format!("127.0.0.1:{}", state.lb.admin_port);
    // The LB's health: its admin /healthz (sessionlab-lb; HAProxy's
    // monitor-uri), or whether it forwards one (nginx has no admin port).
    let health_at = match state.lb.kind {
        LbKind::Nginx => format!("127.0.0.1:{}", state.lb.port),
        _ => admin.clone(),
    };
    let (lb_health, backends) = if lb_alive {
        let (h, b) = futures::join!(
            api.healthy(&health_at),
            crate::lb::backends(api, rf, &state)
        );
        (h, b.ok().flatten())
    } else {
        (false, None)
    };
    let mut rows = vec![Row {
        process: "lb".into(),
        pid: state.lb.process.filter(|_| lb_alive).map(|p| p.pid),
        state: if lb_alive { "running" } else { "stopped" }.into(),
        port: state.lb.port,
        admin_port: match state.lb.kind {
            LbKind::Nginx => 0,
            _ => state.lb.admin_port,
        },
        health: if lb_health { "ok" } else { "-" }.into(),
        lb: None,
        sessions: None,
        peers_up: None,
        peers: None,
        cut_from: Vec::new(),
    }];
    if let Some(d) = &state.dashboard {
        let alive = d.process.is_some_and(|p| p.is_alive());
        let answers = alive && api.healthy(&format!("127.0.0.1:{}", d.port)).await;
        rows.push(Row::plain(DASHBOARD, d.process, alive, d.port, answers));
    }
    let nodes =
        join_all((0..state.nodes.len()).map(|i| node_row(api, &state, i, backends.as_ref()))).await;
    rows.extend(nodes);
    if let Some(r) = &state.redis {
        let alive = r.process.is_some_and(|p| p.is_alive());
        let answers = alive && std::net::TcpStream::connect(("127.0.0.1", r.port)).is_ok();
        rows.push(Row::plain(
            crate::redis::NAME,
            r.process,
            alive,
            r.port,
            answers,
        ));
    }
    let mut redis_primary = None;
    if let Some(ha) = state.redis_ha.clone() {
        let (ha_rows, primary) = tokio::task::spawn_blocking(move || redis_ha_rows(&ha))
            .await
            .map_err(|e| crate::error::LabError::Io {
                what: "asking the Redis servers and Sentinels".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        rows.extend(ha_rows);
        redis_primary = primary;
    }
    Ok(Status {
        redis_primary,
        mode: state.mode.to_string(),
        lb_kind: state.lb.kind,
        strategy: state.mode.preset().lb_strategy.to_string(),
        app_url: format!("http://127.0.0.1:{}/", state.lb.port),
        dashboard_url: state
            .dashboard
            .as_ref()
            .map(|d| format!("http://127.0.0.1:{}/", d.port)),
        admin_url: format!("http://{admin}/"),
        rows,
    })
}

/// The status as a text table.
pub fn render(status: &Status) -> String {
    let dash = || "-".to_string();
    let header = [
        "PROCESS", "PID", "STATE", "PORT", "ADMIN", "HEALTH", "IN LB", "SESSIONS", "PEERS UP",
        "CUT FROM",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &status.rows {
        table.push(vec![
            r.process.clone(),
            r.pid.map_or_else(dash, |p| p.to_string()),
            r.state.clone(),
            r.port.to_string(),
            match r.admin_port {
                0 => dash(),
                p => p.to_string(),
            },
            r.health.clone(),
            r.lb.clone().unwrap_or_else(dash),
            r.sessions.map_or_else(dash, |s| s.to_string()),
            match (r.peers_up, r.peers) {
                (Some(up), Some(all)) => format!("{up}/{all}"),
                _ => dash(),
            },
            if r.cut_from.is_empty() {
                dash()
            } else {
                r.cut_from.join(",")
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let dashboard = status
        .dashboard_url
        .as_ref()
        .map_or_else(String::new, |d| format!(", dashboard {d}"));
    let lb = match status.lb_kind {
        LbKind::Sessionlab => status.strategy.clone(),
        kind => format!("{kind}, {}", status.strategy),
    };
    let admin = match status.lb_kind {
        LbKind::Sessionlab => format!("LB admin {}", status.admin_url),
        LbKind::Haproxy => format!("HAProxy stats {}", status.admin_url),
        LbKind::Nginx => "nginx has no admin API (IN LB: not known)".to_string(),
    };
    let mut out = format!(
        "mode {} (LB {lb}), app {}{dashboard}, {admin}\n",
        status.mode, status.app_url
    );
    if status.mode == crate::preset::Mode::RedisHa.name() {
        let primary = status.redis_primary.as_deref().unwrap_or(
            "none agreed on by the Sentinels (a failover is under way, or too few Sentinels run)",
        );
        let _ = writeln!(out, "redis primary: {primary}");
    }
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_aligns_columns_and_shows_missing_values_as_dashes() {
        let status = Status {
            mode: "sticky-replicated".into(),
            lb_kind: LbKind::Sessionlab,
            strategy: "sticky-cookie".into(),
            app_url: "http://127.0.0.1:8080/".into(),
            dashboard_url: Some("http://127.0.0.1:8079/".into()),
            admin_url: "http://127.0.0.1:8078/".into(),
            redis_primary: None,
            rows: vec![
                Row {
                    process: "lb".into(),
                    pid: Some(10),
                    state: "running".into(),
                    port: 8080,
                    admin_port: 8078,
                    health: "ok".into(),
                    lb: None,
                    sessions: None,
                    peers_up: None,
                    peers: None,
                    cut_from: vec![],
                },
                Row {
                    process: "node-1".into(),
                    pid: None,
                    state: "stopped".into(),
                    port: 8081,
                    admin_port: 9081,
                    health: "-".into(),
                    lb: Some("down".into()),
                    sessions: Some(3),
                    peers_up: Some(1),
                    peers: Some(2),
                    cut_from: vec!["node-2".into(), "node-3".into()],
                },
            ],
        };
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "mode sticky-replicated (LB sticky-cookie), app http://127.0.0.1:8080/, \
             dashboard http://127.0.0.1:8079/, LB admin http://127.0.0.1:8078/"
        );
        assert_eq!(
            lines[1],
            "PROCESS  PID  STATE    PORT  ADMIN  HEALTH  IN LB  SESSIONS  PEERS UP  CUT FROM"
        );
        assert_eq!(
            lines[2],
            "lb       10   running  8080  8078   ok      -      -         -         -"
        );
        assert_eq!(
            lines[3],
            "node-1   -    stopped  8081  9081   -       down   3         1/2       node-2,node-3"
        );
    }
}
