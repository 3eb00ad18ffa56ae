//! One simulated user: log in, then loop over reads and writes.
//!
//! The loop is the same in every mode. What differs is only how the user
//! logs in (a session cookie, or JWTs in `jwt` mode) and what the cluster
//! does with its requests, which is exactly what the lab wants to compare.
//! Every answer goes to the user's [`Expectations`] (what it was told) and
//! to its [`Recorder`] (what happened when).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{Answer, Browser, Failure};
use crate::config::{AuthMode, LoadConfig};
use crate::model::{Expectations, Findings, Observed, Reckoning};
use crate::stats::{ErrorKind, Recorder};

/// The demo users and their password (see the node's login page).
pub const DEMO_USERS: [&str; 3] = ["alice", "bob", "carol"];
pub const DEMO_PASSWORD: &str = "sessionlab";
const ITEMS: [&str; 5] = ["apple", "bread", "cheese", "dates", "eggs"];

/// Live counters the CLI shows while the run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub sessions_lost: AtomicU64,
    pub stale_reads: AtomicU64,
}

/// Shared by all users of a run.
pub struct Shared {
    pub cfg: LoadConfig,
    pub start: Instant,
    pub deadline: Instant,
    pub budget: AtomicU64,
    pub progress: Arc<Progress>,
}

impl Shared {
    fn take_budget(&self) -> bool {
        self.budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| b.checked_sub(1))
            .is_ok()
    }
}

/// What one user hands back at the end.
pub struct UserResult {
    pub recorder: Recorder,
    pub reckoning: Option<Reckoning>,
    /// The user was logged in at the end but its final read failed.
    pub unverified: bool,
}

enum Op {
    Read,
    Increment,
    Cart,
}

struct User {
    id: usize,
    name: &'static str,
    browser: Browser,
    exp: Expectations,
    rec: Recorder,
    rng: SmallRng,
    last_node: Option<String>,
    refresh_token: Option<String>,
}

fn observed(json: &Value) -> Observed {
    let session = &json["session"];
    let data = &session["data"];
    Observed {
        user: session["user"].as_str().map(str::to_owned),
        counter: data["counter"].as_i64().unwrap_or(0),
        cart: data["cart"]
            .as_object()
            .map(|c| c.keys().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_default(),
    }
}

impl User {
    fn at(&self, shared: &Shared) -> Duration {
        shared.start.elapsed()
    }

    /// Send, record, and classify. `Some(answer)` only for a 2xx answer.
    async fn call(
        &mut self,
        shared: &Shared,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Option<Answer> {
        self.rec.credential(self.browser.credential_bytes());
        let result = self.browser.send(method, path, form).await;
        let at = self.at(shared);
        shared.progress.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(a) => {
                self.rec.answered(at, a.latency, a.served_by.as_deref());
                if let Some(node) = &a.served_by {
                    if self.last_node.as_ref().is_some_and(|n| n != node) {
                        self.rec.node_switches += 1;
                    }
                    self.last_node = Some(node.clone());
                }
                let kind = match a.status {
                    200..=399 => return Some(a),
                    401 if shared.cfg.auth == AuthMode::Jwt => return Some(a),
                    500..=599 => ErrorKind::Http5xx,
                    _ => ErrorKind::Http4xx,
                };
                self.rec.failed(at, kind, true);
                shared.progress.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(Failure { kind }) => {
                self.rec.failed(at, kind, false);
                shared.progress.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn note(&mut self, shared: &Shared, f: Findings) {
        let at = self.at(shared);
        self.rec.findings(at, f);
        if f.session_lost {
            shared
                .progress
                .sessions_lost
                .fetch_add(1, Ordering::Relaxed);
        }
        if f.stale_read {
            shared.progress.stale_reads.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn login(&mut self, shared: &Shared) {
        self.browser.clear();
        self.refresh_token = None;
        let form = [("username", self.name), ("password", DEMO_PASSWORD)];
        let path = match shared.cfg.auth {
            AuthMode::Session => "/login",
            AuthMode::Jwt => "/auth/login",
        };
        let Some(a) = self.call(shared, Method::POST, path, Some(&form)).await else {
            return;
        };
        if a.status != 200 {
            return;
        }
        if shared.cfg.auth == AuthMode::Jwt {
            let Some(json) = &a.json else { return };
            let (Some(access), Some(refresh)) = (
                json["access_token"].as_str(),
                json["refresh_token"].as_str(),
            ) else {
                return;
            };
            self.browser.set_bearer(Some(access.to_owned()));
            self.refresh_token = Some(refresh.to_owned());
        }
        self.rec.logins += 1;
        self.exp.on_login(0);
    }

    /// In jwt mode a 401 means the access token expired or was revoked:
    /// try the refresh token once; if that fails too, the login is lost.
    async fn reauthenticate(&mut self, shared: &Shared) -> bool {
        let Some(refresh) = self.refresh_token.take() else {
            return false;
        };
        self.browser.set_bearer(None);
        let form = [("refresh_token", refresh.as_str())];
        if let Some(a) = self
            .call(shared, Method::POST, "/auth/refresh", Some(&form))
            .await
        {
            if let Some(json) = a.json.as_ref().filter(|_| a.status == 200) {
                if let (Some(access), Some(refresh)) = (
                    json["access_token"].as_str(),
                    json["refresh_token"].as_str(),
                ) {
                    self.browser.set_bearer(Some(access.to_owned()));
                    self.refresh_token = Some(refresh.to_owned());
                    return true;
                }
            }
        }
        false
    }

    /// A 2xx answer (or, in jwt mode, a 401 that refresh could not fix,
    /// which reads as "logged out").
    async fn request(&mut self, shared: &Shared, method: Method, path: &str) -> Option<Answer> {
        let a = self.call(shared, method.clone(), path, None).await?;
        if a.status != 401 {
            return Some(a);
        }
        if self.reauthenticate(shared).await {
            return self
                .call(shared, method, path, None)
                .await
                .filter(|a| a.status != 401);
        }
        Some(a)
    }

    async fn step(&mut self, shared: &Shared, op: Op) {
        match op {
            Op::Read => {
                let Some(a) = self.request(shared, Method::GET, "/api/session").await else {
                    return;
                };
                let seen = if a.status == 401 {
                    Observed::default()
                } else {
                    a.json.as_ref().map(observed).unwrap_or_default()
                };
                let f = self.exp.on_read(&seen);
                self.note(shared, f);
            }
            Op::Increment => {
                let Some(a) = self
                    .request(shared, Method::POST, "/api/counter/increment")
                    .await
                else {
                    return;
                };
                let value = a.json.as_ref().and_then(|j| j["counter"].as_i64());
                let present = a.status != 401 && !a.new_session_id;
                let f = match value {
                    Some(v) if present => self.exp.on_increment(v, true),
                    _ => self.exp.on_increment(0, false),
                };
                self.note(shared, f);
            }
            Op::Cart => {
                let item = ITEMS[self.rng.random_range(0..ITEMS.len())];
                let add = self.rng.random_bool(0.6);
                let method = if add { Method::PUT } else { Method::DELETE };
                let path = format!("/api/cart/{item}");
                let Some(a) = self.request(shared, method, &path).await else {
                    return;
                };
                let present = a.status != 401 && !a.new_session_id;
                let reply = a
                    .json
                    .as_ref()
                    .and_then(|j| j["cart"].as_object())
                    .map(|c| c.keys().cloned().collect::<BTreeSet<_>>());
                let f = self.exp.on_cart(item, add, present, reply.as_ref());
                self.note(shared, f);
            }
        }
    }

    fn pick(&mut self, shared: &Shared) -> Op {
        let m = shared.cfg.mix;
        let r = self.rng.random_range(0..m.read + m.increment + m.cart);
        if r < m.read {
            Op::Read
        } else if r < m.read + m.increment {
            Op::Increment
        } else {
            Op::Cart
        }
    }

    /// The final read after the run: what survived.
    async fn finish(mut self, shared: &Shared) -> UserResult {
        if !self.exp.logged_in() {
            return UserResult {
                recorder: self.rec,
                reckoning: None,
                unverified: false,
            };
        }
        let mut answer = self.browser.send(Method::GET, "/api/session", None).await;
        // An access token may expire during the settle time: refresh it as
        // any request would, so the reckoning sees the login, not the clock.
        if shared.cfg.auth == AuthMode::Jwt
            && matches!(&answer, Ok(a) if a.status == 401)
            && self.reauthenticate(shared).await
        {
            answer = self.browser.send(Method::GET, "/api/session", None).await;
        }
        let (reckoning, unverified) = match answer {
            Ok(a) if a.status == 200 => {
                let seen = a.json.as_ref().map(observed).unwrap_or_default();
                let r = self.exp.reckon(&seen);
                if r.is_none() {
                    // Logged out at the end: the session is lost.
                    let at = self.at(shared);
                    self.rec.findings(
                        at,
                        Findings {
                            session_lost: true,
                            ..Default::default()
                        },
                    );
                }
                (r, false)
            }
            Ok(a) if a.status == 401 => {
                let at = self.at(shared);
                self.rec.findings(
                    at,
                    Findings {
                        session_lost: true,
                        ..Default::default()
                    },
                );
                (None, false)
            }
            _ => (None, true),
        };
        UserResult {
            recorder: self.rec,
            reckoning,
            unverified,
        }
    }
}

/// Run one user until the deadline or the request budget ends.
pub async fn run_user(id: usize, shared: Arc<Shared>) -> UserResult {
    let cfg = &shared.cfg;
    let mut user = User {
        id,
        name: DEMO_USERS[id % DEMO_USERS.len()],
        browser: Browser::new(&cfg.target, cfg.timeout, &cfg.session_cookie),
        exp: Expectations::default(),
        rec: Recorder::new(cfg.bucket),
        rng: SmallRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(id as u64)),
        last_node: None,
        refresh_token: None,
    };
    // Spread the users' start evenly over the ramp-up, plus up to one
    // think time, so they do not arrive in lockstep.
    let pace = cfg
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(cfg.users as f64 / r));
    let jitter = pace.unwrap_or(cfg.think).mul_f64(user.rng.random::<f64>());
    let ramp = cfg.ramp_up.mul_f64(id as f64 / cfg.users.max(1) as f64);
    tokio::time::sleep((ramp + jitter).min(cfg.duration)).await;
    let mut next = Instant::now();
    while Instant::now() < shared.deadline && shared.take_budget() {
        let mut pause = pace.unwrap_or(cfg.think);
        if user.exp.logged_in() {
            let op = user.pick(&shared);
            user.step(&shared, op).await;
        } else {
            user.login(&shared).await;
            if user.exp.logged_in() {
                pause = cfg.login_pause.unwrap_or(pause);
            }
        }
        next += pause;
        let now = Instant::now();
        if next < now {
            // Behind schedule (a slow answer): do not burst to catch up.
            next = now;
        }
        tokio::time::sleep_until(next.min(shared.deadline)).await;
    }
    tracing::debug!(user = user.id, "user finished");
    // Let in-flight replication settle before judging what survived.
    tokio::time::sleep(cfg.settle).await;
    user.finish(&shared).await
}
