//! Session ids: the credential that *is* the login.
//!
//! Whoever presents a valid session id is, to the server, the user it belongs
//! to. So an id must be unguessable (192 bits from the operating system's
//! CSPRNG, far past the 128 bits OWASP asks for), must not leak through logs
//! (`Debug` and [`SessionId::short`] show only a prefix), and must be checked
//! strictly: anything that is not exactly 32 characters of the URL-safe base64
//! alphabet is rejected, so a garbage cookie simply means "no session".
//!
//! Equality is constant-time (`subtle`), so comparing a presented id with a
//! stored one does not leak how many leading characters matched.

use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// Random bytes in an id (192 bits).
pub const ID_BYTES: usize = 24;
/// Length of the id's text form (base64url without padding).
pub const ID_LEN: usize = 32;
/// How many characters of an id are safe to show in logs and admin views.
pub const SHORT_LEN: usize = 6;

/// Which bytes may appear in an id (the URL-safe base64 alphabet), as a
/// table: ids are checked on every request, and one lookup per byte is
/// several times cheaper than a chain of range tests.
static ALPHABET: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// A session id: 32 URL-safe characters encoding 192 random bits.
#[derive(Clone)]
pub struct SessionId(Box<str>);

/// A presented id was not a well-formed session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSessionId {
    #[error("session id must be {ID_LEN} characters, got {0}")]
    Length(usize),
    #[error("session id contains a character outside the URL-safe base64 alphabet")]
    Alphabet,
}

impl SessionId {
    /// A fresh id from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness at all, in
    /// which case no credential can be made safely and stopping is right.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        SessionId(URL_SAFE_NO_PAD.encode(bytes).into_boxed_str())
    }

    /// Parse an id presented by a client. Never panics; rejects by length
    /// first, so an oversized cookie costs nothing to refuse.
    pub fn parse(s: &str) -> Result<Self, InvalidSessionId> {
        if s.len() != ID_LEN {
            return Err(InvalidSessionId::Length(s.len()));
        }
        if !s.bytes().all(|b| ALPHABET[b as usize]) {
            return Err(InvalidSessionId::Alphabet);
        }
        Ok(SessionId(s.into()))
    }

    /// Parse `<id>` or `<id>.<route>` (Tomcat `jvmRoute` style, used by the
    /// load balancer's `sticky-route` strategy). Returns the id and the route,
    /// split by the rule the LB uses too ([`sessionlab_wire::route::split`]).
    pub fn parse_with_route(s: &str) -> Result<(Self, Option<&str>), InvalidSessionId> {
        let (id, route) = sessionlab_wire::route::split_str(s);
        Ok((Self::parse(id)?, route))
    }

    /// The whole id. Handle with care: this is the credential.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first few characters, safe for logs and admin pages.
    pub fn short(&self) -> &str {
        &self.0[..SHORT_LEN]
    }
}

impl PartialEq for SessionId {
    /// Constant-time in the contents: compares eight bytes at a time with
    /// `subtle` (ids are always `ID_LEN` bytes, a multiple of eight), so
    /// the time taken does not depend on where the first difference is.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut equal = subtle::Choice::from(1u8);
        let mut chunks_a = a.chunks_exact(8);
        let mut chunks_b = b.chunks_exact(8);
        for (x, y) in (&mut chunks_a).zip(&mut chunks_b) {
            let x = u64::from_le_bytes(x.try_into().expect("chunks of 8"));
            let y = u64::from_le_bytes(y.try_into().expect("chunks of 8"));
            equal &= x.ct_eq(&y);
        }
        equal &= chunks_a.remainder().ct_eq(chunks_b.remainder());
        equal.into()
    }
}
impl Eq for SessionId {}

impl Hash for SessionId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialOrd for SessionId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SessionId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}..)", self.short())
    }
}

/// `Display` shows the short form too: printing an id by accident must not
/// leak it. Use [`SessionId::as_str`] where the whole id is meant.
impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..", self.short())
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SessionId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ID_LEN);
        assert_eq!(SessionId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn debug_and_display_do_not_leak_the_id() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.as_str()));
        assert!(!format!("{id}").contains(id.as_str()));
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(SessionId::parse(""), Err(InvalidSessionId::Length(0)));
        assert!(SessionId::parse(&"a".repeat(10_000)).is_err());
        assert_eq!(
            SessionId::parse(&"a/".repeat(16)),
            Err(InvalidSessionId::Alphabet)
        );
        assert!(SessionId::parse("ééééééééééééééééé").is_err());
    }

    #[test]
    fn equality_compares_every_byte() {
        let a = SessionId::generate();
        for i in 0..ID_LEN {
            let mut other = a.as_str().as_bytes().to_vec();
            other[i] = if other[i] == b'A' { b'B' } else { b'A' };
            let b = SessionId::parse(std::str::from_utf8(&other).unwrap()).unwrap();
            assert_ne!(a, b, "difference at byte {i}");
        }
        assert_eq!(a, SessionId::parse(a.as_str()).unwrap());
    }

    #[test]
    fn route_suffix() {
        let id = SessionId::generate();
        let with = format!("{}.node-2", id.as_str());
        let (parsed, route) = SessionId::parse_with_route(&with).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(route, Some("node-2"));
        assert_eq!(SessionId::parse_with_route(id.as_str()).unwrap().1, None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = SessionId::parse(&s);
            let _ = SessionId::parse_with_route(&s);
        }
    }
}
