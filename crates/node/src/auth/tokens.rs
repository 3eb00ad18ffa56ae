//! jwt mode (`--auth jwt`): who the user is comes from a signed token, not
//! from a session lookup.
//!
//! The token machinery (signing, strict validation, refresh rotation with
//! family revocation, the logout deny-list) is
//! [`sessionlab_session::jwt`]. This file is the node's side of it:
//!
//! - [`TokenAuth::new`] builds the [`TokenService`] from the
//!   [`JwtOptions`]: HS256 with `--jwt-secret` (at least 32 bytes, checked
//!   when the flags are parsed), or EdDSA with
//!   `--jwt-private-key`/`--jwt-public-key` (PEM files, read at start).
//!   Access tokens live `--access-ttl`, refresh tokens `--refresh-ttl`, a
//!   login at most `--absolute-timeout`.
//! - [`authenticate`] runs for every request whose handler asks for the
//!   session: it takes `Authorization: Bearer <token>`, verifies it (a
//!   signature check, and one store read: the deny-list), and finds the
//!   login's data.
//!
//! ## Where the counter and the cart live in jwt mode
//! The point of the mode is that *authentication* needs no server storage:
//! any node with the key knows who you are from the token alone. The app's
//! data (the counter, the cart) is another matter: it is not in the token
//! (tokens are readable by anyone, limited in size, and cannot change
//! without being re-issued), so it must live somewhere on the server. Here
//! it lives in the configured store (replicated memory or Redis), one record
//! per *login*: the record id is derived from the token's refresh family
//! (`fam` claim) by [`data_id`], so it survives token refreshes and is
//! deleted at logout. One record per login, rather than one per user, makes
//! a fresh login start with an empty cart exactly as a fresh session does in
//! session mode, so the load tool can compare the two modes request for
//! request (its simulated users share three user names). The honest summary:
//! jwt mode moves *identity* out of the store, not *state*; every request
//! that touches the cart still reads the store, and logout and refresh
//! still write it.

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sessionlab_session::jwt::{Claims, TokenConfig, TokenKeys, TokenService};
use sessionlab_session::{Session, SessionId, SessionStore, clock};
use sha2::{Digest, Sha256};

use crate::config::{InvalidConfig, JwtKeys, JwtOptions, Timeouts};
use crate::error::{NodeError, StartError};
use crate::state::NodeState;

/// The issuer and audience every node puts in and expects of tokens.
pub const ISSUER: &str = "sessionlab";
pub const AUDIENCE: &str = "sessionlab-demo";

/// The token service and the lifetimes of the data records.
pub struct TokenAuth {
    pub service: TokenService,
    /// A login's data lives as long as its refresh token could be used...
    data_idle_ms: u64,
    /// ...and never longer than the login itself.
    data_absolute_ms: u64,
}

fn read_key(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|source| StartError::Io {
        what: format!("{flag} {}", path.display()),
        source,
    })
}

impl TokenAuth {
    /// The token service the options ask for; the key files are read now.
    pub fn new(
        jwt: &JwtOptions,
        timeouts: &Timeouts,
        store: Arc<dyn SessionStore>,
    ) -> Result<TokenAuth, StartError> {
        let keys = match &jwt.keys {
            JwtKeys::Hs256(secret) => {
                TokenKeys::hs256(secret.as_bytes()).map_err(|e| InvalidConfig(e.to_string()))?
            }
            JwtKeys::EdDsa {
                private_key,
                public_key,
            } => {
                let private = read_key(private_key, "--jwt-private-key")?;
                let public = read_key(public_key, "--jwt-public-key")?;
                TokenKeys::eddsa_pem(&private, &public).map_err(|e| {
                    InvalidConfig(format!("--jwt-private-key/--jwt-public-key: {e}"))
                })?
            }
        };
        let tc = TokenConfig {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            access_ttl_s: jwt.access_ttl.as_secs(),
            refresh_ttl_s: jwt.refresh_ttl.as_secs(),
            family_ttl_s: timeouts.absolute.as_secs(),
            leeway_s: jwt.leeway.as_secs(),
        };
        Ok(TokenAuth {
            service: TokenService::new(keys, tc, store),
            data_idle_ms: jwt.refresh_ttl.as_millis() as u64,
            data_absolute_ms: timeouts.absolute_ms(),
        })
    }

    /// An empty data record for a login that has not stored anything yet.
    fn fresh_record(&self, claims: &Claims) -> Result<Session, NodeError> {
        let mut s = Session::new(
            data_id(&claims.fam),
            clock::now_ms(),
            self.data_idle_ms,
            self.data_absolute_ms,
        );
        s.user = Some(claims.sub.clone());
        Ok(s)
    }
}

/// The id of the data record of the login (refresh family) `fam`: a hash,
/// so it is not the family record's own id, and 32 URL-safe characters, so
/// every store takes it as a session id.
pub fn data_id(fam: &str) -> SessionId {
    let digest = Sha256::new()
        .chain_update(b"sessionlab app data\0")
        .chain_update(fam.as_bytes())
        .finalize();
    SessionId::parse(&URL_SAFE_NO_PAD.encode(&digest[..24]))
        .expect("24 bytes are 32 URL-safe base64 characters")
}

/// What a request presented in `Authorization`.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    Bearer(&'a str),
    /// Some other scheme, or not text.
    Unusable,
}

/// Read `Authorization: Bearer <token>` (the scheme is case-insensitive).
pub fn bearer(req: &HttpRequest) -> Presented<'_> {
    let Some(v) = req.headers().get(header::AUTHORIZATION) else {
        return Presented::None;
    };
    let Ok(v) = v.to_str() else {
        return Presented::Unusable;
    };
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Presented::Bearer(token.trim())
        }
        _ => Presented::Unusable,
    }
}

/// The login's data record and the token's claims, or `(None, None)` for a
/// request without a token. A refused token is a 401 with its reason.
pub async fn authenticate(
    node: &NodeState,
    req: &HttpRequest,
) -> Result<(Option<Session>, Option<Claims>), NodeError> {
    let Some(auth) = &node.tokens else {
        return Ok((None, None));
    };
    let token = match bearer(req) {
        Presented::None => return Ok((None, None)),
        Presented::Unusable => {
            node.metrics.token_refused("malformed");
            return Err(NodeError::Token(
                sessionlab_session::jwt::TokenError::Malformed,
            ));
        }
        Presented::Bearer(t) => t,
    };
    let claims = match auth.service.verify_access(token).await {
        Ok(c) => c,
        Err(e) => {
            node.metrics.token_refused(e.reason());
            tracing::debug!(node = %node.id, reason = e.reason(), "bearer token refused");
            return Err(e.into());
        }
    };
    let record = match node.store.get(&data_id(&claims.fam)).await? {
        Some(s) if s.user.as_deref() == Some(claims.sub.as_str()) => s,
        _ => auth.fresh_record(&claims)?,
    };
    Ok((Some(record), Some(claims)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn data_ids_are_session_ids_and_differ_from_the_family() {
        let fam = SessionId::generate();
        let d = data_id(fam.as_str());
        assert_ne!(d, fam);
        assert_eq!(d, data_id(fam.as_str()));
        assert_eq!(d.as_str().len(), 32);
    }

    #[test]
    fn reads_bearer_tokens_only() {
        let r = TestRequest::default()
            .insert_header(("authorization", "Bearer abc.def.ghi"))
            .to_http_request();
        assert_eq!(bearer(&r), Presented::Bearer("abc.def.ghi"));
        let r = TestRequest::default()
            .insert_header(("authorization", "bearer  x "))
            .to_http_request();
        assert_eq!(bearer(&r), Presented::Bearer("x"));
        let r = TestRequest::default()
            .insert_header(("authorization", "Basic YWxpY2U6eA=="))
            .to_http_request();
        assert_eq!(bearer(&r), Presented::Unusable);
        assert_eq!(
            bearer(&TestRequest::default().to_http_request()),
            Presented::None
        );
    }
}
