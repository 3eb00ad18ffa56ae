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

/// At most `limit` bytes of a peer's answer body, and whether that was all
/// of it; `None` if reading failed. A peer's answers are not signed (what
/// answers at a member's address may be anything), and a chunked body has
/// no length to check first, so nothing reads one whole before its size is
/// known: reading stops at the limit.
pub(crate) async fn read_upto(
    mut resp: reqwest::Response,
    limit: usize,
) -> Option<(Vec<u8>, bool)> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Some((Vec::new(), false));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Some((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Some((body, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `head` and then `chunks`
    /// chunks of 1 KiB (chunked encoding), and the answer's body as
    /// [`read_upto`] reads it with `limit`.
    async fn answer(head: &'static str, chunks: usize, limit: usize) -> Option<(Vec<u8>, bool)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            sock.write_all(head.as_bytes()).await.unwrap();
            for _ in 0..chunks {
                let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
                if sock.write_all(chunk.as_bytes()).await.is_err() {
                    return; // the reader stopped: what the limit is for
                }
            }
            let _ = sock.write_all(b"0\r\n\r\n").await;
        });
        let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
        let read = read_upto(resp, limit).await;
        server.abort();
        read
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";

    #[tokio::test]
    async fn a_body_is_read_only_up_to_the_limit() {
        // A long chunked body (no length to check first): reading stops at
        // the limit instead of buffering it all.
        let (body, complete) = answer(CHUNKED, 4096, 10_000).await.unwrap();
        assert_eq!((body.len(), complete), (10_000, false));
        // One within the limit is read whole.
        let (body, complete) = answer(CHUNKED, 3, 10_000).await.unwrap();
        assert_eq!((body.len(), complete), (3 * 1024, true));
        // A declared length over the limit is not read at all.
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 50000\r\n\r\n";
        let (body, complete) = answer(head, 0, 10_000).await.unwrap();
        assert_eq!((body.len(), complete), (0, false));
    }
}
