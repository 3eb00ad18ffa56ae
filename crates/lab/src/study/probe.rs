//! One user of a study: a cookie jar and a counter, nothing else.
//!
//! A study asks two questions of every user after each change to the
//! cluster: *which node answered* (`X-Served-By`), and *is my session still
//! there*. The second needs no login: the first increment creates a
//! session (a cart before any login is a session too), and every later
//! increment must answer the previous value plus one. An answer of 1 after
//! that means the node did not know the session: it was lost, and the
//! node started a new one.
//!
//! The jar keeps every cookie the answers set (`SLSESSION`, and the LB's
//! `SLROUTE` under `sticky-cookie`), as a browser would, and forgets one set
//! with `Max-Age=0`. Session ids are credentials: a probe never prints them.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, SET_COOKIE};

/// What one increment saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `X-Served-By`, or `None` when no node answered (an LB error).
    pub node: Option<String>,
    pub status: u16,
    /// The counter the answer carried (2xx only).
    pub counter: Option<i64>,
}

/// A simulated user.
#[derive(Debug, Default)]
pub struct Probe {
    cookies: BTreeMap<String, String>,
    /// The counter this user last saw, if its last answer carried one.
    pub last: Option<i64>,
    /// The node that answered it last.
    pub last_node: Option<String>,
}

/// What a step did to one user, from two consecutive answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Another node answered than the one before.
    pub moved: bool,
    /// The session was gone: the counter started again.
    pub lost: bool,
    /// No answer with a counter (an error status, e.g. 503).
    pub refused: bool,
}

impl Probe {
    /// `POST /api/counter/increment` through `base` (the LB).
    pub async fn increment(&mut self, http: &reqwest::Client, base: &str) -> Seen {
        let mut req = http.post(format!("{base}/api/counter/increment"));
        if !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(COOKIE, header.join("; "));
        }
        let Ok(resp) = req.header("accept", "application/json").send().await else {
            return Seen {
                node: None,
                status: 0,
                counter: None,
            };
        };
        let status = resp.status().as_u16();
        let node = sessionlab_wire::served_by::served_by(resp.headers());
        for v in resp.headers().get_all(SET_COOKIE) {
            if let Ok(v) = v.to_str() {
                self.store(v);
            }
        }
        let body: Option<serde_json::Value> = resp.json().await.ok();
        let counter = body
            .filter(|_| (200..300).contains(&status))
            .and_then(|b| b["counter"].as_i64());
        Seen {
            node,
            status,
            counter,
        }
    }

    /// Remember `seen` and say what it means against the previous answer.
    pub fn judge(&mut self, seen: Seen) -> Outcome {
        let outcome = match seen.counter {
            None => Outcome {
                refused: true,
                ..Outcome::default()
            },
            Some(c) => Outcome {
                moved: self.last_node.is_some() && seen.node != self.last_node,
                lost: self.last.is_some_and(|last| c != last + 1),
                refused: false,
            },
        };
        if seen.counter.is_some() {
            self.last = seen.counter;
            self.last_node = seen.node;
        }
        outcome
    }

    fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let expired = parts.any(|a| {
            let a = a.trim().to_ascii_lowercase();
            a == "max-age=0" || a.starts_with("max-age=-")
        });
        if expired {
            self.cookies.remove(name);
        } else if self.cookies.len() < 8 || self.cookies.contains_key(name) {
            // A handful of cookies at most: an answer cannot grow the jar.
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(node: &str, counter: Option<i64>) -> Seen {
        Seen {
            node: Some(node.into()),
            status: if counter.is_some() { 200 } else { 503 },
            counter,
        }
    }

    #[test]
    fn consecutive_answers_say_moved_lost_or_refused() {
        let mut p = Probe::default();
        assert_eq!(p.judge(seen("node-1", Some(1))), Outcome::default());
        assert_eq!(p.judge(seen("node-1", Some(2))), Outcome::default());
        let o = p.judge(seen("node-2", Some(3)));
        assert!(o.moved && !o.lost, "{o:?}");
        let o = p.judge(seen("node-3", Some(1)));
        assert!(o.moved && o.lost, "{o:?}");
        let o = p.judge(seen("node-3", None));
        assert!(o.refused && !o.moved && !o.lost, "{o:?}");
        // After a refusal, compared with the last real answer.
        assert_eq!(p.judge(seen("node-3", Some(2))), Outcome::default());
    }

    #[test]
    fn the_jar_keeps_sets_and_forgets_expired_cookies() {
        let mut p = Probe::default();
        p.store("SLSESSION=abc; Path=/; HttpOnly");
        p.store("SLROUTE=node-2; Path=/");
        assert_eq!(p.cookies.len(), 2);
        p.store("SLROUTE=; Max-Age=0; Path=/");
        assert_eq!(p.cookies.keys().collect::<Vec<_>>(), vec!["SLSESSION"]);
        p.store("garbage without equals");
        for i in 0..20 {
            p.store(&format!("c{i}=x"));
        }
        assert!(p.cookies.len() <= 8, "bounded: {}", p.cookies.len());
    }
}
