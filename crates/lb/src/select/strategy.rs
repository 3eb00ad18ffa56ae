//! Selection: which backends may serve this request, in order.
//!
//! Every strategy answers the same question with the same shape: an
//! *ordered list of candidates*, first choice first. The proxy walks the
//! list until one backend answers (see `proxy.rs`), so failover is one code
//! path for every strategy instead of a special case in each (pingora's
//! `LoadBalancer::select_with` and rust-rpxy's upstream options work the
//! same way).
//!
//! Two kinds of backend can appear in a list:
//!
//! - a **sticky target**: the backend this client is already bound to (by
//!   its `SLROUTE` cookie, its session id's route suffix, or its session
//!   id's place on the hash ring). It is used if it is *up*, even if it is
//!   draining: draining means "no new users", and this is an old one.
//! - **fallbacks**: backends that take new users (up and not draining),
//!   chosen by the base strategy. A client with no affinity gets only these.
//!
//! The strategies:
//!
//! | strategy | first choice | fallbacks |
//! |---|---|---|
//! | `round-robin` | next in turn | the rest, in table order |
//! | `random` | a random backend | the rest, in table order |
//! | `least-conn` | fewest in-flight requests | the rest, in table order |
//! | `sticky-cookie` | the `SLROUTE` backend | the next in table order (no cookie, or its backend is down: round-robin) |
//! | `sticky-route` | the `SLSESSION` route suffix backend | as `sticky-cookie` |
//! | `consistent-hash` | the ring owner of `SLSESSION` | the next owners on the ring (no cookie: round-robin) |
//!
//! What happens to the cookie afterwards (set it, keep it, rewrite it) is
//! decided by the proxy from [`Selection::sticky_target`] and the backend
//! that finally served the request, so a failover rewrites it for free.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http::HeaderMap;
use smallvec::SmallVec;

use crate::backend::shard::Sharded;
use crate::backend::{ROUTE_COOKIE, Snapshot};
use crate::proxy::cookie;
use crate::proxy::error::NoBackend;

/// How the first choice is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    RoundRobin,
    Random,
    LeastConn,
    StickyCookie,
    StickyRoute,
    ConsistentHash,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::Random => "random",
            Strategy::LeastConn => "least-conn",
            Strategy::StickyCookie => "sticky-cookie",
            Strategy::StickyRoute => "sticky-route",
            Strategy::ConsistentHash => "consistent-hash",
        }
    }
}

/// Candidate indices into the snapshot; a few fit inline, no allocation.
pub type Candidates = SmallVec<[usize; 4]>;

/// The outcome of selection for one request.
#[derive(Debug, Default)]
pub struct Selection {
    /// Backends to try, in order (indices into the snapshot).
    pub candidates: Candidates,
    /// The backend the client's affinity points at, if it names a current
    /// backend (whether or not that backend is usable now).
    pub sticky_target: Option<usize>,
    /// The client presented an affinity key (a cookie) at all.
    pub had_affinity: bool,
}

impl Selection {
    /// Why the list is empty.
    pub fn why_empty(snapshot: &Snapshot) -> NoBackend {
        if snapshot.list.is_empty() {
            NoBackend::NoneConfigured
        } else if snapshot.list.iter().all(|b| !b.is_up()) {
            NoBackend::AllDown
        } else {
            NoBackend::AllDraining
        }
    }
}

/// The strategy plus the little state it needs (turn counter, RNG).
#[derive(Debug)]
pub struct Selector {
    strategy: Strategy,
    max_candidates: usize,
    /// The nodes' session cookie (`sticky-route`, `consistent-hash`).
    session_cookie: Box<str>,
    /// One turn counter for all threads, so round-robin is exact.
    turn: AtomicUsize,
    /// Per worker thread (`shard.rs`): random needs no shared order.
    rng: Sharded<AtomicU64>,
}

impl Selector {
    /// `max_candidates` bounds the list: 1 + the number of retries;
    /// `threads` is the number of worker threads.
    pub fn new(strategy: Strategy, max_candidates: usize, threads: usize) -> Self {
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed);
        Selector {
            strategy,
            max_candidates: max_candidates.max(1),
            session_cookie: sessionlab_wire::SESSION_COOKIE.into(),
            turn: AtomicUsize::new(0),
            rng: Sharded::new(threads, || {
                seed = seed.wrapping_mul(0x2545_f491_4f6c_dd1d).wrapping_add(1);
                AtomicU64::new(seed)
            }),
        }
    }

    /// Read the nodes' session cookie under `name` (`--session-cookie`;
    /// the nodes' `--cookie-name`) instead of [`sessionlab_wire::SESSION_COOKIE`].
    pub fn with_session_cookie(mut self, name: &str) -> Self {
        self.session_cookie = name.into();
        self
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Choose candidates for a request with these headers.
    pub fn select(&self, snapshot: &Snapshot, headers: &HeaderMap) -> Selection {
        let mut sel = Selection::default();
        if snapshot.list.is_empty() {
            return sel;
        }
        match self.strategy {
            Strategy::RoundRobin | Strategy::Random | Strategy::LeastConn => {
                self.base(snapshot, &mut sel.candidates);
            }
            Strategy::StickyCookie | Strategy::StickyRoute => {
                let target = if self.strategy == Strategy::StickyCookie {
                    cookie::find(headers, ROUTE_COOKIE)
                } else {
                    cookie::find(headers, &self.session_cookie)
                        .map(|s| sessionlab_wire::route::route_suffix(s).unwrap_or(b""))
                };
                sel.had_affinity = target.is_some();
                sel.sticky_target = target.and_then(|id| snapshot.position(id));
                match sel.sticky_target.filter(|&t| snapshot.list[t].is_up()) {
                    // A sticky hit: fall back in table order after it,
                    // without touching the shared turn counter (the hot
                    // path stays free of shared writes).
                    Some(t) => {
                        sel.candidates.push(t);
                        self.fill_from(snapshot, t + 1, &mut sel.candidates);
                    }
                    // New user or redispatch: round-robin.
                    None => self.fill_round_robin(snapshot, &mut sel.candidates),
                }
            }
            Strategy::ConsistentHash => match cookie::find(headers, &self.session_cookie) {
                Some(session) => {
                    sel.had_affinity = true;
                    let mut walk = snapshot.ring.walk(session);
                    if let Some(owner) = walk.next() {
                        sel.sticky_target = Some(owner);
                        if snapshot.list[owner].is_up() {
                            sel.candidates.push(owner);
                        }
                    }
                    for idx in walk {
                        if sel.candidates.len() >= self.max_candidates {
                            break;
                        }
                        if snapshot.list[idx].takes_new_users() {
                            sel.candidates.push(idx);
                        }
                    }
                }
                None => self.fill_round_robin(snapshot, &mut sel.candidates),
            },
        }
        sel
    }

    /// The non-sticky strategies: first choice, then the rest in table order.
    fn base(&self, snapshot: &Snapshot, out: &mut Candidates) {
        let n = snapshot.list.len();
        match self.strategy {
            Strategy::Random => {
                let start = (self.next_random() % n as u64) as usize;
                self.fill_from(snapshot, start, out);
            }
            Strategy::LeastConn => {
                // Scan from a rotating start so ties are shared out in turn.
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % n;
                let best = (0..n)
                    .map(|i| (start + i) % n)
                    .filter(|&i| snapshot.list[i].takes_new_users())
                    .min_by_key(|&i| snapshot.list[i].in_flight());
                if let Some(best) = best {
                    out.push(best);
                    self.fill_from(snapshot, best + 1, out);
                }
            }
            _ => self.fill_round_robin(snapshot, out),
        }
    }

    fn fill_round_robin(&self, snapshot: &Snapshot, out: &mut Candidates) {
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % snapshot.list.len();
        self.fill_from(snapshot, start, out);
    }

    /// Append backends that take new users, walking the table from `start`,
    /// skipping ones already listed, up to the candidate limit.
    fn fill_from(&self, snapshot: &Snapshot, start: usize, out: &mut Candidates) {
        let n = snapshot.list.len();
        for i in 0..n {
            if out.len() >= self.max_candidates {
                return;
            }
            let idx = (start + i) % n;
            if snapshot.list[idx].takes_new_users() && !out.contains(&idx) {
                out.push(idx);
            }
        }
    }

    /// splitmix64 on an atomic counter: a lock-free, good-enough RNG for
    /// spreading load (not for anything secret).
    fn next_random(&self) -> u64 {
        let mut z = self
            .rng
            .local()
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Backends;
    use crate::health::HealthConfig;
    use http::header::{COOKIE, HeaderValue};
    use std::sync::Arc;

    fn table(n: usize) -> Backends {
        let t = Backends::new(HealthConfig::default());
        for i in 1..=n {
            t.add(format!("node-{i}=127.0.0.1:{}", 8080 + i).parse().unwrap())
                .unwrap();
        }
        t
    }

    fn with_cookie(c: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(c).unwrap());
        h
    }

    fn mark_down(snap: &Snapshot, i: usize) {
        for _ in 0..3 {
            snap.list[i].record_check(false);
        }
        assert!(!snap.list[i].is_up());
    }

    fn first_counts(sel: &Selector, snap: &Snapshot, h: &HeaderMap, n: usize) -> Vec<usize> {
        let mut counts = vec![0; snap.list.len()];
        for _ in 0..n {
            counts[sel.select(snap, h).candidates[0]] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_takes_turns_and_lists_fallbacks() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::RoundRobin, 3, 1);
        let firsts: Vec<usize> = (0..6)
            .map(|_| sel.select(&snap, &HeaderMap::new()).candidates[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(
            sel.select(&snap, &HeaderMap::new()).candidates.as_slice(),
            &[0, 1, 2]
        );
    }

    #[test]
    fn candidate_list_is_bounded_by_retries() {
        let t = table(5);
        let sel = Selector::new(Strategy::RoundRobin, 2, 1);
        assert_eq!(
            sel.select(&t.snapshot(), &HeaderMap::new())
                .candidates
                .len(),
            2
        );
    }

    #[test]
    fn random_spreads_roughly_evenly() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::Random, 3, 1);
        for c in first_counts(&sel, &snap, &HeaderMap::new(), 3_000) {
            assert!((800..1_200).contains(&c), "{c}");
        }
    }

    #[test]
    fn least_conn_prefers_the_idle_backend() {
        let t = table(3);
        let snap = t.snapshot();
        let _busy: Vec<_> = [0, 0, 2].iter().map(|&i| snap.start_request(i)).collect();
        let sel = Selector::new(Strategy::LeastConn, 3, 1);
        assert_eq!(
            first_counts(&sel, &snap, &HeaderMap::new(), 10),
            vec![0, 10, 0]
        );
    }

    #[test]
    fn down_and_draining_backends_get_no_new_users() {
        let t = table(3);
        let snap = t.snapshot();
        mark_down(&snap, 0);
        snap.list[1].set_draining(true);
        for strategy in [Strategy::RoundRobin, Strategy::Random, Strategy::LeastConn] {
            let sel = Selector::new(strategy, 3, 1);
            let s = sel.select(&snap, &HeaderMap::new());
            assert_eq!(s.candidates.as_slice(), &[2], "{strategy:?}");
        }
    }

    #[test]
    fn sticky_cookie_rules() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::StickyCookie, 3, 1);

        // No cookie: round-robin, no target.
        let s = sel.select(&snap, &HeaderMap::new());
        assert_eq!((s.sticky_target, s.had_affinity), (None, false));
        assert_eq!(s.candidates.len(), 3);

        // Valid cookie: that backend first, the others as fallbacks.
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-2"));
        assert_eq!(s.sticky_target, Some(1));
        assert_eq!(s.candidates[0], 1);
        assert_eq!(s.candidates.len(), 3);

        // Invalid cookie: as if none, but remembered as an affinity attempt.
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-99"));
        assert_eq!((s.sticky_target, s.had_affinity), (None, true));

        // Draining target: still first for its existing users...
        snap.list[1].set_draining(true);
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-2"));
        assert_eq!(s.candidates[0], 1);
        assert_eq!(s.candidates.len(), 3);
        // ...but never a fallback for new ones.
        for _ in 0..6 {
            assert!(!sel.select(&snap, &HeaderMap::new()).candidates.contains(&1));
        }

        // Down target: not a candidate, target still known so the cookie is rewritten.
        mark_down(&snap, 1);
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-2"));
        assert_eq!(s.sticky_target, Some(1));
        assert!(!s.candidates.contains(&1));
        assert!(!s.candidates.is_empty());
    }

    #[test]
    fn sticky_route_reads_the_session_suffix() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::StickyRoute, 3, 1);
        let s = sel.select(&snap, &with_cookie("SLSESSION=abc123.node-3"));
        assert_eq!((s.sticky_target, s.candidates[0]), (Some(2), 2));
        let s = sel.select(&snap, &with_cookie("SLSESSION=abc123"));
        assert_eq!((s.sticky_target, s.had_affinity), (None, true));
        // The LB's own cookie means nothing to this strategy.
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-3"));
        assert_eq!(s.sticky_target, None);
    }

    #[test]
    fn sticky_route_reads_the_configured_session_cookie() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::StickyRoute, 3, 1).with_session_cookie("APP");
        let s = sel.select(&snap, &with_cookie("APP=abc123.node-3"));
        assert_eq!((s.sticky_target, s.candidates[0]), (Some(2), 2));
        let s = sel.select(&snap, &with_cookie("SLSESSION=abc123.node-3"));
        assert_eq!(s.sticky_target, None);
    }

    #[test]
    fn consistent_hash_is_stable_and_fails_over_along_the_ring() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::ConsistentHash, 3, 1);
        let h = with_cookie("SLSESSION=user-42");
        let first = sel.select(&snap, &h);
        for _ in 0..10 {
            assert_eq!(sel.select(&snap, &h).candidates, first.candidates);
        }
        let owner = first.candidates[0];
        let second = first.candidates[1];
        mark_down(&snap, owner);
        let s = sel.select(&snap, &h);
        assert_eq!(s.sticky_target, Some(owner));
        assert_eq!(s.candidates[0], second);

        // Many sessions spread over all three.
        let t = table(3);
        let snap = t.snapshot();
        let mut counts = [0; 3];
        for i in 0..3_000 {
            let h = with_cookie(&format!("SLSESSION=s{i}"));
            counts[sel.select(&snap, &h).candidates[0]] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1_300).contains(&c)),
            "{counts:?}"
        );
        // No cookie: round-robin.
        let firsts: Vec<_> = (0..3)
            .map(|_| sel.select(&snap, &HeaderMap::new()).candidates[0])
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2]);
    }

    #[test]
    fn empty_lists_explain_themselves() {
        let t = table(0);
        assert_eq!(
            Selection::why_empty(&t.snapshot()),
            NoBackend::NoneConfigured
        );
        let t = table(2);
        let snap: Arc<Snapshot> = t.snapshot();
        snap.list[0].set_draining(true);
        mark_down(&snap, 1);
        let sel = Selector::new(Strategy::RoundRobin, 3, 1);
        assert!(sel.select(&snap, &HeaderMap::new()).candidates.is_empty());
        assert_eq!(Selection::why_empty(&snap), NoBackend::AllDraining);
        mark_down(&snap, 0);
        assert_eq!(Selection::why_empty(&snap), NoBackend::AllDown);
    }
}
