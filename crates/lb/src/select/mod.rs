//! Selection: which backends may serve a request, first choice first.
//!
//! | file | concept |
//! |---|---|
//! | [`strategy`] | the strategies and the ordered candidate list they all return |
//! | [`ring`] | the consistent-hash ring (virtual nodes) behind `consistent-hash` |
//! | [`maglev`] | the Maglev lookup table behind `maglev` |
//!
//! Why a list and not one backend: failover is then one code path for every
//! strategy (the proxy walks the list), and stickiness is a property of the
//! list's head, so a failed sticky backend is replaced by the next entry
//! without special cases.

pub(crate) mod maglev;
pub(crate) mod ring;
pub(crate) mod strategy;

pub(crate) use strategy::Selector;
pub use strategy::{BalanceFactor, Strategy};

/// The distinct backends among a walk's slot owners, first seen first, at
/// most `wanted`: the candidate order of the ring and of the Maglev table.
fn distinct(owners: impl Iterator<Item = u32>, wanted: usize) -> impl Iterator<Item = usize> {
    let mut seen = smallvec::SmallVec::<[u32; 8]>::new();
    owners
        .filter(move |idx| {
            if seen.contains(idx) {
                false
            } else {
                seen.push(*idx);
                true
            }
        })
        .take(wanted)
        .map(|idx| idx as usize)
}

/// The owner of each of `keys` synthetic session ids, by the owner
/// function `owner` (the tests of the ring and the table).
#[cfg(test)]
fn owners_of(keys: usize, owner: impl Fn(&[u8]) -> usize) -> Vec<usize> {
    (0..keys)
        .map(|k| owner(format!("session-{k}").as_bytes()))
        .collect()
}

/// How many of `keys` synthetic session ids each of `backends` owns.
#[cfg(test)]
fn owner_counts(backends: usize, keys: usize, owner: impl Fn(&[u8]) -> usize) -> Vec<usize> {
    let mut counts = vec![0; backends];
    for o in owners_of(keys, owner) {
        counts[o] += 1;
    }
    counts
}
