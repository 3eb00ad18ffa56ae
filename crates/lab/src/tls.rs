//! `sessionlab up --tls`: a certificate authority of the run's own, and the
//! LB's certificate signed by it.
//!
//! HTTPS needs a certificate the client trusts. A public CA will not sign
//! one for `localhost`, and a self-signed leaf cannot be trusted without
//! turning verification off (which teaches the wrong lesson). So `up`
//! makes what a company's internal PKI does, in miniature:
//!
//! | file in `RUN_DIR/tls/` | what | who reads it |
//! |---|---|---|
//! | `ca.pem` | the lab's CA certificate | you: `curl --cacert`, the browser's certificate import; the lab's own clients |
//! | `lb-cert.pem` | the LB's leaf, for `localhost`, `127.0.0.1`, `::1` | `sessionlab-lb --tls-cert` |
//! | `lb-key.pem` | its private key (mode 0600) | `sessionlab-lb --tls-key` |
//!
//! Two choices make importing the CA into a browser less of a risk than
//! such CAs usually are: its **private key is never written anywhere** (it
//! signs the one leaf and is dropped, so nothing can sign another
//! certificate with it), and it carries **name constraints**: clients that
//! honour them (browsers, rustls, curl with OpenSSL) accept it only for
//! `localhost`, 127.0.0.1 and ::1 even if a leaf for another name showed up.
//! Every `up --tls` makes a new pair, so a CA imported earlier stops
//! working; re-import it (or use a browser profile for the lab).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SanType,
};

use crate::error::{LabError, Result};
use crate::runfolder::{RunFolder, write_private};

/// Where `up --tls` keeps the CA and the LB's certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files' places in `rf` (whether or not they exist yet).
    pub fn of(rf: &RunFolder) -> TlsFiles {
        let dir = rf.root().join("tls");
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("lb-cert.pem"),
            key: dir.join("lb-key.pem"),
        }
    }

    /// The CA certificate if this run folder has one.
    pub fn read_ca(&self) -> Result<Option<Vec<u8>>> {
        match std::fs::read(&self.ca) {
            Ok(pem) => Ok(Some(pem)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::io(format!("reading {}", self.ca.display()))(e)),
        }
    }

    /// Make a new CA and leaf and write them (see the module docs).
    pub fn generate(&self) -> Result<()> {
        let (ca_pem, cert_pem, key_pem) = generate().map_err(|e| LabError::Io {
            what: "making the lab's TLS certificates".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let dir = self.ca.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(LabError::io(format!("creating {}", dir.display())))?;
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(LabError::io(format!("writing {}", path.display())))
        };
        write(&self.ca, &ca_pem)?;
        write(&self.cert, &cert_pem)?;
        write_private(&self.key, &key_pem)
    }
}

/// The CA certificate, the leaf certificate and the leaf's key, as PEM.
fn generate() -> std::result::Result<(String, String, String), rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = name("sessionlab local CA (localhost only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("localhost".into()),
            GeneralSubtree::IpAddress(CidrSubnet::V4([127, 0, 0, 1], [255; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6(
                std::net::Ipv6Addr::LOCALHOST.octets(),
                [255; 16],
            )),
        ],
        excluded_subtrees: Vec::new(),
    });
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
    leaf.distinguished_name = name("sessionlab LB");
    leaf.subject_alt_names.extend([
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    // `issuer` (and with it the CA's key) is dropped here, never written.
    Ok((ca_cert.pem(), leaf_cert.pem(), leaf_key.serialize_pem()))
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn
}

/// An HTTPS-capable client builder that trusts `ca_pem` (and only it, when
/// given: the lab talks to nothing else).
pub fn trusting(
    builder: reqwest::ClientBuilder,
    ca_pem: Option<&[u8]>,
) -> Result<reqwest::ClientBuilder> {
    let Some(pem) = ca_pem else {
        return Ok(builder);
    };
    let ca = reqwest::Certificate::from_pem(pem).map_err(|e| LabError::Api {
        target: "the run folder's tls/ca.pem".into(),
        detail: e.to_string(),
    })?;
    Ok(builder.tls_certs_only([ca]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_written_and_the_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let rf = RunFolder::new(dir.path());
        let files = TlsFiles::of(&rf);
        assert!(files.read_ca().unwrap().is_none());
        files.generate().unwrap();
        let ca = String::from_utf8(files.read_ca().unwrap().unwrap()).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
        let key = std::fs::read_to_string(&files.key).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The CA's own key is nowhere in the folder.
        for entry in std::fs::read_dir(dir.path().join("tls")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(
                text.matches("PRIVATE KEY-----").count() <= 2,
                "one key only"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("tls")).unwrap().count(),
            3
        );
    }
}
