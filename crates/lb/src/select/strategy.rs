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
//! | `maglev` | the Maglev table's owner of `SLSESSION` | the next backends the table meets (no cookie: round-robin) |
//!
//! Two options change the sticky ones:
//!
//! - **Bounded loads** (`--hash-balance-factor C`, `consistent-hash` and
//!   `maglev`; Mirrokni, Thorup and Zadimoghaddam 2018, HAProxy's
//!   `hash-balance-factor`). A plain hash sends a hot key's backend all of
//!   its users however busy it is. With a factor `C >= 1`, no backend takes
//!   a request that would put it above `ceil(C * (in-flight + 1) / up)`, the
//!   average load times `C`: the walk passes over a full owner to the next
//!   backend on the ring (or in the table). The price is a few more moves:
//!   a user whose owner is full is served elsewhere for that request (with
//!   node-local sessions, that is a lost session). Over-full backends stay
//!   at the end of the list as last resorts, so the cap never causes a 503.
//! - **Strict stickiness** (`--sticky-strict`, every sticky strategy;
//!   Envoy's `strict` stateful sessions). A client bound to a backend that
//!   is down or was removed (one of the last
//!   [`GONE_REMEMBERED`](crate::backend::table::GONE_REMEMBERED) ids) gets a
//!   503 `sticky_target_gone` instead of a new node, and a bound client is
//!   never failed over. For sessions that only one node holds, an error the
//!   user sees can be better than a silent logout. A cookie naming no
//!   backend ever seen is no affinity at all: a new user.
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

/// How the first choice is made: the names are a contract with the lab
/// and live in `sessionlab-wire`.
pub use sessionlab_wire::strategy::Strategy;

/// `--hash-balance-factor`: how far above the average load a backend may go
/// (a number from 1.0 to 100.0; 1.25 is 25% above).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceFactor(f64);

impl BalanceFactor {
    pub const MIN: f64 = 1.0;
    pub const MAX: f64 = 100.0;

    pub fn get(self) -> f64 {
        self.0
    }

    /// The most in-flight requests one backend may hold once this request
    /// is added, with `total` in flight over `up` backends.
    fn cap(self, total: usize, up: usize) -> usize {
        ((self.0 * (total + 1) as f64) / up.max(1) as f64).ceil() as usize
    }
}

impl std::str::FromStr for BalanceFactor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let f: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number (e.g. 1.25)"))?;
        if !(Self::MIN..=Self::MAX).contains(&f) {
            return Err(format!("{f} is outside {}..={}", Self::MIN, Self::MAX));
        }
        Ok(BalanceFactor(f))
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
    /// `--sticky-strict` refused the request: its backend is gone.
    pub strict_refused: bool,
}

impl Selection {
    /// Why the list is empty.
    pub fn why_empty(&self, snapshot: &Snapshot) -> NoBackend {
        if self.strict_refused {
            NoBackend::StickyTargetGone
        } else if snapshot.list.is_empty() {
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
    /// `--hash-balance-factor`: bounded loads for the hash strategies.
    balance: Option<BalanceFactor>,
    /// `--sticky-strict`: a bound client gets its backend or a 503.
    strict: bool,
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
            balance: None,
            strict: false,
        }
    }

    /// Bounded loads (`--hash-balance-factor`); used by the hash strategies.
    pub fn with_balance_factor(mut self, factor: Option<BalanceFactor>) -> Self {
        self.balance = factor;
        self
    }

    /// Strict stickiness (`--sticky-strict`); used by the sticky strategies.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
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
                        if !self.strict {
                            self.fill_from(snapshot, t + 1, &mut sel.candidates);
                        }
                    }
                    None if self.strict
                        && (sel.sticky_target.is_some()
                            || target.is_some_and(|id| snapshot.was_removed(id))) =>
                    {
                        sel.strict_refused = true;
                    }
                    // New user or redispatch: round-robin.
                    None => self.fill_round_robin(snapshot, &mut sel.candidates),
                }
            }
            Strategy::ConsistentHash | Strategy::Maglev => {
                match cookie::find(headers, &self.session_cookie) {
                    Some(session) if self.strategy == Strategy::Maglev => {
                        self.hashed(snapshot, snapshot.maglev().walk(session), &mut sel)
                    }
                    Some(session) => self.hashed(snapshot, snapshot.ring.walk(session), &mut sel),
                    None => self.fill_round_robin(snapshot, &mut sel.candidates),
                }
            }
        }
        sel
    }

    /// The hash strategies, given the key's walk (owner first): the owner
    /// if it is up, then the next backends that take new users; with
    /// bounded loads, backends at their cap move to the end of the list.
    fn hashed(
        &self,
        snapshot: &Snapshot,
        mut walk: impl Iterator<Item = usize>,
        sel: &mut Selection,
    ) {
        sel.had_affinity = true;
        let Some(owner) = walk.next() else { return };
        sel.sticky_target = Some(owner);
        let owner_up = snapshot.list[owner].is_up();
        if self.strict {
            if owner_up {
                sel.candidates.push(owner);
            } else {
                sel.strict_refused = true;
            }
            return;
        }
        let full = self.balance.map(|factor| {
            let up = snapshot.list.iter().filter(|b| b.is_up()).count();
            let total: usize = snapshot.list.iter().map(|b| b.in_flight()).sum();
            factor.cap(total, up)
        });
        let is_full = |idx: usize| full.is_some_and(|cap| snapshot.list[idx].in_flight() >= cap);
        let mut last_resorts = Candidates::new();
        let usable = std::iter::once(owner)
            .filter(|_| owner_up)
            .chain(walk.filter(|&idx| snapshot.list[idx].takes_new_users()));
        for idx in usable {
            if sel.candidates.len() >= self.max_candidates {
                break;
            }
            if is_full(idx) {
                last_resorts.push(idx);
            } else {
                sel.candidates.push(idx);
            }
        }
        for idx in last_resorts {
            if sel.candidates.len() >= self.max_candidates {
                break;
            }
            sel.candidates.push(idx);
        }
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
        sessionlab_testkit::header_lines("cookie", &[c])
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

    /// First choices for `n` distinct session cookies, counted per backend.
    fn session_spread(sel: &Selector, snap: &Snapshot, n: usize) -> Vec<usize> {
        let mut counts = vec![0; snap.list.len()];
        for i in 0..n {
            let h = with_cookie(&format!("SLSESSION=s{i}"));
            counts[sel.select(snap, &h).candidates[0]] += 1;
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

    /// A hash strategy's list for one session is the same every time; with
    /// its owner down, the second in line serves and the owner stays the
    /// sticky target (so the proxy counts a redispatch). The first list.
    fn stable_then_next_in_line(sel: &Selector, snap: &Snapshot) -> Candidates {
        let h = with_cookie("SLSESSION=user-42");
        let first = sel.select(snap, &h);
        assert_eq!(first.sticky_target, Some(first.candidates[0]));
        for _ in 0..10 {
            assert_eq!(sel.select(snap, &h).candidates, first.candidates);
        }
        let owner = first.candidates[0];
        let second = first.candidates[1];
        mark_down(snap, owner);
        let s = sel.select(snap, &h);
        assert_eq!(s.sticky_target, Some(owner));
        assert_eq!(s.candidates[0], second);
        first.candidates
    }

    #[test]
    fn consistent_hash_is_stable_and_fails_over_along_the_ring() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::ConsistentHash, 3, 1);
        stable_then_next_in_line(&sel, &snap);

        // Many sessions spread over all three.
        let t = table(3);
        let snap = t.snapshot();
        let counts = session_spread(&sel, &snap, 3_000);
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
    fn maglev_is_stable_spreads_and_fails_over_along_the_table() {
        let t = table(4);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::Maglev, 4, 1);
        let first = stable_then_next_in_line(&sel, &snap);
        assert_eq!(first.len(), 4);

        // Many sessions, on a table with every backend up: an even spread.
        let counts = session_spread(&sel, &table(4).snapshot(), 4_000);
        assert!(
            counts.iter().all(|&c| (850..1_150).contains(&c)),
            "{counts:?}"
        );
    }

    /// Bounded loads: with 6 requests in flight on the key's owner and none
    /// elsewhere, the cap at factor 1.25 over 3 backends is
    /// ceil(1.25 * 7 / 3) = 3: the owner is full, the next backend on the
    /// ring serves, and the owner stays last as a last resort. Without the
    /// factor the owner serves, however busy.
    #[test]
    fn bounded_loads_pass_over_a_full_owner() {
        for strategy in [Strategy::ConsistentHash, Strategy::Maglev] {
            let t = table(3);
            let snap = t.snapshot();
            let h = with_cookie("SLSESSION=hot-user");
            let plain = Selector::new(strategy, 3, 1);
            let order = plain.select(&snap, &h).candidates;
            let owner = order[0];
            let _busy: Vec<_> = (0..6).map(|_| snap.start_request(owner)).collect();
            assert_eq!(plain.select(&snap, &h).candidates, order, "{strategy:?}");

            let factor = Some("1.25".parse().unwrap());
            let bounded = Selector::new(strategy, 3, 1).with_balance_factor(factor);
            let s = bounded.select(&snap, &h);
            assert_eq!(s.sticky_target, Some(owner), "{strategy:?}");
            assert_eq!(s.candidates.as_slice(), &[order[1], order[2], owner]);
            // A high enough factor lets the owner keep it.
            let loose =
                Selector::new(strategy, 3, 1).with_balance_factor(Some("3".parse().unwrap()));
            assert_eq!(loose.select(&snap, &h).candidates[0], owner);
        }
    }

    /// Over many keys with a skewed load, bounded loads keep every backend
    /// under its cap at each choice, where the plain ring overloads one.
    #[test]
    fn bounded_loads_keep_every_backend_under_the_cap() {
        let t = table(4);
        let snap = t.snapshot();
        let factor: BalanceFactor = "1.25".parse().unwrap();
        let sel = Selector::new(Strategy::ConsistentHash, 4, 1).with_balance_factor(Some(factor));
        // 400 long requests, a quarter of them from one hot session.
        let mut held = Vec::new();
        for i in 0..400 {
            let key = if i % 4 == 0 {
                "hot".to_string()
            } else {
                format!("s{i}")
            };
            let s = sel.select(&snap, &with_cookie(&format!("SLSESSION={key}")));
            let total: usize = snap.list.iter().map(|b| b.in_flight()).sum();
            let chosen = s.candidates[0];
            assert!(
                snap.list[chosen].in_flight() < factor.cap(total, 4),
                "request {i}: backend {chosen} at its cap"
            );
            held.push(snap.start_request(chosen));
        }
        let max = snap.list.iter().map(|b| b.in_flight()).max().unwrap();
        assert!(max <= 125, "max {max} of 400 over 4 with factor 1.25");
    }

    #[test]
    fn balance_factors_parse_within_bounds() {
        assert_eq!("1.25".parse::<BalanceFactor>().unwrap().get(), 1.25);
        assert!("0.9".parse::<BalanceFactor>().is_err());
        assert!("101".parse::<BalanceFactor>().is_err());
        assert!("fast".parse::<BalanceFactor>().is_err());
        assert!("NaN".parse::<BalanceFactor>().is_err());
    }

    #[test]
    fn strict_stickiness_refuses_instead_of_redispatching() {
        let t = table(3);
        let snap = t.snapshot();
        let sel = Selector::new(Strategy::StickyCookie, 3, 1).with_strict(true);
        // Bound and up: that backend only, no failover.
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-2"));
        assert_eq!(s.candidates.as_slice(), &[1]);
        // Unknown id: no affinity worth keeping, a new user.
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-99"));
        assert!(!s.strict_refused);
        assert_eq!(s.candidates.len(), 3);
        // Bound and down: refused, and the reason says so.
        mark_down(&snap, 1);
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-2"));
        assert!(s.strict_refused && s.candidates.is_empty());
        assert_eq!(s.why_empty(&snap), NoBackend::StickyTargetGone);
        // New users are not affected.
        assert_eq!(sel.select(&snap, &HeaderMap::new()).candidates.len(), 2);

        // Removed from the table: still known as gone, still refused.
        t.remove("node-3").unwrap();
        let snap = t.snapshot();
        assert!(snap.was_removed(b"node-3"));
        let s = sel.select(&snap, &with_cookie("SLROUTE=node-3"));
        assert!(s.strict_refused, "{s:?}");
        // Without --sticky-strict the same request is redispatched.
        let lax = Selector::new(Strategy::StickyCookie, 3, 1);
        assert!(
            !lax.select(&snap, &with_cookie("SLROUTE=node-3"))
                .candidates
                .is_empty()
        );

        // The hash strategies: the owner down is a refusal.
        let t = table(3);
        let snap = t.snapshot();
        for strategy in [Strategy::ConsistentHash, Strategy::Maglev] {
            let sel = Selector::new(strategy, 3, 1).with_strict(true);
            let h = with_cookie("SLSESSION=user-7");
            let s = sel.select(&snap, &h);
            assert_eq!(s.candidates.len(), 1, "{strategy:?}");
            let owner = s.candidates[0];
            mark_down(&snap, owner);
            assert!(sel.select(&snap, &h).strict_refused, "{strategy:?}");
            for _ in 0..3 {
                snap.list[owner].record_check(true);
            }
        }
    }

    #[test]
    fn empty_lists_explain_themselves() {
        let t = table(0);
        assert_eq!(
            Selection::default().why_empty(&t.snapshot()),
            NoBackend::NoneConfigured
        );
        let t = table(2);
        let snap: Arc<Snapshot> = t.snapshot();
        snap.list[0].set_draining(true);
        mark_down(&snap, 1);
        let sel = Selector::new(Strategy::RoundRobin, 3, 1);
        assert!(sel.select(&snap, &HeaderMap::new()).candidates.is_empty());
        assert_eq!(
            Selection::default().why_empty(&snap),
            NoBackend::AllDraining
        );
        mark_down(&snap, 0);
        assert_eq!(Selection::default().why_empty(&snap), NoBackend::AllDown);
    }
}
