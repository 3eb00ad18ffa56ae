//! Users and passwords.
//!
//! The server never stores a password, only an *argon2id hash* of it (in PHC
//! string form: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). Argon2 is
//! slow and memory-hungry on purpose, so that someone who steals the hashes
//! cannot try billions of guesses per second. That cost lands on the server
//! too: a check takes tens of milliseconds and ~19 MiB of memory. So checks
//! run on the blocking thread pool (never on a worker that serves other
//! requests), and at most as many run at once as the machine has cores;
//! further logins wait their turn rather than allocating without bound.
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

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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

/// The users this node accepts; see the module docs.
pub struct Users {
    hashes: BTreeMap<String, Arc<str>>,
    demo: bool,
    checks: Semaphore,
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Users {
            hashes,
            demo,
            checks: Semaphore::new(cores),
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

    /// Check a password. Runs on the blocking pool, a bounded number at once.
    pub async fn verify(&self, name: &str, password: &str) -> bool {
        if name.len() > MAX_FIELD || password.len() > MAX_FIELD {
            return false;
        }
        let (hash, known) = match self.hashes.get(name) {
            Some(h) => (h.clone(), true),
            None => (Arc::from(DEMO_HASH_ALICE), false),
        };
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
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
        ok && known
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
