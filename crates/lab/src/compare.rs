//! `sessionlab compare`: the same workload and the same faults against
//! every mode, one report.
//!
//! Each way of keeping users logged in across servers loses something
//! different, and the only fair way to show it is to run them side by side
//! under identical conditions. For every mode (a row of the modes matrix,
//! optionally with a variant such as `replicated+ack-all` or
//! `replicated+ack-sent`) `compare`:
//!
//! 1. brings a fresh cluster up in a run folder of its own on free ports
//!    (the same code as `sessionlab up`);
//! 2. runs the same simulated users (same count, pace, mix and seed) with
//!    the same fault timeline ([`crate::load::measure`]; by default node-2
//!    is killed halfway);
//! 3. tears it down (`sessionlab down`) and forgets the run folder (kept,
//!    with its logs, if the mode failed).
//!
//! Then it writes the report ([`crate::compare_report`]). Modes the build
//! can't start are skipped with the reason printed and recorded: a node
//! binary without the mode's flags, a Redis mode without `redis-server`, a
//! fault that needs replication in a mode without it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::cluster::{Binaries, Lab, UpOptions};
use crate::compare_report::{self, Comparison, Outcome, Settings};
use crate::error::{LabError, Result};
use crate::failover::{self, FailoverFigures};
use crate::faultplan::{self, FaultSpec, When};
use crate::lb::LbKind;
use crate::load;
use crate::ports::PortBases;
use crate::preset::{Mode, PRESETS, RedisTopology, mode_names};
use crate::workload::{self, WorkloadArgs};

/// Duration and users of `--quick` (and of the defaults without it).
const QUICK: (Duration, usize) = (Duration::from_secs(8), 20);
const FULL: (Duration, usize) = (Duration::from_secs(20), workload::DEFAULT_USERS);

/// `sessionlab compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Modes to run, in order, comma separated [default: every mode of
    /// `sessionlab modes`]. `MODE+ack-all` is a replicated mode whose nodes
    /// answer a write only after every peer applied it (--replication-ack
    /// all); `MODE+ack-sent`, once it is handed to the transport for every
    /// peer (--replication-ack sent).
    #[arg(long, env = "SESSIONLAB_COMPARE_MODES", value_delimiter = ',')]
    pub modes: Vec<Variant>,
    /// Nodes per cluster.
    #[arg(long, env = "SESSIONLAB_NODES", default_value_t = 3)]
    pub nodes: usize,
    /// The load balancers to put each mode behind, comma separated
    /// (`--lb haproxy,sessionlab`: every mode behind both, one report; a
    /// row is then labelled `MODE/LB`).
    #[arg(
        long,
        env = "SESSIONLAB_COMPARE_LB",
        value_delimiter = ',',
        default_value = "sessionlab"
    )]
    pub lb: Vec<LbKind>,
    /// How long each mode runs [default: 20s; --quick: 8s].
    #[arg(long, env = "SESSIONLAB_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// What the comparison shows, when --modes and --fault do not say:
    /// `kill` (every mode; node-2 killed halfway), `partition` (replicated
    /// and replicated+consistent; the last node cut off from the others
    /// from 30% to 70% of the run: lost updates against refused writes),
    /// `lag` (replicated with acks none, sent and all, and
    /// sticky-replicated; every replication link delayed 5 ms; use with
    /// --think 0ms), `redis-failover` (redis-ha and redis-ha+wait; the
    /// Redis primary SIGKILLed halfway: time until writes succeed again,
    /// sessions and acknowledged writes lost).
    #[arg(long, env = "SESSIONLAB_SCENARIO", value_enum, default_value_t = Scenario::Kill)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Run without faults (without --fault, the --scenario's faults).
    #[arg(long, conflicts_with = "faults")]
    pub no_faults: bool,
    /// The whole comparison in about a minute: 8 s per mode, 20 users
    /// (explicit --duration and --users still win).
    #[arg(long)]
    pub quick: bool,
    /// Where report.md, report.json and the SVG charts are written.
    #[arg(
        long,
        env = "SESSIONLAB_COMPARE_OUT",
        default_value = "sessionlab-compare"
    )]
    pub out: PathBuf,
    /// Folder with sessionlab-node and sessionlab-lb (default: next to this binary).
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
    /// An extra flag for every node of every mode (repeatable).
    #[arg(long = "node-arg", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
    /// An extra flag for the LB of every mode (repeatable).
    #[arg(long = "lb-arg", allow_hyphen_values = true)]
    pub lb_args: Vec<String>,
}

/// `compare --scenario`: the modes and faults a comparison defaults to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every mode; node-2 is killed halfway.
    Kill,
    /// `replicated` against `replicated+consistent`; the last node is cut
    /// off from 30% to 70% of the run.
    Partition,
    /// `replicated` with acks none, sent and all, and `sticky-replicated`;
    /// every replication link delayed 5 ms from the start.
    Lag,
    /// `redis-ha` against `redis-ha+wait`; the Redis primary is SIGKILLed
    /// halfway and the Sentinels promote the replica.
    RedisFailover,
}

impl Scenario {
    /// The modes it runs when --modes is not given.
    pub fn modes(self) -> Vec<Variant> {
        let names: &[&str] = match self {
            Scenario::Kill => return PRESETS.iter().map(|p| Variant::plain(p.mode)).collect(),
            Scenario::Partition => &["replicated", "replicated+consistent"],
            Scenario::Lag => &[
                "replicated",
                "replicated+ack-sent",
                "replicated+ack-all",
                "sticky-replicated",
            ],
            Scenario::RedisFailover => &["redis-ha", "redis-ha+wait"],
        };
        names
            .iter()
            .map(|n| n.parse().expect("the scenario's modes parse"))
            .collect()
    }

    /// Its faults in a cluster of `nodes`.
    pub fn faults(self, nodes: usize) -> Vec<FaultSpec> {
        let at = |action, share| FaultSpec {
            action,
            when: When::Share(share),
        };
        match self {
            Scenario::Kill if nodes >= 2 => {
                vec![at(faultplan::FaultAction::Kill("node-2".into()), 0.5)]
            }
            Scenario::Partition if nodes >= 2 => vec![
                at(
                    faultplan::FaultAction::Partition(format!("node-{nodes}")),
                    0.3,
                ),
                at(faultplan::FaultAction::Heal, 0.7),
            ],
            Scenario::Lag => vec![at(
                faultplan::FaultAction::Delay(Duration::from_millis(5)),
                0.0,
            )],
            Scenario::RedisFailover => vec![at(
                faultplan::FaultAction::Kill(crate::redis_ha::PRIMARY.into()),
                0.5,
            )],
            _ => Vec::new(),
        }
    }
}

/// A mode as `compare` runs it: a row of the matrix, maybe with a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub mode: Mode,
    /// `+ack-sent` or `+ack-all`: the nodes get `--replication-ack=sent|all`.
    pub ack: Option<Ack>,
    /// `+consistent`: the nodes get `--partition-policy=consistent`.
    pub consistent: bool,
    /// `+wait` (redis-ha): the nodes get `--redis-wait=1,100ms`, a `WAIT`
    /// for the replica after every write.
    pub wait: bool,
}

/// What `+wait` gives the nodes: wait for the one replica, at most 100 ms.
pub const REDIS_WAIT: &str = "--redis-wait=1,100ms";

/// The `+ack-...` variants: when a replicated node answers a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ack {
    /// Once handed to the transport for every live peer.
    Sent,
    /// Once every live peer applied it.
    All,
}

impl Ack {
    fn name(self) -> &'static str {
        match self {
            Ack::Sent => "sent",
            Ack::All => "all",
        }
    }
}

impl Variant {
    pub fn plain(mode: Mode) -> Variant {
        Variant {
            mode,
            ack: None,
            consistent: false,
            wait: false,
        }
    }

    /// The label in the report (`replicated+ack-all`).
    pub fn label(&self) -> String {
        self.to_string()
    }

    /// The node flags the variant adds to the mode's own.
    pub fn node_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self
            .ack
            .map(|a| format!("--replication-ack={}", a.name()))
            .into_iter()
            .collect();
        if self.consistent {
            args.push("--partition-policy=consistent".to_string());
        }
        if self.wait {
            args.push(REDIS_WAIT.to_string());
        }
        args
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode.name())?;
        if let Some(a) = self.ack {
            write!(f, "+ack-{}", a.name())?;
        }
        if self.consistent {
            f.write_str("+consistent")?;
        }
        if self.wait {
            f.write_str("+wait")?;
        }
        Ok(())
    }
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut parts = s.trim().split('+');
        let name = parts.next().unwrap_or_default();
        let valid = || {
            format!(
                "valid: {}, and after a replicated mode +ack-sent or +ack-all, +consistent \
                 (replicated+ack-all, replicated+consistent), after redis-ha +wait",
                mode_names()
            )
        };
        let mode = PRESETS
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.mode)
            .ok_or_else(|| format!("unknown mode `{name}`; {}", valid()))?;
        let mut v = Variant::plain(mode);
        for extra in parts {
            if extra == "wait" {
                if mode.preset().redis != RedisTopology::Sentinel {
                    return Err(format!(
                        "`{s}`: +wait waits for a Redis replica, and only redis-ha has one"
                    ));
                }
                v.wait = true;
                continue;
            }
            let ack = match extra {
                "ack-sent" => Some(Ack::Sent),
                "ack-all" => Some(Ack::All),
                "consistent" => None,
                other => return Err(format!("unknown variant `+{other}`; {}", valid())),
            };
            if !mode.preset().replication {
                return Err(format!(
                    "`{s}`: mode {name} does not replicate, so it has no acks to wait for \
                     and no partition policy"
                ));
            }
            match ack {
                Some(_) if v.ack.is_some() => {
                    return Err(format!("`{s}`: one +ack-... variant at most"));
                }
                Some(a) => v.ack = Some(a),
                None if mode.preset().dynamic_membership => {
                    return Err(format!(
                        "`{s}`: +consistent needs a fixed member list, and {name}'s members \
                         join and leave at run time"
                    ));
                }
                None => v.consistent = true,
            }
        }
        Ok(v)
    }
}

/// Whether `program` is an executable file in a folder of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// Why `v` can't run on this machine with these faults, if it can't.
fn skip_reason(v: &Variant, faults: &[FaultSpec]) -> Option<String> {
    let preset = v.mode.preset();
    if preset.redis == RedisTopology::Sentinel && !on_path("redis-sentinel") {
        return Some(format!(
            "mode {} needs Redis Sentinel, and redis-sentinel is not on PATH (Debian/Ubuntu: \
             apt-get install redis-sentinel)",
            preset.name
        ));
    }
    if preset.needs_redis() && !on_path("redis-server") {
        return Some(format!(
            "mode {} needs a Redis server, and redis-server is not on PATH",
            preset.name
        ));
    }
    fault_mismatch(v.mode, faults).or_else(|| redis_fault_mismatch(v.mode, faults))
}

/// A fault on the Redis primary, in a mode without one.
fn redis_fault_mismatch(mode: Mode, faults: &[FaultSpec]) -> Option<String> {
    let preset = mode.preset();
    (preset.redis != RedisTopology::Sentinel)
        .then(|| {
            faults.iter().find(|f| {
                f.action
                    .node()
                    .is_some_and(|n| n == crate::redis_ha::PRIMARY)
            })
        })
        .flatten()
        .map(|f| {
            format!(
                "fault `{}` acts on a Redis primary, and mode {} has none",
                f.action, preset.name
            )
        })
}

/// A fault that needs replication, in a mode without it.
fn fault_mismatch(mode: Mode, faults: &[FaultSpec]) -> Option<String> {
    let preset = mode.preset();
    if preset.replication {
        return None;
    }
    faults
        .iter()
        .find(|f| f.action.needs_replication())
        .map(|f| {
            format!(
                "fault `{}` acts on replication traffic, and mode {} has none",
                f.action, preset.name
            )
        })
}

/// The faults of the comparison: the given ones, none, or the scenario's
/// (by default node-2 killed halfway).
pub fn fault_specs(args: &CompareArgs) -> Vec<FaultSpec> {
    if args.no_faults {
        Vec::new()
    } else if !args.workload.faults.is_empty() {
        args.workload.faults.clone()
    } else {
        args.scenario.faults(args.nodes)
    }
}

/// A fresh run folder for one mode.
fn run_dir_for(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sessionlab-compare-{}-{}",
        std::process::id(),
        label.replace(['+', '/'], "-")
    ))
}

/// A row's label: the mode, and `/LB` when the comparison is not only
/// behind sessionlab-lb (`sticky-replicated/haproxy`).
fn run_label(v: &Variant, lb: LbKind, all: &[LbKind]) -> String {
    match all {
        [LbKind::Sessionlab] => v.label(),
        _ => format!("{}/{lb}", v.label()),
    }
}

/// Why the LB `lb` can't run here, if it can't (not installed).
fn lb_missing(lb: LbKind) -> Option<String> {
    let found = match lb {
        LbKind::Sessionlab => return None,
        LbKind::Haproxy => crate::lb::haproxy::find(),
        LbKind::Nginx => crate::lb::nginx::find(),
    };
    found.err().map(|e| e.to_string())
}

/// Runs `sessionlab compare`; returns what to print (the table).
pub async fn run(args: CompareArgs, health_timeout: Duration, grace: Duration) -> Result<String> {
    let (default_duration, default_users) = if args.quick { QUICK } else { FULL };
    let duration = args.duration.unwrap_or(default_duration);
    let variants: Vec<Variant> = if args.modes.is_empty() {
        args.scenario.modes()
    } else {
        args.modes.clone()
    };
    let bins = Binaries::locate(args.bin_dir.as_deref())?;
    let faults = fault_specs(&args);
    // Check the workload flags once, before any cluster starts.
    args.workload.config(
        "http://127.0.0.1:1".into(),
        duration,
        default_users,
        sessionlab_load::AuthMode::Session,
    )?;
    std::fs::create_dir_all(&args.out).map_err(LabError::io(format!(
        "creating the output folder {}",
        args.out.display()
    )))?;

    let mut outcomes = Vec::new();
    let runs: Vec<(Variant, LbKind)> = variants
        .iter()
        .flat_map(|v| args.lb.iter().map(move |lb| (*v, *lb)))
        .collect();
    for (v, lb) in &runs {
        let label = run_label(v, *lb, &args.lb);
        if let Some(reason) = skip_reason(v, &faults).or_else(|| lb_missing(*lb)) {
            eprintln!("sessionlab: compare: skipping {label}: {reason}");
            outcomes.push(Outcome::Skipped {
                mode: label,
                reason,
            });
            continue;
        }
        eprintln!("sessionlab: compare: {label}");
        let run_dir = run_dir_for(&label);
        let outcome = match one_mode(
            &args,
            v,
            *lb,
            &label,
            &bins,
            &faults,
            duration,
            default_users,
            &run_dir,
            health_timeout,
            grace,
        )
        .await
        {
            Ok(report) => {
                eprintln!(
                    "sessionlab: compare: {label}: {} requests, {} errors, {} sessions lost, \
                     {} stale reads, {} lost updates",
                    report.requests,
                    report.error_total,
                    report.sessions_lost,
                    report.stale_reads,
                    report.lost_updates
                );
                let _ = std::fs::remove_dir_all(&run_dir);
                Outcome::Ran(Box::new(report))
            }
            Err(e) => {
                let reason = format!("{e} (run folder and logs kept in {})", run_dir.display());
                eprintln!("sessionlab: compare: {label} failed: {reason}");
                if matches!(e, LabError::Interrupted) {
                    return Err(e);
                }
                Outcome::Failed {
                    mode: label,
                    reason,
                }
            }
        };
        outcomes.push(outcome);
    }

    let cfg = args.workload.config(
        "http://127.0.0.1".into(),
        duration,
        default_users,
        sessionlab_load::AuthMode::Session,
    )?;
    let comparison = Comparison {
        settings: Settings::new(&cfg, args.nodes, &faults, args.quick, &bins.dir),
        failover: failover_figures(&outcomes, &faults),
        outcomes,
    };
    compare_report::write(&args.out, &comparison)?;
    let failed: Vec<&str> = comparison
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed { mode, .. } => Some(mode.as_str()),
            _ => None,
        })
        .collect();
    let written = format!(
        "report: {} (and report.json, latency_p99.svg, errors.svg, losses.svg)",
        args.out.join("report.md").display()
    );
    if !failed.is_empty() {
        return Err(LabError::InvalidArgument(format!(
            "{} of {} modes failed ({}); {written}",
            failed.len(),
            runs.len(),
            failed.join(", ")
        )));
    }
    Ok(format!(
        "{}\n{written}",
        compare_report::table(&comparison).trim_end()
    ))
}

/// The failover figures of every run, when a fault kills the Redis
/// primary ([`crate::failover`]).
fn failover_figures(outcomes: &[Outcome], faults: &[FaultSpec]) -> Vec<FailoverFigures> {
    let Some(fault) = faults
        .iter()
        .find(|f| f.action.node() == Some(crate::redis_ha::PRIMARY))
    else {
        return Vec::new();
    };
    let fault = fault.action.to_string();
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Ran(r) => failover::figures(r, &fault),
            _ => None,
        })
        .collect()
}

/// Up, measure, down for one mode ([`Lab::then_down`]: down whatever
/// happened, also on Ctrl-C).
#[allow(clippy::too_many_arguments)]
async fn one_mode(
    args: &CompareArgs,
    v: &Variant,
    lb: LbKind,
    label: &str,
    bins: &Binaries,
    faults: &[FaultSpec],
    duration: Duration,
    default_users: usize,
    run_dir: &Path,
    health_timeout: Duration,
    grace: Duration,
) -> Result<sessionlab_load::LoadReport> {
    let lab = Lab::fresh(run_dir, health_timeout, grace)?;
    let work = async {
        let mut node_args = v.node_args();
        node_args.extend(args.node_args.iter().cloned());
        lab.up(&UpOptions {
            mode: v.mode,
            nodes: args.nodes,
            ports: PortBases::FREE,
            bin_dir: Some(bins.dir.clone()),
            tls_port: None,
            node_args,
            lb_args: match lb {
                LbKind::Sessionlab => args.lb_args.clone(),
                _ => Vec::new(),
            },
            lb,
        })
        .await?;
        let state = lab.rf.load_required()?;
        let mut cfg = args.workload.config(
            load::target(&state),
            duration,
            default_users,
            workload::auth_of(v.mode.preset()),
        )?;
        cfg.session_cookie = crate::cluster::node_cookie_name(&state.node_extra_args).to_owned();
        let plan = faultplan::schedule(faults, duration, &state)?;
        load::measure(&lab, label, cfg, plan).await
    };
    lab.then_down(work).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: CompareArgs,
    }

    #[test]
    fn variants_parse_and_refuse_nonsense() {
        let v: Variant = "replicated+ack-all".parse().unwrap();
        assert_eq!(v.mode, Mode::Replicated);
        assert_eq!(v.ack, Some(Ack::All));
        assert_eq!(v.label(), "replicated+ack-all");
        assert_eq!(v.node_args(), vec!["--replication-ack=all"]);
        let v: Variant = "replicated+ack-sent".parse().unwrap();
        assert_eq!(v.label(), "replicated+ack-sent");
        assert_eq!(v.node_args(), vec!["--replication-ack=sent"]);
        let err = "replicated+ack-sent+ack-all"
            .parse::<Variant>()
            .unwrap_err();
        assert!(err.contains("one +ack-"), "{err}");
        assert_eq!(
            "sticky".parse::<Variant>().unwrap(),
            Variant::plain(Mode::Sticky)
        );
        let err = "local+ack-all".parse::<Variant>().unwrap_err();
        assert!(err.contains("does not replicate"), "{err}");
        let err = "nope".parse::<Variant>().unwrap_err();
        assert!(err.contains("valid: local, sticky"), "{err}");
        let err = "replicated+fast".parse::<Variant>().unwrap_err();
        assert!(err.contains("unknown variant `+fast`"), "{err}");
        let err = "backup+consistent".parse::<Variant>().unwrap_err();
        assert!(err.contains("needs a fixed member list"), "{err}");
    }

    #[test]
    fn default_faults_kill_node_2_halfway_and_can_be_replaced_or_dropped() {
        let t = T::try_parse_from(["t", "--modes", "local,sticky-replicated"]).unwrap();
        assert_eq!(t.c.modes.len(), 2);
        let f = fault_specs(&t.c);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].action.to_string(), "kill node-2");
        assert_eq!(f[0].when, When::Share(0.5));
        let t = T::try_parse_from(["t", "--fault", "delay:20ms@0s"]).unwrap();
        assert_eq!(fault_specs(&t.c)[0].action.to_string(), "delay 20ms");
        let t = T::try_parse_from(["t", "--no-faults"]).unwrap();
        assert!(fault_specs(&t.c).is_empty());
        let t = T::try_parse_from(["t", "--nodes", "1"]).unwrap();
        assert!(fault_specs(&t.c).is_empty(), "no node-2 to kill");
        assert!(T::try_parse_from(["t", "--no-faults", "--fault", "heal@1s"]).is_err());
        let t = T::try_parse_from(["t", "--scenario", "partition"]).unwrap();
        let f: Vec<String> = fault_specs(&t.c)
            .iter()
            .map(|f| format!("{}@{:?}", f.action, f.when))
            .collect();
        assert_eq!(f, ["partition node-3@Share(0.3)", "heal@Share(0.7)"]);
        let labels: Vec<String> = t.c.scenario.modes().iter().map(|v| v.label()).collect();
        assert_eq!(labels, ["replicated", "replicated+consistent"]);
        let t = T::try_parse_from(["t", "--scenario", "lag"]).unwrap();
        assert_eq!(fault_specs(&t.c)[0].action.to_string(), "delay 5ms");
        assert_eq!(t.c.scenario.modes()[1].label(), "replicated+ack-sent");
        let t = T::try_parse_from(["t", "--scenario", "redis-failover"]).unwrap();
        assert_eq!(
            fault_specs(&t.c)[0].action.to_string(),
            "kill redis-primary"
        );
        let labels: Vec<String> = t.c.scenario.modes().iter().map(|v| v.label()).collect();
        assert_eq!(labels, ["redis-ha", "redis-ha+wait"]);
        assert_eq!(t.c.scenario.modes()[1].node_args(), [REDIS_WAIT]);
        let err = "redis+wait".parse::<Variant>().unwrap_err();
        assert!(err.contains("only redis-ha"), "{err}");
        let kill = fault_specs(&t.c);
        let reason = redis_fault_mismatch(Mode::Redis, &kill).unwrap();
        assert!(reason.contains("mode redis has none"), "{reason}");
        assert_eq!(redis_fault_mismatch(Mode::RedisHa, &kill), None);
        let t = T::try_parse_from(["t", "--lb", "haproxy,sessionlab"]).unwrap();
        assert_eq!(t.c.lb, [LbKind::Haproxy, LbKind::Sessionlab]);
        let v = Variant::plain(Mode::Sticky);
        assert_eq!(run_label(&v, LbKind::Haproxy, &t.c.lb), "sticky/haproxy");
        assert_eq!(
            run_label(&v, LbKind::Sessionlab, &[LbKind::Sessionlab]),
            "sticky"
        );
        assert!(T::try_parse_from(["t", "--lb", "traefik"]).is_err());
        let t = T::try_parse_from(["t", "--scenario", "partition", "--fault", "heal@1s"]).unwrap();
        assert_eq!(fault_specs(&t.c).len(), 1, "--fault wins over the scenario");
    }

    #[test]
    fn a_fault_on_replication_skips_the_modes_without_it() {
        let delay = vec!["delay:5ms@0s".parse::<FaultSpec>().unwrap()];
        let reason = fault_mismatch(Mode::Local, &delay).unwrap();
        assert!(reason.contains("mode local has none"), "{reason}");
        assert_eq!(fault_mismatch(Mode::Replicated, &delay), None);
        let kill = vec!["kill:node-2@1s".parse::<FaultSpec>().unwrap()];
        assert_eq!(fault_mismatch(Mode::Local, &kill), None);
    }
}
