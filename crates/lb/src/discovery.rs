//! DNS discovery: backends found by a name rather than listed.
//!
//! `--discover NAME:PORT` makes every address NAME resolves to a backend.
//! It is how containers find each other when one definition runs as many
//! replicas: a compose service scaled with `docker-compose --scale node=5`
//! answers its name with one address per container, a Kubernetes headless
//! Service with one per pod. The name is looked up again every
//! `--discover-interval` (default 2 s), so the table follows the cluster as
//! it grows and shrinks, and nothing has to tell the LB.
//!
//! | event | what the LB does | why |
//! |---|---|---|
//! | a new address in the answer | asks its health path who it is, adds it **down** | a node is named by the id it reports (`X-Served-By`), so sticky cookies and the dashboard name it as everyone else does; it takes traffic only after `--health-rise` good checks (a node still joining answers 503) |
//! | a new address that does not answer yet | nothing; asked again at the next lookup | a container's DNS entry comes before its listener |
//! | an address that answers without `X-Served-By` | added under an id made of its address (`10-0-0-5-8081`) | any HTTP backend can be discovered |
//! | an address whose reported id is already in the table elsewhere | not added; `problem` in the admin API says why | two backends with one id would share a sticky cookie |
//! | an address gone from a successful answer | removed (requests on it finish) | the container stopped, the pod was deleted |
//! | a failed lookup (timeout, no such name) | **nothing changes**; the error is logged once and shown in the admin API | a DNS hiccup must not empty the table; health checks still take dead backends out |
//!
//! Discovery only adds and removes what it found: `--backend`s and
//! backends added through the admin API are never touched, and an address
//! already in the table under any id is left to it. A discovered backend
//! removed through the admin API comes back at the next lookup while the
//! name still resolves to it: drain it instead.
//!
//! The decisions are [`Discovered::changes`], a pure function of the last
//! answer and the table, tested with plain values; [`run`] is the loop
//! that does the I/O, generic over a [`Lookup`] so its timing is tested on
//! tokio's paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use sessionlab_shutdown::Every;
use sessionlab_wire::addr::HostPort;
use sessionlab_wire::lb_admin::DiscoveryView;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::backend::{BackendSpec, is_valid_id};

/// How long one lookup may take before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// The most addresses one answer may add (the table's own bound is higher,
/// but a name answering thousands of addresses is a mistake, not a cluster).
pub const MAX_DISCOVERED: usize = 64;

/// `--discover NAME:PORT` and `--discover-interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// The name (or address) to look up, and the port of every answer.
    pub target: HostPort,
    pub interval: Duration,
    /// `--discover-admin-port`: each discovered node's cluster listener is
    /// at its address with this port (shown as the backend's `admin`, where
    /// the dashboard reads the node).
    pub admin_port: Option<u16>,
}

/// What the loop needs from the backend table (the [`Balancer`] in
/// production, a map in the tests).
///
/// [`Balancer`]: crate::balancer::Balancer
pub trait Table {
    /// The address of the backend with this id, if there is one.
    fn addr_of(&self, id: &str) -> Option<SocketAddr>;
    /// Whether any backend forwards to this address.
    fn has_addr(&self, addr: SocketAddr) -> bool;
    /// Add a backend (down until its checks pass), with its node's cluster
    /// listener if known.
    fn add(&self, spec: BackendSpec, admin: Option<SocketAddr>) -> Result<(), String>;
    /// Remove a backend; an unknown id is not an error.
    fn remove(&self, id: &str);
}

/// Where answers and ids come from: DNS and the backends' health path in
/// production, a script in the tests.
pub trait Lookup: Send + Sync + 'static {
    /// Every address the name resolves to now.
    fn resolve(&self) -> impl Future<Output = Result<Vec<SocketAddr>, String>> + Send;
    /// Ask the backend at `addr` who it is: `Err` if it does not answer,
    /// `Ok(None)` if it answers without saying.
    fn identify(&self, addr: SocketAddr)
    -> impl Future<Output = Result<Option<String>, ()>> + Send;
}

/// What one successful answer changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Addresses to identify and add.
    pub new: Vec<SocketAddr>,
    /// Backends to remove: discovered earlier, gone from the answer.
    pub gone: Vec<(SocketAddr, String)>,
}

/// The backends discovery added, by address.
#[derive(Debug, Default)]
pub struct Discovered {
    by_addr: BTreeMap<SocketAddr, String>,
}

impl Discovered {
    /// Compare an answer with what discovery added: addresses that left
    /// are gone; addresses not yet added (or added and since removed from
    /// the table) are new, unless some other backend already uses them.
    pub fn changes(&self, answer: &BTreeSet<SocketAddr>, table: &impl Table) -> Changes {
        let gone = self
            .by_addr
            .iter()
            .filter(|(addr, _)| !answer.contains(addr))
            .map(|(addr, id)| (*addr, id.clone()))
            .collect();
        let new = answer
            .iter()
            .filter(|addr| match self.by_addr.get(addr) {
                Some(id) => table.addr_of(id) != Some(**addr),
                None => !table.has_addr(**addr),
            })
            .take(MAX_DISCOVERED)
            .copied()
            .collect();
        Changes { new, gone }
    }

    fn ids(&self) -> Vec<String> {
        self.by_addr.values().cloned().collect()
    }
}

/// The id of a backend that did not say its own: its address, in the
/// id alphabet (`10.0.0.5:8081` -> `10-0-0-5-8081`).
pub fn id_from_addr(addr: SocketAddr) -> String {
    let text = addr.to_string();
    let id: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    id.trim_matches('-').to_string()
}

/// One round: look the name up, remove what left, add what came.
async fn round<L: Lookup>(
    lookup: &L,
    table: &impl Table,
    known: &mut Discovered,
    view: &Mutex<DiscoveryView>,
    options: &DiscoveryOptions,
) {
    let target = options.target.to_string();
    let target = target.as_str();
    let answer = match timeout(LOOKUP_TIMEOUT, lookup.resolve()).await {
        Ok(Ok(addrs)) => addrs.into_iter().collect::<BTreeSet<_>>(),
        Ok(Err(e)) => return failed(view, target, e),
        Err(_) => return failed(view, target, format!("no answer in {LOOKUP_TIMEOUT:?}")),
    };
    let changes = known.changes(&answer, table);
    for (addr, id) in &changes.gone {
        if table.addr_of(id) == Some(*addr) {
            table.remove(id);
            tracing::info!(backend = %id, %addr, target, "discovered backend gone from DNS: removed");
        }
        known.by_addr.remove(addr);
    }
    let mut problem = None;
    for addr in changes.new {
        let Ok(said) = lookup.identify(addr).await else {
            continue;
        };
        let id = said
            .filter(|id| is_valid_id(id))
            .unwrap_or_else(|| id_from_addr(addr));
        if let Some(other) = table.addr_of(&id) {
            problem = Some(format!(
                "{addr} says it is {id}, and {id} is already the backend at {other}"
            ));
            continue;
        }
        let added = BackendSpec::at(&id, addr)
            .map_err(|e| e.to_string())
            .and_then(|spec| {
                let admin = options.admin_port.map(|p| SocketAddr::new(addr.ip(), p));
                table.add(spec, admin)
            });
        match added {
            Ok(()) => {
                tracing::info!(backend = %id, %addr, target, "backend discovered: added");
                known.by_addr.insert(addr, id);
            }
            Err(e) => problem = Some(format!("{addr} ({id}): {e}")),
        }
    }
    if let Some(p) = &problem {
        tracing::warn!(target, problem = %p, "a discovered address was not added");
    }
    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
    if v.error.take().is_some() {
        tracing::info!(target, "discovery lookups work again");
    }
    v.lookups += 1;
    v.addresses = answer.iter().map(|a| a.to_string()).collect();
    v.backends = known.ids();
    v.problem = problem;
}

fn failed(view: &Mutex<DiscoveryView>, target: &str, error: String) {
    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
    if v.error.as_deref() != Some(error.as_str()) {
        tracing::warn!(target, %error, "discovery lookup failed; the backends stay as they are, retrying");
    }
    v.lookups += 1;
    v.failed_lookups += 1;
    v.error = Some(error);
}

/// The discovery loop: a round at once, then every `interval`, until
/// `stop` turns true.
pub async fn run<L: Lookup>(
    lookup: L,
    table: impl Table,
    options: DiscoveryOptions,
    view: Arc<Mutex<DiscoveryView>>,
    stop: watch::Receiver<bool>,
) {
    let mut known = Discovered::default();
    let mut every = Every::new(options.interval, stop);
    while every.tick().await {
        round(&lookup, &table, &mut known, &view, &options).await;
    }
}

/// The view the admin API starts with, before the first lookup.
pub fn initial_view(options: &DiscoveryOptions) -> DiscoveryView {
    DiscoveryView {
        target: options.target.to_string(),
        interval_ms: options.interval.as_millis().try_into().unwrap_or(u64::MAX),
        ..DiscoveryView::default()
    }
}

/// Production lookups: the system resolver (tokio's `lookup_host`, so
/// `/etc/hosts` and Docker's or Kubernetes' DNS alike) and a `GET` of the
/// health path, reading `X-Served-By`.
pub struct DnsLookup {
    /// `NAME:PORT`, as `lookup_host` takes it.
    target: String,
    health_path: String,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl DnsLookup {
    pub fn new(options: &DiscoveryOptions, health_path: &str, timeout: Duration) -> Self {
        DnsLookup {
            target: options.target.to_string(),
            health_path: health_path.to_string(),
            timeout,
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(HttpConnector::new()),
        }
    }
}

impl Lookup for DnsLookup {
    async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
        tokio::net::lookup_host(self.target.as_str())
            .await
            .map(|addrs| addrs.collect())
            .map_err(|e| e.to_string())
    }

    async fn identify(&self, addr: SocketAddr) -> Result<Option<String>, ()> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(addr.to_string())
            .path_and_query(self.health_path.as_str())
            .build()
            .map_err(|_| ())?;
        let req = Request::get(uri).body(Empty::new()).map_err(|_| ())?;
        let resp = timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        Ok(sessionlab_wire::served_by::served_by(resp.headers()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A table that is a map, id -> address.
    #[derive(Default, Clone)]
    struct MapTable(Arc<Mutex<BTreeMap<String, SocketAddr>>>);

    impl MapTable {
        fn ids(&self) -> Vec<String> {
            self.0.lock().unwrap().keys().cloned().collect()
        }
    }

    impl Table for MapTable {
        fn addr_of(&self, id: &str) -> Option<SocketAddr> {
            self.0.lock().unwrap().get(id).copied()
        }
        fn has_addr(&self, addr: SocketAddr) -> bool {
            self.0.lock().unwrap().values().any(|a| *a == addr)
        }
        fn add(&self, spec: BackendSpec, admin: Option<SocketAddr>) -> Result<(), String> {
            assert_eq!(admin, Some(SocketAddr::new(spec.addr.ip(), 9081)));
            self.0.lock().unwrap().insert(spec.id, spec.addr);
            Ok(())
        }
        fn remove(&self, id: &str) {
            self.0.lock().unwrap().remove(id);
        }
    }

    fn a(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 8081))
    }

    /// Answers and ids from a script: each resolve takes the next answer
    /// (the last one repeats); node `10.0.0.N` says it is `node-N`, except
    /// the silent ones and the ones that do not answer.
    struct Script {
        answers: Mutex<Vec<Result<Vec<SocketAddr>, String>>>,
        resolves: AtomicUsize,
        silent: Vec<SocketAddr>,
        dead: Mutex<Vec<SocketAddr>>,
        says: Mutex<BTreeMap<SocketAddr, String>>,
    }

    impl Script {
        fn new(answers: Vec<Result<Vec<SocketAddr>, String>>) -> Self {
            Script {
                answers: Mutex::new(answers),
                resolves: AtomicUsize::new(0),
                silent: vec![],
                dead: Mutex::new(vec![]),
                says: Mutex::new(BTreeMap::new()),
            }
        }
    }

    impl Lookup for Arc<Script> {
        async fn resolve(&self) -> Result<Vec<SocketAddr>, String> {
            let n = self.resolves.fetch_add(1, Ordering::SeqCst);
            let answers = self.answers.lock().unwrap();
            answers[n.min(answers.len() - 1)].clone()
        }
        async fn identify(&self, addr: SocketAddr) -> Result<Option<String>, ()> {
            if self.dead.lock().unwrap().contains(&addr) {
                return Err(());
            }
            if self.silent.contains(&addr) {
                return Ok(None);
            }
            if let Some(id) = self.says.lock().unwrap().get(&addr) {
                return Ok(Some(id.clone()));
            }
            let SocketAddr::V4(v4) = addr else {
                return Ok(None);
            };
            Ok(Some(format!("node-{}", v4.ip().octets()[3])))
        }
    }

    fn options() -> DiscoveryOptions {
        DiscoveryOptions {
            target: "node:8081".parse().unwrap(),
            interval: Duration::from_secs(2),
            admin_port: Some(9081),
        }
    }

    /// The loop, running on `script` and `table` until `stop`.
    struct Running {
        view: Arc<Mutex<DiscoveryView>>,
        stop_tx: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        fn start(script: &Arc<Script>, table: &MapTable) -> Self {
            let view = Arc::new(Mutex::new(initial_view(&options())));
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run(
                script.clone(),
                table.clone(),
                options(),
                view.clone(),
                stop_rx,
            ));
            Running {
                view,
                stop_tx,
                task,
            }
        }

        async fn stop(self) -> Arc<Mutex<DiscoveryView>> {
            self.stop_tx.send(true).unwrap();
            self.task.await.unwrap();
            self.view
        }
    }

    /// Run the loop on the paused clock through `rounds` lookups and
    /// return the table's ids after each.
    async fn after_each_round(
        script: Arc<Script>,
        table: MapTable,
        rounds: usize,
    ) -> (Vec<Vec<String>>, Arc<Mutex<DiscoveryView>>) {
        let running = Running::start(&script, &table);
        let view = running.view.clone();
        let mut seen = Vec::new();
        for n in 1..=rounds {
            while script.resolves.load(Ordering::SeqCst) < n
                || view.lock().unwrap().lookups < n as u64
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen.push(table.ids());
        }
        (seen, running.stop().await)
    }

    #[test]
    fn an_address_without_an_id_is_named_by_its_address() {
        assert_eq!(id_from_addr(a(5)), "10-0-0-5-8081");
        assert_eq!(id_from_addr("[fd00::1]:80".parse().unwrap()), "fd00--1--80");
        assert!(
            BackendSpec::new(
                &id_from_addr("[fd00::1]:80".parse().unwrap()),
                "[fd00::1]:80"
            )
            .is_ok()
        );
    }

    #[test]
    fn changes_leave_what_others_added_alone() {
        let table = MapTable::default();
        let add = |id: &str, addr: SocketAddr| {
            let spec = BackendSpec::new(id, &addr.to_string()).unwrap();
            table
                .add(spec, Some(SocketAddr::new(addr.ip(), 9081)))
                .unwrap()
        };
        add("static", a(1));
        let mut known = Discovered::default();
        known.by_addr.insert(a(2), "node-2".into());
        add("node-2", a(2));
        known.by_addr.insert(a(3), "node-3".into());
        add("node-3", a(3));
        let answer: BTreeSet<_> = [a(1), a(2), a(4)].into();
        assert_eq!(
            known.changes(&answer, &table),
            Changes {
                new: vec![a(4)],
                gone: vec![(a(3), "node-3".into())],
            },
            "a(1) is a --backend: not discovery's; a(2) is known and in the table"
        );
        // node-2 removed through the admin API: discovery adds it back.
        table.remove("node-2");
        assert_eq!(known.changes(&answer, &table).new, vec![a(2), a(4)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_follows_the_answers_and_a_failed_lookup_changes_nothing() {
        let script = Arc::new(Script::new(vec![
            Ok(vec![a(1), a(2), a(3)]),
            Ok(vec![a(1), a(2), a(3), a(4), a(5)]),
            Err("failed to lookup address information".into()),
            Ok(vec![a(1), a(2), a(3)]),
        ]));
        let (seen, view) = after_each_round(script, MapTable::default(), 4).await;
        let ids = |n: &[u8]| n.iter().map(|n| format!("node-{n}")).collect::<Vec<_>>();
        assert_eq!(seen[0], ids(&[1, 2, 3]));
        assert_eq!(seen[1], ids(&[1, 2, 3, 4, 5]));
        assert_eq!(
            seen[2],
            ids(&[1, 2, 3, 4, 5]),
            "a failed lookup removes nothing"
        );
        assert_eq!(seen[3], ids(&[1, 2, 3]));
        let v = view.lock().unwrap().clone();
        assert_eq!((v.lookups, v.failed_lookups), (4, 1));
        assert_eq!(v.error, None, "the error clears once a lookup works");
        assert_eq!(v.backends, ids(&[1, 2, 3]));
        assert_eq!(v.addresses.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_follow_the_interval() {
        let script = Arc::new(Script::new(vec![Ok(vec![a(1)])]));
        let running = Running::start(&script, &MapTable::default());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            script.resolves.load(Ordering::SeqCst),
            1,
            "one lookup at once"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(
            script.resolves.load(Ordering::SeqCst),
            6,
            "then one every 2 s"
        );
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_does_not_answer_yet_is_added_once_it_does() {
        let script = Arc::new(Script::new(vec![Ok(vec![a(1), a(2)])]));
        script.dead.lock().unwrap().push(a(2));
        let table = MapTable::default();
        let running = Running::start(&script, &table);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(table.ids(), ["node-1"]);
        script.dead.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(table.ids(), ["node-1", "node-2"]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_id_is_a_problem_not_a_second_backend_and_a_silent_one_gets_its_address() {
        let mut script = Script::new(vec![Ok(vec![a(1), a(2), a(3)])]);
        script.silent.push(a(3));
        let script = Arc::new(script);
        script.says.lock().unwrap().insert(a(2), "node-1".into());
        let (seen, view) = after_each_round(script, MapTable::default(), 2).await;
        assert_eq!(seen[1], ["10-0-0-3-8081", "node-1"]);
        let problem = view.lock().unwrap().problem.clone().unwrap();
        assert!(
            problem.contains("10.0.0.2:8081 says it is node-1"),
            "{problem}"
        );
    }
}
