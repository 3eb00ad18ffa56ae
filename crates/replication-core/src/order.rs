//! The order of writes: last writer wins, with a tie-break for collisions.
//!
//! Copies of a session are ordered by their [`Version`] `(lamport, node)`.
//! In a healthy cluster two different writes never share a version: each
//! node's Lamport clock only moves forward, and the node id separates
//! nodes. But the clock lives in memory. A node that crashes and restarts
//! starts its clock again from what it learns while joining, and if the
//! peer it copied from had not yet received its last writes, it can issue
//! the same `(lamport, node)` a second time, for different content. Plain
//! LWW would then keep *whichever copy arrived first* on each node, and the
//! cluster would never converge (the simulation found exactly this).
//!
//! So the order is total over `(version, content digest)`: equal versions
//! are ordered by a deterministic digest of the write's content. Every node
//! makes the same choice, and anti-entropy compares digests too, so such a
//! collision is repaired like any other difference. The last access time is
//! not part of the digest: it is merged separately by maximum. Per-key
//! stamps (attribute granularity, `crate::granularity`) are.

use sessionlab_session::{Session, Version};

/// A deterministic digest of what a write wrote (FNV-1a, 64 bits). Not a
/// security measure: only a tie-break that every node computes the same way.
pub fn content_digest(s: &Session) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    feed(s.user.as_deref().unwrap_or("").as_bytes());
    feed(&[u8::from(s.user.is_some())]);
    feed(s.data.get().as_bytes());
    feed(&s.created_ms.to_le_bytes());
    feed(&s.idle_timeout_ms.to_le_bytes());
    feed(&s.absolute_timeout_ms.to_le_bytes());
    // Per-key stamps (attribute granularity) are content too: two copies
    // with the same data but different stamps merge differently later.
    // Empty in whole-session mode, where the digest is as it always was.
    for (tag, stamps) in [(b's', &s.stamps.set), (b'r', &s.stamps.removed)] {
        for (k, v) in stamps {
            feed(&[tag]);
            feed(k.as_bytes());
            feed(&v.lamport.to_le_bytes());
            feed(v.node.as_bytes());
        }
    }
    h
}

/// Whether a copy with `version` and `digest` beats the `held` copy.
#[cfg(test)]
pub fn beats(version: &Version, digest: u64, held: &Session) -> bool {
    beats_with(version, || digest, held)
}

/// Whether `incoming` beats the `held` copy, the digests computed only when
/// the versions are equal (a collision, rare): applying a copy from a peer
/// costs no pass over its data.
pub fn beats_by(incoming: &Session, held: &Session) -> bool {
    beats_with(&incoming.version, || content_digest(incoming), held)
}

fn beats_with(version: &Version, digest: impl FnOnce() -> u64, held: &Session) -> bool {
    match version.cmp(&held.version) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => digest() > content_digest(held),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_session::SessionId;

    #[test]
    fn equal_versions_are_ordered_by_content_and_last_access_does_not_count() {
        let mut a = Session::new(SessionId::generate(), 0, 10, 10);
        a.version = Version::new(5, "node-1");
        let mut b = a.clone();
        b.user = Some("bob".into());
        assert_ne!(content_digest(&a), content_digest(&b));
        // Exactly one of the two wins, whichever is held.
        assert_ne!(
            beats(&b.version, content_digest(&b), &a),
            beats(&a.version, content_digest(&a), &b)
        );
        let mut a2 = a.clone();
        a2.last_access_ms = 99;
        assert_eq!(content_digest(&a), content_digest(&a2));
        assert!(
            !beats(&a2.version, content_digest(&a2), &a),
            "the same write"
        );
        let newer = Version::new(6, "node-0");
        assert!(beats(&newer, 0, &b));
    }
}
