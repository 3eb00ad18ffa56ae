//! Which load balancer stands in front of the nodes: the project's own
//! `sessionlab-lb`, or the HAProxy and nginx people really run
//! (`sessionlab up --lb sessionlab|haproxy|nginx`).
//!
//! A mode of the matrix ([`crate::preset`]) names a *strategy* in the
//! vocabulary of `sessionlab-lb` (`round-robin`, `sticky-cookie`,
//! `consistent-hash`, ...). For HAProxy and nginx the lab translates that
//! strategy into their own configuration language ([`haproxy`],
//! [`nginx`]), writes the file into the run folder (`lb/haproxy.cfg`,
//! `lb/nginx.conf`), starts the server from there as one more child process
//! (pid, start time and log in the run folder like the nodes'), and shows
//! the file with `sessionlab config lb`: the point is that a person learns
//! the real thing, not a wrapper.
//!
//! | the mode says     | sessionlab-lb         | HAProxy 2.6                                  | nginx (OSS)                                         |
//! |-------------------|-----------------------|----------------------------------------------|-----------------------------------------------------|
//! | round-robin       | `--strategy round-robin` | `balance roundrobin`                      | the default of `upstream`                           |
//! | random            | `random`              | `balance random`                             | `random`                                            |
//! | least-conn        | `least-conn`          | `balance leastconn`                          | `least_conn`                                        |
//! | sticky-cookie     | inserts `SLROUTE`     | `cookie SLSRV insert indirect nocache`       | no cookie insert in OSS: the node's route suffix (`--route-suffix`, Tomcat's jvmRoute) picked by a `map` |
//! | sticky-route      | the id's `.node-N`    | `use-server node-N if { req.cook(...) -m end .node-N }` | the same `map` on the suffix             |
//! | consistent-hash, maglev | ring / Maglev   | `balance hash req.cook(SLSESSION)`, `hash-type consistent` | `hash $sl_session consistent` (ketama) |
//! | bounded-hash      | bounded loads         | the same plus `hash-balance-factor 125`      | the ring without bounds (nginx has none)            |
//! | health            | active `/healthz`, rise/fall | `option httpchk GET /healthz`, `inter`/`rise`/`fall` | passive only: `max_fails`/`fail_timeout`  |
//! | failover          | the next candidate    | `retries`, `option redispatch`               | `proxy_next_upstream error timeout http_502 http_503` |
//! | drain             | admin API             | runtime API: `set server be/node-N state drain` | rewrite the file (`down`) and reload (SIGHUP)    |
//! | admin, metrics    | admin API, `/metrics` | stats page, Prometheus exporter, stats socket | none in OSS (NGINX Plus has an API)               |
//!
//! What stays the same whatever the LB: the nodes, their flags (except the
//! route suffix nginx needs for stickiness), the ports, `kill`, `restart`,
//! `partition`, `load` (the users go to the LB's port) and `compare`.
//! What `status` and the dashboard can show depends on what the LB tells:
//! HAProxy's runtime API gives each server's state; nginx OSS says nothing,
//! so the lab shows its own view (the node answers, or not).

mod find;
pub mod haproxy;
pub mod nginx;
mod strategy;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sessionlab_wire::lb_admin::{BackendState, BackendView};
use sessionlab_wire::strategy::Strategy;

use crate::api::{Api, Backends};
use crate::error::{LabError, Result};
use crate::health::Check;
use crate::runfolder::{ClusterState, RunFolder};

pub use find::system_binary;
pub use strategy::Balance;

/// The load balancer of a cluster, as typed after `--lb`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LbKind {
    /// The project's own `sessionlab-lb` (admin API, every strategy).
    #[default]
    Sessionlab,
    /// Debian's HAProxy (package `haproxy`), configured by the lab.
    Haproxy,
    /// Debian's nginx (package `nginx`), configured by the lab.
    Nginx,
}

impl LbKind {
    pub const ALL: [LbKind; 3] = [LbKind::Sessionlab, LbKind::Haproxy, LbKind::Nginx];

    pub fn name(self) -> &'static str {
        match self {
            LbKind::Sessionlab => "sessionlab",
            LbKind::Haproxy => "haproxy",
            LbKind::Nginx => "nginx",
        }
    }

    /// Whether the lab writes this LB's configuration (not sessionlab-lb,
    /// which takes flags).
    pub fn is_foreign(self) -> bool {
        self != LbKind::Sessionlab
    }

    /// The generated configuration's file name in the run folder's `lb/`.
    fn config_name(self) -> Option<&'static str> {
        match self {
            LbKind::Sessionlab => None,
            LbKind::Haproxy => Some("haproxy.cfg"),
            LbKind::Nginx => Some("nginx.conf"),
        }
    }
}

impl fmt::Display for LbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LbKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        LbKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| format!("unknown LB `{s}`; valid: sessionlab, haproxy, nginx"))
    }
}

/// Where the generated files of a foreign LB live: `<run folder>/lb/`,
/// as an absolute path (the LB resolves relative paths against its own
/// working directory, not the lab's).
pub fn dir(rf: &RunFolder) -> Result<PathBuf> {
    let dir = std::path::absolute(rf.root().join("lb")).map_err(LabError::io(format!(
        "resolving the run folder {}",
        rf.root().display()
    )))?;
    plain_path(&dir)?;
    Ok(dir)
}

/// A path the generated HAProxy, nginx and Redis configurations can hold
/// as a bare word. Their three languages quote differently, and a space, a
/// `;`, a `#` or a brace in the run folder's path would split a directive
/// or start a new one; such a path is refused, naming the flag, rather
/// than written into a configuration.
pub fn plain_path(path: &std::path::Path) -> Result<()> {
    let text = path.to_str().ok_or_else(|| {
        LabError::InvalidArgument(format!(
            "--run-dir: {} is not UTF-8, and the LB and Redis configurations name it",
            path.display()
        ))
    })?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+@:,=~%".contains(c);
    match text.chars().find(|c| !plain(*c)) {
        None => Ok(()),
        Some(c) => Err(LabError::InvalidArgument(format!(
            "--run-dir: the run folder's path {text} has {c:?}, which the HAProxy, nginx and \
             Redis configurations would read as syntax; run from (or give --run-dir) a path of \
             letters, digits and / . _ - + @ : , = ~ % only"
        ))),
    }
}

/// The generated configuration file of the cluster's LB (`None` for
/// sessionlab-lb).
pub fn config_path(rf: &RunFolder, kind: LbKind) -> Result<Option<PathBuf>> {
    match kind.config_name() {
        None => Ok(None),
        Some(name) => Ok(Some(dir(rf)?.join(name))),
    }
}

/// What the lab needs to know to generate a foreign LB's configuration:
/// everything comes from the cluster state, so the text is a pure function
/// of it (and the tests read it without starting anything).
pub struct Plan<'a> {
    pub state: &'a ClusterState,
    /// `<run folder>/lb`, absolute.
    pub dir: &'a Path,
    /// The nodes' session cookie name.
    pub session_cookie: &'a str,
    /// Nodes taken out of rotation (nginx: written as `down`).
    pub drained: &'a BTreeSet<String>,
}

impl Plan<'_> {
    pub fn balance(&self) -> Balance {
        self.state.mode.preset().lb_strategy.into()
    }
}

/// The node flags the LB needs beyond the mode's: nginx OSS cannot insert
/// a cookie, so its sticky modes use the route suffix on the session id.
pub fn node_flags(kind: LbKind, strategy: Strategy) -> &'static [&'static str] {
    match (kind, Balance::from(strategy)) {
        (LbKind::Nginx, Balance::StickyCookie) => &["--route-suffix"],
        _ => &[],
    }
}

/// Writes the generated configuration of a foreign LB into `lb/` and
/// returns the program and command line to start it. Checks first that the
/// program is installed (the error names the Debian package) and that the
/// file is valid for it (`haproxy -c`, `nginx -t`), so a mistake shows
/// before anything listens.
pub fn prepare(rf: &RunFolder, state: &ClusterState) -> Result<(PathBuf, Vec<String>)> {
    let kind = state.lb.kind;
    let dir = dir(rf)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let program = match kind {
        LbKind::Sessionlab => {
            return Err(LabError::InvalidArgument(
                "sessionlab-lb takes flags, not a generated file".into(),
            ));
        }
        LbKind::Haproxy => haproxy::find()?,
        LbKind::Nginx => nginx::find()?,
    };
    write_config(rf, state)?;
    let args = match kind {
        LbKind::Haproxy => haproxy::args(&dir),
        _ => nginx::args(&dir),
    };
    match kind {
        LbKind::Haproxy => haproxy::validate(&program, &dir)?,
        _ => nginx::validate(&program, &dir)?,
    }
    Ok((program, args))
}

/// Runs `program` with `args`, a configuration check (`haproxy -c`,
/// `nginx -t`); its complaint, naming `--lb NAME` and the `file`, if it
/// refuses.
fn check_config(program: &Path, args: &[String], name: &str, file: &Path) -> Result<()> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(LabError::io(format!(
            "running {} {}",
            program.display(),
            args[0]
        )))?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::InvalidArgument(format!(
        "--lb {name}: {} {} refused the generated {}: {} {}",
        program.display(),
        args[0],
        file.display(),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// (Re)writes the configuration file from the state.
pub fn write_config(rf: &RunFolder, state: &ClusterState) -> Result<PathBuf> {
    let dir = dir(rf)?;
    let plan = Plan {
        state,
        dir: &dir,
        session_cookie: crate::cluster::node_cookie_name(&state.node_extra_args),
        drained: &state.lb.drained,
    };
    let (text, name) = match state.lb.kind {
        LbKind::Haproxy => (haproxy::config(&plan)?, "haproxy.cfg"),
        LbKind::Nginx => (nginx::config(&plan)?, "nginx.conf"),
        LbKind::Sessionlab => {
            return Err(LabError::InvalidArgument(
                "sessionlab-lb has no generated file".into(),
            ));
        }
    };
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(LabError::io(format!("writing {}", path.display())))?;
    Ok(path)
}

/// What makes the cluster's LB healthy with `backends` up in its view.
pub fn health_check(rf: &RunFolder, state: &ClusterState, backends: Vec<String>) -> Result<Check> {
    let app = format!("127.0.0.1:{}", state.lb.port);
    Ok(match state.lb.kind {
        LbKind::Sessionlab => Check::Lb {
            admin: format!("127.0.0.1:{}", state.lb.admin_port),
            app,
            backends,
        },
        LbKind::Haproxy => Check::Haproxy {
            socket: haproxy::socket(&dir(rf)?),
            app,
            backends,
        },
        LbKind::Nginx => Check::Forwarding { app },
    })
}

/// The LB's own view of its backends, in the admin API's types: asked of
/// sessionlab-lb's admin API or HAProxy's runtime API; `None` from nginx,
/// which has no status to ask.
pub async fn backends(api: &Api, rf: &RunFolder, state: &ClusterState) -> Result<Option<Backends>> {
    let strategy = state.mode.preset().lb_strategy;
    match state.lb.kind {
        LbKind::Sessionlab => api
            .lb_backends(&format!("127.0.0.1:{}", state.lb.admin_port))
            .await
            .map(Some),
        LbKind::Haproxy => haproxy::backends(&haproxy::socket(&dir(rf)?), strategy.as_str())
            .await
            .map(Some),
        LbKind::Nginx => Ok(None),
    }
}

/// What a reader without an LB admin API shows (the dashboard in front of
/// HAProxy or nginx): HAProxy's runtime API view, or for nginx the lab's
/// own (a node is up while its process runs; drained as the lab wrote it),
/// each backend with its app and cluster addresses from the run folder.
pub async fn foreign_view(rf: &RunFolder) -> Result<Backends> {
    let state = rf.load_required()?;
    let strategy = state.mode.preset().lb_strategy;
    let mut view = match state.lb.kind {
        LbKind::Haproxy => {
            haproxy::backends(&haproxy::socket(&dir(rf)?), strategy.as_str()).await?
        }
        kind => Backends {
            strategy: format!(
                "{kind}: {strategy} (the lab's view: {kind} reports no backend state)"
            ),
            backends: state
                .nodes
                .iter()
                .map(|n| BackendView {
                    id: n.id.clone(),
                    state: match n.process.is_some_and(|p| p.is_alive()) {
                        true => BackendState::Up,
                        false => BackendState::Down,
                    },
                    draining: state.lb.drained.contains(&n.id),
                    ..Default::default()
                })
                .collect(),
            discovery: None,
        },
    };
    for b in &mut view.backends {
        if let Some(n) = state.nodes.iter().find(|n| n.id == b.id) {
            b.addr = format!("127.0.0.1:{}", n.app_port);
            b.admin = Some(format!("127.0.0.1:{}", n.cluster_port));
        }
    }
    Ok(view)
}

/// Drains (`true`) or undrains a node in the cluster's LB: sessionlab-lb's
/// admin API, HAProxy's runtime API, or nginx's file rewritten and
/// reloaded. Returns the sentence for the person.
pub async fn drain(
    api: &Api,
    rf: &RunFolder,
    state: &mut ClusterState,
    id: &str,
    on: bool,
) -> Result<String> {
    let said = crate::actions::drained(id, on);
    match state.lb.kind {
        LbKind::Sessionlab => {
            api.lb_drain(&format!("127.0.0.1:{}", state.lb.admin_port), id, on)
                .await?;
            Ok(said)
        }
        LbKind::Haproxy => {
            haproxy::drain(&haproxy::socket(&dir(rf)?), id, on).await?;
            Ok(format!(
                "{said} (HAProxy runtime API: set server {}/{id} state {})",
                haproxy::BACKEND,
                if on { "drain" } else { "ready" }
            ))
        }
        LbKind::Nginx => {
            let record = state
                .lb
                .process
                .filter(|p| p.is_alive())
                .ok_or_else(|| LabError::InvalidArgument("nginx is not running".into()))?;
            let program = state.lb.program.clone().unwrap_or(nginx::find()?);
            match on {
                true => state.lb.drained.insert(id.to_string()),
                false => state.lb.drained.remove(id),
            };
            write_config(rf, state)?;
            nginx::validate(&program, &dir(rf)?)?;
            record.signal(nix::sys::signal::Signal::SIGHUP)?;
            rf.save(state)?;
            Ok(format!(
                "{} {id} in nginx: the file marks it {}, and nginx reloads it (SIGHUP); \
                 OSS nginx has no drain: `down` moves its sticky users too",
                if on { "took" } else { "put back" },
                if on { "`down`" } else { "up again" },
            ))
        }
    }
}

/// `sessionlab config lb`: the generated file of the running cluster's LB,
/// or, for sessionlab-lb (configured by flags), its command line.
pub fn show_config(rf: &RunFolder) -> Result<String> {
    let state = rf.load_required()?;
    match config_path(rf, state.lb.kind)? {
        Some(path) => std::fs::read_to_string(&path).map_err(LabError::io(format!(
            "reading the generated LB configuration {}",
            path.display()
        ))),
        None => Ok(format!(
            "# sessionlab-lb is configured by flags, not a file; the cluster's LB runs as:\n\
             sessionlab-lb {}\n\
             # (its admin token comes from the environment, SESSIONLAB_LB_ADMIN_TOKEN)\n\
             # `sessionlab up --lb haproxy` or `--lb nginx` writes their configuration instead\n",
            shell_words(&state.lb.args)
        )),
    }
}

/// Arguments joined for a shell: quoted where needed.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=.:/,@".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ports::PortBases;
    use crate::preset::Mode;
    use crate::runfolder::{LbState, NodeState};

    #[test]
    fn run_folders_the_configurations_would_misread_are_refused() {
        use std::path::Path;
        assert!(plain_path(Path::new("/home/u/lab/.sessionlab/lb")).is_ok());
        assert!(plain_path(Path::new("/tmp/run-2026_12.03+x@y/lb")).is_ok());
        for bad in [
            "/home/u/My Lab/lb",
            "/x;pid /tmp/evil/lb",
            "/a#b",
            "/a{b}",
            "/a\nb",
            "/a\"b",
        ] {
            let e = plain_path(Path::new(bad)).unwrap_err().to_string();
            assert!(e.starts_with("--run-dir"), "{bad}: {e}");
        }
    }

    /// A cluster state of `n` nodes in `mode` behind `kind`, on fixed ports.
    pub fn sample(mode: Mode, kind: LbKind, n: usize) -> ClusterState {
        ClusterState {
            mode,
            bin_dir: "/bin".into(),
            started_at_unix_ms: 1,
            ports: PortBases::default(),
            node_extra_args: vec![],
            lb_extra_args: vec![],
            lb: LbState {
                port: 8080,
                admin_port: 8078,
                process: None,
                args: vec![],
                kind,
                program: None,
                drained: BTreeSet::new(),
                tls_port: None,
            },
            dashboard: None,
            nodes: (1..=n)
                .map(|i| NodeState {
                    id: format!("node-{i}"),
                    app_port: 8080 + i as u16,
                    cluster_port: 9080 + i as u16,
                    process: None,
                    args: vec![],
                })
                .collect(),
            redis: None,
            redis_ha: None,
            cuts: Default::default(),
            delay_ms: 0,
            skews: Default::default(),
        }
    }

    /// The strategies (by their `--lb` names) the generated files are
    /// checked with beyond the presets' own, which use none of them yet.
    pub const STRATEGIES_BEYOND_PRESETS: [&str; 5] = [
        "consistent-hash",
        "bounded-hash",
        "sticky-route",
        "least-conn",
        "random",
    ];

    /// The foreign LB's binary `find` found, or `None` after saying that
    /// the check `what` is skipped because `program` is not installed.
    pub fn installed(find: Result<PathBuf>, program: &str, what: &str) -> Option<PathBuf> {
        if find.is_err() {
            eprintln!("{program} is not installed: skipping `{what}` (apt-get install {program})");
        }
        find.ok()
    }

    #[test]
    fn kinds_parse_and_print_as_typed() {
        for k in LbKind::ALL {
            assert_eq!(k.name().parse::<LbKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        let err = "traefik".parse::<LbKind>().unwrap_err();
        assert!(err.contains("valid: sessionlab, haproxy, nginx"), "{err}");
        assert!(!LbKind::Sessionlab.is_foreign() && LbKind::Nginx.is_foreign());
    }

    #[test]
    fn only_nginx_sticky_modes_need_the_route_suffix() {
        assert_eq!(
            node_flags(LbKind::Nginx, Strategy::StickyCookie),
            &["--route-suffix"]
        );
        assert!(node_flags(LbKind::Nginx, Strategy::RoundRobin).is_empty());
        assert!(node_flags(LbKind::Haproxy, Strategy::StickyCookie).is_empty());
        assert!(node_flags(LbKind::Sessionlab, Strategy::StickyCookie).is_empty());
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        let args: Vec<String> = ["--listen", "127.0.0.1:8080", "a b", "it's"]
            .map(String::from)
            .into();
        assert_eq!(
            shell_words(&args),
            r"--listen 127.0.0.1:8080 'a b' 'it'\''s'"
        );
    }
}
