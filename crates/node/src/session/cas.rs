//! Lost updates, and replaying a change on a fresh copy.
//!
//! A shared store hands the same session to several nodes at once. Two
//! requests of one user (two tabs, a double click, a retrying client) read
//! version 7 on two nodes, each changes its copy, each writes the whole
//! session back: the second write silently erases the first. That is a
//! *lost update*, the classic weakness of "last write wins on the whole
//! blob". With `--redis-cas on` the store refuses a write whose base version
//! is no longer the stored one ([`StoreError::Conflict`]).
//!
//! A refusal alone would push the problem to the user as an error. But the
//! node knows *what* the request wanted to change, not just the result:
//! [`WebSession::update`](crate::session::websession::WebSession::update) records each
//! change as an [`Op`], a closure over the session data ("add one to the
//! counter", "put 2 apples in the cart"). On a conflict, [`replay`] re-reads
//! the session, applies the same ops to the fresh copy and writes again,
//! up to [`MAX_RETRIES`] times with a short random pause between attempts
//! (so competing writers spread out), and only then gives up with 409. Every
//! increment that was answered 200 is then in the store: the test
//! `concurrent_increments_through_two_nodes_are_all_kept` counts them.
//!
//! A handler whose answer depends on the data (`{"counter": 8}`) registers a
//! [`ReplyBuilder`], so after a replay the answer is rebuilt from the data
//! that was really stored rather than from the stale copy it first saw.
//!
//! Logins and new sessions are never replayed: they write a brand-new id,
//! which cannot conflict.

use std::rc::Rc;
use std::time::Duration;

use actix_web::HttpResponse;
use serde_json::{Map, Value};
use sessionlab_session::PutReceipt;
use sessionlab_session::{Session, SessionId, StoreError, clock};

use crate::error::NodeError;
use crate::state::NodeState;

/// Most re-reads after a conflict before the request gets 409.
pub const MAX_RETRIES: u32 = 8;

/// One recorded change to the session data, replayable on a fresh copy.
pub type Op = Rc<dyn Fn(&mut Map<String, Value>)>;

/// Builds a handler's answer from the session data as finally stored
/// (arguments: the node id, the data). A closure, so it can carry what the
/// request asked for (which counter key).
pub type ReplyBuilder = Rc<dyn Fn(&str, &Map<String, Value>) -> HttpResponse>;

/// A random pause of up to `attempt` milliseconds.
async fn backoff(attempt: u32) {
    let mut b = [0u8; 2];
    let spread = u64::from(attempt.max(1)) * 1000;
    let micros = match getrandom::fill(&mut b) {
        Ok(()) => u64::from(u16::from_le_bytes(b)) % spread,
        Err(_) => spread / 2,
    };
    tokio::time::sleep(Duration::from_micros(micros)).await;
}

/// Re-read session `id`, apply `ops`, write; repeat on conflict (see the
/// module docs). Returns the receipt and the session as stored.
pub async fn replay(
    node: &NodeState,
    id: &SessionId,
    ops: &[Op],
) -> Result<(PutReceipt, Session), NodeError> {
    for attempt in 1..=MAX_RETRIES {
        node.metrics.write_retries.inc();
        backoff(attempt).await;
        // Deleted meanwhile (a logout in another tab): nothing to apply to.
        let Some(mut fresh) = node.store.get(id).await? else {
            break;
        };
        let mut data = fresh.data();
        for op in ops {
            op(&mut data);
        }
        fresh.set_data(&data);
        fresh.last_access_ms = fresh.last_access_ms.max(clock::now_ms());
        match node.store.put(fresh.clone()).await {
            Ok(receipt) => {
                tracing::debug!(sid = id.short(), attempt, "write replayed after a conflict");
                return Ok((receipt, fresh));
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    node.metrics.write_conflicts.inc();
    tracing::info!(
        sid = id.short(),
        "write still conflicting after retries: 409"
    );
    Err(StoreError::Conflict.into())
}
