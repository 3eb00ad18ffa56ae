//! Sending one batch to a peer: HTTP, a compact binary body, signed, on
//! kept-alive connections.
//!
//! A batch is one `POST /cluster/v1/batch` to the peer's cluster listener,
//! its body the [`Batch`] in the binary form of
//! [`codec`](sessionlab_replication_core::codec) (content type
//! [`codec::CONTENT_TYPE`], first byte the encoding's version) and the four
//! signature headers of [`crate::auth`], computed over exactly the bytes
//! sent. An upsert queued for several peers is encoded once, by the first
//! of their batches to be sent. The client is shared: reqwest keeps idle
//! keep-alive connections per peer (`pool_max_idle_per_host`, 90 s idle),
//! and since the replica keeps one batch in flight per peer, one
//! long-lived connection per peer is normally all that is used.
//!
//! **Coalescing under load.** A batch of at least
//! [`ReplicationConfig::coalesce_from`](crate::ReplicationConfig::coalesce_from)
//! messages waits `coalesce_delay` (1 ms) before it is sent. A full-ish
//! batch means writes are streaming in; since the replica emits the next
//! batch only when this one is done, the wait lets the next one carry more.
//! Each request costs the sender far more CPU than a message in it (HTTP
//! client, syscalls, and on loopback the kernel delivering to the peer on
//! the sender's CPU), so under a saturating load this cuts the origin's CPU
//! per write by about half, for about a millisecond of lag. A quiet stream
//! (small batches) is never delayed.
//!
//! Any answer but 2xx, a timeout or a refused connection is a failed send:
//! the replica decides what that means (see [`Replica::on_send_result`]).
//! Injected faults apply here on the way out: a dropped peer's batches fail
//! without leaving the node, and a delay holds every batch back.
//!
//! [`Replica::on_send_result`]: sessionlab_replication_core::Replica::on_send_result

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::CONTENT_TYPE;
use sessionlab_session::clock;

use crate::auth;
use crate::metrics::Direction;
use crate::runtime::Shared;
use sessionlab_replication_core::{Batch, codec};

/// The path batches are posted to.
pub const BATCH_PATH: &str = "/cluster/v1/batch";

/// Last time a refused batch was logged at warn level (to keep a wrong
/// secret from flooding the log at heartbeat rate).
static LAST_REFUSAL_WARNING_MS: AtomicU64 = AtomicU64::new(0);

/// Send `batch` and report the result to the replica.
pub(crate) async fn send(shared: Arc<Shared>, client: reqwest::Client, batch: Batch) {
    let peer = batch.to.clone();
    let seq = batch.seq;
    let messages = batch.messages.len();
    if let Some((from, delay)) = shared.coalesce {
        if messages >= from {
            tokio::time::sleep(delay).await;
        }
    }
    let (ok, bytes) = deliver(&shared, &client, batch).await;
    shared.metrics.on_sent(&peer, messages, bytes, ok);
    shared.with_replica(|r, now| r.on_send_result(&peer, seq, ok, now));
}

async fn deliver(shared: &Shared, client: &reqwest::Client, batch: Batch) -> (bool, usize) {
    let peer = &batch.to;
    if shared.faults.drops(peer) {
        shared.metrics.on_fault_drop(peer, Direction::Sent);
        return (false, 0);
    }
    if let Some(d) = shared.faults.delay() {
        tokio::time::sleep(d).await;
    }
    let Some(url) = shared.batch_urls.read().get(peer).cloned() else {
        return (false, 0);
    };
    let body = codec::encode(&batch);
    let bytes = body.len();
    let signed = auth::sign_request(
        &shared.secret,
        &shared.node_id,
        "POST",
        BATCH_PATH,
        &body,
        clock::now_ms(),
    );
    let mut req = client.post(url).header(CONTENT_TYPE, codec::CONTENT_TYPE);
    for (name, value) in signed.pairs() {
        req = req.header(name, value);
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => (true, bytes),
        Ok(resp) => {
            let status = resp.status();
            if status.is_client_error() {
                let now = clock::now_ms();
                let last = LAST_REFUSAL_WARNING_MS.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= 10_000 {
                    LAST_REFUSAL_WARNING_MS.store(now, Ordering::Relaxed);
                    tracing::warn!(%peer, %status, "peer refused a batch (is the cluster secret the same on every node?)");
                }
            } else {
                tracing::debug!(%peer, %status, "batch not accepted");
            }
            (false, bytes)
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "batch not delivered");
            (false, bytes)
        }
    }
}
