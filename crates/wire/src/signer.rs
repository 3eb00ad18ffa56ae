//! The signature on cluster requests: HMAC-SHA256 with the cluster secret.
//!
//! A node's cluster port accepts writes to every session it holds, so every
//! request to it (peer batches, the lab's fault injection) proves it comes
//! from a holder of the cluster secret. Four headers carry the proof:
//!
//! ```text
//! x-sl-node:      node-1                     who signs (a peer, or `lab`)
//! x-sl-timestamp: 1700000000000              unix ms when it was signed
//! x-sl-nonce:     00112233445566778899aabbccddeeff    16 random bytes, hex
//! x-sl-signature: hex(HMAC-SHA256(secret, "{timestamp}.{nonce}.{METHOD}.{path}.{body}"))
//! ```
//!
//! This module computes and checks the MAC ([`SignedRequest`]: its
//! [`signature`](SignedRequest::signature) and the constant-time
//! [`verify`](SignedRequest::verify); [`sign_request`] for a fresh nonce). The receiver's other checks (the
//! headers are well formed, the timestamp is fresh, the nonce was not seen
//! before) belong to the server, which keeps the replay cache: see the
//! replication runtime's `auth` module.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER_NODE: &str = "x-sl-node";
pub const HEADER_TIMESTAMP: &str = "x-sl-timestamp";
pub const HEADER_NONCE: &str = "x-sl-nonce";
pub const HEADER_SIGNATURE: &str = "x-sl-signature";

/// Random bytes in a nonce (sent as 32 hex characters).
pub const NONCE_BYTES: usize = 16;
/// Bytes of a signature (sent as 64 hex characters).
pub const SIGNATURE_BYTES: usize = 32;
/// The shortest cluster secret accepted (`--cluster-secret`).
pub const MIN_SECRET_LEN: usize = 32;

/// The four headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub node: String,
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, ready to set on a request.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_NODE, &self.node),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_NONCE, &self.nonce),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// One request as its signature covers it: the text signed is
/// `"{timestamp_ms}.{nonce}.{METHOD}.{path}."` followed by the body bytes
/// (the method upper-cased; `path` includes the query string, if any).
/// Signing and checking both start from this one value, so the two cannot
/// disagree on what is covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    pub timestamp_ms: u64,
    pub nonce: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

impl SignedRequest<'_> {
    fn mac(&self, secret: &[u8]) -> [u8; SIGNATURE_BYTES] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(
            format!(
                "{}.{}.{}.{}.",
                self.timestamp_ms,
                self.nonce,
                self.method.to_ascii_uppercase(),
                self.path
            )
            .as_bytes(),
        );
        mac.update(self.body);
        mac.finalize().into_bytes().into()
    }

    /// The signature (hex) over this request.
    pub fn signature(&self, secret: &[u8]) -> String {
        hex::encode(self.mac(secret))
    }

    /// Whether `presented` (the decoded signature bytes) is the MAC of this
    /// request. The comparison takes the same time wherever the first wrong
    /// byte is, so the time to refuse tells nothing about how close a
    /// forgery came.
    pub fn verify(&self, secret: &[u8], presented: &[u8; SIGNATURE_BYTES]) -> bool {
        self.mac(secret).ct_eq(presented).into()
    }
}

/// The signature (hex) over one request, given its timestamp and nonce:
/// [`SignedRequest::signature`] with the parts passed one by one.
/// `path` includes the query string, if any.
pub fn signature(
    secret: &[u8],
    timestamp_ms: u64,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    SignedRequest {
        timestamp_ms,
        nonce,
        method,
        path,
        body,
    }
    .signature(secret)
}

/// Sign a request made by `node` at `now_ms`, with a fresh random nonce.
///
/// # Panics
/// Only if the operating system cannot provide randomness.
pub fn sign_request(
    secret: &[u8],
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
) -> SignedHeaders {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).expect("the OS random number generator failed");
    let nonce = hex::encode(nonce);
    SignedHeaders {
        node: node.to_owned(),
        timestamp: now_ms.to_string(),
        signature: signature(secret, now_ms, &nonce, method, path, body),
        nonce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_contract_string() {
        let sig = signature(
            b"key",
            1_700_000_000_000,
            "00112233445566778899aabbccddeeff",
            "POST",
            "/admin/v1/faults",
            br#"{"drop":["node-2"],"delay_ms":0}"#,
        );
        let mut m = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        m.update(br#"1700000000000.00112233445566778899aabbccddeeff.POST./admin/v1/faults.{"drop":["node-2"],"delay_ms":0}"#);
        assert_eq!(sig, hex::encode(m.finalize().into_bytes()));
    }

    #[test]
    fn verify_accepts_only_the_exact_request() {
        let h = sign_request(b"secret", "lab", "post", "/p?x=1", b"body", 42);
        assert_eq!(h.timestamp, "42");
        assert_eq!(h.nonce.len(), 2 * NONCE_BYTES);
        let mut sig = [0u8; SIGNATURE_BYTES];
        hex::decode_to_slice(&h.signature, &mut sig).unwrap();
        let ok = |secret: &[u8], ts, method, path, body: &[u8]| {
            let request = SignedRequest {
                timestamp_ms: ts,
                nonce: &h.nonce,
                method,
                path,
                body,
            };
            request.verify(secret, &sig)
        };
        assert!(ok(b"secret", 42, "POST", "/p?x=1", b"body"));
        assert!(!ok(b"secreT", 42, "POST", "/p?x=1", b"body"));
        assert!(!ok(b"secret", 43, "POST", "/p?x=1", b"body"));
        assert!(!ok(b"secret", 42, "GET", "/p?x=1", b"body"));
        assert!(!ok(b"secret", 42, "POST", "/p?x=2", b"body"));
        assert!(!ok(b"secret", 42, "POST", "/p?x=1", b"bodY"));
        assert_eq!(h.pairs()[3], (HEADER_SIGNATURE, h.signature.as_str()));
    }
}
