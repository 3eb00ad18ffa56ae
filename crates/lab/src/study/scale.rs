//! `sessionlab study scale`: what each mode costs as the cluster grows.
//!
//! `compare` shows what each mode loses at one size. The question of a
//! scale-out is how the costs grow: a copy of every session on every node
//! (all-to-all replication) costs N copies and N-1 messages per write, so
//! it gets dearer with every node; one shared store (Redis) costs the same
//! per write whatever N, and puts the load on the store; a session kept on
//! one node costs nothing to copy and is lost with that node.
//!
//! For every mode and cluster size the study brings up a fresh cluster in
//! its own run folder and gives it **the same load per node**: `--users-per-node`
//! users and `--rate-per-node` requests per second each, so a 16-node cluster
//! gets 8 times what a 2-node one gets, bounded in time (`--duration`) and
//! count (the rate times the duration, plus a margin). Then:
//!
//! | figure | from |
//! |---|---|
//! | throughput, latency p50/p99 | the simulated users ([`crate::load::measure`]) |
//! | replication messages and bytes per write | the growth of the nodes' replication counters over the run, over the writes the users saw answered (logins, increments, cart changes); heartbeats are included, they are a cost of the membership too |
//! | sessions per node, copies per session | the nodes' session gauges after the run, over the nodes and over the users |
//! | memory per node | VmRSS of each node at the end, averaged; the store's (Redis) apart |
//! | CPU per write | `utime + stime` of the nodes and the store over the run, summed, over the writes (the LB's is left out: it is the same in every mode) |
//! | sessions lost on a kill | a population of users (one per `--users-per-node` per node) with one increment each before and after `node-1` is SIGKILLed ([`super::probe`]); a user whose counter did not continue lost its session. The same round once before the kill says what the mode loses with no fault at all (round-robin over local sessions loses them anyway) |
//!
//! `report.md`, `report.json` and SVG charts with the cluster size on the
//! x axis are written to `--out`. Timings are the machine's: the nodes,
//! the LB and the users share its cores, so throughput and latency are
//! comparable across the rows of one run, not with another machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use sessionlab_load::history::OpKind;
use sessionlab_load::{LoadReport, SizeSeries};

use super::probe::{Outcome, Probe};
use crate::cluster::{Binaries, Lab, MAX_NODES, UpOptions};
use crate::error::{LabError, Result};
use crate::ports::PortBases;
use crate::preset::{Mode, RedisTopology};
use crate::workload::{self, WorkloadArgs};

/// `sessionlab study scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Cluster sizes [default: 2,4,8,16; --quick: 2,4].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=MAX_NODES as i64))]
    pub nodes: Vec<u16>,
    /// Modes to measure (where sessions live).
    #[arg(long, value_delimiter = ',', value_enum,
          default_values_t = [Mode::Local, Mode::Sticky, Mode::Replicated, Mode::StickyReplicated, Mode::Redis])]
    pub modes: Vec<Mode>,
    /// Simulated users per node.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub users_per_node: u16,
    /// Requests per second offered per node (all users together).
    #[arg(long, default_value_t = 20.0)]
    pub rate_per_node: f64,
    /// How long each cell's load runs [default: 10s; --quick: 4s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Sizes 2 and 4 (unless --nodes), 4 s per cell: a first look in a few minutes.
    #[arg(long)]
    pub quick: bool,
    /// Where report.md, report.json and the charts are written.
    #[arg(long, default_value = "sessionlab-study-scale")]
    pub out: PathBuf,
    /// Folder with the sessionlab-node and sessionlab-lb binaries.
    #[arg(long, env = "SESSIONLAB_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

/// One (mode, size) cell's figures, as report.json holds them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cell {
    pub mode: String,
    pub nodes: u16,
    pub users: usize,
    pub offered_rps: f64,
    pub requests: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Logins, increments and cart changes answered 2xx/3xx.
    pub writes: u64,
    pub replication_messages_per_write: f64,
    pub replication_bytes_per_write: f64,
    /// Sessions held by all nodes after the run, over the nodes.
    pub sessions_per_node: f64,
    /// Sessions held by all nodes, over the users (N under all-to-all).
    pub copies_per_session: f64,
    /// Mean VmRSS of the nodes at the end, MiB.
    pub memory_per_node_mib: f64,
    /// VmRSS of the store (Redis) at the end, MiB, when the mode has one.
    pub store_memory_mib: Option<f64>,
    /// CPU of the nodes and the store over the run, ms per write.
    pub cpu_ms_per_write: f64,
    /// Users of the kill probe.
    pub kill_users: usize,
    /// Users whose session did not continue with no fault at all.
    pub lost_without_fault: usize,
    /// Users whose session did not continue after node-1's SIGKILL.
    pub lost_after_kill: usize,
    /// Users whose request after the kill got no counter (an error).
    pub refused_after_kill: usize,
}

/// The whole study.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleStudy {
    pub users_per_node: u16,
    pub rate_per_node: f64,
    pub duration_s: f64,
    pub cells: Vec<Cell>,
}

const KILLED: &str = "node-1";

/// Runs the study; returns what to print.
pub async fn run(args: ScaleArgs, health_timeout: Duration, grace: Duration) -> Result<String> {
    if !(args.rate_per_node.is_finite() && args.rate_per_node > 0.0) {
        return Err(LabError::InvalidArgument(format!(
            "--rate-per-node must be above 0, not {}",
            args.rate_per_node
        )));
    }
    let sizes: Vec<u16> = match (&args.nodes[..], args.quick) {
        ([], true) => vec![2, 4],
        ([], false) => vec![2, 4, 8, 16],
        (given, _) => given.to_vec(),
    };
    let duration = args
        .duration
        .unwrap_or(Duration::from_secs(if args.quick { 4 } else { 10 }));
    let bins = Binaries::locate(args.bin_dir.as_deref())?;
    std::fs::create_dir_all(&args.out).map_err(LabError::io(format!(
        "creating the output folder {}",
        args.out.display()
    )))?;
    let total = args.modes.len() * sizes.len();
    let mut cells = Vec::new();
    for mode in &args.modes {
        for &n in &sizes {
            eprintln!(
                "sessionlab: study scale [{}/{total}]: {} with {n} nodes",
                cells.len() + 1,
                mode.name()
            );
            let cell = one_cell(&args, *mode, n, duration, &bins, health_timeout, grace).await?;
            eprintln!("sessionlab: study scale:   {}", cell_line(&cell));
            cells.push(cell);
        }
    }
    let study = ScaleStudy {
        users_per_node: args.users_per_node,
        rate_per_node: args.rate_per_node,
        duration_s: duration.as_secs_f64(),
        cells,
    };
    write(&args.out.join("report.md"), markdown(&study).as_bytes())?;
    let json = serde_json::to_vec_pretty(&study).map_err(|e| LabError::Io {
        what: "encoding report.json".into(),
        source: std::io::Error::other(e),
    })?;
    write(&args.out.join("report.json"), &json)?;
    let charts = charts(&args.out, &study)?;
    Ok(format!(
        "{}\nreport: {} (and report.json, {})",
        table(&study).trim_end(),
        args.out.join("report.md").display(),
        charts.join(", ")
    ))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(LabError::io(format!("writing {}", path.display())))
}

/// Up, measure, probe the kill, down, for one cell; down whatever happened.
async fn one_cell(
    args: &ScaleArgs,
    mode: Mode,
    nodes: u16,
    duration: Duration,
    bins: &Binaries,
    health_timeout: Duration,
    grace: Duration,
) -> Result<Cell> {
    let run_dir = std::env::temp_dir().join(format!(
        "sessionlab-study-{}-scale-{}-{nodes}",
        std::process::id(),
        mode.name()
    ));
    let lab = Lab::fresh(&run_dir, health_timeout, grace)?;
    let cell = lab
        .then_down(measure_cell(&lab, args, mode, nodes, duration, bins))
        .await?;
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(cell)
}

async fn measure_cell(
    lab: &Lab,
    args: &ScaleArgs,
    mode: Mode,
    nodes: u16,
    duration: Duration,
    bins: &Binaries,
) -> Result<Cell> {
    lab.up(&UpOptions {
        mode,
        nodes: usize::from(nodes),
        ports: PortBases::FREE,
        bin_dir: Some(bins.dir.clone()),
        node_args: Vec::new(),
        lb_args: Vec::new(),
        lb: crate::lb::LbKind::Sessionlab,
        tls_port: None,
    })
    .await?;
    let state = lab.rf.load_required()?;
    let users = usize::from(args.users_per_node) * usize::from(nodes);
    let offered = args.rate_per_node * f64::from(nodes);
    let mut cfg = workload_args(offered, duration).config(
        crate::load::target(&state),
        duration,
        users,
        workload::auth_of(mode.preset()),
    )?;
    cfg.session_cookie = crate::cluster::node_cookie_name(&state.node_extra_args).to_owned();
    let cpu_before = crate::cpu::cluster_cpu(&state);
    let label = format!("{} x{nodes}", mode.name());
    let report = crate::load::measure(lab, &label, cfg, Vec::new()).await?;
    let cpu_after = crate::cpu::cluster_cpu(&lab.rf.load_required()?);
    let cpu: Duration = crate::cpu::spent(&cpu_before, &cpu_after)
        .into_iter()
        .filter(|(name, _)| name != "lb" && name != "dashboard")
        .map(|(_, t)| t)
        .sum();
    let (steady, killed) = kill_probe(lab, users).await?;
    Ok(figures(
        mode, nodes, offered, &report, cpu, &steady, &killed,
    ))
}

/// The load of one cell: the default mix, `offered` requests per second
/// in all, no think time beyond the pace, bounded by the rate times the
/// duration plus a quarter.
fn workload_args(offered: f64, duration: Duration) -> WorkloadArgs {
    WorkloadArgs {
        users: None,
        rate: Some(offered),
        think: Duration::from_millis(10),
        login_pause: None,
        ramp_up: Duration::from_millis(500),
        clients_per_user: 1,
        mix: sessionlab_load::Mix::default(),
        max_requests: Some((offered * duration.as_secs_f64() * 1.25).ceil() as u64 + 100),
        faults: Vec::new(),
        request_timeout: Duration::from_secs(2),
        settle: Duration::from_millis(500),
        seed: 1,
    }
}

/// One increment per user before and after node-1's SIGKILL (after two
/// rounds that create and settle the sessions).
async fn kill_probe(lab: &Lab, users: usize) -> Result<(Vec<Outcome>, Vec<Outcome>)> {
    let state = lab.rf.load_required()?;
    let base = crate::load::target(&state);
    let http = crate::api::client(reqwest::Client::builder().timeout(Duration::from_secs(5)))?;
    let mut probes: Vec<Probe> = (0..users).map(|_| Probe::default()).collect();
    for _first_and_settle in 0..2 {
        round(&http, &base, &mut probes).await;
    }
    // Let replication carry the last writes before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let steady = round(&http, &base, &mut probes).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    lab.kill(KILLED).await?;
    let killed = round(&http, &base, &mut probes).await;
    Ok((steady, killed))
}

async fn round(http: &reqwest::Client, base: &str, probes: &mut [Probe]) -> Vec<Outcome> {
    futures::stream::iter(probes.iter_mut())
        .map(|p| async move {
            let seen = p.increment(http, base).await;
            p.judge(seen)
        })
        .buffered(16)
        .collect()
        .await
}

/// Session copies from the nodes' session gauges, summed over the nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    /// Copies a node holds in its own memory.
    per_node: f64,
    /// Copies in the whole cluster (store included).
    copies: f64,
}

impl Held {
    /// With a shared store (Redis) every node's gauge counts the one store,
    /// so the sum is N times its one copy per session, and a node holds
    /// none of its own.
    fn from_gauges(sum: f64, nodes: u16, shared_store: bool) -> Held {
        let n = f64::from(nodes.max(1));
        if shared_store {
            Held {
                per_node: 0.0,
                copies: sum / n,
            }
        } else {
            Held {
                per_node: sum / n,
                copies: sum,
            }
        }
    }
}

fn figures(
    mode: Mode,
    nodes: u16,
    offered: f64,
    r: &LoadReport,
    cpu: Duration,
    steady: &[Outcome],
    killed: &[Outcome],
) -> Cell {
    let writes = r
        .history
        .iter()
        .filter(|o| {
            o.ok()
                && matches!(
                    o.op,
                    OpKind::Login | OpKind::Increment | OpKind::CartPut | OpKind::CartDelete
                )
        })
        .count() as u64;
    let per_write = |x: f64| x / writes.max(1) as f64;
    let held = Held::from_gauges(
        r.server.sessions_held,
        nodes,
        mode.preset().redis != RedisTopology::None,
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let node_mem: Vec<u64> = r
        .server
        .memory_bytes
        .iter()
        .filter(|(name, _)| name.starts_with("node-"))
        .map(|(_, b)| *b)
        .collect();
    Cell {
        mode: mode.name().into(),
        nodes,
        users: r.users,
        offered_rps: offered,
        requests: r.requests,
        errors: r.error_total,
        throughput_rps: r.throughput_rps,
        latency_p50_ms: r.latency_p50_ms,
        latency_p99_ms: r.latency_p99_ms,
        writes,
        replication_messages_per_write: per_write(r.server.replication_messages),
        replication_bytes_per_write: per_write(r.server.replication_bytes),
        sessions_per_node: held.per_node,
        copies_per_session: held.copies / r.users.max(1) as f64,
        memory_per_node_mib: mib(node_mem.iter().sum::<u64>()) / node_mem.len().max(1) as f64,
        store_memory_mib: r
            .server
            .memory_bytes
            .get(crate::redis::NAME)
            .map(|b| mib(*b)),
        cpu_ms_per_write: per_write(cpu.as_secs_f64() * 1000.0),
        kill_users: killed.len(),
        lost_without_fault: steady.iter().filter(|o| o.lost).count(),
        lost_after_kill: killed.iter().filter(|o| o.lost).count(),
        refused_after_kill: killed.iter().filter(|o| o.refused).count(),
    }
}

fn share(part: usize, of: usize) -> String {
    format!("{:.0}%", 100.0 * part as f64 / of.max(1) as f64)
}

fn cell_line(c: &Cell) -> String {
    format!(
        "{:.0} req/s, p99 {:.1} ms, {:.0} B and {:.1} messages per write, {:.1} copies per session, \
         {:.1} MiB per node, {:.2} ms CPU per write, lost on kill {}",
        c.throughput_rps,
        c.latency_p99_ms,
        c.replication_bytes_per_write,
        c.replication_messages_per_write,
        c.copies_per_session,
        c.memory_per_node_mib,
        c.cpu_ms_per_write,
        share(c.lost_after_kill, c.kill_users)
    )
}

/// The table `run` prints and report.md holds.
pub fn table(s: &ScaleStudy) -> String {
    let mut out = String::from(
        "| mode | nodes | offered req/s | req/s | p50 ms | p99 ms | repl. msgs / write | repl. bytes / write | sessions / node | copies / session | MiB / node | CPU ms / write | lost, no fault | lost after kill node-1 | refused after kill |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &s.cells {
        let mem = match c.store_memory_mib {
            Some(store) => format!("{:.1} (+ store {store:.1})", c.memory_per_node_mib),
            None => format!("{:.1}", c.memory_per_node_mib),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.2} | {mem} | {:.2} | {} | {} | {} |\n",
            c.mode,
            c.nodes,
            c.offered_rps,
            c.throughput_rps,
            c.latency_p50_ms,
            c.latency_p99_ms,
            c.replication_messages_per_write,
            c.replication_bytes_per_write,
            c.sessions_per_node,
            c.copies_per_session,
            c.cpu_ms_per_write,
            share(c.lost_without_fault, c.kill_users),
            share(c.lost_after_kill, c.kill_users),
            share(c.refused_after_kill, c.kill_users),
        ));
    }
    out
}

fn markdown(s: &ScaleStudy) -> String {
    format!(
        "# sessionlab study scale\n\n\
         Each row is a fresh cluster behind sessionlab-lb with the mode's strategy, offered the same \
         load per node: {} users and {:.0} requests per second per node for {:.0} s (the default mix: \
         reads, increments, cart changes). *Writes* are the logins, increments and cart changes \
         answered; replication figures include heartbeats. *Copies / session*: sessions held by \
         all nodes over the users. CPU: the nodes and the store, not the LB. The kill columns: one \
         increment per user (as many users as in the load) before and after node-1 is SIGKILLed.\n\n{}",
        s.users_per_node,
        s.rate_per_node,
        s.duration_s,
        table(s)
    )
}

/// The figures the charts draw, and the file each goes to.
type ChartSpec = (&'static str, &'static str, &'static str, fn(&Cell) -> f64);

const CHARTS: [ChartSpec; 4] = [
    (
        "bytes_per_write.svg",
        "Replication bytes per write",
        "bytes",
        |c| c.replication_bytes_per_write,
    ),
    (
        "memory_per_node.svg",
        "Memory per node (VmRSS)",
        "MiB",
        |c| c.memory_per_node_mib,
    ),
    (
        "throughput.svg",
        "Throughput (same load per node)",
        "requests/s",
        |c| c.throughput_rps,
    ),
    ("latency_p99.svg", "Latency p99", "ms", |c| c.latency_p99_ms),
];

/// One line per mode, for `pick`.
pub fn series(s: &ScaleStudy, pick: fn(&Cell) -> f64) -> Vec<SizeSeries> {
    let mut by_mode: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut order = Vec::new();
    for c in &s.cells {
        if !by_mode.contains_key(c.mode.as_str()) {
            order.push(c.mode.as_str());
        }
        by_mode
            .entry(&c.mode)
            .or_default()
            .push((f64::from(c.nodes), pick(c)));
    }
    order
        .into_iter()
        .map(|m| (m.to_string(), by_mode.remove(m).unwrap_or_default()))
        .collect()
}

fn charts(out: &Path, s: &ScaleStudy) -> Result<Vec<&'static str>> {
    for (file, title, unit, pick) in CHARTS {
        let path = out.join(file);
        sessionlab_load::size_chart(&path, title, unit, &series(s, pick)).map_err(|e| {
            LabError::Io {
                what: format!("drawing {}", path.display()),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
    }
    Ok(CHARTS.iter().map(|c| c.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(mode: &str, nodes: u16, bytes: f64) -> Cell {
        Cell {
            mode: mode.into(),
            nodes,
            users: 5 * usize::from(nodes),
            offered_rps: 40.0 * f64::from(nodes),
            requests: 100,
            errors: 0,
            throughput_rps: 39.0,
            latency_p50_ms: 1.0,
            latency_p99_ms: 4.0,
            writes: 50,
            replication_messages_per_write: 0.0,
            replication_bytes_per_write: bytes,
            sessions_per_node: 5.0,
            copies_per_session: 1.0,
            memory_per_node_mib: 12.0,
            store_memory_mib: None,
            cpu_ms_per_write: 0.5,
            kill_users: 10,
            lost_without_fault: 0,
            lost_after_kill: 5,
            refused_after_kill: 0,
        }
    }

    #[test]
    fn a_shared_store_is_counted_once_not_once_per_node() {
        // Four nodes each report the one Redis holding 10 sessions.
        let shared = Held::from_gauges(40.0, 4, true);
        assert_eq!(
            shared,
            Held {
                per_node: 0.0,
                copies: 10.0
            }
        );
        // Four all-to-all nodes each hold their own 10 copies.
        let own = Held::from_gauges(40.0, 4, false);
        assert_eq!(
            own,
            Held {
                per_node: 10.0,
                copies: 40.0
            }
        );
    }

    #[test]
    fn series_follow_the_modes_in_the_order_they_ran() {
        let s = ScaleStudy {
            users_per_node: 5,
            rate_per_node: 40.0,
            duration_s: 4.0,
            cells: vec![
                cell("sticky-replicated", 2, 300.0),
                cell("sticky-replicated", 4, 900.0),
                cell("local", 2, 0.0),
                cell("local", 4, 0.0),
            ],
        };
        let lines = series(&s, |c| c.replication_bytes_per_write);
        assert_eq!(lines[0].0, "sticky-replicated");
        assert_eq!(lines[0].1, vec![(2.0, 300.0), (4.0, 900.0)]);
        assert_eq!(lines[1].0, "local");
        let t = table(&s);
        assert!(t.contains("| sticky-replicated | 4 | 160 |"), "{t}");
        assert!(t.contains("| 50% |"), "lost after kill as a share: {t}");
    }

    #[test]
    fn the_load_per_node_is_bounded_in_count() {
        let w = workload_args(80.0, Duration::from_secs(10));
        assert_eq!(w.rate, Some(80.0));
        assert_eq!(w.max_requests, Some(1_100));
        assert!(w.faults.is_empty());
    }
}
