//! The live dashboard: one web page on the admin listener that a person
//! keeps open while breaking the cluster.
//!
//! The page is plain HTML, CSS and JavaScript compiled into the binary
//! (`crates/lb/assets/`, `include_str!`): no build step, nothing fetched
//! from the network, nothing to install. It polls the admin API about once
//! a second and draws:
//!
//! - the topology: the LB, each node (health, drain, sessions held, memory,
//!   requests/s, p99) and the replication links between nodes (up, cut,
//!   queue depth, lag), with the controls for each node;
//! - the live routing log (`GET /admin/v1/requests`): which node served
//!   each request, coloured per node, so stickiness and failover show;
//! - the sessions table: every session (first characters of the id, user)
//!   and, per node, the version that node holds;
//! - the replication event stream of every node;
//! - charts of requests/s and p99 per node over the last five minutes.
//!
//! This module serves the page and the endpoints only it needs:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /`, `GET /dashboard` | the page (no data in it; open without a token) |
//! | `GET /dashboard/app.js`, `/dashboard/style.css` | its script and style |
//! | `GET /admin/v1/cluster` | every backend with its node's status, sessions and replication view ([`crate::cluster_view`]) |
//! | `GET /admin/v1/history` | requests/s and p99 per backend, last five minutes ([`crate::history`]) |
//! | `POST /admin/v1/lab/{kill,restart,partition}/{node}`, `POST /admin/v1/lab/heal` | run the lab command ([`crate::lab_control`]) |
//!
//! **Tokens.** With `--admin-token`, every `/admin/...` call needs the
//! bearer token (`admin.rs` checks it before this module sees the request).
//! The page itself holds no data, so it loads without one; open it once as
//! `/dashboard?token=T` and the script keeps the token in the tab's
//! `sessionStorage`, removes it from the address bar, and sends it as
//! `Authorization: Bearer T`.
//!
//! **Other web sites.** The admin listener is on loopback, but the browser
//! that shows the dashboard also visits other sites, which can send
//! requests to `127.0.0.1`. So the dashboard's endpoints refuse a request
//! whose `Origin` is not the admin listener itself (a cross-site request),
//! and, without a token, a `Host` that is not an IP address or `localhost`
//! (DNS rebinding: a site's name pointed at 127.0.0.1). The page sends a
//! strict Content-Security-Policy (scripts and styles from this origin only),
//! and renders everything that comes from data as text, never as markup.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderName, HeaderValue, ORIGIN, X_CONTENT_TYPE_OPTIONS,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use tokio::sync::watch;

use crate::balancer::Balancer;
use crate::cluster_view::ClusterView;
use crate::config::Settings;
use crate::error::json_response;
use crate::history::{self, History};
use crate::lab_control::{LabAction, LabControl, LabError};

const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

type AdminResponse = Response<Full<Bytes>>;

/// The dashboard's state: the node views, the traffic history, the lab.
pub struct Dashboard {
    balancer: Arc<Balancer>,
    pub cluster: Arc<ClusterView>,
    pub history: Arc<History>,
    lab: LabControl,
    token_required: bool,
}

impl Dashboard {
    /// Build it from the settings and start the history sampler (it stops
    /// when `stop` turns true).
    pub fn start(
        balancer: Arc<Balancer>,
        settings: &Settings,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let cluster = Arc::new(ClusterView::default());
        for spec in &settings.node_admins {
            // Bounded by the backend count, which `resolve` checked.
            let _ = cluster.directory.set(&spec.id, spec.addr);
        }
        let history = Arc::new(History::default());
        tokio::spawn(history::run(
            history.clone(),
            balancer.backends.clone(),
            stop,
        ));
        Dashboard {
            token_required: balancer.admin_token.is_some(),
            balancer,
            cluster,
            history,
            lab: LabControl::new(settings.lab_dir.clone()),
        }
    }

    /// The static page and its assets (`GET /`, `/dashboard...`), if `path`
    /// names one.
    pub fn asset(path: &str) -> Option<AdminResponse> {
        let (body, content_type) = match path {
            "/" | "/dashboard" | "/dashboard/" => (PAGE, "text/html; charset=utf-8"),
            "/dashboard/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
            "/dashboard/style.css" => (STYLE, "text/css; charset=utf-8"),
            _ => return None,
        };
        let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        );
        h.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        );
        Some(resp)
    }

    /// Whether `segments` (of `/admin/v1/...`) is one of this module's
    /// endpoints.
    pub fn handles(segments: &[&str]) -> bool {
        matches!(
            segments,
            ["admin", "v1", "cluster"] | ["admin", "v1", "history"] | ["admin", "v1", "lab", ..]
        )
    }

    /// Answer one of the endpoints [`handles`](Self::handles) accepts (the
    /// token, if any, has been checked).
    pub async fn route<B>(&self, req: &Request<B>, segments: &[&str]) -> AdminResponse {
        if let Err(why) = same_origin(req, self.token_required) {
            return error(StatusCode::FORBIDDEN, "cross_origin", why);
        }
        match (req.method(), segments) {
            (&Method::GET, ["admin", "v1", "cluster"]) => self.cluster_json().await,
            (&Method::GET, ["admin", "v1", "history"]) => {
                json_response(StatusCode::OK, &self.history.to_json())
            }
            (&Method::POST, ["admin", "v1", "lab", rest @ ..]) => match LabAction::parse(rest) {
                Some(action) => self.lab_command(&action).await,
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "lab actions: kill/NODE, restart/NODE, partition/NODE, heal",
                ),
            },
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed here", req.method()),
            ),
        }
    }

    async fn cluster_json(&self) -> AdminResponse {
        let snapshot = self.balancer.backends.snapshot();
        let nodes = self.cluster.gather(&snapshot.list).await;
        json_response(
            StatusCode::OK,
            &json!({
                "time_ms": unix_ms(),
                "strategy": self.balancer.strategy.as_str(),
                "lab": self.lab.availability(),
                "nodes": nodes,
            }),
        )
    }

    async fn lab_command(&self, action: &LabAction) -> AdminResponse {
        match self.lab.run(action).await {
            Ok(out) => json_response(StatusCode::OK, &out.to_json()),
            Err(e) => {
                let (status, kind) = match &e {
                    LabError::NotConfigured => (StatusCode::CONFLICT, "lab_not_configured"),
                    LabError::Busy => (StatusCode::CONFLICT, "lab_busy"),
                    LabError::NoBinary(_) | LabError::Spawn { .. } => {
                        (StatusCode::SERVICE_UNAVAILABLE, "lab_unavailable")
                    }
                    LabError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "lab_timeout"),
                    LabError::Failed { .. } => (StatusCode::CONFLICT, "lab_command_failed"),
                };
                let mut body = json!({ "error": kind, "detail": e.to_string() });
                if let LabError::Failed { stdout, stderr, .. } = &e {
                    body["stdout"] = json!(stdout);
                    body["stderr"] = json!(stderr);
                }
                json_response(status, &body)
            }
        }
    }

    /// Remember (or forget, with `None`) where a node's cluster listener is.
    pub fn set_node_admin(&self, id: &str, addr: Option<std::net::SocketAddr>) -> bool {
        match addr {
            Some(a) => self.cluster.directory.set(id, a).is_ok(),
            None => {
                self.cluster.directory.remove(id);
                true
            }
        }
    }
}

fn error(status: StatusCode, kind: &str, detail: impl std::fmt::Display) -> AdminResponse {
    json_response(
        status,
        &json!({ "error": kind, "detail": detail.to_string() }),
    )
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The cross-site checks of the module docs.
fn same_origin<B>(req: &Request<B>, token_required: bool) -> Result<(), &'static str> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !token_required && !host_is_local_name(host) {
        return Err(
            "without --admin-token the dashboard answers only to an IP address or localhost in Host",
        );
    }
    if let Some(origin) = req.headers().get(ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !same {
            return Err("a request from another web site is refused");
        }
    }
    Ok(())
}

/// `127.0.0.1:8079`, `[::1]:8079`, `localhost:8079` (and without ports).
fn host_is_local_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, origin: Option<&str>) -> Request<()> {
        let mut b = Request::post("/admin/v1/lab/heal").header(HOST, host);
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn refuses_other_sites_and_rebound_names() {
        assert!(same_origin(&req("127.0.0.1:8079", None), false).is_ok());
        assert!(same_origin(&req("localhost:8079", Some("http://localhost:8079")), false).is_ok());
        assert!(same_origin(&req("[::1]:8079", Some("http://[::1]:8079")), false).is_ok());
        assert!(same_origin(&req("127.0.0.1:8079", Some("http://evil.example")), false).is_err());
        assert!(same_origin(&req("127.0.0.1:8079", Some("null")), false).is_err());
        // DNS rebinding: same origin as far as the browser knows.
        assert!(
            same_origin(
                &req("evil.example:8079", Some("http://evil.example:8079")),
                false
            )
            .is_err()
        );
        // With a token the name may be anything (the token is the guard),
        // but other sites are still refused.
        assert!(same_origin(&req("lab-box:8079", Some("http://lab-box:8079")), true).is_ok());
        assert!(same_origin(&req("lab-box:8079", Some("http://evil.example")), true).is_err());
    }

    #[test]
    fn serves_the_page_with_a_strict_policy() {
        for path in [
            "/",
            "/dashboard",
            "/dashboard/app.js",
            "/dashboard/style.css",
        ] {
            let resp = Dashboard::asset(path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(resp.status(), StatusCode::OK);
            let csp = resp.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{csp}");
        }
        assert!(Dashboard::asset("/dashboard/../admin").is_none());
        assert!(Dashboard::asset("/favicon.ico").is_none());
        // Nothing on the page comes from another origin (the SVG namespace
        // is a name, not a fetch).
        for asset in [PAGE, SCRIPT, STYLE] {
            let rest = asset.replace("http://www.w3.org/2000/svg", "");
            assert!(!rest.contains("http://") && !rest.contains("https://"));
            assert!(!rest.contains("innerHTML") && !rest.contains("eval("));
        }
    }
}
