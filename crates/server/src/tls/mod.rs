//! TLS on every port, configured with etcd's flags: the client port (gRPC and HTTP), the
//! metrics port, and the peer port with mutual TLS between members. rustls with the
//! `ring` provider, TLS 1.2 and 1.3 only.
//!
//! One end's flags ([`TlsInfo`]: `--cert-file`, `--key-file`, `--trusted-ca-file`,
//! `--client-cert-auth`, `--auto-tls`, or their `--peer-` twins) make a [`TlsServer`]
//! (accepting) and a [`TlsClient`] (dialing with the same certificate as its client
//! certificate, as etcd's members do). Both rebuild their rustls configuration when the
//! files change on disk ([`reload`]), so certificates rotate without a restart.

pub mod certs;
mod der;
pub mod reload;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use reload::Reloading;

/// TLS 1.3 and 1.2; nothing older.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// ALPN of the client port: gRPC clients negotiate HTTP/2; HTTP/1.1 for the rest.
pub const ALPN_CLIENT_PORT: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of the metrics port, which serves HTTP/1.1 alone.
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

/// Which end of a member a [`TlsInfo`] configures: its flags are named after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Clients: `--cert-file`, `--trusted-ca-file`, …
    Client,
    /// Peers: `--peer-cert-file`, `--peer-trusted-ca-file`, …
    Peer,
}

impl End {
    /// The flag `name` of this end (`cert-file` → `--peer-cert-file`).
    pub fn flag(self, name: &str) -> String {
        match self {
            End::Client => format!("--{name}"),
            End::Peer => format!("--peer-{name}"),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Peer => "peer",
        }
    }
}

/// One end's TLS flags, as etcd's `TLSInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The certificate served (and presented when dialing).
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// The CA that signs the other ends' certificates: clients' under
    /// `client_cert_auth`, and servers' this member dials. Without it, the system's.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `trusted_ca_file`.
    pub client_cert_auth: bool,
    /// Without `cert_file`, serve a self-signed certificate made at the first start (kept
    /// under the data directory), and dial without verifying the other end's.
    pub auto_tls: bool,
}

impl TlsInfo {
    /// Whether this end has a certificate to serve TLS with (its own or `--auto-tls`'s).
    pub fn can_serve(&self) -> bool {
        self.cert_file.is_some() || self.auto_tls
    }

    /// Refuses flags that cannot work together, naming them.
    pub fn check(&self, end: End) -> Result<(), String> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) | (None, Some(_)) => Err(format!(
                "{} and {} must be given together",
                end.flag("cert-file"),
                end.flag("key-file")
            )),
            (None, None) if self.client_cert_auth && !self.auto_tls => Err(format!(
                "{} needs a certificate to serve TLS with ({} and {}, or {})",
                end.flag("client-cert-auth"),
                end.flag("cert-file"),
                end.flag("key-file"),
                end.flag("auto-tls")
            )),
            _ => Ok(()),
        }
    }

    /// The files this end uses: its own, or (with `--auto-tls` and no certificate) a
    /// self-signed certificate for `hosts` kept in `auto_dir`, made if not there yet (as
    /// etcd keeps its own under `DATA_DIR/fixtures/`). `None` if it has neither.
    pub fn files(&self, auto_dir: &Path, hosts: &[String]) -> Result<Option<TlsFiles>, String> {
        let own = self.cert_file.clone().zip(self.key_file.clone());
        let (cert, key, verify_servers) = match own {
            Some((cert, key)) => (cert, key, true),
            None if self.auto_tls => {
                let (cert, key) = (auto_dir.join("cert.pem"), auto_dir.join("key.pem"));
                if !cert.exists() || !key.exists() {
                    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
                    certs::self_signed(&hosts)?.write(&cert, &key)?;
                }
                // Self-signed certificates cannot be verified: etcd's auto TLS encrypts,
                // it does not authenticate.
                (cert, key, false)
            }
            None => return Ok(None),
        };
        Ok(Some(TlsFiles {
            cert,
            key,
            trusted_ca: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            verify_servers,
        }))
    }
}

/// The files one end of a member serves and dials with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate (chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CA bundle other ends are verified against; the system's if `None`.
    pub trusted_ca: Option<PathBuf>,
    /// Require clients' certificates.
    pub client_cert_auth: bool,
    /// Verify the certificates of servers dialed (not under auto TLS).
    pub verify_servers: bool,
}

impl TlsFiles {
    /// The files a change of which rebuilds the configuration.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert.clone(), self.key.clone()];
        files.extend(self.trusted_ca.clone());
        files
    }
}

/// The crypto provider: ring, no other (no OpenSSL, no aws-lc). rustls deprecates it for
/// lacking post-quantum key exchange, which only its aws-lc provider offers.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |e: rustls_pki_types::pem::Error| format!("{}: {e}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Where the system's CA bundle is, as Go looks for it on Linux (`SSL_CERT_FILE` first).
fn system_ca_file() -> Result<PathBuf, String> {
    let named = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let known = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    named
        .into_iter()
        .chain(known.iter().map(PathBuf::from))
        .find(|path| path.is_file())
        .ok_or_else(|| "no trusted CA file given and no system CA bundle found".to_string())
}

fn roots(trusted_ca: Option<&Path>) -> Result<RootCertStore, String> {
    let file = match trusted_ca {
        Some(file) => file.to_path_buf(),
        None => system_ca_file()?,
    };
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(read_chain(&file)?);
    if added == 0 {
        return Err(format!(
            "{}: no usable CA certificate in it",
            file.display()
        ));
    }
    Ok(roots)
}

fn protocols(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|p| p.to_vec()).collect()
}

/// The configuration a port accepts connections with.
fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ServerConfig, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?;
    let builder = if files.client_cert_auth {
        let roots = roots(files.trusted_ca.as_deref())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(read_chain(&files.cert)?, read_key(&files.key)?)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = protocols(alpn);
    Ok(config)
}

/// The configuration a member dials with: its certificate as the client certificate.
fn client_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| e.to_string())?;
    let builder = if files.verify_servers {
        builder.with_root_certificates(roots(files.trusted_ca.as_deref())?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider())))
    };
    let mut config = builder
        .with_client_auth_cert(read_chain(&files.cert)?, read_key(&files.key)?)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = protocols(alpn);
    Ok(config)
}

/// Takes any server certificate whose handshake signature is good: auto TLS's, which
/// etcd dials with `InsecureSkipVerify` (encrypted, not authenticated).
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The verified certificate a client presented on its connection, under
/// `--client-cert-auth`.
///
/// The client port puts it in the extensions of every request of such a connection,
/// whichever way the request is served: `http::Request::extensions()` on the KV calls
/// served inline (`client_port`'s `unary`, before the body is read) and on HTTP requests
/// (`HttpApi::answer`), and `tonic::Request::extensions()` in the gRPC services reached
/// through tonic's router (Watch, Lease, Cluster, …). The JSON gateway's calls into the
/// services (`gateway.rs`) are new requests and do not carry it. With authentication
/// enabled, etcd takes its common name as the user name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name (empty if the certificate has none).
    pub common_name: String,
}

/// What a server accepts TLS connections with, reloaded when its files change.
#[derive(Debug)]
pub struct TlsServer {
    config: Reloading<ServerConfig>,
    end: End,
    refusals: Refusals,
}

/// A TLS connection accepted by a member.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

impl TlsServer {
    /// A server with `files`, offering the `alpn` protocols.
    pub fn new(end: End, files: &TlsFiles, alpn: &'static [&'static [u8]]) -> Result<Self, String> {
        let built = files.clone();
        let config = Reloading::new(
            &format!("{} TLS", end.noun()),
            files.watched(),
            reload::CHECK_INTERVAL,
            move || server_config(&built, alpn),
        )?;
        Ok(TlsServer {
            config,
            end,
            refusals: Refusals::default(),
        })
    }

    /// Completes a handshake on a connection accepted on `port`, or closes it with a
    /// warning saying why (once per address and reason: see [`Refusals`]). Either way
    /// the port goes on serving.
    pub async fn admit(&self, tcp: TcpStream, port: &str) -> Option<ServerStream> {
        let Ok(addr) = tcp.peer_addr() else {
            return None;
        };
        match self.accept(tcp).await {
            Ok(stream) => Some(stream),
            Err(reason) => {
                if self.refusals.first(addr, &reason) {
                    tracing::warn!(
                        "{port}: refused a TLS connection from {addr}: {reason} (not logged again for this address and reason for {} minutes)",
                        REFUSAL_QUIET.as_secs() / 60
                    );
                } else {
                    tracing::debug!("{port}: refused a TLS connection from {addr}: {reason}");
                }
                None
            }
        }
    }

    /// Completes the server side of a handshake on `tcp` (within [`HANDSHAKE_WAIT`]); the
    /// reason it failed, in words, if it did.
    pub async fn accept(&self, tcp: TcpStream) -> Result<ServerStream, String> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.current());
        match tokio::time::timeout(HANDSHAKE_WAIT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(refusal(self.end, &e)),
            Err(_) => Err(format!(
                "no TLS handshake within {} s",
                HANDSHAKE_WAIT.as_secs()
            )),
        }
    }
}

/// The protocol a TLS connection negotiated with ALPN, if any.
pub fn negotiated(stream: &ServerStream) -> Option<&[u8]> {
    stream.get_ref().1.alpn_protocol()
}

/// The verified client certificate of a TLS connection, if it presented one.
pub fn client_certificate(stream: &ServerStream) -> Option<ClientCertificate> {
    let leaf = stream.get_ref().1.peer_certificates()?.first()?;
    Some(ClientCertificate {
        common_name: der::common_name(leaf).unwrap_or_default(),
    })
}

/// What a member dials other members with, reloaded when its files change.
#[derive(Debug)]
pub struct TlsClient {
    config: Reloading<ClientConfig>,
    end: End,
}

/// A TLS connection a member dialed.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

impl TlsClient {
    /// A client presenting the certificate of `files`, offering the `alpn` protocols.
    pub fn new(end: End, files: &TlsFiles, alpn: &'static [&'static [u8]]) -> Result<Self, String> {
        let built = files.clone();
        let config = Reloading::new(
            &format!("{} TLS (dialing)", end.noun()),
            files.watched(),
            reload::CHECK_INTERVAL,
            move || client_config(&built, alpn),
        )?;
        Ok(TlsClient { config, end })
    }

    /// Completes the client side of a handshake on `tcp` with the server at `host` (an IP
    /// address or a DNS name, checked against the certificate's names), within
    /// [`HANDSHAKE_WAIT`]; the reason it failed, in words, if it did.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> std::io::Result<ClientStream> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host:?}: {e}"))
        })?;
        let connector = tokio_rustls::TlsConnector::from(self.config.current());
        match tokio::time::timeout(HANDSHAKE_WAIT, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(std::io::Error::new(e.kind(), refusal(self.end, &e))),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no TLS handshake within 10 s",
            )),
        }
    }
}

/// A gRPC channel to a client URL: plain, or TLS through `dialer` for `https`.
pub async fn channel(
    url: &crate::config::Endpoint,
    dialer: Option<Arc<TlsClient>>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, String> {
    // tonic dials `http` itself; the TLS is this connector's, so tonic needs none.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", url.addr))
        .map_err(|e| e.to_string())?
        .connect_timeout(connect_timeout);
    let connected = match (url.tls, dialer) {
        (false, _) => endpoint.connect().await,
        (true, Some(dialer)) => {
            let connector = Connector {
                dialer,
                addr: url.addr,
                host: url.host.clone(),
            };
            endpoint.connect_with_connector(connector).await
        }
        (true, None) => {
            return Err(format!(
                "{} needs TLS, and this end has no TLS configuration",
                url.url()
            ))
        }
    };
    connected.map_err(|e| match std::error::Error::source(&e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    })
}

/// Opens TLS connections to one client URL, for tonic's channel.
#[derive(Clone, Debug)]
struct Connector {
    dialer: Arc<TlsClient>,
    addr: SocketAddr,
    host: String,
}

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::io::Result<hyper_util::rt::TokioIo<ClientStream>>>
            + Send,
    >,
>;

impl tonic::codegen::Service<http::Uri> for Connector {
    type Response = hyper_util::rt::TokioIo<ClientStream>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Connecting {
        let Connector { dialer, addr, host } = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            let stream = dialer.connect(&host, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// Why a handshake failed, in an operator's words (the flag to look at, where one is).
pub fn refusal(end: End, error: &std::io::Error) -> String {
    use rustls::{AlertDescription, CertificateError as Cert, Error as Tls};
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<Tls>()) else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the connection closed during the TLS handshake".into()
            }
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    let ca = end.flag("trusted-ca-file");
    match tls {
        Tls::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => format!(
            "its certificate is not signed by a CA in {ca} (a certificate from another CA)"
        ),
        Tls::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "its certificate has expired".into()
        }
        Tls::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            "its certificate is not valid yet".into()
        }
        Tls::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "its certificate is not valid for the host dialed (no matching IP or DNS name)".into()
        }
        Tls::InvalidCertificate(other) => format!("its certificate is refused: {other:?}"),
        Tls::NoCertificatesPresented => format!(
            "it presented no certificate ({} requires one)",
            end.flag("client-cert-auth")
        ),
        Tls::AlertReceived(
            alert @ (AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateExpired),
        ) => format!(
            "it does not trust this member's certificate ({alert:?}: it trusts another CA than the one that signed it, or none)"
        ),
        Tls::AlertReceived(alert) => format!("it ended the TLS handshake ({alert:?})"),
        Tls::InvalidMessage(_) | Tls::InappropriateMessage { .. } => {
            "it does not speak TLS (a plain-text client, or garbage)".into()
        }
        Tls::NoApplicationProtocol => "it offered none of the protocols served (ALPN)".into(),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Everything TLS of one member, as its flags and URLs ask.
#[derive(Debug, Default)]
pub struct MemberTls {
    /// The client port's `https` listeners (ALPN `h2` and `http/1.1`).
    pub client_port: Option<Arc<TlsServer>>,
    /// The metrics port's `https` listeners (HTTP/1.1).
    pub metrics_port: Option<Arc<TlsServer>>,
    /// The peer port, if its URL is `https`.
    pub peer_port: Option<Arc<TlsServer>>,
    /// Dialing `https` peer URLs (with the peer certificate as the client certificate).
    pub peer_dialer: Option<Arc<TlsClient>>,
    /// Dialing other members' `https` client URLs (a change passed on to the leader),
    /// with the client certificate.
    pub client_dialer: Option<Arc<TlsClient>>,
}

impl MemberTls {
    /// The servers and dialers `config` needs, with `--auto-tls` certificates made under
    /// its data directory. An error names the file or flag that does not work.
    pub fn new(config: &crate::config::Config) -> Result<MemberTls, String> {
        config.check_tls().map_err(|e| e.0)?;
        let fixtures = config.data_dir.join("fixtures");
        let client =
            (config.client_tls).files(&fixtures.join("client"), &config.hosts(End::Client))?;
        let peer = (config.peer_tls).files(&fixtures.join("peer"), &config.hosts(End::Peer))?;
        let any_tls = |endpoints: &[crate::config::Endpoint]| endpoints.iter().any(|e| e.tls);
        let serve = |files: &Option<TlsFiles>, end, alpn, wanted: bool| match files {
            Some(files) if wanted => TlsServer::new(end, files, alpn).map(|s| Some(Arc::new(s))),
            _ => Ok(None),
        };
        let dial = |files: &Option<TlsFiles>, end, alpn| match files {
            Some(files) => TlsClient::new(end, files, alpn).map(|c| Some(Arc::new(c))),
            None => Ok(None),
        };
        Ok(MemberTls {
            client_port: serve(
                &client,
                End::Client,
                ALPN_CLIENT_PORT,
                any_tls(&config.listen_client),
            )?,
            metrics_port: serve(
                &client,
                End::Client,
                ALPN_HTTP1,
                any_tls(&config.listen_metrics),
            )?,
            peer_port: serve(&peer, End::Peer, &[], config.listen_peer.tls)?,
            peer_dialer: dial(&peer, End::Peer, &[])?,
            // Only changes passed on to the leader need it: a member that cannot verify
            // other members' client certificates still serves.
            client_dialer: dial(&client, End::Client, &[b"h2"]).unwrap_or_else(|e| {
                tracing::warn!("cannot dial other members' https client URLs: {e}");
                None
            }),
        })
    }
}

/// Handshakes refused recently, by address and reason, so that a client or a peer that
/// retries without end makes one log line rather than one per attempt.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<(IpAddr, String), Instant>>);

/// How long a refusal is not logged again for the same address and reason.
pub const REFUSAL_QUIET: Duration = Duration::from_secs(600);

/// At most this many refusals remembered; beyond it the memory starts over (a flood of
/// addresses then costs log lines, not memory).
const REFUSALS_REMEMBERED: usize = 1024;

impl Refusals {
    /// Whether a refusal of `addr` for `reason` is to be logged now.
    pub fn first(&self, addr: SocketAddr, reason: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (addr.ip(), reason.to_string());
        if seen
            .get(&key)
            .is_some_and(|at| at.elapsed() < REFUSAL_QUIET)
        {
            return false;
        }
        if seen.len() >= REFUSALS_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, Instant::now());
        true
    }
}

#[cfg(test)]
mod tests;
