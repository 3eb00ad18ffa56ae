//! Authenticating cluster messages: HMAC signatures, freshness, replays.
//!
//! The cluster port accepts writes to every session on the node. Whoever
//! can send it a batch can log anyone in or out, so every request must
//! prove it comes from a holder of the cluster secret. Four headers carry
//! the proof (the contract every component shares):
//!
//! ```text
//! x-sl-node:      node-1                     who signs (a peer, or `lab`)
//! x-sl-timestamp: 1700000000000              unix ms when it was signed
//! x-sl-nonce:     00112233445566778899aabbccddeeff    16 random bytes, hex
//! x-sl-signature: hex(HMAC-SHA256(secret, "{timestamp}.{nonce}.{METHOD}.{path}.{body}"))
//! ```
//!
//! The receiver checks, in this order, and refuses with 401 and a counter:
//!
//! 1. all four headers are present and well formed (`unsigned`, `malformed`);
//! 2. the timestamp is within 30 s of its own clock (`stale`): a captured
//!    request is useless after half a minute;
//! 3. the signature matches, compared in constant time (`forged`), so the
//!    time to refuse says nothing about how many bytes were right;
//! 4. the nonce was not seen within the window (`replay`): a captured
//!    request cannot be sent again even within the half minute.
//!
//! The replay cache is bounded. When it is full the oldest nonce is
//! forgotten, and the cache remembers that timestamp as its *floor*: any
//! request signed at or before the floor is refused as a possible replay.
//! Legitimate requests are fresh, so they are never near the floor; only a
//! flood of valid requests could raise it, and those need the secret.
//!
//! Nothing here knows about HTTP frameworks: inputs are the method, the
//! path (with its query string, if any), the body bytes, the secret and the
//! header values. The signature itself (the headers, the MAC and its
//! constant-time check) is the contract every component shares and lives
//! in [`sessionlab_wire::signer`]; this module adds the server's checks.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;
pub use sessionlab_wire::signer::{
    HEADER_NODE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, MIN_SECRET_LEN, SignedHeaders,
    sign_request, signature,
};
use sessionlab_wire::signer::{NONCE_BYTES, SIGNATURE_BYTES, SignedRequest};

/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_SKEW_MS: u64 = 30_000;
/// Nonces remembered by default (about 4 MB at most).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

const MAX_NODE_LEN: usize = 64;

/// The header values as a request presented them (`None`: absent, or not
/// valid text).
#[derive(Debug, Clone, Copy, Default)]
pub struct PresentedHeaders<'a> {
    pub node: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a request was refused (always HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    Unsigned(&'static str),
    #[error("malformed header {0}")]
    Malformed(&'static str),
    #[error("timestamp is {skew_ms} ms away from this node's clock (limit {MAX_SKEW_MS} ms)")]
    Stale { skew_ms: u64 },
    #[error("signature does not match")]
    Forged,
    #[error("nonce already used")]
    Replay,
}

impl AuthError {
    /// The metric label of the refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unsigned(_) => "unsigned",
            AuthError::Malformed(_) => "malformed",
            AuthError::Stale { .. } => "stale",
            AuthError::Forged => "forged",
            AuthError::Replay => "replay",
        }
    }
}

/// The headers of a request that passed [`check_headers`]: present, well
/// formed and fresh. Only such a request's body is worth reading.
#[derive(Debug, Clone)]
pub struct CheckedHeaders {
    node: String,
    ts: u64,
    nonce: [u8; NONCE_BYTES],
    /// The nonce as presented: the signature covers this text.
    nonce_text: String,
    signature: [u8; SIGNATURE_BYTES],
}

impl CheckedHeaders {
    /// The node that claims to have signed (not proven until
    /// [`verify_body`]).
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// Steps 1 and 2 of the module docs, which need no body: all four headers
/// present and well formed, the timestamp fresh. The listener runs this
/// before it reads a byte of the body, so an unsigned or stale request
/// costs it nothing but its headers.
pub fn check_headers(
    headers: &PresentedHeaders<'_>,
    now_ms: u64,
) -> Result<CheckedHeaders, AuthError> {
    let node = headers.node.ok_or(AuthError::Unsigned(HEADER_NODE))?;
    let timestamp = headers
        .timestamp
        .ok_or(AuthError::Unsigned(HEADER_TIMESTAMP))?;
    let nonce = headers.nonce.ok_or(AuthError::Unsigned(HEADER_NONCE))?;
    let sig = headers
        .signature
        .ok_or(AuthError::Unsigned(HEADER_SIGNATURE))?;

    if node.is_empty() || node.len() > MAX_NODE_LEN {
        return Err(AuthError::Malformed(HEADER_NODE));
    }
    if timestamp.is_empty()
        || timestamp.len() > 20
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(AuthError::Malformed(HEADER_TIMESTAMP));
    }
    let ts: u64 = timestamp
        .parse()
        .map_err(|_| AuthError::Malformed(HEADER_TIMESTAMP))?;
    let mut nonce_bytes = [0u8; NONCE_BYTES];
    hex::decode_to_slice(nonce, &mut nonce_bytes)
        .map_err(|_| AuthError::Malformed(HEADER_NONCE))?;
    let mut sig_bytes = [0u8; SIGNATURE_BYTES];
    hex::decode_to_slice(sig, &mut sig_bytes)
        .map_err(|_| AuthError::Malformed(HEADER_SIGNATURE))?;

    let skew_ms = now_ms.abs_diff(ts);
    if skew_ms > MAX_SKEW_MS {
        return Err(AuthError::Stale { skew_ms });
    }
    Ok(CheckedHeaders {
        node: node.to_owned(),
        ts,
        nonce: nonce_bytes,
        nonce_text: nonce.to_owned(),
        signature: sig_bytes,
    })
}

/// Steps 3 and 4, once the (bounded) body is read: the signature over it
/// matches, in constant time, and the nonce is new. Returns the signer.
pub fn verify_body(
    secret: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
    checked: CheckedHeaders,
    now_ms: u64,
    replays: &ReplayCache,
) -> Result<String, AuthError> {
    // Compared in constant time.
    let request = SignedRequest {
        timestamp_ms: checked.ts,
        nonce: &checked.nonce_text,
        method,
        path,
        body,
    };
    if !request.verify(secret, &checked.signature) {
        return Err(AuthError::Forged);
    }
    replays.check_and_insert(checked.nonce, checked.ts, now_ms)?;
    Ok(checked.node)
}

/// Check a request's signature, freshness and nonce (see the module docs):
/// [`check_headers`] then [`verify_body`]. Returns the signer's node name.
pub fn verify_request(
    secret: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
    headers: &PresentedHeaders<'_>,
    now_ms: u64,
    replays: &ReplayCache,
) -> Result<String, AuthError> {
    let checked = check_headers(headers, now_ms)?;
    verify_body(secret, method, path, body, checked, now_ms, replays)
}

/// Nonces seen within the freshness window; bounded (see the module docs).
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Replays>,
}

#[derive(Debug)]
struct Replays {
    capacity: usize,
    seen: HashMap<[u8; NONCE_BYTES], u64>,
    by_time: BTreeSet<(u64, [u8; NONCE_BYTES])>,
    /// Requests signed at or before this are refused.
    floor_ms: u64,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            inner: Mutex::new(Replays {
                capacity: capacity.max(1),
                seen: HashMap::new(),
                by_time: BTreeSet::new(),
                floor_ms: 0,
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_and_insert(
        &self,
        nonce: [u8; NONCE_BYTES],
        ts: u64,
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let mut r = self.inner.lock();
        // Forget nonces too old to pass the freshness check anyway.
        let horizon = now_ms.saturating_sub(MAX_SKEW_MS);
        while let Some(&(t, n)) = r.by_time.first() {
            if t >= horizon {
                break;
            }
            r.by_time.pop_first();
            r.seen.remove(&n);
        }
        if ts <= r.floor_ms || r.seen.contains_key(&nonce) {
            return Err(AuthError::Replay);
        }
        while r.seen.len() >= r.capacity {
            let Some((t, n)) = r.by_time.pop_first() else {
                break;
            };
            r.seen.remove(&n);
            r.floor_ms = r.floor_ms.max(t);
        }
        r.seen.insert(nonce, ts);
        r.by_time.insert((ts, nonce));
        Ok(())
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(DEFAULT_REPLAY_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000_000;

    fn presented(h: &SignedHeaders) -> PresentedHeaders<'_> {
        PresentedHeaders {
            node: Some(&h.node),
            timestamp: Some(&h.timestamp),
            nonce: Some(&h.nonce),
            signature: Some(&h.signature),
        }
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let cache = ReplayCache::new(10);
        let h = sign_request(SECRET, "node-1", "POST", "/cluster/v1/batch", b"{}", NOW);
        let ok = verify_request(
            SECRET,
            "POST",
            "/cluster/v1/batch",
            b"{}",
            &presented(&h),
            NOW + 5,
            &cache,
        );
        assert_eq!(ok, Ok("node-1".to_owned()));
        let again = verify_request(
            SECRET,
            "POST",
            "/cluster/v1/batch",
            b"{}",
            &presented(&h),
            NOW + 6,
            &cache,
        );
        assert_eq!(again, Err(AuthError::Replay));
    }

    #[test]
    fn forged_stale_unsigned_and_malformed_requests_are_refused() {
        let cache = ReplayCache::new(10);
        let h = sign_request(SECRET, "node-1", "POST", "/p", b"body", NOW);
        let v = |secret: &[u8], body: &[u8], p: &PresentedHeaders<'_>, now| {
            verify_request(secret, "POST", "/p", body, p, now, &cache)
        };
        assert_eq!(
            v(SECRET, b"bodY", &presented(&h), NOW),
            Err(AuthError::Forged)
        );
        assert_eq!(
            v(
                b"another secret of thirty-two by",
                b"body",
                &presented(&h),
                NOW
            ),
            Err(AuthError::Forged)
        );
        assert_eq!(
            v(SECRET, b"body", &presented(&h), NOW + MAX_SKEW_MS + 1),
            Err(AuthError::Stale {
                skew_ms: MAX_SKEW_MS + 1
            })
        );
        let mut missing = presented(&h);
        missing.signature = None;
        assert_eq!(
            v(SECRET, b"body", &missing, NOW),
            Err(AuthError::Unsigned(HEADER_SIGNATURE))
        );
        let mut bad = presented(&h);
        bad.nonce = Some("zz");
        assert_eq!(
            v(SECRET, b"body", &bad, NOW),
            Err(AuthError::Malformed(HEADER_NONCE))
        );
        bad = presented(&h);
        bad.timestamp = Some("-5");
        assert_eq!(
            v(SECRET, b"body", &bad, NOW),
            Err(AuthError::Malformed(HEADER_TIMESTAMP))
        );
        // The method is part of what is signed.
        assert_eq!(
            verify_request(SECRET, "GET", "/p", b"body", &presented(&h), NOW, &cache),
            Err(AuthError::Forged)
        );
        // None of the refusals used up the nonce.
        assert_eq!(
            v(SECRET, b"body", &presented(&h), NOW),
            Ok("node-1".to_owned())
        );
    }

    #[test]
    fn a_full_replay_cache_refuses_what_it_had_to_forget() {
        let cache = ReplayCache::new(2);
        let sign = |t| sign_request(SECRET, "n", "POST", "/p", b"", t);
        let (a, b, c) = (sign(NOW), sign(NOW + 1), sign(NOW + 2));
        let v = |h: &SignedHeaders| {
            verify_request(SECRET, "POST", "/p", b"", &presented(h), NOW + 3, &cache)
        };
        assert!(v(&a).is_ok() && v(&b).is_ok() && v(&c).is_ok());
        assert_eq!(cache.len(), 2, "bounded");
        // `a` was forgotten, but it is at the floor: still refused.
        assert_eq!(v(&a), Err(AuthError::Replay));
        assert_eq!(v(&c), Err(AuthError::Replay));
        // Entries older than the window are dropped on the way.
        let fresh = sign(NOW + MAX_SKEW_MS + 10);
        let ok = verify_request(
            SECRET,
            "POST",
            "/p",
            b"",
            &presented(&fresh),
            NOW + MAX_SKEW_MS + 10,
            &cache,
        );
        assert!(ok.is_ok());
        assert_eq!(cache.len(), 1);
    }
}
