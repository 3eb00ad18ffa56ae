//! An HTTP client for tests and the cookies of a response.
//!
//! The client keeps no cookies and follows no redirects, so a test sees
//! exactly what a server sent (a `303` to `/`, every `Set-Cookie`), and it
//! bypasses any proxy from the environment: tests talk to loopback only.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// No cookie store, no redirects, no proxy, a 10 s timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client")
}

/// All `Set-Cookie` headers of a response.
pub fn set_cookies(h: &HeaderMap) -> Vec<String> {
    h.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("an ASCII Set-Cookie").to_owned())
        .collect()
}

/// The `NAME=value` pair of the first cookie `name` set in `h`, ready as a
/// `Cookie` header value.
pub fn cookie_pair(h: &HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    set_cookies(h)
        .into_iter()
        .find(|c| c.starts_with(&prefix))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// A header map with one `name` line for each of `values`, in order (as a
/// request carries several `Cookie` lines or an answer several
/// `Set-Cookie` lines).
pub fn header_lines(name: &'static str, values: &[&str]) -> HeaderMap {
    let name = HeaderName::from_static(name);
    let mut h = HeaderMap::new();
    for v in values {
        h.append(
            &name,
            HeaderValue::from_str(v).expect("a valid header value"),
        );
    }
    h
}
