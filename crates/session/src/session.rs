//! The session record.
//!
//! A session is small: who the user is, a JSON object of application data,
//! and the four numbers that decide when it dies. It is copied whole between
//! nodes, so every field that affects behaviour is *in* the record:
//!
//! - `created_ms` + `absolute_timeout_ms`: the hard end of a login, however
//!   busy the user is (limits what a stolen id is worth);
//! - `last_access_ms` + `idle_timeout_ms`: the end after inactivity.
//!
//! [`Session::expires_at_ms`] is the earlier of the two. Because it is a pure
//! function of replicated fields, every node expires the same sessions at the
//! same moment without exchanging a message.
//!
//! The data is kept as its JSON text (`RawValue`), not as a parsed tree: it is
//! what goes on the wire, what the per-session byte limit measures, and it
//! keeps the memory per session close to the size of the data itself.
//!
//! With attribute granularity the record also carries per-key stamps
//! ([`KeyStamps`]): which write last set each key. They are empty in
//! whole-session mode, where the record is exactly the fields above.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::id::SessionId;
use crate::stamps::KeyStamps;
use crate::version::Version;

/// One session, as stored and as replicated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    /// The logged-in user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Application data: the text of a JSON object.
    pub data: Box<RawValue>,
    pub created_ms: u64,
    pub last_access_ms: u64,
    pub idle_timeout_ms: u64,
    pub absolute_timeout_ms: u64,
    /// Who wrote this copy, and when in the cluster's logical order.
    #[serde(default)]
    pub version: Version,
    /// Attribute granularity only: which write last set each key, and the
    /// keys removed (see [`KeyStamps`]). Empty, and not serialized, in
    /// whole-session mode.
    #[serde(default, skip_serializing_if = "KeyStamps::is_empty")]
    pub stamps: KeyStamps,
}

impl PartialEq for Session {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.user == o.user
            && self.data.get() == o.data.get()
            && self.created_ms == o.created_ms
            && self.last_access_ms == o.last_access_ms
            && self.idle_timeout_ms == o.idle_timeout_ms
            && self.absolute_timeout_ms == o.absolute_timeout_ms
            && self.version == o.version
            && self.stamps == o.stamps
    }
}
impl Eq for Session {}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("{} is valid JSON")
}

impl Session {
    /// A new, anonymous session with empty data.
    pub fn new(id: SessionId, now_ms: u64, idle_timeout_ms: u64, absolute_timeout_ms: u64) -> Self {
        Session {
            id,
            user: None,
            data: empty_object(),
            created_ms: now_ms,
            last_access_ms: now_ms,
            idle_timeout_ms,
            absolute_timeout_ms,
            version: Version::default(),
            stamps: KeyStamps::default(),
        }
    }

    /// When this session stops being valid: the earlier of idle and absolute expiry.
    pub fn expires_at_ms(&self) -> u64 {
        let idle = self.last_access_ms.saturating_add(self.idle_timeout_ms);
        let absolute = self.created_ms.saturating_add(self.absolute_timeout_ms);
        idle.min(absolute)
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms()
    }

    /// The data as a JSON object. Data that is not an object (it cannot be
    /// made so through this API) reads as empty rather than failing.
    pub fn data(&self) -> Map<String, Value> {
        serde_json::from_str(self.data.get()).unwrap_or_default()
    }

    /// Replace the data with `map`.
    pub fn set_data(&mut self, map: &Map<String, Value>) {
        let text = serde_json::to_string(map).expect("a JSON map always serializes");
        self.data = RawValue::from_string(text).expect("serde_json output is valid JSON");
    }

    /// Bytes of application data: what the per-session limit measures.
    pub fn data_len(&self) -> usize {
        self.data.get().len()
    }

    /// Approximate bytes the session occupies on the wire and in the store.
    pub fn size_bytes(&self) -> usize {
        self.data_len()
            + self.user.as_ref().map_or(0, |u| u.len())
            + self.version.node.len()
            + self.stamps.size_bytes()
            + 96
    }

    /// What admin views may show: no data, a shortened id.
    pub fn meta(&self) -> SessionMeta {
        SessionMeta {
            id_prefix: self.id.short().to_owned(),
            user: self.user.clone(),
            size_bytes: self.size_bytes(),
            version: self.version.clone(),
            created_ms: self.created_ms,
            last_access_ms: self.last_access_ms,
            expires_at_ms: self.expires_at_ms(),
            owners: None,
        }
    }
}

/// A session as admin views show it: shortened id, sizes, version, times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id_prefix: String,
    pub user: Option<String>,
    pub size_bytes: usize,
    pub version: Version,
    pub created_ms: u64,
    pub last_access_ms: u64,
    pub expires_at_ms: u64,
    /// The replication backup topology: the members that should keep a
    /// copy, the primary first, as the listing node sees the members.
    /// Absent where every node holds everything (or nothing is replicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_the_earlier_of_idle_and_absolute() {
        let mut s = Session::new(SessionId::generate(), 1_000, 100, 1_000);
        assert_eq!(s.expires_at_ms(), 1_100);
        s.last_access_ms = 1_950;
        assert_eq!(s.expires_at_ms(), 2_000);
        assert!(!s.is_expired(1_999));
        assert!(s.is_expired(2_000));
    }

    #[test]
    fn data_round_trips_and_serializes_inline() {
        let mut s = Session::new(SessionId::generate(), 0, 10, 10);
        let mut m = Map::new();
        m.insert("counter".into(), Value::from(3));
        s.set_data(&m);
        assert_eq!(s.data(), m);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""data":{"counter":3}"#), "{json}");
        let back: Session = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn meta_never_carries_the_whole_id() {
        let s = Session::new(SessionId::generate(), 0, 10, 10);
        let json = serde_json::to_string(&s.meta()).unwrap();
        assert!(!json.contains(s.id.as_str()));
    }
}
