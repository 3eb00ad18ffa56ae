//! The `sessionlab` command line: flags, subcommands, and what each prints.
//!
//! Parsing is clap derive; every option can also come from a `SESSIONLAB_*`
//! environment variable (shown in `--help`). Unknown subcommands, flags and
//! modes are refused by clap with the list of valid ones; unknown node names
//! by the run folder state, also with the valid ones. The subcommand enum is
//! the one place new commands join (`load`, `compare`, `attack` are next).
//!
//! Results go to stdout, progress and errors to stderr; any error exits 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::actions::{self, Action};
use crate::cluster::{Lab, UpOptions, UpReport};
use crate::error::{LabError, Result};
use crate::lb::{self, LbKind};
use crate::logs::{self, LogsOptions};
use crate::ports::PortBases;
use crate::preset::{Mode, PRESETS};
use crate::runfolder::RunFolder;
use crate::status;
use sessionlab_wire::strategy::Strategy;

/// Run a sessionlab cluster (nodes behind a load balancer) in any session
/// mode, break it and heal it.
#[derive(Debug, Parser)]
#[command(name = "sessionlab", version, propagate_version = true)]
pub struct Cli {
    /// Folder for the cluster's state (pids, ports, effective config, secret)
    /// and per-process logs.
    #[arg(
        long,
        global = true,
        env = "SESSIONLAB_RUN_DIR",
        default_value = ".sessionlab"
    )]
    pub run_dir: PathBuf,
    /// How long to wait for started processes to become healthy.
    #[arg(long, global = true, env = "SESSIONLAB_HEALTH_TIMEOUT", default_value = "30s",
          value_parser = humantime::parse_duration)]
    pub health_timeout: Duration,
    /// How long a stopped process gets after SIGTERM before SIGKILL.
    #[arg(long, global = true, env = "SESSIONLAB_GRACE", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub grace: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start N nodes and the LB in a mode, wait until healthy, print the URLs.
    Up(UpArgs),
    /// Show every process: pid, ports, health, the LB's view, sessions, peers.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop everything (SIGTERM, then SIGKILL after --grace).
    Down,
    /// SIGKILL one node, as in a crash (or `redis`, the redis mode's Redis;
    /// in redis-ha `redis-primary`, whichever server is primary now, or
    /// `redis-1`, `redis-2`, `sentinel-1`..`sentinel-3`).
    Kill { node: String },
    /// Stop a node (if running) and start it again with the same flags
    /// (or `redis`: start the redis mode's Redis again, empty; in redis-ha
    /// `redis-primary`: the stopped server, back as a replica of the
    /// current primary).
    Restart { node: String },
    /// Cut a node's replication traffic to and from other nodes (all by
    /// default). The LB still reaches it.
    Partition {
        node: String,
        /// Cut only the links to these nodes.
        #[arg(long, num_args = 1..)]
        from: Vec<String>,
    },
    /// Remove every partition.
    Heal,
    /// Tell the LB to send no new sessions to a node (for a rolling restart).
    Drain { node: String },
    /// Undo `drain`.
    Undrain { node: String },
    /// Add or remove nodes at run time (replicated modes: rolling restart).
    Scale {
        /// The number of nodes wanted.
        #[arg(long)]
        nodes: usize,
    },
    /// Print the logs of one process (lb, node-1, ...) or of all.
    Logs {
        process: Option<String>,
        /// Keep printing new lines until the cluster is down (or Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines of each log.
        #[arg(short = 'n', long)]
        lines: Option<usize>,
    },
    /// List the modes: LB strategy, where sessions live, what each teaches.
    Modes,
    /// Scripted attacks on nodes of their own, each step saying what
    /// happened and why: `hijack` (and each defence), `fixation`.
    Attack {
        #[command(subcommand)]
        attack: crate::attack::Attack,
    },
    /// Simulated users against the cluster, with faults on a timeline:
    /// latency, errors, sessions lost, stale reads, lost updates, costs.
    Load(crate::load::LoadArgs),
    /// The same workload and faults against every mode (a fresh cluster
    /// each); writes report.md, report.json and SVG charts.
    Compare(crate::compare::CompareArgs),
    /// Print a configuration of the running cluster: `config lb` is the
    /// file the lab generated for HAProxy or nginx (or sessionlab-lb's
    /// command line).
    Config {
        #[command(subcommand)]
        what: ConfigWhat,
    },
    /// Check a history (`load --history FILE`) for the session guarantees:
    /// read-your-writes, monotonic reads and writes, writes follow reads,
    /// lost updates, resurrection; counterexamples as text and SVG.
    /// Exits 1 when one is broken.
    Check(crate::check::CheckArgs),
    /// Questions that need many clusters: `study scale` measures each mode
    /// at growing cluster sizes; `study churn` adds and removes a node under
    /// a population of users, per LB strategy and mode.
    Study {
        #[command(subcommand)]
        study: crate::study::Study,
    },
}

/// What `sessionlab config` prints.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigWhat {
    /// The LB's generated configuration (haproxy.cfg, nginx.conf), as
    /// written into the run folder's lb/.
    Lb,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The session mode.
    #[arg(long, value_enum, env = "SESSIONLAB_MODE", default_value_t = Mode::StickyReplicated)]
    pub mode: Mode,
    /// How many nodes.
    #[arg(long, env = "SESSIONLAB_NODES", default_value_t = 3)]
    pub nodes: usize,
    /// The load balancer: sessionlab-lb, or Debian's haproxy or nginx with
    /// a configuration the lab writes (`sessionlab config lb` shows it).
    #[arg(long, value_enum, env = "SESSIONLAB_LB", default_value_t = LbKind::Sessionlab)]
    pub lb: LbKind,
    /// Folder with sessionlab-node and sessionlab-lb (default: next to this binary).
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// LB port (0 = any free port).
    #[arg(long, env = "SESSIONLAB_LB_PORT", default_value_t = PortBases::default().lb)]
    pub lb_port: u16,
    /// LB admin API port (0 = any free port).
    #[arg(long, env = "SESSIONLAB_ADMIN_PORT", default_value_t = PortBases::default().admin)]
    pub admin_port: u16,
    /// Dashboard port (0 = any free port).
    #[arg(long, env = "SESSIONLAB_DASHBOARD_PORT", default_value_t = PortBases::default().dashboard)]
    pub dashboard_port: u16,
    /// First node app port; node-i gets this + i - 1 (0 = any free ports).
    #[arg(long, env = "SESSIONLAB_NODE_PORT", default_value_t = PortBases::default().node)]
    pub node_port: u16,
    /// First node cluster port; node-i gets this + i - 1 (0 = any free ports).
    #[arg(long, env = "SESSIONLAB_CLUSTER_PORT", default_value_t = PortBases::default().cluster)]
    pub cluster_port: u16,
    /// Mode redis: use this Redis (redis://HOST:PORT) instead of starting a
    /// redis-server of the lab's own.
    #[arg(long, env = "SESSIONLAB_REDIS_URL")]
    pub redis_url: Option<String>,
    /// HTTPS at the LB: the lab makes a CA and a certificate for
    /// localhost/127.0.0.1/::1 in the run folder (tls/), the LB serves
    /// HTTPS on --tls-port and redirects plain HTTP there, and the nodes
    /// mark their cookies Secure.
    #[arg(long, env = "SESSIONLAB_TLS")]
    pub tls: bool,
    /// The LB's HTTPS port with --tls (0 = any free port).
    #[arg(long, env = "SESSIONLAB_TLS_PORT", default_value_t = 8443)]
    pub tls_port: u16,
    /// The nodes' session cookie name, e.g. __Host-SLSESSION (the __Host-
    /// and __Secure- prefixes need --tls).
    #[arg(long, env = "SESSIONLAB_COOKIE_NAME")]
    pub cookie_name: Option<String>,
    /// An extra flag for every node, e.g. --node-arg=--replication-ack=all (repeatable).
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// An extra flag for the LB, e.g. --lb-arg=--health-interval=500ms (repeatable).
    #[arg(long = "lb-arg", allow_hyphen_values = true)]
    pub lb_args: Vec<String>,
}

/// Parses the command line, runs the command, returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessionlab: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let rf = RunFolder::new(&cli.run_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LabError::io("starting the async runtime"))?;
    let mut lab = Lab::new(rf)?;
    lab.health_timeout = cli.health_timeout;
    lab.grace = cli.grace;
    runtime.block_on(run_async(&lab, cli.command))
}

async fn run_async(lab: &Lab, command: Command) -> Result<()> {
    let say = |text: String| println!("{text}");
    match command {
        Command::Up(mut a) => {
            if let Some(url) = a.redis_url.take() {
                a.node_args.push(format!("--redis-url={url}"));
            }
            if let Some(name) = a.cookie_name.take() {
                if let Some(prefix) = ["__Host-", "__Secure-"].into_iter().find(|p| {
                    name.to_ascii_lowercase()
                        .starts_with(&p.to_ascii_lowercase())
                }) {
                    if !a.tls {
                        return Err(LabError::InvalidArgument(format!(
                            "--cookie-name {name}: the {prefix} prefix needs --tls \
                             (browsers accept such a cookie only with Secure, over HTTPS)"
                        )));
                    }
                }
                a.node_args.push(format!("--cookie-name={name}"));
            }
            if a.tls {
                // Behind the HTTPS LB every request is HTTPS (plain HTTP is
                // redirected), so every cookie is Secure.
                a.node_args.push("--secure-cookies".into());
            }
            let opts = UpOptions {
                mode: a.mode,
                nodes: a.nodes,
                ports: PortBases {
                    lb: a.lb_port,
                    admin: a.admin_port,
                    dashboard: a.dashboard_port,
                    node: a.node_port,
                    cluster: a.cluster_port,
                },
                bin_dir: a.bin_dir,
                node_args: a.node_args,
                lb_args: a.lb_args,
                lb: a.lb,
                tls_port: a.tls.then_some(a.tls_port),
            };
            let report = lab.up(&opts).await?;
            say(render_up(&report, lab.rf.root()));
        }
        Command::Status { json } => {
            let st = status::gather(&lab.api, &lab.rf).await?;
            if json {
                say(serde_json::to_string_pretty(&st).unwrap_or_default());
            } else {
                say(status::render(&st).trim_end().to_string());
            }
        }
        Command::Down => match lab.down().await? {
            None => say(format!(
                "no cluster is up in {}; nothing to stop",
                lab.rf.root().display()
            )),
            Some(stopped) => say(format!(
                "stopped {} ({} processes); logs kept in {}",
                stopped.join(", "),
                stopped.len(),
                lab.rf.logs_dir().display()
            )),
        },
        Command::Kill { node } => say(actions::perform(lab, &Action::Kill(node)).await?),
        Command::Restart { node } => say(actions::perform(lab, &Action::Restart(node)).await?),
        Command::Partition { node, from } => {
            say(actions::perform(lab, &Action::Partition { node, from }).await?)
        }
        Command::Heal => say(actions::perform(lab, &Action::Heal).await?),
        Command::Drain { node } => say(actions::perform(lab, &Action::Drain(node)).await?),
        Command::Undrain { node } => say(actions::perform(lab, &Action::Undrain(node)).await?),
        Command::Scale { nodes } => {
            let state = lab.scale(nodes).await?;
            say(format!(
                "the cluster has {} nodes: {}",
                state.nodes.len(),
                state.node_ids().join(", ")
            ));
        }
        Command::Logs {
            process,
            follow,
            lines,
        } => {
            let opts = LogsOptions {
                process,
                follow,
                lines,
            };
            logs::show(&lab.rf, &opts, &mut std::io::stdout().lock())?;
        }
        Command::Modes => say(render_modes().trim_end().to_string()),
        Command::Attack { attack } => say(crate::attack::run(attack).await?),
        Command::Load(a) => say(crate::load::run(lab, a).await?),
        Command::Compare(a) => say(crate::compare::run(a, lab.health_timeout, lab.grace).await?),
        Command::Config { what } => match what {
            ConfigWhat::Lb => say(lb::show_config(&lab.rf)?.trim_end().to_string()),
        },
        Command::Study { study } => {
            say(crate::study::run(study, lab.health_timeout, lab.grace).await?)
        }
        Command::Check(a) => {
            let (text, violations) = crate::check::run(&a)?;
            say(text);
            if violations > 0 {
                return Err(LabError::GuaranteesBroken(violations));
            }
        }
    }
    Ok(())
}

/// The modes matrix as text.
pub fn render_modes() -> String {
    let mut out = String::new();
    for p in &PRESETS {
        out.push_str(&format!(
            "{:<18} LB {:<14} sessions: {}\n{:<18} {}\n",
            p.name, p.lb_strategy, p.sessions_live, "", p.teaches
        ));
    }
    out
}

/// What `up` prints once the cluster is healthy.
pub fn render_up(report: &UpReport, run_dir: &std::path::Path) -> String {
    let st = &report.state;
    let preset = st.mode.preset();
    let app = match st.lb.tls_port {
        Some(port) => format!("https://127.0.0.1:{port}/"),
        None => format!("http://127.0.0.1:{}/", st.lb.port),
    };
    let admin = format!("http://127.0.0.1:{}/", st.lb.admin_port);
    let admin = match st.lb.kind {
        LbKind::Sessionlab => {
            format!("{admin}  (the LB admin API: /admin/v1/backends, /metrics)")
        }
        LbKind::Haproxy => format!(
            "{admin}  (HAProxy's stats page; /metrics: its Prometheus exporter; \
             runtime API on lb/haproxy.sock)"
        ),
        LbKind::Nginx => "-  (OSS nginx has no admin API; the lab shows its own view)".into(),
    };
    let lb_line = match st.lb.kind {
        LbKind::Sessionlab => String::new(),
        kind => format!(
            "\x20 lb      {kind}, configured by the lab: `sessionlab config lb` prints the file\n"
        ),
    };
    let dashboard = st.dashboard.as_ref().map_or_else(
        || "-".to_string(),
        |d| format!("http://127.0.0.1:{}/", d.port),
    );
    let nodes: Vec<String> = st
        .nodes
        .iter()
        .map(|n| format!("{} :{} (cluster :{})", n.id, n.app_port, n.cluster_port))
        .collect();
    let victim = st.nodes.get(1).unwrap_or(&st.nodes[0]).id.clone();
    let mut out = String::new();
    if let Some(port) = st.lb.tls_port {
        let ca = crate::tls::TlsFiles::of(&crate::runfolder::RunFolder::new(run_dir)).ca;
        let ca = std::path::absolute(&ca).unwrap_or(ca);
        out.push_str(&format!(
            "HTTPS: the LB serves https://127.0.0.1:{port}/ (and https://localhost:{port}/) \
             with a certificate from the lab's own CA; http://127.0.0.1:{}/ redirects there (308)\n\
             \x20 CA      {}\n\
             \x20 curl    curl --cacert {} https://127.0.0.1:{port}/healthz\n\
             \x20 browser import the CA as a trusted authority (Firefox: Settings > Privacy & Security > \
             Certificates > View Certificates > Authorities > Import; Chrome: Settings > Privacy and security > \
             Security > Manage certificates > Authorities > Import), or use a separate browser profile.\n\
             \x20         The CA is limited to localhost/127.0.0.1/::1 and its key was never saved.\n",
            st.lb.port,
            ca.display(),
            ca.display(),
        ));
    }
    out.push_str(&format!(
        "cluster up and healthy in {:.2} s: mode {}, {} nodes\n\
         \x20 app     {app}  (log in as alice, bob or carol; password sessionlab)\n\
         \x20 dashboard {dashboard}  (the live dashboard)\n\
         \x20 admin   {admin}\n\
         {lb_line}\
         \x20 nodes   {}\n\
         \x20 mode    LB {}; sessions live in {}\n\
         \x20         {}\n\
         \x20 state   {} (cluster.json: pids, ports, flags; logs/)\n\
         try this:\n\
         \x20 1. open {app} and log in; the page shows the node that served you\n",
        report.took.as_secs_f64(),
        st.mode,
        st.nodes.len(),
        nodes.join(", "),
        preset.lb_strategy,
        preset.sessions_live,
        preset.teaches,
        run_dir.display(),
    ));
    let steps: Vec<String> = match (preset.lb_strategy, preset.replication) {
        _ if preset.redis == crate::preset::RedisTopology::Sentinel => vec![
            "reload a few times: every node serves you, all read the Redis primary the Sentinels name".into(),
            "sessionlab status   shows which Redis server is primary now".into(),
            "sessionlab kill redis-primary   and reload: a few seconds of 503, then the replica is primary and you are still logged in (unless your last write had not reached it)".into(),
            "sessionlab restart redis-primary   brings the killed server back, as a replica".into(),
        ],
        _ if preset.needs_redis() => vec![
            "reload a few times: every node serves you, all read the one Redis".into(),
            format!("sessionlab kill {victim}   and reload: still logged in (nodes keep nothing)"),
            "sessionlab kill redis   and reload: every node answers 503 (degraded); sessionlab restart redis".into(),
        ],
        _ if preset.jwt => vec![
            "log in on the page: it keeps the tokens in the tab and shows the decoded payload".into(),
            format!("sessionlab kill {victim}   and call the API again: the token still works on any node"),
            "sessionlab attack hijack --auth jwt   (logout vs a stolen token)".into(),
        ],
        (Strategy::RoundRobin, false) => vec![
            "reload a few times: other nodes never saw your login, so you are logged out".into(),
        ],
        (_, false) => vec![
            "reload: you stay on the same node (the LB's SLROUTE cookie)".into(),
            format!("sessionlab kill {victim}   (if it served you) and reload: logged out"),
        ],
        (_, true) => vec![
            format!("sessionlab kill {victim}   (if it served you) and reload: still logged in"),
            format!("sessionlab restart {victim}"),
            "sessionlab partition node-1, write on both sides, then sessionlab heal".into(),
        ],
    };
    for (i, step) in steps
        .iter()
        .chain(&[
            "sessionlab status   |   sessionlab logs node-1 --follow".to_string(),
            "sessionlab down".to_string(),
        ])
        .enumerate()
    {
        out.push_str(&format!("  {}. {step}\n", i + 2));
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_mode_lists_the_valid_ones() {
        let err = Cli::try_parse_from(["sessionlab", "up", "--mode", "nope"]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "[possible values: local, sticky, replicated, sticky-replicated, backup, redis, redis-ha, jwt]"
            ),
            "{text}"
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cli = Cli::try_parse_from(["sessionlab", "up"]).unwrap();
        let Command::Up(a) = cli.command else {
            panic!("not up")
        };
        assert_eq!(a.mode, Mode::StickyReplicated);
        assert_eq!(a.nodes, 3);
        // The dashboard has the port the admin listener had before it was
        // a process of its own; the LB's admin API moved next to it.
        assert_eq!(
            (a.lb_port, a.admin_port, a.node_port, a.cluster_port),
            (8080, 8078, 8081, 9081)
        );
        assert_eq!(a.dashboard_port, 8079);
        assert_eq!(cli.run_dir, PathBuf::from(".sessionlab"));
    }

    #[test]
    fn partition_takes_several_from_nodes_and_extra_args_take_flags() {
        let cli = Cli::try_parse_from([
            "sessionlab",
            "partition",
            "node-1",
            "--from",
            "node-2",
            "node-3",
        ])
        .unwrap();
        let Command::Partition { node, from } = cli.command else {
            panic!("not partition")
        };
        assert_eq!(node, "node-1");
        assert_eq!(from, vec!["node-2", "node-3"]);
        let cli = Cli::try_parse_from(["sessionlab", "up", "--node-arg", "--replication-ack=all"])
            .unwrap();
        let Command::Up(a) = cli.command else {
            panic!("not up")
        };
        assert_eq!(a.node_args, vec!["--replication-ack=all"]);
    }

    #[test]
    fn modes_table_lists_every_mode() {
        let text = render_modes();
        for p in &PRESETS {
            assert!(
                text.contains(p.name) && text.contains(p.teaches),
                "{}",
                p.name
            );
        }
    }
}
