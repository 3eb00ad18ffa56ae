//! In-process load balancers and echo backends on port 0, and a raw HTTP
//! client for talking to them.
//!
//! The LB is started from the same flags its binary parses (so a test says
//! `--strategy sticky-route` the way a user does) on listeners the test
//! bound itself, so there is no port to race for. The echo backends answer
//! with who served the request and what it carried. [`Http`] is a bare
//! hyper client: no cookie jar, no redirects, no header rewriting, so a test
//! sees the bytes the LB sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use sessionlab_lb::echo::{self, EchoState};
use sessionlab_lb::{Flags, LbOptions, Listeners};
use tokio::net::TcpListener;

use crate::Running;
use tokio::sync::oneshot;

/// An echo backend running in this process until dropped.
pub struct Echo {
    pub state: Arc<EchoState>,
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Echo {
    /// `id=addr`, as the LB's `--backend` flag takes it.
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

/// See [`DeadAddr`].
pub fn dead_addr() -> DeadAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    DeadAddr {
        addr: socket.local_addr().unwrap(),
        _socket: socket,
    }
}

/// An LB running in this process until dropped (or [`Lb::stop`]ped).
pub struct Lb {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTPS listener, when the flags have `--tls-listen`.
    pub tls_addr: Option<SocketAddr>,
    running: Running,
}

impl Lb {
    /// A URL on the public listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    /// A URL on the HTTPS listener (`https://localhost:PORT/...`, the name
    /// a test certificate is for); panics without `--tls-listen`.
    pub fn tls_url(&self, path: &str) -> String {
        let addr = self.tls_addr.expect("the LB was started with --tls-listen");
        format!("https://localhost:{}{}", addr.port(), path)
    }
    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Stop gracefully and wait for it.
    pub async fn stop(mut self) {
        self.running.stop("the LB").await;
    }
}

/// Start an LB in-process with these CLI arguments (listeners on port 0,
/// `--tls-listen`'s too).
pub async fn lb(args: &[&str]) -> Lb {
    let flags = Flags::try_parse_from(std::iter::once("sessionlab-lb").chain(args.iter().copied()))
        .expect("valid test flags");
    let options = LbOptions::try_from(flags).expect("valid test config");
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = match options.tls {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        None => None,
    };
    let tls_addr = tls.as_ref().map(|l| l.local_addr().unwrap());
    let (addr, admin_addr) = (public.local_addr().unwrap(), admin.local_addr().unwrap());
    let running = Running::spawn(|shutdown| async move {
        sessionlab_lb::run(options, Listeners { public, admin, tls }, shutdown)
            .await
            .unwrap();
    });
    Lb {
        addr,
        admin: admin_addr,
        tls_addr,
        running,
    }
}

/// Start an LB in-process over `backends` (`id=addr` specs, each given as
/// `--backend`, in order) with the other flags `flags`.
pub async fn lb_over(backends: &[String], flags: &[&str]) -> Lb {
    let mut args: Vec<&str> = Vec::with_capacity(backends.len() * 2 + flags.len());
    for spec in backends {
        args.extend(["--backend", spec.as_str()]);
    }
    args.extend(flags);
    lb(&args).await
}

/// `N` echo backends, `node-1` to `node-N`, and an LB over them with the
/// other flags `flags`.
pub async fn lb_over_echoes<const N: usize>(flags: &[&str]) -> ([Echo; N], Lb) {
    let mut echoes = Vec::with_capacity(N);
    for i in 1..=N {
        echoes.push(echo(&format!("node-{i}")).await);
    }
    let specs: Vec<String> = echoes.iter().map(Echo::spec).collect();
    let lb = lb_over(&specs, flags).await;
    match echoes.try_into() {
        Ok(echoes) => (echoes, lb),
        Err(_) => unreachable!("N echoes were started"),
    }
}

/// A whole response: status, headers and the body as text.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// The `x-served-by` header (the backend's id), or "".
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

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A bare HTTP/1 client; see the module docs.
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
    /// Send one request (20 s limit) and read the whole response.
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

    /// `GET url` with `headers`.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::GET, url, headers, b"").await
    }
}

/// Waits (up to `limit`) until the admin API shows backend `id` in `state`
/// (`up`, `down`, `draining`); panics naming both when it does not.
pub async fn until_backend(http: &Http, lb: &Lb, id: &str, state: &str, limit: Duration) {
    crate::until(limit, &format!("{id} {state}"), || async {
        backend_state(http, lb, id).await.as_deref() == Some(state)
    })
    .await;
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
