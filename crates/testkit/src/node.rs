//! Nodes inside the test process, for the node's integration tests.
//!
//! [`TestNode`] runs `sessionlab_node::run` on port-0 listeners the test
//! bound itself (no port to race for) with options parsed from the same
//! flags the binary reads ([`config_with`]), and stops with the test.
//! [`NodeClient`] is a client bound to one of its listeners, so that a
//! request reads as what it is (`app.put("/api/cart/pear", &cookie)`)
//! instead of six lines of builder calls; every test writes the same
//! requests the same way. The functions after it are the demo app's
//! requests as the tests make them (log in, read the session, increment
//! the counter) and what a response carries (the session cookie).
//!
//! Why here, behind feature `node`, and not in the node crate: the kit is
//! the one place tests share helpers, and the node's integration tests are
//! its only users. The kit depends on the node only as the node's
//! *dev*-dependency (`sessionlab-node` dev-depends on the kit with this
//! feature), the same arrangement as feature `lb`: Cargo builds the node
//! library once and links it into both the integration tests and the kit,
//! so there is no cycle in what is built. (The node's unit tests, inside
//! the library, cannot use it: they would be a second copy of the crate.)

use crate::{Running, cookie_pair};
pub use crate::{client, set_cookies};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sessionlab_node::{Listeners, NodeOptions, StoreWiring, run, wire};

/// A node running in this process until dropped.
pub struct TestNode {
    pub app: String,
    pub cluster: String,
    running: Running,
}

impl TestNode {
    /// A node with `cfg` and the store it asks for.
    pub async fn start(cfg: NodeOptions) -> TestNode {
        let wiring = wire(&cfg).await.expect("store wiring");
        TestNode::start_with(cfg, wiring).await
    }

    /// A node with `cfg` and the given store wiring.
    pub async fn start_with(cfg: NodeOptions, wiring: StoreWiring) -> TestNode {
        let listeners = Listeners::ephemeral().expect("bind loopback port 0");
        let app = format!("http://{}", listeners.app.local_addr().unwrap());
        let cluster = format!("http://{}", listeners.cluster.local_addr().unwrap());
        let running = Running::spawn(|shutdown| async move {
            run(cfg, listeners, wiring, shutdown)
                .await
                .expect("node runs");
        });
        TestNode {
            app,
            cluster,
            running,
        }
    }

    /// Stop the node and wait until it has shut down.
    pub async fn stop(mut self) {
        self.running.stop("the node").await;
    }

    /// `c` bound to the node's app listener.
    pub fn app_client(&self, c: &reqwest::Client) -> NodeClient {
        NodeClient::new(c, &self.app)
    }

    /// `c` bound to the node's cluster listener (health, metrics, admin).
    pub fn cluster_client(&self, c: &reqwest::Client) -> NodeClient {
        NodeClient::new(c, &self.cluster)
    }
}

/// A client and one base URL (`http://127.0.0.1:PORT`): the requests of a
/// test to one listener. A `cookie` argument is a `Cookie` header value,
/// sent only when not empty. The sending methods panic if no answer came
/// (a failed request is a failed test); the status is the test's to check.
#[derive(Clone)]
pub struct NodeClient {
    pub client: reqwest::Client,
    pub base: String,
}

impl NodeClient {
    /// `c` bound to `base`.
    pub fn new(c: &reqwest::Client, base: &str) -> NodeClient {
        NodeClient {
            client: c.clone(),
            base: base.to_owned(),
        }
    }

    /// `method base+path` with `cookie`, not sent yet: for requests that
    /// carry more (other headers, a token, a JSON body).
    pub fn request(&self, method: Method, path: &str, cookie: &str) -> reqwest::RequestBuilder {
        let req = self.client.request(method, format!("{}{path}", self.base));
        if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        }
    }

    /// Send `req` and wait for the answer.
    pub async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
        req.send().await.expect("an answer")
    }

    /// `GET path` with `cookie`.
    pub async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        NodeClient::send(self.request(Method::GET, path, cookie)).await
    }

    /// `POST path` with `cookie` and no body.
    pub async fn post(&self, path: &str, cookie: &str) -> reqwest::Response {
        NodeClient::send(self.request(Method::POST, path, cookie)).await
    }

    /// `PUT path` with `cookie`.
    pub async fn put(&self, path: &str, cookie: &str) -> reqwest::Response {
        NodeClient::send(self.request(Method::PUT, path, cookie)).await
    }

    /// `DELETE path` with `cookie`.
    pub async fn delete(&self, path: &str, cookie: &str) -> reqwest::Response {
        NodeClient::send(self.request(Method::DELETE, path, cookie)).await
    }

    /// `POST path` with `cookie` and a form body.
    pub async fn post_form(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        NodeClient::send(self.request(Method::POST, path, cookie).form(form)).await
    }

    /// The body of `GET path` with `cookie`, as text.
    pub async fn text(&self, path: &str, cookie: &str) -> String {
        self.get(path, cookie)
            .await
            .text()
            .await
            .expect("a text body")
    }

    /// The body of `GET path` with `cookie`, as JSON.
    pub async fn json(&self, path: &str, cookie: &str) -> Value {
        self.get(path, cookie)
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    /// `POST /login` as `user` with `password`, asking for JSON
    /// (`Accept: application/json`), as an API client logs in.
    pub async fn login_json(&self, user: &str, password: &str) -> reqwest::Response {
        let form = [("username", user), ("password", password)];
        let req = self.request(Method::POST, "/login", "");
        NodeClient::send(req.header("accept", "application/json").form(&form)).await
    }

    /// [`login`] as `user` with the demo password and `cookie`.
    pub async fn login(&self, user: &str, cookie: &str) -> reqwest::Response {
        login(&self.client, &self.base, cookie, user, false).await
    }

    /// [`session`] with `cookie`.
    pub async fn session(&self, cookie: &str) -> Value {
        session(&self.client, &self.base, cookie).await
    }

    /// [`increment`] with `cookie`.
    pub async fn increment(&self, cookie: &str) -> (u64, HeaderMap) {
        increment(&self.client, &self.base, cookie).await
    }
}

/// A small config for tests: two workers, test id.
pub fn config(id: &str) -> NodeOptions {
    config_with(id, &[])
}

/// [`config`] with more flags, parsed as the binary parses them.
pub fn config_with(id: &str, flags: &[&str]) -> NodeOptions {
    let args = ["--id", id, "--workers", "2"]
        .into_iter()
        .chain(flags.iter().copied());
    NodeOptions::from_args(args).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}

/// The `SLSESSION=...` pair of the first session cookie set, as a `Cookie`
/// header value.
pub fn session_cookie(h: &HeaderMap) -> Option<String> {
    cookie_pair(h, sessionlab_wire::SESSION_COOKIE)
}

/// The body of `GET url` as text (a page, or a node's `/metrics`).
pub async fn get_text(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// The body of `GET url` as JSON (a node's `/admin/v1/status`).
pub async fn get_json(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

/// `GET /admin/v1/status` on the node's cluster listener.
pub async fn status(c: &reqwest::Client, node: &TestNode) -> Value {
    get_json(c, format!("{}/admin/v1/status", node.cluster)).await
}

/// `GET /api/session` with `cookie` (may be empty).
pub async fn session(c: &reqwest::Client, base: &str, cookie: &str) -> Value {
    let mut req = c.get(format!("{base}/api/session"));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// `POST /login` as `user` with the demo password; returns the response.
pub async fn login(
    c: &reqwest::Client,
    base: &str,
    cookie: &str,
    user: &str,
    remember: bool,
) -> reqwest::Response {
    let mut form = vec![("username", user), ("password", "sessionlab")];
    if remember {
        form.push(("remember", "on"));
    }
    let mut req = c.post(format!("{base}/login")).form(&form);
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    req.send().await.unwrap()
}

/// `POST /api/counter/increment`; returns (new value, response headers).
pub async fn increment(c: &reqwest::Client, base: &str, cookie: &str) -> (u64, HeaderMap) {
    let mut req = c.post(format!("{base}/api/counter/increment"));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    let v: Value = res.json().await.unwrap();
    (v["counter"].as_u64().unwrap(), h)
}
