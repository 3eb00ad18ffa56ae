//! `sessionlab study churn`: what adding or removing one node does to
//! where users land, per LB strategy, and what each move costs per mode.
//!
//! Scaling out is supposed to be free. It is not, for anything that keeps
//! users on "their" node: a hash that maps session ids to nodes changes
//! when the node list does (ingress-nginx #4475: scaling 1 -> 2 pods sent
//! half of the users to the wrong pod), and a move costs whatever the mode
//! keeps on one node (a local session is lost; a replicated one is not).
//!
//! For every (mode, strategy) cell the study brings up a fresh cluster of
//! `--from` nodes in its own run folder (the mode gives the nodes' flags,
//! the strategy replaces the mode's LB strategy), and a population of
//! users, each with its own cookie jar ([`super::probe`]). Then, one
//! increment per user at each step:
//!
//! | step | what changed before it | what it shows |
//! |---|---|---|
//! | `first`, `settle` | nothing: the first request creates the session (the LB has no cookie to go by yet, so it picks round-robin), the second goes where the strategy sends that cookie | (not counted) |
//! | `steady` | nothing | moves and losses with no change at all: round-robin moves everyone, a hash on a node-made id moves most |
//! | `add` | `sessionlab scale --nodes TO` (one node added to the LB) | the share remapped by the new node list |
//! | `remove` | node-1 removed from the LB and killed | the share remapped by the loss |
//!
//! A user *moved* when another node answered than the one before; it
//! *lost* when the counter did not continue from its last answer (the
//! session was gone, or behind: under `--replication-ack none` the last
//! write of a SIGKILLed node may not have left it); it was *refused*
//! when the answer carried no counter (a 503 from `--sticky-strict`).
//!
//! What the study cannot show on its own: which moves a person can live
//! with. In all-to-all modes a move costs nothing visible here (the copy
//! was already there; the cost is on the replication path, see `compare`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use super::probe::{Outcome, Probe};
use crate::cluster::{Binaries, Lab, UpOptions};
use crate::error::{LabError, Result};
use crate::ports::PortBases;
use crate::preset::Mode;

/// `sessionlab study churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Nodes before the change.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=15))]
    pub from: u16,
    /// Nodes after one is added (more than --from, at most 16).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=16))]
    pub to: u16,
    /// LB strategies to compare: round-robin, random, least-conn,
    /// sticky-cookie, consistent-hash, maglev; `+bounded` adds
    /// --hash-balance-factor 1.25 to a hash strategy, `+strict` adds
    /// --sticky-strict to a sticky one.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "round-robin,sticky-cookie,sticky-cookie+strict,consistent-hash,consistent-hash+bounded,maglev"
    )]
    pub strategies: Vec<StrategyVariant>,
    /// Modes whose node flags the clusters run with (where sessions live):
    /// `sticky` keeps them in one node's memory, `sticky-replicated` copies
    /// them to every node.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Mode::Sticky, Mode::StickyReplicated])]
    pub modes: Vec<Mode>,
    /// Users [default: 300; --quick: 60].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5_000))]
    pub users: Option<u32>,
    /// Requests in flight at once through the LB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Fewer users (60), for a first look in about a minute.
    #[arg(long)]
    pub quick: bool,
    /// Where report.md and report.json are written.
    #[arg(long, default_value = "sessionlab-study-churn")]
    pub out: PathBuf,
    /// Folder with the sessionlab-node and sessionlab-lb binaries.
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// An LB strategy with its options, as the study names it
/// (`consistent-hash+bounded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyVariant {
    pub strategy: &'static str,
    pub bounded: bool,
    pub strict: bool,
}

/// The balance factor `+bounded` means (HAProxy's common 125).
pub const BOUNDED_FACTOR: &str = "1.25";

const HASHED: [&str; 2] = ["consistent-hash", "maglev"];
const STICKY: [&str; 3] = ["sticky-cookie", "consistent-hash", "maglev"];
const STRATEGIES: [&str; 6] = [
    "round-robin",
    "random",
    "least-conn",
    "sticky-cookie",
    "consistent-hash",
    "maglev",
];

impl FromStr for StrategyVariant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let mut parts = s.split('+');
        let name = parts.next().unwrap_or_default();
        let strategy = STRATEGIES.iter().find(|&&k| k == name).ok_or_else(|| {
            format!(
                "unknown strategy {name:?} (valid: {})",
                STRATEGIES.join(", ")
            )
        })?;
        let mut v = StrategyVariant {
            strategy,
            bounded: false,
            strict: false,
        };
        for option in parts {
            match option {
                "bounded" if HASHED.contains(strategy) => v.bounded = true,
                "strict" if STICKY.contains(strategy) => v.strict = true,
                "bounded" => return Err(format!("{name} is not a hash strategy: no +bounded")),
                "strict" => return Err(format!("{name} is not a sticky strategy: no +strict")),
                other => {
                    return Err(format!(
                        "unknown option +{other} (valid: +bounded, +strict)"
                    ));
                }
            }
        }
        if v.bounded && v.strict {
            return Err("+bounded and +strict contradict each other".into());
        }
        Ok(v)
    }
}

impl fmt::Display for StrategyVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.strategy)?;
        if self.bounded {
            f.write_str("+bounded")?;
        }
        if self.strict {
            f.write_str("+strict")?;
        }
        Ok(())
    }
}

impl StrategyVariant {
    /// The LB flags this variant adds (a later `--strategy` wins).
    pub fn lb_args(&self) -> Vec<String> {
        let mut args = vec!["--strategy".to_string(), self.strategy.to_string()];
        if self.bounded {
            args.extend(["--hash-balance-factor".into(), BOUNDED_FACTOR.into()]);
        }
        if self.strict {
            args.push("--sticky-strict".into());
        }
        args
    }
}

/// One step's figures over every user.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StepFigures {
    pub step: String,
    pub users: usize,
    pub moved: usize,
    pub lost: usize,
    pub refused: usize,
    /// Which node answered how many users.
    pub answered_by: BTreeMap<String, usize>,
}

impl StepFigures {
    fn of(step: &str, outcomes: &[(Outcome, Option<String>)]) -> Self {
        let mut f = StepFigures {
            step: step.into(),
            users: outcomes.len(),
            ..StepFigures::default()
        };
        for (o, node) in outcomes {
            f.moved += usize::from(o.moved);
            f.lost += usize::from(o.lost);
            f.refused += usize::from(o.refused);
            if let Some(n) = node {
                *f.answered_by.entry(n.clone()).or_default() += 1;
            }
        }
        f
    }

    /// `part` of the users, in percent.
    pub fn share(&self, part: usize) -> f64 {
        100.0 * part as f64 / self.users.max(1) as f64
    }
}

/// One (mode, strategy) cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub mode: String,
    pub strategy: String,
    pub steps: Vec<StepFigures>,
}

impl Cell {
    pub fn step(&self, name: &str) -> Option<&StepFigures> {
        self.steps.iter().find(|s| s.step == name)
    }
}

/// The whole study, as report.json holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Churn {
    pub from: u16,
    pub to: u16,
    pub users: usize,
    pub removed: String,
    pub cells: Vec<Cell>,
}

/// The node the `remove` step takes away.
const REMOVED: &str = "node-1";

/// Runs the study; returns what to print.
pub async fn run(args: ChurnArgs, health_timeout: Duration, grace: Duration) -> Result<String> {
    if args.to <= args.from {
        return Err(LabError::InvalidArgument(format!(
            "--to ({}) must be more than --from ({})",
            args.to, args.from
        )));
    }
    let users = args.users.unwrap_or(if args.quick { 60 } else { 300 }) as usize;
    let bins = Binaries::locate(args.bin_dir.as_deref())?;
    std::fs::create_dir_all(&args.out).map_err(LabError::io(format!(
        "creating the output folder {}",
        args.out.display()
    )))?;
    let total = args.modes.len() * args.strategies.len();
    let mut cells = Vec::new();
    for mode in &args.modes {
        for strategy in &args.strategies {
            eprintln!(
                "sessionlab: study churn [{}/{total}]: {} with {strategy}, {} -> {} nodes, {users} users",
                cells.len() + 1,
                mode.name(),
                args.from,
                args.to
            );
            let cell =
                one_cell(&args, *mode, strategy, users, &bins, health_timeout, grace).await?;
            eprintln!("sessionlab: study churn:   {}", cell_line(&cell));
            cells.push(cell);
        }
    }
    let churn = Churn {
        from: args.from,
        to: args.to,
        users,
        removed: REMOVED.into(),
        cells,
    };
    let md = markdown(&churn);
    write(&args.out.join("report.md"), md.as_bytes())?;
    let json = serde_json::to_vec_pretty(&churn).map_err(|e| LabError::Io {
        what: "encoding report.json".into(),
        source: std::io::Error::other(e),
    })?;
    write(&args.out.join("report.json"), &json)?;
    Ok(format!(
        "{}\nreport: {} (and report.json)",
        table(&churn).trim_end(),
        args.out.join("report.md").display()
    ))
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(LabError::io(format!("writing {}", path.display())))
}

/// Up, the steps, down, for one cell; down whatever happened.
async fn one_cell(
    args: &ChurnArgs,
    mode: Mode,
    strategy: &StrategyVariant,
    users: usize,
    bins: &Binaries,
    health_timeout: Duration,
    grace: Duration,
) -> Result<Cell> {
    let run_dir = std::env::temp_dir().join(format!(
        "sessionlab-study-{}-{}-{}",
        std::process::id(),
        mode.name(),
        strategy.to_string().replace('+', "-")
    ));
    let lab = Lab::fresh(&run_dir, health_timeout, grace)?;
    let steps = lab
        .then_down(steps(&lab, args, mode, strategy, users, bins))
        .await?;
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(Cell {
        mode: mode.name().into(),
        strategy: strategy.to_string(),
        steps,
    })
}

async fn steps(
    lab: &Lab,
    args: &ChurnArgs,
    mode: Mode,
    strategy: &StrategyVariant,
    users: usize,
    bins: &Binaries,
) -> Result<Vec<StepFigures>> {
    lab.up(&UpOptions {
        mode,
        nodes: usize::from(args.from),
        ports: PortBases::FREE,
        bin_dir: Some(bins.dir.clone()),
        node_args: Vec::new(),
        lb_args: strategy.lb_args(),
        lb: crate::lb::LbKind::Sessionlab,
        tls_port: None,
    })
    .await?;
    let state = lab.rf.load_required()?;
    let base = crate::load::target(&state);
    let admin = format!("127.0.0.1:{}", state.lb.admin_port);
    let http = crate::api::client(reqwest::Client::builder().timeout(Duration::from_secs(5)))?;
    let mut probes: Vec<Probe> = (0..users).map(|_| Probe::default()).collect();
    let concurrency = usize::from(args.concurrency);

    for _first_and_settle in 0..2 {
        round(&http, &base, &mut probes, concurrency).await;
    }
    let mut figures = vec![StepFigures::of(
        "steady",
        &round(&http, &base, &mut probes, concurrency).await,
    )];
    lab.scale(usize::from(args.to)).await?;
    figures.push(StepFigures::of(
        "add",
        &round(&http, &base, &mut probes, concurrency).await,
    ));
    lab.api.lb_remove_backend(&admin, REMOVED).await?;
    lab.kill(REMOVED).await?;
    figures.push(StepFigures::of(
        "remove",
        &round(&http, &base, &mut probes, concurrency).await,
    ));
    Ok(figures)
}

/// One increment per user, `concurrency` at a time; each user's outcome
/// and the node that answered it, in the users' order.
async fn round(
    http: &reqwest::Client,
    base: &str,
    probes: &mut [Probe],
    concurrency: usize,
) -> Vec<(Outcome, Option<String>)> {
    futures::stream::iter(probes.iter_mut())
        .map(|p| async move {
            let seen = p.increment(http, base).await;
            let node = seen.node.clone();
            (p.judge(seen), node)
        })
        .buffered(concurrency)
        .collect()
        .await
}

fn pct(f: &StepFigures, part: usize) -> String {
    format!("{:.0}%", f.share(part))
}

/// The largest share of users one of `nodes` nodes answered, over the
/// even share (1.00 is perfectly even; a node that answered nobody counts).
fn imbalance(f: &StepFigures, nodes: u16) -> f64 {
    let max = f.answered_by.values().copied().max().unwrap_or(0);
    max as f64 * f64::from(nodes) / f.users.max(1) as f64
}

fn cell_line(c: &Cell) -> String {
    c.steps
        .iter()
        .map(|s| {
            format!(
                "{}: moved {}, lost {}, refused {}",
                s.step,
                pct(s, s.moved),
                pct(s, s.lost),
                pct(s, s.refused)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The table `run` prints and report.md opens with.
pub fn table(c: &Churn) -> String {
    let mut out = format!(
        "| mode | strategy | steady: moved / lost | add {} -> {}: moved / lost | most loaded after add (1.00 = even) | remove {}: moved / lost / refused |\n|---|---|---|---|---|---|\n",
        c.from, c.to, c.removed
    );
    for cell in &c.cells {
        let (Some(s), Some(a), Some(r)) =
            (cell.step("steady"), cell.step("add"), cell.step("remove"))
        else {
            continue;
        };
        out.push_str(&format!(
            "| {} | {} | {} / {} | {} / {} | {:.2} | {} / {} / {} |\n",
            cell.mode,
            cell.strategy,
            pct(s, s.moved),
            pct(s, s.lost),
            pct(a, a.moved),
            pct(a, a.lost),
            imbalance(a, c.to),
            pct(r, r.moved),
            pct(r, r.lost),
            pct(r, r.refused),
        ));
    }
    out
}

fn markdown(c: &Churn) -> String {
    format!(
        "# sessionlab study churn: {} -> {} nodes, {} users\n\n\
         Each row is a fresh cluster: the mode's nodes behind the LB with the row's strategy. \
         Every user sends one increment per step; *moved*: another node answered than the one \
         before; *lost*: the counter did not continue from the last answer (session gone, or its last write missing); *refused*: no counter \
         in the answer (503 from `--sticky-strict`). `add` follows `scale --nodes {}`; `remove` \
         follows taking {} out of the LB and killing it. The ideal share moved by a hash when one \
         node joins is 1/{} = {:.0}%.\n\n{}",
        c.from,
        c.to,
        c.users,
        c.to,
        c.removed,
        c.to,
        100.0 / f64::from(c.to),
        table(c)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_variants_parse_and_refuse_nonsense() {
        let v: StrategyVariant = "consistent-hash+bounded".parse().unwrap();
        assert!(v.bounded && !v.strict);
        assert_eq!(v.to_string(), "consistent-hash+bounded");
        assert_eq!(
            v.lb_args(),
            [
                "--strategy",
                "consistent-hash",
                "--hash-balance-factor",
                "1.25"
            ]
        );
        let v: StrategyVariant = "sticky-cookie+strict".parse().unwrap();
        assert_eq!(
            v.lb_args(),
            ["--strategy", "sticky-cookie", "--sticky-strict"]
        );
        for (bad, says) in [
            ("fastest", "unknown strategy"),
            ("round-robin+bounded", "not a hash strategy"),
            ("round-robin+strict", "not a sticky strategy"),
            ("maglev+bounded+strict", "contradict"),
            ("maglev+warm", "unknown option"),
        ] {
            let e = bad.parse::<StrategyVariant>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn step_figures_count_each_outcome_and_the_spread() {
        let moved = Outcome {
            moved: true,
            lost: true,
            refused: false,
        };
        let refused = Outcome {
            refused: true,
            ..Outcome::default()
        };
        let f = StepFigures::of(
            "add",
            &[
                (moved, Some("node-2".into())),
                (Outcome::default(), Some("node-1".into())),
                (Outcome::default(), Some("node-1".into())),
                (refused, None),
            ],
        );
        assert_eq!((f.users, f.moved, f.lost, f.refused), (4, 1, 1, 1));
        assert_eq!(f.answered_by["node-1"], 2);
        assert_eq!(f.share(f.moved), 25.0);
        // The busiest node answered 2 of the 4 users; over 2 nodes that is
        // even, over 4 it is twice the even share.
        assert_eq!(imbalance(&f, 2), 1.0);
        assert_eq!(imbalance(&f, 4), 2.0);
    }
}
