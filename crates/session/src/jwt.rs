//! JWT access and refresh tokens: "stateless" login, and where state comes back.
//!
//! A JSON Web Token carries its claims (who, until when) *signed*, not
//! encrypted: anyone can read the payload (it is base64), nobody without the
//! key can change it. A server that trusts the signature needs no session
//! storage at all to authenticate a request, which is why tokens scale out so
//! easily. Until you want one of these:
//!
//! - **Logout before expiry.** A signed token stays valid until `exp`. To end
//!   it early the server must remember "this `jti` is revoked" until it would
//!   have expired: a *deny-list*, i.e. server-side state again.
//! - **Long logins without long-lived access tokens.** Access tokens are kept
//!   short (default 5 min); a longer *refresh token* buys new ones. Refresh
//!   tokens are rotated on every use, and a reused (stolen) refresh token
//!   must revoke its whole *family*, which means remembering, per family,
//!   which token is current: server-side state again.
//!
//! This module keeps that state in the node's [`SessionStore`], as small
//! records keyed by a random id: a family record (`fam` claim) holding the
//! current refresh `jti`, and a deny-list record per revoked access `jti`,
//! each expiring when the tokens it speaks for would. So in the lab the
//! refresh families and the deny-list are replicated (replicated memory) or
//! shared (Redis) exactly like sessions, which is the point: tokens are
//! stateless until you need logout and refresh.
//!
//! ## Revocation is a record of its own, and monotonic
//! Revoking a family (logout, or a reused refresh token) writes a separate
//! **deny record** keyed by the family ([`family_deny_id`]), not a field of
//! the family record. A refresh rewrites the family record (the new current
//! `jti`), so a `revoked` flag inside it is an ordinary last-writer-wins
//! field that a concurrent refresh could overwrite; the deny record is
//! never rewritten by anything (a second revocation finds it present and
//! leaves it), so once written it stays until the family's own lifetime
//! ends. Every refresh reads it first. It needs nothing
//! of the family record: a node that has never seen the family (its record
//! has not arrived, or was written across a partition) still denies it,
//! and the record replicates (or is shared, in Redis) like any session.
//!
//! ## Validation, strictly
//! One algorithm is accepted (the configured one; `alg: none` and every
//! other algorithm are refused), `iss` and `aud` must match, `exp`, `nbf` and
//! `iat` are checked against the lab's clock with zero leeway by default,
//! and a `typ` claim keeps a refresh token from being used as an access token
//! and the other way round. Time is checked here rather than inside the
//! `jsonwebtoken` crate so that tests can move tokio's paused clock.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock;
use crate::id::SessionId;
use crate::session::Session;
use crate::store::{SessionStore, StoreError};

/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Which kind of token a claim set is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// The claims sessionlab puts in its tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    /// Unique token id (the same format as a session id).
    pub jti: String,
    pub typ: TokenType,
    /// The refresh-token family this token belongs to.
    pub fam: String,
}

/// Why a token was refused. Each is a 401 with [`TokenError::reason`] in the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token is signed with an algorithm this server does not accept")]
    WrongAlgorithm,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token claims to be issued in the future")]
    IssuedInFuture,
    #[error("expected a {expected:?} token")]
    WrongType { expected: TokenType },
    #[error("the token is for another issuer or audience")]
    WrongIssuerOrAudience,
    #[error("the token has been revoked")]
    Revoked,
    #[error("a refresh token was used twice; its whole family is now revoked")]
    ReuseDetected,
    #[error("the token store failed: {0}")]
    Store(#[from] StoreError),
}

impl TokenError {
    /// A short machine-readable reason for the JSON error body.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongAlgorithm => "wrong_algorithm",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::WrongType { .. } => "wrong_type",
            TokenError::WrongIssuerOrAudience => "wrong_issuer_or_audience",
            TokenError::Revoked => "revoked",
            TokenError::ReuseDetected => "refresh_reuse_detected",
            TokenError::Store(_) => "store_unavailable",
        }
    }
}

/// A bad key configuration (a startup error, not a request error).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("--jwt-secret must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    #[error("the EdDSA key could not be read: {0}")]
    BadKey(String),
}

/// Signing and verification keys for one algorithm.
#[derive(Clone)]
pub struct TokenKeys {
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    /// HMAC-SHA256 with a shared secret (every node needs the same secret).
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::SecretTooShort(secret.len()));
        }
        let bad = |e: jsonwebtoken::errors::Error| KeyError::BadKey(e.to_string());
        Ok(TokenKeys {
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret).map_err(bad)?,
            decoding: DecodingKey::from_secret(secret).map_err(bad)?,
        })
    }

    /// Ed25519 from PEM files: the private key signs, the public key verifies
    /// (a verifier needs no secret at all).
    pub fn eddsa_pem(private_pem: &[u8], public_pem: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: jsonwebtoken::errors::Error| KeyError::BadKey(e.to_string());
        Ok(TokenKeys {
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(private_pem).map_err(bad)?,
            decoding: DecodingKey::from_ed_pem(public_pem).map_err(bad)?,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Lifetimes and names for issued tokens.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub access_ttl_s: u64,
    pub refresh_ttl_s: u64,
    /// A refresh family (one login) ends after this, however often refreshed.
    pub family_ttl_s: u64,
    /// Clock skew tolerated on exp/nbf/iat (0 by default).
    pub leeway_s: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            issuer: "sessionlab".into(),
            audience: "sessionlab-demo".into(),
            access_ttl_s: 5 * 60,
            refresh_ttl_s: 60 * 60,
            family_ttl_s: 8 * 60 * 60,
            leeway_s: 0,
        }
    }
}

/// What login and refresh return (also the JSON body of those endpoints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
}

/// Issues, verifies, rotates and revokes tokens; see the module docs.
pub struct TokenService {
    keys: TokenKeys,
    cfg: TokenConfig,
    validation: Validation,
    store: Arc<dyn SessionStore>,
}

fn now_s() -> u64 {
    clock::now_ms() / 1000
}

/// Store records use the session record format: the id is the `jti` or
/// `fam`, which are generated exactly like session ids.
fn record_id(s: &str) -> Result<SessionId, TokenError> {
    SessionId::parse(s).map_err(|_| TokenError::Malformed)
}

/// The id of the deny record of refresh family `fam` (see the module
/// docs): derived from the family id with HKDF-SHA256 under a label of its
/// own, so it is neither the family record's id nor guessable without it,
/// and every node derives the same one.
pub fn family_deny_id(fam: &str) -> SessionId {
    use base64::Engine;
    let key = sessionlab_wire::keys::derive(fam.as_bytes(), b"sessionlab/v1/family-deny");
    SessionId::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key[..24]))
        .expect("24 bytes are 32 URL-safe base64 characters")
}

impl TokenService {
    pub fn new(keys: TokenKeys, cfg: TokenConfig, store: Arc<dyn SessionStore>) -> Self {
        let mut validation = Validation::new(keys.alg);
        validation.algorithms = vec![keys.alg];
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&[&cfg.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // exp and nbf are checked in `check_times` against the lab clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        TokenService {
            keys,
            cfg,
            validation,
            store,
        }
    }

    pub fn config(&self) -> &TokenConfig {
        &self.cfg
    }

    fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(self.keys.alg), claims, &self.keys.encoding)
            .expect("signing with a validated key cannot fail")
    }

    fn claims(&self, sub: &str, typ: TokenType, fam: &str, ttl_s: u64) -> Claims {
        let now = now_s();
        Claims {
            iss: self.cfg.issuer.clone(),
            aud: self.cfg.audience.clone(),
            sub: sub.to_owned(),
            exp: now + ttl_s,
            nbf: now,
            iat: now,
            jti: SessionId::generate().as_str().to_owned(),
            typ,
            fam: fam.to_owned(),
        }
    }

    fn pair(&self, sub: &str, fam: &str) -> (TokenPair, Claims) {
        let access = self.claims(sub, TokenType::Access, fam, self.cfg.access_ttl_s);
        let refresh = self.claims(sub, TokenType::Refresh, fam, self.cfg.refresh_ttl_s);
        let pair = TokenPair {
            access_token: self.sign(&access),
            refresh_token: self.sign(&refresh),
            token_type: "Bearer".into(),
            expires_in: self.cfg.access_ttl_s,
            refresh_expires_in: self.cfg.refresh_ttl_s,
        };
        (pair, refresh)
    }

    /// Verify signature, algorithm, issuer, audience, times and type.
    pub fn decode(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        if token.len() > 8 * 1024 {
            return Err(TokenError::Malformed);
        }
        // Name the algorithm problem as such, `alg: none` included (the
        // crate would call a header it has no variant for "malformed").
        if let Some(alg) = header_alg(token) {
            if alg.parse::<Algorithm>().ok() != Some(self.keys.alg) {
                return Err(TokenError::WrongAlgorithm);
            }
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.keys.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::UnsupportedAlgorithm
                | ErrorKind::MissingAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                    TokenError::WrongIssuerOrAudience
                }
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Malformed,
            })?;
        let c = data.claims;
        let now = now_s();
        let leeway = self.cfg.leeway_s;
        if now >= c.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(leeway) < c.nbf {
            return Err(TokenError::NotYetValid);
        }
        if now.saturating_add(leeway) < c.iat {
            return Err(TokenError::IssuedInFuture);
        }
        if c.typ != expected {
            return Err(TokenError::WrongType { expected });
        }
        Ok(c)
    }

    /// A fresh login: a new family and its first token pair.
    pub async fn login(&self, user: &str) -> Result<TokenPair, TokenError> {
        let fam = SessionId::generate();
        let (pair, refresh) = self.pair(user, fam.as_str());
        let ttl_ms = self.cfg.family_ttl_s * 1000;
        let mut rec = Session::new(fam, clock::now_ms(), ttl_ms, ttl_ms);
        rec.user = Some(user.to_owned());
        rec.set_data(&family_data(&refresh.jti, false));
        self.store.put(rec).await?;
        Ok(pair)
    }

    /// Verify an access token and check the deny-list (its `jti`). An
    /// access token of a revoked family lives until it expires (minutes)
    /// unless logout deny-listed it: that is the token model's trade.
    pub async fn verify_access(&self, token: &str) -> Result<Claims, TokenError> {
        let c = self.decode(token, TokenType::Access)?;
        if self.store.get(&record_id(&c.jti)?).await?.is_some() {
            return Err(TokenError::Revoked);
        }
        Ok(c)
    }

    async fn family_denied(&self, fam: &str) -> Result<bool, TokenError> {
        record_id(fam)?;
        Ok(self.store.get(&family_deny_id(fam)).await?.is_some())
    }

    /// Revoke family `fam` for good: write its deny record (see the module
    /// docs). Idempotent: a record already there (a second logout, a
    /// conflicting concurrent revocation) is left as it is.
    pub async fn revoke_family(&self, fam: &str, user: &str) -> Result<(), TokenError> {
        record_id(fam)?;
        let ttl_ms = self.cfg.family_ttl_s.saturating_mul(1000).max(1);
        let mut deny = Session::new(family_deny_id(fam), clock::now_ms(), ttl_ms, ttl_ms);
        deny.user = Some(user.to_owned());
        let mut m = Map::new();
        m.insert("family_denied".into(), Value::Bool(true));
        deny.set_data(&m);
        match self.store.put(deny).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            // A full store (or one over its budget) refuses the new record;
            // a delete is never refused, and a family without its record
            // refreshes as revoked. Revocation must not fail open.
            Err(e @ (StoreError::Full { .. } | StoreError::OverBudget { .. })) => {
                match self.store.delete(&record_id(fam)?).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Rotate a refresh token. The presented token must be its family's
    /// current one; presenting an older one (a replay, e.g. by a thief)
    /// revokes the whole family.
    pub async fn refresh(&self, token: &str) -> Result<TokenPair, TokenError> {
        let c = self.decode(token, TokenType::Refresh)?;
        let fam_id = record_id(&c.fam)?;
        if self.family_denied(&c.fam).await? {
            return Err(TokenError::Revoked);
        }
        let Some(mut fam) = self.store.get(&fam_id).await? else {
            return Err(TokenError::Revoked);
        };
        let data = fam.data();
        if data.get("revoked") == Some(&Value::Bool(true)) {
            return Err(TokenError::Revoked);
        }
        if data.get("current").and_then(Value::as_str) != Some(c.jti.as_str()) {
            self.revoke_family(&c.fam, &c.sub).await?;
            fam.set_data(&family_data("", true));
            // The deny record is what counts; the flag is for the demo page.
            let _ = self.store.put(fam).await;
            tracing::warn!(user = %c.sub, "refresh token reuse detected; family revoked");
            return Err(TokenError::ReuseDetected);
        }
        let (pair, refresh) = self.pair(&c.sub, &c.fam);
        fam.set_data(&family_data(&refresh.jti, false));
        fam.last_access_ms = clock::now_ms();
        self.store.put(fam).await?;
        Ok(pair)
    }

    /// Logout: deny the access token until it expires and revoke its family
    /// (so its refresh token is dead too). "Expires" is when
    /// [`TokenService::verify_access`] stops taking it: its `exp` plus the
    /// leeway, or a deny record that ended at `exp` would let the token
    /// work again for the leeway.
    pub async fn logout(&self, access: &Claims) -> Result<(), TokenError> {
        let now_ms = clock::now_ms();
        let remaining_ms = access
            .exp
            .saturating_add(self.cfg.leeway_s)
            .saturating_mul(1000)
            .saturating_sub(now_ms)
            .max(1);
        let mut deny = Session::new(record_id(&access.jti)?, now_ms, remaining_ms, remaining_ms);
        deny.user = Some(access.sub.clone());
        let mut m = Map::new();
        m.insert("denied".into(), Value::Bool(true));
        deny.set_data(&m);
        let denied = match self.store.put(deny).await {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(TokenError::from(e)),
        };
        // The deny record: works whether or not this node holds the family.
        // Revoked even when the access token's own record could not be
        // written, so its refresh token dies whatever happens.
        self.revoke_family(&access.fam, &access.sub).await?;
        denied?;
        if let Some(mut fam) = self.store.get(&record_id(&access.fam)?).await? {
            fam.set_data(&family_data("", true));
            // Best effort (the flag is for the demo page): the deny record
            // already revoked the family, and a refresh racing this write
            // cannot undo it.
            let _ = self.store.put(fam).await;
        }
        Ok(())
    }
}

fn family_data(current: &str, revoked: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("current".into(), Value::from(current));
    m.insert("revoked".into(), Value::Bool(revoked));
    m
}

/// The `alg` a token's header claims, if the header is readable JSON.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_owned)
}

/// The payload of a JWT, decoded without verifying anything: what anyone who
/// sees the token can read. (The demo page shows it.)
pub fn peek_payload(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryStore, MemoryStoreConfig};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use std::time::Duration;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn service() -> TokenService {
        service_with(Arc::new(MemoryStore::new(MemoryStoreConfig::default())))
    }

    fn service_with(store: Arc<dyn SessionStore>) -> TokenService {
        TokenService::new(
            TokenKeys::hs256(SECRET).unwrap(),
            TokenConfig::default(),
            store,
        )
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            TokenKeys::hs256(b"short"),
            Err(KeyError::SecretTooShort(5))
        ));
    }

    #[tokio::test]
    async fn login_verify_and_the_payload_is_readable_by_anyone() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        let c = svc.verify_access(&pair.access_token).await.unwrap();
        assert_eq!(c.sub, "alice");
        assert_eq!(c.typ, TokenType::Access);
        let payload = peek_payload(&pair.access_token).unwrap();
        assert_eq!(payload["sub"], "alice", "signed, not encrypted");
    }

    #[tokio::test]
    async fn a_tampered_token_is_refused() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        let mut parts: Vec<String> = pair.access_token.split('.').map(String::from).collect();
        let mut payload = peek_payload(&pair.access_token).unwrap();
        payload["sub"] = "mallory".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let forged = parts.join(".");
        assert_eq!(
            svc.verify_access(&forged).await,
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            svc.verify_access("not.a.jwt").await,
            Err(TokenError::Malformed)
        );
        assert_eq!(svc.verify_access("").await, Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn alg_none_and_other_algorithms_are_refused() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        let payload = pair.access_token.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{payload}.");
        assert_eq!(
            svc.verify_access(&unsigned).await,
            Err(TokenError::WrongAlgorithm)
        );
        // HS384 with the same secret: a valid signature, the wrong algorithm.
        let claims: Claims =
            serde_json::from_value(peek_payload(&pair.access_token).unwrap()).unwrap();
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(
            svc.verify_access(&hs384).await,
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_logged_out_token_stays_denied_through_the_leeway() {
        let svc = TokenService::new(
            TokenKeys::hs256(SECRET).unwrap(),
            TokenConfig {
                leeway_s: 30,
                ..Default::default()
            },
            Arc::new(MemoryStore::new(MemoryStoreConfig::default())),
        );
        let pair = svc.login("alice").await.unwrap();
        let claims = svc.verify_access(&pair.access_token).await.unwrap();
        svc.logout(&claims).await.unwrap();
        // Past `exp` (300 s) but inside the leeway the token still decodes:
        // the deny record must still be there.
        tokio::time::advance(Duration::from_secs(310)).await;
        assert_eq!(
            svc.verify_access(&pair.access_token).await,
            Err(TokenError::Revoked)
        );
        tokio::time::advance(Duration::from_secs(25)).await;
        assert_eq!(
            svc.verify_access(&pair.access_token).await,
            Err(TokenError::Expired)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn access_tokens_expire_with_zero_leeway() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(svc.verify_access(&pair.access_token).await.is_ok());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            svc.verify_access(&pair.access_token).await,
            Err(TokenError::Expired)
        );
    }

    #[tokio::test]
    async fn token_types_are_not_interchangeable_and_issuer_is_checked() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        assert_eq!(
            svc.verify_access(&pair.refresh_token).await,
            Err(TokenError::WrongType {
                expected: TokenType::Access
            })
        );
        assert!(matches!(
            svc.refresh(&pair.access_token).await,
            Err(TokenError::WrongType { .. })
        ));

        let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
        let other = TokenService::new(
            TokenKeys::hs256(SECRET).unwrap(),
            TokenConfig {
                audience: "another-app".into(),
                ..Default::default()
            },
            store,
        );
        assert_eq!(
            other.verify_access(&pair.access_token).await,
            Err(TokenError::WrongIssuerOrAudience)
        );
    }

    #[tokio::test]
    async fn refresh_rotates_and_reuse_revokes_the_family_even_in_a_full_store() {
        // A store with room, and one with room for alice's family record
        // and nothing more (the deny record of a reuse cannot be written):
        // the family dies in both.
        let full = MemoryStoreConfig {
            max_sessions: 1,
            ..MemoryStoreConfig::default()
        };
        for config in [MemoryStoreConfig::default(), full] {
            let svc = service_with(Arc::new(MemoryStore::new(config)));
            let first = svc.login("alice").await.unwrap();
            let second = svc.refresh(&first.refresh_token).await.unwrap();
            assert!(svc.verify_access(&second.access_token).await.is_ok());

            // The old refresh token is presented again (stolen): reuse
            // detected, and from now on the legitimate current token is
            // dead too.
            assert_eq!(
                svc.refresh(&first.refresh_token).await,
                Err(TokenError::ReuseDetected)
            );
            assert_eq!(
                svc.refresh(&second.refresh_token).await,
                Err(TokenError::Revoked)
            );
        }
    }

    #[tokio::test]
    async fn logout_denies_the_access_token_and_kills_the_refresh_token() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        let c = svc.verify_access(&pair.access_token).await.unwrap();
        svc.logout(&c).await.unwrap();
        assert_eq!(
            svc.verify_access(&pair.access_token).await,
            Err(TokenError::Revoked)
        );
        assert_eq!(
            svc.refresh(&pair.refresh_token).await,
            Err(TokenError::Revoked)
        );
        // Without the deny-list the signature alone would still say "valid".
        assert!(svc.decode(&pair.access_token, TokenType::Access).is_ok());
    }

    #[tokio::test]
    async fn a_refresh_cannot_undo_a_revocation_and_unseen_families_are_denied() {
        let svc = service();
        let pair = svc.login("alice").await.unwrap();
        let c = svc.verify_access(&pair.access_token).await.unwrap();
        // A refresh that loaded the family record before the logout writes
        // it back after: the old design's `revoked` flag would be gone.
        let fam_id = record_id(&c.fam).unwrap();
        let before = svc.store.get(&fam_id).await.unwrap().unwrap();
        svc.logout(&c).await.unwrap();
        let _ = svc.store.delete(&fam_id).await;
        let _ = svc.store.put(before).await;
        assert_eq!(
            svc.refresh(&pair.refresh_token).await,
            Err(TokenError::Revoked)
        );

        // A family this store never held (its record was written on a node
        // across a partition): revoked all the same.
        let other = service_with(svc.store.clone());
        let pair = other.login("bob").await.unwrap();
        let c = other.decode(&pair.access_token, TokenType::Access).unwrap();
        let empty = service();
        empty.revoke_family(&c.fam, "bob").await.unwrap();
        assert_eq!(
            empty.refresh(&pair.refresh_token).await,
            Err(TokenError::Revoked)
        );
        // Revoking twice is harmless.
        empty.revoke_family(&c.fam, "bob").await.unwrap();
        assert_ne!(family_deny_id(&c.fam).as_str(), c.fam);
    }

    #[test]
    fn eddsa_keys_sign_and_verify() {
        // An Ed25519 key pair in PEM (generated for this test with openssl).
        let private = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIH7BX5eIS9k4OHyF31hv7raff7aT1fH9S78j+50G83Tt\n-----END PRIVATE KEY-----\n";
        let public = b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnyIsxUxg60aHCqJ8F4dfiEu3TVeOKrEb3CCnXNJye+Q=\n-----END PUBLIC KEY-----\n";
        let keys = TokenKeys::eddsa_pem(private, public).expect("keys load");
        assert_eq!(keys.algorithm(), Algorithm::EdDSA);
        let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
        let svc = TokenService::new(keys, TokenConfig::default(), store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pair = svc.login("bob").await.unwrap();
            assert_eq!(
                svc.verify_access(&pair.access_token).await.unwrap().sub,
                "bob"
            );
        });
    }
}
