//! A small driver for headless Chromium over the Chrome DevTools Protocol,
//! for tests that look at pages the way a person does.
//!
//! - [`find_chromium`]: Debian's `chromium` (what `scripts/test.sh`
//!   installs), or `SESSIONLAB_CHROMIUM`.
//! - [`Browser::launch`]: `chromium --headless=new --remote-debugging-port=0`
//!   with a fresh profile in a temp folder. Chromium writes the port it
//!   chose to `DevToolsActivePort` in the profile, which is read with a
//!   deadline (more robust than parsing its stderr, which goes to a log
//!   file in the test's output folder for when something fails).
//! - [`Browser::new_page`]: a tab, driven over its own websocket: one JSON
//!   command at a time, events skipped, every call bounded by a timeout.
//! - [`Page::wait_for`]: evaluate an expression until it is truthy, polling
//!   with a deadline (never a fixed sleep).
//!
//! `--no-sandbox` because the tests run as root in CI containers, where
//! Chromium's sandbox cannot start; the browser only loads pages from
//! this machine's loopback.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one CDP command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the browser has to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The window the pages are laid out (and screenshotted) in.
pub const WIDTH: u32 = 1440;
pub const HEIGHT: u32 = 1000;

/// The Chromium binary, if there is one.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SESSIONLAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A running headless Chromium; killed (by its pid) when dropped.
pub struct Browser {
    child: Child,
    port: u16,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start Chromium; its stderr goes to `log`.
    pub async fn launch(chromium: &Path, log: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("a profile folder");
        let log_file = std::fs::File::create(log).expect("the browser log file");
        let child = Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--no-proxy-server",
                "--mute-audio",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={WIDTH},{HEIGHT}"),
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
        let mut browser = Browser {
            child,
            port: 0,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap(),
            _profile: profile,
        };
        let port_file = browser._profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + START_TIMEOUT;
        browser.port = loop {
            let port = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u16>().ok()));
            if let Some(p) = port.filter(|p| *p != 0) {
                break p;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!(
                    "chromium exited ({status}) before it listened; see {}",
                    log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not write {} within {START_TIMEOUT:?}; see {}",
                port_file.display(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        browser
    }

    /// A new tab, at `about:blank`.
    pub async fn new_page(&self) -> Page {
        let target: Value = self
            .http
            .put(format!(
                "http://127.0.0.1:{}/json/new?about:blank",
                self.port
            ))
            .send()
            .await
            .expect("asking chromium for a tab")
            .json()
            .await
            .expect("chromium's tab description");
        let ws_url = target["webSocketDebuggerUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no websocket for the tab: {target}"))
            .to_string();
        let (ws, _) = tokio::time::timeout(CALL_TIMEOUT, tokio_tungstenite::connect_async(&ws_url))
            .await
            .expect("connecting to the tab timed out")
            .expect("connecting to the tab");
        let mut page = Page { ws, next_id: 1 };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab.
pub struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Send one command and wait for its answer (events are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// The same, with the browser's refusal as an error.
    pub async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        let work = async {
            self.ws
                .send(Message::Text(msg.into()))
                .await
                .unwrap_or_else(|e| panic!("sending {method}: {e}"));
            loop {
                let frame = self
                    .ws
                    .next()
                    .await
                    .unwrap_or_else(|| panic!("the tab closed during {method}"))
                    .unwrap_or_else(|e| panic!("reading the answer to {method}: {e}"));
                let Message::Text(text) = frame else { continue };
                let v: Value = serde_json::from_str(&text).expect("CDP speaks JSON");
                if v["id"].as_u64() != Some(id) {
                    continue;
                }
                return match v.get("error") {
                    Some(err) => Err(err.to_string()),
                    None => Ok(v["result"].clone()),
                };
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| panic!("{method} got no answer within {CALL_TIMEOUT:?}"))
    }

    /// Go to `url` and wait until the page has loaded.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        let check = format!(
            "document.readyState === 'complete' && location.href.startsWith({})",
            json!(url)
        );
        self.wait_for(&format!("{url} to load"), &check, Duration::from_secs(20))
            .await;
    }

    /// The value of a JavaScript expression (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
    }

    /// The same, with a thrown exception (or a page that is just being
    /// replaced) as an error.
    pub async fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .try_call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        match r.get("exceptionDetails") {
            Some(ex) => Err(ex["exception"]["description"]
                .as_str()
                .map_or_else(|| ex.to_string(), str::to_string)),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// Evaluate `expression` every 100 ms until it is truthy; return it.
    /// An expression that throws (the page is still loading) is "not yet".
    pub async fn wait_for(&mut self, what: &str, expression: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.try_eval(expression).await;
            let truthy = match &v {
                Err(_) | Ok(Value::Null) => false,
                Ok(Value::Bool(b)) => *b,
                Ok(Value::String(s)) => !s.is_empty(),
                Ok(Value::Number(n)) => n.as_f64() != Some(0.0),
                Ok(_) => true,
            };
            if truthy {
                return v.unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what} (last: {v:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the whole page (not only the window) at `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(WIDTH as f64).ceil();
        let height = size["height"].as_f64().unwrap_or(HEIGHT as f64).ceil();
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot is base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
