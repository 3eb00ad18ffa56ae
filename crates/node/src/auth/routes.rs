//! The token endpoints of jwt mode (`--auth jwt`).
//!
//! | route | body (form or JSON) | answer |
//! |---|---|---|
//! | `POST /auth/login` | `username`, `password` | a [`TokenPair`]: `access_token`, `refresh_token`, `token_type: "Bearer"`, `expires_in`, `refresh_expires_in` |
//! | `POST /auth/refresh` | `refresh_token` | a new pair; the old refresh token is dead, and presenting it again revokes the whole family (401 `refresh_reuse_detected`) |
//! | `POST /auth/logout` | none; `Authorization: Bearer` | `{"node_id", "logged_out": true}`: the access token's `jti` is deny-listed until it expires, its family revoked, the login's data deleted |
//!
//! After login the app's API (`/api/session`, `/api/counter/increment`,
//! `/api/cart/{item}`) takes `Authorization: Bearer <access_token>` and
//! answers exactly as in session mode. Refused tokens are 401 with a
//! `reason` ([`crate::error`]). In session mode these routes answer 404.
//!
//! Login and refresh write the refresh family to the store, logout writes
//! the deny-list entry: "stateless" tokens need storage as soon as they
//! need to end early (see [`sessionlab_session::jwt`]).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::tokens::TokenAuth;
use crate::error::NodeError;
use crate::session::websession::WebSession;
use crate::state::NodeState;

/// Register the token routes (see the module docs).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").name("auth_login").post(login))
        .service(
            web::resource("/auth/refresh")
                .name("auth_refresh")
                .post(refresh),
        )
        .service(
            web::resource("/auth/logout")
                .name("auth_logout")
                .post(logout),
        );
}

fn tokens(node: &NodeState) -> Result<&TokenAuth, NodeError> {
    node.tokens.as_deref().ok_or(NodeError::NotFound)
}

/// Read a form or JSON body (by `Content-Type`) into `T`.
async fn fields<T: DeserializeOwned>(
    req: &HttpRequest,
    node: &NodeState,
    payload: web::Payload,
    expected: &str,
) -> Result<T, NodeError> {
    let limit = node.options.limits.max_body_bytes;
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| NodeError::BodyTooLarge {
            limit: limit as u64,
        })?
        .map_err(|e| NodeError::BadRequest(format!("reading the body: {e}")))?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let bad = |e: String| NodeError::BadRequest(format!("expected {expected}: {e}"));
    if is_json {
        serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))
    } else {
        let text = std::str::from_utf8(&body).map_err(|e| bad(e.to_string()))?;
        web::Query::<T>::from_query(text)
            .map(web::Query::into_inner)
            .map_err(|e| bad(e.to_string()))
    }
}

#[derive(Deserialize)]
struct LoginFields {
    username: String,
    password: String,
}

async fn login(
    req: HttpRequest,
    node: web::Data<NodeState>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let auth = tokens(&node)?;
    let expected = "form or JSON fields username, password";
    let f: LoginFields = fields(&req, &node, payload, expected).await?;
    let user = f.username.trim();
    let ok = node.check_login(&req, user, &f.password).await?;
    if !ok {
        tracing::info!(node = %node.id, "token login failed");
        return Err(NodeError::BadCredentials);
    }
    let pair = auth.service.login(user).await?;
    tracing::info!(node = %node.id, user, "token login");
    Ok(token_answer(&pair))
}

/// A new token pair as the answer: JSON, never cached (it is a credential).
fn token_answer(pair: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(pair)
}

#[derive(Deserialize)]
struct RefreshFields {
    refresh_token: String,
}

async fn refresh(
    req: HttpRequest,
    node: web::Data<NodeState>,
    payload: web::Payload,
) -> Result<HttpResponse, NodeError> {
    let auth = tokens(&node)?;
    let f: RefreshFields = fields(&req, &node, payload, "form or JSON field refresh_token").await?;
    match auth.service.refresh(f.refresh_token.trim()).await {
        Ok(pair) => Ok(token_answer(&pair)),
        Err(e) => {
            node.metrics.token_refused(e.reason());
            Err(e.into())
        }
    }
}

async fn logout(node: web::Data<NodeState>, ws: WebSession) -> Result<HttpResponse, NodeError> {
    let auth = tokens(&node)?;
    let claims = ws.claims().ok_or(NodeError::LoginRequired)?;
    auth.service.logout(&claims).await?;
    // The login's data goes too, as a session does at logout.
    ws.logout();
    tracing::info!(node = %node.id, user = %claims.sub, "token logout: jti deny-listed, family revoked");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "node_id": node.id,
        "logged_out": true,
    })))
}
