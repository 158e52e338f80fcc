//! Certificates made here rather than by an operator's tools: the self-signed ones of
//! `--auto-tls` and `--peer-auto-tls` (as etcd makes them, kept under the data directory),
//! and the throwaway authority `synod dev --tls` and the tests issue from.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

/// How long a certificate made here is valid: etcd's self-signed certificates last a year.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// Its private key (PKCS#8).
    pub key: String,
}

impl Pem {
    /// Writes the certificate to `cert` and the key to `key` (readable by the owner
    /// alone), each through a temporary file renamed into place, so a member reloading
    /// them never reads half a file.
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), String> {
        write_replacing(cert, self.cert.as_bytes(), 0o644)?;
        write_replacing(key, self.key.as_bytes(), 0o600)
    }
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)
        .map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// What a certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Its subject's common name (the user name, for a client with `--client-cert-auth`).
    pub common_name: String,
    /// The IP addresses and DNS names it is valid for (server certificates).
    pub hosts: Vec<String>,
    /// When it starts and stops being valid.
    pub valid: std::ops::Range<SystemTime>,
}

impl Request {
    /// A certificate for `common_name` and `hosts`, valid from now for [`VALIDITY`].
    pub fn new(common_name: &str, hosts: &[&str]) -> Request {
        let now = SystemTime::now();
        Request {
            common_name: common_name.to_string(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            // An hour's slack for clocks a little behind.
            valid: now - Duration::from_secs(3600)..now + VALIDITY,
        }
    }

    fn params(&self) -> Result<CertificateParams, String> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name.as_str());
        params.not_before = OffsetDateTime::from(self.valid.start);
        params.not_after = OffsetDateTime::from(self.valid.end);
        for host in &self.hosts {
            params.subject_alt_names.push(match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.clone()
                        .try_into()
                        .map_err(|e| format!("{host:?} is not a DNS name: {e}"))?,
                ),
            });
        }
        Ok(params)
    }
}

/// A certificate authority: signs certificates for servers, peers and clients.
#[derive(Debug)]
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// Its own certificate, PEM (what `--trusted-ca-file` names).
    pub cert: String,
    key: String,
}

impl Authority {
    /// A new authority named `common_name`, valid for ten years.
    pub fn new(common_name: &str) -> Result<Authority, String> {
        let mut request = Request::new(common_name, &[]);
        request.valid.end = SystemTime::now() + 10 * VALIDITY;
        let mut params = request.params()?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.self_signed(&key).map_err(failed)?.pem();
        let key_pem = key.serialize_pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert,
            key: key_pem,
        })
    }

    /// The authority's own certificate and key.
    pub fn pem(&self) -> Pem {
        Pem {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// A certificate for `request`, good for both ends of a connection (server and
    /// client authentication), as a member's peer certificate must be.
    pub fn issue(&self, request: &Request) -> Result<Pem, String> {
        let mut params = request.params()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(failed)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(failed)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// A self-signed certificate for `hosts`, as etcd's `--auto-tls` makes one.
pub fn self_signed(hosts: &[&str]) -> Result<Pem, String> {
    let mut params = Request::new("synod", hosts).params()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn failed(e: rcgen::Error) -> String {
    format!("cannot make a certificate: {e}")
}
