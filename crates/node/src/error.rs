//! Errors, and how each becomes an HTTP answer.
//!
//! A client that sent something wrong gets a status that says what (400, 401,
//! 404, 413) and a JSON body `{"error": "<kind>", "detail": "<message>"}`, the
//! same shape on every route, so scripts and the load tool can tell a full
//! store (503) from a conflict (409) without parsing prose. Nothing a client
//! sends may turn into a panic or a 500: the only 500 left is a store failing
//! in a way it has no name for, and there is none today.
//!
//! Store errors map one to one: `TooLarge` -> 413, `Full` -> 503,
//! `OverBudget` -> 503, `Conflict` -> 409, `Unavailable` -> 503,
//! `NoMajority` (a write refused by `--partition-policy consistent`) -> 503.
//!
//! Refusals that pass with time carry `Retry-After` (whole seconds): a
//! store at its budget (503), a client over its rate limit (429, the wait
//! its limiter computed), a full password-check queue (503). Another
//! site's state-changing request is 403 `cross_site`. In jwt mode a refused token is
//! 401 with a `reason` field (`expired`, `bad_signature`, `wrong_algorithm`,
//! `wrong_type`, `revoked`, `refresh_reuse_detected`, `missing_token`, ...)
//! and a `WWW-Authenticate: Bearer` header.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use sessionlab_session::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("{0}")]
    BadRequest(String),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("no route for this path")]
    NotFound,
    #[error("the node is not ready yet")]
    NotReady,
    /// jwt mode: a bearer or refresh token was refused (401 with the reason).
    #[error("{0}")]
    Token(sessionlab_session::jwt::TokenError),
    /// This client started too many sessions or login attempts lately (429).
    #[error("too many {what} from this client; retry after {retry_after_secs}s")]
    RateLimited {
        what: &'static str,
        retry_after_secs: u64,
    },
    /// Every password-check slot and waiting place is taken (503).
    #[error("too many logins are being checked right now; retry shortly")]
    LoginQueueFull,
    /// A state-changing request from another site (403): login CSRF and
    /// friends.
    #[error("{0}")]
    CrossSite(&'static str),
    /// jwt mode: the request needs a login and carried no token (401).
    #[error("this needs a login: POST /auth/login, then send Authorization: Bearer <access_token>")]
    LoginRequired,
}

impl From<sessionlab_session::jwt::TokenError> for NodeError {
    /// A token store that failed is the store's error (503, 409), not the
    /// token's: the client's token may be fine.
    fn from(e: sessionlab_session::jwt::TokenError) -> Self {
        match e {
            sessionlab_session::jwt::TokenError::Store(s) => NodeError::Store(s),
            other => NodeError::Token(other),
        }
    }
}

/// `Retry-After` of a store at its budget: expiry frees room over minutes,
/// so a client should not hammer it.
pub const STORE_FULL_RETRY_AFTER_SECS: u64 = 30;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::InvalidConfig),
    #[error("replication: {0}")]
    Replication(#[from] sessionlab_replication::StartError),
    #[error("users file {path}: {reason}")]
    Users { path: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    /// Why a token was refused (`expired`, `bad_signature`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    detail: String,
}

impl NodeError {
    /// A short machine-readable name for the `error` field.
    pub fn kind(&self) -> &'static str {
        match self {
            NodeError::Store(StoreError::TooLarge { .. }) => "session_too_large",
            NodeError::Store(StoreError::Full { .. }) => "store_full",
            NodeError::Store(StoreError::OverBudget {
                anonymous: false, ..
            }) => "store_over_budget",
            NodeError::Store(StoreError::OverBudget {
                anonymous: true, ..
            }) => "anonymous_over_budget",
            NodeError::RateLimited { .. } => "rate_limited",
            NodeError::LoginQueueFull => "login_queue_full",
            NodeError::CrossSite(_) => "cross_site",
            NodeError::Store(StoreError::Conflict) => "conflict",
            NodeError::Store(StoreError::Unavailable(_)) => "store_unavailable",
            NodeError::Store(StoreError::NoMajority(_)) => "no_majority",
            NodeError::BodyTooLarge { .. } => "body_too_large",
            NodeError::BadRequest(_) => "bad_request",
            NodeError::BadCredentials => "bad_credentials",
            NodeError::NotFound => "not_found",
            NodeError::NotReady => "not_ready",
            NodeError::Token(_) => "invalid_token",
            NodeError::LoginRequired => "unauthorized",
        }
    }

    /// The `Retry-After` of a refusal that passes with time.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            NodeError::RateLimited {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            NodeError::Store(StoreError::OverBudget { .. } | StoreError::Full { .. }) => {
                Some(STORE_FULL_RETRY_AFTER_SECS)
            }
            NodeError::LoginQueueFull | NodeError::Store(StoreError::NoMajority(_)) => Some(1),
            _ => None,
        }
    }

    /// The machine-readable reason of a 401 in jwt mode.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            NodeError::Token(e) => Some(e.reason()),
            NodeError::LoginRequired => Some("missing_token"),
            _ => None,
        }
    }
}

impl ResponseError for NodeError {
    fn status_code(&self) -> StatusCode {
        match self {
            NodeError::Store(StoreError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            NodeError::Store(StoreError::Full { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Store(StoreError::OverBudget { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            NodeError::LoginQueueFull => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::CrossSite(_) => StatusCode::FORBIDDEN,
            NodeError::Store(StoreError::Conflict) => StatusCode::CONFLICT,
            NodeError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Store(StoreError::NoMajority(_)) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            NodeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NodeError::BadCredentials => StatusCode::UNAUTHORIZED,
            NodeError::NotFound => StatusCode::NOT_FOUND,
            NodeError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::Token(_) | NodeError::LoginRequired => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after_secs() {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        match self {
            NodeError::Token(_) => {
                res.insert_header(("www-authenticate", "Bearer error=\"invalid_token\""));
            }
            NodeError::LoginRequired => {
                res.insert_header(("www-authenticate", "Bearer"));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: self.kind(),
            reason: self.reason(),
            detail: self.to_string(),
        })
    }
}

/// The app's fallback for unknown paths: a JSON 404 (which, like every
/// response, gets `X-Served-By`).
pub async fn not_found() -> NodeError {
    NodeError::NotFound
}

impl actix_web::Responder for NodeError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _req: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses() {
        let cases = [
            (StoreError::TooLarge { size: 2, limit: 1 }, 413),
            (StoreError::Full { limit: 1 }, 503),
            (
                StoreError::OverBudget {
                    budget_bytes: 1,
                    anonymous: true,
                },
                503,
            ),
            (StoreError::Conflict, 409),
            (StoreError::Unavailable("down".into()), 503),
            (StoreError::NoMajority("cut off".into()), 503),
        ];
        for (e, status) in cases {
            assert_eq!(NodeError::from(e).status_code().as_u16(), status);
        }
        assert_eq!(NodeError::BodyTooLarge { limit: 1 }.status_code(), 413);
    }

    #[test]
    fn refusals_that_pass_with_time_say_when_to_retry() {
        let limited = NodeError::RateLimited {
            what: "new sessions",
            retry_after_secs: 7,
        };
        let res = limited.error_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers().get("retry-after").unwrap(), "7");
        let full = NodeError::from(StoreError::OverBudget {
            budget_bytes: 1,
            anonymous: false,
        });
        assert!(full.error_response().headers().contains_key("retry-after"));
        assert_eq!(NodeError::LoginQueueFull.status_code(), 503);
        assert_eq!(NodeError::CrossSite("x").status_code(), 403);
        assert!(NodeError::NotFound.retry_after_secs().is_none());
    }
}
