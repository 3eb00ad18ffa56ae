//! Errors on the forwarding path, and what each one means for the client.
//!
//! A proxy error has two questions to answer that a plain error message
//! does not: *where did it come from* (the client sent something bad, the LB
//! had nowhere to send it, or a backend failed) and *is it safe to try the
//! same request on another backend*. Pingora's `Error` carries the same two
//! facts (`ErrorSource` and `RetryType`); we keep a small version of it.
//!
//! Retry safety follows from *when* the failure happened:
//!
//! - before the request left the LB (the TCP connect failed or timed out):
//!   the backend never saw it, so any method may go to the next candidate;
//! - after the request was written (the connection broke, or the backend
//!   answered garbage): the backend may have acted on it, so only
//!   idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) are retried;
//! - a read timeout is never retried: the backend may still be working on
//!   it, and retrying slow requests multiplies load on a struggling
//!   cluster (HAProxy's default `retry-on connect-failure` makes the same
//!   choice).
//!
//! Every error maps to one HTTP status and a small JSON body
//! `{"error": "...", "origin": "...", "detail": "..."}` so a client (and the
//! lab's load tool) can tell an LB problem from an application one.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// Who caused a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client's request was unacceptable (too large, unreadable).
    Client,
    /// The LB had no backend to send it to.
    Balancer,
    /// A backend failed to answer.
    Upstream,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Client => "client",
            Origin::Balancer => "balancer",
            Origin::Upstream => "upstream",
        }
    }
}

/// Why no backend could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBackend {
    /// The backend table is empty.
    NoneConfigured,
    /// Every backend is marked down by health checks.
    AllDown,
    /// The only healthy backends are draining and this is a new user.
    AllDraining,
    /// `--sticky-strict`: the backend this client is bound to is down or
    /// was removed, and the client asked for an error over another node.
    StickyTargetGone,
}

/// A failure to proxy one request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    ClientBody(String),
    /// The client sent its body too slowly (`--body-timeout`, `--body-min-rate`).
    #[error("request body too slow: {received} bytes in {elapsed:?}")]
    BodyTimeout { received: usize, elapsed: Duration },
    /// `--redirect-http`, and the request named no host to redirect to.
    #[error("no valid Host header to redirect to HTTPS")]
    NoRedirectHost,
    #[error("{}", no_backend_message(*.0))]
    NoBackend(NoBackend),
    /// TCP connect to the backend failed; the request was never sent.
    #[error("connect to backend {backend} failed: {detail}")]
    Connect { backend: String, detail: String },
    /// TCP connect did not finish in time; the request was never sent.
    #[error("connect to backend {backend} timed out")]
    ConnectTimeout { backend: String },
    /// The request was (maybe) sent, then the exchange failed.
    #[error("backend {backend} failed after the request was sent: {detail}")]
    AfterSend { backend: String, detail: String },
    /// No response headers within the read timeout.
    #[error("backend {backend} did not answer within {timeout:?}")]
    ReadTimeout { backend: String, timeout: Duration },
}

fn no_backend_message(why: NoBackend) -> &'static str {
    match why {
        NoBackend::NoneConfigured => "no backends are configured",
        NoBackend::AllDown => "all backends are down",
        NoBackend::AllDraining => "all healthy backends are draining",
        NoBackend::StickyTargetGone => {
            "the backend this session is bound to is gone (--sticky-strict: no other node)"
        }
    }
}

impl ProxyError {
    pub fn origin(&self) -> Origin {
        match self {
            ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientBody(_)
            | ProxyError::BodyTimeout { .. }
            | ProxyError::NoRedirectHost => Origin::Client,
            ProxyError::NoBackend(_) => Origin::Balancer,
            _ => Origin::Upstream,
        }
    }

    /// May the same request be sent to the next candidate?
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self {
            ProxyError::Connect { .. } | ProxyError::ConnectTimeout { .. } => true,
            ProxyError::AfterSend { .. } => idempotent,
            _ => false,
        }
    }

    /// Does this failure count against the backend's health (passive check)?
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::ConnectTimeout { .. }
                | ProxyError::ReadTimeout { .. }
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody(_) | ProxyError::NoRedirectHost => StatusCode::BAD_REQUEST,
            ProxyError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NoBackend(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect { .. } | ProxyError::AfterSend { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::ConnectTimeout { .. } | ProxyError::ReadTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// A short machine-readable name for the error.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::ClientBody(_) => "bad_request_body",
            ProxyError::BodyTimeout { .. } => "body_timeout",
            ProxyError::NoRedirectHost => "no_redirect_host",
            ProxyError::NoBackend(NoBackend::NoneConfigured) => "no_backends",
            ProxyError::NoBackend(NoBackend::AllDown) => "all_backends_down",
            ProxyError::NoBackend(NoBackend::AllDraining) => "all_backends_draining",
            ProxyError::NoBackend(NoBackend::StickyTargetGone) => "sticky_target_gone",
            ProxyError::Connect { .. } => "upstream_connect_failed",
            ProxyError::ConnectTimeout { .. } => "upstream_connect_timeout",
            ProxyError::AfterSend { .. } => "upstream_failed",
            ProxyError::ReadTimeout { .. } => "upstream_read_timeout",
        }
    }

    /// The response the client sees.
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        json_response(
            self.status(),
            &serde_json::json!({
                "error": self.kind(),
                "origin": self.origin().as_str(),
                "detail": self.to_string(),
            }),
        )
    }
}

/// A JSON response with the given status (shared by the proxy and the admin API).
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(e: fn(String) -> ProxyError) -> ProxyError {
        e("node-1".into())
    }

    #[test]
    fn retry_safety_depends_on_when_it_failed() {
        let connect = upstream(|b| ProxyError::Connect {
            backend: b,
            detail: "refused".into(),
        });
        let sent = upstream(|b| ProxyError::AfterSend {
            backend: b,
            detail: "reset".into(),
        });
        let slow = upstream(|b| ProxyError::ReadTimeout {
            backend: b,
            timeout: Duration::from_secs(1),
        });
        assert!(connect.retry_safe(false));
        assert!(sent.retry_safe(true));
        assert!(!sent.retry_safe(false));
        assert!(!slow.retry_safe(true));
        assert_eq!(connect.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(slow.is_backend_failure());
        assert!(!sent.is_backend_failure());
    }

    #[test]
    fn no_backend_names_the_reason() {
        let e = ProxyError::NoBackend(NoBackend::AllDown);
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.origin(), Origin::Balancer);
        assert_eq!(e.kind(), "all_backends_down");
        assert_eq!(e.to_string(), "all backends are down");
    }
}
