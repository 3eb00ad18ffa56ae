//! The LB's TLS identity: its certificate chain and the private key.
//!
//! Both are PEM files (what `openssl`, `certbot`, `mkcert` and
//! `sessionlab up --tls` write). They are read once, at start, into a
//! rustls [`ServerConfig`]; a file that cannot be read, holds no
//! certificate or key, or a key that does not belong to the leaf
//! certificate stops the LB before it binds, with the flag to fix:
//!
//! | problem | error starts with |
//! |---|---|
//! | certificate file unreadable, not PEM, or without a certificate | `--tls-cert FILE:` |
//! | key file unreadable, not PEM, or without a private key | `--tls-key FILE:` |
//! | the key is not the certificate's | `--tls-key FILE: does not match --tls-cert` |
//!
//! Checking the pair at start matters: rustls would otherwise sign each
//! handshake with the wrong key, and every client would fail to verify it
//! with an error that says nothing about the LB's files.
//!
//! ALPN offers `http/1.1` only: the LB speaks HTTP/1.1 to clients.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS configuration problem; the message starts with the flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {detail}")]
    Cert { path: PathBuf, detail: String },
    #[error("--tls-key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
}

/// A loaded, checked certificate and key, ready for handshakes.
#[derive(Clone)]
pub struct TlsIdentity {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a credential: never printed.
        f.write_str("TlsIdentity(<certificate and key>)")
    }
}

impl TlsIdentity {
    /// Read and check `--tls-cert` and `--tls-key`.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let cert_err = |detail: String| TlsError::Cert {
            path: cert.to_path_buf(),
            detail,
        };
        let key_err = |detail: String| TlsError::Key {
            path: key.to_path_buf(),
            detail,
        };
        let cert_pem = std::fs::read(cert).map_err(|e| cert_err(e.to_string()))?;
        let key_pem = std::fs::read(key).map_err(|e| key_err(e.to_string()))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_err(format!("not a PEM certificate chain ({e})")))?;
        if chain.is_empty() {
            return Err(cert_err("no CERTIFICATE block in the file".into()));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| key_err(format!("no usable PEM private key ({e})")))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| cert_err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    key_err("does not match --tls-cert (another certificate's key)".into())
                }
                other => key_err(other.to_string()),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            config: Arc::new(config),
        })
    }

    /// The acceptor that runs handshakes with this identity.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}
