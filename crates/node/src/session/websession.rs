//! `WebSession`: the session as a request handler sees it.
//!
//! A handler that needs the session takes a [`WebSession`] argument. On first
//! use in a request it finds the id the client presented (the cookie, or the
//! `;sid=` parameter in url mode), loads that session from the store, and
//! keeps it for the rest of the request. Handlers then read it and record
//! what should change:
//!
//! - [`WebSession::update`] changes the data, **creating** a session with a
//!   fresh id if there is none. Only writes create sessions: a page view,
//!   `/healthz`, or a bot fetching `/favicon.ico` never fills the store.
//! - [`WebSession::login`] sets the user and **rotates the id**: the data is
//!   copied to a brand-new id and the old one is deleted. If an attacker had
//!   planted an id in the victim's browser (session *fixation*), it is worth
//!   nothing after the victim logs in.
//! - [`WebSession::logout`] **deletes** the session on the server, so the id
//!   is dead even if someone copied it, and expires the cookie.
//!
//! Nothing is written while the handler runs. A session with something to
//! do (a change, or a touch that is due) registers itself in the request;
//! after the handler returns, the session middleware ([`crate::session::middleware`])
//! calls [`finalize`] on it, which does the one store operation the request
//! needs:
//!
//! - a `put` if the data changed. If the store refuses it (413 for data over
//!   the per-session limit, 503 for a full store), the handler's answer is
//!   replaced by the error and the stored copy stays as it was;
//! - a `delete` at logout;
//! - otherwise a `touch`, which moves the idle-expiry clock and is much
//!   cheaper than a `put`, at most once per [`TOUCH_INTERVAL_MS`].
//!
//! Requests whose handler never asked for the session cost the store
//! nothing, and a plain read of a recently touched session costs it one
//! `get`.
//!
//! An id that is malformed, oversized, duplicated, expired or simply unknown
//! reads as "no session"; the server never adopts an id it did not issue.
//!
//! A handler takes one `WebSession` argument; the session is loaded once per
//! extraction.

use std::cell::{Ref, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};
use sessionlab_session::ReplicationAck;
use sessionlab_session::jwt::Claims;
use sessionlab_session::{Session, SessionId, StoreError, clock};

use crate::config::{AuthOptions, BindSession, NodeOptions, Tracking};
use crate::error::NodeError;
use crate::session::binding;
use crate::session::cas::{self, Op, ReplyBuilder};
use crate::session::cookie::{self, CookiePolicy, Presented, PresentedId};
use crate::session::tracking::{Links, UrlSid};
use crate::state::NodeState;

/// A session read without changes is *touched* (its last access moved to
/// now) at most this often. Idle timeouts are minutes long, so a second of
/// imprecision is invisible, and a busy user's burst of requests costs one
/// store write instead of one per request (with replication, one message).
pub const TOUCH_INTERVAL_MS: u64 = 1000;

/// The data key that records "remember me" (a persistent cookie).
pub const REMEMBER_KEY: &str = "remember_me";

/// How this node tracks, times out and writes sessions.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    pub tracking: Tracking,
    pub cookie: CookiePolicy,
    pub idle_timeout_ms: u64,
    /// `--anonymous-idle-timeout`: a session starts with it; a login gives
    /// it `idle_timeout_ms`.
    pub anonymous_idle_timeout_ms: u64,
    pub absolute_timeout_ms: u64,
    /// `--auth jwt`: the "session" is the login's data record, found
    /// through the bearer token, and no cookie is ever sent.
    pub jwt: bool,
    /// `--bind-session user-agent`.
    pub bind_user_agent: bool,
}

impl SessionPolicy {
    pub fn new(cfg: &NodeOptions) -> Self {
        SessionPolicy {
            tracking: cfg.auth.tracking(),
            cookie: cfg.cookie.clone(),
            idle_timeout_ms: cfg.timeouts.idle_ms(),
            anonymous_idle_timeout_ms: cfg.timeouts.anonymous_idle_ms(),
            absolute_timeout_ms: cfg.timeouts.absolute_ms(),
            jwt: matches!(cfg.auth, AuthOptions::Jwt(_)),
            bind_user_agent: cfg.auth.binding() == BindSession::UserAgent,
        }
    }

    /// A new anonymous session under `id` (the store's
    /// [`new_id`](sessionlab_session::SessionStore::new_id)).
    fn fresh(&self, id: SessionId, now: u64) -> Session {
        Session::new(
            id,
            now,
            self.anonymous_idle_timeout_ms,
            self.absolute_timeout_ms,
        )
    }

    /// The id the request presented, by the tracking mode's rules, and
    /// whether it carried anything at all under the session's name (a
    /// malformed cookie is still expired at logout).
    fn presented(&self, req: &HttpRequest) -> (Option<PresentedId>, bool) {
        match self.tracking {
            Tracking::Cookie => match cookie::find(req.headers(), &self.cookie.name) {
                Presented::One(v) => (cookie::parse_value(v), true),
                Presented::Unusable => (None, true),
                Presented::Absent => (None, false),
            },
            Tracking::Url => {
                let p = req.extensions().get::<UrlSid>().and_then(|s| s.0.clone());
                let any = p.is_some();
                (p, any)
            }
        }
    }
}

/// A change recorded by the handler, applied by [`finalize`].
#[derive(Debug)]
enum Pending {
    Unchanged,
    Write {
        session: Session,
        /// The id is new to the client (new session or rotation): send it.
        new_id: bool,
        /// Rotation: the old id, deleted after the new one is stored.
        rotated_from: Option<SessionId>,
    },
    Delete,
}

struct State {
    /// The client presented something under the session's name.
    presented: bool,
    /// The well-formed id it presented, held here or not: a logout
    /// deletes (tombstones) it even if this node has no copy.
    presented_id: Option<SessionId>,
    /// The presented route suffix named another node (failover): re-send the
    /// cookie so the balancer's sticky-route follows the session here.
    reroute: bool,
    loaded: Option<Session>,
    pending: Pending,
    /// Put in the request's extensions, so the middleware finalizes it.
    registered: bool,
    /// The changes [`WebSession::update`] made, in order, to replay on a
    /// fresh copy after a compare-and-set conflict ([`crate::session::cas`]).
    ops: Vec<Op>,
    /// Rebuilds the handler's answer after a replay.
    rebuild: Option<ReplyBuilder>,
    /// jwt mode: the verified access token's claims.
    claims: Option<Box<Claims>>,
}

impl State {
    fn new(presented: bool, reroute: bool, loaded: Option<Session>) -> State {
        State {
            presented,
            presented_id: None,
            reroute,
            loaded,
            pending: Pending::Unchanged,
            registered: false,
            ops: Vec::new(),
            rebuild: None,
            claims: None,
        }
    }
}

/// The request's session; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct WebSession {
    state: Rc<RefCell<State>>,
    node: web::Data<NodeState>,
    req: HttpRequest,
}

/// What [`finalize`] asks the middleware to send.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieAction {
    Keep,
    Set {
        id: SessionId,
        max_age_secs: Option<u64>,
    },
    Expire,
}

/// The outcome of [`finalize`].
#[derive(Debug)]
pub struct Finalized {
    pub cookie: CookieAction,
    /// Set when the request wrote the session.
    pub replication: Option<ReplicationAck>,
    /// The handler's answer rebuilt from the stored data, when the write
    /// was replayed after a conflict ([`crate::session::cas`]).
    pub rebuilt: Option<HttpResponse>,
}

impl CookieAction {
    /// `Set` (the session's id and its Max-Age) when `send`, else `Keep`.
    fn set_if(send: bool, session: &Session, now: u64) -> CookieAction {
        if send {
            CookieAction::Set {
                id: session.id.clone(),
                max_age_secs: max_age_secs(session, now),
            }
        } else {
            CookieAction::Keep
        }
    }
}

impl Finalized {
    /// A request that wrote nothing: only the cookie to send.
    fn cookie_only(cookie: CookieAction) -> Finalized {
        Finalized {
            cookie,
            replication: None,
            rebuilt: None,
        }
    }
}

impl WebSession {
    async fn load(req: HttpRequest) -> Result<WebSession, NodeError> {
        if let Some(existing) = req.extensions().get::<WebSession>() {
            return Ok(existing.clone());
        }
        let node = req
            .app_data::<web::Data<NodeState>>()
            .ok_or(NodeError::NotReady)?
            .clone();
        if node.tokens.is_some() {
            let (loaded, claims) = crate::auth::tokens::authenticate(&node, &req).await?;
            let touch_due = loaded.as_ref().is_some_and(|s| {
                clock::now_ms().saturating_sub(s.last_access_ms) >= TOUCH_INTERVAL_MS
            });
            let mut st = State::new(false, false, loaded);
            st.claims = claims.map(Box::new);
            let ws = WebSession {
                state: Rc::new(RefCell::new(st)),
                node,
                req,
            };
            if touch_due {
                ws.register();
            }
            return Ok(ws);
        }
        let policy = &node.policy;
        let (presented, presented_any) = policy.presented(&req);
        let (loaded, reroute) = match &presented {
            Some(p) => {
                let loaded = node.store.get(&p.id).await?;
                let reroute = loaded.is_some()
                    && policy.cookie.route.is_some()
                    && p.route.as_deref() != policy.cookie.route.as_deref();
                (loaded, reroute)
            }
            None => (None, false),
        };
        let loaded = if policy.bind_user_agent {
            binding::check(&node, &req, loaded)
        } else {
            loaded
        };
        let touch_due = loaded
            .as_ref()
            .is_some_and(|s| clock::now_ms().saturating_sub(s.last_access_ms) >= TOUCH_INTERVAL_MS);
        if let Some(s) = &loaded {
            record_sid(&s.id);
        }
        let mut st = State::new(presented_any, reroute, loaded);
        st.presented_id = presented.map(|p| p.id);
        let ws = WebSession {
            state: Rc::new(RefCell::new(st)),
            node,
            req,
        };
        if touch_due || reroute {
            ws.register();
        }
        Ok(ws)
    }

    /// Hand the session to the middleware for [`finalize`]. Only sessions
    /// with something to do are registered: a plain read of a recently
    /// touched session (the common case) costs no bookkeeping at all.
    fn register(&self) {
        let mut st = self.state.borrow_mut();
        if !st.registered {
            st.registered = true;
            drop(st);
            self.req.extensions_mut().insert(self.clone());
        }
    }

    /// The node serving this request (saves handlers a second extractor).
    pub fn node(&self) -> &NodeState {
        &self.node
    }

    /// The session as the handler has made it so far (`None`: no session).
    pub fn get(&self) -> Option<Ref<'_, Session>> {
        Ref::filter_map(self.state.borrow(), |st| match &st.pending {
            Pending::Write { session, .. } => Some(session),
            Pending::Delete => None,
            Pending::Unchanged => st.loaded.as_ref(),
        })
        .ok()
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<String> {
        self.get().and_then(|s| s.user.clone())
    }

    /// The session's data (empty when there is no session).
    pub fn data(&self) -> Map<String, Value> {
        self.get().map(|s| s.data()).unwrap_or_default()
    }

    /// The value the client must present: `<id>` or `<id>.<node-id>`.
    pub fn client_value(&self) -> Option<String> {
        self.get().map(|s| self.node.policy.cookie.value(&s.id))
    }

    /// Links for pages and redirects (carry `;sid=` in url mode).
    pub fn links(&self) -> Links {
        Links::new(self.node.policy.tracking, self.client_value())
    }

    /// The working copy to change: the pending write, or a copy of the
    /// loaded session, or a fresh one.
    fn working_copy(&self, st: &mut State) -> (Session, bool, Option<SessionId>) {
        match std::mem::replace(&mut st.pending, Pending::Unchanged) {
            Pending::Write {
                session,
                new_id,
                rotated_from,
            } => (session, new_id, rotated_from),
            Pending::Delete => {
                let old = st.loaded.as_ref().map(|s| s.id.clone());
                (
                    self.node
                        .policy
                        .fresh(self.node.store.new_id(), clock::now_ms()),
                    true,
                    old,
                )
            }
            Pending::Unchanged => match &st.loaded {
                Some(s) => (s.clone(), false, None),
                None => (
                    self.node
                        .policy
                        .fresh(self.node.store.new_id(), clock::now_ms()),
                    true,
                    None,
                ),
            },
        }
    }

    /// Change the data with `f`, creating a session if there is none. A
    /// change that leaves the data as it was is not written. `f` is kept:
    /// if the store refuses the write because the session changed
    /// meanwhile, it is applied again to the fresh copy ([`crate::session::cas`]).
    pub fn update<R>(&self, f: impl Fn(&mut Map<String, Value>) -> R + 'static) -> R {
        let mut st = self.state.borrow_mut();
        let (mut session, new_id, rotated_from) = self.working_copy(&mut st);
        let mut data = session.data();
        let out = f(&mut data);
        st.ops.push(Rc::new(move |d: &mut Map<String, Value>| {
            f(d);
        }));
        session.set_data(&data);
        let unchanged = !new_id
            && rotated_from.is_none()
            && st
                .loaded
                .as_ref()
                .is_some_and(|l| l.data.get() == session.data.get() && l.user == session.user);
        st.pending = if unchanged {
            Pending::Unchanged
        } else {
            Pending::Write {
                session,
                new_id,
                rotated_from,
            }
        };
        drop(st);
        if !unchanged {
            self.register();
        }
        out
    }

    /// If this request's write has to be replayed after a conflict, answer
    /// with `build(node_id, stored data)` instead of the handler's answer,
    /// which was computed from the copy that lost ([`crate::session::cas`]).
    pub fn rebuild_reply_with(
        &self,
        build: impl Fn(&str, &Map<String, Value>) -> HttpResponse + 'static,
    ) {
        let build: ReplyBuilder = std::rc::Rc::new(build);
        self.state.borrow_mut().rebuild = Some(build);
    }

    /// jwt mode: the claims of the verified access token (`None` without
    /// one, and always in session mode).
    pub fn claims(&self) -> Option<Claims> {
        self.state.borrow().claims.as_deref().cloned()
    }

    /// Log `user` in: keep the data, set the user, move it all to a new id.
    /// `remember` asks for a persistent cookie.
    pub fn login(&self, user: &str, remember: bool) {
        let mut st = self.state.borrow_mut();
        let (mut session, _, rotated_from) = self.working_copy(&mut st);
        let old = rotated_from.or_else(|| st.loaded.as_ref().map(|s| s.id.clone()));
        let now = clock::now_ms();
        let mut data = session.data();
        if remember {
            data.insert(REMEMBER_KEY.into(), Value::Bool(true));
        } else {
            data.remove(REMEMBER_KEY);
        }
        session.set_data(&data);
        session.id = self.node.store.new_id();
        session.user = Some(user.to_owned());
        session.idle_timeout_ms = self.node.policy.idle_timeout_ms;
        session.created_ms = now;
        session.last_access_ms = now;
        session.version = Default::default();
        st.pending = Pending::Write {
            session,
            new_id: true,
            rotated_from: old,
        };
        drop(st);
        self.register();
    }

    /// End the session: delete it on the server and expire the cookie.
    pub fn logout(&self) {
        self.state.borrow_mut().pending = Pending::Delete;
        self.register();
    }
}

impl FromRequest for WebSession {
    type Error = NodeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(WebSession::load(req.clone()))
    }
}

/// Put the id's prefix on the request span (only if request spans are on).
fn record_sid(id: &SessionId) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record("sid", id.short());
    }
}

/// `Max-Age` for a session's cookie: none (a browser-session cookie) unless
/// the user asked to be remembered, then the time left until the absolute
/// timeout, in whole seconds rounded up. Rounding up matters: the session was
/// created a few milliseconds before this answer is written, and rounding
/// down would give a fresh 8 h login `Max-Age=28799` or `28800` depending on
/// whether a millisecond passed in between. The cookie outliving the session
/// by under a second is harmless: the server enforces the absolute timeout.
fn max_age_secs(session: &Session, now: u64) -> Option<u64> {
    let remember = session
        .data()
        .get(REMEMBER_KEY)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    remember.then(|| {
        session
            .created_ms
            .saturating_add(session.absolute_timeout_ms)
            .saturating_sub(now)
            .div_ceil(1000)
    })
}

/// Apply what the handler recorded to the store; see the module docs.
pub async fn finalize(node: &NodeState, ws: WebSession) -> Result<Finalized, NodeError> {
    let State {
        presented,
        presented_id,
        reroute,
        loaded,
        mut pending,
        ops,
        rebuild,
        ..
    } = ws.state.replace(State::new(false, false, None));
    if let Pending::Write {
        session,
        new_id,
        rotated_from,
    } = &mut pending
    {
        if *new_id && node.policy.jwt {
            // No token, so nowhere to keep the id of a new record.
            return Err(NodeError::LoginRequired);
        }
        if *new_id && rotated_from.is_none() {
            // A session for a client that presented none: per-client rate.
            node.check_rate(crate::guard::Limit::NewSession, &ws.req)?;
        }
        if *new_id && node.policy.bind_user_agent {
            binding::bind(session, &ws.req);
        }
    }
    if matches!(pending, Pending::Delete) && loaded.is_none() && presented_id.is_some() {
        // A logout of an id this node does not hold still writes a
        // tombstone, on every node and for the longest life the id could
        // have: a write like a new session's, so it counts against the same
        // per-client limit. Unlimited, made-up ids would push the real
        // logouts' tombstones out of their bounded set.
        node.check_rate(crate::guard::Limit::NewSession, &ws.req)?;
    }
    let presented = Presentation {
        any: presented,
        id: presented_id,
    };
    let mut done = write(node, presented, reroute, loaded, pending, &ops, rebuild).await?;
    if node.policy.jwt {
        done.cookie = CookieAction::Keep;
    }
    Ok(done)
}

/// What the client presented under the session's name.
struct Presentation {
    /// Anything at all (a malformed cookie is still expired at logout).
    any: bool,
    /// A well-formed id, whether or not this node holds it.
    id: Option<SessionId>,
}

async fn write(
    node: &NodeState,
    presented: Presentation,
    reroute: bool,
    loaded: Option<Session>,
    pending: Pending,
    ops: &[Op],
    rebuild: Option<ReplyBuilder>,
) -> Result<Finalized, NodeError> {
    let now = clock::now_ms();
    match pending {
        Pending::Unchanged => {
            let Some(s) = loaded else {
                return Ok(Finalized::cookie_only(CookieAction::Keep));
            };
            if now.saturating_sub(s.last_access_ms) >= TOUCH_INTERVAL_MS {
                if let Err(e) = node.store.touch(&s.id, now).await {
                    // The read worked; a lost touch only shortens idle expiry.
                    tracing::warn!(sid = s.id.short(), error = %e, "touch failed");
                }
            }
            Ok(Finalized::cookie_only(CookieAction::set_if(
                reroute, &s, now,
            )))
        }
        Pending::Write {
            mut session,
            new_id,
            rotated_from,
        } => {
            // A write is a use: it moves the idle clock as a touch does
            // (the loaded copy still has the access before this request).
            session.last_access_ms = session.last_access_ms.max(now);
            let id = session.id.clone();
            let cookie = CookieAction::set_if(new_id || reroute, &session, now);
            let replayable = !new_id && rotated_from.is_none() && !ops.is_empty();
            let mut rebuilt = None;
            let receipt = match node.store.put(session).await {
                Err(StoreError::Conflict) if replayable => {
                    let (receipt, stored) = cas::replay(node, &id, ops).await?;
                    rebuilt = rebuild.map(|build| build(&node.id, &stored.data()));
                    receipt
                }
                other => other?,
            };
            if let Some(old) = rotated_from {
                if let Err(e) = node.store.delete(&old).await {
                    tracing::warn!(sid = old.short(), error = %e, "deleting the pre-login id failed");
                }
            } else if new_id {
                node.metrics.sessions_created.inc();
            }
            record_sid(&id);
            Ok(Finalized {
                cookie,
                replication: Some(receipt.replication),
                rebuilt,
            })
        }
        Pending::Delete => {
            // The id the client presented is deleted whether or not this
            // node holds it: the session may live on nodes this one cannot
            // hear right now (a partition), and the replicated store then
            // tombstones the id so the logout still wins after the heal.
            // The return value says whether a copy was held here.
            let id = loaded.as_ref().map(|s| s.id.clone()).or(presented.id);
            if let Some(id) = id {
                if node.store.delete(&id).await? {
                    node.metrics.sessions_destroyed.inc();
                }
            }
            let cookie = if loaded.is_some() || presented.any {
                CookieAction::Expire
            } else {
                CookieAction::Keep
            };
            Ok(Finalized::cookie_only(cookie))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use sessionlab_session::SessionId;

    fn remembered(created_ms: u64, absolute_ms: u64) -> Session {
        let mut s = Session::new(SessionId::generate(), created_ms, 60_000, absolute_ms);
        let mut data = Map::new();
        data.insert(REMEMBER_KEY.into(), Value::Bool(true));
        s.set_data(&data);
        s
    }

    #[test]
    fn max_age_is_the_time_left_rounded_up() {
        let s = remembered(1_000_000, 28_800_000);
        // Written in the same millisecond as the login, or a few later: the
        // same whole 8 h.
        assert_eq!(max_age_secs(&s, 1_000_000), Some(28_800));
        assert_eq!(max_age_secs(&s, 1_000_003), Some(28_800));
        assert_eq!(max_age_secs(&s, 1_001_000), Some(28_799));
        assert_eq!(max_age_secs(&s, 1_000_000 + 28_800_000), Some(0));
        assert_eq!(max_age_secs(&s, u64::MAX), Some(0));
    }

    #[test]
    fn no_max_age_without_remember_me() {
        let s = Session::new(SessionId::generate(), 0, 60_000, 28_800_000);
        assert_eq!(max_age_secs(&s, 0), None);
    }
}
