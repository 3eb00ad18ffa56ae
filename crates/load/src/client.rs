//! One simulated browser: an HTTP client with its own small cookie jar.
//!
//! The jar is kept by hand rather than by reqwest's cookie store because the
//! lab wants to *see* the cookies: whether a response issued a new session id
//! (the old one was not recognised: the session is lost), which sticky
//! cookie the LB set, and how many bytes of credentials every request
//! carries. Redirects are not followed and bodies are read with a size cap.
//! Over HTTPS the clients trust the run's CA only ([`crate::tls`]); like a
//! browser, the jar refuses a `Secure` cookie set over plain HTTP.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};
use serde_json::Value;

use crate::stats::ErrorKind;
use crate::tls::TrustedCa;

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
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    cookies: BTreeMap<String, String>,
    bearer: Option<String>,
}

impl Credentials {
    /// The `Cookie` header value these cookies make.
    fn cookie_header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// A request that produced no HTTP answer.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
}

/// A client with its jar; see the module docs. Its [tabs](Browser::tab)
/// share the jar, as a browser's tabs do, each with its own connection.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    /// Shared by the tabs; held only to read or update, never across a
    /// request.
    jar: Arc<Mutex<Credentials>>,
    /// The cookie the node keeps its session id in (`--cookie-name`).
    session_cookie: String,
    /// The CA trusted over HTTPS (None: plain HTTP, or HTTPS that fails).
    ca: Option<TrustedCa>,
    /// `base` is `https://`: `Secure` cookies are kept.
    https: bool,
}

fn http_client(timeout: Duration, ca: Option<&TrustedCa>) -> reqwest::Client {
    crate::tls::client(timeout, ca).expect(
        "the client builds: plain without roots, or with a CA TrustedCa::from_pem built one with",
    )
}

impl Browser {
    /// `session_cookie`: the nodes' session cookie name
    /// ([`LoadConfig::session_cookie`](crate::LoadConfig)); `ca`: the CA
    /// trusted when `base` is `https://`.
    pub fn new(
        base: &str,
        timeout: Duration,
        session_cookie: &str,
        ca: Option<&TrustedCa>,
    ) -> Self {
        Browser {
            http: http_client(timeout, ca),
            base: base.trim_end_matches('/').to_owned(),
            timeout,
            jar: Arc::default(),
            session_cookie: session_cookie.to_owned(),
            ca: ca.cloned(),
            https: base.starts_with("https://"),
        }
    }

    /// Another tab of this browser: the same cookies and token (a login,
    /// a logout or a new sticky cookie in one is seen by all), its own
    /// connection, so the tabs' requests really are concurrent.
    pub fn tab(&self) -> Browser {
        Browser {
            http: http_client(self.timeout, self.ca.as_ref()),
            base: self.base.clone(),
            timeout: self.timeout,
            jar: self.jar.clone(),
            session_cookie: self.session_cookie.clone(),
            ca: self.ca.clone(),
            https: self.https,
        }
    }

    /// A browser of its own holding `credentials` (the jar is not shared):
    /// how the load tool replays a logged-out session's old cookie, as
    /// someone who kept a copy would, without disturbing the user's tabs.
    pub fn holding(&self, credentials: Credentials) -> Browser {
        Browser {
            http: self.http.clone(),
            base: self.base.clone(),
            timeout: self.timeout,
            jar: Arc::new(Mutex::new(credentials)),
            session_cookie: self.session_cookie.clone(),
            ca: self.ca.clone(),
            https: self.https,
        }
    }

    fn jar(&self) -> std::sync::MutexGuard<'_, Credentials> {
        // A panic elsewhere cannot leave the map half-written: every
        // update is one insert or remove.
        self.jar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget every cookie and token (a fresh browser, same connection pool).
    pub fn clear(&mut self) {
        *self.jar() = Credentials::default();
    }

    /// What the browser would send now (cookies and token).
    pub fn credentials(&self) -> Credentials {
        self.jar().clone()
    }

    pub fn set_bearer(&mut self, token: Option<String>) {
        self.jar().bearer = token;
    }

    /// Bytes of credentials the next request carries (cookies and/or token).
    pub fn credential_bytes(&self) -> usize {
        let jar = self.jar();
        jar.cookie_header().map_or(0, |c| c.len())
            + jar.bearer.as_ref().map_or(0, |t| t.len() + "Bearer ".len())
    }

    /// Take an answer's cookies; whether it issued a session id other
    /// than the one this request sent (`sent`).
    fn store_cookies(&mut self, headers: &HeaderMap, sent: Option<&str>) -> bool {
        let mut jar = self.jar();
        let mut new_session = false;
        for v in headers.get_all(SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let (mut expired, mut secure) = (false, false);
            for a in parts {
                let a = a.trim().to_ascii_lowercase();
                expired |= a == "max-age=0" || a.starts_with("max-age=-") || a.contains("1970");
                secure |= a == "secure";
            }
            if secure && !self.https {
                // RFC 6265bis §5.7: an insecure origin cannot set a Secure cookie.
                continue;
            }
            if expired || value.is_empty() {
                jar.cookies.remove(name);
            } else {
                // A session id this request did not send is a new session,
                // also when it sent none (another tab's logout emptied the jar).
                if name == self.session_cookie && sent != Some(value) {
                    new_session = true;
                }
                jar.cookies.insert(name.to_owned(), value.to_owned());
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
        let (cookies, bearer, sent_session) = {
            let jar = self.jar();
            (
                jar.cookie_header(),
                jar.bearer.clone(),
                jar.cookies.get(&self.session_cookie).cloned(),
            )
        };
        if let Some(c) = cookies {
            req = req.header(COOKIE, c);
        }
        if let Some(t) = &bearer {
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
        let served_by = sessionlab_wire::served_by::served_by(resp.headers());
        let new_session_id = self.store_cookies(resp.headers(), sent_session.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_testkit::header_lines;

    #[test]
    fn a_secure_cookie_is_kept_over_https_and_refused_over_http() {
        let answer = header_lines(
            "set-cookie",
            &[
                "SLSESSION=abc; Path=/; Secure; HttpOnly",
                "SLROUTE=node-1; Path=/",
            ],
        );
        let mut plain = Browser::new(
            "http://127.0.0.1:1",
            Duration::from_secs(1),
            "SLSESSION",
            None,
        );
        plain.store_cookies(&answer, None);
        let sent = plain.credentials().cookie_header();
        assert_eq!(sent.as_deref(), Some("SLROUTE=node-1"));

        let mut https = Browser::new(
            "https://127.0.0.1:1",
            Duration::from_secs(1),
            "SLSESSION",
            None,
        );
        // The first id is a new session (the request sent none).
        assert!(https.store_cookies(&answer, None));
        let sent = https.credentials().cookie_header();
        assert_eq!(sent.as_deref(), Some("SLROUTE=node-1; SLSESSION=abc"));
        // A new id over HTTPS is noticed as one.
        assert!(https.store_cookies(
            &header_lines("set-cookie", &["SLSESSION=def; Secure"]),
            Some("abc")
        ));
        // The id it sent, set again, is not new.
        assert!(!https.store_cookies(
            &header_lines("set-cookie", &["SLSESSION=def; Secure"]),
            Some("def")
        ));
    }

    #[test]
    fn a_session_id_set_on_a_request_that_sent_none_is_new() {
        let mut b = Browser::new(
            "http://127.0.0.1:1",
            Duration::from_secs(1),
            "SLSESSION",
            None,
        );
        assert!(b.store_cookies(&header_lines("set-cookie", &["SLSESSION=n; Path=/"]), None));
    }
}
