//! Backends: the table of nodes the LB forwards to, and their live state.
//!
//! | file | concept |
//! |---|---|
//! | [`table`] | a backend (id, address, health, counters, pool) and the copy-on-write table |
//! | [`shard`] | per-worker-thread copies of counters, summed when read |
//!
//! Why copy on write: every request reads the table, the admin API rarely
//! changes it. A request takes an immutable snapshot (per thread, no shared
//! lock) and works on it for its whole life; a change builds a new one.

pub(crate) mod shard;
pub(crate) mod table;

pub(crate) use table::{
    Backend, BackendSpec, Backends, InFlight, MAX_ID_LEN, ROUTE_COOKIE, Snapshot, TableError,
    is_valid_id,
};
