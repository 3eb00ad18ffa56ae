//! The properties the cluster signature fuzz target checks.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`) and the
//! coverage-guided target (`fuzz/fuzz_targets/signature.rs`). The function
//! takes arbitrary bytes and panics only when a property fails.

use sessionlab_replication::auth::{
    AuthError, PresentedHeaders, ReplayCache, sign_request, verify_request,
};

const SECRET: &[u8] = b"fuzzing-cluster-secret-0123456789";
const NOW: u64 = 1_700_000_000_000;

/// Target `signature`: the cluster listener's header checks
/// ([`verify_request`]: presence, form, freshness, MAC, replay).
///
/// The input is split at newlines into node, timestamp, nonce, signature,
/// method, path and body (missing lines are absent headers). Properties:
/// no panic; an unsigned guess never verifies; a request signed with the
/// secret verifies once, is a replay the second time, and is refused
/// after any change to the timestamp, nonce, method, path or body (the
/// input's first byte says which and how).
pub fn signature(data: &[u8]) {
    let mut lines = data.splitn(7, |&b| b == b'\n');
    let mut next = || lines.next().map(|l| std::str::from_utf8(l).ok());
    let node = next().flatten();
    let timestamp = next().flatten();
    let nonce = next().flatten();
    let sig = next().flatten();
    let method = next().flatten().unwrap_or("POST");
    let path = next().flatten().unwrap_or("/cluster/v1/batch");
    let body = data.splitn(7, |&b| b == b'\n').nth(6).unwrap_or(b"");
    let cache = ReplayCache::new(4);
    let guess = PresentedHeaders {
        node,
        timestamp,
        nonce,
        signature: sig,
    };
    for now in [NOW, 0, u64::MAX] {
        let r = verify_request(SECRET, method, path, body, &guess, now, &cache);
        assert!(r.is_err(), "a guess verified: {guess:?}");
    }

    let node = node
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .unwrap_or("node-2");
    let signed = sign_request(SECRET, node, method, path, body, NOW);
    let presented = PresentedHeaders {
        node: Some(&signed.node),
        timestamp: Some(&signed.timestamp),
        nonce: Some(&signed.nonce),
        signature: Some(&signed.signature),
    };
    let cache = ReplayCache::new(4);
    let verify = |p: &PresentedHeaders<'_>, method: &str, path: &str, body: &[u8]| {
        verify_request(SECRET, method, path, body, p, NOW + 1, &cache)
    };

    // One change, chosen by the input.
    let pick = data.first().copied().unwrap_or(0);
    let other_ts = (NOW - 1).to_string();
    let mut other_nonce = signed.nonce.clone().into_bytes();
    let at = usize::from(pick) % other_nonce.len();
    other_nonce[at] = if other_nonce[at] == b'0' { b'1' } else { b'0' };
    let other_nonce = String::from_utf8(other_nonce).expect("hex");
    let other_path = format!("{path}x");
    let mut other_body = body.to_vec();
    other_body.push(pick);
    let (p, m, pa, b) = match pick % 5 {
        0 => (
            PresentedHeaders {
                timestamp: Some(&other_ts),
                ..presented
            },
            method,
            path,
            body,
        ),
        1 => (
            PresentedHeaders {
                nonce: Some(&other_nonce),
                ..presented
            },
            method,
            path,
            body,
        ),
        2 => {
            let other = if method.eq_ignore_ascii_case("GET") {
                "PUT"
            } else {
                "GET"
            };
            (presented, other, path, body)
        }
        3 => (presented, method, other_path.as_str(), body),
        _ => (presented, method, path, other_body.as_slice()),
    };
    assert!(verify(&p, m, pa, b).is_err(), "a changed request verified");
    assert_eq!(verify(&presented, method, path, body), Ok(node.to_owned()));
    assert_eq!(
        verify(&presented, method, path, body),
        Err(AuthError::Replay)
    );
}
