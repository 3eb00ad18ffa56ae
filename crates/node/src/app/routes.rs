//! The demo app: the routes of the app listener.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | the demo page ([`crate::app::page`]) |
//! | `POST /login` | form `username`, `password`, `remember=on`; rotates the id |
//! | `POST /logout` | deletes the session, expires the cookie |
//! | `POST /counter/increment`, `/cart/add`, `/cart/remove` | the page's forms (redirect to `/`) |
//! | `GET /api/session` | the session as JSON (`"session": null` if none) |
//! | `POST /api/counter/increment[?key=NAME]` | `{"counter": n}`, the new value (of the counter `NAME`, default `counter`; `"key"` in the answer when given) |
//! | `PUT /api/cart/{item}?qty=N` | set an item's quantity (default 1) |
//! | `DELETE /api/cart/{item}` | remove an item |
//! | `GET /healthz` | 200 `{"status":"ok"}` (or `"degraded"` while Redis is unreachable), or 503 `{"status":"starting"}` |
//!
//! `POST /login` and `POST /logout` answer with a redirect to `/` (what a
//! browser wants) or, when the request says `Accept: application/json`, with
//! JSON (what scripts want). A wrong password is 401 either way.
//!
//! The handlers only describe changes to the session
//! ([`WebSession`]); storing them, and turning
//! a refused write into an error response, happens after the handler returns.
//! Session contents and admin views are never served here, only on the
//! cluster listener ([`crate::ops::admin`]).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sessionlab_session::{Session, Version, clock};

use crate::app::page::{self, PageView};
use crate::auth::users::DEMO_PASSWORD;
use crate::error::NodeError;
use crate::session::websession::{REMEMBER_KEY, WebSession};
use crate::state::NodeState;

/// Route names, used as the `route` label of the request metrics.
pub const ROUTES: &[&str] = &[
    "index",
    "login",
    "logout",
    "counter_form",
    "cart_add",
    "cart_remove",
    "api_session",
    "api_counter",
    "api_cart_item",
    "healthz",
    "auth_login",
    "auth_refresh",
    "auth_logout",
];

/// Register the app's routes. The router tries them in order, so the
/// busiest (the JSON API) come first.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/session")
            .name("api_session")
            .get(api_session),
    )
    .service(
        web::resource("/api/counter/increment")
            .name("api_counter")
            .post(api_counter),
    )
    .service(
        web::resource("/api/cart/{item}")
            .name("api_cart_item")
            .put(api_cart_put)
            .delete(api_cart_delete),
    )
    .service(web::resource("/").name("index").get(index))
    .service(web::resource("/login").name("login").post(login))
    .service(web::resource("/logout").name("logout").post(logout))
    .service(
        web::resource("/counter/increment")
            .name("counter_form")
            .post(counter_form),
    )
    .service(web::resource("/cart/add").name("cart_add").post(cart_add))
    .service(
        web::resource("/cart/remove")
            .name("cart_remove")
            .post(cart_remove),
    )
    .service(web::resource("/healthz").name("healthz").get(healthz));
}

/// `/healthz` (also on the cluster listener). A node whose shared store is
/// unreachable answers 200 `degraded`, not 503: see
/// [`crate::store::redis`] for why.
pub async fn healthz(node: web::Data<NodeState>) -> HttpResponse {
    if !node.readiness.is_ready() {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "starting"}));
    }
    match node.store_problem() {
        None => HttpResponse::Ok().json(serde_json::json!({"status": "ok"})),
        Some(problem) => {
            HttpResponse::Ok().json(serde_json::json!({"status": "degraded", "store": problem}))
        }
    }
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// `303 See Other` to `/` (with `;sid=` in url mode).
fn back_home(ws: &WebSession) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, ws.links().to("/")))
        .finish()
}

// --- session data: a counter and a cart -------------------------------------

/// The default counter's key in the session data.
const COUNTER_KEY: &str = "counter";

fn counter(data: &Map<String, Value>) -> u64 {
    counter_at(data, COUNTER_KEY)
}

fn counter_at(data: &Map<String, Value>, key: &str) -> u64 {
    data.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn increment(data: &mut Map<String, Value>) -> u64 {
    increment_at(data, COUNTER_KEY)
}

fn increment_at(data: &mut Map<String, Value>, key: &str) -> u64 {
    let n = counter_at(data, key).saturating_add(1);
    data.insert(key.into(), n.into());
    n
}

/// `?key=NAME` of the increment route: which counter of the session. Two
/// browser tabs that each count in their own key change *different* keys
/// of one session, which `--replication-granularity attribute` merges.
/// A name is 1 to 32 of `a-z`, `0-9` and `-`, and not the key of other
/// session data (`cart`, the remember-me flag), so a counter cannot
/// overwrite them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CounterKey(String);

impl CounterKey {
    fn parse(name: Option<&str>) -> Result<Self, String> {
        let Some(name) = name else {
            return Ok(CounterKey(COUNTER_KEY.to_owned()));
        };
        let well_formed = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err("key must be 1 to 32 characters of a-z, 0-9 and -".to_owned());
        }
        if name == "cart" || name == REMEMBER_KEY {
            return Err(format!("key {name} holds other session data"));
        }
        Ok(CounterKey(name.to_owned()))
    }
}

#[derive(Deserialize)]
struct CounterQuery {
    key: Option<String>,
}

fn cart_mut(data: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let cart = data
        .entry("cart")
        .or_insert_with(|| Value::Object(Map::new()));
    if !cart.is_object() {
        *cart = Value::Object(Map::new());
    }
    cart.as_object_mut().expect("made an object above")
}

fn cart_items(data: &Map<String, Value>) -> Vec<(String, u64)> {
    data.get("cart")
        .and_then(Value::as_object)
        .map(|c| {
            c.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn item_name(raw: &str) -> Result<String, NodeError> {
    let item = raw.trim();
    if item.is_empty() {
        return Err(NodeError::BadRequest("item name is empty".into()));
    }
    Ok(item.to_owned())
}

// --- the page and its forms -------------------------------------------------

fn render_page(
    node: &NodeState,
    ws: &WebSession,
    message: Option<&str>,
    status: actix_web::http::StatusCode,
) -> HttpResponse {
    let session = ws.get();
    let data = session.as_ref().map(|s| s.data()).unwrap_or_default();
    let links = ws.links();
    let now = clock::now_ms();
    let html = page::render(&PageView {
        node_id: &node.id,
        user: session.as_ref().and_then(|s| s.user.as_deref()),
        id_prefix: session.as_ref().map(|s| s.id.short()),
        tracking: node.policy.tracking.as_str(),
        cookie_name: &node.policy.cookie.name,
        persistent: data.get(REMEMBER_KEY).and_then(Value::as_bool) == Some(true),
        counter: counter(&data),
        cart: cart_items(&data),
        data_json: session.as_ref().map(|s| s.data.get()),
        expires_in_secs: session
            .as_ref()
            .map(|s| s.expires_at_ms().saturating_sub(now) / 1000),
        users: node.users.names().collect(),
        demo_password: node.users.is_demo().then_some(DEMO_PASSWORD),
        message,
        links: &links,
    });
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(policy) = node.options.referrer_policy.header_value() {
        res.insert_header((header::REFERRER_POLICY, policy));
    }
    res.body(html)
}

async fn index(node: web::Data<NodeState>, ws: WebSession) -> HttpResponse {
    if node.tokens.is_some() {
        return crate::app::jwt_page::page(&node);
    }
    render_page(&node, &ws, None, actix_web::http::StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    remember: Option<String>,
}

async fn login(
    req: HttpRequest,
    node: web::Data<NodeState>,
    ws: WebSession,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, NodeError> {
    if node.tokens.is_some() {
        return Err(NodeError::BadRequest(
            "this node runs --auth jwt: log in with POST /auth/login".into(),
        ));
    }
    let form = form.into_inner();
    let remember = form
        .remember
        .as_deref()
        .is_some_and(|v| matches!(v, "on" | "true" | "1" | "yes"));
    let user = form.username.trim();
    let ok = node.check_login(&req, user, &form.password).await?;
    if !ok {
        tracing::info!(node = %node.id, "login failed");
        if wants_json(&req) {
            return Err(NodeError::BadCredentials);
        }
        return Ok(render_page(
            &node,
            &ws,
            Some("Wrong user name or password."),
            actix_web::http::StatusCode::UNAUTHORIZED,
        ));
    }
    ws.login(user, remember);
    if let Some(s) = ws.get() {
        tracing::info!(node = %node.id, user, sid = s.id.short(), remember, "login");
    }
    if wants_json(&req) {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "node_id": node.id,
            "user": user,
            "remember": remember,
        })));
    }
    Ok(back_home(&ws))
}

async fn logout(
    req: HttpRequest,
    node: web::Data<NodeState>,
    ws: WebSession,
) -> Result<HttpResponse, NodeError> {
    if node.tokens.is_some() {
        // Deleting the data would leave the token valid: /auth/logout also
        // deny-lists it.
        return Err(NodeError::BadRequest(
            "this node runs --auth jwt: log out with POST /auth/logout".into(),
        ));
    }
    let was = ws.user();
    ws.logout();
    tracing::info!(node = %node.id, user = was.as_deref().unwrap_or("-"), "logout");
    if wants_json(&req) {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "node_id": node.id,
            "logged_out": true,
        })));
    }
    Ok(back_home(&ws))
}

async fn counter_form(ws: WebSession) -> HttpResponse {
    ws.update(increment);
    back_home(&ws)
}

#[derive(Deserialize)]
struct ItemForm {
    item: String,
}

async fn cart_add(ws: WebSession, form: web::Form<ItemForm>) -> Result<HttpResponse, NodeError> {
    let item = item_name(&form.item)?;
    ws.update(move |d| {
        let cart = cart_mut(d);
        let qty = cart.get(&item).and_then(Value::as_u64).unwrap_or(0);
        cart.insert(item.clone(), (qty.saturating_add(1)).into());
    });
    Ok(back_home(&ws))
}

async fn cart_remove(ws: WebSession, form: web::Form<ItemForm>) -> HttpResponse {
    if ws.get().is_some() {
        let item = form.into_inner().item.trim().to_owned();
        ws.update(move |d| cart_mut(d).remove(&item));
    }
    back_home(&ws)
}

// --- the JSON API -----------------------------------------------------------

/// The session as `GET /api/session` shows it. The data is written out as
/// the stored JSON text, without parsing it.
#[derive(Serialize)]
struct SessionView<'a> {
    id_prefix: &'a str,
    user: Option<&'a str>,
    data: &'a RawValue,
    created_ms: u64,
    last_access_ms: u64,
    expires_at_ms: u64,
    /// `17@node-1`.
    #[serde(serialize_with = "version_text")]
    version: &'a Version,
}

/// Write a version as `17@node-1`. This is on the hot path of
/// `GET /api/session`, so it is assembled in a stack buffer rather than
/// through `Display` (which is several times slower).
fn version_text<S: serde::Serializer>(v: &&Version, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 96];
    let mut digits = [0u8; 20];
    let mut n = v.lamport;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let num = &digits[d..];
    let node = v.node.as_bytes();
    let len = num.len() + 1 + node.len();
    if len > buf.len() {
        return s.collect_str(*v);
    }
    buf[..num.len()].copy_from_slice(num);
    buf[num.len()] = b'@';
    buf[num.len() + 1..len].copy_from_slice(node);
    match std::str::from_utf8(&buf[..len]) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.collect_str(*v),
    }
}

#[derive(Serialize)]
struct SessionReply<'a> {
    node_id: &'a str,
    session: Option<SessionView<'a>>,
}

impl<'a> SessionView<'a> {
    fn of(s: &'a Session) -> Self {
        SessionView {
            id_prefix: s.id.short(),
            user: s.user.as_deref(),
            data: &s.data,
            created_ms: s.created_ms,
            last_access_ms: s.last_access_ms,
            expires_at_ms: s.expires_at_ms(),
            version: &s.version,
        }
    }
}

async fn api_session(ws: WebSession) -> HttpResponse {
    let session = ws.get();
    let reply = SessionReply {
        node_id: &ws.node().id,
        session: session.as_deref().map(SessionView::of),
    };
    HttpResponse::Ok().json(reply)
}

async fn api_counter(
    node: web::Data<NodeState>,
    ws: WebSession,
    q: web::Query<CounterQuery>,
) -> Result<HttpResponse, NodeError> {
    let key = CounterKey::parse(q.key.as_deref()).map_err(NodeError::BadRequest)?;
    let k = key.0.clone();
    let n = ws.update(move |data| increment_at(data, &k));
    let k = key.0.clone();
    ws.rebuild_reply_with(move |node_id, data| counter_reply(node_id, &k, counter_at(data, &k)));
    Ok(counter_reply(&node.id, &key.0, n))
}

/// `{"node_id", "counter": n}`, and `"key"` for a counter other than the
/// default one.
fn counter_reply(node_id: &str, key: &str, n: u64) -> HttpResponse {
    let mut body = serde_json::json!({"node_id": node_id, "counter": n});
    if key != COUNTER_KEY {
        body["key"] = Value::from(key);
    }
    HttpResponse::Ok().json(body)
}

#[derive(Deserialize)]
struct QtyQuery {
    qty: Option<u64>,
}

fn cart_reply(node: &NodeState, ws: &WebSession) -> HttpResponse {
    ws.rebuild_reply_with(cart_reply_from);
    cart_reply_from(&node.id, &ws.data())
}

fn cart_reply_from(node_id: &str, data: &Map<String, Value>) -> HttpResponse {
    let cart = data
        .get("cart")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    HttpResponse::Ok().json(serde_json::json!({"node_id": node_id, "cart": cart}))
}

async fn api_cart_put(
    node: web::Data<NodeState>,
    ws: WebSession,
    item: web::Path<String>,
    q: web::Query<QtyQuery>,
) -> Result<HttpResponse, NodeError> {
    let item = item_name(&item)?;
    let qty = q.qty.unwrap_or(1);
    if !(1..=1_000_000).contains(&qty) {
        return Err(NodeError::BadRequest("qty must be 1..=1000000".into()));
    }
    ws.update(move |d| cart_mut(d).insert(item.clone(), qty.into()));
    Ok(cart_reply(&node, &ws))
}

async fn api_cart_delete(
    node: web::Data<NodeState>,
    ws: WebSession,
    item: web::Path<String>,
) -> HttpResponse {
    let has_item = ws
        .get()
        .is_some_and(|s| cart_items(&s.data()).iter().any(|(k, _)| *k == *item));
    if has_item {
        let item = item.into_inner();
        ws.update(move |d| cart_mut(d).remove(item.as_str()));
    }
    cart_reply(&node, &ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_matches_display() {
        for v in [
            Version::new(0, "node-1"),
            Version::new(17, "node-2"),
            Version::new(u64::MAX, "n"),
            Version::new(5, "x".repeat(200)),
        ] {
            let mut out = Vec::new();
            version_text(&&v, &mut serde_json::Serializer::new(&mut out)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{v}\""));
        }
    }

    #[test]
    fn counter_and_cart_helpers() {
        let mut d = Map::new();
        assert_eq!(increment(&mut d), 1);
        assert_eq!(increment(&mut d), 2);
        d.insert("cart".into(), Value::from("not an object"));
        cart_mut(&mut d).insert("apple".into(), 3.into());
        assert_eq!(cart_items(&d), vec![("apple".to_owned(), 3)]);
        assert!(item_name("  ").is_err());
        assert_eq!(item_name(" pear ").unwrap(), "pear");
    }

    #[test]
    fn counter_keys_are_names_that_hold_no_other_data() {
        assert_eq!(CounterKey::parse(None).unwrap().0, "counter");
        assert_eq!(CounterKey::parse(Some("tab-2")).unwrap().0, "tab-2");
        for bad in ["", "Tab", "a b", "cart", REMEMBER_KEY, &"x".repeat(33)] {
            assert!(CounterKey::parse(Some(bad)).is_err(), "{bad:?}");
        }
        let mut d = Map::new();
        assert_eq!(increment_at(&mut d, "tab-1"), 1);
        assert_eq!(increment_at(&mut d, "tab-2"), 1);
        assert_eq!(increment_at(&mut d, "tab-1"), 2);
        assert_eq!((counter_at(&d, "tab-1"), counter(&d)), (2, 0));
    }
}
