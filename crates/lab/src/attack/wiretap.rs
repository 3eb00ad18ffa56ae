//! A wiretap on loopback: someone on the network path who reads the bytes.
//!
//! Between alice's client and the load balancer the hijack scene puts a
//! TCP relay ([`Wiretap`]): it accepts her connection, opens one to the LB,
//! copies the bytes both ways unchanged, and keeps a copy of everything it
//! carried. That is what a shared Wi-Fi, a compromised router or a
//! corporate middlebox sees. The scene then reads the copy the way such an
//! observer would ([`Captured`]): it looks for the session cookie in the
//! bytes, and tells TLS records apart from anything else.
//!
//! | alice speaks | the tap finds | the attacker can |
//! |---|---|---|
//! | HTTP | `Cookie: SLSESSION=...` and `Set-Cookie` in cleartext | replay the id: a hijack |
//! | HTTPS | TLS records (handshake, then application data), no cookie | nothing: the id never crosses the wire readably |
//!
//! The copy is bounded ([`MAX_CAPTURE`] per direction; beyond it the bytes
//! are relayed but not kept), so are the connections relayed at once, and
//! the copy lives only in memory; what the scene
//! prints of a found id is its first characters ([`super::scene::short`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::{LabError, Result};

/// The most bytes kept per direction (a login and a few pages fit many
/// times over).
pub(super) const MAX_CAPTURE: usize = 1024 * 1024;

/// The most connections relayed at once; a further one is closed unanswered
/// (the scene's clients hold one or two).
const MAX_RELAYS: usize = 64;

/// What the tap has seen, both directions of every connection it carried.
#[derive(Debug, Default, Clone)]
pub(super) struct Captured {
    /// Client to server (requests).
    pub(super) to_server: Vec<u8>,
    /// Server to client (responses).
    pub(super) to_client: Vec<u8>,
    pub(super) connections: usize,
}

/// A TCP relay on 127.0.0.1 that copies what it forwards; see the module
/// docs. Stops relaying when dropped.
pub(super) struct Wiretap {
    pub(super) addr: SocketAddr,
    seen: Arc<Mutex<Captured>>,
    accept: JoinHandle<()>,
}

impl Wiretap {
    /// Listen on a free loopback port and relay every connection to
    /// `upstream`.
    pub(super) async fn start(upstream: SocketAddr) -> Result<Wiretap> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(LabError::io("binding the wiretap on 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(LabError::io("reading the wiretap's address"))?;
        let seen = Arc::new(Mutex::new(Captured::default()));
        let shared = seen.clone();
        let accept = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                // Reap finished relays so the set holds only live ones.
                while relays.try_join_next().is_some() {}
                if relays.len() >= MAX_RELAYS {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                lock(&shared).connections += 1;
                relays.spawn(relay(client, server, shared.clone()));
            }
        });
        Ok(Wiretap { addr, seen, accept })
    }

    /// A copy of everything carried so far.
    pub(super) fn captured(&self) -> Captured {
        lock(&self.seen).clone()
    }

    /// Forget what was carried (the next scene starts with a clean tape).
    pub(super) fn clear(&self) {
        *lock(&self.seen) = Captured::default();
    }
}

impl Drop for Wiretap {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts the relays.
        self.accept.abort();
    }
}

fn lock(m: &Mutex<Captured>) -> std::sync::MutexGuard<'_, Captured> {
    // Every update is an append under the lock: a panic cannot leave it torn.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Copy both ways until either side closes.
async fn relay(client: TcpStream, server: TcpStream, seen: Arc<Mutex<Captured>>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, seen.clone(), true);
    let down = pump(sr, cw, seen, false);
    // When one direction ends the other is over too (HTTP closes both).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Captured>>,
    to_server: bool,
) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = lock(&seen);
            let tape = if to_server {
                &mut c.to_server
            } else {
                &mut c.to_client
            };
            let room = MAX_CAPTURE.saturating_sub(tape.len()).min(n);
            tape.extend_from_slice(&buf[..room]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// TLS records counted by content type, when the bytes are a TLS stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TlsRecords {
    pub(super) handshake: usize,
    pub(super) application_data: usize,
    pub(super) other: usize,
}

impl Captured {
    /// The first value of cookie `name` readable in either direction
    /// (`Cookie: name=...` in a request, `Set-Cookie: name=...` in a
    /// response), if any.
    pub(super) fn cookie(&self, name: &str) -> Option<String> {
        find_cookie(&self.to_server, name).or_else(|| find_cookie(&self.to_client, name))
    }

    /// Both directions as TLS records, if both are TLS streams (records
    /// are length-prefixed, so a walk that lands on anything else is not
    /// TLS). The scene's clients use one connection at a time, so the
    /// connections' bytes follow each other whole.
    pub(super) fn tls_records(&self) -> Option<TlsRecords> {
        let (a, b) = (tls_records(&self.to_server)?, tls_records(&self.to_client)?);
        Some(TlsRecords {
            handshake: a.handshake + b.handshake,
            application_data: a.application_data + b.application_data,
            other: a.other + b.other,
        })
    }

    pub(super) fn bytes(&self) -> usize {
        self.to_server.len() + self.to_client.len()
    }
}

/// `name=VALUE` after a `Cookie:`/`Set-Cookie:` header name or a `; `
/// separator, VALUE being cookie-octets (RFC 6265 §4.1.1).
fn find_cookie(bytes: &[u8], name: &str) -> Option<String> {
    let needle = format!("{name}=");
    let needle = needle.as_bytes();
    let mut from = 0;
    while let Some(at) = find(&bytes[from..], needle).map(|i| i + from) {
        let before = &bytes[..at];
        let starts_a_cookie = before.ends_with(b": ") || before.ends_with(b"; ");
        let value: Vec<u8> = bytes[at + needle.len()..]
            .iter()
            .copied()
            .take_while(|&b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
            .take(4096)
            .collect();
        if starts_a_cookie && !value.is_empty() {
            return String::from_utf8(value).ok();
        }
        from = at + needle.len();
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Walk TLS record headers (type, version 3.x, 16-bit length) over
/// `bytes`; None if the first bytes are not a record.
fn tls_records(bytes: &[u8]) -> Option<TlsRecords> {
    let mut counts = TlsRecords::default();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let (kind, major) = (bytes[at], bytes[at + 1]);
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        if !(20..=23).contains(&kind) || major != 3 {
            // Several connections are concatenated: a new one starts with a
            // handshake record; anything else is not TLS.
            return (at > 0 && counts.handshake > 0).then_some(counts);
        }
        match kind {
            22 => counts.handshake += 1,
            23 => counts.application_data += 1,
            _ => counts.other += 1,
        }
        at += 5 + len;
    }
    (counts.handshake > 0).then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_in_a_request_and_a_response() {
        let req = b"GET /api/session HTTP/1.1\r\nhost: x\r\ncookie: SLROUTE=n1; SLSESSION=abc-123_x\r\n\r\n";
        assert_eq!(find_cookie(req, "SLSESSION").as_deref(), Some("abc-123_x"));
        let resp = b"HTTP/1.1 200 OK\r\nset-cookie: SLSESSION=q9Z; Path=/; HttpOnly\r\n\r\n";
        assert_eq!(find_cookie(resp, "SLSESSION").as_deref(), Some("q9Z"));
        // A mention in a body is not a cookie.
        assert_eq!(find_cookie(b"the SLSESSION=x cookie", "SLSESSION"), None);
        // A logout's empty value is nothing to steal.
        assert_eq!(
            find_cookie(b"set-cookie: SLSESSION=; Max-Age=0", "SLSESSION"),
            None
        );
    }

    #[test]
    fn tls_records_are_told_apart_from_http() {
        let mut tls = vec![22, 3, 1, 0, 2, 1, 1];
        tls.extend([23, 3, 3, 0, 3, 9, 9, 9]);
        tls.extend([22, 3, 1, 0, 1, 7]); // a second connection
        assert_eq!(
            tls_records(&tls),
            Some(TlsRecords {
                handshake: 2,
                application_data: 1,
                other: 0
            })
        );
        assert_eq!(tls_records(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(tls_records(b""), None);
    }

    #[tokio::test]
    async fn the_tap_relays_and_keeps_a_copy() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        });
        let tap = Wiretap::start(up_addr).await.unwrap();
        let mut c = TcpStream::connect(tap.addr).await.unwrap();
        c.write_all(b"cookie: SLSESSION=abc").await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"COOKIE: SLSESSION=ABC");
        let seen = tap.captured();
        assert_eq!(seen.to_server, b"cookie: SLSESSION=abc");
        assert_eq!(seen.cookie("SLSESSION").as_deref(), Some("abc"));
        assert_eq!(seen.connections, 1);
        tap.clear();
        assert_eq!(tap.captured().bytes(), 0);
    }
}
