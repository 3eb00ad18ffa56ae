//! One client's TLS handshake, and the stream the HTTP server reads after it.
//!
//! The accept loop never waits on a handshake: it hands the TCP connection
//! to a worker as it does a plain one, and the handshake runs on that
//! connection's own task, bounded by `--tls-handshake-timeout`. So a
//! client that sends half a client hello and stops (the TLS slowloris), or
//! one that sends garbage, ties up only its own connection, for at most
//! that long, within the same connection caps as any other client.
//!
//! [`ClientStream`] is the connection after accept, plain or TLS: one type,
//! so the HTTP server (`proxy/server.rs`) drives both with the same code.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What a worker needs to run handshakes: the acceptor and the time bound.
#[derive(Clone)]
pub struct TlsSide {
    pub acceptor: TlsAcceptor,
    pub timeout: Duration,
}

/// Why a handshake ended without a TLS session.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

impl TlsSide {
    /// Run the server side of the handshake on `stream`.
    pub async fn handshake(&self, stream: TcpStream) -> Result<ClientStream, HandshakeError> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await {
            Err(_) => Err(HandshakeError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(tls)) => Ok(ClientStream::Tls(Box::new(tls))),
        }
    }
}

/// A client connection after accept (and, for HTTPS, after the handshake).
pub enum ClientStream {
    Plain(TcpStream),
    /// Boxed: the TLS state is a few KiB, the plain case stays small.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    fn side(timeout: Duration) -> TlsSide {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let id = crate::tls::TlsIdentity::load(&c, &k).unwrap();
        TlsSide {
            acceptor: id.acceptor(),
            timeout,
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_at_the_timeout() {
        let side = side(Duration::from_secs(10));
        let (_client, server) = pair().await;
        let started = tokio::time::Instant::now();
        let e = side.handshake(server).await.err().unwrap();
        assert!(matches!(e, HandshakeError::Timeout(_)), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn garbage_instead_of_a_client_hello_fails_the_handshake() {
        let side = side(Duration::from_secs(10));
        let (mut client, server) = pair().await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let e = side.handshake(server).await.err().unwrap();
        assert!(matches!(e, HandshakeError::Failed(_)), "{e}");
    }
}
