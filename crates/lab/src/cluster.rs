//! Bringing a cluster up and down, and changing its membership:
//! `up`, `down`, `kill`, `restart`, `drain`/`undrain` and `scale`.
//!
//! A cluster is N `sessionlab-node` processes and one load balancer in
//! front of them (`sessionlab-lb`, or HAProxy or nginx with a file the lab
//! writes: [`crate::lb`]), plus the `sessionlab-dashboard` that watches them, all on
//! 127.0.0.1, configured by a row of the modes matrix
//! ([`crate::preset`]). Every command follows the same pattern: take the run
//! folder's lock, load the state, act on real processes (signals) or real
//! admin endpoints (HTTP), save the state after every step that changed it.
//! Saving after every step matters: if `up` dies after starting two nodes,
//! the state names those two, and `down` stops them.
//!
//! ## Starting
//! `up` refuses before starting anything if a cluster from this run folder
//! still runs, if a port is taken, or if a binary is missing (the node, the
//! LB and the dashboard are built from this workspace, so the node always
//! has the flags a mode passes). It then
//! starts the nodes and the LB, and waits until everything is healthy
//! ([`crate::health`]). If anything dies or stays unhealthy, `up` prints
//! why, stops what it started, and fails.
//!
//! ## Changing membership at run time
//! In the `backup` mode the nodes keep their member list at run time
//! (SWIM; the `--peer` list is only where a node first asks): `scale`
//! starts the new nodes, which join through any member, take over the
//! sessions they now own and report healthy once caught up, then adds them
//! to the LB; removing a node drains and deletes it from the LB, then stops
//! it gracefully, one at a time, so it hands every copy to the owners that
//! remain before it leaves. No other node restarts.
//!
//! The all-to-all modes have a fixed `--peer` list, so `scale` in a
//! replicated mode does a *rolling restart*: each existing node in turn is
//! drained in the LB, stopped, started again with the new `--peer` list
//! (it pulls a snapshot from a live peer before it reports healthy) and
//! undrained; then the new nodes start and join the LB. Removing nodes
//! drains and deletes them from the LB first, then stops them, then rolls
//! the survivors onto the smaller peer list. Without replication the nodes
//! know no peers, so scaling only starts/stops nodes and updates the LB.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::api::Api;
use crate::error::{LabError, Result};
use crate::faults;
use crate::health::{self, Check, Starting, Watch};
use crate::lb::{self, LbKind};
use crate::ports::{PortAllocator, PortBases};
use crate::preset::{Mode, Preset, RedisTopology};
use crate::process::{self, Launch, ProcRecord};
use crate::redis;
use crate::redis_ha;
use crate::runfolder::{
    ClusterState, DASHBOARD, DashboardState, LbState, NodeState, RunFolder, SECRET_ENV,
    generate_secret,
};

/// The largest cluster the lab starts (each node is a real process).
pub const MAX_NODES: usize = 16;
/// How long a node with run-time membership may take, beyond the stop
/// grace, to hand its sessions over before it leaves (the node's own
/// limit is 5 s).
const HAND_OVER_LIMIT: Duration = Duration::from_secs(6);
/// How long a command waits for another one holding the run folder lock.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The id of the `i`-th node (1-based).
pub fn node_id(i: usize) -> String {
    format!("node-{i}")
}

/// Where the node, LB and dashboard binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    pub node: PathBuf,
    pub lb: PathBuf,
    pub dashboard: PathBuf,
}

impl Binaries {
    /// The binaries in `dir`, or next to the running `sessionlab` binary
    /// (where cargo puts them). Fails if one is missing.
    pub fn locate(dir: Option<&Path>) -> Result<Binaries> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .map_err(LabError::io("locating the sessionlab binary"))?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        };
        let bins = Binaries {
            node: dir.join("sessionlab-node"),
            lb: dir.join("sessionlab-lb"),
            dashboard: dir.join("sessionlab-dashboard"),
            dir,
        };
        for path in [&bins.node, &bins.lb, &bins.dashboard] {
            if !path.is_file() {
                return Err(LabError::MissingBinary {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: path.clone(),
                });
            }
        }
        Ok(bins)
    }
}

/// Options of `sessionlab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub mode: Mode,
    pub nodes: usize,
    pub ports: PortBases,
    pub bin_dir: Option<PathBuf>,
    pub node_args: Vec<String>,
    pub lb_args: Vec<String>,
    /// Which LB stands in front of the nodes.
    pub lb: LbKind,
    /// `--tls`: the HTTPS port (0 = any free one); the lab makes a CA and
    /// the LB's certificate ([`crate::tls`]).
    pub tls_port: Option<u16>,
}

/// The flags `up --tls` gives sessionlab-lb: HTTPS on `port` with the run
/// folder's certificate, plain HTTP redirected to it, and a short HSTS
/// (HSTS for `localhost` covers every port of it, so a year would force
/// HTTPS on every other local development server too).
pub fn lb_tls_args(files: &crate::tls::TlsFiles, port: u16) -> Vec<String> {
    vec![
        "--tls-listen".into(),
        addr(port),
        "--tls-cert".into(),
        files.cert.display().to_string(),
        "--tls-key".into(),
        files.key.display().to_string(),
        "--redirect-http".into(),
        "--hsts-max-age".into(),
        "5m".into(),
    ]
}

/// What `up` started, for the banner.
#[derive(Debug)]
pub struct UpReport {
    pub state: ClusterState,
    pub took: Duration,
}

/// The lab: a run folder plus the admin API client and the time limits.
pub struct Lab {
    pub rf: RunFolder,
    pub api: Api,
    /// How long to wait for processes to become healthy.
    pub health_timeout: Duration,
    /// How long SIGTERM gets before SIGKILL.
    pub grace: Duration,
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("sessionlab: {}", msg.as_ref());
}

/// The address the LB (ours, HAProxy or nginx) connects to the nodes from:
/// every process of a lab run is on loopback. Passed as the nodes'
/// `--trusted-proxy`, so their per-client limits see the LB's
/// `X-Forwarded-For`, not the LB itself as one client.
pub const LB_ADDR: &str = "127.0.0.1";

/// The command line of a node: identity, addresses, the LB as trusted
/// proxy, the mode's flags, peers (replicated modes), then the user's
/// extra flags.
pub fn node_args(
    preset: &Preset,
    node: &NodeState,
    all: &[NodeState],
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--id".into(),
        node.id.clone(),
        "--listen".into(),
        addr(node.app_port),
        "--cluster-listen".into(),
        addr(node.cluster_port),
        "--trusted-proxy".into(),
        LB_ADDR.into(),
    ];
    args.extend(preset.node_flags.iter().map(|s| s.to_string()));
    if preset.replication {
        for peer in all.iter().filter(|p| p.id != node.id) {
            args.push("--peer".into());
            args.push(format!("{}={}", peer.id, addr(peer.cluster_port)));
        }
    }
    args.extend(extra.iter().cloned());
    args
}

/// The environment variable that hands the admin token to the LB.
pub const LB_ADMIN_TOKEN_ENV: &str = "SESSIONLAB_LB_ADMIN_TOKEN";
/// The environment variable that hands the LB's admin token to the dashboard.
pub const DASHBOARD_LB_TOKEN_ENV: &str = "SESSIONLAB_DASHBOARD_LB_TOKEN";

/// The command line of the dashboard: where it listens, the LB's admin
/// API and each node's cluster listener it reads, and the run folder (as an
/// absolute path: it acts on it for its buttons, from its own working
/// directory).
pub fn dashboard_args(
    dashboard: &DashboardState,
    lb: &LbState,
    nodes: &[NodeState],
    run_dir: &Path,
) -> Result<Vec<String>> {
    let abs = std::path::absolute(run_dir).map_err(LabError::io(format!(
        "resolving the run folder {}",
        run_dir.display()
    )))?;
    let mut args: Vec<String> = vec![
        "--listen".into(),
        addr(dashboard.port),
        "--lb-admin".into(),
        format!("http://{}", addr(lb.admin_port)),
    ];
    if lb.kind.is_foreign() {
        args.extend(["--lb-kind".into(), lb.kind.name().into()]);
    }
    for n in nodes {
        args.push("--node-admin".into());
        args.push(format!("{}={}", n.id, addr(n.cluster_port)));
    }
    args.extend(["--lab-dir".into(), abs.to_string_lossy().into_owned()]);
    Ok(args)
}

/// The session cookie name the nodes run with: the last `--cookie-name`
/// among the nodes' extra flags, else the default.
pub fn node_cookie_name(node_extra: &[String]) -> &str {
    let mut name = sessionlab_wire::SESSION_COOKIE;
    let mut args = node_extra.iter();
    while let Some(a) = args.next() {
        if a == "--cookie-name" {
            if let Some(v) = args.next() {
                name = v;
            }
        } else if let Some(v) = a.strip_prefix("--cookie-name=") {
            name = v;
        }
    }
    name
}

/// The command line of the LB; `session_cookie` is the nodes' cookie name
/// (what `sticky-route` and `consistent-hash` read).
pub fn lb_args(
    preset: &Preset,
    lb: &LbState,
    nodes: &[NodeState],
    session_cookie: &str,
    extra: &[String],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--listen".into(),
        addr(lb.port),
        "--admin-listen".into(),
        addr(lb.admin_port),
        "--strategy".into(),
        preset.lb_strategy.as_str().into(),
        "--session-cookie".into(),
        session_cookie.into(),
    ];
    for n in nodes {
        args.push("--backend".into());
        args.push(format!("{}={}", n.id, addr(n.app_port)));
    }
    args.extend(extra.iter().cloned());
    args
}

impl Lab {
    /// A lab in a fresh run folder `dir` (an old one there is removed
    /// first), for the commands that start clusters of their own
    /// (`compare`, `study`).
    pub fn fresh(dir: &Path, health_timeout: Duration, grace: Duration) -> Result<Lab> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(LabError::io(format!(
                "removing the old run folder {}",
                dir.display()
            )))?;
        }
        let mut lab = Lab::new(RunFolder::new(dir))?;
        lab.health_timeout = health_timeout;
        lab.grace = grace;
        Ok(lab)
    }

    /// Runs `work` on this lab's cluster, then takes the cluster down
    /// whatever happened, also on Ctrl-C (the cluster's processes are in
    /// their own process group, so the terminal's SIGINT does not reach
    /// them). The work's error comes before the down's.
    pub async fn then_down<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let result = tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(LabError::Interrupted),
        };
        let down = self.down().await;
        let value = result?;
        down?;
        Ok(value)
    }

    pub fn new(rf: RunFolder) -> Result<Lab> {
        let api = Api::new(crate::tls::TlsFiles::of(&rf).read_ca()?.as_deref())?;
        api.set_lb_token(rf.read_admin_token()?);
        Ok(Lab {
            rf,
            api,
            health_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(5),
        })
    }

    /// The environment a node gets: the cluster secret in replicated modes,
    /// the token key in the jwt mode (never on the command line, where `ps`
    /// would show them).
    fn node_env(&self, preset: &Preset) -> Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        if preset.replication || preset.jwt {
            let secret = self.rf.read_secret()?;
            if preset.jwt {
                env.push((JWT_SECRET_ENV.to_string(), jwt_secret(&secret)));
            }
            if preset.replication {
                env.push((SECRET_ENV.to_string(), secret));
            }
        }
        Ok(env)
    }

    fn spawn_node(&self, state: &ClusterState, i: usize) -> Result<(Starting, ProcRecord)> {
        let preset = state.mode.preset();
        let node = &state.nodes[i];
        let log = self.rf.log_path(&node.id);
        let env = self.node_env(preset)?;
        let (child, record) = process::spawn(&Launch {
            program: &state.bin_dir.join("sessionlab-node"),
            args: &node.args,
            env: &env,
            log: &log,
        })?;
        let starting = Starting {
            name: node.id.clone(),
            watch: Watch::Child(child),
            log,
            check: Check::Node {
                app: addr(node.app_port),
                cluster: addr(node.cluster_port),
            },
        };
        Ok((starting, record))
    }

    /// SIGTERM, then SIGKILL after the grace period (on a blocking thread:
    /// it polls); returns the processes that survived even that.
    async fn stop(&self, records: Vec<ProcRecord>) -> Result<Vec<ProcRecord>> {
        stop_within(records, self.grace).await
    }

    /// Graceful stops one node at a time, for run-time membership: each
    /// hands its copies to the owners that remain (up to
    /// [`HAND_OVER_LIMIT`]) before the next one starts to leave, so two
    /// owners of a session never leave at once. Returns the survivors.
    async fn leave_one_by_one(&self, records: Vec<ProcRecord>) -> Result<Vec<ProcRecord>> {
        let grace = self.grace + HAND_OVER_LIMIT;
        let mut left = Vec::new();
        for record in records {
            left.extend(stop_within(vec![record], grace).await?);
        }
        Ok(left)
    }

    /// Waiting for the running LB to see backends `ids` up.
    fn lb_waiting(
        &self,
        state: &ClusterState,
        record: ProcRecord,
        ids: Vec<String>,
    ) -> Result<Starting> {
        Ok(Starting {
            name: "lb".into(),
            watch: Watch::Record(record),
            log: self.rf.log_path("lb"),
            check: lb::health_check(&self.rf, state, ids)?,
        })
    }

    /// `sessionlab up`.
    pub async fn up(&self, opts: &UpOptions) -> Result<UpReport> {
        let began = Instant::now();
        let preset = opts.mode.preset();
        if !(1..=MAX_NODES).contains(&opts.nodes) {
            return Err(LabError::InvalidArgument(format!(
                "--nodes must be between 1 and {MAX_NODES}, not {}",
                opts.nodes
            )));
        }
        let _lock = self.rf.lock(LOCK_WAIT)?;
        if let Some(old) = self.rf.load()? {
            if old.any_alive() {
                return Err(LabError::AlreadyUp {
                    mode: old.mode.to_string(),
                    nodes: old.nodes.len(),
                    run_dir: self.rf.root().to_path_buf(),
                });
            }
            progress("forgetting the state of an earlier cluster that is no longer running");
            self.rf.clear()?;
        }
        let bins = Binaries::locate(opts.bin_dir.as_deref())?;
        if opts.lb.is_foreign() {
            if !opts.lb_args.is_empty() {
                return Err(LabError::InvalidArgument(format!(
                    "--lb-arg configures sessionlab-lb; with --lb {} the lab writes the LB's \
                     file itself (`sessionlab config lb` shows it)",
                    opts.lb
                )));
            }
            // Installed: checked before anything starts (every strategy
            // translates, see `lb::Balance`).
            match opts.lb {
                LbKind::Haproxy => lb::haproxy::find()?,
                _ => lb::nginx::find()?,
            };
        }
        if opts.tls_port.is_some() && opts.lb.is_foreign() {
            return Err(LabError::InvalidArgument(format!(
                "--tls works with --lb sessionlab only (not yet with --lb {})",
                opts.lb
            )));
        }
        // The redis mode brings its own Redis unless told where one runs.
        let own_redis = preset.redis == RedisTopology::Single && !redis::given_url(&opts.node_args);
        if own_redis {
            redis::find_server()?;
        }
        let sentinel = preset.redis == RedisTopology::Sentinel;
        if sentinel {
            redis_ha::find_programs()?;
            if redis::given_url(&opts.node_args) {
                return Err(LabError::InvalidArgument(
                    "mode redis-ha starts its own primary, replica and Sentinels; --redis-url \
                     would bypass them (use --mode redis with --redis-url)"
                        .into(),
                ));
            }
        }

        let mut alloc = PortAllocator::new([]);
        let lb = LbState {
            port: alloc.port(opts.ports.lb, 0, "LB")?,
            admin_port: alloc.port(opts.ports.admin, 0, "LB admin")?,
            process: None,
            args: Vec::new(),
            kind: opts.lb,
            program: None,
            drained: Default::default(),
            tls_port: match opts.tls_port {
                Some(base) => Some(alloc.port(base, 0, "LB HTTPS")?),
                None => None,
            },
        };
        let mut dashboard = DashboardState {
            port: alloc.port(opts.ports.dashboard, 0, "dashboard")?,
            process: None,
            args: Vec::new(),
        };
        let mut nodes = Vec::new();
        for i in 1..=opts.nodes {
            nodes.push(new_node(&mut alloc, &opts.ports, i)?);
        }
        let redis = match own_redis {
            true => Some(redis::RedisState {
                port: alloc.port(0, 0, "Redis")?,
                process: None,
            }),
            false => None,
        };
        let redis_ha = match sentinel {
            true => Some(redis_ha::HaState::allocate(&mut alloc)?),
            false => None,
        };
        dashboard.args = dashboard_args(&dashboard, &lb, &nodes, self.rf.root())?;
        let mut state = ClusterState {
            mode: opts.mode,
            bin_dir: bins.dir.clone(),
            started_at_unix_ms: sessionlab_wire::clock::unix_ms(),
            ports: opts.ports,
            node_extra_args: opts.node_args.clone(),
            lb_extra_args: match lb.tls_port {
                Some(port) => lb_tls_args(&crate::tls::TlsFiles::of(&self.rf), port)
                    .into_iter()
                    .chain(opts.lb_args.iter().cloned())
                    .collect(),
                None => opts.lb_args.clone(),
            },
            lb,
            dashboard: Some(dashboard),
            nodes,
            redis,
            redis_ha,
            cuts: Default::default(),
            delay_ms: 0,
            skews: Default::default(),
        };
        state.refresh_args();

        self.rf.create()?;
        for (_, path) in crate::logs::log_files(&self.rf) {
            std::fs::remove_file(&path)
                .map_err(LabError::io(format!("removing old log {}", path.display())))?;
        }
        self.rf.write_secret(&generate_secret()?)?;
        if state.lb.tls_port.is_some() {
            let files = crate::tls::TlsFiles::of(&self.rf);
            files.generate()?;
            let ca = files.read_ca()?.unwrap_or_default();
            self.api.trust_ca(&ca)?;
        }
        let token = generate_secret()?;
        self.rf.write_admin_token(&token)?;
        self.api.set_lb_token(Some(token));
        self.rf.save(&state)?;

        match self.start_all(&mut state).await {
            Ok(()) => Ok(UpReport {
                state,
                took: began.elapsed(),
            }),
            Err(e) => {
                progress("start-up failed; stopping what was started");
                let procs: Vec<ProcRecord> =
                    state.processes().into_iter().map(|(_, p)| p).collect();
                let survivors = self.stop(procs).await?;
                if survivors.is_empty() {
                    self.rf.clear()?;
                }
                Err(e)
            }
        }
    }

    async fn start_all(&self, state: &mut ClusterState) -> Result<()> {
        if let Some(port) = state.redis.as_ref().map(|r| r.port) {
            let (_child, started) = redis::start(&self.rf, port, self.health_timeout)?;
            progress(format!("started redis-server on port {port}"));
            state.redis = Some(started);
            self.rf.save(state)?;
        }
        if let Some(ha) = state.redis_ha.as_mut() {
            let started = redis_ha::start(&self.rf, ha, self.health_timeout);
            self.rf.save(state)?;
            started?;
            progress("started the Redis primary, its replica and three Sentinels");
        }
        let mut starting = Vec::new();
        for i in 0..state.nodes.len() {
            let (s, record) = self.spawn_node(state, i)?;
            state.nodes[i].process = Some(record);
            self.rf.save(state)?;
            starting.push(s);
        }
        // The admin token in the environment, never on the command line
        // (where `ps` would show it): the LB requires it, the dashboard
        // sends it to the LB.
        let token = self.rf.read_admin_token()?;
        let env = |name: &str| -> Vec<(String, String)> {
            token
                .iter()
                .map(|t| (name.to_string(), t.clone()))
                .collect()
        };
        let log = self.rf.log_path("lb");
        let (program, lb_env) = match state.lb.kind {
            LbKind::Sessionlab => (state.bin_dir.join("sessionlab-lb"), env(LB_ADMIN_TOKEN_ENV)),
            _ => {
                let (program, args) = lb::prepare(&self.rf, state)?;
                state.lb.program = Some(program.clone());
                state.lb.args = args;
                (program, Vec::new())
            }
        };
        let (child, record) = process::spawn(&Launch {
            program: &program,
            args: &state.lb.args,
            env: &lb_env,
            log: &log,
        })?;
        state.lb.process = Some(record);
        self.rf.save(state)?;
        starting.push(Starting {
            name: "lb".into(),
            watch: Watch::Child(child),
            log,
            check: lb::health_check(&self.rf, state, state.node_ids())?,
        });
        if let Some(d) = &state.dashboard {
            let log = self.rf.log_path(DASHBOARD);
            let (child, record) = process::spawn(&Launch {
                program: &state.bin_dir.join("sessionlab-dashboard"),
                args: &d.args,
                env: &env(DASHBOARD_LB_TOKEN_ENV),
                log: &log,
            })?;
            let check = Check::Dashboard { addr: addr(d.port) };
            if let Some(d) = state.dashboard.as_mut() {
                d.process = Some(record);
            }
            self.rf.save(state)?;
            starting.push(Starting {
                name: DASHBOARD.into(),
                watch: Watch::Child(child),
                log,
                check,
            });
        }
        progress(format!(
            "started {} nodes, the LB ({}) and the dashboard ({} mode); waiting for health",
            state.nodes.len(),
            state.lb.kind,
            state.mode
        ));
        health::wait_healthy(&self.api, &mut starting, self.health_timeout).await
    }

    /// `sessionlab down`: returns the names of the processes it stopped.
    /// Without a cluster it does nothing and says so (not an error, so
    /// scripts can always call it).
    pub async fn down(&self) -> Result<Option<Vec<String>>> {
        let _lock = self.rf.lock(LOCK_WAIT)?;
        let Some(state) = self.rf.load()? else {
            return Ok(None);
        };
        let procs = state.processes();
        let records: Vec<ProcRecord> = procs.iter().map(|(_, p)| *p).collect();
        let survivors = self.stop(records).await?;
        if !survivors.is_empty() {
            let names: Vec<String> = procs
                .iter()
                .filter(|(_, p)| survivors.contains(p))
                .map(|(n, p)| format!("{n} (pid {})", p.pid))
                .collect();
            return Err(LabError::Survivors(names.join(", ")));
        }
        self.rf.clear()?;
        Ok(Some(procs.into_iter().map(|(n, _)| n).collect()))
    }

    /// `sessionlab kill NODE`: SIGKILL, no goodbye, as in a crash.
    /// `kill redis` kills the redis mode's Redis server.
    pub async fn kill(&self, id: &str) -> Result<u32> {
        let _lock = self.rf.lock(LOCK_WAIT)?;
        let mut state = self.rf.load_required()?;
        if id == redis::NAME && state.redis_ha.is_some() {
            return Err(redis_ha::not_one_redis());
        }
        if id == redis::NAME {
            return self.kill_redis(&mut state);
        }
        if let Some(ha) = state.redis_ha.as_mut().filter(|ha| ha.names(id)) {
            let pid = match id {
                redis_ha::PRIMARY => {
                    let (server, pid) = ha.kill_primary()?;
                    progress(format!("the Sentinels named {server} as the primary"));
                    pid
                }
                _ => ha.kill(id)?,
            };
            self.rf.save(&state)?;
            return Ok(pid);
        }
        let node = state.node_mut(id)?;
        let record = running(node)?;
        record.signal(Signal::SIGKILL)?;
        let left = process::wait_all_exit(&[record], Duration::from_secs(5));
        if !left.is_empty() {
            return Err(LabError::Survivors(format!("{id} (pid {})", record.pid)));
        }
        node.process = None;
        self.rf.save(&state)?;
        Ok(record.pid)
    }

    /// `sessionlab restart NODE`: stop (if running), start with the same
    /// command line, wait until it and the LB's view of it are healthy, and
    /// re-apply the partitions it was part of.
    pub async fn restart(&self, id: &str) -> Result<()> {
        let _lock = self.rf.lock(LOCK_WAIT)?;
        let mut state = self.rf.load_required()?;
        if id == redis::NAME && state.redis_ha.is_some() {
            return Err(redis_ha::not_one_redis());
        }
        if id == redis::NAME {
            return self.restart_redis(&mut state);
        }
        if let Some(mut ha) = state.redis_ha.clone().filter(|ha| ha.names(id)) {
            for target in ha.restart_targets(id)? {
                let restarted =
                    redis_ha::restart(&self.rf, &mut ha, &target, self.grace, self.health_timeout);
                state.redis_ha = Some(ha.clone());
                self.rf.save(&state)?;
                restarted?;
            }
            return Ok(());
        }
        state.node(id)?;
        self.restart_node(&mut state, id, false).await
    }

    /// Stops (SIGTERM, then SIGKILL) and starts one node again; with `drain`,
    /// drains it in the LB first and undrains it afterwards.
    async fn restart_node(&self, state: &mut ClusterState, id: &str, drain: bool) -> Result<()> {
        let admin = addr(state.lb.admin_port);
        let lb = state.lb.process.filter(|p| p.is_alive());
        if drain && lb.is_some() {
            self.api.lb_drain(&admin, id, true).await?;
        }
        let i = state
            .nodes
            .iter()
            .position(|n| n.id == id)
            .expect("checked by caller");
        if let Some(record) = state.nodes[i].process {
            let left = self.stop(vec![record]).await?;
            if !left.is_empty() {
                return Err(LabError::Survivors(format!("{id} (pid {})", record.pid)));
            }
            state.nodes[i].process = None;
            self.rf.save(state)?;
        }
        progress(format!("starting {id}"));
        let (s, record) = self.spawn_node(state, i)?;
        state.nodes[i].process = Some(record);
        self.rf.save(state)?;
        let mut starting = vec![s];
        if let Some(lb) = lb {
            starting.push(self.lb_waiting(state, lb, vec![id.to_string()])?);
        }
        health::wait_healthy(&self.api, &mut starting, self.health_timeout).await?;
        if drain && lb.is_some() {
            self.api.lb_drain(&admin, id, false).await?;
        }
        faults::reapply(&self.api, &self.rf, state, id).await
    }

    /// SIGKILL the lab's Redis: every node turns degraded at once.
    fn kill_redis(&self, state: &mut ClusterState) -> Result<u32> {
        let r = state.redis.as_mut().ok_or_else(no_own_redis)?;
        let record = r.process.filter(|p| p.is_alive()).ok_or_else(|| {
            LabError::InvalidArgument(
                "redis is not running; start it with `sessionlab restart redis`".into(),
            )
        })?;
        record.signal(Signal::SIGKILL)?;
        if !process::wait_all_exit(&[record], Duration::from_secs(5)).is_empty() {
            return Err(LabError::Survivors(format!("redis (pid {})", record.pid)));
        }
        r.process = None;
        self.rf.save(state)?;
        Ok(record.pid)
    }

    /// Start the lab's Redis again on its port (empty: it keeps nothing).
    fn restart_redis(&self, state: &mut ClusterState) -> Result<()> {
        let r = state.redis.as_ref().ok_or_else(no_own_redis)?;
        if let Some(p) = r.process.filter(|p| p.is_alive()) {
            p.signal(Signal::SIGTERM)?;
            if !process::wait_all_exit(&[p], self.grace).is_empty() {
                p.signal(Signal::SIGKILL)?;
                process::wait_all_exit(&[p], Duration::from_secs(5));
            }
        }
        let (_child, started) = redis::start(&self.rf, r.port, self.health_timeout)?;
        state.redis = Some(started);
        self.rf.save(state)
    }

    /// `sessionlab drain NODE` / `undrain NODE`: in whichever LB runs
    /// ([`lb::drain`]); returns the sentence for the person.
    pub async fn drain(&self, id: &str, drain: bool) -> Result<String> {
        let _lock = self.rf.lock(LOCK_WAIT)?;
        let mut state = self.rf.load_required()?;
        state.node(id)?;
        running_lb(&state)?;
        lb::drain(&self.api, &self.rf, &mut state, id, drain).await
    }

    /// `sessionlab scale --nodes N`.
    pub async fn scale(&self, target: usize) -> Result<ClusterState> {
        if !(1..=MAX_NODES).contains(&target) {
            return Err(LabError::InvalidArgument(format!(
                "--nodes must be between 1 and {MAX_NODES}, not {target}"
            )));
        }
        let _lock = self.rf.lock(LOCK_WAIT)?;
        let mut state = self.rf.load_required()?;
        if state.lb.kind.is_foreign() {
            return Err(LabError::InvalidArgument(format!(
                "scale changes the LB's pool through sessionlab-lb's admin API; with --lb {} \
                 bring the cluster down and up again with the new --nodes",
                state.lb.kind
            )));
        }
        let current = state.nodes.len();
        let preset = state.mode.preset();
        let admin = addr(state.lb.admin_port);
        let lb = running_lb(&state)?;
        if target > current {
            let in_use = state
                .nodes
                .iter()
                .flat_map(|n| [n.app_port, n.cluster_port])
                .chain([state.lb.port, state.lb.admin_port])
                .chain(state.dashboard.as_ref().map(|d| d.port));
            let mut alloc = PortAllocator::new(in_use);
            for i in current + 1..=target {
                let node = new_node(&mut alloc, &state.ports, i)?;
                state.nodes.push(node);
            }
            state.refresh_args();
            // Existing nodes learn the new peers first, so the new nodes
            // join a cluster that already expects them (a cluster with
            // run-time membership learns them when they join).
            if preset.replication && !preset.dynamic_membership {
                for id in state.node_ids().into_iter().take(current) {
                    if state.node(&id)?.process.is_some() {
                        progress(format!("rolling restart: {id} learns the new peers"));
                        self.restart_node(&mut state, &id, true).await?;
                    }
                }
            }
            let mut starting = Vec::new();
            for i in current..target {
                progress(format!("starting {}", state.nodes[i].id));
                let (s, record) = self.spawn_node(&state, i)?;
                state.nodes[i].process = Some(record);
                self.rf.save(&state)?;
                starting.push(s);
            }
            health::wait_healthy(&self.api, &mut starting, self.health_timeout).await?;
            let new_ids: Vec<String> = state.nodes[current..]
                .iter()
                .map(|n| n.id.clone())
                .collect();
            for n in &state.nodes[current..] {
                self.api
                    .lb_add_backend(&admin, &n.id, &addr(n.app_port), &addr(n.cluster_port))
                    .await?;
            }
            let mut waiting = vec![self.lb_waiting(&state, lb, new_ids)?];
            health::wait_healthy(&self.api, &mut waiting, self.health_timeout).await?;
        } else if target < current {
            let removed: Vec<NodeState> = state.nodes.drain(target..).collect();
            for n in &removed {
                progress(format!("removing {} from the LB and stopping it", n.id));
                self.api.lb_drain(&admin, &n.id, true).await?;
                self.api.lb_remove_backend(&admin, &n.id).await?;
            }
            let records: Vec<ProcRecord> = removed.iter().filter_map(|n| n.process).collect();
            let left = if preset.dynamic_membership {
                self.leave_one_by_one(records).await?
            } else {
                self.stop(records).await?
            };
            if !left.is_empty() {
                let pids: Vec<String> = left.iter().map(|p| p.pid.to_string()).collect();
                return Err(LabError::Survivors(format!("pids {}", pids.join(", "))));
            }
            state
                .cuts
                .retain(|(a, b)| removed.iter().all(|n| &n.id != a && &n.id != b));
            state.refresh_args();
            self.rf.save(&state)?;
            if preset.replication && !preset.dynamic_membership {
                for id in state.node_ids() {
                    if state.node(&id)?.process.is_some() {
                        progress(format!("rolling restart: {id} forgets the removed peers"));
                        self.restart_node(&mut state, &id, true).await?;
                    }
                }
            }
        }
        self.rf.save(&state)?;
        Ok(state)
    }
}

/// SIGTERM, then SIGKILL after `grace` (on a blocking thread: it polls);
/// returns the processes that survived even that.
async fn stop_within(records: Vec<ProcRecord>, grace: Duration) -> Result<Vec<ProcRecord>> {
    tokio::task::spawn_blocking(move || process::terminate_all(&records, grace))
        .await
        .map_err(|e| LabError::Io {
            what: "stopping processes".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// The LB's record if it runs, or an error saying it does not.
fn running_lb(state: &ClusterState) -> Result<ProcRecord> {
    state.lb.process.filter(|p| p.is_alive()).ok_or_else(|| {
        LabError::InvalidArgument(
            "the LB is not running; bring the cluster down and up again".into(),
        )
    })
}

fn no_own_redis() -> LabError {
    LabError::InvalidArgument(
        "this cluster has no Redis of its own (not the redis mode, or up --redis-url)".into(),
    )
}

/// The environment variable that hands the token key to a jwt-mode node.
pub const JWT_SECRET_ENV: &str = "SESSIONLAB_JWT_SECRET";

/// The jwt mode's signing key, derived from the cluster secret with HKDF
/// ([`sessionlab_wire::keys::jwt_secret`], its own `info` label): a
/// different key from the one that signs replication traffic, without a
/// second secret file to keep.
pub fn jwt_secret(cluster_secret: &str) -> String {
    sessionlab_wire::keys::jwt_secret(cluster_secret)
}

/// A node that is running, or an error saying it is not.
fn running(node: &NodeState) -> Result<ProcRecord> {
    match node.process {
        Some(p) if p.is_alive() => Ok(p),
        _ => Err(LabError::InvalidArgument(format!(
            "{} is not running; start it with `sessionlab restart {}`",
            node.id, node.id
        ))),
    }
}

fn new_node(alloc: &mut PortAllocator, bases: &PortBases, i: usize) -> Result<NodeState> {
    let id = node_id(i);
    let offset = (i - 1) as u16;
    Ok(NodeState {
        app_port: alloc.port(bases.node, offset, &format!("{id} app"))?,
        cluster_port: alloc.port(bases.cluster, offset, &format!("{id} cluster"))?,
        id,
        process: None,
        args: Vec::new(),
    })
}

impl ClusterState {
    /// Recomputes every process's command line from the mode and the
    /// current membership (after `up` or `scale`).
    pub fn refresh_args(&mut self) {
        let preset = self.mode.preset();
        let nodes = self.nodes.clone();
        for n in &mut self.nodes {
            n.args = node_args(preset, n, &nodes, &self.node_extra_args);
            n.args.extend(
                lb::node_flags(self.lb.kind, preset.lb_strategy)
                    .iter()
                    .map(|s| s.to_string()),
            );
            if let Some(r) = &self.redis {
                n.args.extend(["--redis-url".to_string(), r.url()]);
            }
            if let Some(ha) = &self.redis_ha {
                n.args.extend(ha.node_flags());
            }
        }
        // A foreign LB's command line is made with its file, at start.
        if !self.lb.kind.is_foreign() {
            let cookie = node_cookie_name(&self.node_extra_args);
            self.lb.args = lb_args(preset, &self.lb, &self.nodes, cookie, &self.lb_extra_args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lb_reads_the_cookie_name_the_nodes_use() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(node_cookie_name(&args(&[])), "SLSESSION");
        assert_eq!(
            node_cookie_name(&args(&["--secure-cookies", "--cookie-name", "APP"])),
            "APP"
        );
        assert_eq!(node_cookie_name(&args(&["--cookie-name=X"])), "X");
    }

    #[test]
    fn the_jwt_key_is_the_hkdf_of_the_cluster_secret() {
        let secret = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            jwt_secret(secret),
            sessionlab_wire::keys::jwt_secret(secret)
        );
        assert!(jwt_secret(secret).len() >= 32, "the node wants 32 bytes");
    }
}
