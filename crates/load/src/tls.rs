//! HTTPS for the simulated browsers: which certificate authority they trust.
//!
//! A cluster started with `sessionlab up --tls` serves HTTPS with a
//! certificate signed by the run's own CA (`RUN_DIR/tls/ca.pem`), and its
//! plain port only redirects. The users of a load run then speak HTTPS to
//! the LB and trust exactly that CA, as a browser does once the CA is
//! imported; they never turn verification off (a load tool that accepts
//! any certificate measures a different thing from what people run).
//!
//! | target | roots the clients load | `Secure` cookies |
//! |---|---|---|
//! | `http://...` | none (nothing to verify) | refused when set, as browsers do over HTTP |
//! | `https://...` with a [`TrustedCa`] | that CA only | kept and sent |
//!
//! Loading no roots at all for plain HTTP matters in a minimal container:
//! reqwest's rustls would otherwise look for the system's roots and fail to
//! build where there are none.
//!
//! The certificate is parsed and checked as a trust anchor, and a client
//! built with it once, in [`TrustedCa::from_pem`], so every later client
//! build (one per browser tab) is known to succeed.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The CA a load run's HTTPS clients trust; see the module docs.
#[derive(Clone)]
pub struct TrustedCa(reqwest::Certificate);

impl fmt::Debug for TrustedCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrustedCa(..)")
    }
}

impl TrustedCa {
    /// One PEM certificate (the run folder's `tls/ca.pem`).
    pub fn from_pem(pem: &[u8]) -> Result<TrustedCa, String> {
        let der = CertificateDer::from_pem_slice(pem)
            .map_err(|e| format!("no PEM certificate in it: {e}"))?;
        rustls::RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        let cert = reqwest::Certificate::from_der(&der)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        let ca = TrustedCa(cert);
        client(Duration::from_secs(1), Some(&ca))
            .map_err(|e| format!("an HTTPS client does not accept it: {e}"))?;
        Ok(ca)
    }
}

/// A client for one simulated browser tab: no redirects followed, one
/// kept-alive connection, trusting `ca` only (or no roots: plain HTTP).
pub(crate) fn client(
    timeout: Duration,
    ca: Option<&TrustedCa>,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .no_proxy()
        .tls_certs_only(ca.map(|c| c.0.clone()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_ca() {
        let err = TrustedCa::from_pem(b"not a certificate").unwrap_err();
        assert!(err.contains("PEM"), "{err}");
        let not_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = TrustedCa::from_pem(not_der).unwrap_err();
        assert!(err.contains("not a usable CA"), "{err}");
    }

    #[test]
    fn a_ca_certificate_is_trusted() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        let ca = TrustedCa::from_pem(pem.as_bytes()).unwrap();
        assert!(client(Duration::from_secs(1), Some(&ca)).is_ok());
    }

    #[test]
    fn the_plain_client_builds_without_any_roots() {
        assert!(client(Duration::from_secs(1), None).is_ok());
    }
}
