//! Certificates for HTTPS tests: a throw-away CA, a leaf for `localhost`
//! and `127.0.0.1` signed by it, and a client that trusts only that CA.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// PEM files in a temporary folder, gone on drop.
pub struct TestCerts {
    _dir: tempfile::TempDir,
    /// The CA certificate, PEM (what a client adds as its root).
    pub ca_pem: String,
    /// The leaf certificate and its key (`--tls-cert`, `--tls-key`).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A key of another certificate (for the mismatch test).
    pub other_key: PathBuf,
}

impl TestCerts {
    pub fn new() -> TestCerts {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestCerts {
            ca_pem: ca_cert.pem(),
            cert: write("cert.pem", leaf_cert.pem()),
            key: write("key.pem", leaf_key.serialize_pem()),
            other_key: write(
                "other-key.pem",
                KeyPair::generate().unwrap().serialize_pem(),
            ),
            _dir: dir,
        }
    }

    /// The LB flags for an HTTPS listener on port 0 with these files.
    pub fn lb_flags(&self) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// A client that trusts this CA only, follows no redirects and keeps
    /// no cookies.
    pub fn client(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap()
    }
}

impl Default for TestCerts {
    fn default() -> Self {
        TestCerts::new()
    }
}
