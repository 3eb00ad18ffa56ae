//! The stage of the attacks: the nodes they start, and the victim's and the
//! attacker's requests.
//!
//! [`AttackLab`] starts `sessionlab-node` processes of its own ([`OwnNode`]:
//! free loopback ports, logs in a temporary folder, killed when dropped),
//! and for the wiretap scene a `sessionlab-lb` with HTTPS ([`OwnLb`]),
//! tells the story (stdout, or stderr with `--json`) and records the
//! findings. The request helpers play alice (a browser's User-Agent) and
//! the attacker (curl's), with plain clients that follow no redirects and
//! keep no cookies, so every credential that moves is moved on purpose.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{AttackArgs, Finding, Outcome};
use crate::cluster::Binaries;
use crate::error::{LabError, Result};
use crate::ports::PortAllocator;

/// The first characters of a credential, for printing.
pub(super) fn short(s: &str) -> String {
    format!("{}…", s.chars().take(6).collect::<String>())
}

/// Run state: where nodes come from, the story so far, the findings.
pub(super) struct AttackLab {
    pub(super) node_bin: PathBuf,
    pub(super) lb_bin: PathBuf,
    pub(super) dir: tempfile::TempDir,
    pub(super) target: Option<String>,
    pub(super) json: bool,
    pub(super) http: reqwest::Client,
    pub(super) findings: Vec<Finding>,
    pub(super) started: usize,
}

pub(super) const VICTIM_UA: &str = "Mozilla/5.0 (alice's laptop) Firefox/140.0";
pub(super) const ATTACKER_UA: &str = "curl/8.5 (attacker)";

impl AttackLab {
    pub(super) fn new(args: &AttackArgs) -> Result<AttackLab> {
        let bins = Binaries::locate(args.bin_dir.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("sessionlab-attack-")
            .tempdir()
            .map_err(LabError::io("creating a temporary folder"))?;
        let http = crate::api::client(client_builder())?;
        Ok(AttackLab {
            node_bin: bins.node,
            lb_bin: bins.lb,
            dir,
            target: args
                .target
                .as_ref()
                .map(|t| t.trim_end_matches('/').to_string()),
            json: args.json,
            http,
            findings: Vec::new(),
            started: 0,
        })
    }

    /// One line of the story (stderr with --json, so stdout stays JSON).
    pub(super) fn say(&self, line: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }

    pub(super) fn heading(&self, title: &str) {
        self.say(format!("\n== {title}"));
    }

    pub(super) fn found(
        &mut self,
        step: &str,
        setup: &str,
        outcome: Outcome,
        why: impl Into<String>,
    ) {
        let why = why.into();
        let tag = match outcome {
            Outcome::Vulnerable => "VULNERABLE",
            Outcome::Defended => "DEFENDED",
        };
        self.say(format!("   => {tag}: {why}"));
        self.findings.push(Finding {
            step: step.into(),
            setup: setup.into(),
            outcome,
            why,
        });
    }

    /// Start a node of the attack's own with `flags` (and `env`).
    pub(super) async fn node(&mut self, flags: &[&str], env: &[(&str, String)]) -> Result<OwnNode> {
        let mut ports = PortAllocator::new([]);
        let app = ports.port(0, 0, "attack node")?;
        let cluster = ports.port(0, 0, "attack node cluster")?;
        let mut args: Vec<String> = ["--workers", "1", "--listen"].map(String::from).into();
        args.push(format!("127.0.0.1:{app}"));
        args.push("--cluster-listen".into());
        args.push(format!("127.0.0.1:{cluster}"));
        args.extend(flags.iter().map(|f| f.to_string()));
        let bin = self.node_bin.clone();
        self.spawn(
            &bin,
            &args,
            env,
            format!("http://127.0.0.1:{app}"),
            flags.join(" "),
        )
        .await
    }

    /// Start a `sessionlab-lb` of the attack's own in front of `backend`,
    /// with a plain listener and an HTTPS one (a certificate from a CA
    /// made for this run, as `up --tls` does; no redirect, so both ports
    /// serve). Alice's client trusts that CA from then on.
    pub(super) async fn lb_with_tls(&mut self, backend: &OwnNode) -> Result<OwnLb> {
        let files = crate::tls::TlsFiles::of(&crate::runfolder::RunFolder::new(self.dir.path()));
        files.generate()?;
        let ca_pem = files.read_ca()?.ok_or_else(|| LabError::Api {
            target: "the attack's CA".into(),
            detail: format!("{} was not written", files.ca.display()),
        })?;
        // Alice's browser trusts that CA from now on (as after importing it).
        self.http = crate::api::client(crate::tls::trusting(client_builder(), Some(&ca_pem))?)?;
        let mut ports = PortAllocator::new([]);
        let plain = ports.port(0, 0, "attack LB")?;
        let admin = ports.port(0, 0, "attack LB admin")?;
        let tls = ports.port(0, 0, "attack LB HTTPS")?;
        let backend_addr = backend.base.trim_start_matches("http://");
        let args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{plain}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{admin}"),
            "--backend".into(),
            format!("node={backend_addr}"),
            "--tls-listen".into(),
            format!("127.0.0.1:{tls}"),
            "--tls-cert".into(),
            files.cert.display().to_string(),
            "--tls-key".into(),
            files.key.display().to_string(),
        ];
        let bin = self.lb_bin.clone();
        let process = self
            .spawn(
                &bin,
                &args,
                &[],
                format!("http://127.0.0.1:{plain}"),
                "sessionlab-lb --tls-listen".into(),
            )
            .await?;
        Ok(OwnLb {
            _process: process,
            plain: ([127, 0, 0, 1], plain).into(),
            tls: ([127, 0, 0, 1], tls).into(),
        })
    }

    /// Start `bin` with `args` (and `env`, nothing else of the caller's
    /// `SESSIONLAB_` environment), its output in the temporary folder, and
    /// wait until `base` answers `/healthz`.
    async fn spawn(
        &mut self,
        bin: &Path,
        args: &[String],
        env: &[(&str, String)],
        base: String,
        flags: String,
    ) -> Result<OwnNode> {
        self.started += 1;
        let name = format!("attack-{}", self.started);
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(LabError::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(LabError::io(format!("opening {}", log_path.display())))?;
        let mut cmd = Command::new(bin);
        if bin == self.node_bin {
            cmd.args(["--id", &name]);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SESSIONLAB_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .spawn()
            .map_err(LabError::io(format!("starting {}", bin.display())))?;
        let mut node = OwnNode { child, base, flags };
        node.wait_healthy(&self.http, &log_path).await?;
        Ok(node)
    }

    // --- the victim's and the attacker's requests --------------------------

    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, Value)> {
        let res = req.send().await.map_err(|e| LabError::Api {
            target: "attack request".into(),
            detail: e.to_string(),
        })?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok((status, headers, body))
    }

    /// `POST /login` as alice with `cookie` (may be empty); returns the
    /// session cookie pair the server set.
    pub(super) async fn login(&self, base: &str, cookie: &str) -> Result<(String, HeaderMap)> {
        let mut req = self
            .http
            .post(format!("{base}/login"))
            .header("user-agent", VICTIM_UA)
            .header("accept", "application/json")
            .form(&[("username", "alice"), ("password", "sessionlab")]);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let (status, headers, body) = self.send(req).await?;
        if status != 200 {
            return Err(unexpected("login", status, &body));
        }
        let pair = session_cookie(&headers).ok_or_else(|| unexpected("login", status, &body))?;
        Ok((pair, headers))
    }

    /// `POST {url}` as alice the way a browser submits the login form (no
    /// cookie, no `Accept: application/json`); returns the `Location` the
    /// answer sends her on to, if any.
    pub(super) async fn form_login(&self, url: String) -> Result<Option<String>> {
        let res = self
            .http
            .post(url)
            .header("user-agent", VICTIM_UA)
            .form(&[("username", "alice"), ("password", "sessionlab")])
            .send()
            .await
            .map_err(|e| unexpected("POST /login", 0, &Value::String(e.to_string())))?;
        Ok(header_str(res.headers(), "location"))
    }

    /// `GET {path}` with a session cookie and a User-Agent.
    pub(super) async fn read(&self, url: String, cookie: &str, ua: &str) -> Result<Value> {
        let mut req = self.http.get(url).header("user-agent", ua);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let (status, _, body) = self.send(req).await?;
        if status != 200 {
            return Err(unexpected("GET /api/session", status, &body));
        }
        Ok(body)
    }

    pub(super) async fn post(
        &self,
        url: String,
        cookie: &str,
        ua: &str,
    ) -> Result<(u16, HeaderMap, Value)> {
        let mut req = self
            .http
            .post(url)
            .header("user-agent", ua)
            .header("accept", "application/json");
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        self.send(req).await
    }

    pub(super) async fn token_login(&self, base: &str) -> Result<Value> {
        let req = self
            .http
            .post(format!("{base}/auth/login"))
            .form(&[("username", "alice"), ("password", "sessionlab")]);
        let (status, _, body) = self.send(req).await?;
        if status != 200 {
            return Err(unexpected("POST /auth/login", status, &body));
        }
        Ok(body)
    }

    async fn bearer(
        &self,
        method: reqwest::Method,
        url: String,
        token: &str,
    ) -> Result<(u16, Value)> {
        let req = self.http.request(method, url).bearer_auth(token);
        let (status, _, body) = self.send(req).await?;
        Ok((status, body))
    }

    /// `GET /api/session` on `base` with the access token `token`.
    pub(super) async fn token_session(&self, base: &str, token: &str) -> Result<(u16, Value)> {
        self.bearer(reqwest::Method::GET, format!("{base}/api/session"), token)
            .await
    }

    /// `POST /auth/logout` on `base` with the access token `token`.
    pub(super) async fn token_logout(&self, base: &str, token: &str) -> Result<(u16, Value)> {
        self.bearer(reqwest::Method::POST, format!("{base}/auth/logout"), token)
            .await
    }

    pub(super) async fn refresh(&self, base: &str, refresh_token: &str) -> Result<(u16, Value)> {
        let req = self
            .http
            .post(format!("{base}/auth/refresh"))
            .form(&[("refresh_token", refresh_token)]);
        let (status, _, body) = self.send(req).await?;
        Ok((status, body))
    }
}

/// The victim's and the attacker's clients: no redirects followed, no
/// cookies kept.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
}

pub(super) fn unexpected(what: &str, status: u16, body: &Value) -> LabError {
    LabError::Api {
        target: what.into(),
        detail: format!("unexpected answer {status}: {body}"),
    }
}

/// The `SLSESSION=<value>` pair of the first session cookie set.
/// The header `name` as text, if present and printable.
pub(super) fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(super) fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("SLSESSION=") && !c.starts_with("SLSESSION=;"))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
}

/// The whole `Set-Cookie` line of the session cookie.
pub(super) fn session_set_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("SLSESSION="))
        .map(str::to_string)
}

pub(super) fn value_of(pair: &str) -> &str {
    pair.split_once('=').map_or("", |(_, v)| v)
}

pub(super) fn user(v: &Value) -> Option<String> {
    v["session"]["user"].as_str().map(str::to_string)
}

/// A load balancer the attack started ([`AttackLab::lb_with_tls`]);
/// killed when dropped.
pub(super) struct OwnLb {
    /// Held for its drop, which kills the LB.
    _process: OwnNode,
    pub(super) plain: std::net::SocketAddr,
    pub(super) tls: std::net::SocketAddr,
}

/// A process the attack started (a node, or an LB's); killed when dropped.
pub(super) struct OwnNode {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) flags: String,
}

impl OwnNode {
    pub(super) async fn wait_healthy(&mut self, http: &reqwest::Client, log: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(res) = http.get(format!("{}/healthz", self.base)).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            let exited = self
                .child
                .try_wait()
                .map_err(LabError::io("waiting for a node"))?;
            if exited.is_some() || Instant::now() >= deadline {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                return Err(LabError::Api {
                    target: format!("sessionlab-node {}", self.flags),
                    detail: format!(
                        "did not become healthy: {}",
                        tail.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub(super) fn setup(&self) -> String {
        if self.flags.is_empty() {
            "a default node".into()
        } else {
            format!("node {}", self.flags)
        }
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `url` with the value of its `;sid=` cut to six characters.
pub(super) fn mask_sid(url: &str) -> String {
    match url.split_once(";sid=") {
        Some((head, sid)) => format!("{head};sid={}", short(sid)),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_shortened() {
        assert_eq!(short("abcdefghijkl"), "abcdef…");
        assert_eq!(value_of("SLSESSION=xyz"), "xyz");
        assert_eq!(
            mask_sid("http://h/;sid=abcdefghij"),
            "http://h/;sid=abcdef…"
        );
    }
}
