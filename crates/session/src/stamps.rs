//! Per-key version stamps: the data model of attribute granularity.
//!
//! A session's [`Version`](crate::Version) says which *write of the whole
//! session* a copy is. That is all whole-session replication needs: the
//! copy with the higher version replaces the other. With attribute
//! granularity (`--replication-granularity attribute`) each key of the
//! session's data also remembers which write last set it, so two copies
//! that each changed a *different* key can be merged key by key instead of
//! one replacing the other (the merge itself is the replication core's
//! `granularity` module).
//!
//! | field | holds | why |
//! |---|---|---|
//! | `set` | key -> version of the write that last set it | only where it differs from the session's `version`: a key written by the last write needs no entry, so a session written by one node carries no stamps at all |
//! | `removed` | key -> version of the write that removed it | a removed key must stay removed when an older copy that still has it arrives (a per-key tombstone) |
//!
//! So the stamp of a key is `set[key]`, or the session's `version` when
//! `set` has no entry ([`Session::key_stamp`]). In whole-session mode both
//! maps stay empty, are not serialized, and every key's stamp is the
//! session's version: the record, its size and its wire form are exactly
//! what they were without stamps.
//!
//! ## Bounds
//!
//! `set` has at most one entry per key of the data, which the per-session
//! byte limit already bounds ([`KeyStamps::normalize`] drops entries for keys
//! not in the data). `removed` is bounded on its own: at most
//! [`MAX_REMOVED_KEYS`] entries and [`MAX_REMOVED_KEY_BYTES`] bytes of key
//! names. Beyond that the oldest removals (lowest versions) are forgotten,
//! always the same ones on every node (a prefix of the removals ordered by
//! version, so the bound does not break the merge's laws). The price of a
//! forgotten removal: a copy that was last written before it and still
//! holds the key can bring the key back. A session removes few keys (a cart
//! item, a flag); 32 recent removals cover what a user does concurrently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::session::Session;
use crate::version::Version;

/// Most per-key tombstones a session keeps.
pub const MAX_REMOVED_KEYS: usize = 32;
/// Most bytes of key names the per-key tombstones of one session hold.
pub const MAX_REMOVED_KEY_BYTES: usize = 2048;

/// The per-key stamps of one session; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStamps {
    /// Keys of the data last set by a write older than the session's version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Version>,
    /// Keys removed, and the write that removed each (bounded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub removed: BTreeMap<String, Version>,
}

impl KeyStamps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Approximate bytes the stamps add to a session (counted by
    /// [`Session::size_bytes`]; 0 when empty).
    pub fn size_bytes(&self) -> usize {
        self.set
            .iter()
            .chain(self.removed.iter())
            .map(|(k, v)| k.len() + v.node.len() + 16)
            .sum()
    }

    /// Bring the stamps to their one canonical form for a session written
    /// at `version` whose data has the keys `has_key` says:
    /// - a `set` entry for a key not in the data, or equal to `version`, goes
    ///   (the key's stamp is then the session's version, as stored);
    /// - a removal of a key the data holds goes (the key was set again);
    /// - the removals are cut to the bounds (see the module docs).
    ///
    /// Two copies with the same content and stamps always normalize to the
    /// same value, so equality and content digests compare what matters.
    pub fn normalize(&mut self, version: &Version, has_key: impl Fn(&str) -> bool) {
        self.set.retain(|k, v| v != version && has_key(k));
        self.removed.retain(|k, _| !has_key(k));
        bound_removed(&mut self.removed);
    }
}

/// Keep the newest removals within [`MAX_REMOVED_KEYS`] and
/// [`MAX_REMOVED_KEY_BYTES`]: the longest prefix, in descending
/// `(version, key)` order, that fits both. A prefix of one total order, so
/// cutting before or after a merge keeps the same entries.
pub fn bound_removed(removed: &mut BTreeMap<String, Version>) {
    let bytes: usize = removed.keys().map(String::len).sum();
    if removed.len() <= MAX_REMOVED_KEYS && bytes <= MAX_REMOVED_KEY_BYTES {
        return;
    }
    let mut order: Vec<(&Version, &String)> = removed.iter().map(|(k, v)| (v, k)).collect();
    order.sort_unstable_by(|a, b| b.cmp(a));
    let mut kept = Vec::new();
    let mut used = 0;
    for (_, key) in order {
        if kept.len() == MAX_REMOVED_KEYS || used + key.len() > MAX_REMOVED_KEY_BYTES {
            break;
        }
        used += key.len();
        kept.push(key.clone());
    }
    removed.retain(|k, _| kept.contains(k));
}

impl Session {
    /// The version of the write that last set `key` (see the module docs).
    pub fn key_stamp(&self, key: &str) -> &Version {
        self.stamps.set.get(key).unwrap_or(&self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;

    #[test]
    fn normalize_drops_what_the_session_version_already_says() {
        let v = Version::new(5, "node-1");
        let mut st = KeyStamps::default();
        st.set.insert("a".into(), Version::new(3, "node-2"));
        st.set.insert("b".into(), v.clone());
        st.set.insert("gone".into(), Version::new(2, "node-2"));
        st.removed.insert("a".into(), Version::new(2, "node-1"));
        st.removed.insert("c".into(), Version::new(4, "node-1"));
        st.normalize(&v, |k| k == "a" || k == "b");
        assert_eq!(
            st.set.keys().collect::<Vec<_>>(),
            ["a"],
            "b is at the session's version, gone is not in the data"
        );
        assert_eq!(st.removed.keys().collect::<Vec<_>>(), ["c"]);
        let mut s = Session::new(SessionId::generate(), 0, 10, 10);
        s.version = v.clone();
        s.stamps = st;
        assert_eq!(s.key_stamp("a"), &Version::new(3, "node-2"));
        assert_eq!(s.key_stamp("b"), &v);
    }

    #[test]
    fn removals_keep_the_newest_within_both_bounds() {
        let mut removed = BTreeMap::new();
        for i in 0..100u64 {
            removed.insert(format!("k{i:03}"), Version::new(i, "node-1"));
        }
        bound_removed(&mut removed);
        assert_eq!(removed.len(), MAX_REMOVED_KEYS);
        assert!(removed.contains_key("k099") && !removed.contains_key("k067"));

        let mut long = BTreeMap::new();
        long.insert("x".repeat(1500), Version::new(9, "node-1"));
        long.insert("y".repeat(1000), Version::new(8, "node-1"));
        long.insert("z".into(), Version::new(7, "node-1"));
        bound_removed(&mut long);
        // A prefix: the 1000-byte one does not fit, so nothing older stays.
        assert_eq!(long.len(), 1);
        assert!(long.contains_key(&"x".repeat(1500)));
    }

    #[test]
    fn empty_stamps_are_not_serialized_and_cost_nothing() {
        let s = Session::new(SessionId::generate(), 0, 10, 10);
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("stamps"), "{json}");
        assert_eq!(s.stamps.size_bytes(), 0);
        let mut t = s.clone();
        t.stamps
            .removed
            .insert("cart".into(), Version::new(1, "node-2"));
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            json.contains(r#""stamps":{"removed":{"cart":{"lamport":1,"node":"node-2"}}}"#),
            "{json}"
        );
        let back: Session = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_ne!(back, s);
    }
}
