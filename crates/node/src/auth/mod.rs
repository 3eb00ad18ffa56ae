//! Who the user is: passwords, and jwt mode's tokens.
//!
//! - [`users`]: the accepted users (the demo users, or a `--users` file of
//!   argon2 hashes) and the password check, bounded so a burst of logins
//!   cannot exhaust the machine's memory;
//! - [`tokens`]: `--auth jwt`, where a signed bearer token says who the
//!   user is, and where the app's data lives then;
//! - [`routes`]: `/auth/login`, `/auth/refresh` and `/auth/logout`, the
//!   token endpoints (404 in session mode).
//!
//! In session mode, login and logout are app routes (`app/`) that ask the
//! session layer to rotate or delete the session; only the password check
//! is here.

pub(crate) mod routes;
pub(crate) mod tokens;
pub(crate) mod users;

pub use users::hash_password;
