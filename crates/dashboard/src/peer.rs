//! Who is on the other end of a loopback connection.
//!
//! Without `--admin-token` the dashboard listens on loopback only, and its
//! buttons kill, restart and cut off the lab's processes with the
//! operator's rights (and drive the LB with its admin token, which the lab
//! keeps in a file only the operator can read). Loopback is open to every
//! user of the machine, so a tokenless dashboard must tell the operator's
//! browser from another user's `curl`. On Linux the kernel says who owns
//! each socket: `/proc/net/tcp` and `/proc/net/tcp6` list every TCP socket
//! of this network namespace with its local and remote address and the
//! uid that opened it. The client's end of a connection to us is the entry
//! whose local address is the peer's and whose remote address is ours.
//!
//! | the client's socket | the connection |
//! |---|---|
//! | owned by the dashboard's own (effective) user | served |
//! | owned by another user | every request answered 403 |
//! | not listed, or no `/proc` (not Linux) | served: nothing says otherwise |
//!
//! The same check protects local APIs elsewhere (identd answered it for
//! other machines; local daemons use it for their loopback APIs). With
//! `--admin-token` the token is the guard instead and no lookup is made.

use std::net::{IpAddr, SocketAddr};

/// The uid owning the client's end of the connection from `peer` to
/// `local`, as the kernel lists it; `None` if it is not listed or the
/// tables cannot be read.
pub fn owner(peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    let (want_local, want_remote) = (hex(peer), hex(local));
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let mut fields = line.split_whitespace();
                let (l, r) = (fields.nth(1)?, fields.next()?);
                if l.eq_ignore_ascii_case(&want_local) && r.eq_ignore_ascii_case(&want_remote) {
                    fields.nth(4)?.parse().ok() // st, queues, timer, retransmits, then uid
                } else {
                    None
                }
            })
        })
}

/// Whether the connection from `peer` to `local` may be served by a
/// tokenless dashboard (see the module docs).
pub fn is_own_user(peer: SocketAddr, local: SocketAddr) -> bool {
    owner(peer, local).is_none_or(|uid| uid == nix::unistd::geteuid().as_raw())
}

/// An address as the kernel's tables print it: each 32-bit word of the IP
/// in the machine's byte order, in hex, then `:` and the port in hex. An
/// IPv4 peer of an IPv6 socket is listed as the mapped address.
fn hex(addr: SocketAddr) -> String {
    let words: Vec<[u8; 4]> = match addr.ip() {
        IpAddr::V4(ip) => vec![ip.octets()],
        IpAddr::V6(ip) => ip
            .octets()
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect(),
    };
    let ip: String = words
        .iter()
        .map(|w| format!("{:08X}", u32::from_ne_bytes(*w)))
        .collect();
    format!("{ip}:{:04X}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_the_kernel_lists_them() {
        let a: SocketAddr = "127.0.0.1:8079".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(hex(a), "0100007F:1F8F");
            let v6: SocketAddr = "[::1]:80".parse().unwrap();
            assert_eq!(hex(v6), "00000000000000000000000001000000:0050");
        }
    }

    #[tokio::test]
    async fn a_connection_of_our_own_is_ours() {
        if !std::path::Path::new("/proc/net/tcp").exists() {
            return; // not Linux: nothing to read
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (_server_side, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let me = nix::unistd::geteuid().as_raw();
        assert_eq!(owner(peer, local), Some(me));
        assert!(is_own_user(peer, local));
        // Nobody is connected from this port: not listed.
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(owner(nobody, local), None);
    }
}
