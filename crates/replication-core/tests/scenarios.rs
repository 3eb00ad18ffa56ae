//! Scripted scenarios on the simulated cluster, kept as golden files.
//!
//! Each file in `tests/scripts/` is a goldenscript (the format toydb's Raft
//! tests use): commands, and under `---` the trace they produced. The trace
//! is the protocol's own account of what happened, one line per event, so a
//! change in behaviour shows up as a readable diff. To accept new output
//! after an intended change, run with `UPDATE_GOLDENFILES=1` and review the
//! diff before committing.
//!
//! Commands:
//!
//! ```text
//! cluster nodes=3 [ack=none|sent|all|quorum] [policy=available|consistent]
//! [granularity=session|attribute] [queue_limit=N] [digest_chunk=N]
//!         [page=N] [topology=all-to-all|backup] [backups=K]
//!         [quiet=false]                a new cluster, run until all are ready
//! trace [heartbeats=B] [acks=B] [digests=B]   which control messages show
//! network [delay=LO..HI] [drop=P] [dup=P]     the network's behaviour
//! upsert NODE NAME [VALUE]             a client write on NODE
//! set NODE NAME KEY [VALUE]            a client write of one key on NODE
//! unset NODE NAME KEY                  a client write removing one key
//! delete NODE NAME                     a client logout on NODE
//! touch NODE NAME                      a client request that only reads
//! run MS                               let MS of simulated time pass
//! stabilize [max=MS]                   run until the network is empty
//! crash NODE / restart NODE            lose a node's memory / start it again
//! partition NODE...                    cut NODEs off from the rest
//! heal                                 restore every link
//! sessions [NODE...]                   what each node holds (and its
//!                                      per-key stamps, when it has some)
//! peers NODE                           what NODE knows of its peers
//! converged                            whether all live nodes agree (in
//!                                      backup: the placement, below)
//! join NODE                            a new node joins the running cluster
//! leave NODE                           NODE stops gracefully, announcing it
//! drain NODE                           NODE hands its sessions over, then leaves
//! dead NODE                            the failure detector declares NODE dead
//! owners NAME...                       each session's owners, primary first
//! placement                            views agree; each session on exactly
//!                                      its owners, K + 1 copies, all equal
//! rebalance [NODE...]                  each node's rebalance totals
//! ```

use std::error::Error;
use std::fmt::Write as _;

use goldenscript::{Command, Runner};
use sessionlab_replication_core::{
    AckMode, EPOCH_MS, Granularity, NetworkFaults, PartitionPolicy, Sim, SimConfig, Topology,
    TraceFilter, session_id,
};

struct Scenario {
    sim: Option<Sim>,
}

type Res = Result<String, Box<dyn Error>>;

impl Scenario {
    fn sim(&mut self) -> Result<&mut Sim, Box<dyn Error>> {
        self.sim
            .as_mut()
            .ok_or_else(|| "no cluster yet: start with `cluster`".into())
    }

    fn flush_trace(&mut self) -> Res {
        let mut out = String::new();
        for line in self.sim()?.take_trace() {
            writeln!(out, "{line}")?;
        }
        Ok(out)
    }

    /// The trace so far, then `ok` if `check` passes, else `wrong: why`.
    fn verdict(&mut self, check: fn(&Sim) -> Result<(), String>, ok: &str, wrong: &str) -> Res {
        let mut out = self.flush_trace()?;
        match check(self.sim()?) {
            Ok(()) => writeln!(out, "{ok}")?,
            Err(e) => writeln!(out, "{wrong}: {e}")?,
        }
        Ok(out)
    }

    fn cluster(&mut self, command: &Command) -> Res {
        let mut args = command.consume_args();
        let nodes: usize = args.lookup_parse("nodes")?.unwrap_or(3);
        let mut cfg = SimConfig::new(nodes, 1);
        if let Some(ack) = args.lookup_parse::<String>("ack")? {
            cfg.protocol.ack_mode = ack.parse::<AckMode>()?;
        }
        if let Some(p) = args.lookup_parse::<String>("policy")? {
            cfg.protocol.partition_policy = p.parse::<PartitionPolicy>()?;
        }
        if let Some(g) = args.lookup_parse::<String>("granularity")? {
            cfg.protocol.granularity = g.parse::<Granularity>()?;
        }
        if let Some(q) = args.lookup_parse("queue_limit")? {
            cfg.protocol.queue_limit = q;
        }
        if let Some(c) = args.lookup_parse("digest_chunk")? {
            cfg.protocol.digest_chunk = c;
        }
        if let Some(p) = args.lookup_parse("page")? {
            cfg.protocol.snapshot_page_entries = p;
        }
        let backups: Option<usize> = args.lookup_parse("backups")?;
        match args.lookup_parse::<String>("topology")?.as_deref() {
            None | Some("all-to-all") => {
                if backups.is_some() {
                    return Err("backups=K needs topology=backup".into());
                }
            }
            Some("backup") => {
                cfg.protocol.topology = Topology::Backup {
                    backups: backups.unwrap_or(1),
                };
            }
            Some(other) => return Err(format!("unknown topology {other}").into()),
        }
        let quiet: bool = args.lookup_parse("quiet")?.unwrap_or(true);
        args.reject_rest()?;
        cfg.protocol.validate()?;
        let mut sim = Sim::new(cfg);
        sim.set_tracing(!quiet, TraceFilter::default());
        for _ in 0..100 {
            if sim.node_ids().iter().all(|n| sim.is_ready(n)) {
                break;
            }
            sim.run_for(10)?;
        }
        sim.run_for(10)?;
        let mut out = String::new();
        for line in sim.take_trace() {
            writeln!(out, "{line}")?;
        }
        let ready: Vec<String> = sim
            .node_ids()
            .into_iter()
            .filter(|n| sim.is_ready(n))
            .collect();
        writeln!(out, "ready: {}", ready.join(" "))?;
        sim.set_tracing(true, TraceFilter::default());
        self.sim = Some(sim);
        Ok(out)
    }

    fn sessions(&mut self, nodes: Vec<String>) -> Res {
        let sim = self.sim()?;
        let nodes = if nodes.is_empty() {
            sim.node_ids()
        } else {
            nodes
        };
        let mut out = String::new();
        for n in nodes {
            if !sim.is_up(&n) {
                writeln!(out, "{n}: down")?;
                continue;
            }
            let held = sim.sessions(&n);
            if held.is_empty() {
                writeln!(out, "{n}: (none)")?;
            }
            for s in held.values() {
                write!(
                    out,
                    "{n}: {} v={} data={} last_access=+{}ms",
                    s.id,
                    s.version,
                    s.data.get(),
                    s.last_access_ms - EPOCH_MS
                )?;
                let stamps =
                    |m: &std::collections::BTreeMap<String, sessionlab_session::Version>| {
                        m.iter()
                            .map(|(k, v)| format!("{k}@{v}"))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                if !s.stamps.set.is_empty() {
                    write!(out, " older_keys={}", stamps(&s.stamps.set))?;
                }
                if !s.stamps.removed.is_empty() {
                    write!(out, " removed={}", stamps(&s.stamps.removed))?;
                }
                writeln!(out)?;
            }
        }
        Ok(out)
    }
}

impl Runner for Scenario {
    fn run(&mut self, command: &Command) -> Res {
        let positional: Vec<String> = command
            .args
            .iter()
            .filter(|a| a.key.is_none())
            .map(|a| a.value.clone())
            .collect();
        let pos = |i: usize| -> Result<String, Box<dyn Error>> {
            positional
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{}: argument {} missing", command.name, i + 1).into())
        };
        match command.name.as_str() {
            "cluster" => return self.cluster(command),
            "trace" => {
                let mut args = command.consume_args();
                let f = TraceFilter {
                    heartbeats: args.lookup_parse("heartbeats")?.unwrap_or(false),
                    acks: args.lookup_parse("acks")?.unwrap_or(false),
                    digests: args.lookup_parse("digests")?.unwrap_or(false),
                };
                args.reject_rest()?;
                self.sim()?.set_tracing(true, f);
            }
            "network" => {
                let mut args = command.consume_args();
                let mut n = NetworkFaults::none();
                if let Some(d) = args.lookup_parse::<String>("delay")? {
                    let (lo, hi) = d.split_once("..").unwrap_or((&d, &d));
                    n.min_delay_ms = lo.parse()?;
                    n.max_delay_ms = hi.parse()?;
                }
                n.drop_rate = args.lookup_parse("drop")?.unwrap_or(0.0);
                n.duplicate_rate = args.lookup_parse("dup")?.unwrap_or(0.0);
                args.reject_rest()?;
                self.sim()?.set_network(n);
            }
            "upsert" => {
                let (node, name) = (pos(0)?, pos(1)?);
                let value = pos(2).unwrap_or_else(|_| "x".into());
                self.sim()?.upsert(&node, &session_id(&name), &value)?;
            }
            "set" | "unset" => {
                let (node, name, key) = (pos(0)?, pos(1)?, pos(2)?);
                let value = match command.name.as_str() {
                    "set" => Some(pos(3).unwrap_or_else(|_| "x".into())),
                    _ => None,
                };
                self.sim()?
                    .set_key(&node, &session_id(&name), &key, value.as_deref())?;
            }
            "delete" => {
                let (node, name) = (pos(0)?, pos(1)?);
                // Tombstoned and sent whether or not the node holds it;
                // the trace says which (`(not held here)`).
                self.sim()?.delete(&node, &session_id(&name))?;
            }
            "touch" => {
                let (node, name) = (pos(0)?, pos(1)?);
                let ok = self.sim()?.touch(&node, &session_id(&name))?;
                let now = self.sim()?.now_ms() - EPOCH_MS;
                let mut out = self.flush_trace()?;
                writeln!(
                    out,
                    "{node}: touch {name} at=+{now}ms {}",
                    if ok { "ok" } else { "unknown" }
                )?;
                return Ok(out);
            }
            "run" => {
                let ms: u64 = pos(0)?.parse()?;
                self.sim()?.run_for(ms)?;
            }
            "stabilize" => {
                let mut args = command.consume_args();
                let max: u64 = args.lookup_parse("max")?.unwrap_or(2_000);
                args.reject_rest()?;
                self.sim()?.stabilize(max)?;
            }
            "crash" => self.sim()?.crash(&pos(0)?)?,
            "restart" => self.sim()?.restart(&pos(0)?)?,
            "partition" => self.sim()?.partition(&positional),
            "heal" => self.sim()?.heal(),
            "sessions" => {
                let mut out = self.flush_trace()?;
                out.push_str(&self.sessions(positional)?);
                return Ok(out);
            }
            "peers" => {
                let node = pos(0)?;
                let mut out = self.flush_trace()?;
                for p in self.sim()?.peers(&node) {
                    writeln!(
                        out,
                        "{node} sees {}: up={} ready={} queue={} needs_resync={}",
                        p.id, p.up, p.ready, p.queue_depth, p.needs_resync
                    )?;
                }
                return Ok(out);
            }
            "join" => self.sim()?.add_node(&pos(0)?)?,
            "leave" => self.sim()?.remove_node(&pos(0)?)?,
            "drain" => {
                let node = pos(0)?;
                let took = self.sim()?.drain_and_leave(&node, 5_000)?;
                let mut out = self.flush_trace()?;
                writeln!(out, "{node}: handed over in {took} ms, left")?;
                return Ok(out);
            }
            "dead" => self.sim()?.declare_dead(&pos(0)?)?,
            "owners" => {
                let mut out = self.flush_trace()?;
                let sim = self.sim()?;
                let viewer = sim
                    .members()
                    .into_iter()
                    .find(|m| sim.is_up(m))
                    .ok_or("no live member")?;
                let r = sim.replica(&viewer).ok_or("no live member")?;
                for name in &positional {
                    let owners = r.owners_of(&session_id(name));
                    writeln!(out, "{name}: owners {}", owners.join(" "))?;
                }
                return Ok(out);
            }
            "placement" => {
                return self.verdict(Sim::check_placement, "placement ok", "placement WRONG");
            }
            "rebalance" => {
                let mut out = self.flush_trace()?;
                let sim = self.sim()?;
                let nodes = if positional.is_empty() {
                    sim.node_ids()
                } else {
                    positional.clone()
                };
                for n in nodes {
                    let Some(r) = sim.replica(&n) else {
                        writeln!(out, "{n}: down")?;
                        continue;
                    };
                    let v = r.rebalance_view();
                    writeln!(
                        out,
                        "{n}: passes={} moved={} bytes={} in_progress={}",
                        v.passes, v.sessions_moved, v.bytes_moved, v.in_progress
                    )?;
                }
                return Ok(out);
            }
            "converged" => return self.verdict(Sim::check_converged, "converged", "NOT converged"),
            other => return Err(format!("unknown command {other}").into()),
        }
        self.flush_trace()
    }
}

fn run(name: &str) {
    let path = format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    goldenscript::run(&mut Scenario { sim: None }, path).expect("golden script");
}

#[test]
fn write_and_replicate() {
    run("write_and_replicate");
}

#[test]
fn concurrent_writes_lww() {
    run("concurrent_writes_lww");
}

#[test]
fn delete_beats_late_upsert() {
    run("delete_beats_late_upsert");
}

#[test]
fn partition_and_heal() {
    run("partition_and_heal");
}

#[test]
fn queue_overflow_resync() {
    run("queue_overflow_resync");
}

#[test]
fn join_by_snapshot() {
    run("join_by_snapshot");
}

#[test]
fn acks_all_and_quorum() {
    run("acks_all_and_quorum");
}

#[test]
fn partition_policy_consistent() {
    run("partition_policy_consistent");
}

#[test]
fn acks_sent() {
    run("acks_sent");
}

#[test]
fn logout_without_the_session() {
    run("logout_without_the_session");
}

#[test]
fn acks_all_logout() {
    run("acks_all_logout");
}

#[test]
fn granularity_two_tabs() {
    run("granularity_two_tabs");
}

#[test]
fn backup_join() {
    run("backup_join");
}

#[test]
fn backup_leave() {
    run("backup_leave");
}

#[test]
fn backup_rebalance() {
    run("backup_rebalance");
}
