//! The session layer: how a node remembers a user between requests.
//!
//! HTTP forgets everything between requests; a session is the server's
//! memory of one client, found again through an id the client presents.
//! This folder is every step of that, in the order a request meets it:
//!
//! - [`middleware`]: the one layer around every app request (a span, the
//!   `;sid=` taken off the path, the session written back after the
//!   handler, the cookie or the announced id on the answer);
//! - [`websession`]: the session as a handler sees it (load on demand,
//!   create on first write, rotate the id at login, delete at logout) and
//!   the [`SessionPolicy`](websession::SessionPolicy) built from the
//!   options;
//! - [`cookie`] and [`tracking`]: how the id travels, in a cookie (with the
//!   attributes that guard it) or in the URL (and why that leaks);
//! - `binding`: `--bind-session user-agent`, a weak defence against a
//!   stolen id, shown as one;
//! - `cas`: replaying a change on a fresh copy after a compare-and-set
//!   conflict in a shared store, so no answered write is lost.
//!
//! The store behind the session is not chosen here (see `store/`), and in
//! jwt mode the "session" is the login's data record found through the
//! bearer token (`auth/`).

mod binding;
mod cas;
pub(crate) mod cookie;
pub(crate) mod middleware;
pub(crate) mod tracking;
pub(crate) mod websession;
