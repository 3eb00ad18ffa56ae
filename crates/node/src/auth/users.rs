//! Users and passwords.
//!
//! The server never stores a password, only an *argon2id hash* of it (in PHC
//! string form: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Argon2 is
//! slow and memory-hungry on purpose, so that someone who steals the hashes
//! cannot try billions of guesses per second. That cost lands on the server
//! too: a check takes tens of milliseconds and ~19 MiB of memory. So checks
//! run on the blocking thread pool (never on a worker that serves other
//! requests), and at most as many run at once as the machine has cores.
//!
//! ## The queue of checks, and why it is per client
//!
//! Logins beyond the running checks wait, in a queue with a bound
//! (`--login-queue`, default 512 places, running checks included): a login
//! that finds it full is answered 503 `login_queue_full` with `Retry-After`
//! at once, instead of waiting without limit. A bound alone would let one
//! client's flood take every place and every core, so that another
//! client's login waits behind all of it or is refused. Two per-client
//! bounds prevent that:
//!
//! | bound | value | effect |
//! |---|---|---|
//! | places one client holds | a quarter of the queue (128 by default: the load tool's users may all log in at once) | the rest stays free for others |
//! | checks of one client queued for a core | as many as cores | another client's check waits behind at most one round of each busy client, not behind the whole flood |
//!
//! (Per-client *rates* are limited before this, see [`crate::guard`].)
//!
//! A login for a user that does not exist is checked against a dummy hash,
//! so it costs the same time as a wrong password and response time does not
//! tell which user names exist.
//!
//! ## The users file (`--users FILE`)
//!
//! One user per line, `name:hash`; blank lines and lines starting with `#`
//! are ignored. Make a hash with `sessionlab-node hash-password` (reads the
//! password from standard input):
//!
//! ```text
//! $ printf 'secret' | sessionlab-node hash-password
//! $argon2id$v=19$m=19456,t=2,p=1$...
//! ```
//!
//! Without `--users`, the demo users `alice`, `bob` and `carol` exist, all
//! with the password `sessionlab` (the login page says so).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::StartError;

/// The demo users' password (shown on the login page).
pub const DEMO_PASSWORD: &str = "sessionlab";

/// argon2id hashes of [`DEMO_PASSWORD`], one salt per user, made with
/// `sessionlab-node hash-password` (precomputed so startup is instant).
const DEMO_USERS: [(&str, &str); 3] = [
    ("alice", DEMO_HASH_ALICE),
    ("bob", DEMO_HASH_BOB),
    ("carol", DEMO_HASH_CAROL),
];
const DEMO_HASH_ALICE: &str = "$argon2id$v=19$m=19456,t=2,p=1$aFuo11PuWYn+GtAkm4xMUQ$7+NQB5QHm62wNp8Q5O8PFS63oJFD5fYgd5HjBKMKy7E";
const DEMO_HASH_BOB: &str = "$argon2id$v=19$m=19456,t=2,p=1$8S/foiyZXb8AZYyo4FzIqQ$/8oSXZFDiCWh1hV8YSiVMw1ITjJD9P229dcOiNwLbLo";
const DEMO_HASH_CAROL: &str = "$argon2id$v=19$m=19456,t=2,p=1$w1SEEEx1/+Z5jtRjSwlG7w$lrMLiIL/FwnGNABDPHBIVApuOyCjka19UwNNWhKzEZs";

/// Longest user name or password considered (longer ones simply fail).
const MAX_FIELD: usize = 256;

/// Hash `password` with argon2id and a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    let salt = SaltString::encode_b64(&bytes).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// The default of `--login-queue`.
pub const DEFAULT_LOGIN_QUEUE: usize = 512;

/// Every place of the password-check queue, or all of this client's, is
/// taken (503 with `Retry-After`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// One client's share of the queue.
struct ClientSlot {
    /// Its checks that may queue for a core at once.
    turn: Arc<Semaphore>,
    /// Places it holds (waiting or running).
    held: usize,
}

/// The bounded, per-client queue of password checks (see the module docs).
struct CheckQueue {
    cores: Semaphore,
    per_client_running: usize,
    places: usize,
    per_client_places: usize,
    held: AtomicUsize,
    clients: Mutex<HashMap<IpAddr, ClientSlot>>,
}

/// A place in the queue; given back when dropped (also when the client
/// goes away mid-wait).
struct Place<'a> {
    queue: &'a CheckQueue,
    client: IpAddr,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut clients = self.queue.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = clients.get_mut(&self.client) {
            slot.held -= 1;
            if slot.held == 0 {
                clients.remove(&self.client);
            }
        }
        drop(clients);
        self.queue.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CheckQueue {
    fn new(places: usize) -> CheckQueue {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let places = places.max(1);
        CheckQueue {
            cores: Semaphore::new(cores),
            per_client_running: cores,
            places,
            per_client_places: (places / 4).max(1),
            held: AtomicUsize::new(0),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Take a place for `client`, or refuse at once.
    fn enter(&self, client: IpAddr) -> Result<(Place<'_>, Arc<Semaphore>), QueueFull> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < self.places).then_some(h + 1)
            })
            .map_err(|_| QueueFull)?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let slot = clients.entry(client).or_insert_with(|| ClientSlot {
            turn: Arc::new(Semaphore::new(self.per_client_running)),
            held: 0,
        });
        if slot.held >= self.per_client_places {
            let empty = slot.held == 0;
            if empty {
                clients.remove(&client);
            }
            drop(clients);
            self.held.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueFull);
        }
        slot.held += 1;
        let turn = slot.turn.clone();
        drop(clients);
        Ok((
            Place {
                queue: self,
                client,
            },
            turn,
        ))
    }
}

/// The users this node accepts; see the module docs.
pub struct Users {
    hashes: BTreeMap<String, Arc<str>>,
    demo: bool,
    queue: CheckQueue,
}

/// Shows the user names, never the hashes.
impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("names", &self.hashes.keys().collect::<Vec<_>>())
            .field("demo", &self.demo)
            .finish()
    }
}

impl Users {
    /// alice, bob and carol, password `sessionlab`.
    pub fn demo() -> Self {
        let hashes = DEMO_USERS
            .iter()
            .map(|(n, h)| ((*n).to_owned(), Arc::from(*h)))
            .collect();
        Users::with(hashes, true)
    }

    fn with(hashes: BTreeMap<String, Arc<str>>, demo: bool) -> Self {
        Users {
            hashes,
            demo,
            queue: CheckQueue::new(DEFAULT_LOGIN_QUEUE),
        }
    }

    /// The same users with `places` in the password-check queue
    /// (`--login-queue`).
    pub fn with_login_queue(self, places: usize) -> Self {
        Users {
            queue: CheckQueue::new(places),
            ..self
        }
    }

    /// Parse the `name:hash` format. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut hashes = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let lineno = n + 1;
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {lineno}: expected name:hash"))?;
            let name = name.trim();
            if name.is_empty() || name.len() > MAX_FIELD {
                return Err(format!("line {lineno}: bad user name"));
            }
            PasswordHash::new(hash.trim())
                .map_err(|e| format!("line {lineno}: not a PHC password hash ({e})"))?;
            if hashes
                .insert(name.to_owned(), Arc::from(hash.trim()))
                .is_some()
            {
                return Err(format!("line {lineno}: user {name} listed twice"));
            }
        }
        if hashes.is_empty() {
            return Err("no users".into());
        }
        Ok(Users::with(hashes, false))
    }

    /// Read a users file.
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let text = std::fs::read_to_string(path).map_err(|e| StartError::Users {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Users::parse(&text).map_err(|reason| StartError::Users {
            path: path.display().to_string(),
            reason,
        })
    }

    /// The user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// Whether these are the built-in demo users (the page then shows the
    /// password).
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// Check a password for an unnamed client (a full queue reads as a
    /// wrong password). Requests use [`Users::verify_for`].
    #[cfg(test)]
    pub async fn verify(&self, name: &str, password: &str) -> bool {
        self.verify_for(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), name, password)
            .await
            .unwrap_or(false)
    }

    /// Check a password for `client`: on the blocking pool, through the
    /// bounded per-client queue of the module docs.
    pub async fn verify_for(
        &self,
        client: IpAddr,
        name: &str,
        password: &str,
    ) -> Result<bool, QueueFull> {
        if name.len() > MAX_FIELD || password.len() > MAX_FIELD {
            return Ok(false);
        }
        let (hash, known) = match self.hashes.get(name) {
            Some(h) => (h.clone(), true),
            None => (Arc::from(DEMO_HASH_ALICE), false),
        };
        let (_place, turn) = self.queue.enter(client)?;
        let Ok(_turn) = turn.acquire().await else {
            return Ok(false);
        };
        let Ok(_core) = self.queue.cores.acquire().await else {
            return Ok(false);
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        Ok(ok && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_users_log_in_with_the_demo_password() {
        let u = Users::demo();
        assert!(u.verify("alice", DEMO_PASSWORD).await);
        assert!(u.verify("carol", DEMO_PASSWORD).await);
        assert!(!u.verify("alice", "wrong").await);
        assert!(!u.verify("mallory", DEMO_PASSWORD).await);
        assert_eq!(u.names().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
    }

    #[tokio::test]
    async fn users_file_round_trip() {
        let text = format!("# test\n\ndave:{}\n", hash_password("pw"));
        let u = Users::parse(&text).unwrap();
        assert!(!u.is_demo());
        assert!(u.verify("dave", "pw").await);
        assert!(!u.verify("alice", DEMO_PASSWORD).await);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_one_client_cannot_fill_it() {
        // 8 places: 2 per client.
        let u = Users::demo().with_login_queue(8);
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let floods = futures_like_join(
            (0..20)
                .map(|_| u.verify_for(flood, "alice", DEMO_PASSWORD))
                .collect(),
        );
        let (floods, other_login) = tokio::join!(floods, u.verify_for(other, "bob", DEMO_PASSWORD));
        let admitted = floods.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 2, "{floods:?}");
        assert!(floods.iter().filter_map(|r| r.as_ref().ok()).all(|ok| *ok));
        assert_eq!(other_login, Ok(true), "the other client got a place");
        // Every place was given back.
        assert_eq!(u.queue.held.load(Ordering::Acquire), 0);
        assert!(u.queue.clients.lock().unwrap().is_empty());
    }

    /// Poll every future together, in order, and collect their outputs.
    async fn futures_like_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
        let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (f, o) in fs.iter_mut().zip(out.iter_mut()) {
                if o.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *o = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().map(|o| o.expect("ready")).collect()
    }

    #[test]
    fn users_file_errors_name_the_line() {
        assert!(Users::parse("alice").unwrap_err().contains("line 1"));
        assert!(
            Users::parse("\nalice:plaintext")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(Users::parse("# nothing").is_err());
    }
}
