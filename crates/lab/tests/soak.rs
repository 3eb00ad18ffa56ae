//! A seeded chaos soak: simulated users through the LB of a real
//! `sticky-replicated` cluster with `--replication-ack all`, while nodes
//! are SIGKILLed and restarted, partitioned and healed at random, and four
//! invariants checked from the clients' own records.
//!
//! The other end-to-end tests each break one thing once, at a chosen
//! moment. Bugs in a replicated system hide in the interleavings nobody
//! chose: a logout that races a partition, a write answered while its
//! peer dies, a node that restarts while others write. The soak picks
//! them at random, from a seed, so a run that fails can be run again with
//! the same schedule of faults and the same users' choices (the timing of
//! real processes still varies; the seed fixes what is done, not the
//! microseconds).
//!
//! ## The run
//!
//! `sessionlab up --mode sticky-replicated --nodes 3 --node-arg
//! --replication-ack=all` on free ports, then for [`CHAOS`] (about a
//! minute) [`USERS`] users each log in through the LB as one of the demo
//! users, increment their counter, read their session, and some log out
//! and in again, with a short think time, while one fault at a time is
//! applied through the lab's own actions ([`sessionlab_lab::perform`],
//! what `sessionlab kill|restart|partition|heal` run): a random node is
//! SIGKILLed and restarted after a random pause, or cut off from the others
//! and healed after a random pause (long enough, sometimes, for the peers
//! to declare each other down). After every recovery the users are held
//! for a moment and the copies compared (invariant 3); then the next fault.
//!
//! ## What each user records
//!
//! Every operation in the history format of `sessionlab-load`
//! (`sessionlab_load::history`, what `sessionlab check` reads), plus per
//! login: the cookie, the increments the cluster acknowledged, the last
//! counter seen, and whether the user is logged in or out.
//!
//! ## The invariants
//!
//! 1. **No acknowledged write lost.** An increment is *acknowledged* when
//!    its answer is a 2xx on the user's own session with
//!    `X-Replication-Ack: acked; peers=N`: with `--replication-ack all`
//!    the node answered only after every peer it considered up applied the
//!    write. At the end every live login's counter, read through the LB
//!    and from every node's own copy, is at least the number of its
//!    acknowledged increments. What that guarantee is *not*: a 2xx marked
//!    `timeout; acked=..` (the ack timeout passed first, typically in the
//!    first second of a partition or of a peer's death) was not
//!    acknowledged in the ack=all sense, and `acked; peers=0` on a node
//!    that is cut off from every peer means "every peer I can see", which
//!    is none: the write is on that node alone until the heal. The soak
//!    applies one fault at a time and lets the copies converge after each
//!    heal before the next fault, so such a write survives here; a crash of
//!    the cut-off node before the heal would lose it, by design (the
//!    protocol stays available in a partition rather than refuse the
//!    write; `docs/protocol.md`, "Acknowledgements"). The summary counts
//!    the 2xx increments that were not acknowledged, and the final reads
//!    that fall short of all 2xx increments (not a violation: a fact).
//! 2. **No logged-in user logged out** (sticky-replicated): an answer that
//!    shows no session for a user who is logged in, and has not logged out
//!    itself, is a violation (errors and refused connections while a node
//!    dies are not answers about the session).
//! 3. **After a heal every copy is equal within 5 s**: with the users held,
//!    every running node's list of sessions (`/admin/v1/sessions` on the
//!    cluster listener: id prefix, version, user) is the same on all nodes
//!    within [`CONVERGE_LIMIT`] of the heal (checked after every restart
//!    too).
//! 4. **No logged-out session usable anywhere**: right after a logout the
//!    old cookie is replayed to every node directly, and again at the end;
//!    no node may answer it as logged in. Right after the logout that
//!    holds because with ack=all a logout is answered only once every live
//!    peer holds the tombstone (the soak's first runs found the answer
//!    racing the tombstone; the node now waits). It is required only when
//!    no partition overlapped the logout and the replays: across a cut a
//!    node cannot hear the logout until the heal (the lab's `logout` test
//!    shows that case); the end replays are required everywhere.
//!
//! A violation fails the test with the seed, the user, the operations
//! involved and the fault timeline. The summary printed at the end gives
//! the counts (users, operations, acknowledged increments, faults of each
//! kind, violations per invariant).
//!
//! Run it with another seed: `SESSIONLAB_SOAK_SEED=7 cargo nextest run -p
//! sessionlab-lab --test soak`. It costs about 80 s of wall time (60 s of
//! chaos) and is marked slow in `.config/nextest.toml`.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessionlab_lab::{Action, Lab, RunFolder, sign};
use sessionlab_load::history::{OpKind, Operation};
use support::*;
use tokio::sync::RwLock;

/// The seed when `SESSIONLAB_SOAK_SEED` is not set.
const DEFAULT_SEED: u64 = 12;
/// How long faults are applied.
const CHAOS: Duration = Duration::from_secs(60);
/// Simulated users.
const USERS: u32 = 24;
const NODES: usize = 3;
/// Every copy equal within this long after a heal (or a restart).
const CONVERGE_LIMIT: Duration = Duration::from_secs(5);
/// Bounds on every loop: operations per user, faults per run.
const MAX_OPS_PER_USER: usize = 5_000;
const MAX_FAULTS: usize = 40;
/// A request that takes longer than this is a failed request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const DEMO_USERS: [&str; 3] = ["alice", "bob", "carol"];

/// SplitMix64: a few lines, and the same numbers from a seed on every
/// platform and every version of every crate.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

fn seed() -> u64 {
    match std::env::var("SESSIONLAB_SOAK_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SESSIONLAB_SOAK_SEED must be an integer, not {s:?}")),
        Err(_) => DEFAULT_SEED,
    }
}

/// The invariants, numbered as in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Invariant {
    AckedWriteLost = 1,
    LoggedInUserLoggedOut = 2,
    CopiesDiffer = 3,
    LoggedOutSessionUsable = 4,
}

impl Invariant {
    const ALL: [Invariant; 4] = [
        Invariant::AckedWriteLost,
        Invariant::LoggedInUserLoggedOut,
        Invariant::CopiesDiffer,
        Invariant::LoggedOutSessionUsable,
    ];

    fn name(self) -> &'static str {
        match self {
            Invariant::AckedWriteLost => "1 no acknowledged write lost",
            Invariant::LoggedInUserLoggedOut => "2 no logged-in user logged out",
            Invariant::CopiesDiffer => "3 copies equal within 5 s of a heal",
            Invariant::LoggedOutSessionUsable => "4 no logged-out session usable",
        }
    }
}

/// One violation: which invariant, whose, and a short counterexample.
#[derive(Debug, Clone)]
struct Broken {
    invariant: Invariant,
    user: Option<u32>,
    text: String,
}

/// What happened to the cluster, when (µs since the start), for failure
/// messages; and the partition periods, for invariant 4.
#[derive(Default)]
struct Timeline {
    events: Vec<(u64, String)>,
    /// `(cut, healed)`; `healed` is `u64::MAX` while the cut lasts.
    partitions: Vec<(u64, u64)>,
}

impl Timeline {
    fn text(&self) -> String {
        let mut s = String::new();
        for (at, what) in &self.events {
            let _ = writeln!(s, "  {:>9.3} s  {what}", *at as f64 / 1e6);
        }
        s
    }

    /// Whether any partition overlapped `from..=to`.
    fn partitioned_during(&self, from: u64, to: u64) -> bool {
        self.partitions.iter().any(|&(a, b)| a <= to && from <= b)
    }
}

/// What every task shares.
struct Shared {
    seed: u64,
    start: Instant,
    app_ports: Vec<(String, u16)>,
    cluster_ports: Vec<(String, u16)>,
    lb: String,
    secret: String,
    http: reqwest::Client,
    /// Users hold it for reading around each operation; the convergence
    /// check takes it for writing, so no user writes while copies are
    /// compared.
    gate: RwLock<()>,
    stop: AtomicBool,
    timeline: Mutex<Timeline>,
    broken: Mutex<Vec<Broken>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn event(&self, what: String) {
        let at = self.now_us();
        self.timeline.lock().unwrap().events.push((at, what));
    }

    fn broke(&self, invariant: Invariant, user: Option<u32>, text: String) {
        let at = self.now_us();
        self.event(format!(
            "VIOLATION of invariant {}{}",
            invariant.name(),
            user.map(|u| format!(" (user {u})")).unwrap_or_default()
        ));
        self.broken.lock().unwrap().push(Broken {
            invariant,
            user,
            text: format!("at {:.3} s: {text}", at as f64 / 1e6),
        });
    }
}

/// An answer, as much of it as the soak reads.
struct Reply {
    status: u16,
    by: Option<String>,
    ack: Option<String>,
    /// `Some(Some(v))`: a new session cookie value; `Some(None)`: the
    /// session cookie expired.
    set_session: Option<Option<String>>,
    set_route: Option<Option<String>>,
    json: serde_json::Value,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The user of the session a `/api/session` answer shows.
    fn session_user(&self) -> Option<&str> {
        self.json["session"]["user"].as_str()
    }
}

fn cookie_of(set_cookie: &str) -> Option<(String, Option<String>)> {
    let mut parts = set_cookie.split(';');
    let (name, value) = parts.next()?.trim().split_once('=')?;
    let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
    let value = (!expired && !value.is_empty()).then(|| value.to_string());
    Some((name.to_string(), value))
}

/// One request; `Err` when no answer came (refused, reset, timed out).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cookie: Option<&str>,
    form: Option<&[(&str, &str)]>,
) -> Result<Reply, String> {
    let mut req = http
        .request(method, url)
        .header("accept", "application/json");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(f) = form {
        req = req.form(f);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let by = header("x-served-by");
    let ack = header("x-replication-ack");
    let mut set_session = None;
    let mut set_route = None;
    for v in resp.headers().get_all("set-cookie") {
        let Some((name, value)) = v.to_str().ok().and_then(cookie_of) else {
            continue;
        };
        match name.as_str() {
            "SLSESSION" => set_session = Some(value),
            "SLROUTE" => set_route = Some(value),
            _ => {}
        }
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        by,
        ack,
        set_session,
        set_route,
        json: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    })
}

/// One login of one user, as the user remembers it.
#[derive(Debug, Clone)]
struct Login {
    session: String,
    route: Option<String>,
    /// Index of the login in the user's operations.
    login_op: usize,
    /// Increments answered 2xx on this session with `acked; ...`.
    acked: u64,
    /// Increments answered 2xx on this session (acked or timed out).
    answered: u64,
    last_counter: Option<i64>,
    /// The last acknowledged increment, for counterexamples.
    last_acked_op: Option<usize>,
}

impl Login {
    fn cookie(&self) -> String {
        match &self.route {
            Some(r) => format!("SLSESSION={}; SLROUTE={r}", self.session),
            None => format!("SLSESSION={}", self.session),
        }
    }
}

/// A session the user logged out of: its cookie, to replay.
#[derive(Debug, Clone)]
struct LoggedOut {
    session: String,
    logout_op: usize,
}

/// Everything one user did and saw.
struct UserLog {
    id: u32,
    name: &'static str,
    ops: Vec<Operation>,
    login: Option<Login>,
    logged_out: Vec<LoggedOut>,
    /// Replays right after a logout that a node answered as logged in
    /// while a partition overlapped (allowed; see invariant 4).
    replays_across_cut: u64,
    replays: u64,
}

impl UserLog {
    /// The last `n` operations up to `upto` (and `extra`), as text.
    fn ops_text(&self, upto: usize, n: usize, extra: &[usize]) -> String {
        let mut idx: Vec<usize> = (upto.saturating_sub(n - 1)..=upto).collect();
        idx.extend_from_slice(extra);
        idx.sort_unstable();
        idx.dedup();
        let mut s = String::new();
        for i in idx {
            if let Some(op) = self.ops.get(i) {
                let _ = writeln!(s, "    {}", op_text(op));
            }
        }
        s
    }
}

fn op_text(op: &Operation) -> String {
    format!(
        "{:>9.3} .. {:<9.3} {:<9} -> {:<7} {:>4}{}{}{}",
        op.invoke_us as f64 / 1e6,
        op.complete_us as f64 / 1e6,
        op.op.name(),
        op.node.as_deref().unwrap_or("(none)"),
        op.status.map_or("-".into(), |s| s.to_string()),
        op.counter
            .map(|c| format!(" counter {c}"))
            .unwrap_or_default(),
        op.version
            .as_deref()
            .map(|v| format!(" ack {v}"))
            .unwrap_or_default(),
        match op.logged_in {
            Some(false) => " (no session)",
            _ => "",
        },
    )
}

/// Records an operation; returns its index. The history's `version`
/// field carries the answer's `X-Replication-Ack` here (the soak's one
/// extension of the format, for counterexamples).
fn record(
    log: &mut UserLog,
    op: OpKind,
    invoke_us: u64,
    complete_us: u64,
    reply: Option<&Reply>,
    counter: Option<i64>,
    logged_in: Option<bool>,
) -> usize {
    let (node, status, ack) = match reply {
        Some(r) => (r.by.clone(), Some(r.status), r.ack.clone()),
        None => (None, None, None),
    };
    log.ops.push(Operation {
        user: log.id,
        client: 0,
        op,
        invoke_us,
        complete_us,
        node,
        status,
        counter,
        version: ack,
        logged_in,
        session: None,
    });
    log.ops.len() - 1
}

/// Replays a logged-out session's cookie to every node directly; returns
/// the nodes that answered it as logged in.
async fn replay(sh: &Shared, session: &str) -> Vec<String> {
    let cookie = format!("SLSESSION={session}");
    let mut alive = Vec::new();
    for (node, port) in &sh.app_ports {
        let url = format!("http://127.0.0.1:{port}/api/session");
        if let Ok(r) = call(&sh.http, reqwest::Method::GET, &url, Some(&cookie), None).await {
            if r.status == 200 && r.session_user().is_some() {
                alive.push(node.clone());
            }
        }
    }
    alive
}

/// One simulated user until told to stop.
async fn user(sh: Arc<Shared>, id: u32) -> UserLog {
    let mut rng = Rng::new(sh.seed ^ (u64::from(id) + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut log = UserLog {
        id,
        name: DEMO_USERS[id as usize % DEMO_USERS.len()],
        ops: Vec::new(),
        login: None,
        logged_out: Vec::new(),
        replays_across_cut: 0,
        replays: 0,
    };
    // A quarter of the users log out now and then (and log in again);
    // the others keep one session through every fault.
    let logs_out = id % 4 == 0;
    let lb = sh.lb.clone();
    // Start spread over the first second.
    tokio::time::sleep(rng.millis(0, 1_000)).await;
    while !sh.stop.load(Ordering::Relaxed) && log.ops.len() < MAX_OPS_PER_USER {
        let gate = sh.gate.read().await;
        match log.login.clone() {
            None => {
                let t0 = sh.now_us();
                let r = call(
                    &sh.http,
                    reqwest::Method::POST,
                    &format!("{lb}/login"),
                    None,
                    Some(&[("username", log.name), ("password", "sessionlab")]),
                )
                .await;
                let t1 = sh.now_us();
                let session = r
                    .as_ref()
                    .ok()
                    .filter(|r| r.status == 200)
                    .and_then(|r| r.set_session.clone().flatten());
                let i = record(
                    &mut log,
                    OpKind::Login,
                    t0,
                    t1,
                    r.as_ref().ok(),
                    None,
                    Some(session.is_some()),
                );
                if let Some(session) = session {
                    let route = r.ok().and_then(|r| r.set_route.flatten());
                    log.login = Some(Login {
                        session,
                        route,
                        login_op: i,
                        acked: 0,
                        answered: 0,
                        last_counter: Some(0),
                        last_acked_op: None,
                    });
                }
            }
            Some(login) => {
                let roll = rng.range(0, 99);
                if logs_out && roll < 3 {
                    logout(&sh, &mut log, login).await;
                } else if roll < 65 {
                    increment(&sh, &mut log, login).await;
                } else {
                    read(&sh, &mut log, login).await;
                }
            }
        }
        drop(gate);
        tokio::time::sleep(rng.millis(40, 120)).await;
    }
    log
}

/// Takes the LB's new sticky cookie, if the answer set one.
fn take_route(log: &mut UserLog, r: &Result<Reply, String>) {
    if let (Some(login), Ok(r)) = (log.login.as_mut(), r) {
        if let Some(route) = &r.set_route {
            login.route = route.clone();
        }
    }
}

/// An answer that shows the user's session is gone: a violation of
/// invariant 2 (the user did not log out), and the user logs in again.
fn lost_session(sh: &Shared, log: &mut UserLog, login: &Login, i: usize) {
    let ops = log.ops_text(i, 4, &[login.login_op]);
    sh.broke(
        Invariant::LoggedInUserLoggedOut,
        Some(log.id),
        format!(
            "user {} ({}) is logged in and never logged out of this session, yet the answer \
             shows no session:\n{ops}",
            log.id, log.name
        ),
    );
    log.login = None;
}

/// An answered request of a logged-in user through the LB.
struct Answer {
    /// When it was sent and when the answer came (the history's times).
    t0: u64,
    t1: u64,
    reply: Reply,
}

/// Sends one request of a logged-in user (with the session's cookie)
/// through the LB and takes any new sticky cookie. With no answer the
/// operation is recorded as unanswered here and `None` returned, so each
/// caller only handles an answer.
async fn session_call(
    sh: &Shared,
    log: &mut UserLog,
    login: &Login,
    op: OpKind,
    method: reqwest::Method,
    path: &str,
) -> Option<Answer> {
    let t0 = sh.now_us();
    let r = call(
        &sh.http,
        method,
        &format!("{}{path}", sh.lb),
        Some(&login.cookie()),
        None,
    )
    .await;
    let t1 = sh.now_us();
    take_route(log, &r);
    match r {
        Ok(reply) => Some(Answer { t0, t1, reply }),
        Err(_) => {
            record(log, op, t0, t1, None, None, None);
            None
        }
    }
}

async fn increment(sh: &Shared, log: &mut UserLog, login: Login) {
    let op = OpKind::Increment;
    let path = "/api/counter/increment";
    let Some(Answer { t0, t1, reply }) =
        session_call(sh, log, &login, op, reqwest::Method::POST, path).await
    else {
        return;
    };
    // A node that does not know the session starts a new one for the
    // increment and sets its cookie.
    let new_session = matches!(&reply.set_session, Some(Some(v)) if *v != login.session);
    let counter = reply.json["counter"].as_i64();
    let logged_in = reply.ok().then_some(!new_session);
    let i = record(log, op, t0, t1, Some(&reply), counter, logged_in);
    if logged_in == Some(false) {
        lost_session(sh, log, &login, i);
        return;
    }
    if reply.ok() {
        let acked = reply.ack.as_deref().is_some_and(|a| a.starts_with("acked"));
        let l = log.login.as_mut().expect("logged in");
        l.answered += 1;
        if acked {
            l.acked += 1;
            l.last_acked_op = Some(i);
        }
        l.last_counter = counter;
    }
}

async fn read(sh: &Shared, log: &mut UserLog, login: Login) {
    let op = OpKind::Read;
    let Some(Answer { t0, t1, reply }) =
        session_call(sh, log, &login, op, reqwest::Method::GET, "/api/session").await
    else {
        return;
    };
    let logged_in = (reply.status == 200).then(|| reply.session_user() == Some(log.name));
    let counter = reply.json["session"]["data"]["counter"]
        .as_i64()
        .or(logged_in.filter(|l| *l).map(|_| 0));
    let i = record(log, op, t0, t1, Some(&reply), counter, logged_in);
    match logged_in {
        Some(false) => lost_session(sh, log, &login, i),
        Some(true) => log.login.as_mut().expect("logged in").last_counter = counter,
        None => {}
    }
}

async fn logout(sh: &Shared, log: &mut UserLog, login: Login) {
    let op = OpKind::Logout;
    // (A route cookie taken here is dropped with the login just below.)
    let answer = session_call(sh, log, &login, op, reqwest::Method::POST, "/logout").await;
    // Logged out (or, with no answer, perhaps): log in again next time.
    log.login = None;
    let Some(Answer { t0, t1, reply }) = answer else {
        return;
    };
    let i = record(log, op, t0, t1, Some(&reply), None, None);
    if !reply.ok() {
        return;
    }
    log.logged_out.push(LoggedOut {
        session: login.session.clone(),
        logout_op: i,
    });
    let alive = replay(sh, &login.session).await;
    let t2 = sh.now_us();
    log.replays += 1;
    if alive.is_empty() {
        return;
    }
    if sh.timeline.lock().unwrap().partitioned_during(t0, t2) {
        log.replays_across_cut += 1;
        return;
    }
    let ops = log.ops_text(i, 3, &[]);
    sh.broke(
        Invariant::LoggedOutSessionUsable,
        Some(log.id),
        format!(
            "user {} logged out (answered {}), and with no partition since, the old cookie \
             replayed directly is still logged in on {}:\n{ops}",
            log.id,
            reply.status,
            alive.join(", ")
        ),
    );
}

/// Every running node's sessions: id prefix -> (version, user).
async fn copies(sh: &Shared) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let path = "/admin/v1/sessions?limit=10000";
    for (node, port) in &sh.cluster_ports {
        let mut req = sh.http.get(format!("http://127.0.0.1:{port}{path}"));
        for (k, v) in sign(&sh.secret, "GET", path, b"").pairs() {
            req = req.header(k, v);
        }
        let Ok(resp) = req.send().await else {
            continue; // not running
        };
        let Ok(body) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        let list = body["sessions"].as_array().cloned().unwrap_or_default();
        let held = list
            .iter()
            .map(|s| {
                (
                    s["id_prefix"].as_str().unwrap_or("?").to_string(),
                    format!("{} user={}", s["version"], s["user"]),
                )
            })
            .collect();
        out.insert(node.clone(), held);
    }
    out
}

/// The first few differences between the nodes' copies.
fn differences(copies: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut ids: Vec<&String> = copies.values().flat_map(|m| m.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut s = String::new();
    let mut shown = 0;
    for id in ids {
        let held: Vec<String> = copies
            .iter()
            .map(|(n, m)| format!("{n}: {}", m.get(id).map_or("-", String::as_str)))
            .collect();
        let first = copies.values().next().and_then(|m| m.get(id));
        if copies.values().any(|m| m.get(id) != first) {
            let _ = writeln!(s, "    session {id}…  {}", held.join(" | "));
            shown += 1;
            if shown == 5 {
                break;
            }
        }
    }
    s
}

/// Invariant 3: holds the users and waits until every running node holds
/// the same copies, at most [`CONVERGE_LIMIT`] after `since`; returns how
/// long it took.
async fn converge(sh: &Shared, since: Instant, after: &str) -> Option<Duration> {
    let _held = sh.gate.write().await;
    let mut last = BTreeMap::new();
    for _ in 0..1_000 {
        let c = copies(sh).await;
        let first = c.values().next();
        if c.len() >= 2 && c.values().all(|m| Some(m) == first) {
            let took = since.elapsed();
            sh.event(format!(
                "copies equal on {} nodes ({} sessions) {:.0?} after the {after}",
                c.len(),
                first.map_or(0, BTreeMap::len),
                took
            ));
            return Some(took);
        }
        last = c;
        if since.elapsed() >= CONVERGE_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sh.broke(
        Invariant::CopiesDiffer,
        None,
        format!(
            "the copies still differ {:.1?} after the {after}:\n{}",
            since.elapsed(),
            differences(&last)
        ),
    );
    None
}

/// The counts of the fault schedule.
#[derive(Default, Debug)]
struct FaultCounts {
    kills: u64,
    restarts: u64,
    partitions: u64,
    heals: u64,
    converged: u64,
    slowest_converge: Duration,
}

/// Applies `action` through the lab, recording it; panics (with the
/// timeline) if the lab fails.
async fn act(sh: &Shared, lab: &Lab, action: Action) {
    let began = sh.now_us();
    if matches!(action, Action::Partition { .. }) {
        sh.timeline
            .lock()
            .unwrap()
            .partitions
            .push((began, u64::MAX));
    }
    let said = sessionlab_lab::perform(lab, &action).await;
    let took = Duration::from_micros(sh.now_us() - began);
    match said {
        Ok(_) => sh.event(format!("{} ({took:.0?})", action.command())),
        Err(e) => {
            sh.event(format!("{} FAILED: {e}", action.command()));
            let t = sh.timeline.lock().unwrap().text();
            panic!(
                "seed {}: the lab failed to apply `{}`: {e}\nfault timeline:\n{t}",
                sh.seed,
                action.command()
            );
        }
    }
    if action == Action::Heal {
        let end = sh.now_us();
        let mut t = sh.timeline.lock().unwrap();
        for p in t.partitions.iter_mut().filter(|p| p.1 == u64::MAX) {
            p.1 = end;
        }
    }
}

/// The fault schedule: one fault at a time, random node, random pauses,
/// until [`CHAOS`] is over; everything is up and healed when it returns.
async fn chaos(sh: Arc<Shared>, run_dir: std::path::PathBuf) -> FaultCounts {
    let lab = Lab::new(RunFolder::new(run_dir)).expect("the lab on the run folder");
    let mut rng = Rng::new(sh.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x000C_4A05);
    let mut counts = FaultCounts::default();
    let nodes: Vec<String> = sh.app_ports.iter().map(|(n, _)| n.clone()).collect();
    let end = sh.start + CHAOS;
    // Let the users log in before the first fault.
    tokio::time::sleep(rng.millis(1_500, 3_000)).await;
    for _ in 0..MAX_FAULTS {
        // A fault and its recovery take up to ~10 s; none starts later.
        if Instant::now() + Duration::from_secs(10) > end {
            break;
        }
        let node = nodes[rng.range(0, nodes.len() as u64 - 1) as usize].clone();
        if rng.chance(50) {
            act(&sh, &lab, Action::Kill(node.clone())).await;
            counts.kills += 1;
            tokio::time::sleep(rng.millis(500, 4_000)).await;
            act(&sh, &lab, Action::Restart(node.clone())).await;
            counts.restarts += 1;
            let since = Instant::now();
            if let Some(t) = converge(&sh, since, &format!("restart of {node}")).await {
                counts.converged += 1;
                counts.slowest_converge = counts.slowest_converge.max(t);
            }
        } else {
            act(
                &sh,
                &lab,
                Action::Partition {
                    node: node.clone(),
                    from: Vec::new(),
                },
            )
            .await;
            counts.partitions += 1;
            // Sometimes shorter than the failure detection (1.5 s), so
            // writes time out; sometimes long enough for the sides to
            // declare each other down.
            tokio::time::sleep(rng.millis(500, 5_000)).await;
            act(&sh, &lab, Action::Heal).await;
            counts.heals += 1;
            let since = Instant::now();
            if let Some(t) = converge(&sh, since, &format!("heal of {node}")).await {
                counts.converged += 1;
                counts.slowest_converge = counts.slowest_converge.max(t);
            }
        }
        tokio::time::sleep(rng.millis(300, 2_000)).await;
    }
    let left = end.saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
    counts
}

/// What the final checks counted.
#[derive(Default)]
struct FinalCounts {
    logins: u64,
    replays: u64,
    /// Reads of a live login (through the LB or on a node) whose counter
    /// is below the login's 2xx increments, timed-out ones included: not a
    /// violation of ack=all (see the module docs), reported.
    below_answered: u64,
}

/// The final checks (everyone up, healed, the users stopped): invariant 1
/// for every live login through the LB and on every node's copy, and
/// invariant 4 for every logged-out session on every node.
async fn final_checks(sh: &Shared, logs: &[UserLog]) -> FinalCounts {
    let mut counts = FinalCounts::default();
    for log in logs {
        for out in &log.logged_out {
            let alive = replay(sh, &out.session).await;
            counts.replays += 1;
            if !alive.is_empty() {
                let ops = log.ops_text(out.logout_op, 3, &[]);
                sh.broke(
                    Invariant::LoggedOutSessionUsable,
                    Some(log.id),
                    format!(
                        "at the end, user {}'s logged-out session is logged in on {}:\n{ops}",
                        log.id,
                        alive.join(", ")
                    ),
                );
            }
        }
        let Some(login) = &log.login else {
            continue;
        };
        counts.logins += 1;
        let mut targets = vec![(
            "the LB".to_string(),
            format!("{}/api/session", sh.lb),
            login.cookie(),
        )];
        for (node, port) in &sh.app_ports {
            targets.push((
                node.clone(),
                format!("http://127.0.0.1:{port}/api/session"),
                format!("SLSESSION={}", login.session),
            ));
        }
        for (place, url, cookie) in targets {
            let r = call(&sh.http, reqwest::Method::GET, &url, Some(&cookie), None).await;
            let (user, counter) = match &r {
                Ok(r) if r.status == 200 => (
                    r.session_user().map(str::to_string),
                    r.json["session"]["data"]["counter"].as_i64().unwrap_or(0),
                ),
                Ok(r) => (None, -i64::from(r.status)),
                Err(_) => (None, -1),
            };
            let kept = user.as_deref() == Some(log.name) && counter >= login.acked as i64;
            if !kept {
                let extra: Vec<usize> = login.last_acked_op.into_iter().collect();
                let last = log.ops.len().saturating_sub(1);
                let ops = log.ops_text(last, 3, &extra);
                sh.broke(
                    Invariant::AckedWriteLost,
                    Some(log.id),
                    format!(
                        "user {} ({}) had {} acknowledged increments ({} answered 2xx, last \
                         counter seen {:?}) on this login; at the end {place} shows user \
                         {user:?} with counter {counter} (negative: the status, or -1 for no \
                         answer):\n{ops}",
                        log.id, log.name, login.acked, login.answered, login.last_counter
                    ),
                );
            } else if counter < login.answered as i64 {
                counts.below_answered += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_keeps_acknowledged_writes_logins_logouts_and_converges() {
    let seed = seed();
    println!("soak: seed {seed} (SESSIONLAB_SOAK_SEED={seed} replays this schedule)");
    let tc = TestCluster::up_with(
        "sticky-replicated",
        NODES,
        &["--node-arg", "--replication-ack=all"],
    );
    let st = tc.state();
    let sh = Arc::new(Shared {
        seed,
        start: Instant::now(),
        app_ports: st
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.app_port))
            .collect(),
        cluster_ports: st
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.cluster_port))
            .collect(),
        lb: tc.app_url(),
        secret: tc.run_folder().read_secret().unwrap(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap(),
        gate: RwLock::new(()),
        stop: AtomicBool::new(false),
        timeline: Mutex::default(),
        broken: Mutex::default(),
    });
    sh.event(format!("cluster up: {}", sh.lb));

    let users: Vec<_> = (0..USERS)
        .map(|id| tokio::spawn(user(sh.clone(), id)))
        .collect();
    // The faults on a thread of their own with its own runtime: a kill
    // waits for the process to exit, and that must not stall the users.
    let chaos_sh = sh.clone();
    let run_dir = tc.run_dir.clone();
    let faults = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(chaos(chaos_sh, run_dir))
    });
    let counts = tokio::task::spawn_blocking(move || faults.join())
        .await
        .unwrap()
        .unwrap_or_else(|_| {
            let t = sh.timeline.lock().unwrap().text();
            panic!("seed {seed}: the fault schedule panicked\nfault timeline:\n{t}")
        });
    sh.stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for u in users {
        let log = tokio::time::timeout(REQUEST_TIMEOUT * 3, u)
            .await
            .expect("a user stops within a few requests")
            .unwrap();
        logs.push(log);
    }
    sh.event("users stopped".into());
    converge(&sh, Instant::now(), "end of the run").await;
    let fin = final_checks(&sh, &logs).await;

    // The counts.
    let ops: Vec<Operation> = logs.iter().flat_map(|l| l.ops.iter().cloned()).collect();
    let count = |k: OpKind| ops.iter().filter(|o| o.op == k).count();
    let answered = |k: OpKind| ops.iter().filter(|o| o.op == k && o.ok()).count();
    let acked: u64 = logs
        .iter()
        .flat_map(|l| l.login.iter())
        .map(|l| l.acked)
        .sum();
    // Increments answered on the user's session whose ack header starts so.
    let increments_with_ack = |ack: &str| {
        ops.iter()
            .filter(|o| {
                o.op == OpKind::Increment
                    && o.logged_in == Some(true)
                    && o.version.as_deref().is_some_and(|a| a.starts_with(ack))
            })
            .count()
    };
    let acked_all = increments_with_ack("acked");
    let timed_out = increments_with_ack("timeout");
    let failed = ops.iter().filter(|o| o.status.is_none()).count();
    let replays: u64 = logs.iter().map(|l| l.replays).sum();
    let across_cut: u64 = logs.iter().map(|l| l.replays_across_cut).sum();
    let mut sorted = ops.clone();
    sessionlab_load::history::completion_order(&mut sorted);
    let checker = sessionlab_load::check::check(&sorted);
    let broken = sh.broken.lock().unwrap().clone();
    let per = |i: Invariant| broken.iter().filter(|b| b.invariant == i).count();

    let mut summary = format!(
        "soak summary (seed {seed}, {:.0?} of chaos, {:.0?} in all):\n\
         \x20 users {USERS}, operations {} ({} logins, {} increments, {} reads, {} logouts; \
         {failed} without an answer)\n\
         \x20 increments answered 2xx on the user's session {}: acknowledged (acked) {acked_all}, \
         timed out {timed_out}; acked on the logins live at the end {acked}\n\
         \x20 faults: {} kills, {} restarts, {} partitions, {} heals; copies converged {} times \
         (slowest {:.0?})\n\
         \x20 logout replays right after the logout {replays} ({across_cut} across a partition, \
         allowed); at the end {} logged-out sessions and {} live logins checked on every \
         node ({} reads below the login's 2xx increments, timed-out ones included)\n\
         \x20 the history checker (informational): {}",
        CHAOS,
        sh.start.elapsed(),
        ops.len(),
        count(OpKind::Login),
        count(OpKind::Increment),
        count(OpKind::Read),
        count(OpKind::Logout),
        answered(OpKind::Increment),
        counts.kills,
        counts.restarts,
        counts.partitions,
        counts.heals,
        counts.converged,
        counts.slowest_converge,
        fin.replays,
        fin.logins,
        fin.below_answered,
        checker.text().lines().next().unwrap_or(""),
    );
    for i in Invariant::ALL {
        let _ = write!(
            summary,
            "\n  violations of invariant {}: {}",
            i.name(),
            per(i)
        );
    }
    println!("{summary}");
    println!("{}", checker.text());
    assert!(
        counts.kills + counts.partitions >= 4,
        "seed {seed}: too few faults to call it a soak: {counts:?}"
    );
    if !broken.is_empty() {
        let mut s = format!(
            "seed {seed}: {} violations (SESSIONLAB_SOAK_SEED={seed} replays the schedule)\n",
            broken.len()
        );
        for b in broken.iter().take(8) {
            let _ = writeln!(
                s,
                "\ninvariant {}{}: {}",
                b.invariant.name(),
                b.user.map(|u| format!(", user {u}")).unwrap_or_default(),
                b.text
            );
        }
        let t = sh.timeline.lock().unwrap().text();
        panic!("{s}\n{summary}\n\nfault timeline:\n{t}");
    }
}
