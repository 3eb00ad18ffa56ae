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
use crate::history::{OpKind, Operation};
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

/// What the tabs of one user share besides their cookies: which login
/// they are in, so that one tab logs in for all and a logout by one tab is
/// not taken for a lost session by the others.
#[derive(Debug, Default)]
struct Login {
    /// Counts the user's successful logins; a tab works in one of them.
    epoch: u64,
    logged_in: bool,
    /// The current login was ended on purpose by one of the tabs.
    ended_by_logout: bool,
}

#[derive(Default)]
struct Tabs {
    login: std::sync::Mutex<Login>,
    /// Held while one tab logs in, so the others wait and then adopt it.
    logging_in: tokio::sync::Mutex<()>,
}

impl Tabs {
    fn login(&self) -> std::sync::MutexGuard<'_, Login> {
        self.login.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a tab working in login `epoch` does at the start of its turn,
/// given the user's current login.
#[derive(Debug, PartialEq, Eq)]
enum Follow {
    /// Still the login it works in.
    Stay,
    /// Another tab logged in again since (the jar now holds that
    /// session): work in that one, expecting nothing of the old.
    Join(u64),
    /// The login it worked in has ended and no other began: log in.
    Ended,
}

impl Login {
    fn follow(&self, epoch: u64) -> Follow {
        if self.epoch == epoch {
            Follow::Stay
        } else if self.logged_in {
            Follow::Join(self.epoch)
        } else {
            Follow::Ended
        }
    }
}

/// What one user hands back at the end.
pub struct UserResult {
    pub recorder: Recorder,
    /// Every operation, in completion order (see [`crate::history`]).
    pub history: Vec<Operation>,
    pub reckoning: Option<Reckoning>,
    /// The user was logged in at the end but its final read failed.
    pub unverified: bool,
    /// The history reached its share of the run's limit and kept only its
    /// first operations.
    pub history_cut: bool,
    /// The tab's load loop, without the settle time and the final read:
    /// what the throughput is measured over.
    pub load: LoadSpan,
}

/// When a tab's load loop ended (since the run's start) and how many
/// requests it sent in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadSpan {
    pub ended: Duration,
    pub requests: u64,
}

enum Op {
    Read,
    Increment,
    Cart,
    Logout,
}

/// The last request's place in time, for its history line.
struct LastCall {
    invoke_us: u64,
    complete_us: u64,
    status: Option<u16>,
    node: Option<String>,
}

impl LastCall {
    fn new(invoked: Duration, completed: Duration, result: &Result<Answer, Failure>) -> Self {
        let answer = result.as_ref().ok();
        LastCall {
            invoke_us: micros(invoked),
            complete_us: micros(completed),
            status: answer.map(|a| a.status),
            node: answer.and_then(|a| a.served_by.clone()),
        }
    }
}

struct User {
    id: usize,
    /// Which of the user's tabs this is (0 .. clients_per_user).
    client: u32,
    tabs: Arc<Tabs>,
    /// The login (of [`Login::epoch`]) this tab works in.
    epoch: u64,
    /// The cart items this tab changes: tabs change different items, so
    /// each tab's expectations of the cart stay exact.
    items: Vec<&'static str>,
    name: &'static str,
    browser: Browser,
    exp: Expectations,
    rec: Recorder,
    rng: SmallRng,
    last_node: Option<String>,
    refresh_token: Option<String>,
    last_call: Option<LastCall>,
    history: Vec<Operation>,
    /// The most operations this user keeps (its share of
    /// [`crate::history::MAX_OPERATIONS`]).
    history_cap: usize,
    /// An operation found the history full (the report says so).
    history_cut: bool,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The version a session answer carried (`"17@node-1"`).
fn version(json: &Value) -> Option<String> {
    json["session"]["version"].as_str().map(str::to_owned)
}

/// The first characters of the session's id a session answer carried
/// (`id_prefix`), as the nodes' replication events name the session.
fn session_prefix(json: &Value) -> Option<String> {
    json["session"]["id_prefix"].as_str().map(str::to_owned)
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
        let invoked = self.at(shared);
        let result = self.browser.send(method, path, form).await;
        let at = self.at(shared);
        self.last_call = Some(LastCall::new(invoked, at, &result));
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

    /// The history line of the last request.
    fn record(
        &mut self,
        op: OpKind,
        counter: Option<i64>,
        answer: Option<&Value>,
        logged_in: Option<bool>,
    ) {
        let Some(call) = self.last_call.take() else {
            return;
        };
        if self.history.len() >= self.history_cap {
            self.history_cut = true;
            return;
        }
        let answered = call.status.is_some();
        self.history.push(Operation {
            user: self.id as u32,
            client: self.client,
            op,
            invoke_us: call.invoke_us,
            complete_us: call.complete_us,
            node: call.node,
            status: call.status,
            counter,
            version: answer.and_then(version),
            logged_in: logged_in.filter(|_| answered),
            session: answer.and_then(session_prefix),
        });
    }

    /// The history line of a read of the session outside the loop (the
    /// final read, the probe after a logout): what its answer showed.
    fn record_read(&mut self, answer: Option<&Answer>) {
        let json = answer
            .filter(|a| a.status == 200)
            .and_then(|a| a.json.as_ref());
        let seen = json.map(observed).unwrap_or_default();
        let logged_in = seen.user.is_some();
        self.record(
            OpKind::Read,
            Some(seen.counter).filter(|_| logged_in),
            json,
            Some(logged_in),
        );
    }

    /// Catch up with the other tabs before a turn: a tab that kept the
    /// expectations of a login another tab replaced would take the new
    /// session's counter and cart for stale ones.
    fn follow_tabs(&mut self) {
        if !self.exp.logged_in() {
            return;
        }
        let follow = self.tabs.login().follow(self.epoch);
        match follow {
            Follow::Stay => {}
            Follow::Join(epoch) => {
                self.epoch = epoch;
                self.exp.on_login(0);
            }
            Follow::Ended => self.exp.on_logout(),
        }
    }

    fn note(&mut self, shared: &Shared, mut f: Findings) {
        if f.session_lost {
            let mut login = self.tabs.login();
            if login.epoch == self.epoch {
                if login.ended_by_logout {
                    // Another tab logged out: gone on purpose, not lost.
                    f.session_lost = false;
                }
                login.logged_in = false;
            }
        }
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
        let tabs = self.tabs.clone();
        let _one_at_a_time = tabs.logging_in.lock().await;
        {
            let login = tabs.login();
            if login.logged_in && login.epoch != self.epoch {
                // Another tab logged in (the jar is shared): use its login.
                self.epoch = login.epoch;
                self.exp.on_login(0);
                return;
            }
        }
        self.browser.clear();
        self.refresh_token = None;
        let form = [("username", self.name), ("password", DEMO_PASSWORD)];
        let path = match shared.cfg.auth {
            AuthMode::Session => "/login",
            AuthMode::Jwt => "/auth/login",
        };
        let answer = self.call(shared, Method::POST, path, Some(&form)).await;
        let ok = answer.as_ref().is_some_and(|a| a.status == 200);
        self.record(OpKind::Login, None, None, Some(ok));
        let Some(a) = answer.filter(|_| ok) else {
            return;
        };
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
        let mut login = tabs.login();
        login.epoch += 1;
        login.logged_in = true;
        login.ended_by_logout = false;
        self.epoch = login.epoch;
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
                    self.record(OpKind::Read, None, None, None);
                    return;
                };
                let seen = if a.status == 401 {
                    Observed::default()
                } else {
                    a.json.as_ref().map(observed).unwrap_or_default()
                };
                let logged_in = seen.user.is_some();
                self.record(
                    OpKind::Read,
                    Some(seen.counter).filter(|_| logged_in),
                    a.json.as_ref(),
                    Some(logged_in),
                );
                let f = self.exp.on_read(&seen);
                self.note(shared, f);
            }
            Op::Increment => {
                let Some(a) = self
                    .request(shared, Method::POST, "/api/counter/increment")
                    .await
                else {
                    self.record(OpKind::Increment, None, None, None);
                    return;
                };
                let value = a.json.as_ref().and_then(|j| j["counter"].as_i64());
                let present = a.status != 401 && !a.new_session_id;
                self.record(OpKind::Increment, value, None, Some(present));
                let f = match value {
                    Some(v) if present => self.exp.on_increment(v, true),
                    _ => self.exp.on_increment(0, false),
                };
                self.note(shared, f);
            }
            Op::Cart => {
                let item = self.items[self.rng.random_range(0..self.items.len())];
                let add = self.rng.random_bool(0.6);
                let method = if add { Method::PUT } else { Method::DELETE };
                let path = format!("/api/cart/{item}");
                let kind = if add {
                    OpKind::CartPut
                } else {
                    OpKind::CartDelete
                };
                let Some(a) = self.request(shared, method, &path).await else {
                    self.record(kind, None, None, None);
                    return;
                };
                let present = a.status != 401 && !a.new_session_id;
                self.record(kind, None, None, Some(present));
                let reply = a
                    .json
                    .as_ref()
                    .and_then(|j| j["cart"].as_object())
                    .map(|c| c.keys().cloned().collect::<BTreeSet<_>>());
                let f = self.exp.on_cart(item, add, present, reply.as_ref());
                self.note(shared, f);
            }
            Op::Logout => self.logout(shared).await,
        }
    }

    /// Log out, then present the old credentials once more, as someone who
    /// kept a copy of the cookie (or token) would: a logged-out session
    /// must not answer. The user then logs in again on its next turn.
    async fn logout(&mut self, shared: &Shared) {
        let old = self.browser.credentials();
        let path = match shared.cfg.auth {
            AuthMode::Session => "/logout",
            AuthMode::Jwt => "/auth/logout",
        };
        let answer = self.call(shared, Method::POST, path, None).await;
        self.record(OpKind::Logout, None, None, None);
        self.exp.on_logout();
        self.refresh_token = None;
        if answer.is_some() {
            {
                let mut login = self.tabs.login();
                if login.epoch == self.epoch {
                    login.logged_in = false;
                    login.ended_by_logout = true;
                }
            }
            // The probe has a jar of its own: the other tabs keep theirs.
            let holding = self.browser.holding(old);
            let tab = std::mem::replace(&mut self.browser, holding);
            let probe = self.call(shared, Method::GET, "/api/session", None).await;
            self.record_read(probe.as_ref());
            self.browser = tab;
        }
        self.browser.clear();
    }

    fn pick(&mut self, shared: &Shared) -> Op {
        let m = shared.cfg.mix;
        let r = self
            .rng
            .random_range(0..m.read + m.increment + m.cart + m.logout);
        if r < m.read {
            Op::Read
        } else if r < m.read + m.increment {
            Op::Increment
        } else if r < m.read + m.increment + m.cart {
            if self.items.is_empty() {
                // More tabs than items: this tab reads instead.
                Op::Read
            } else {
                Op::Cart
            }
        } else {
            Op::Logout
        }
    }

    /// The final read after the run: what survived.
    async fn finish(mut self, shared: &Shared, load: LoadSpan) -> UserResult {
        // One final read per user: the first tab's (the tabs share it).
        if !self.exp.logged_in() || self.client > 0 {
            return UserResult {
                recorder: self.rec,
                history: self.history,
                reckoning: None,
                unverified: false,
                history_cut: self.history_cut,
                load,
            };
        }
        let invoked = self.at(shared);
        let mut answer = self.browser.send(Method::GET, "/api/session", None).await;
        // An access token may expire during the settle time: refresh it as
        // any request would, so the reckoning sees the login, not the clock.
        if shared.cfg.auth == AuthMode::Jwt
            && matches!(&answer, Ok(a) if a.status == 401)
            && self.reauthenticate(shared).await
        {
            answer = self.browser.send(Method::GET, "/api/session", None).await;
        }
        // The final read is a history line like any other: the checker's
        // lost updates are counted against it.
        self.last_call = Some(LastCall::new(invoked, self.at(shared), &answer));
        self.record_read(answer.as_ref().ok());
        let (reckoning, unverified) = match answer {
            Ok(a) if a.status == 200 => {
                let seen = a.json.as_ref().map(observed).unwrap_or_default();
                (self.exp.reckon(&seen), false)
            }
            Ok(a) if a.status == 401 => (None, false),
            _ => (None, true),
        };
        // Verified, and logged out at the end (a 401, or no reckoning of a
        // 200): the session is lost.
        if reckoning.is_none() && !unverified {
            let at = self.at(shared);
            self.rec.findings(at, Findings::session_lost());
        }
        UserResult {
            recorder: self.rec,
            history: self.history,
            reckoning,
            unverified,
            history_cut: self.history_cut,
            load,
        }
    }
}

/// Run one user, with its tabs (`clients_per_user`, sharing one cookie
/// jar), until the deadline or the request budget ends.
pub async fn run_user(id: usize, shared: Arc<Shared>) -> Vec<UserResult> {
    let cfg = &shared.cfg;
    let tabs = Arc::new(Tabs::default());
    let n = cfg.clients_per_user.max(1);
    let first = Browser::new(
        &cfg.target,
        cfg.timeout,
        &cfg.session_cookie,
        cfg.trusted_ca.as_ref(),
    );
    let others: Vec<Browser> = (1..n).map(|_| first.tab()).collect();
    let browsers = std::iter::once(first).chain(others);
    let runs = browsers.enumerate().map(|(client, browser)| {
        let items = ITEMS
            .iter()
            .enumerate()
            .filter(|(i, _)| i % n == client)
            .map(|(_, item)| *item)
            .collect();
        run_tab(
            id,
            client as u32,
            tabs.clone(),
            browser,
            items,
            shared.clone(),
        )
    });
    futures::future::join_all(runs).await
}

/// One tab of a user (the only one unless `clients_per_user` > 1).
async fn run_tab(
    id: usize,
    client: u32,
    tabs: Arc<Tabs>,
    browser: Browser,
    items: Vec<&'static str>,
    shared: Arc<Shared>,
) -> UserResult {
    let cfg = &shared.cfg;
    let mut user = User {
        id,
        client,
        tabs,
        epoch: 0,
        items,
        name: DEMO_USERS[id % DEMO_USERS.len()],
        browser,
        exp: Expectations::default(),
        rec: Recorder::new(cfg.bucket),
        rng: SmallRng::seed_from_u64(
            cfg.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(id as u64)
                .wrapping_add(u64::from(client) << 32),
        ),
        last_node: None,
        refresh_token: None,
        last_call: None,
        history: Vec::new(),
        history_cap: crate::history::MAX_OPERATIONS
            / (cfg.users.max(1) * cfg.clients_per_user.max(1)),
        history_cut: false,
    };
    // Spread the users' start evenly over the ramp-up, plus up to one
    // think time, so they do not arrive in lockstep.
    let pace = cfg.pace();
    let jitter = pace.unwrap_or(cfg.think).mul_f64(user.rng.random::<f64>());
    let ramp = cfg.ramp_up.mul_f64(id as f64 / cfg.users.max(1) as f64);
    tokio::time::sleep(ramp.saturating_add(jitter).min(cfg.duration)).await;
    let mut next = Instant::now();
    while Instant::now() < shared.deadline && shared.take_budget() {
        let mut pause = pace.unwrap_or(cfg.think);
        user.follow_tabs();
        if user.exp.logged_in() {
            let op = user.pick(&shared);
            user.step(&shared, op).await;
        } else {
            user.login(&shared).await;
            if user.exp.logged_in() {
                pause = cfg.login_pause.unwrap_or(pause);
            }
        }
        next = next.checked_add(pause).unwrap_or(shared.deadline);
        let now = Instant::now();
        if next < now {
            // Behind schedule (a slow answer): do not burst to catch up.
            next = now;
        }
        tokio::time::sleep_until(next.min(shared.deadline)).await;
    }
    tracing::debug!(user = user.id, "user finished");
    let load = LoadSpan {
        ended: shared.start.elapsed(),
        requests: user.rec.requests,
    };
    // Let in-flight replication settle before judging what survived.
    tokio::time::sleep(cfg.settle).await;
    user.finish(&shared, load).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tab_follows_the_login_another_tab_made() {
        let login = |epoch, logged_in| Login {
            epoch,
            logged_in,
            ended_by_logout: !logged_in,
        };
        assert_eq!(login(1, true).follow(1), Follow::Stay);
        // Logged out by another tab in this login: still this login (the
        // next answer without the session is not counted as a loss).
        assert_eq!(login(1, false).follow(1), Follow::Stay);
        // Another tab logged out and in again: the jar holds login 2.
        assert_eq!(login(2, true).follow(1), Follow::Join(2));
        // ... and that one ended too.
        assert_eq!(login(2, false).follow(1), Follow::Ended);
    }
}
