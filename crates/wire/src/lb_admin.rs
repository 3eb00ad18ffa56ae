//! The LB's admin API bodies: `GET /admin/v1/backends` (and each backend's
//! JSON in the answers of add, remove, drain and undrain), and the body of
//! `POST /admin/v1/backends`.
//!
//! The LB serializes these types and the lab deserializes them, so a field
//! renamed on one side is a compile error on the other, not a silent
//! `null`. Readers use `#[serde(default)]` views of the same structs, so
//! an LB that adds a field does not break an older reader.

use serde::{Deserialize, Serialize};

/// `GET /admin/v1/backends`: the strategy and every backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendList {
    /// The `--strategy` name (`round-robin`, `sticky-cookie`, ...).
    pub strategy: String,
    pub backends: Vec<BackendView>,
    /// With `--discover`: what the DNS lookups found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryView>,
}

/// `--discover NAME:PORT`: backends found by DNS, as the LB sees them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscoveryView {
    /// `NAME:PORT` as given.
    pub target: String,
    pub interval_ms: u64,
    /// Lookups done, and how many of them failed.
    pub lookups: u64,
    pub failed_lookups: u64,
    /// The addresses of the last answer, sorted.
    pub addresses: Vec<String>,
    /// The ids of the backends discovery added that are still in the table.
    pub backends: Vec<String>,
    /// The last lookup's error; `None` once one succeeds.
    pub error: Option<String>,
    /// An address that answered but could not be added (its id is taken),
    /// until it can.
    pub problem: Option<String>,
}

/// Whether health checks let a backend take traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    Up,
    #[default]
    Down,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
        }
    }
}

impl std::fmt::Display for BackendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backend as the LB sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendView {
    pub id: String,
    /// `IP:PORT` the LB forwards to.
    pub addr: String,
    pub state: BackendState,
    /// No new users; sticky users stay.
    pub draining: bool,
    pub in_flight: u64,
    pub requests: u64,
    pub errors: u64,
    /// New upstream connections opened (pooling works when this stays low).
    pub connects: u64,
    pub idle_connections: u64,
    /// Time to response headers since start; `None` before any request.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    /// Recent health check results, oldest first.
    pub health_history: Vec<bool>,
    /// Requests per second, the last 60 s, oldest first.
    pub requests_per_sec: Vec<u64>,
    /// The node's cluster listener, if the add call named it.
    pub admin: Option<String>,
}

/// The body of `POST /admin/v1/backends`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBackend {
    pub id: String,
    /// `IP:PORT` or `HOST:PORT`.
    pub addr: String,
    /// The node's cluster listener, shown to readers such as the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_round_trips_and_keeps_the_field_names() {
        let b = BackendView {
            id: "node-1".into(),
            addr: "127.0.0.1:8081".into(),
            state: BackendState::Up,
            latency_ms_p50: Some(1.5),
            health_history: vec![true, false],
            admin: Some("127.0.0.1:9081".into()),
            ..Default::default()
        };
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["state"], "up");
        assert_eq!(json["latency_ms_p99"], serde_json::Value::Null);
        for field in ["in_flight", "idle_connections", "requests_per_sec", "admin"] {
            assert!(json.get(field).is_some(), "{field}");
        }
        let back: BackendView = serde_json::from_value(json).unwrap();
        assert_eq!(back, b);
        // Readers tolerate missing and extra fields.
        let older: BackendView =
            serde_json::from_str(r#"{"id":"n","state":"down","new_field":1}"#).unwrap();
        assert_eq!(older.state, BackendState::Down);
    }

    #[test]
    fn an_add_refuses_unknown_fields() {
        let add: AddBackend = serde_json::from_str(r#"{"id":"a","addr":"127.0.0.1:1"}"#).unwrap();
        assert_eq!(add.admin, None);
        assert!(serde_json::from_str::<AddBackend>(r#"{"id":"a","addr":"x","weight":3}"#).is_err());
        assert!(serde_json::from_str::<AddBackend>(r#"{"id":"a"}"#).is_err());
    }
}
