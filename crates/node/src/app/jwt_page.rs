//! The demo page of jwt mode: a small login form and plain JavaScript.
//!
//! In session mode the browser carries the cookie by itself and the server
//! renders the page for the session it finds. A bearer token is not sent by
//! the browser on its own: a script has to keep it and put it in
//! `Authorization` on every call. So in jwt mode `GET /` is a static page
//! whose script logs in with `POST /auth/login`, keeps the tokens in
//! `sessionStorage`, and calls the same JSON API as the load tool.
//!
//! What it shows, on every request:
//!
//! - the token's **payload, decoded** in the browser with `atob`, no key
//!   needed: a JWT is *signed, not encrypted*, anyone holding it can read
//!   `sub`, `exp`, `jti`, `fam`;
//! - its **size**: the bytes every API call carries in `Authorization`,
//!   against a session cookie's 42;
//! - which node answered (`X-Served-By`) and what the API said, including
//!   the 401 reasons (`expired`, `revoked`, ...) and an automatic refresh.
//!
//! Keeping tokens where scripts can read them is itself a trade-off the
//! page states: an `HttpOnly` session cookie cannot be read by an injected
//! script, a token in `sessionStorage` can. Everything the page shows is
//! inserted with `textContent`, never as HTML. No build step, no libraries.
//!
//! Its `Content-Security-Policy` allows exactly this page's one inline
//! script, by its SHA-256 hash, and nothing else: an injected `<script>`
//! would not run.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::app::page::escape;
use crate::state::NodeState;

/// The page's HTML; `{NODE}` is replaced by the (escaped) node id.
const PAGE: &str = r##"<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>sessionlab jwt · {NODE}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;color:#222;background:#fafafa}
section{background:#fff;border:1px solid #ddd;border-radius:.5rem;padding:.8rem 1.2rem;margin:.8rem 0}
h2{font-size:1.1rem;margin:.2rem 0 .6rem}code,pre{background:#f2f2f2;border-radius:.25rem;padding:.1rem .3rem}
pre{padding:.6rem;overflow:auto;white-space:pre-wrap;word-break:break-all}.node{font-weight:700}
small{color:#666}input,button{margin:.2rem}#log{font-family:monospace;font-size:.85rem}
</style></head><body>
<h1>sessionlab <small>jwt mode</small></h1>
<p>This page came from <span class=node>{NODE}</span>. In jwt mode nothing is kept on the server to
say who you are: the token says it, signed. The API answers below say which node served them.</p>
<section id=login><h2>Log in</h2>
<form id=loginform><input name=username placeholder=user value=alice required>
<input name=password type=password placeholder=password value=sessionlab required>
<button>log in (POST /auth/login)</button></form>
<small>demo users alice, bob, carol; password sessionlab</small></section>
<section id=app hidden><h2>You</h2>
<p>user <b id=user></b>, counter <b id=counter></b>, cart <span id=cart></span></p>
<button id=inc>+1</button>
<input id=item placeholder="item, e.g. apple" maxlength=200><button id=add>add to cart</button><button id=del>remove</button>
<button id=read>GET /api/session</button> <button id=refresh>refresh tokens</button> <button id=logout>log out</button>
<h2>Your access token, decoded without any key</h2>
<p><small>a JWT is signed, not encrypted: base64 that anyone holding it can read.
Every API call carries it in <code>Authorization: Bearer</code>:
<b id=size></b> bytes (a session cookie is 42).</small></p>
<pre id=payload></pre>
<p><small>The tokens are kept in this tab's sessionStorage, where any script on the page can read
them; an HttpOnly session cookie cannot be read by scripts at all.</small></p></section>
<section><h2>Requests</h2><div id=log></div></section>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;
function decode(part) {
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(b64 + "===".slice((b64.length + 3) % 4)));
}
function log(text) {
  const line = document.createElement("div");
  line.textContent = new Date().toLocaleTimeString() + "  " + text;
  $("log").prepend(line);
}
function showToken() {
  const t = store.getItem("access");
  $("login").hidden = !!t;
  $("app").hidden = !t;
  if (!t) return;
  const [h, p] = t.split(".");
  let shown;
  try { shown = JSON.stringify({header: decode(h), payload: decode(p)}, null, 2); }
  catch (e) { shown = "not a JWT: " + e; }
  $("payload").textContent = shown;
  $("size").textContent = String(t.length);
}
function keep(pair) {
  store.setItem("access", pair.access_token);
  store.setItem("refresh", pair.refresh_token);
  showToken();
}
function forget() { store.removeItem("access"); store.removeItem("refresh"); showToken(); }
async function call(method, path, body, retried) {
  const headers = {};
  const t = store.getItem("access");
  if (t) headers["Authorization"] = "Bearer " + t;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  let json = null;
  try { json = await res.json(); } catch (e) { json = null; }
  const by = res.headers.get("X-Served-By") || "?";
  const sent = t ? " [Bearer " + t.length + " bytes]" : "";
  const why = json && json.reason ? " reason=" + json.reason : "";
  log(method + " " + path + " -> " + res.status + " from " + by + sent + why);
  if (res.status === 401 && json && json.reason === "expired" && !retried && store.getItem("refresh")) {
    if (await refresh()) return call(method, path, body, true);
  }
  if (res.status === 401 && path.startsWith("/api/")) forget();
  return {status: res.status, json};
}
async function refresh() {
  const r = await call("POST", "/auth/refresh", {refresh_token: store.getItem("refresh") || ""}, true);
  if (r.status === 200) { keep(r.json); return true; }
  forget();
  return false;
}
function render(session) {
  if (!session) return;
  const data = session.data || {};
  $("user").textContent = session.user || "-";
  $("counter").textContent = String(data.counter || 0);
  const cart = data.cart || {};
  $("cart").textContent = Object.keys(cart).length
    ? Object.entries(cart).map(([k, v]) => k + " x " + v).join(", ") : "empty";
}
async function read() {
  const r = await call("GET", "/api/session");
  if (r.status === 200 && r.json) render(r.json.session);
}
$("loginform").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await call("POST", "/auth/login", {username: f.get("username"), password: f.get("password")});
  if (r.status === 200) { keep(r.json); await read(); }
});
$("inc").onclick = async () => { await call("POST", "/api/counter/increment"); await read(); };
$("add").onclick = async () => {
  const item = $("item").value.trim();
  if (item) { await call("PUT", "/api/cart/" + encodeURIComponent(item)); await read(); }
};
$("del").onclick = async () => {
  const item = $("item").value.trim();
  if (item) { await call("DELETE", "/api/cart/" + encodeURIComponent(item)); await read(); }
};
$("read").onclick = read;
$("refresh").onclick = async () => { if (await refresh()) await read(); };
$("logout").onclick = async () => { await call("POST", "/auth/logout"); forget(); };
showToken();
if (store.getItem("access")) read();
</script></body></html>"##;

/// `GET /` in jwt mode.
/// The page's CSP: its own script (by hash) and calls to this origin only.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let script = PAGE
            .split_once("<script>")
            .and_then(|(_, rest)| rest.split_once("</script>"))
            .map_or("", |(body, _)| body);
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    })
}

pub fn page(node: &NodeState) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp()));
    if let Some(policy) = node.options.referrer_policy.header_value() {
        res.insert_header((header::REFERRER_POLICY, policy));
    }
    res.body(PAGE.replace("{NODE}", &escape(&node.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_inserts_text_never_html() {
        assert!(!PAGE.contains("innerHTML"));
        assert!(PAGE.contains("/auth/login") && PAGE.contains("Authorization"));
    }

    #[test]
    fn the_csp_allows_the_one_inline_script_by_hash() {
        assert_eq!(PAGE.matches("<script>").count(), 1);
        assert!(!PAGE.contains("{NODE}</script>"));
        let csp = csp();
        assert!(csp.contains("script-src 'sha256-") && csp.contains("frame-ancestors 'none'"));
    }
}
