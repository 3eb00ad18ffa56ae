//! The recent-requests log: the last routing decisions, for people to watch.
//!
//! The admin API (`GET /admin/v1/requests?limit=N`) and the dashboard show
//! what the LB just did with each request: which backend it chose, whether
//! that was a failover (a candidate failed and the next one answered) or a
//! redispatch (the client's sticky backend was gone, so it got a new one).
//! That is the most direct way to *see* stickiness and failover happen.
//!
//! It is a fixed-size ring: the newest entry overwrites the oldest, memory
//! never grows, and recording is a short critical section with no
//! allocation (the path is copied into a fixed inline buffer, truncated;
//! the query string is left out because it can carry tokens).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::backend::MAX_ID_LEN;
use crate::backend::shard::Sharded;

/// How many decisions are kept.
pub const CAPACITY: usize = 1024;
/// Longest path kept per entry, in bytes.
pub const PATH_MAX: usize = 96;

/// One routing decision.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub at: SystemTime,
    pub method: Method,
    path: [u8; PATH_MAX],
    path_len: u8,
    /// The backend id, copied inline (ids are at most 64 bytes).
    backend: [u8; MAX_ID_LEN],
    backend_len: u8,
    pub status: u16,
    pub latency: Duration,
    pub attempts: u8,
    pub redispatch: bool,
    pub error: Option<&'static str>,
}

impl RequestRecord {
    pub fn new(method: &Method, path: &str) -> Self {
        let mut buf = [0u8; PATH_MAX];
        // Truncate on a char boundary so the stored path stays valid UTF-8.
        let mut len = path.len().min(PATH_MAX);
        while !path.is_char_boundary(len) {
            len -= 1;
        }
        buf[..len].copy_from_slice(&path.as_bytes()[..len]);
        RequestRecord {
            at: SystemTime::now(),
            method: method.clone(),
            path: buf,
            path_len: len as u8,
            backend: [0; MAX_ID_LEN],
            backend_len: 0,
            status: 0,
            latency: Duration::ZERO,
            attempts: 0,
            redispatch: false,
            error: None,
        }
    }

    pub fn path(&self) -> &str {
        std::str::from_utf8(&self.path[..self.path_len as usize]).unwrap_or("")
    }

    pub fn set_backend(&mut self, id: &str) {
        let len = id.len().min(MAX_ID_LEN);
        self.backend[..len].copy_from_slice(&id.as_bytes()[..len]);
        self.backend_len = len as u8;
    }

    /// The backend that served the request, if any.
    pub fn backend(&self) -> Option<&str> {
        (self.backend_len > 0)
            .then(|| std::str::from_utf8(&self.backend[..self.backend_len as usize]).unwrap_or(""))
    }

    /// More than one backend was tried.
    pub fn failover(&self) -> bool {
        self.attempts > 1
    }

    pub fn to_json(&self) -> Value {
        let ms = self
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        json!({
            "time_ms": ms,
            "method": self.method.as_str(),
            "path": self.path(),
            "backend": self.backend(),
            "status": self.status,
            "latency_ms": self.latency.as_secs_f64() * 1000.0,
            "attempts": self.attempts,
            "failover": self.failover(),
            "redispatch": self.redispatch,
            "error": self.error,
        })
    }
}

/// The bounded ring of recent decisions, one per worker thread
/// (`shard.rs`), merged by time when read.
#[derive(Debug)]
pub struct RecentRequests {
    rings: Sharded<Mutex<Ring>>,
}

#[derive(Debug)]
struct Ring {
    slots: Vec<Option<RequestRecord>>,
    next: usize,
}

impl Default for RecentRequests {
    fn default() -> Self {
        Self::new(1)
    }
}

impl RecentRequests {
    pub fn new(threads: usize) -> Self {
        RecentRequests {
            rings: Sharded::new(threads, || {
                Mutex::new(Ring {
                    slots: vec![None; CAPACITY],
                    next: 0,
                })
            }),
        }
    }

    pub fn push(&self, record: RequestRecord) {
        let old = {
            let mut ring = self.rings.local().lock();
            let at = ring.next;
            ring.next = (at + 1) % CAPACITY;
            ring.slots[at].replace(record)
        };
        drop(old); // outside the lock
    }

    /// Up to `limit` records, newest first, over all threads.
    pub fn latest(&self, limit: usize) -> Vec<RequestRecord> {
        let limit = CAPACITY.min(limit);
        let mut all: Vec<RequestRecord> = Vec::new();
        for ring in self.rings.iter() {
            let ring = ring.lock();
            all.extend(
                (1..=limit)
                    .map(|back| (ring.next + CAPACITY - back) % CAPACITY)
                    .map_while(|i| ring.slots[i].clone()),
            );
        }
        all.sort_by_key(|r| std::cmp::Reverse(r.at));
        all.truncate(limit);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_first_and_stays_bounded() {
        let recent = RecentRequests::default();
        for i in 0..(CAPACITY + 10) {
            let mut r = RequestRecord::new(&Method::GET, &format!("/{i}"));
            r.status = 200;
            recent.push(r);
        }
        let latest = recent.latest(3);
        let paths: Vec<_> = latest.iter().map(|r| r.path().to_string()).collect();
        let last = CAPACITY + 9;
        assert_eq!(
            paths,
            [
                format!("/{last}"),
                format!("/{}", last - 1),
                format!("/{}", last - 2)
            ]
        );
        assert_eq!(recent.latest(usize::MAX).len(), CAPACITY);
    }

    #[test]
    fn long_paths_are_truncated_on_a_char_boundary() {
        let path = "/".to_string() + &"é".repeat(100);
        let r = RequestRecord::new(&Method::GET, &path);
        assert!(r.path().len() <= PATH_MAX);
        assert!(r.path().starts_with("/é"));
        let json = r.to_json();
        assert_eq!(json["failover"], false);
        assert_eq!(json["method"], "GET");
    }

    #[test]
    fn an_empty_log_returns_nothing() {
        assert!(RecentRequests::default().latest(10).is_empty());
    }
}
