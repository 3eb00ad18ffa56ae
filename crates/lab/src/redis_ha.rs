//! The Redis of a `redis-ha` cluster: a primary, one replica and three
//! Sentinels, each a real Debian `redis-server` / `redis-sentinel` process.
//!
//! ## Topology
//!
//! | process | starts as | config file (in `RUN_DIR/redis-ha/`) |
//! |---|---|---|
//! | `redis-1` | primary | `redis-1.conf` |
//! | `redis-2` | replica of `redis-1` | `redis-2.conf` (`replicaof`) |
//! | `sentinel-1..3` | watching the primary named [`MASTER_NAME`] | `sentinel-N.conf` (Sentinel rewrites it: it records what it learns there) |
//!
//! The nodes get `--redis-sentinel` for every Sentinel and
//! `--redis-master-name`; they never see a server's address on their
//! command line, they ask the Sentinels which server is the primary now.
//!
//! ## A failover, step by step
//!
//! | after the primary dies | what happens |
//! |---|---|
//! | [`DOWN_AFTER_MS`] | each Sentinel marks it *subjectively* down |
//! | [`QUORUM`] Sentinels agree | *objectively* down; they elect a leader |
//! | the leader | sends `REPLICAOF NO ONE` to the replica and announces the new primary |
//! | nodes | their next request to the dead address fails; they ask the Sentinels again and connect to the new primary |
//!
//! With these timings a failover takes a few seconds; the figures of
//! `compare --scenario redis-failover` are measured, not these.
//!
//! Replication from primary to replica is asynchronous: a write is
//! acknowledged to the node (and the node answers the user) before the
//! replica has it. What the replica had not received when the primary died
//! is gone after the promotion. `--redis-wait` (`WAIT` after each write)
//! narrows that window; it does not close it (a `WAIT` that times out still
//! leaves the write acknowledged, and the promoted replica may not be the
//! one that confirmed).
//!
//! ## Why no persistence, and why a restarted server gets `--replicaof`
//!
//! The servers keep nothing on disk (the lab's sessions are meant to vanish
//! with it). A primary without persistence that comes back *as a primary*
//! is empty, and a replica that follows it would be emptied too. So
//! `restart` never starts a server as a primary: it asks the Sentinels who
//! the primary is now and starts the server with `--replicaof` that one
//! (Sentinel would turn it into a replica anyway, after a moment in which
//! it is an empty primary).

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::ports::PortAllocator;
use crate::process::{self, ProcRecord};
use crate::runfolder::RunFolder;

/// The name the Sentinels monitor the primary under (`--redis-master-name`).
pub const MASTER_NAME: &str = "sessionlab";
/// What `kill` and `restart` accept for "whichever server is primary now".
pub const PRIMARY: &str = "redis-primary";
/// Sentinels that must agree the primary is down before a failover.
pub const QUORUM: usize = 2;
/// How long a primary may not answer before a Sentinel thinks it down.
pub const DOWN_AFTER_MS: u64 = 1000;
/// Sentinel's `failover-timeout`: a failover that stalls is retried after
/// twice this.
pub const FAILOVER_TIMEOUT_MS: u64 = 3000;
/// How many Sentinels the lab starts.
pub const SENTINELS: usize = 3;
/// How long one question to a server or a Sentinel may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// One process of the topology: a server or a Sentinel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub port: u16,
    pub process: Option<ProcRecord>,
}

impl Member {
    fn alive(&self) -> Option<ProcRecord> {
        self.process.filter(|p| p.is_alive())
    }
}

/// The servers and the Sentinels of a `redis-ha` cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HaState {
    /// `redis-1` (the first primary) and `redis-2`.
    pub servers: Vec<Member>,
    pub sentinels: Vec<Member>,
}

/// A server's own word on its role (`ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Primary,
    Replica,
    /// A Sentinel answered `ROLE` (not a data server).
    Sentinel,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Sentinel => "sentinel",
        }
    }
}

/// `redis-server` and `redis-sentinel` on `PATH`, or an error naming the
/// package that brings the missing one.
pub fn find_programs() -> Result<(PathBuf, PathBuf)> {
    let missing = |program: &str, package: &str| {
        LabError::InvalidArgument(format!(
            "mode redis-ha needs {program}, and it is not on PATH: install the {package} \
             package (Debian/Ubuntu: apt-get install {package})"
        ))
    };
    let server = crate::redis::on_path("redis-server")
        .ok_or_else(|| missing("redis-server", "redis-server"))?;
    let sentinel = crate::redis::on_path("redis-sentinel")
        .ok_or_else(|| missing("redis-sentinel", "redis-sentinel"))?;
    Ok((server, sentinel))
}

fn member(alloc: &mut PortAllocator, id: String) -> Result<Member> {
    Ok(Member {
        port: alloc.port(0, 0, &id)?,
        id,
        process: None,
    })
}

impl HaState {
    /// Free ports for two servers and three Sentinels.
    pub fn allocate(alloc: &mut PortAllocator) -> Result<HaState> {
        Ok(HaState {
            servers: (1..=2)
                .map(|i| member(alloc, format!("redis-{i}")))
                .collect::<Result<_>>()?,
            sentinels: (1..=SENTINELS)
                .map(|i| member(alloc, format!("sentinel-{i}")))
                .collect::<Result<_>>()?,
        })
    }

    /// What every node gets: each Sentinel and the master name.
    pub fn node_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = self
            .sentinels
            .iter()
            .flat_map(|s| {
                [
                    "--redis-sentinel".to_string(),
                    format!("127.0.0.1:{}", s.port),
                ]
            })
            .collect();
        flags.extend(["--redis-master-name".into(), MASTER_NAME.into()]);
        flags
    }

    /// Every member, servers first, with its record if it has one.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.servers.iter().chain(&self.sentinels)
    }

    /// Whether `name` is one of this topology's processes or [`PRIMARY`].
    pub fn names(&self, name: &str) -> bool {
        name == PRIMARY || self.members().any(|m| m.id == name)
    }

    fn server_at(&self, port: u16) -> Option<usize> {
        self.servers.iter().position(|m| m.port == port)
    }

    /// The port of the primary as the Sentinels name it now: the answer
    /// at least [`QUORUM`] of them give (the same question the nodes ask).
    /// `None` while they disagree or too few answer.
    pub fn primary_port(&self) -> Option<u16> {
        let answers: Vec<u16> = self
            .sentinels
            .iter()
            .filter(|s| s.alive().is_some())
            .filter_map(|s| ask_primary(s.port).ok())
            .collect();
        majority(&answers)
    }

    /// The server the Sentinels name as primary now, by id.
    pub fn primary(&self) -> Option<&Member> {
        self.primary_port()
            .and_then(|p| self.server_at(p))
            .map(|i| &self.servers[i])
    }

    /// SIGKILL whichever server is primary now; returns its id and pid.
    pub fn kill_primary(&mut self) -> Result<(String, u32)> {
        let id = self.primary().map(|m| m.id.clone()).ok_or_else(|| {
            LabError::InvalidArgument(
                "the Sentinels do not agree on a primary right now (a failover is under \
                     way, or too few of them run); try again in a few seconds"
                    .into(),
            )
        })?;
        let pid = self.kill(&id)?;
        Ok((id, pid))
    }

    /// SIGKILL one member by id.
    pub fn kill(&mut self, id: &str) -> Result<u32> {
        let m = self.member_mut(id)?;
        let record = m.alive().ok_or_else(|| {
            LabError::InvalidArgument(format!(
                "{id} is not running; start it with `sessionlab restart {id}`"
            ))
        })?;
        record.signal(Signal::SIGKILL)?;
        if !process::wait_all_exit(&[record], Duration::from_secs(5)).is_empty() {
            return Err(LabError::Survivors(format!("{id} (pid {})", record.pid)));
        }
        m.process = None;
        Ok(record.pid)
    }

    fn member_mut(&mut self, id: &str) -> Result<&mut Member> {
        let valid: Vec<String> = self.members().map(|m| m.id.clone()).collect();
        self.servers
            .iter_mut()
            .chain(self.sentinels.iter_mut())
            .find(|m| m.id == id)
            .ok_or_else(|| LabError::UnknownNode {
                name: id.to_string(),
                valid: format!("{}, {PRIMARY}", valid.join(", ")),
            })
    }

    /// The ids `restart NAME` means: the member itself, or for
    /// [`PRIMARY`] the servers that are stopped (the one a `kill
    /// redis-primary` stopped comes back, as a replica).
    pub fn restart_targets(&self, name: &str) -> Result<Vec<String>> {
        if name != PRIMARY {
            return Ok(vec![name.to_string()]);
        }
        let stopped: Vec<String> = self
            .servers
            .iter()
            .filter(|m| m.alive().is_none())
            .map(|m| m.id.clone())
            .collect();
        if stopped.is_empty() {
            return Err(LabError::InvalidArgument(format!(
                "every Redis server runs; `restart {PRIMARY}` starts the one `kill {PRIMARY}` \
                 stopped (to restart a running one, name it: {})",
                self.servers
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(stopped)
    }
}

/// Whether `name` names a process of a `redis-ha` topology (or
/// [`PRIMARY`]) by its form; node ids are `node-N`, so the two never meet.
pub fn is_member_name(name: &str) -> bool {
    name == PRIMARY
        || ["redis-", "sentinel-"].iter().any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// `kill redis` / `restart redis` in a `redis-ha` cluster: there is no one
/// Redis; say what to name instead.
pub fn not_one_redis() -> LabError {
    LabError::InvalidArgument(format!(
        "mode redis-ha has two Redis servers and three Sentinels: name `{PRIMARY}` (whichever \
         server is primary now), redis-1, redis-2 or sentinel-1..sentinel-{SENTINELS}"
    ))
}

/// The value at least [`QUORUM`] of `answers` agree on.
fn majority(answers: &[u16]) -> Option<u16> {
    answers
        .iter()
        .copied()
        .find(|a| answers.iter().filter(|b| *b == a).count() >= QUORUM)
}

fn connect(port: u16) -> Result<::redis::Connection> {
    let fail = |e: ::redis::RedisError| LabError::InvalidArgument(format!("127.0.0.1:{port}: {e}"));
    let client = ::redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(fail)?;
    let conn = client
        .get_connection_with_timeout(ASK_TIMEOUT)
        .map_err(fail)?;
    conn.set_read_timeout(Some(ASK_TIMEOUT)).map_err(fail)?;
    conn.set_write_timeout(Some(ASK_TIMEOUT)).map_err(fail)?;
    Ok(conn)
}

fn query<T: ::redis::FromRedisValue>(port: u16, cmd: &::redis::Cmd) -> Result<T> {
    let mut conn = connect(port)?;
    cmd.query(&mut conn)
        .map_err(|e| LabError::InvalidArgument(format!("127.0.0.1:{port}: {e}")))
}

/// One Sentinel's answer to `SENTINEL get-master-addr-by-name`.
fn ask_primary(sentinel: u16) -> Result<u16> {
    let (_host, port): (String, String) = query(
        sentinel,
        ::redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME),
    )?;
    port.parse().map_err(|_| {
        LabError::InvalidArgument(format!("sentinel 127.0.0.1:{sentinel}: port {port}"))
    })
}

/// A server's role, from the first element of its `ROLE` reply.
pub fn role(port: u16) -> Option<Role> {
    let reply: Vec<::redis::Value> = query(port, &::redis::cmd("ROLE")).ok()?;
    let first = match reply.first()? {
        ::redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        ::redis::Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    match first.as_str() {
        "master" => Some(Role::Primary),
        "slave" => Some(Role::Replica),
        "sentinel" => Some(Role::Sentinel),
        _ => None,
    }
}

/// Whether a replica's link to its primary is up (`ROLE`'s fourth field).
fn replica_connected(port: u16) -> bool {
    let Ok(reply) = query::<Vec<::redis::Value>>(port, &::redis::cmd("ROLE")) else {
        return false;
    };
    matches!(reply.get(3), Some(::redis::Value::BulkString(b)) if b == b"connected")
}

/// How many replicas and other Sentinels one Sentinel knows of.
fn sentinel_view(port: u16) -> (usize, usize) {
    let count = |sub: &str| {
        query::<Vec<::redis::Value>>(port, ::redis::cmd("SENTINEL").arg(sub).arg(MASTER_NAME))
            .map(|v| v.len())
            .unwrap_or(0)
    };
    (count("replicas"), count("sentinels"))
}

fn conf_dir(rf: &RunFolder) -> PathBuf {
    rf.root().join("redis-ha")
}

/// The config file of a data server (`replica_of`: the primary's port).
pub fn server_conf(dir: &Path, port: u16, replica_of: Option<u16>) -> String {
    let mut conf = format!(
        "# written by sessionlab up --mode redis-ha\n\
         port {port}\n\
         bind 127.0.0.1\n\
         # no persistence: the lab's sessions vanish with it\n\
         save \"\"\n\
         appendonly no\n\
         dir {dir}\n\
         # the first sync and a resync after a restart without waiting for more replicas\n\
         repl-diskless-sync yes\n\
         repl-diskless-sync-delay 0\n",
        dir = dir.display()
    );
    if let Some(p) = replica_of {
        conf.push_str(&format!("replicaof 127.0.0.1 {p}\n"));
    }
    conf
}

/// The config file of a Sentinel watching the primary on `primary`.
pub fn sentinel_conf(dir: &Path, port: u16, primary: u16) -> String {
    format!(
        "# written by sessionlab up --mode redis-ha; Sentinel adds what it learns below\n\
         port {port}\n\
         bind 127.0.0.1\n\
         dir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} {QUORUM}\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display()
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(LabError::io(format!("writing {}", path.display())))
}

/// Writes the config files and starts the servers, then the Sentinels;
/// waits until the replica is in sync and every Sentinel knows the replica
/// and the other Sentinels (before that, a failover could not happen).
/// Records each process in `ha` as it starts, so a failure half way leaves
/// the started ones in the state for `down`.
pub fn start(rf: &RunFolder, ha: &mut HaState, timeout: Duration) -> Result<()> {
    let (server, sentinel) = find_programs()?;
    let dir = conf_dir(rf);
    crate::lb::plain_path(&dir)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let primary = ha.servers[0].port;
    for (i, m) in ha.servers.iter_mut().enumerate() {
        let conf = dir.join(format!("{}.conf", m.id));
        write(
            &conf,
            &server_conf(&dir, m.port, (i > 0).then_some(primary)),
        )?;
        let args = vec![conf.display().to_string()];
        let (_child, record) =
            crate::redis::spawn_listening(rf, &m.id, &server, &args, m.port, timeout)?;
        m.process = Some(record);
    }
    for m in &mut ha.sentinels {
        let conf = dir.join(format!("{}.conf", m.id));
        write(&conf, &sentinel_conf(&dir, m.port, primary))?;
        let args = vec![conf.display().to_string()];
        let (_child, record) =
            crate::redis::spawn_listening(rf, &m.id, &sentinel, &args, m.port, timeout)?;
        m.process = Some(record);
    }
    wait_settled(ha, timeout)
}

/// Waits until every running replica is in sync and every running
/// Sentinel knows the running replicas and the other running Sentinels.
pub fn wait_settled(ha: &HaState, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let servers: Vec<&Member> = ha.servers.iter().filter(|m| m.alive().is_some()).collect();
        let sentinels: Vec<&Member> = ha
            .sentinels
            .iter()
            .filter(|m| m.alive().is_some())
            .collect();
        let primary = ha.primary_port();
        let replicas_synced = servers
            .iter()
            .filter(|m| Some(m.port) != primary)
            .all(|m| replica_connected(m.port));
        let sentinels_know = sentinels.iter().all(|s| {
            let (replicas, others) = sentinel_view(s.port);
            replicas + 1 >= servers.len() && others + 1 >= sentinels.len()
        });
        if primary.is_some() && replicas_synced && sentinels_know {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(LabError::InvalidArgument(format!(
                "the Redis servers and Sentinels did not settle within {timeout:?} (primary \
                 named by the Sentinels: {primary:?}, replicas in sync: {replicas_synced}, \
                 Sentinels know each other and the replica: {sentinels_know}); see logs/redis-*.log \
                 and logs/sentinel-*.log"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops (if running) and starts one member again with its config file; a
/// server comes back as a replica of whichever server the Sentinels name
/// as primary now (see the module docs for why).
pub fn restart(
    rf: &RunFolder,
    ha: &mut HaState,
    id: &str,
    grace: Duration,
    timeout: Duration,
) -> Result<()> {
    let (server, sentinel) = find_programs()?;
    let primary = ha.primary_port();
    let is_server = ha.servers.iter().any(|m| m.id == id);
    let m = ha.member_mut(id)?;
    if let Some(p) = m.alive() {
        let left = process::terminate_all(&[p], grace)?;
        if !left.is_empty() {
            return Err(LabError::Survivors(format!("{id} (pid {})", p.pid)));
        }
    }
    m.process = None;
    let conf = conf_dir(rf).join(format!("{id}.conf"));
    let mut args = vec![conf.display().to_string()];
    let program = if is_server {
        match primary.filter(|p| *p != m.port) {
            Some(p) => args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]),
            None => {
                return Err(LabError::InvalidArgument(format!(
                    "the Sentinels name no other running primary for {id} to follow (a \
                     failover may still be under way); starting it as a primary without data \
                     would empty its replica, so try again in a few seconds"
                )));
            }
        }
        server
    } else {
        sentinel
    };
    let (_child, record): (Child, ProcRecord) =
        crate::redis::spawn_listening(rf, id, &program, &args, m.port, timeout)?;
    m.process = Some(record);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_is_what_a_quorum_of_sentinels_names() {
        assert_eq!(majority(&[7001, 7001, 7002]), Some(7001));
        assert_eq!(majority(&[7002, 7001, 7002]), Some(7002));
        assert_eq!(majority(&[7001, 7002]), None, "one each is no quorum");
        assert_eq!(majority(&[7001]), None);
        assert_eq!(majority(&[]), None);
    }

    #[test]
    fn config_files_say_the_topology() {
        let dir = Path::new("/run/x/redis-ha");
        let primary = server_conf(dir, 7001, None);
        assert!(primary.contains("port 7001\n") && !primary.contains("replicaof"));
        assert!(primary.contains("save \"\"\n") && primary.contains("dir /run/x/redis-ha\n"));
        let replica = server_conf(dir, 7002, Some(7001));
        assert!(replica.contains("replicaof 127.0.0.1 7001\n"));
        let s = sentinel_conf(dir, 7101, 7001);
        assert!(
            s.contains("sentinel monitor sessionlab 127.0.0.1 7001 2\n"),
            "{s}"
        );
        assert!(s.contains("down-after-milliseconds sessionlab 1000\n"));
        assert!(s.contains("failover-timeout sessionlab 3000\n"));
    }

    #[test]
    fn nodes_get_every_sentinel_and_the_master_name() {
        let mut alloc = PortAllocator::new([]);
        let ha = HaState::allocate(&mut alloc).unwrap();
        let flags = ha.node_flags();
        assert_eq!(flags.iter().filter(|f| *f == "--redis-sentinel").count(), 3);
        assert_eq!(
            &flags[flags.len() - 2..],
            ["--redis-master-name", MASTER_NAME]
        );
        assert!(ha.names("redis-2") && ha.names("sentinel-3") && ha.names(PRIMARY));
        assert!(!ha.names("node-1"));
        assert!(
            is_member_name(PRIMARY) && is_member_name("redis-2") && is_member_name("sentinel-3")
        );
        assert!(!is_member_name("redis") && !is_member_name("redis-") && !is_member_name("node-1"));
        let targets = ha.restart_targets(PRIMARY).unwrap();
        assert_eq!(
            targets,
            ["redis-1", "redis-2"],
            "nothing runs yet: both are stopped"
        );
        assert_eq!(ha.restart_targets("sentinel-2").unwrap(), ["sentinel-2"]);
    }
}
