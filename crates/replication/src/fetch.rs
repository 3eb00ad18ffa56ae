//! Remote fetch: reading a session this node does not hold from one that
//! does (backup topology).
//!
//! In the backup topology a session lives on its `K + 1` owners only. A
//! sticky load balancer sends a user to the node that created the session,
//! which owns it (the node picks new ids it owns), so reads stay local. But
//! after a failover, a scale-out or with round-robin, a request lands on a
//! node without a copy. That node asks the owners, primary first, over the
//! cluster port:
//!
//! ```text
//! GET /cluster/v1/fetch?id=SESSION_ID      signed like every cluster request
//! 200 {session as JSON}  |  404 {"error": ...}
//! ```
//!
//! Each ask is bounded by [`FETCH_TIMEOUT`]; only owners that are up are
//! asked, so a dead owner costs nothing; the first copy found is the
//! answer. Each ask is counted (`replication_remote_fetches_total{outcome}`:
//! `hit`, `miss`, `error`) and timed (`replication_remote_fetch_seconds`).
//! The fetched copy is not kept: this node is not an owner, and a write it
//! makes goes to the owners (the core's non-owner write path).
//!
//! **Bounded.** Any well-formed id a client makes up is asked of its
//! owners, so at most [`MAX_IN_FLIGHT`] fetches run at once. Past that a
//! read is answered "busy" (outcome `busy`; the node answers 503, the
//! client tries again), not "no such session": a real user must not lose
//! a session because the node was busy, and slow owners cannot pile up
//! requests held for [`FETCH_TIMEOUT`] each.

use std::time::{Duration, Instant};

use sessionlab_session::{Session, SessionId, clock};

use crate::PeerAddr;
use crate::auth;
use crate::runtime::Shared;

/// The path of the fetch endpoint.
pub const FETCH_PATH: &str = "/cluster/v1/fetch";

/// How long one owner may take to answer.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(500);

/// Remote fetches one node runs at once (see the module docs).
pub const MAX_IN_FLIGHT: usize = 256;

/// Too many remote fetches are in flight; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// The session `id` from the first owner (up, primary first) that holds a
/// live copy; `None` if none does.
pub(crate) async fn from_owners(shared: &Shared, id: &SessionId) -> Result<Option<Session>, Busy> {
    let Ok(_permit) = shared.fetches.try_acquire() else {
        shared.metrics.on_remote_fetch("busy", None);
        return Err(Busy);
    };
    let owners: Vec<(String, PeerAddr)> = {
        let r = shared.replica.lock();
        let up: Vec<String> = r
            .peers()
            .into_iter()
            .filter(|p| p.up)
            .map(|p| p.id)
            .collect();
        let addrs = shared.addrs.read();
        r.owners_of(id)
            .into_iter()
            .filter(|o| *o != shared.node_id && up.contains(o))
            .filter_map(|o| addrs.get(&o).cloned().map(|a| (o, a)))
            .collect()
    };
    let path = format!("{FETCH_PATH}?id={}", id.as_str());
    for (owner, addr) in owners {
        let started = Instant::now();
        let (outcome, found) = ask(shared, &addr, &path).await;
        shared
            .metrics
            .on_remote_fetch(outcome, Some(started.elapsed().as_secs_f64()));
        tracing::debug!(node = %shared.node_id, %owner, outcome, "remote fetch");
        if let Some(s) = found.filter(|s| s.id == *id) {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

async fn ask(shared: &Shared, addr: &PeerAddr, path: &str) -> (&'static str, Option<Session>) {
    let signed = auth::sign_request(
        &shared.secret,
        &shared.node_id,
        "GET",
        path,
        b"",
        clock::now_ms(),
    );
    let mut req = shared
        .client
        .get(format!("http://{addr}{path}"))
        .timeout(FETCH_TIMEOUT);
    for (name, value) in signed.pairs() {
        req = req.header(name, value);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(_) => return ("error", None),
    };
    match resp.status().as_u16() {
        200 => {}
        404 => return ("miss", None),
        _ => return ("error", None),
    }
    match crate::transport::read_upto(resp, shared.max_body_bytes).await {
        Some((body, true)) => match serde_json::from_slice(&body) {
            Ok(s) => ("hit", Some(s)),
            Err(_) => ("error", None),
        },
        _ => ("error", None),
    }
}
