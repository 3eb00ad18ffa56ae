//! Replication granularity: what survives when two nodes change one session
//! at the same time (`--replication-granularity session|attribute`).
//!
//! Two browser tabs of one user, behind a round-robin LB, send two requests
//! that land on two nodes. Each node reads the session, changes it and
//! replicates it. If the two writes are concurrent (neither node had the
//! other's write yet), what the cluster keeps depends on what a write *is*:
//!
//! | granularity | a write is | two concurrent writes to different keys | to the same key | like |
//! |---|---|---|---|---|
//! | `session` (default) | the whole session, one version | the later version replaces the whole session: the other tab's change is lost | the later one wins | Tomcat `DeltaManager`/`BackupManager` replicating the whole session; Spring Session `SaveMode.ALWAYS` |
//! | `attribute` | the keys it changed, each stamped with its version | both survive on every replica | the later one wins (the same order as `session`) | Spring Session `SaveMode.ON_SET_ATTRIBUTE` (write only the attributes set); Tomcat `DeltaManager`'s deltas (`DeltaRequest`: set/remove attribute actions) |
//!
//! The messages stay full copies either way ([`crate::Upsert`] carries the
//! whole record, so any one upsert repairs a copy): what changes is what a
//! receiver does with a copy that is not simply newer or older. With
//! `attribute`, every key carries the version of the write that last set it
//! and removed keys leave per-key tombstones (the session crate's
//! `KeyStamps`), and [`merge`] takes, key by key, the entry with the higher
//! stamp. Tomcat sends the deltas themselves; sending full copies with
//! stamps keeps the protocol's property that a lost message is repaired by
//! any later one, which a delta stream does not have.
//!
//! ## The merge
//!
//! For each key in either copy (or removed in either):
//!
//! - the data entry with the higher stamp wins (equal stamps, possible only
//!   after a crash reused a version: the larger JSON text, so every node
//!   chooses the same);
//! - a removal wins over entries stamped no higher than it (deletes of a
//!   key are final against older writes, like session tombstones);
//! - the session's other fields (user, creation, timeouts) come from the copy
//!   with the higher version (ties by a digest of those fields); the
//!   version is the higher one; the last access is the later one.
//!
//! Every step is a maximum over a total order, so the merge is
//! **commutative**, **idempotent** and **associative**: every replica that
//! has seen the same writes holds the same copy, whatever order and however
//! often they arrived (the unit tests below check the three laws; the
//! simulation checks convergence). One bound bends the laws: a session keeps
//! at most `MAX_REMOVED_KEYS` key removals; past it the oldest are forgotten
//! on every node alike, and an old copy that still has such a key can bring
//! it back.
//!
//! A merged copy has the higher of the two versions but content neither
//! had alone, so a version no longer names one content. Anti-entropy
//! therefore offers a copy whenever the peer's version *or* content digest
//! differs (not only when ours is newer): the peer merges it, and a copy it
//! already covers is a no-op (`crate::antientropy`).
//!
//! ## Local writes
//!
//! A local write is stamped by [`stamp_local`] against the copy it
//! replaces (under the store's lock, after the write's base-version check):
//! a key whose value changed gets the new version, an unchanged key keeps
//! its stamp, a key that disappeared gets a removal at the new version.
//! Writes are conditional on their base version, so two requests on one
//! node never race: the second is replayed on the first's result. In
//! attribute mode the condition also covers the stamps: a merge can change
//! the held copy without raising its version (a late, older copy that
//! brings another key's newer value), and a request that read the copy
//! before that merge would otherwise stamp its stale value of the other
//! key as a change and undo the merge. Equal version and stamps mean equal
//! content, so the replica refuses the write when the held stamps differ
//! from the ones read, and the node replays it on the merged copy (the
//! end-to-end test of two tabs found this: one increment in a few
//! thousand).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sessionlab_session::{KeyStamps, Session, Version};

use crate::order;

/// What one replicated write is: the whole session, or the keys it set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Granularity {
    /// The whole session (last writer wins on the whole record).
    #[default]
    Session,
    /// Each key of the data (last writer wins per key; see the module docs).
    Attribute,
}

crate::keyword_enum!(Granularity, "replication granularity", {
    Session => "session",
    Attribute => "attribute",
});

/// Stamp a local write made at `new.version` from the copy `held` it
/// replaces (see the module docs). Also writes the data in its canonical
/// form (keys sorted), so equal content is equal text on every node.
pub fn stamp_local(held: Option<&Session>, new: &mut Session) {
    let data = new.data();
    let mut stamps = KeyStamps::default();
    if let Some(held) = held {
        let old = held.data();
        for (k, v) in &data {
            if old.get(k) == Some(v) {
                stamps.set.insert(k.clone(), held.key_stamp(k).clone());
            }
        }
        stamps.removed = held.stamps.removed.clone();
        for k in old.keys() {
            if !data.contains_key(k) {
                stamps.removed.insert(k.clone(), new.version.clone());
            }
        }
    }
    stamps.normalize(&new.version, |k| data.contains_key(k));
    new.stamps = stamps;
    new.set_data(&data);
}

/// `s` in canonical form: stamps normalized, data text canonical. A copy
/// from a peer is brought to it before it is stored or merged.
pub fn canonical(mut s: Session) -> Session {
    let data = s.data();
    s.stamps.normalize(&s.version, |k| data.contains_key(k));
    s.set_data(&data);
    s
}

/// A digest of the fields the higher version decides (user, creation,
/// timeouts), to order two copies with equal versions.
fn meta_digest(s: &Session) -> u64 {
    let mut meta = s.clone();
    meta.data = Session::new(s.id.clone(), 0, 0, 0).data;
    meta.stamps = KeyStamps::default();
    order::content_digest(&meta)
}

fn meta_order(a: &Session, b: &Session) -> Ordering {
    a.version
        .cmp(&b.version)
        .then_with(|| meta_digest(a).cmp(&meta_digest(b)))
}

/// One side's entry for a key: its stamp and value.
fn entry<'a>(
    s: &'a Session,
    data: &'a Map<String, Value>,
    k: &str,
) -> Option<(&'a Version, &'a Value)> {
    data.get(k).map(|v| (s.key_stamp(k), v))
}

/// A value's JSON text: the tie-break of two values with one stamp.
fn text(v: &Value) -> String {
    v.to_string()
}

/// The winner of two entries for one key: higher stamp, then larger text.
fn newer<'a>(
    a: Option<(&'a Version, &'a Value)>,
    b: Option<(&'a Version, &'a Value)>,
) -> Option<(&'a Version, &'a Value)> {
    match (a, b) {
        (Some(x), Some(y)) => match x.0.cmp(y.0) {
            Ordering::Greater => Some(x),
            Ordering::Less => Some(y),
            Ordering::Equal if x.1 == y.1 => Some(x),
            Ordering::Equal => {
                if text(x.1) >= text(y.1) {
                    Some(x)
                } else {
                    Some(y)
                }
            }
        },
        (x, None) => x,
        (None, y) => y,
    }
}

/// Merge two copies of one session key by key (see the module docs).
/// Both should be canonical ([`canonical`]); the result is.
pub fn merge(a: &Session, b: &Session) -> Session {
    let (da, db) = (a.data(), b.data());
    let winner = if meta_order(a, b) == Ordering::Less {
        b
    } else {
        a
    };
    let mut out = winner.clone();
    out.last_access_ms = a.last_access_ms.max(b.last_access_ms);
    let mut data = Map::new();
    let mut stamps = KeyStamps::default();
    let mut keys: BTreeMap<&str, ()> = BTreeMap::new();
    for k in da
        .keys()
        .chain(db.keys())
        .chain(a.stamps.removed.keys())
        .chain(b.stamps.removed.keys())
    {
        keys.insert(k.as_str(), ());
    }
    for k in keys.into_keys() {
        let best = newer(entry(a, &da, k), entry(b, &db, k));
        let removed = a.stamps.removed.get(k).max(b.stamps.removed.get(k));
        match (best, removed) {
            (Some((stamp, _)), Some(r)) if r >= stamp => {
                stamps.removed.insert(k.to_owned(), r.clone());
            }
            (None, Some(r)) => {
                stamps.removed.insert(k.to_owned(), r.clone());
            }
            (Some((stamp, value)), _) => {
                data.insert(k.to_owned(), value.clone());
                stamps.set.insert(k.to_owned(), stamp.clone());
            }
            (None, None) => {}
        }
    }
    stamps.normalize(&out.version, |k| data.contains_key(k));
    out.stamps = stamps;
    out.set_data(&data);
    out
}

/// What applying `incoming` to `held` under attribute granularity does:
/// `None` if `held` already covers it (nothing to store), or the merged
/// copy and whether it is simply `incoming` (an overwrite) or a mix of both.
pub fn merge_into(held: &Session, incoming: &Session) -> Option<(Session, bool)> {
    let merged = merge(held, incoming);
    let same_as = |s: &Session| {
        let mut m = merged.clone();
        m.last_access_ms = s.last_access_ms;
        m == *s
    };
    if same_as(held) {
        return None;
    }
    let overwrite = same_as(incoming);
    Some((merged, overwrite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ids::id;

    fn base() -> Session {
        let mut s = Session::new(id('a'), 1_000, 60_000, 600_000);
        s.version = Version::new(1, "node-1");
        let mut d = Map::new();
        d.insert("tab-1".into(), Value::from(0));
        d.insert("tab-2".into(), Value::from(0));
        s.set_data(&d);
        canonical(s)
    }

    /// A local write on `node` at `lamport` from `from`, changing `key`
    /// (`None`: removing it).
    fn write(from: &Session, node: &str, lamport: u64, key: &str, value: Option<i64>) -> Session {
        let mut s = from.clone();
        let mut d = s.data();
        match value {
            Some(v) => {
                d.insert(key.into(), Value::from(v));
            }
            None => {
                d.remove(key);
            }
        }
        s.set_data(&d);
        s.version = Version::new(lamport, node);
        s.last_access_ms += lamport;
        stamp_local(Some(from), &mut s);
        s
    }

    /// `from` with `key` set to `v` in its data, nothing else changed (what
    /// a request handler hands the replica to write).
    fn with_value(from: &Session, key: &str, v: i64) -> Session {
        let mut s = from.clone();
        let mut d = s.data();
        d.insert(key.into(), Value::from(v));
        s.set_data(&d);
        s
    }

    fn value(s: &Session, k: &str) -> Option<Value> {
        s.data().get(k).cloned()
    }

    #[test]
    fn concurrent_writes_to_different_keys_both_survive() {
        let b = base();
        let one = write(&b, "node-1", 2, "tab-1", Some(1));
        let two = write(&b, "node-2", 2, "tab-2", Some(1));
        let m = merge(&one, &two);
        assert_eq!(value(&m, "tab-1"), Some(1.into()));
        assert_eq!(value(&m, "tab-2"), Some(1.into()));
        assert_eq!(m.version, Version::new(2, "node-2"));
        // tab-1 was set by 2@node-1, below the merged version: an explicit stamp.
        assert_eq!(m.key_stamp("tab-1"), &Version::new(2, "node-1"));
        assert_eq!(m.key_stamp("tab-2"), &Version::new(2, "node-2"));
        assert_eq!(m, merge(&two, &one));
        assert_eq!(merge_into(&one, &two).map(|(_, o)| o), Some(false));
        assert_eq!(merge_into(&m, &one), None, "already covered");
    }

    #[test]
    fn the_same_key_is_last_writer_wins_and_removals_are_final_against_older_writes() {
        let b = base();
        let one = write(&b, "node-1", 2, "tab-1", Some(10));
        let two = write(&b, "node-2", 2, "tab-1", Some(20));
        assert_eq!(value(&merge(&one, &two), "tab-1"), Some(20.into()));
        let removed = write(&b, "node-1", 3, "tab-2", None);
        let older = write(&b, "node-3", 2, "tab-2", Some(5));
        let m = merge(&removed, &older);
        assert_eq!(value(&m, "tab-2"), None);
        assert_eq!(
            m.stamps.removed.get("tab-2"),
            Some(&Version::new(3, "node-1"))
        );
        // Set again by a later write: the removal is superseded.
        let again = write(&m, "node-2", 4, "tab-2", Some(7));
        let m2 = merge(&again, &removed);
        assert_eq!(value(&m2, "tab-2"), Some(7.into()));
        assert!(m2.stamps.removed.is_empty());
        // A whole-session-style newer copy of one key replaces it outright.
        let newer = write(&one, "node-1", 5, "tab-1", Some(11));
        assert_eq!(merge_into(&one, &newer).map(|(_, o)| o), Some(true));
    }

    #[test]
    fn unchanged_keys_keep_their_stamps_and_one_writer_carries_none() {
        let b = base();
        assert!(b.stamps.is_empty());
        let one = write(&b, "node-1", 2, "tab-1", Some(1));
        assert_eq!(one.key_stamp("tab-2"), &Version::new(1, "node-1"));
        assert_eq!(one.key_stamp("tab-1"), &Version::new(2, "node-1"));
        let both = write(&one, "node-1", 3, "tab-2", Some(1));
        assert_eq!(both.key_stamp("tab-1"), &Version::new(2, "node-1"));
        let all = write(
            &write(&both, "node-1", 4, "tab-1", Some(2)),
            "node-1",
            5,
            "tab-2",
            Some(2),
        );
        let mut d = all.data();
        d.insert("tab-1".into(), Value::from(3));
        d.insert("tab-2".into(), Value::from(3));
        let mut w = all.clone();
        w.set_data(&d);
        w.version = Version::new(6, "node-1");
        stamp_local(Some(&all), &mut w);
        assert!(w.stamps.is_empty(), "every key set by the last write");
    }

    /// Copies made by a small random history of writes on three nodes from
    /// one base, each node writing from what it has merged so far.
    fn histories(seed: u64) -> Vec<Session> {
        let mut rng = crate::sim::Rng::new(seed);
        let b = base();
        let mut held = [b.clone(), b.clone(), b];
        let mut out = Vec::new();
        let keys = ["tab-1", "tab-2", "cart", "tab-3"];
        for lamport in 2..14 {
            let n = rng.range(0, 2) as usize;
            if rng.chance(0.4) {
                let m = rng.range(0, 2) as usize;
                held[n] = merge(&held[n], &held[m]);
            }
            let key = keys[rng.range(0, 3) as usize];
            let v = (!rng.chance(0.2)).then(|| rng.range(0, 9) as i64);
            held[n] = write(&held[n], &format!("node-{}", n + 1), lamport, key, v);
            out.push(held[n].clone());
        }
        out
    }

    #[test]
    fn the_merge_is_commutative_idempotent_and_associative() {
        for seed in 0..200 {
            let copies = histories(seed);
            for a in &copies {
                assert_eq!(merge(a, a), *a, "idempotent (seed {seed})");
                for b in &copies {
                    let ab = merge(a, b);
                    assert_eq!(ab, merge(b, a), "commutative (seed {seed})");
                    assert_eq!(merge(&ab, b), ab, "idempotent on the result (seed {seed})");
                    for c in copies.iter().step_by(3) {
                        assert_eq!(
                            merge(&ab, c),
                            merge(a, &merge(b, c)),
                            "associative (seed {seed})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_local_write_from_a_copy_a_merge_changed_since_is_refused() {
        use crate::config::ProtocolConfig;
        use crate::message::{Batch, Message};
        use crate::replica::Replica;
        use sessionlab_session::{MemoryStore, MemoryStoreConfig, StoreError};
        use std::sync::Arc;

        let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
        let cfg = ProtocolConfig {
            granularity: Granularity::Attribute,
            ..ProtocolConfig::fast()
        };
        let mut r = Replica::new("node-1", ["node-2".to_owned()], cfg, store.clone(), 1_000);
        let mut s = Session::new(id('a'), 1_000, 60_000, 600_000);
        let mut d = Map::new();
        d.insert("tab-1".into(), Value::from(0));
        d.insert("tab-2".into(), Value::from(0));
        s.set_data(&d);
        r.upsert(s, 1_000).unwrap();
        let first = store.get_raw(&id('a')).unwrap();
        // A peer wrote tab-2 at 4@node-2, from the first copy.
        let theirs = write(&first, "node-2", 4, "tab-2", Some(9));
        // Meanwhile this node wrote tab-1 at 6@node-1.
        store.observe(&Version::new(5, "node-1"));
        let mine = with_value(&first, "tab-1", 1);
        r.upsert(mine, 1_001).unwrap();
        let read = store.get_raw(&id('a')).unwrap();
        assert_eq!(read.version, Version::new(6, "node-1"));
        // The peer's older copy arrives: merged, the version stays 6@node-1.
        let batch = Batch {
            from: "node-2".into(),
            to: "node-1".into(),
            seq: 1,
            sent_ms: 1_002,
            messages: vec![Message::repair(theirs)],
        };
        r.on_batch(batch, 1_002).unwrap();
        let merged = store.get_raw(&id('a')).unwrap();
        assert_eq!(merged.version, read.version);
        assert_eq!(value(&merged, "tab-2"), Some(9.into()));
        // A request that read the copy before the merge changes tab-1 again:
        // refused (the node replays it), or tab-2 would go back to 0.
        let stale = with_value(&read, "tab-1", 2);
        assert!(matches!(r.upsert(stale, 1_003), Err(StoreError::Conflict)));
        let fresh = with_value(&merged, "tab-1", 2);
        r.upsert(fresh, 1_004).unwrap();
        let now = store.get_raw(&id('a')).unwrap();
        assert_eq!(value(&now, "tab-2"), Some(9.into()));
        assert_eq!(value(&now, "tab-1"), Some(2.into()));
    }

    #[test]
    fn granularity_keywords() {
        assert_eq!(
            "attribute".parse::<Granularity>(),
            Ok(Granularity::Attribute)
        );
        assert_eq!(Granularity::Session.to_string(), "session");
        assert_eq!(
            "key".parse::<Granularity>().unwrap_err().to_string(),
            "invalid replication configuration: replication granularity must be session or attribute, not \"key\""
        );
    }
}
