//! Maglev hashing: a lookup table instead of a ring.
//!
//! Google's Maglev load balancer (Eisenbud et al., NSDI 2016) keeps a table
//! of `M` slots, `M` a prime much larger than the number of backends. A key
//! goes to `table[hash(key) % M]`: one multiplication-free lookup, however
//! many backends there are, where the ring (`ring.rs`) needs a binary search
//! over `160 · N` points.
//!
//! How the table is filled. Each backend gets its own permutation of the
//! slots, from two hashes of its id: `offset` in `0..M` and `skip` in
//! `1..M`; its `j`-th preference is slot `(offset + j · skip) % M` (every
//! slot exactly once, because `M` is prime). The backends then take turns:
//! each claims its next preferred slot that is still free, until every
//! slot is taken. So each backend holds `M / N` slots, give or take one:
//! the spread is almost perfectly even, which a ring only approaches with
//! many virtual nodes.
//!
//! What a change costs. Adding or removing a backend changes the turns, so
//! a few slots change hands beyond the ideal `1/N`; the paper measures a
//! little more disruption than a ring, and the tests here bound it (about
//! `1/N` plus a few percent at `M = 65,537`). Maglev trades that for the
//! even spread and the constant-time lookup.
//!
//! | | ring (`consistent-hash`) | Maglev (`maglev`) |
//! |---|---|---|
//! | lookup | binary search over `160 · N` points | one array index |
//! | spread over backends | within a few percent | within one slot in `M` |
//! | keys moved when one is added | about `1/(N+1)` | about `1/(N+1)`, a little more |
//! | memory | `160 · N` points | `M` slots (4 bytes each here) |
//!
//! Failover order: the owner first, then the distinct backends met walking
//! the table on from the key's slot. The walk is as stable as the table, so
//! a key whose owner is down always lands on the same second choice.

use super::ring;

/// The table size: a prime, large against any table this LB holds
/// ([`crate::backend::MAX_BACKENDS`] is 1,024: at least 64 slots each), the
/// size the paper uses.
pub const TABLE_SIZE: usize = 65_537;

/// A filled Maglev lookup table.
#[derive(Debug, Clone)]
pub struct Maglev {
    /// Slot -> backend index; empty when there are no backends.
    slots: Vec<u32>,
    backends: usize,
}

impl Maglev {
    /// The table for backends in this order (indices follow the order).
    pub fn new<'a>(ids: impl Iterator<Item = &'a str>) -> Self {
        Self::with_size(ids, TABLE_SIZE)
    }

    /// The table with `size` slots (`size` must be a prime, larger than the
    /// number of backends; the tests use small ones).
    pub fn with_size<'a>(ids: impl Iterator<Item = &'a str>, size: usize) -> Self {
        let m = size as u64;
        // (offset, skip) per backend, from two independent hashes of its id.
        let prefs: Vec<(u64, u64)> = ids
            .map(|id| {
                let offset = ring::hash_seeded(id.as_bytes(), 0x6d61_676c) % m;
                let skip = ring::hash_seeded(id.as_bytes(), 0x736b_6970) % (m - 1) + 1;
                (offset, skip)
            })
            .collect();
        let n = prefs.len();
        if n == 0 {
            return Maglev {
                slots: Vec::new(),
                backends: 0,
            };
        }
        assert!(n < size, "a Maglev table needs more slots than backends");
        const FREE: u32 = u32::MAX;
        let mut slots = vec![FREE; size];
        // next[i]: how far backend i is down its preference list.
        let mut next = vec![0u64; n];
        let mut filled = 0;
        'fill: loop {
            for (i, &(offset, skip)) in prefs.iter().enumerate() {
                let mut slot = ((offset + next[i] * skip) % m) as usize;
                while slots[slot] != FREE {
                    next[i] += 1;
                    slot = ((offset + next[i] * skip) % m) as usize;
                }
                slots[slot] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Maglev { slots, backends: n }
    }

    /// Distinct backend indices, the owner of `key` first, then the others
    /// in the order the table meets them after the key's slot.
    pub fn walk<'t>(&'t self, key: &[u8]) -> impl Iterator<Item = usize> + 't {
        let len = self.slots.len();
        let start = if len == 0 {
            0
        } else {
            (ring::hash(key) % len as u64) as usize
        };
        super::distinct(
            (0..len).map(move |i| self.slots[(start + i) % len]),
            self.backends,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node-{i}")).collect()
    }

    fn table(n: usize) -> Maglev {
        Maglev::new(ids(n).iter().map(String::as_str))
    }

    fn owners(t: &Maglev, keys: usize) -> Vec<usize> {
        super::super::owners_of(keys, |k| t.walk(k).next().unwrap())
    }

    #[test]
    fn an_empty_table_yields_nothing() {
        assert_eq!(table(0).walk(b"x").count(), 0);
    }

    #[test]
    fn every_backend_holds_its_share_of_slots_within_one() {
        for n in [1, 2, 3, 5, 16] {
            let t = table(n);
            let mut held = vec![0usize; n];
            for &s in &t.slots {
                held[s as usize] += 1;
            }
            let (min, max) = (held.iter().min().unwrap(), held.iter().max().unwrap());
            assert!(max - min <= 1, "{n} backends: {held:?}");
        }
    }

    #[test]
    fn the_walk_names_every_backend_once_owner_first_and_is_stable() {
        let t = table(5);
        let order: Vec<usize> = t.walk(b"some-session").collect();
        assert_eq!(order.len(), 5);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        assert_eq!(t.walk(b"some-session").collect::<Vec<_>>(), order);
        // Built again from the same list: the same answers.
        assert_eq!(table(5).walk(b"some-session").collect::<Vec<_>>(), order);
    }

    #[test]
    fn keys_spread_evenly() {
        let t = table(4);
        let counts = super::super::owner_counts(4, 40_000, |k| t.walk(k).next().unwrap());
        for &c in &counts {
            assert!((9_000..11_000).contains(&c), "uneven: {counts:?}");
        }
    }

    /// Disruption: from N to N+1 backends about 1/(N+1) of the keys move,
    /// nearly all of them to the new backend (Maglev moves a few more than
    /// the ideal, between the old backends).
    #[test]
    fn adding_or_removing_a_backend_moves_about_one_in_n_plus_one() {
        for n in [1usize, 3, 4, 8] {
            let keys = 40_000;
            let before = owners(&table(n), keys);
            let after = owners(&table(n + 1), keys);
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            let ideal = keys / (n + 1);
            let slack = keys * 4 / 100;
            assert!(
                moved >= ideal - slack && moved <= ideal + slack,
                "{n} -> {}: moved {moved}, ideal {ideal}",
                n + 1
            );
            let to_new = before
                .iter()
                .zip(&after)
                .filter(|(a, b)| a != b && **b == n)
                .count();
            assert!(
                to_new * 100 >= moved * 90,
                "{n}: {to_new} of {moved} to the new backend"
            );
        }
    }

    #[test]
    fn a_small_prime_table_works_too() {
        let t = Maglev::with_size(ids(3).iter().map(String::as_str), 13);
        assert_eq!(t.slots.len(), 13);
        assert!(t.slots.iter().all(|&s| s < 3));
        assert_eq!(t.walk(b"k").count(), 3);
    }
}
