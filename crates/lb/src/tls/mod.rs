//! HTTPS at the load balancer: TLS termination.
//!
//! The LB is where the browser's encrypted connection ends. It decrypts,
//! forwards plain HTTP to the nodes on the private side, and tells them
//! that the client spoke HTTPS (`X-Forwarded-Proto: https`), which is how
//! a node knows to mark its session cookie `Secure`. This is the first
//! defence against session hijacking: without TLS, anybody on the path (a
//! shared Wi-Fi, a compromised router) reads the cookie off the wire, and a
//! stolen session id is a stolen login (`sessionlab attack hijack` shows
//! it with a real observer).
//!
//! | file | concept |
//! |---|---|
//! | [`identity`] | the certificate chain and private key, loaded once at start and checked to match |
//! | [`handshake`] | one client's handshake, bounded in time, on the connection's own task |
//! | [`https`] | what changes for HTTPS clients: HSTS on their responses, the 308 from plain HTTP |
//!
//! What the LB does on the two public listeners:
//!
//! | | plain `--listen` | `--tls-listen` |
//! |---|---|---|
//! | `X-Forwarded-Proto` sent on | `http` | `https` |
//! | `Strict-Transport-Security` | never (RFC 6797 §7.2: ignored over HTTP) | `max-age=--hsts-max-age` |
//! | with `--redirect-http` | 308 to `https://host:tls-port/path` | served |
//!
//! Why rustls: memory-safe, TLS 1.2 and 1.3 only (no SSLv3, no RC4, no
//! renegotiation), and the same stack the lab's HTTPS clients use. A
//! malformed client hello is a handshake error on that one connection:
//! it is closed and counted (`sessionlab_lb_tls_handshake_failures_total`),
//! and no other connection notices.

pub(crate) mod handshake;
pub(crate) mod https;
pub(crate) mod identity;

pub use identity::{TlsError, TlsIdentity};
