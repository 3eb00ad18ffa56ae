//! Signing requests to a node's cluster listener.
//!
//! The cluster port accepts only requests signed with the cluster secret, so
//! that nobody who can reach it can inject sessions or cut the network. The
//! lab signs its fault requests (`partition`, `heal`) like a peer would,
//! with the sender name `lab`:
//!
//! ```text
//! x-sl-node:      lab
//! x-sl-timestamp: <unix ms>
//! x-sl-nonce:     <16 random bytes, hex>
//! x-sl-signature: hex(HMAC-SHA256(secret, "{timestamp}.{nonce}.{METHOD}.{path}.{body}"))
//! ```
//!
//! The timestamp lets the node refuse stale requests and the nonce refuses
//! replays within the accepted window.
//
// This follows the cross-component contract byte for byte; when
// `sessionlab_replication::auth::sign_request` lands, this module becomes a
// call to it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{LabError, Result};

/// The sender name the lab signs as.
pub const LAB_NODE: &str = "lab";

/// The four headers of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub node: String,
    pub timestamp_ms: u64,
    pub nonce: String,
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs.
    pub fn pairs(&self) -> [(&'static str, String); 4] {
        [
            ("x-sl-node", self.node.clone()),
            ("x-sl-timestamp", self.timestamp_ms.to_string()),
            ("x-sl-nonce", self.nonce.clone()),
            ("x-sl-signature", self.signature.clone()),
        ]
    }
}

/// The signature over one request, given its timestamp and nonce.
pub fn signature(
    secret: &[u8],
    timestamp_ms: u64,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp_ms}.{nonce}.{method}.{path}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Signs a request now, with a fresh nonce.
pub fn sign(secret: &[u8], method: &str, path: &str, body: &[u8]) -> Result<SignedHeaders> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| LabError::Io {
        what: "reading the OS random generator".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let nonce = hex::encode(nonce);
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(SignedHeaders {
        node: LAB_NODE.to_string(),
        timestamp_ms,
        signature: signature(secret, timestamp_ms, &nonce, method, path, body),
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_answer_for_the_contract_string() {
        // Computed independently: Python's hmac.new(b"key", msg, sha256).
        let sig = signature(
            b"key",
            1_700_000_000_000,
            "00112233445566778899aabbccddeeff",
            "POST",
            "/admin/v1/faults",
            br#"{"drop":["node-2"],"delay_ms":0}"#,
        );
        assert_eq!(
            sig,
            "9ec0c6ddc19975aa2d11755266b9df30aa5928813ecb2bfdf8bbd58ff120984e"
        );
    }

    #[test]
    fn sign_uses_a_fresh_nonce_and_the_lab_name() {
        let a = sign(b"s", "POST", "/admin/v1/faults", b"{}").unwrap();
        let b = sign(b"s", "POST", "/admin/v1/faults", b"{}").unwrap();
        assert_eq!(a.node, "lab");
        assert_eq!(a.nonce.len(), 32);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(
            a.signature,
            signature(
                b"s",
                a.timestamp_ms,
                &a.nonce,
                "POST",
                "/admin/v1/faults",
                b"{}"
            )
        );
    }
}
