//! A consistent-hash ring with virtual nodes.
//!
//! Hashing a session id modulo N sends almost every user to a different
//! backend when N changes. A ring does better: each backend is placed at
//! many pseudo-random points ("virtual nodes") on a 64-bit circle, a key is
//! hashed onto the same circle, and it belongs to the first backend point
//! clockwise from it. Adding or removing one backend moves only the keys in
//! the arcs that backend gains or loses, about 1/N of them (Karger et al.,
//! the scheme memcached's ketama and Envoy's ring_hash use).
//!
//! Virtual nodes (160 per backend here, as in ketama) smooth out the arc
//! lengths so each backend gets close to its share.
//!
//! Walking on clockwise past the owner gives the *next* distinct backends:
//! that is the candidate list for failover, and it is stable too (a key
//! whose owner is down always lands on the same second choice).
//!
//! The hash is `sessionlab_wire::hash` (FNV-1a followed by the murmur3
//! 64-bit finaliser): stable across processes and Rust versions (unlike
//! `DefaultHasher`), so two LBs built from the same list agree on where a
//! session lives.

use sessionlab_wire::hash::hash_parts;

/// Points per backend on the ring.
pub const VIRTUAL_NODES: u32 = 160;

#[derive(Debug, Default, Clone)]
pub struct Ring {
    /// (point, backend index), sorted by point.
    points: Vec<(u64, u32)>,
    backends: usize,
}

impl Ring {
    /// Build the ring for backends in this order (indices follow the order).
    pub fn new<'a>(ids: impl Iterator<Item = &'a str>) -> Self {
        let mut points = Vec::new();
        let mut backends = 0;
        for (index, id) in ids.enumerate() {
            backends += 1;
            for vnode in 0..VIRTUAL_NODES {
                let point = hash_parts(&[id.as_bytes(), &vnode.to_le_bytes()]);
                points.push((point, index as u32));
            }
        }
        points.sort_unstable();
        Ring { points, backends }
    }

    /// Distinct backend indices in ring order, starting with the owner of `key`.
    pub fn walk<'r>(&'r self, key: &[u8]) -> impl Iterator<Item = usize> + 'r {
        let start = if self.points.is_empty() {
            0
        } else {
            let h = hash(key);
            self.points.partition_point(|&(p, _)| p < h) % self.points.len()
        };
        let len = self.points.len();
        super::distinct(
            (0..len).map(move |i| self.points[(start + i) % len].1),
            self.backends,
        )
    }
}

pub use sessionlab_wire::hash::{hash, hash_seeded};

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: usize) -> Vec<usize> {
        super::super::owners_of(keys, |k| ring.walk(k).next().unwrap())
    }

    #[test]
    fn empty_ring_yields_nothing() {
        let ring = Ring::new([].into_iter());
        assert_eq!(ring.walk(b"x").count(), 0);
    }

    #[test]
    fn walk_visits_every_backend_once_owner_first() {
        let ring = Ring::new(["a", "b", "c"].into_iter());
        let mut order: Vec<usize> = ring.walk(b"some-session").collect();
        assert_eq!(order.len(), 3);
        assert_eq!(order[0], ring.walk(b"some-session").next().unwrap());
        order.sort();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn keys_spread_evenly_across_backends() {
        let ring = Ring::new(["node-1", "node-2", "node-3"].into_iter());
        let counts = super::super::owner_counts(3, 30_000, |k| ring.walk(k).next().unwrap());
        for &c in &counts {
            assert!((8_000..12_000).contains(&c), "uneven: {counts:?}");
        }
    }

    #[test]
    fn adding_a_backend_moves_about_a_quarter_of_keys() {
        let three = Ring::new(["node-1", "node-2", "node-3"].into_iter());
        let four = Ring::new(["node-1", "node-2", "node-3", "node-4"].into_iter());
        let before = owners(&three, 20_000);
        let after = owners(&four, 20_000);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        // Ideal is 1/4; every moved key must have moved to the new node.
        assert!((3_500..6_500).contains(&moved), "moved {moved}");
        assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == 3));
    }
}
