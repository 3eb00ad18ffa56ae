//! The live dashboard's routes: one web page that a person keeps open
//! while breaking the cluster, and the endpoints only it needs.
//!
//! The page is plain HTML, CSS and JavaScript compiled into the binary
//! (`crates/dashboard/assets/`, `include_str!`): no build step, nothing
//! fetched from the network, nothing to install. It polls this process
//! about once a second and draws:
//!
//! - the topology: the LB, each node (health, drain, sessions held, memory,
//!   requests/s, p99) and the replication links between nodes (up, cut,
//!   queue depth, lag), with the controls for each node;
//! - the live routing log (the LB's `GET /admin/v1/requests`): which node
//!   served each request, coloured per node, so stickiness and failover show;
//! - the sessions table: every session (first characters of the id, user)
//!   and, per node, the version that node holds;
//! - the replication event stream of every node;
//! - charts of requests/s and p99 per node over the last five minutes.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /`, `GET /dashboard` | the page (no data in it; open without a token) |
//! | `GET /dashboard/app.js`, `/dashboard/style.css` | its script and style |
//! | `GET /healthz` | 200 `ok` (the dashboard itself is alive) |
//! | `GET /admin/v1/cluster` | every backend of the LB with its node's status, sessions and replication view ([`crate::cluster_view`]) |
//! | `GET /admin/v1/history` | requests/s and p99 per backend, last five minutes ([`crate::history`]) |
//! | `GET /admin/v1/requests?limit=N` | the LB's routing log, passed on |
//! | `POST /admin/v1/lab/{drain,undrain,kill,restart,partition}/{node}`, `POST /admin/v1/lab/heal` | the lab's action ([`crate::lab_control`]) |
//!
//! **Tokens.** With `--admin-token`, every `/admin/...` call needs the
//! bearer token (compared in constant time). The page itself holds no
//! data, so it loads without one; open it once as `/dashboard?token=T` and
//! the script keeps the token in the tab's `sessionStorage`, removes it
//! from the address bar, and sends it as `Authorization: Bearer T`.
//!
//! **Other web sites.** The dashboard is on loopback, but the browser that
//! shows it also visits other sites, which can send requests to
//! `127.0.0.1`. Its buttons are an admin surface like the LB's admin API,
//! so the `/admin/...` endpoints are behind the same guard,
//! `sessionlab_wire::admin_auth::Guard`: 403 `foreign_host` for a `Host`
//! that is not a local name with the dashboard's port, on loopback (DNS
//! rebinding: a site's name pointed at 127.0.0.1), 403 `cross_origin` for
//! an `Origin` that is not the dashboard itself or `Sec-Fetch-Site:
//! cross-site`, then the token (401), and no body but JSON (415). The page
//! sends a strict Content-Security-Policy (scripts and styles from this
//! origin only), and renders everything that comes from data as text, never
//! as markup.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use sessionlab_lab::LbKind;
use sessionlab_wire::admin_auth::{Guard, Needs};
use sessionlab_wire::clock::unix_ms;
use sessionlab_wire::lb_admin::{BackendList, BackendState, BackendView};

use crate::cluster_view::ClusterView;
use crate::fetch::LbAdmin;
use crate::history::History;
use crate::lab_control::{LabAction, LabControl, LabError};

const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The most routing decisions asked of the LB (its own bound).
const MAX_REQUESTS: usize = 10_000;

pub type DashResponse = Response<Full<Bytes>>;

/// The dashboard's state: where its data comes from, and the lab.
pub struct Dashboard {
    pub lb: Arc<LbAdmin>,
    pub cluster: Arc<ClusterView>,
    pub history: Arc<History>,
    pub lab: LabControl,
    guard: Guard,
    /// Which LB serves the traffic, and the run folder that describes it
    /// (for HAProxy and nginx, which have no sessionlab admin API).
    lb_kind: LbKind,
    lab_dir: Option<PathBuf>,
}

impl Dashboard {
    pub fn new(
        lb: Arc<LbAdmin>,
        cluster: Arc<ClusterView>,
        history: Arc<History>,
        lab: LabControl,
        guard: Guard,
    ) -> Self {
        Dashboard {
            lb,
            cluster,
            history,
            lab,
            guard,
            lb_kind: LbKind::Sessionlab,
            lab_dir: None,
        }
    }

    /// The dashboard in front of `kind`; for HAProxy and nginx the nodes
    /// come from the run folder `lab_dir` (or, without one, from the
    /// `--node-admin` list, up while they answer).
    pub fn behind(mut self, kind: LbKind, lab_dir: Option<PathBuf>) -> Self {
        self.lb_kind = kind;
        self.lab_dir = lab_dir;
        self
    }

    /// The backends of a foreign LB, as the lab sees them.
    async fn foreign_backends(&self) -> Result<BackendList, String> {
        let kind = self.lb_kind;
        match &self.lab_dir {
            Some(dir) => sessionlab_lab::lb_view(&sessionlab_lab::RunFolder::new(dir))
                .await
                .map_err(|e| format!("the lab's view of {kind}: {e}")),
            None => Ok(BackendList {
                strategy: format!(
                    "{kind} (no admin API and no --lab-dir: nodes from --node-admin)"
                ),
                backends: self
                    .cluster
                    .directory
                    .ids()
                    .into_iter()
                    .map(|id| BackendView {
                        id,
                        state: BackendState::Up,
                        ..Default::default()
                    })
                    .collect(),
                discovery: None,
            }),
        }
    }

    /// The static page and its assets (`GET /`, `/dashboard...`), if `path`
    /// names one.
    pub fn asset(path: &str) -> Option<DashResponse> {
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

    /// Answer one request (no route reads a body).
    pub async fn route<B>(&self, req: &Request<B>) -> DashResponse {
        let path = req.uri().path();
        if req.method() == Method::GET {
            if let Some(page) = Dashboard::asset(path) {
                return page;
            }
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["healthz"] if req.method() == Method::GET => {
                let mut resp = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                return resp;
            }
            ["admin", ..] => {}
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no route {path}"),
                );
            }
        }
        let needs = Needs {
            token: true,
            body: false,
        };
        if let Err(refused) = self.guard.check(req.headers(), needs) {
            return error(refused.status(), refused.kind(), refused.detail());
        }
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["admin", "v1", "cluster"]) => self.cluster_json().await,
            (&Method::GET, ["admin", "v1", "history"]) => {
                json_response(StatusCode::OK, &self.history.to_json())
            }
            (&Method::GET, ["admin", "v1", "requests"]) => self.requests(req.uri().query()).await,
            (&Method::POST, ["admin", "v1", "lab", rest @ ..]) => match LabAction::parse(rest) {
                Some(action) => self.lab_command(&action).await,
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "lab actions: drain/NODE, undrain/NODE, kill/NODE, restart/NODE, partition/NODE, heal",
                ),
            },
            (
                _,
                ["admin", "v1", "cluster" | "history" | "requests"] | ["admin", "v1", "lab", ..],
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed here", req.method()),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {path}"),
            ),
        }
    }

    async fn cluster_json(&self) -> DashResponse {
        let fetched = match self.lb_kind.is_foreign() {
            true => self.foreign_backends().await,
            false => self
                .lb
                .get("/admin/v1/backends")
                .await
                .map_err(|e| format!("the LB's admin API at {}: {e}", self.lb.addr)),
        };
        let backends: BackendList = match fetched {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_GATEWAY, "lb_unreachable", e),
        };
        let mut nodes = self.cluster.gather(&backends.backends).await;
        if self.lb_kind.is_foreign() && self.lab_dir.is_none() {
            // Nothing knows the LB's view: a node is up while it answers.
            for n in &mut nodes {
                if n["reachable"] != json!(true) {
                    n["lb"]["state"] = json!("down");
                }
            }
        }
        json_response(
            StatusCode::OK,
            &json!({
                "time_ms": unix_ms(),
                "strategy": backends.strategy,
                "lab": self.lab.availability(),
                "nodes": nodes,
            }),
        )
    }

    /// The LB's routing log, passed on (only `limit` is).
    async fn requests(&self, query: Option<&str>) -> DashResponse {
        if self.lb_kind.is_foreign() {
            return json_response(
                StatusCode::OK,
                &json!({
                    "requests": [],
                    "note": format!("{} keeps no routing log the dashboard can read", self.lb_kind),
                }),
            );
        }
        let limit = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|kv| kv.strip_prefix("limit="));
        let path = match limit.map(str::parse::<usize>) {
            None => "/admin/v1/requests".to_string(),
            Some(Ok(n)) if n <= MAX_REQUESTS => format!("/admin/v1/requests?limit={n}"),
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_limit",
                    format!("limit must be a number from 0 to {MAX_REQUESTS}"),
                );
            }
        };
        match self.lb.call(Method::GET, &path).await {
            Ok((status, body)) => json_response(status, &body),
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                "lb_unreachable",
                format!("the LB's admin API at {}: {e}", self.lb.addr),
            ),
        }
    }

    async fn lab_command(&self, action: &LabAction) -> DashResponse {
        match self.lab.run(action).await {
            Ok(out) => json_response(StatusCode::OK, &out.to_json()),
            Err(e) => {
                let (status, kind) = match &e {
                    LabError::NotConfigured => (StatusCode::CONFLICT, "lab_not_configured"),
                    LabError::Busy => (StatusCode::CONFLICT, "lab_busy"),
                    LabError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "lab_unavailable")
                    }
                    LabError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "lab_timeout"),
                    LabError::Failed { .. } => (StatusCode::CONFLICT, "lab_command_failed"),
                };
                let mut body = json!({ "error": kind, "detail": e.to_string() });
                if let LabError::Failed { command, .. } = &e {
                    body["command"] = json!(command);
                }
                json_response(status, &body)
            }
        }
    }
}

/// `body` as a JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> DashResponse {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The answer to every request of a connection another user opened to a
/// tokenless dashboard (`peer.rs`).
pub fn another_users_connection() -> DashResponse {
    error(
        StatusCode::FORBIDDEN,
        "another_user",
        "this dashboard serves the user who started it; others need --admin-token",
    )
}

fn error(status: StatusCode, kind: &str, detail: impl std::fmt::Display) -> DashResponse {
    json_response(
        status,
        &json!({ "error": kind, "detail": detail.to_string() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessionlab_wire::admin_auth::Refused;

    use http::header::{HOST, ORIGIN};

    /// The headers of a `POST /admin/v1/lab/heal`.
    fn req(host: &str, origin: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, o.parse().unwrap());
        }
        h
    }

    /// The dashboard's guard on `listen`, with or without a token, and the
    /// headers a button sends (with the token, if there is one).
    fn same_origin(headers: &http::HeaderMap, token_required: bool) -> Result<(), Refused> {
        let (listen, token) = match token_required {
            // A token is required off loopback, and then it is the guard.
            true => ("0.0.0.0:8079", Some("t".to_string())),
            false => ("127.0.0.1:8079", None),
        };
        let mut headers = headers.clone();
        headers.insert(http::header::AUTHORIZATION, "Bearer t".parse().unwrap());
        let needs = Needs {
            token: true,
            body: false,
        };
        Guard::new(listen.parse().unwrap(), token).check(&headers, needs)
    }

    /// The JSON body of a dashboard answer.
    async fn body_of(resp: DashResponse) -> Value {
        use http_body_util::BodyExt;
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn behind_nginx_without_a_lab_dir_the_nodes_come_from_the_directory() {
        // Nothing listens on port 1: the LB admin is never asked, the node
        // does not answer and is shown down.
        let lb = Arc::new(LbAdmin::new("127.0.0.1:1".parse().unwrap(), None));
        let cluster = Arc::new(ClusterView::default());
        cluster
            .directory
            .set("node-1", "127.0.0.1:1".parse().unwrap())
            .unwrap();
        let d = Dashboard::new(
            lb.clone(),
            cluster,
            Arc::new(History::default()),
            LabControl::new(None, lb),
            Guard::new("127.0.0.1:8079".parse().unwrap(), None),
        )
        .behind(LbKind::Nginx, None);
        let resp = d.cluster_json().await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = body_of(resp).await;
        assert!(
            body["strategy"]
                .as_str()
                .unwrap()
                .starts_with("nginx (no admin API"),
            "{body}"
        );
        assert_eq!(body["nodes"][0]["id"], "node-1");
        assert_eq!(body["nodes"][0]["lb"]["state"], "down", "{body}");
        let body = body_of(d.requests(None).await).await;
        assert_eq!(body["requests"], json!([]));
        assert!(body["note"].as_str().unwrap().contains("no routing log"));
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
        // Off loopback, with the token required, the name may be anything
        // (the token is the guard), but other sites are still refused.
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
