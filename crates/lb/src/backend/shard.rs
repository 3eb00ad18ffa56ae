//! Per-thread shards: shared-nothing state for the worker threads.
//!
//! With thread-per-core workers (`server.rs`), a request lives on one
//! thread from start to end. Counters that every request bumps (requests,
//! in-flight, latency, the recent-requests log, the round-robin turn) would
//! still be *shared* if each were a single atomic: every increment from one
//! core steals the cache line from the other, which at tens of thousands of
//! requests a second costs more than the work itself. So each of them is a
//! [`Sharded`] value: one slot per worker thread, each on its own cache
//! line, written only by its thread, and summed (or merged) only when
//! someone reads it: the admin API, `/metrics`, least-conn.

use crate::proxy::server::worker_index;

/// Keeps each shard on its own cache line (128 bytes covers adjacent-line
/// prefetching on x86).
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct Padded<T>(pub T);

/// One `T` per worker thread.
#[derive(Debug)]
pub struct Sharded<T> {
    shards: Box<[Padded<T>]>,
}

impl<T> Sharded<T> {
    pub fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        Sharded {
            shards: (0..count.max(1)).map(|_| Padded(make())).collect(),
        }
    }

    /// The index of this thread's shard.
    pub fn local_index(&self) -> usize {
        worker_index() % self.shards.len()
    }

    /// This thread's shard.
    pub fn local(&self) -> &T {
        &self.shards[self.local_index()].0
    }

    pub fn get(&self, index: usize) -> &T {
        &self.shards[index % self.shards.len()].0
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.shards.iter().map(|p| &p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn shards_are_cache_line_apart_and_sum_up() {
        let s = Sharded::new(3, || AtomicU64::new(0));
        let a = s.get(0) as *const _ as usize;
        let b = s.get(1) as *const _ as usize;
        assert!(b - a >= 128);
        s.local().fetch_add(2, Ordering::Relaxed);
        s.get(2).fetch_add(3, Ordering::Relaxed);
        let total: u64 = s.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 5);
        assert_eq!(s.local_index(), 0, "the test thread is not a worker");
    }
}
