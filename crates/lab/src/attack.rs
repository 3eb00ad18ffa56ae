//! `sessionlab attack hijack` and `sessionlab attack fixation`: the
//! hijacking lab.
//!
//! Each attack is a script of steps, each step a small story with two
//! clients, the *victim* (alice) and the *attacker*, and real requests to
//! real `sessionlab-node` processes. Every step prints what it did and why
//! the server answered as it did, and ends in a [`Finding`]: the attack
//! worked (`vulnerable`) or a defence stopped it (`defended`). `--json`
//! prints the findings for scripts (and the end-to-end test asserts them).
//!
//! ## Whose nodes
//! The defences are node flags (`--idle-timeout 2s`, `--bind-session
//! user-agent`, `--secure-cookies`, `--tracking url`, `--referrer-policy`,
//! `--auth jwt`, `--access-ttl`), and one running cluster has one set of
//! flags. So the command starts the nodes each step needs itself: single
//! `sessionlab-node` processes on free loopback ports, with their logs in a
//! temporary folder, stopped when the step ends. It needs no cluster and
//! leaves nothing behind. `--target URL` runs the first steps (steal the
//! id, then log out) against a running app instead, for instance the load
//! balancer of `sessionlab up`, to show the same theft through a real
//! cluster; the steps that need a particular flag still use nodes of their
//! own.
//!
//! ## The steps
//! `hijack` (session ids): steal the cookie and read alice's session;
//! logout deletes the session on the server; idle expiry ends a stolen id
//! the victim stopped using; binding to the User-Agent refuses a thief with
//! another browser (and admits one who copies the header: a weak defence);
//! the `Secure` attribute keeps the cookie off plain HTTP.
//!
//! `hijack --auth jwt` (tokens): steal the access token (and read its
//! payload: signed, not encrypted); logout on one node does nothing on a
//! node that does not share the deny-list; with the deny-list it holds;
//! a short access-token lifetime ends a stolen token by itself; refresh
//! rotation with reuse detection kills a stolen refresh token's family.
//!
//! `fixation`: an id the attacker got from the server and planted in the
//! victim's browser is shared until login and worth nothing after it (the
//! id is rotated), in cookie mode and in URL mode; a made-up id is never
//! adopted; in URL mode the id leaks to another site through `Referer`
//! unless the page says `Referrer-Policy: no-referrer`.
//!
//! Ids and tokens are printed as their first six characters only: they are
//! credentials, even in a lab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use reqwest::cookie::CookieStore;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::cluster::Binaries;
use crate::error::{LabError, Result};
use crate::ports::PortAllocator;

/// The two attacks.
#[derive(Debug, Subcommand)]
pub enum Attack {
    /// Steal alice's session id (or token) and use it; then each defence.
    Hijack(AttackArgs),
    /// Plant a session id before alice logs in; and the id leaking from URLs.
    Fixation(AttackArgs),
}

/// How the victim authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// A session id in a cookie.
    Session,
    /// JWT access and refresh tokens.
    Jwt,
}

/// Options of both attacks.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// What the victim logs in with (hijack; fixation is about session ids).
    #[arg(long, value_enum, default_value_t = AuthKind::Session)]
    pub auth: AuthKind,
    /// A running app (e.g. http://127.0.0.1:8080, the LB of `sessionlab up`)
    /// to steal from in the first steps, instead of a node of the attack's own.
    #[arg(long, env = "SESSIONLAB_ATTACK_TARGET")]
    pub target: Option<String>,
    /// Folder with sessionlab-node (default: next to this binary).
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Print the findings as JSON on stdout (the story goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Whether the attack worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Vulnerable,
    Defended,
}

/// The end of one step.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// A short name, e.g. `steal-cookie`, `logout`, `idle-expiry`.
    pub step: String,
    /// The node flags (or target) it ran against.
    pub setup: String,
    pub outcome: Outcome,
    /// What happened and why, one sentence.
    pub why: String,
}

/// All findings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub attack: String,
    pub findings: Vec<Finding>,
}

/// Runs an attack; returns what to print on stdout at the end.
pub async fn run(attack: Attack) -> Result<String> {
    let (name, args) = match &attack {
        Attack::Hijack(a) => (
            match a.auth {
                AuthKind::Session => "hijack",
                AuthKind::Jwt => "hijack-jwt",
            },
            a,
        ),
        Attack::Fixation(a) => ("fixation", a),
    };
    let mut lab = AttackLab::new(args)?;
    let result = match (&attack, args.auth) {
        (Attack::Hijack(_), AuthKind::Session) => hijack_session(&mut lab).await,
        (Attack::Hijack(_), AuthKind::Jwt) => hijack_jwt(&mut lab).await,
        (Attack::Fixation(_), _) => fixation(&mut lab).await,
    };
    result?;
    let report = Report {
        attack: name.to_string(),
        findings: lab.findings,
    };
    if args.json {
        return serde_json::to_string_pretty(&report).map_err(|e| LabError::Api {
            target: "attack".into(),
            detail: e.to_string(),
        });
    }
    Ok(summary(&report))
}

/// The closing table.
pub fn summary(report: &Report) -> String {
    let mut out = format!("\nsummary of `{}`:\n", report.attack);
    for f in &report.findings {
        let outcome = match f.outcome {
            Outcome::Vulnerable => "VULNERABLE",
            Outcome::Defended => "defended",
        };
        out.push_str(&format!("  {:<24} {:<11} {}\n", f.step, outcome, f.setup));
    }
    out.trim_end().to_string()
}

/// The first characters of a credential, for printing.
fn short(s: &str) -> String {
    format!("{}…", s.chars().take(6).collect::<String>())
}

/// Run state: where nodes come from, the story so far, the findings.
struct AttackLab {
    node_bin: PathBuf,
    dir: tempfile::TempDir,
    target: Option<String>,
    json: bool,
    http: reqwest::Client,
    findings: Vec<Finding>,
    started: usize,
}

const VICTIM_UA: &str = "Mozilla/5.0 (alice's laptop) Firefox/140.0";
const ATTACKER_UA: &str = "curl/8.5 (attacker)";

impl AttackLab {
    fn new(args: &AttackArgs) -> Result<AttackLab> {
        let bins = Binaries::locate(args.bin_dir.as_deref())?;
        let dir = tempfile::Builder::new()
            .prefix("sessionlab-attack-")
            .tempdir()
            .map_err(LabError::io("creating a temporary folder"))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .map_err(|e| LabError::Api {
                target: "http client".into(),
                detail: e.to_string(),
            })?;
        Ok(AttackLab {
            node_bin: bins.node,
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
    fn say(&self, line: impl AsRef<str>) {
        if self.json {
            eprintln!("{}", line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }

    fn heading(&self, title: &str) {
        self.say(format!("\n== {title}"));
    }

    fn found(&mut self, step: &str, setup: &str, outcome: Outcome, why: impl Into<String>) {
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
    async fn node(&mut self, flags: &[&str], env: &[(&str, String)]) -> Result<OwnNode> {
        self.started += 1;
        let name = format!("attack-{}", self.started);
        let mut ports = PortAllocator::new([]);
        let app = ports.port(0, 0, "attack node")?;
        let cluster = ports.port(0, 0, "attack node cluster")?;
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(LabError::io(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(LabError::io(format!("opening {}", log_path.display())))?;
        let mut cmd = Command::new(&self.node_bin);
        cmd.args(["--id", &name, "--workers", "1"])
            .args(["--listen", &format!("127.0.0.1:{app}")])
            .args(["--cluster-listen", &format!("127.0.0.1:{cluster}")])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SESSIONLAB_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().map_err(LabError::io(format!(
            "starting {}",
            self.node_bin.display()
        )))?;
        let mut node = OwnNode {
            child,
            base: format!("http://127.0.0.1:{app}"),
            flags: flags.join(" "),
        };
        node.wait_healthy(&self.http, &log_path).await?;
        Ok(node)
    }

    // --- the victim's and the attacker's requests --------------------------

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, HeaderMap, Value)> {
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
    async fn login(&self, base: &str, cookie: &str) -> Result<(String, HeaderMap)> {
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

    /// `GET {path}` with a session cookie and a User-Agent.
    async fn read(&self, url: String, cookie: &str, ua: &str) -> Result<Value> {
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

    async fn post(&self, url: String, cookie: &str, ua: &str) -> Result<(u16, HeaderMap, Value)> {
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

    async fn token_login(&self, base: &str) -> Result<Value> {
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

    async fn refresh(&self, base: &str, refresh_token: &str) -> Result<(u16, Value)> {
        let req = self
            .http
            .post(format!("{base}/auth/refresh"))
            .form(&[("refresh_token", refresh_token)]);
        let (status, _, body) = self.send(req).await?;
        Ok((status, body))
    }
}

fn unexpected(what: &str, status: u16, body: &Value) -> LabError {
    LabError::Api {
        target: what.into(),
        detail: format!("unexpected answer {status}: {body}"),
    }
}

/// The `SLSESSION=<value>` pair of the first session cookie set.
fn session_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("SLSESSION=") && !c.starts_with("SLSESSION=;"))
        .map(|c| c.split(';').next().unwrap_or_default().to_string())
}

/// The whole `Set-Cookie` line of the session cookie.
fn session_set_cookie(h: &HeaderMap) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("SLSESSION="))
        .map(str::to_string)
}

fn value_of(pair: &str) -> &str {
    pair.split_once('=').map_or("", |(_, v)| v)
}

fn user(v: &Value) -> Option<String> {
    v["session"]["user"].as_str().map(str::to_string)
}

/// A node the attack started; killed when dropped.
struct OwnNode {
    child: Child,
    base: String,
    flags: String,
}

impl OwnNode {
    async fn wait_healthy(&mut self, http: &reqwest::Client, log: &Path) -> Result<()> {
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

    fn setup(&self) -> String {
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

// --- hijack, session ids ------------------------------------------------------

async fn hijack_session(lab: &mut AttackLab) -> Result<()> {
    lab.heading("hijack: a stolen session id is a stolen login");
    let own;
    let (base, setup) = match lab.target.clone() {
        Some(t) => (t.clone(), format!("target {t}")),
        None => {
            own = lab.node(&[], &[]).await?;
            (own.base.clone(), own.setup())
        }
    };
    let (cookie, _) = lab.login(&base, "").await?;
    lab.post(format!("{base}/api/counter/increment"), &cookie, VICTIM_UA)
        .await?;
    lab.say(format!(
        "1. alice logs in at {base}; her browser keeps the cookie SLSESSION={}",
        short(value_of(&cookie))
    ));
    lab.say("   the attacker copies that cookie (XSS without HttpOnly, a shared computer, a proxy log, malware)");
    lab.say("   into a second client with another browser and address, and asks for the session:");
    let stolen = lab
        .read(format!("{base}/api/session"), &cookie, ATTACKER_UA)
        .await?;
    match user(&stolen) {
        Some(u) => {
            let counter = &stolen["session"]["data"]["counter"];
            lab.say(format!("   the server answers as {u}: counter {counter}"));
            lab.found(
                "steal-cookie",
                &setup,
                Outcome::Vulnerable,
                "the id is the whole login: whoever presents it is alice",
            );
        }
        None => lab.found(
            "steal-cookie",
            &setup,
            Outcome::Defended,
            "the copied cookie did not work here (sticky routing or binding?)",
        ),
    }

    lab.heading("defence: logout deletes the session on the server");
    lab.post(format!("{base}/logout"), &cookie, VICTIM_UA)
        .await?;
    lab.say("2. alice presses log out; the attacker presents the copied cookie again:");
    let after = lab
        .read(format!("{base}/api/session"), &cookie, ATTACKER_UA)
        .await?;
    match user(&after) {
        None => lab.found(
            "logout",
            &setup,
            Outcome::Defended,
            "logout deleted the session in the store, so the copy is dead on every node, not just in alice's browser",
        ),
        Some(_) => lab.found(
            "logout",
            &setup,
            Outcome::Vulnerable,
            "the session outlived the logout (a node that did not get the delete yet?)",
        ),
    }

    lab.heading("defence: idle expiry");
    let node = lab.node(&["--idle-timeout", "2s"], &[]).await?;
    let (cookie, _) = lab.login(&node.base, "").await?;
    let early = lab
        .read(format!("{}/api/session", node.base), &cookie, ATTACKER_UA)
        .await?;
    lab.say(format!(
        "3. on a node with --idle-timeout 2s the stolen id works at first (user {}),",
        user(&early).unwrap_or_else(|| "none".into())
    ));
    lab.say("   then alice stops using it and so does the attacker for 3 s:");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let late = lab
        .read(format!("{}/api/session", node.base), &cookie, ATTACKER_UA)
        .await?;
    let outcome = if user(&late).is_none() && user(&early).is_some() {
        Outcome::Defended
    } else {
        Outcome::Vulnerable
    };
    lab.found(
        "idle-expiry",
        &node.setup(),
        outcome,
        "an id unused for the idle timeout is dead; it bounds the window, it does not close it (a thief who keeps using it keeps it alive)",
    );
    drop(node);

    lab.heading("defence: bind the session to the client (--bind-session user-agent)");
    let node = lab.node(&["--bind-session", "user-agent"], &[]).await?;
    let (cookie, _) = lab.login(&node.base, "").await?;
    let url = format!("{}/api/session", node.base);
    let other = lab.read(url.clone(), &cookie, ATTACKER_UA).await?;
    lab.say(format!(
        "4. the session remembers alice's User-Agent; the attacker's client says {ATTACKER_UA:?}:"
    ));
    lab.found(
        "bind-user-agent",
        &node.setup(),
        if user(&other).is_none() {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "another User-Agent: treated as no session, and the node logs and counts it (sessionlab_session_binding_refused_total)",
    );
    let copied = lab.read(url, &cookie, VICTIM_UA).await?;
    lab.say(
        "   the attacker copies the User-Agent header too (it was in the same stolen request):",
    );
    lab.found(
        "bind-copied-user-agent",
        &node.setup(),
        if user(&copied).is_some() {
            Outcome::Vulnerable
        } else {
            Outcome::Defended
        },
        "the fingerprint is sent by the client, so a thief can send it too: a signal, not a lock",
    );
    drop(node);

    lab.heading("defence: HTTPS-only cookies (Secure)");
    for flags in [&[][..], &["--secure-cookies"][..]] {
        let node = lab.node(flags, &[]).await?;
        let (_, headers) = lab.login(&node.base, "").await?;
        let line = session_set_cookie(&headers).unwrap_or_default();
        let attrs: Vec<&str> = line.split(';').skip(1).map(str::trim).collect();
        let sent = browser_sends_over_http(&line);
        lab.say(format!(
            "5. {}: Set-Cookie attributes {}; would a browser send it to http://shop.example/?",
            node.setup(),
            attrs.join("; ")
        ));
        lab.found(
            if flags.is_empty() {
                "cookie-over-http"
            } else {
                "secure-cookie"
            },
            &node.setup(),
            if sent {
                Outcome::Vulnerable
            } else {
                Outcome::Defended
            },
            if sent {
                "without Secure the cookie rides on every plain-HTTP request, readable by anyone on the network path"
            } else {
                "with Secure the browser sends it only over HTTPS, so a sniffer on plain HTTP never sees it"
            },
        );
    }
    lab.say(
        "   (the lab runs on 127.0.0.1, which browsers count as a secure context and send Secure",
    );
    lab.say("   cookies to even over http; so the question is answered with the browser's cookie rules,");
    lab.say("   the cookie_store crate that mirrors Firefox's, for the same site served as http://shop.example)");
    Ok(())
}

/// Whether a browser that got `set_cookie` from `https://shop.example/`
/// sends it back to `http://shop.example/` (no network involved).
pub fn browser_sends_over_http(set_cookie: &str) -> bool {
    let jar = reqwest::cookie::Jar::default();
    let https: reqwest::Url = "https://shop.example/".parse().expect("a valid URL");
    let http: reqwest::Url = "http://shop.example/".parse().expect("a valid URL");
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        jar.set_cookies(&mut std::iter::once(&v), &https);
    }
    jar.cookies(&http).is_some()
}

// --- hijack, tokens -------------------------------------------------------------

async fn hijack_jwt(lab: &mut AttackLab) -> Result<()> {
    let secret = crate::runfolder::generate_secret()?;
    let env = [("SESSIONLAB_JWT_SECRET", secret)];
    lab.heading("hijack: a stolen token is a stolen login");
    let a = lab.node(&["--auth", "jwt"], &env).await?;
    let (base, setup) = match lab.target.clone() {
        Some(t) => (t.clone(), format!("target {t}")),
        None => (a.base.clone(), a.setup()),
    };
    let pair = lab.token_login(&base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let payload = peek(&access);
    lab.say(format!(
        "1. alice logs in at {base} and gets an access token ({} bytes, {})",
        access.len(),
        short(&access)
    ));
    lab.say(format!(
        "   the attacker copies it and, without any key, reads its payload: sub={} exp={} (signed, not encrypted)",
        payload["sub"], payload["exp"]
    ));
    let (status, body) = lab
        .bearer(reqwest::Method::GET, format!("{base}/api/session"), &access)
        .await?;
    lab.found(
        "steal-token",
        &setup,
        if status == 200 && user(&body).is_some() {
            Outcome::Vulnerable
        } else {
            Outcome::Defended
        },
        "a bearer token is the whole login: whoever presents it is alice, on every node with the key",
    );

    lab.heading("logout without a shared deny-list");
    let b = lab.node(&["--auth", "jwt"], &env).await?;
    let pair = lab.token_login(&a.base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.bearer(
        reqwest::Method::POST,
        format!("{}/auth/logout", a.base),
        &access,
    )
    .await?;
    let (status, _) = lab
        .bearer(
            reqwest::Method::GET,
            format!("{}/api/session", b.base),
            &access,
        )
        .await?;
    lab.say("2. two nodes with the same key but their own memory; alice logs out on the first,");
    lab.say(format!(
        "   the attacker uses the stolen token on the second: {status}"
    ));
    lab.found(
        "logout-not-shared",
        "two nodes --auth jwt, separate stores",
        if status == 200 {
            Outcome::Vulnerable
        } else {
            Outcome::Defended
        },
        "the signature is still valid until exp; only a node that checks the deny-list knows about the logout",
    );
    drop(b);

    lab.heading("defence: logout with the deny-list");
    let pair = lab.token_login(&base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.bearer(
        reqwest::Method::POST,
        format!("{base}/auth/logout"),
        &access,
    )
    .await?;
    let (status, body) = lab
        .bearer(reqwest::Method::GET, format!("{base}/api/session"), &access)
        .await?;
    lab.say(format!(
        "3. alice logs out where the attacker uses the token: {status} {}",
        body["reason"]
    ));
    lab.found(
        "logout-deny-list",
        &setup,
        if status == 401 {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "the token's jti is on the deny-list until it expires: server-side state again (replicate or share it)",
    );
    drop(a);

    lab.heading("defence: short-lived access tokens");
    let node = lab
        .node(&["--auth", "jwt", "--access-ttl", "2s"], &env)
        .await?;
    let pair = lab.token_login(&node.base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.say("4. with --access-ttl 2s the attacker's copy works for two seconds, then:");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = lab
        .bearer(
            reqwest::Method::GET,
            format!("{}/api/session", node.base),
            &access,
        )
        .await?;
    lab.found(
        "short-access-ttl",
        &node.setup(),
        if status == 401 && body["reason"] == "expired" {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "an access token ends by itself at exp, with no server state; the refresh token keeps alice logged in",
    );

    lab.heading("defence: refresh rotation with reuse detection");
    let pair = lab.token_login(&node.base).await?;
    let stolen = pair["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s1, thief) = lab.refresh(&node.base, &stolen).await?;
    lab.say(format!(
        "5. the attacker steals alice's refresh token and refreshes first: {s1}"
    ));
    let (s2, body) = lab.refresh(&node.base, &stolen).await?;
    lab.say(format!(
        "   alice refreshes with her (now used) token: {s2} {}",
        body["reason"]
    ));
    let thief_refresh = thief["refresh_token"].as_str().unwrap_or_default();
    let (s3, body) = lab.refresh(&node.base, thief_refresh).await?;
    lab.say(format!(
        "   the attacker refreshes again with the token he got: {s3} {}",
        body["reason"]
    ));
    lab.found(
        "refresh-reuse",
        &node.setup(),
        if s1 == 200 && s2 == 401 && s3 == 401 {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "a used refresh token presented again revokes the whole family: the thief's tokens die with alice's (she logs in again)",
    );
    Ok(())
}

/// A JWT's payload, decoded without any key.
fn peek(token: &str) -> Value {
    sessionlab_session::jwt::peek_payload(token).unwrap_or(Value::Null)
}

// --- fixation -------------------------------------------------------------------

async fn fixation(lab: &mut AttackLab) -> Result<()> {
    lab.heading("fixation: the attacker plants a session id before alice logs in");
    let node = lab.node(&[], &[]).await?;
    let base = node.base.clone();
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), "", ATTACKER_UA)
        .await?;
    let planted = session_cookie(&headers).unwrap_or_default();
    lab.say(format!(
        "1. the attacker gets a real id from the server ({}) and plants it in alice's browser",
        short(value_of(&planted))
    ));
    lab.say("   (a cookie set from a sibling subdomain, a link, a shared kiosk)");
    lab.http
        .put(format!("{base}/api/cart/surprise-gift"))
        .header("cookie", &planted)
        .header("user-agent", VICTIM_UA)
        .send()
        .await
        .map_err(|e| unexpected("PUT /api/cart", 0, &Value::String(e.to_string())))?;
    let shared = lab
        .read(format!("{base}/api/session"), &planted, ATTACKER_UA)
        .await?;
    let sees = shared["session"]["data"]["cart"]["surprise-gift"].is_number();
    lab.say(format!(
        "   alice shops before logging in; the attacker reads the same session: cart has alice's item: {sees}"
    ));
    lab.found(
        "planted-before-login",
        &node.setup(),
        if sees {
            Outcome::Vulnerable
        } else {
            Outcome::Defended
        },
        "until login the planted id is shared: anything alice does anonymously the attacker sees",
    );
    let (fresh, _) = lab.login(&base, &planted).await?;
    let after = lab
        .read(format!("{base}/api/session"), &planted, ATTACKER_UA)
        .await?;
    let hers = lab
        .read(format!("{base}/api/session"), &fresh, VICTIM_UA)
        .await?;
    lab.say(format!(
        "2. alice logs in with the planted id; the answer sets a new one ({}); her cart came along: {}",
        short(value_of(&fresh)),
        hers["session"]["data"]["cart"]["surprise-gift"].is_number()
    ));
    lab.found(
        "login-rotates-id",
        &node.setup(),
        if user(&after).is_none() && value_of(&fresh) != value_of(&planted) {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "login moved the session to a new id and deleted the planted one: the attacker holds nothing",
    );
    let made_up = "SLSESSION=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), made_up, VICTIM_UA)
        .await?;
    let issued = session_cookie(&headers).unwrap_or_default();
    lab.say("3. the attacker plants an id he made up instead; alice's first write:");
    lab.found(
        "made-up-id",
        &node.setup(),
        if !issued.is_empty() && issued != made_up {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "the server never adopts an id it did not issue: the made-up one reads as no session and a fresh id is set",
    );
    drop(node);

    lab.heading("fixation in URL mode (;sid= in the link)");
    let node = lab.node(&["--tracking", "url"], &[]).await?;
    let base = node.base.clone();
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), "", ATTACKER_UA)
        .await?;
    let planted = headers
        .get("x-session-path-param")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    lab.say(format!(
        "4. the attacker mails alice a link: {}",
        mask_sid(&format!("{base}/{planted}"))
    ));
    let before = lab
        .read(format!("{base}/api/session{planted}"), "", ATTACKER_UA)
        .await?;
    let res = lab
        .http
        .post(format!("{base}/login{planted}"))
        .header("user-agent", VICTIM_UA)
        .form(&[("username", "alice"), ("password", "sessionlab")])
        .send()
        .await
        .map_err(|e| unexpected("POST /login", 0, &Value::String(e.to_string())))?;
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let after = lab
        .read(format!("{base}/api/session{planted}"), "", ATTACKER_UA)
        .await?;
    lab.say(format!(
        "   before login the link's id is live (a session: {}); alice logs in from the linked page,",
        !before["session"].is_null()
    ));
    lab.say(format!(
        "   is sent on to {} and the attacker tries the link's id again:",
        mask_sid(&location)
    ));
    lab.found(
        "url-login-rotates-id",
        &node.setup(),
        if user(&after).is_none() && !location.contains(&planted) {
            Outcome::Defended
        } else {
            Outcome::Vulnerable
        },
        "in URL mode too, login rotates the id; the old ;sid= is dead",
    );
    drop(node);

    lab.heading("URL mode: the id leaks through Referer");
    for policy in ["unsafe-url", "no-referrer"] {
        let node = lab
            .node(&["--tracking", "url", "--referrer-policy", policy], &[])
            .await?;
        let base = node.base.clone();
        let res = lab
            .http
            .post(format!("{base}/login"))
            .header("user-agent", VICTIM_UA)
            .form(&[("username", "alice"), ("password", "sessionlab")])
            .send()
            .await
            .map_err(|e| unexpected("POST /login", 0, &Value::String(e.to_string())))?;
        let home = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("/")
            .to_string();
        let page_url = format!("{base}{home}");
        let page = lab
            .http
            .get(&page_url)
            .header("user-agent", VICTIM_UA)
            .send()
            .await
            .map_err(|e| unexpected("GET /", 0, &Value::String(e.to_string())))?;
        let header = page
            .headers()
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let html = page.text().await.unwrap_or_default();
        let link = "https://example.org/";
        let links_out = html.contains(link);
        let referer = referer_for(header.as_deref(), &page_url, link);
        lab.say(format!(
            "{}. alice, logged in, clicks the page's link to {link} (Referrer-Policy: {}); the browser sends Referer: {}",
            if policy == "unsafe-url" { 5 } else { 6 },
            header.as_deref().unwrap_or("(none)"),
            referer.as_deref().map_or("(nothing)".to_string(), mask_sid)
        ));
        let leaked = referer
            .as_deref()
            .and_then(|r| r.split_once(";sid="))
            .map(|(_, sid)| sid.to_string());
        let stolen = match &leaked {
            Some(sid) => user(
                &lab.read(format!("{base}/api/session;sid={sid}"), "", ATTACKER_UA)
                    .await?,
            ),
            None => None,
        };
        lab.found(
            if policy == "unsafe-url" {
                "referer-leak"
            } else {
                "referrer-policy"
            },
            &node.setup(),
            if links_out && stolen.is_some() {
                Outcome::Vulnerable
            } else {
                Outcome::Defended
            },
            match &stolen {
                Some(u) => format!(
                    "example.org's logs now hold the id; its owner opened the session as {u}"
                ),
                None => "no Referer leaves the page, so the id in its URL stays on this site (browsers' own default, strict-origin-when-cross-origin, would send only the origin)".to_string(),
            },
        );
    }
    Ok(())
}

/// `url` with the value of its `;sid=` cut to six characters.
fn mask_sid(url: &str) -> String {
    match url.split_once(";sid=") {
        Some((head, sid)) => format!("{head};sid={}", short(sid)),
        None => url.to_string(),
    }
}

/// The `Referer` a browser sends from `page` to the cross-origin `target`
/// under `policy` (the page's `Referrer-Policy`; `None`: the browser
/// default, `strict-origin-when-cross-origin`).
pub fn referer_for(policy: Option<&str>, page: &str, target: &str) -> Option<String> {
    let origin = |u: &str| -> String {
        let after_scheme = u.find("://").map_or(0, |i| i + 3);
        let end = u[after_scheme..]
            .find('/')
            .map_or(u.len(), |i| after_scheme + i);
        format!("{}/", &u[..end])
    };
    let downgrade = page.starts_with("https://") && target.starts_with("http://");
    let same_origin = origin(page) == origin(target);
    let full = page.split('#').next().unwrap_or(page).to_string();
    match policy.map(str::trim) {
        Some("no-referrer") => None,
        Some("unsafe-url") => Some(full),
        Some("origin") => Some(origin(page)),
        Some("same-origin") => same_origin.then_some(full),
        Some("no-referrer-when-downgrade") => (!downgrade).then_some(full),
        Some("strict-origin") => (!downgrade).then(|| origin(page)),
        Some("origin-when-cross-origin") => Some(if same_origin { full } else { origin(page) }),
        // strict-origin-when-cross-origin, and the default.
        _ if same_origin => Some(full),
        _ => (!downgrade).then(|| origin(page)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_follows_the_policy() {
        let page = "http://127.0.0.1:8081/;sid=abc";
        let out = "https://example.org/";
        assert_eq!(referer_for(Some("no-referrer"), page, out), None);
        assert_eq!(
            referer_for(Some("unsafe-url"), page, out).as_deref(),
            Some(page)
        );
        assert_eq!(
            referer_for(None, page, out).as_deref(),
            Some("http://127.0.0.1:8081/")
        );
        assert_eq!(
            referer_for(None, page, "http://127.0.0.1:8081/x").as_deref(),
            Some(page)
        );
    }

    #[test]
    fn browsers_keep_secure_cookies_off_plain_http() {
        assert!(!browser_sends_over_http(
            "SLSESSION=x; Path=/; HttpOnly; SameSite=Lax; Secure"
        ));
        assert!(browser_sends_over_http(
            "SLSESSION=x; Path=/; HttpOnly; SameSite=Lax"
        ));
    }

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
