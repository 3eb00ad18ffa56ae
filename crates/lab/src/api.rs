//! The lab's client for the admin APIs of the node and the load balancer.
//!
//! The lab never reaches into a process: everything it learns or changes
//! at run time goes through the same HTTP endpoints a person could call with
//! curl (DESIGN.md and the cross-component contract):
//!
//! - node cluster listener: `GET /healthz`, `GET /admin/v1/status`,
//!   `POST /admin/v1/faults` (signed with the cluster secret like peer
//!   traffic, as [`sign`] describes; the lab signs as `lab`);
//! - LB admin listener: `GET /healthz`, `GET /admin/v1/backends`,
//!   `POST /admin/v1/backends`, `DELETE /admin/v1/backends/{id}`,
//!   `POST /admin/v1/backends/{id}/drain|undrain`.
//!
//! The node's status is the shared contract type ([`NodeStatus`], from
//! `sessionlab-wire`); it and the LB's types accept missing fields
//! (`serde(default)`), so `status` keeps working against a process that
//! reports less than the full contract.

use std::time::Duration;

use serde::Serialize;
pub use sessionlab_wire::NodeStatus;
use sessionlab_wire::signer::{self, SignedHeaders};

use crate::error::{LabError, Result};

/// The sender name the lab signs cluster requests as.
pub const LAB_NODE: &str = "lab";

/// Signs a request to a node's cluster listener now, as [`LAB_NODE`]
/// (`x-sl-*` headers: HMAC-SHA256 with the cluster secret over timestamp,
/// nonce, method, path and body: [`sessionlab_wire::signer`]).
pub fn sign(secret: &str, method: &str, path: &str, body: &[u8]) -> SignedHeaders {
    let now_ms = sessionlab_wire::clock::unix_ms();
    signer::sign_request(secret.as_bytes(), LAB_NODE, method, path, body, now_ms)
}

/// `GET /admin/v1/backends` of the LB and a backend's state: the wire
/// types the LB serializes.
pub use sessionlab_wire::lb_admin::{BackendList as Backends, BackendState};

/// The body of `POST /admin/v1/faults`.
#[derive(Debug, Clone, Serialize)]
pub struct Faults<'a> {
    pub drop: &'a [String],
    pub delay_ms: u64,
    /// The node's clock skew, when the lab has set one (left out, the
    /// node's clock stays as it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
}

/// HTTP client for the admin APIs; every call has a short timeout. Calls
/// to the LB's admin API carry its bearer token once one is known
/// ([`Api::set_lb_token`]: `up` generates it into the run folder).
#[derive(Clone)]
pub struct Api {
    /// Replaced once `up --tls` has made the run's CA ([`Api::trust_ca`]).
    http: std::sync::Arc<std::sync::RwLock<reqwest::Client>>,
    lb_token: std::sync::Arc<std::sync::RwLock<Option<String>>>,
}

/// The lab's HTTP client from `builder`: loopback only, so no proxy from
/// the environment.
pub(crate) fn client(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder.no_proxy().build().map_err(|e| LabError::Api {
        target: "http client".into(),
        detail: e.to_string(),
    })
}

impl Api {
    /// `ca_pem`: the run folder's CA (`up --tls`), trusted for HTTPS.
    pub fn new(ca_pem: Option<&[u8]>) -> Result<Api> {
        Ok(Api {
            http: std::sync::Arc::new(std::sync::RwLock::new(Self::build(ca_pem)?)),
            lb_token: Default::default(),
        })
    }

    fn build(ca_pem: Option<&[u8]>) -> Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1));
        client(crate::tls::trusting(builder, ca_pem)?)
    }

    /// Trust `ca_pem` from now on (the LB's `--redirect-http` sends the
    /// health checks of its plain port to HTTPS).
    pub fn trust_ca(&self, ca_pem: &[u8]) -> Result<()> {
        let http = Self::build(Some(ca_pem))?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        Ok(())
    }

    fn http(&self) -> reqwest::Client {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The LB admin token to send from now on (`None`: send none).
    pub fn set_lb_token(&self, token: Option<String>) {
        if let Ok(mut t) = self.lb_token.write() {
            *t = token;
        }
    }

    /// `req` with the LB's bearer token, if one is known.
    fn to_lb(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.lb_token.read().ok().and_then(|t| t.clone()) {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Whether `GET http://{addr}/healthz` answers 200.
    pub async fn healthy(&self, addr: &str) -> bool {
        match self
            .http()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
        {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        }
    }

    pub async fn node_status(&self, cluster_addr: &str) -> Result<NodeStatus> {
        self.get_json(cluster_addr, "/admin/v1/status").await
    }

    pub async fn lb_backends(&self, admin_addr: &str) -> Result<Backends> {
        let path = "/admin/v1/backends";
        let req = self.to_lb(self.http().get(format!("http://{admin_addr}{path}")));
        self.json_of(admin_addr, path, req).await
    }

    /// Adds a backend to the LB, with its node's cluster listener (for the
    /// dashboard).
    pub async fn lb_add_backend(
        &self,
        admin_addr: &str,
        id: &str,
        addr: &str,
        cluster_addr: &str,
    ) -> Result<()> {
        let body = serde_json::to_string(&sessionlab_wire::lb_admin::AddBackend {
            id: id.to_string(),
            addr: addr.to_string(),
            admin: Some(cluster_addr.to_string()),
        })
        .map_err(|e| LabError::Api {
            target: format!("adding backend via {admin_addr}"),
            detail: e.to_string(),
        })?;
        let req = self.to_lb(
            self.http()
                .post(format!("http://{admin_addr}/admin/v1/backends"))
                .header("content-type", "application/json")
                .body(body),
        );
        self.expect_ok(admin_addr, "adding backend", req).await
    }

    /// Removes a backend from the LB's pool.
    pub async fn lb_remove_backend(&self, admin_addr: &str, id: &str) -> Result<()> {
        let req = self.to_lb(
            self.http()
                .delete(format!("http://{admin_addr}/admin/v1/backends/{id}")),
        );
        self.expect_ok(admin_addr, "removing backend", req).await
    }

    /// Drains (`true`) or undrains a backend.
    pub async fn lb_drain(&self, admin_addr: &str, id: &str, drain: bool) -> Result<()> {
        let verb = if drain { "drain" } else { "undrain" };
        let req = self.to_lb(
            self.http()
                .post(format!("http://{admin_addr}/admin/v1/backends/{id}/{verb}")),
        );
        self.expect_ok(admin_addr, verb, req).await
    }

    /// Replaces a node's fault set (signed with the cluster secret).
    pub async fn set_faults(
        &self,
        cluster_addr: &str,
        secret: &str,
        faults: &Faults<'_>,
    ) -> Result<()> {
        let path = "/admin/v1/faults";
        let body = serde_json::to_vec(faults).map_err(|e| LabError::Api {
            target: cluster_addr.into(),
            detail: e.to_string(),
        })?;
        let signed = sign(secret, "POST", path, &body);
        let mut req = self
            .http()
            .post(format!("http://{cluster_addr}{path}"))
            .header("content-type", "application/json");
        for (name, value) in signed.pairs() {
            req = req.header(name, value);
        }
        self.expect_ok(cluster_addr, "setting faults", req.body(body))
            .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, addr: &str, path: &str) -> Result<T> {
        let req = self.http().get(format!("http://{addr}{path}"));
        self.json_of(addr, path, req).await
    }

    async fn json_of<T: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T> {
        let err = |detail: String| LabError::Api {
            target: format!("GET http://{addr}{path}"),
            detail,
        };
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(format!("HTTP {status}")));
        }
        resp.json().await.map_err(|e| err(e.to_string()))
    }

    async fn expect_ok(&self, addr: &str, what: &str, req: reqwest::RequestBuilder) -> Result<()> {
        let err = |detail: String| LabError::Api {
            target: format!("{what} via {addr}"),
            detail,
        };
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(err(format!("HTTP {status}: {}", body.trim())))
    }
}
