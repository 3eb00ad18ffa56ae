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
//!
//! Path parameters are credentials too: in URL tracking mode the session
//! id rides in the path as `;sid=<id>`, and a whole id in this log would be
//! a stolen login for anyone who reads `/admin/v1/requests`. So every
//! `;name=value` keeps only the first [`ID_PREFIX`] characters of its value
//! (`/cart;sid=Xa81kq…`), as the nodes' logs show session ids.

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

/// Characters of a path parameter's value kept in the log (the same
/// prefix the nodes show of a session id).
pub const ID_PREFIX: usize = 6;

/// Appends to a fixed buffer, silently stopping when it is full (on a
/// char boundary, so the buffer stays valid UTF-8).
struct Fill<'b> {
    buf: &'b mut [u8; PATH_MAX],
    len: usize,
}

impl Fill<'_> {
    fn push(&mut self, s: &str) {
        let mut n = s.len().min(PATH_MAX - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
    }
}

/// Copies `path` into `buf` with every path parameter's value cut to its
/// first [`ID_PREFIX`] characters; returns the length written.
fn mask_into(path: &str, buf: &mut [u8; PATH_MAX]) -> usize {
    let mut out = Fill { buf, len: 0 };
    let mut rest = path;
    while let Some(at) = rest.find(';') {
        out.push(&rest[..=at]);
        let after = &rest[at + 1..];
        let end = after.find(['/', ';']).unwrap_or(after.len());
        let (name, value) = match after[..end].split_once('=') {
            Some((name, value)) => (Some(name), value),
            None => (None, &after[..end]),
        };
        if let Some(name) = name {
            out.push(name);
            out.push("=");
        }
        let keep = value
            .char_indices()
            .nth(ID_PREFIX)
            .map_or(value, |(i, _)| &value[..i]);
        out.push(keep);
        if keep.len() < value.len() {
            out.push("…");
        }
        rest = &after[end..];
    }
    out.push(rest);
    out.len
}

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
        let len = mask_into(path, &mut buf);
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
    fn path_parameters_keep_only_an_id_prefix() {
        let id = "Xa81kqZP0f3mLw9sT4vB7nQe2YhR6uJc";
        let path = format!("/cart;sid={id}/add");
        let r = RequestRecord::new(&Method::GET, &path);
        assert_eq!(r.path(), "/cart;sid=Xa81kq…/add");
        assert!(!r.path().contains(id));
        let r = RequestRecord::new(&Method::GET, &format!("/;jsessionid={id};sid={id}"));
        assert_eq!(r.path(), "/;jsessionid=Xa81kq…;sid=Xa81kq…");
        let r = RequestRecord::new(&Method::GET, &format!("/x;{id}"));
        assert_eq!(r.path(), "/x;Xa81kq…", "a bare parameter is masked too");
        let r = RequestRecord::new(&Method::GET, "/a;sid=abc;b=");
        assert_eq!(r.path(), "/a;sid=abc;b=", "short values stay");
        let long = format!("/{};sid={id}", "p".repeat(PATH_MAX));
        let r = RequestRecord::new(&Method::GET, &long);
        assert_eq!(r.path().len(), PATH_MAX);
        assert!(!r.path().contains(';'));
    }

    #[test]
    fn an_empty_log_returns_nothing() {
        assert!(RecentRequests::default().latest(10).is_empty());
    }
}
