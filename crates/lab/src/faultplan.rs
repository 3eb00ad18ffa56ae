//! A fault timeline for a load run: `--fault kill:node-2@10s` and friends.
//!
//! A measurement that says "the p99 went up" is only useful if it also
//! says when the node died. So faults in `load` and `compare` are not typed
//! in another terminal at some moment; they are part of the run: each spec
//! names an action and a time from the start of the load, the lab applies
//! it then, and the moment it was really applied is written into the
//! results as a [`Mark`] (the charts draw it as a vertical line).
//!
//! The actions are the lab's own commands, called as functions, so a
//! fault in a load run is exactly what `sessionlab kill node-2` does:
//!
//! | spec | does |
//! |---|---|
//! | `kill:NODE@T` | [`Lab::kill`] (SIGKILL) |
//! | `restart:NODE@T` | [`Lab::restart`] (start it again, wait until healthy) |
//! | `partition:NODE@T` | [`faults::partition`] from every other node |
//! | `heal@T` | [`faults::heal`] |
//! | `drain:NODE@T`, `undrain:NODE@T` | [`Lab::drain`] |
//! | `delay:DURATION@T` | [`faults::delay`] on every replication link |
//!
//! `T` is a time from the start (`10s`, `1m30s`, `2.5s`, or plain seconds)
//! or a share of the run (`50%`), so one timeline fits a short and a long
//! run. Faults due at 0 are applied before the first request.
//!
//! The timeline runs on a thread of its own with its own small runtime:
//! a `restart` waits seconds for health and a `kill` waits for the process
//! to exit, and none of that may stall the simulated users.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sessionlab_load::Mark;

use crate::cluster::Lab;
use crate::error::{LabError, Result};
use crate::faults;
use crate::runfolder::{ClusterState, RunFolder};

/// What the `--fault` help and errors list.
pub const VALID_FORMS: &str = "kill:NODE@T, restart:NODE@T, partition:NODE@T, heal@T, \
     drain:NODE@T, undrain:NODE@T, delay:DURATION@T, skew:NODE:+DURATION@T or \
     skew:NODE:-DURATION@T (T: time from the start such as 10s, \
     1m30s or 2.5s, or a share of the run such as 50%)";

/// One thing done to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    Kill(String),
    Restart(String),
    Partition(String),
    Heal,
    Drain(String),
    Undrain(String),
    /// Delay every replication link (zero removes the delay).
    Delay(Duration),
    /// Run a node's clock this many ms ahead (negative: behind; 0: right).
    Skew(String, i64),
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::Kill(n) => write!(f, "kill {n}"),
            FaultAction::Restart(n) => write!(f, "restart {n}"),
            FaultAction::Partition(n) => write!(f, "partition {n}"),
            FaultAction::Heal => f.write_str("heal"),
            FaultAction::Drain(n) => write!(f, "drain {n}"),
            FaultAction::Undrain(n) => write!(f, "undrain {n}"),
            FaultAction::Delay(d) => write!(f, "delay {}", humantime::format_duration(*d)),
            FaultAction::Skew(n, ms) => write!(f, "skew {n} {ms:+}ms"),
        }
    }
}

impl FaultAction {
    /// The node the action names, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            FaultAction::Kill(n)
            | FaultAction::Restart(n)
            | FaultAction::Partition(n)
            | FaultAction::Drain(n)
            | FaultAction::Undrain(n)
            | FaultAction::Skew(n, _) => Some(n),
            FaultAction::Heal | FaultAction::Delay(_) => None,
        }
    }

    /// Whether the action works on replication traffic (and so needs a
    /// replicated mode).
    pub fn needs_replication(&self) -> bool {
        matches!(
            self,
            FaultAction::Partition(_)
                | FaultAction::Heal
                | FaultAction::Delay(_)
                | FaultAction::Skew(..)
        )
    }
}

/// When a fault happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// A time from the start of the load.
    At(Duration),
    /// A share of the run's duration, 0.0 ..= 1.0.
    Share(f64),
}

/// One `--fault` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub action: FaultAction,
    pub when: When,
}

/// A `--fault` argument that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault `{spec}`: {reason}; valid forms: {VALID_FORMS}")]
pub struct FaultSpecError {
    pub spec: String,
    pub reason: String,
}

fn parse_time(t: &str) -> std::result::Result<When, String> {
    let t = t.trim();
    if let Some(p) = t.strip_suffix('%') {
        let share: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{t}` is not a percentage"))?;
        if !(0.0..=100.0).contains(&share) {
            return Err(format!("`{t}` is not between 0% and 100%"));
        }
        return Ok(When::Share(share / 100.0));
    }
    parse_duration(t).map(When::At)
}

/// `10s`, `1m30s`, `250ms` (humantime), or plain or fractional seconds
/// (`10`, `2.5s`).
fn parse_duration(t: &str) -> std::result::Result<Duration, String> {
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(d);
    }
    let secs = t.strip_suffix('s').unwrap_or(t);
    match secs.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("`{t}` is not a duration")),
    }
}

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> std::result::Result<Self, FaultSpecError> {
        let fail = |reason: String| FaultSpecError {
            spec: spec.to_string(),
            reason,
        };
        let (what, time) = spec
            .rsplit_once('@')
            .ok_or_else(|| fail("no `@TIME`".into()))?;
        let when = parse_time(time).map_err(fail)?;
        let (verb, arg) = match what.split_once(':') {
            Some((v, a)) => (v.trim(), Some(a.trim())),
            None => (what.trim(), None),
        };
        let node = |arg: Option<&str>| match arg {
            Some(n) if !n.is_empty() => Ok(n.to_string()),
            _ => Err(fail(format!("`{verb}` needs a node, as in {verb}:node-2"))),
        };
        let action = match verb {
            "kill" => FaultAction::Kill(node(arg)?),
            "restart" => FaultAction::Restart(node(arg)?),
            "partition" => FaultAction::Partition(node(arg)?),
            "drain" => FaultAction::Drain(node(arg)?),
            "undrain" => FaultAction::Undrain(node(arg)?),
            "heal" => match arg {
                None => FaultAction::Heal,
                Some(_) => return Err(fail("`heal` takes no argument".into())),
            },
            "delay" => match arg {
                Some(d) => FaultAction::Delay(parse_duration(d).map_err(fail)?),
                None => return Err(fail("`delay` needs a duration, as in delay:50ms".into())),
            },
            "skew" => {
                let usage = || {
                    fail("`skew` needs a node and a signed duration, as in skew:node-2:+2s".into())
                };
                let (n, d) = arg.and_then(|a| a.rsplit_once(':')).ok_or_else(usage)?;
                let (sign, d) = match (d.strip_prefix('+'), d.strip_prefix('-')) {
                    (Some(d), _) => (1, d),
                    (_, Some(d)) => (-1, d),
                    _ => return Err(usage()),
                };
                let ms =
                    i64::try_from(parse_duration(d).map_err(fail)?.as_millis()).unwrap_or(i64::MAX);
                if n.is_empty() || ms > sessionlab_session::clock::MAX_SKEW_MS {
                    return Err(fail("a skew is at most a day either way, on a node".into()));
                }
                FaultAction::Skew(n.to_owned(), sign * ms)
            }
            other => return Err(fail(format!("unknown action `{other}`"))),
        };
        Ok(FaultSpec { action, when })
    }
}

/// A fault with its time resolved against the run's duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub at: Duration,
    pub action: FaultAction,
}

/// Resolves times, sorts by time, and checks every spec against the
/// cluster: known nodes, replication where needed, within the run.
pub fn schedule(
    specs: &[FaultSpec],
    duration: Duration,
    state: &ClusterState,
) -> Result<Vec<Scheduled>> {
    let mut out = Vec::new();
    for spec in specs {
        let at = match spec.when {
            When::At(d) => d,
            When::Share(s) => duration.mul_f64(s),
        };
        if at > duration {
            return Err(LabError::InvalidArgument(format!(
                "fault `{}` at {:.1} s is after the end of the {:.1} s run",
                spec.action,
                at.as_secs_f64(),
                duration.as_secs_f64()
            )));
        }
        if let Some(node) = spec.action.node() {
            let a_redis = (node == crate::redis::NAME && state.redis.is_some())
                || state.redis_ha.as_ref().is_some_and(|ha| ha.names(node));
            if !a_redis {
                state.node(node)?;
            }
        }
        if spec.action.needs_replication() && !state.mode.preset().replication {
            return Err(LabError::InvalidArgument(format!(
                "fault `{}` acts on replication traffic, and mode {} has none",
                spec.action, state.mode
            )));
        }
        out.push(Scheduled {
            at,
            action: spec.action.clone(),
        });
    }
    out.sort_by_key(|s| s.at);
    Ok(out)
}

/// How to open the lab from the timeline's thread.
#[derive(Debug, Clone)]
pub struct LabSettings {
    pub run_dir: PathBuf,
    pub health_timeout: Duration,
    pub grace: Duration,
}

impl LabSettings {
    pub fn of(lab: &Lab) -> LabSettings {
        LabSettings {
            run_dir: lab.rf.root().to_path_buf(),
            health_timeout: lab.health_timeout,
            grace: lab.grace,
        }
    }

    fn open(&self) -> Result<Lab> {
        let mut lab = Lab::new(RunFolder::new(&self.run_dir))?;
        lab.health_timeout = self.health_timeout;
        lab.grace = self.grace;
        Ok(lab)
    }
}

/// Applies one action with the lab's own functions; returns what was done.
pub async fn apply(lab: &Lab, action: &FaultAction) -> Result<String> {
    Ok(match action {
        FaultAction::Kill(n) => {
            let pid = lab.kill(n).await?;
            format!("killed {n} (pid {pid})")
        }
        FaultAction::Restart(n) => {
            lab.restart(n).await?;
            format!("restarted {n}; healthy and back in the LB")
        }
        FaultAction::Partition(n) => {
            faults::partition(&lab.api, &lab.rf, n, &[]).await?;
            format!("partitioned {n} from every other node")
        }
        FaultAction::Heal => {
            faults::heal(&lab.api, &lab.rf).await?;
            "healed every partition and delay".to_string()
        }
        FaultAction::Drain(n) => {
            lab.drain(n, true).await?;
            format!("draining {n}")
        }
        FaultAction::Undrain(n) => {
            lab.drain(n, false).await?;
            format!("undrained {n}")
        }
        FaultAction::Skew(n, ms) => {
            faults::skew(&lab.api, &lab.rf, n, *ms).await?;
            format!("{n}'s clock set {ms:+} ms off")
        }
        FaultAction::Delay(d) => {
            faults::delay(&lab.api, &lab.rf, *d).await?;
            format!(
                "every replication link delayed by {}",
                humantime::format_duration(*d)
            )
        }
    })
}

/// A line for the person watching (the progress bar prints it above itself).
pub type Say = Box<dyn Fn(String) + Send>;

enum Order {
    /// The load started at this instant: apply the rest on time.
    Go(Instant),
    /// The load is over: apply nothing more.
    Stop,
}

/// The timeline's thread; see the module docs.
pub struct FaultRunner {
    orders: mpsc::Sender<Order>,
    marks: tokio::sync::oneshot::Receiver<Vec<Mark>>,
}

fn mark(at: Duration, action: &FaultAction, outcome: &Result<String>) -> Mark {
    Mark {
        at_s: at.as_secs_f64(),
        label: match outcome {
            Ok(_) => action.to_string(),
            Err(e) => format!("{action} (failed: {e})"),
        },
    }
}

impl FaultRunner {
    /// Starts the thread and applies the faults due at 0 s; returns once
    /// they are applied (or failed: a failed fault is reported in its mark
    /// and on stderr, and the run goes on).
    pub async fn start(settings: LabSettings, plan: Vec<Scheduled>, say: Say) -> Result<Self> {
        let (orders, inbox) = mpsc::channel::<Order>();
        let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<()>>();
        let (marks_tx, marks) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("fault-timeline".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(LabError::io("starting the fault timeline")(e)));
                        return;
                    }
                };
                let lab = match settings.open() {
                    Ok(lab) => lab,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut done = Vec::new();
                let mut rest = plan.into_iter().peekable();
                while let Some(s) = rest.next_if(|s| s.at.is_zero()) {
                    let outcome = rt.block_on(apply(&lab, &s.action));
                    report(&say, Duration::ZERO, &s.action, &outcome);
                    done.push(mark(Duration::ZERO, &s.action, &outcome));
                }
                let _ = ready_tx.send(Ok(()));
                let start = match inbox.recv() {
                    Ok(Order::Go(start)) => start,
                    _ => {
                        let _ = marks_tx.send(done);
                        return;
                    }
                };
                for s in rest {
                    let wait = (start + s.at).saturating_duration_since(Instant::now());
                    match inbox.recv_timeout(wait) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => {
                            say(format!("not applied (the load ended first): {}", s.action));
                            continue;
                        }
                    }
                    let at = start.elapsed();
                    let outcome = rt.block_on(apply(&lab, &s.action));
                    report(&say, at, &s.action, &outcome);
                    done.push(mark(at, &s.action, &outcome));
                }
                let _ = marks_tx.send(done);
            })
            .map_err(LabError::io("starting the fault timeline thread"))?;
        match ready.await {
            Ok(Ok(())) => Ok(FaultRunner { orders, marks }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError::InvalidArgument(
                "the fault timeline thread ended before the load started".into(),
            )),
        }
    }

    /// The load started at `start`: apply the rest of the plan on time.
    pub fn go(&self, start: Instant) {
        let _ = self.orders.send(Order::Go(start));
    }

    /// The load is over: skip what is not yet due, wait for a fault being
    /// applied, and return every mark.
    pub async fn finish(self) -> Vec<Mark> {
        let _ = self.orders.send(Order::Stop);
        self.marks.await.unwrap_or_default()
    }
}

fn report(say: &Say, at: Duration, action: &FaultAction, outcome: &Result<String>) {
    match outcome {
        Ok(done) => say(format!("{:>6.1} s  {done}", at.as_secs_f64())),
        Err(e) => say(format!(
            "{:>6.1} s  fault `{action}` failed: {e}",
            at.as_secs_f64()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> FaultSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_documented_form_parses() {
        let secs = |s| When::At(Duration::from_secs(s));
        assert_eq!(
            spec("kill:node-2@10s"),
            FaultSpec {
                action: FaultAction::Kill("node-2".into()),
                when: secs(10)
            }
        );
        assert_eq!(
            spec("restart:node-2@1m30s").when,
            When::At(Duration::from_secs(90))
        );
        assert_eq!(
            spec("partition:node-3@30").action,
            FaultAction::Partition("node-3".into())
        );
        assert_eq!(spec("heal@40s").action, FaultAction::Heal);
        assert_eq!(
            spec("drain:node-1@5s").action,
            FaultAction::Drain("node-1".into())
        );
        assert_eq!(
            spec("undrain:node-1@2.5s").when,
            When::At(Duration::from_millis(2500))
        );
        assert_eq!(
            spec("delay:50ms@0s"),
            FaultSpec {
                action: FaultAction::Delay(Duration::from_millis(50)),
                when: When::At(Duration::ZERO)
            }
        );
        assert_eq!(spec("kill:node-2@50%").when, When::Share(0.5));
        assert_eq!(
            spec("skew:node-2:+2s@5s").action,
            FaultAction::Skew("node-2".into(), 2_000)
        );
        assert_eq!(
            spec("skew:node-1:-1500ms@0s").action,
            FaultAction::Skew("node-1".into(), -1_500)
        );
        assert_eq!(
            spec("skew:node-1:+0s@0s").action.to_string(),
            "skew node-1 +0ms"
        );
        assert!(spec("skew:node-1:+2s@0s").action.needs_replication());
    }

    #[test]
    fn bad_specs_say_why_and_list_the_valid_forms() {
        for (bad, why) in [
            ("kill:node-2", "no `@TIME`"),
            ("kill@10s", "needs a node"),
            ("explode:node-1@1s", "unknown action `explode`"),
            ("heal:node-1@1s", "takes no argument"),
            ("delay@1s", "needs a duration"),
            ("delay:soon@1s", "not a duration"),
            ("kill:node-2@later", "not a duration"),
            ("kill:node-2@150%", "between 0% and 100%"),
            ("skew:node-2@1s", "needs a node and a signed duration"),
            ("skew:node-2:2s@1s", "needs a node and a signed duration"),
            ("skew:node-2:+25h@1s", "at most a day"),
        ] {
            let err = bad.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("valid forms: kill:NODE@T"), "{bad}: {err}");
        }
    }

    #[test]
    fn schedule_resolves_shares_sorts_and_checks_the_cluster() {
        let state: ClusterState = serde_json::from_value(serde_json::json!({
            "mode": "sticky", "bin_dir": "/bin", "started_at_unix_ms": 1,
            "ports": {"lb": 0, "admin": 0, "node": 0, "cluster": 0},
            "node_extra_args": [], "lb_extra_args": [],
            "lb": {"port": 1, "admin_port": 2, "process": null, "args": []},
            "nodes": [
                {"id": "node-1", "app_port": 3, "cluster_port": 4, "process": null, "args": []},
                {"id": "node-2", "app_port": 5, "cluster_port": 6, "process": null, "args": []}
            ]
        }))
        .unwrap();
        let d = Duration::from_secs(20);
        let plan = schedule(
            &[spec("restart:node-2@15s"), spec("kill:node-2@25%")],
            d,
            &state,
        )
        .unwrap();
        assert_eq!(plan[0].at, Duration::from_secs(5));
        assert_eq!(plan[1].action, FaultAction::Restart("node-2".into()));
        let err = schedule(&[spec("kill:node-9@1s")], d, &state).unwrap_err();
        assert!(err.to_string().contains("node-1, node-2"), "{err}");
        let err = schedule(&[spec("kill:node-1@30s")], d, &state).unwrap_err();
        assert!(err.to_string().contains("after the end"), "{err}");
        let err = schedule(&[spec("delay:5ms@0s")], d, &state).unwrap_err();
        assert!(err.to_string().contains("mode sticky has none"), "{err}");
    }
}
