//! The properties the session fuzz targets check, one function per target.
//!
//! Shared by the bounded property tests (`tests/fuzz.rs`) and the
//! coverage-guided targets (`fuzz/fuzz_targets/`). Each function takes
//! arbitrary bytes and panics only when a property fails.

use std::sync::{Arc, OnceLock};

use sessionlab_session::jwt::{TokenConfig, TokenKeys, TokenService, TokenType, peek_payload};
use sessionlab_session::{MemoryStore, MemoryStoreConfig, SessionId};

/// Target `session_id`: a presented session id, bare or with a route.
///
/// Properties: no panic; accepted exactly when the text is 32 characters
/// of the URL-safe alphabet; an accepted id is the text it came from and
/// round-trips through its JSON form; `Display`/`Debug` never show it
/// whole; the JSON form parses by the same rule.
pub fn session_id(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let well_formed = text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match SessionId::parse(&text) {
        Ok(id) => {
            assert!(well_formed, "accepted {text:?}");
            assert_eq!(id.as_str(), text);
            assert!(text.starts_with(id.short()) && id.short().len() < text.len());
            assert!(!format!("{id} {id:?}").contains(id.as_str()), "shown whole");
            let json = serde_json::to_string(&id).expect("an id serializes");
            let back: SessionId = serde_json::from_str(&json).expect("and parses back");
            assert_eq!(back, id);
        }
        Err(_) => assert!(!well_formed, "refused {text:?}"),
    }
    // The JSON form obeys the same rule (and never panics on any string).
    let json = serde_json::to_string(&*text).expect("a string serializes");
    assert_eq!(
        serde_json::from_str::<SessionId>(&json).is_ok(),
        well_formed
    );
    let _ = serde_json::from_slice::<SessionId>(data);

    // `<id>.<route>`: the route is after the last dot, the id must parse.
    match SessionId::parse_with_route(&text) {
        Ok((id, route)) => {
            let joined = sessionlab_wire::route::with_route(id.as_str(), route);
            assert!(joined == text || format!("{joined}.") == text, "{text:?}");
        }
        Err(_) => {
            let (id, _) = sessionlab_wire::route::split_str(&text);
            assert!(SessionId::parse(id).is_err());
        }
    }
}

const SECRET: &[u8] = b"fuzzing-secret-0123456789abcdef!";

/// A token service and one valid access and refresh token it issued.
fn tokens() -> &'static (TokenService, String, String) {
    static TOKENS: OnceLock<(TokenService, String, String)> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let store = Arc::new(MemoryStore::new(MemoryStoreConfig::default()));
        let keys = TokenKeys::hs256(SECRET).expect("a long enough secret");
        let service = TokenService::new(keys, TokenConfig::default(), store);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        let pair = rt
            .block_on(service.login("alice"))
            .expect("login in memory");
        (service, pair.access_token, pair.refresh_token)
    })
}

/// Target `jwt`: token parsing and verification.
///
/// Properties: no panic; arbitrary input never verifies (as access or
/// refresh token); the issued tokens verify as their own type only; any
/// edit of an issued token (the input says where and what) is refused;
/// reading a payload unverified never panics.
pub fn jwt(data: &[u8]) {
    let (service, access, refresh) = tokens();
    let text = String::from_utf8_lossy(data);
    for typ in [TokenType::Access, TokenType::Refresh] {
        assert!(service.decode(&text, typ).is_err(), "forged: {text:?}");
    }
    let _ = peek_payload(&text);

    let ok = service.decode(access, TokenType::Access).expect("issued");
    assert_eq!(ok.sub, "alice");
    assert!(service.decode(access, TokenType::Refresh).is_err());
    assert!(service.decode(refresh, TokenType::Refresh).is_ok());
    assert!(peek_payload(access).is_some());

    // Edit the access token: replace a span with the input's bytes.
    if let [at, len, rest @ ..] = data {
        let mut edited = access.as_bytes().to_vec();
        let start = usize::from(*at) * edited.len() / 256;
        let end = (start + usize::from(*len % 8)).min(edited.len());
        edited.splice(start..end, rest.iter().copied());
        if let Ok(edited) = String::from_utf8(edited) {
            if edited != *access {
                assert!(
                    service.decode(&edited, TokenType::Access).is_err(),
                    "an edited token verified: {edited}"
                );
            }
        }
    }
}
