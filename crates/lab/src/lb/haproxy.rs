//! HAProxy in front of the nodes: the configuration the lab writes for
//! Debian's haproxy (2.6), and its runtime API over the stats socket.
//!
//! ## The file, section by section
//!
//! - `global`: `stats socket <run>/lb/haproxy.sock mode 600 level admin` is
//!   the *runtime API*: a Unix socket only the lab's user can open, where
//!   one-line commands read and change the running state (`show stat`,
//!   `set server nodes/node-2 state drain`). Logs go to stderr, the run
//!   folder's `logs/lb.log`, at level `notice` (server state changes, not
//!   every request).
//! - `defaults`: HTTP mode, `option forwardfor` (the nodes trust the LB's
//!   `X-Forwarded-For`, as with sessionlab-lb), `retries 2` with `option
//!   redispatch 1`: a request whose server refuses the connection is tried
//!   again *on another server* at once, even if a cookie pinned it, which is
//!   what keeps a user of a killed node served. Timeouts match
//!   sessionlab-lb's defaults (connect 1 s, server 30 s, keep-alive 60 s).
//! - `frontend app`: the public port. `frontend admin`: the LB admin port
//!   becomes HAProxy's own read-only stats page (`/`), `monitor-uri
//!   /healthz`, and its Prometheus exporter (`/metrics`).
//! - `backend nodes`: the translation of the mode's strategy
//!   ([`super::Balance`]); health checks `option httpchk GET /healthz` with
//!   sessionlab-lb's rise/fall (2/3, every second); one `server` line per
//!   node. For the sticky modes `cookie SLSRV insert indirect nocache`:
//!   HAProxy adds its own cookie naming the server (`indirect`: never passed
//!   to the node; `nocache`: responses that set it are marked uncacheable,
//!   so a shared cache cannot hand one user's pin to another).
//!
//! ## The runtime API
//! One command per connection: write the line, read until HAProxy closes.
//! `show stat` is CSV with a header naming its columns; the lab reads the
//! columns by name (`svname`, `status`, `stot`, ...), so a version that
//! adds columns still parses. `drain` keeps the users whose cookie names
//! the server (HAProxy's `DRAIN` state: weight 0, persistence honoured),
//! exactly sessionlab-lb's drain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sessionlab_wire::lb_admin::{BackendList, BackendState, BackendView};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Balance, Plan};
use crate::error::{LabError, Result};

/// The backend's name in the file and in runtime API commands.
pub const BACKEND: &str = "nodes";
/// The cookie HAProxy inserts in the sticky modes.
pub const STICKY_COOKIE: &str = "SLSRV";
/// The override for the binary.
pub const BIN_ENV: &str = "SESSIONLAB_HAPROXY_BIN";
/// The longest path a Unix socket address holds (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The most the lab reads of one runtime API answer.
const MAX_ANSWER: u64 = 1 << 20;
/// How long one runtime API command may take.
const API_TIMEOUT: Duration = Duration::from_secs(3);

/// Debian's haproxy, or the error naming the package.
pub fn find() -> Result<PathBuf> {
    super::system_binary("haproxy", BIN_ENV, "haproxy")
}

/// The stats socket (runtime API) in `dir`.
pub fn socket(dir: &Path) -> PathBuf {
    dir.join("haproxy.sock")
}

/// The command line: foreground (`-db`), the generated file.
pub fn args(dir: &Path) -> Vec<String> {
    vec![
        "-db".into(),
        "-f".into(),
        dir.join("haproxy.cfg").to_string_lossy().into_owned(),
    ]
}

/// `haproxy -c -f FILE`: the file is valid for this haproxy.
pub fn validate(program: &Path, dir: &Path) -> Result<()> {
    let file = dir.join("haproxy.cfg");
    let args = [
        "-c".to_string(),
        "-f".into(),
        file.to_string_lossy().into_owned(),
    ];
    super::check_config(program, &args, "haproxy", &file)
}

/// A value for a `req.cook()` argument or an ACL pattern: HAProxy's
/// argument syntax has no quoting we need, so anything but a cookie-name
/// token is refused.
fn token(s: &str, what: &str) -> Result<String> {
    match !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        true => Ok(s.to_string()),
        false => Err(LabError::InvalidArgument(format!(
            "--lb haproxy: {what} `{s}` has characters the generated file would need to quote"
        ))),
    }
}

/// The generated `haproxy.cfg`.
pub fn config(plan: &Plan<'_>) -> Result<String> {
    config_with(plan, plan.balance())
}

/// The file with `balance` in place of the mode's strategy.
fn config_with(plan: &Plan<'_>, balance: Balance) -> Result<String> {
    let st = plan.state;
    let sock = socket(plan.dir);
    let sock_text = sock.to_string_lossy();
    if sock_text.len() > MAX_SOCKET_PATH {
        return Err(LabError::InvalidArgument(format!(
            "--run-dir: the HAProxy stats socket {sock_text} is longer than a Unix socket \
             path may be ({MAX_SOCKET_PATH} bytes); use a shorter run folder"
        )));
    }
    let cookie = token(plan.session_cookie, "the session cookie name")?;
    let strategy = st.mode.preset().lb_strategy;
    let mut out = format!(
        "# Generated by sessionlab for a {mode} cluster of {n} nodes (strategy {strategy});\n\
         # `sessionlab config lb` prints it. The lab rewrites it at every `up`:\n\
         # copy it to change it. HAProxy's manual: https://docs.haproxy.org/2.6/configuration.html\n\
         \n\
         global\n\
         \x20   # The runtime API: `echo 'show stat' | socat stdio {sock_text}`\n\
         \x20   stats socket {sock_text} mode 600 level admin\n\
         \x20   stats timeout 10s\n\
         \x20   log stderr format raw local0 notice\n\
         \x20   maxconn 4096\n\
         \n\
         defaults\n\
         \x20   mode http\n\
         \x20   log global\n\
         \x20   option httplog\n\
         \x20   option dontlognull\n\
         \x20   # The nodes trust X-Forwarded-For from 127.0.0.1 (--trusted-proxy).\n\
         \x20   option forwardfor\n\
         \x20   # A refused connection is retried on another server, cookie or not;\n\
         \x20   # so is a request a killed node's kept-alive connection swallowed\n\
         \x20   # (empty-response: the request was sent, so this is also a POST's retry).\n\
         \x20   retries 2\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure empty-response\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 30s\n\
         \x20   timeout http-request 10s\n\
         \x20   timeout http-keep-alive 60s\n\
         \x20   timeout check 500ms\n\
         \x20   # sessionlab-lb's health defaults: every 1 s, 2 to rise, 3 to fall.\n\
         \x20   default-server inter 1s rise 2 fall 3\n\
         \n\
         frontend app\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   default_backend {BACKEND}\n\
         \n\
         # Where sessionlab-lb has its admin API: HAProxy's read-only stats page,\n\
         # a health URI and the Prometheus exporter.\n\
         frontend admin\n\
         \x20   bind 127.0.0.1:{admin}\n\
         \x20   monitor-uri /healthz\n\
         \x20   http-request use-service prometheus-exporter if {{ path /metrics }}\n\
         \x20   stats enable\n\
         \x20   stats uri /\n\
         \x20   stats refresh 2s\n\
         \n\
         backend {BACKEND}\n",
        mode = st.mode,
        n = st.nodes.len(),
        port = st.lb.port,
        admin = st.lb.admin_port,
    );
    let lines: &[String] = &match balance {
        Balance::RoundRobin => vec!["balance roundrobin".into()],
        Balance::Random => vec!["balance random".into()],
        Balance::LeastConn => vec!["balance leastconn".into()],
        Balance::StickyCookie => vec![
            "balance roundrobin".into(),
            "# Cookie insert: HAProxy pins a user to a server with a cookie of its own.".into(),
            format!("cookie {STICKY_COOKIE} insert indirect nocache httponly"),
        ],
        Balance::StickyRoute => {
            let mut v = vec![
                "balance roundrobin".into(),
                "# The node's id is the session id's suffix (<id>.<node>, Tomcat's jvmRoute)."
                    .into(),
            ];
            for n in &st.nodes {
                let id = token(&n.id, "the node id")?;
                v.push(format!(
                    "use-server {id} if {{ req.cook({cookie}) -m end .{id} }}"
                ));
            }
            v
        }
        Balance::ConsistentHash | Balance::BoundedHash => {
            let mut v = vec![
                "# A hash of the session cookie on a consistent ring; without the".into(),
                "# cookie (before login) HAProxy falls back to round-robin.".into(),
                format!("balance hash req.cook({cookie})"),
                "hash-type consistent".into(),
            ];
            if balance == Balance::BoundedHash {
                v.push("# Bounded loads: no server above 125% of the average.".into());
                v.push("hash-balance-factor 125".into());
            }
            v
        }
    };
    for l in lines {
        out.push_str(&format!("    {l}\n"));
    }
    out.push_str(
        "    option httpchk GET /healthz\n\
         \x20   http-check expect status 200\n",
    );
    for n in &st.nodes {
        let id = token(&n.id, "the node id")?;
        let cookie = match balance {
            Balance::StickyCookie => format!(" cookie {id}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "    server {id} 127.0.0.1:{} check{cookie}\n",
            n.app_port
        ));
    }
    Ok(out)
}

/// One runtime API command; HAProxy's answer.
pub async fn command(socket: &Path, line: &str) -> Result<String> {
    let err = |detail: String| LabError::Api {
        target: format!("HAProxy's runtime API ({}): `{line}`", socket.display()),
        detail,
    };
    let work = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| err(e.to_string()))?;
        s.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| err(e.to_string()))?;
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_ANSWER)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(API_TIMEOUT, work)
        .await
        .map_err(|_| err(format!("no answer within {API_TIMEOUT:?}")))?
}

/// `set server nodes/ID state drain|ready`.
pub async fn drain(socket: &Path, id: &str, drain: bool) -> Result<()> {
    let id = token(id, "the node id")?;
    let to = if drain { "drain" } else { "ready" };
    let line = format!("set server {BACKEND}/{id} state {to}");
    let answer = command(socket, &line).await?;
    match answer.trim() {
        "" => Ok(()),
        refused => Err(LabError::Api {
            target: format!("HAProxy's runtime API: `{line}`"),
            detail: refused.to_string(),
        }),
    }
}

/// HAProxy's view of the nodes (`show stat`), in the LB admin API's types
/// so `status` and the dashboard read it like sessionlab-lb's.
pub async fn backends(socket: &Path, strategy: &str) -> Result<BackendList> {
    let csv = command(socket, "show stat").await?;
    Ok(BackendList {
        strategy: format!("haproxy: {strategy}"),
        backends: parse_stat(&csv),
        discovery: None,
    })
}

/// The servers of [`BACKEND`] in a `show stat` CSV answer.
pub fn parse_stat(csv: &str) -> Vec<BackendView> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(status)) = (col("pxname"), col("svname"), col("status")) else {
        return Vec::new();
    };
    let num = |fields: &[&str], name: &str| -> u64 {
        col(name)
            .and_then(|i| fields.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    lines
        .map(|l| l.split(',').collect::<Vec<&str>>())
        .filter(|f| {
            f.get(px) == Some(&BACKEND)
                && f.get(sv)
                    .is_some_and(|s| *s != "BACKEND" && *s != "FRONTEND")
        })
        .map(|f| {
            let st = f.get(status).copied().unwrap_or("");
            BackendView {
                id: f[sv].to_string(),
                state: if st.starts_with("UP") || st.starts_with("DRAIN") || st == "no check" {
                    BackendState::Up
                } else {
                    BackendState::Down
                },
                draining: st.starts_with("DRAIN"),
                in_flight: num(&f, "scur"),
                requests: num(&f, "stot"),
                errors: num(&f, "econ") + num(&f, "eresp"),
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::LbKind;
    use crate::lb::tests::{STRATEGIES_BEYOND_PRESETS, installed, sample};
    use crate::preset::Mode;
    use std::collections::BTreeSet;

    fn generated(mode: Mode, dir: &Path) -> String {
        let st = sample(mode, LbKind::Haproxy, 3);
        config(&Plan {
            state: &st,
            dir,
            session_cookie: "SLSESSION",
            drained: &BTreeSet::new(),
        })
        .unwrap()
    }

    #[test]
    fn sticky_modes_insert_a_cookie_and_replicated_ones_round_robin() {
        let dir = Path::new("/run/lb");
        let sticky = generated(Mode::StickyReplicated, dir);
        for line in [
            "    stats socket /run/lb/haproxy.sock mode 600 level admin\n",
            "    bind 127.0.0.1:8080\n",
            "    bind 127.0.0.1:8078\n",
            "    cookie SLSRV insert indirect nocache httponly\n",
            "    option redispatch 1\n",
            "    retries 2\n",
            "    retry-on conn-failure empty-response\n",
            "    option httpchk GET /healthz\n",
            "    server node-1 127.0.0.1:8081 check cookie node-1\n",
            "    server node-3 127.0.0.1:8083 check cookie node-3\n",
        ] {
            assert!(sticky.contains(line), "{line:?} missing from\n{sticky}");
        }
        let rr = generated(Mode::Replicated, dir);
        assert!(rr.contains("    balance roundrobin\n"), "{rr}");
        assert!(!rr.contains("cookie SLSRV"), "{rr}");
        assert!(
            rr.contains("    server node-2 127.0.0.1:8082 check\n"),
            "{rr}"
        );
    }

    #[test]
    fn hashing_strategies_hash_the_session_cookie() {
        let mut st = sample(Mode::Replicated, LbKind::Haproxy, 2);
        let dir = Path::new("/r");
        let none = BTreeSet::new();
        let plan = |st: &crate::runfolder::ClusterState| {
            config(&Plan {
                state: st,
                dir,
                session_cookie: "SLSESSION",
                drained: &none,
            })
        };
        assert!(!plan(&st).unwrap().contains("balance hash"));
        st.mode = Mode::Sticky;
        assert!(plan(&st).unwrap().contains("cookie SLSRV insert"));
        let hashed = config_for(&st, "consistent-hash", dir);
        assert!(
            hashed.contains("    balance hash req.cook(SLSESSION)\n"),
            "{hashed}"
        );
        assert!(hashed.contains("    hash-type consistent\n"), "{hashed}");
        assert!(!hashed.contains("cookie node-1"), "{hashed}");
        let bounded = config_for(&st, "bounded-hash", dir);
        assert!(
            bounded.contains("    hash-balance-factor 125\n"),
            "{bounded}"
        );
        let routed = config_for(&st, "sticky-route", dir);
        assert!(
            routed.contains("    use-server node-2 if { req.cook(SLSESSION) -m end .node-2 }\n"),
            "{routed}"
        );
    }

    #[test]
    fn a_long_run_folder_or_an_odd_cookie_name_is_refused_by_name() {
        let st = sample(Mode::Sticky, LbKind::Haproxy, 1);
        let long = PathBuf::from(format!("/{}", "d".repeat(120)));
        let none = BTreeSet::new();
        let err = config(&Plan {
            state: &st,
            dir: &long,
            session_cookie: "SLSESSION",
            drained: &none,
        })
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("--run-dir:"), "{err}");
        let err = config(&Plan {
            state: &st,
            dir: Path::new("/r"),
            session_cookie: "A B",
            drained: &none,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("`A B`"), "{err}");
    }

    #[test]
    fn show_stat_is_read_by_column_name() {
        let csv = "# pxname,svname,qcur,scur,stot,econ,eresp,status,weight\n\
                   app,FRONTEND,,0,10,,,OPEN,\n\
                   nodes,node-1,0,1,7,0,1,UP,1\n\
                   nodes,node-2,0,0,3,2,0,DOWN,1\n\
                   nodes,node-3,0,0,0,0,0,DRAIN,0\n\
                   nodes,BACKEND,0,1,10,2,1,UP,2\n";
        let b = parse_stat(csv);
        let ids: Vec<&str> = b.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["node-1", "node-2", "node-3"]);
        assert_eq!(
            (b[0].state, b[0].requests, b[0].errors),
            (BackendState::Up, 7, 1)
        );
        assert_eq!((b[1].state, b[1].errors), (BackendState::Down, 2));
        assert!(b[2].draining && b[2].state == BackendState::Up);
        assert_eq!(b[0].in_flight, 1);
    }

    /// The generated file passes `haproxy -c` for every mode, where
    /// haproxy is installed (scripts/test.sh installs it).
    #[test]
    fn haproxy_accepts_the_generated_file_for_every_mode() {
        let Some(program) = installed(find(), "haproxy", "haproxy -c") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        for mode in Mode::ALL {
            std::fs::write(dir.path().join("haproxy.cfg"), generated(mode, dir.path())).unwrap();
            validate(&program, dir.path()).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        let st = sample(Mode::Sticky, LbKind::Haproxy, 2);
        for strategy in STRATEGIES_BEYOND_PRESETS {
            let text = config_for(&st, strategy, dir.path());
            std::fs::write(dir.path().join("haproxy.cfg"), &text).unwrap();
            validate(&program, dir.path()).unwrap_or_else(|e| panic!("{strategy}: {e}\n{text}"));
        }
    }

    /// The file for `strategy` (which no preset may use yet).
    fn config_for(st: &crate::runfolder::ClusterState, strategy: &str, dir: &Path) -> String {
        let plan = Plan {
            state: st,
            dir,
            session_cookie: "SLSESSION",
            drained: &BTreeSet::new(),
        };
        config_with(&plan, strategy.parse().unwrap()).unwrap()
    }
}
