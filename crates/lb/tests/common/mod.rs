//! Test support: in-process echo backends and LBs on port 0, a small HTTP
//! client, and polling with deadlines (never fixed sleeps for correctness).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use sessionlab_lb::echo::{self, EchoState};
use sessionlab_lb::{Config, Listeners};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub struct Echo {
    pub state: Arc<EchoState>,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Echo {
    pub fn spec(&self) -> String {
        format!("{}={}", self.state.id(), self.addr)
    }
}

/// Start an in-process echo backend on a free port.
pub async fn echo(id: &str) -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = EchoState::new(id);
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(echo::run(state.clone(), listener, async {
        let _ = rx.await;
    }));
    Echo {
        state,
        addr,
        _stop: tx,
    }
}

/// An address where nothing listens: a socket bound but never listening
/// (connects are refused), kept so no other test can take the port.
pub struct DeadAddr {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

pub fn dead_addr() -> DeadAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    DeadAddr {
        addr: socket.local_addr().unwrap(),
        _socket: socket,
    }
}

pub struct Lb {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Lb {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Stop gracefully and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("LB did not shut down")
                .unwrap();
        }
    }
}

/// Start an LB in-process with these CLI arguments (listeners on port 0).
pub async fn lb(args: &[&str]) -> Lb {
    let config =
        Config::try_parse_from(std::iter::once("sessionlab-lb").chain(args.iter().copied()))
            .expect("valid test flags");
    let settings = config.resolve().expect("valid test config");
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sessionlab_lb::run(settings, Listeners { public, admin }, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Lb {
        addr,
        admin: admin_addr,
        stop: Some(tx),
        task: Some(task),
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn served_by(&self) -> &str {
        self.headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of `SLROUTE` set by this response, if any.
    pub fn route_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("SLROUTE="))
            .map(|v| v.split(';').next().unwrap_or("").to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl Http {
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, url, headers, b"").await
    }
}

/// Poll `check` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The state ("up"/"down") of a backend, from the admin API.
pub async fn backend_state(http: &Http, lb: &Lb, id: &str) -> Option<String> {
    let list = http
        .get(&lb.admin_url("/admin/v1/backends"), &[])
        .await
        .json();
    list["backends"]
        .as_array()?
        .iter()
        .find(|b| b["id"] == id)
        .map(|b| b["state"].as_str().unwrap_or("").to_string())
}
