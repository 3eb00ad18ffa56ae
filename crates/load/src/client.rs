//! One simulated browser: an HTTP client with its own small cookie jar.
//!
//! The jar is kept by hand rather than by reqwest's cookie store because the
//! lab wants to *see* the cookies: whether a response issued a new session id
//! (the old one was not recognised: the session is lost), which sticky
//! cookie the LB set, and how many bytes of credentials every request
//! carries. Redirects are not followed and bodies are read with a size cap.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use serde_json::Value;

use crate::stats::ErrorKind;

/// The most body bytes read from one answer.
const MAX_BODY: usize = 256 * 1024;

/// What one request produced.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub served_by: Option<String>,
    pub latency: Duration,
    pub json: Option<Value>,
    /// The answer set a session cookie different from the one sent.
    pub new_session_id: bool,
}

/// A browser's cookies and token at one moment ([`Browser::credentials`]).
pub struct Credentials {
    jar: BTreeMap<String, String>,
    bearer: Option<String>,
}

/// A request that produced no HTTP answer.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
}

/// A client with its own jar; see the module docs.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    jar: BTreeMap<String, String>,
    bearer: Option<String>,
    /// The cookie the node keeps its session id in (`--cookie-name`).
    session_cookie: String,
}

impl Browser {
    /// `session_cookie`: the nodes' session cookie name
    /// ([`LoadConfig::session_cookie`](crate::LoadConfig)).
    pub fn new(base: &str, timeout: Duration, session_cookie: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        Browser {
            http,
            base: base.trim_end_matches('/').to_owned(),
            jar: BTreeMap::new(),
            bearer: None,
            session_cookie: session_cookie.to_owned(),
        }
    }

    /// Forget every cookie and token (a fresh browser, same connection pool).
    pub fn clear(&mut self) {
        self.jar.clear();
        self.bearer = None;
    }

    /// What the browser would send now (cookies and token), to be sent
    /// again later with [`Browser::restore`]: how the load tool replays a
    /// logged-out session's old cookie, as an attacker who kept it would.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            jar: self.jar.clone(),
            bearer: self.bearer.clone(),
        }
    }

    pub fn restore(&mut self, c: Credentials) {
        self.jar = c.jar;
        self.bearer = c.bearer;
    }

    pub fn set_bearer(&mut self, token: Option<String>) {
        self.bearer = token;
    }

    /// The `Cookie` header value this browser would send.
    fn cookie_header(&self) -> Option<String> {
        if self.jar.is_empty() {
            return None;
        }
        Some(
            self.jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Bytes of credentials the next request carries (cookies and/or token).
    pub fn credential_bytes(&self) -> usize {
        self.cookie_header().map_or(0, |c| c.len())
            + self
                .bearer
                .as_ref()
                .map_or(0, |t| t.len() + "Bearer ".len())
    }

    fn store_cookies(&mut self, headers: &HeaderMap) -> bool {
        let before = self.jar.get(&self.session_cookie).cloned();
        let mut new_session = false;
        for v in headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970")
            });
            if expired || value.is_empty() {
                self.jar.remove(name);
            } else {
                if name == self.session_cookie && before.as_deref().is_some_and(|b| b != value) {
                    new_session = true;
                }
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
        new_session
    }

    /// Send a request; `form` is a urlencoded body.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Result<Answer, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(c) = self.cookie_header() {
            req = req.header(COOKIE, c);
        }
        if let Some(t) = &self.bearer {
            req = req.bearer_auth(t);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let start = Instant::now();
        let fail = |e: reqwest::Error| Failure {
            kind: if e.is_timeout() {
                ErrorKind::Timeout
            } else if e.is_connect() {
                ErrorKind::Connect
            } else {
                ErrorKind::Other
            },
        };
        let mut resp = req.send().await.map_err(fail)?;
        let status = resp.status().as_u16();
        let served_by = resp
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let new_session_id = self.store_cookies(resp.headers());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Failure {
                    kind: ErrorKind::Other,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            served_by,
            latency: start.elapsed(),
            json: serde_json::from_slice(&body).ok(),
            new_session_id,
        })
    }
}
