use super::certs::{Authority, Pem, Request};
use super::*;
use std::time::SystemTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A directory of PEM files for one test.
fn dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-tls-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `pem` as NAME.pem and NAME-key.pem in `dir`, and the files of an end using it
/// with `ca` as its trusted CA.
fn files(dir: &Path, name: &str, pem: &Pem, ca: &Authority) -> TlsFiles {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    pem.write(&cert, &key).unwrap();
    let trusted = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&trusted, &ca.cert).unwrap();
    TlsFiles {
        cert,
        key,
        trusted_ca: Some(trusted),
        client_cert_auth: true,
        verify_servers: true,
    }
}

fn local() -> Request {
    Request::new("member", &["127.0.0.1", "localhost"])
}

/// A server on loopback answering each TLS connection with "ok" and its client's CN;
/// the handshakes' failures reported on the channel.
async fn serve(server: TlsServer) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (failures, failed) = tokio::sync::mpsc::unbounded_channel();
    let server = Arc::new(server);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (server, failures) = (server.clone(), failures.clone());
            tokio::spawn(async move {
                match server.accept(tcp).await {
                    Ok(mut stream) => {
                        let cn = client_certificate(&stream).map(|c| c.common_name);
                        let answer = format!("ok {}", cn.unwrap_or_default());
                        let _ = stream.write_all(answer.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    Err(reason) => {
                        let _ = failures.send(reason);
                    }
                }
            });
        }
    });
    (addr, failed)
}

/// Dials `addr` as `host` and reads the server's answer.
async fn ask(client: &TlsClient, addr: SocketAddr, host: &str) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = client.connect(host, tcp).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn mutual_tls_admits_certificates_of_the_trusted_ca_and_tells_the_common_name() {
    let dir = dir("mutual");
    let ca = Authority::new("ca").unwrap();
    let server = files(&dir, "server", &ca.issue(&local()).unwrap(), &ca);
    let client = files(
        &dir,
        "alice",
        &ca.issue(&Request::new("alice", &[])).unwrap(),
        &ca,
    );
    let (addr, _) = serve(TlsServer::new(End::Peer, &server, &[]).unwrap()).await;
    let client = TlsClient::new(End::Peer, &client, &[]).unwrap();
    assert_eq!(ask(&client, addr, "127.0.0.1").await.unwrap(), "ok alice");
    assert_eq!(ask(&client, addr, "localhost").await.unwrap(), "ok alice");
    // The dialer checks the server's names against the host it dials.
    let wrong = ask(&client, addr, "127.0.0.2").await.unwrap_err();
    assert!(
        wrong.to_string().contains("not valid for the host"),
        "{wrong}"
    );
}

#[tokio::test]
async fn certificates_from_another_ca_expired_or_missing_are_refused_with_the_reason() {
    let dir = dir("refused");
    let ca = Authority::new("ca").unwrap();
    let other = Authority::new("other ca").unwrap();
    let server = files(&dir, "server", &ca.issue(&local()).unwrap(), &ca);
    let (addr, mut failed) = serve(TlsServer::new(End::Peer, &server, &[]).unwrap()).await;

    // A peer whose certificate another CA signed (and which trusts only that CA).
    let stranger = files(&dir, "stranger", &other.issue(&local()).unwrap(), &other);
    let stranger = TlsClient::new(End::Peer, &stranger, &[]).unwrap();
    let refused = ask(&stranger, addr, "127.0.0.1").await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not signed by a CA in --peer-trusted-ca-file"),
        "{refused}"
    );
    // Trusting our CA does not help a certificate from the other.
    let mut trusting = files(&dir, "trusting", &other.issue(&local()).unwrap(), &ca);
    trusting.verify_servers = true;
    let trusting = TlsClient::new(End::Peer, &trusting, &[]).unwrap();
    assert!(ask(&trusting, addr, "127.0.0.1").await.is_err());
    let reason = failed.recv().await.unwrap();
    assert!(
        reason.contains("another CA") || reason.contains("refused the TLS handshake"),
        "{reason}"
    );
    let reason = failed.recv().await.unwrap();
    assert!(
        reason.contains("not signed by a CA in --peer-trusted-ca-file"),
        "{reason}"
    );

    // An expired certificate from the right CA.
    let mut old = Request::new("old", &[]);
    let day = Duration::from_secs(86_400);
    old.valid = SystemTime::now() - 10 * day..SystemTime::now() - day;
    let expired = files(&dir, "expired", &ca.issue(&old).unwrap(), &ca);
    let expired = TlsClient::new(End::Peer, &expired, &[]).unwrap();
    assert!(ask(&expired, addr, "127.0.0.1").await.is_err());
    assert_eq!(failed.recv().await.unwrap(), "its certificate has expired");

    // Garbage instead of a handshake, and a plain-text client.
    for bytes in [
        &b"\x00\x01garbage garbage garbage"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest));
        assert!(
            closed.await.is_ok(),
            "the connection is closed, not left hanging"
        );
        let reason = failed.recv().await.unwrap();
        assert!(reason.contains("does not speak TLS"), "{reason}");
    }

    // The server still admits a good client after all that.
    let good = files(
        &dir,
        "good",
        &ca.issue(&Request::new("good", &[])).unwrap(),
        &ca,
    );
    let good = TlsClient::new(End::Peer, &good, &[]).unwrap();
    assert_eq!(ask(&good, addr, "127.0.0.1").await.unwrap(), "ok good");
}

#[tokio::test]
async fn without_client_cert_auth_no_certificate_is_asked_for() {
    let dir = dir("no-client-auth");
    let ca = Authority::new("ca").unwrap();
    let mut server = files(&dir, "server", &ca.issue(&local()).unwrap(), &ca);
    server.client_cert_auth = false;
    let (addr, _) = serve(TlsServer::new(End::Client, &server, ALPN_HTTP1).unwrap()).await;
    let client = files(
        &dir,
        "client",
        &ca.issue(&Request::new("c", &[])).unwrap(),
        &ca,
    );
    let client = TlsClient::new(End::Client, &client, ALPN_HTTP1).unwrap();
    assert_eq!(ask(&client, addr, "127.0.0.1").await.unwrap(), "ok ");
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections() {
    let dir = dir("rotated");
    let ca = Authority::new("ca").unwrap();
    let mut server = files(&dir, "server", &ca.issue(&local()).unwrap(), &ca);
    server.client_cert_auth = false;
    let tls = TlsServer::new(End::Client, &server, ALPN_HTTP1).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            // Kept open: the client reads the certificate, then closes.
            if let Ok(mut stream) = tls.accept(tcp).await {
                tokio::spawn(async move {
                    let mut byte = [0; 1];
                    let _ = stream.read(&mut byte).await;
                });
            }
        }
    });
    let client = files(
        &dir,
        "client",
        &ca.issue(&Request::new("c", &[])).unwrap(),
        &ca,
    );
    let client = TlsClient::new(End::Client, &client, ALPN_HTTP1).unwrap();
    let served = || async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = client.connect("127.0.0.1", tcp).await.unwrap();
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let first = served().await;
    let rotated = ca.issue(&local()).unwrap();
    rotated.write(&server.cert, &server.key).unwrap();
    tokio::time::sleep(reload::CHECK_INTERVAL + Duration::from_millis(200)).await;
    let second = served().await;
    assert_ne!(first, second, "new connections get the new certificate");
    let expected = CertificateDer::from_pem_slice(rotated.cert.as_bytes()).unwrap();
    assert_eq!(second, expected.to_vec());
}

#[test]
fn auto_tls_makes_a_certificate_once_and_keeps_it() {
    let dir = dir("auto");
    let info = TlsInfo {
        auto_tls: true,
        ..TlsInfo::default()
    };
    let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let made = info.files(&dir.join("fixtures"), &hosts).unwrap().unwrap();
    assert!(
        !made.verify_servers,
        "self-signed: dialers cannot verify it"
    );
    let cert = std::fs::read(&made.cert).unwrap();
    let again = info.files(&dir.join("fixtures"), &hosts).unwrap().unwrap();
    assert_eq!(std::fs::read(&again.cert).unwrap(), cert, "made once");
    assert!(server_config(&made, ALPN_CLIENT_PORT).is_ok());
    assert_eq!(TlsInfo::default().files(&dir, &hosts).unwrap(), None);
}

#[test]
fn flags_that_cannot_work_together_are_refused_by_name() {
    let cert_alone = TlsInfo {
        cert_file: Some("c.pem".into()),
        ..TlsInfo::default()
    };
    let refused = cert_alone.check(End::Peer).unwrap_err();
    assert_eq!(
        refused,
        "--peer-cert-file and --peer-key-file must be given together"
    );
    let auth_alone = TlsInfo {
        client_cert_auth: true,
        ..TlsInfo::default()
    };
    assert!(auth_alone
        .check(End::Client)
        .unwrap_err()
        .contains("--client-cert-auth needs a certificate"));
    assert!(TlsInfo::default().check(End::Client).is_ok());
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_at_the_start() {
    let dir = dir("mismatch");
    let ca = Authority::new("ca").unwrap();
    let mut server = files(&dir, "server", &ca.issue(&local()).unwrap(), &ca);
    let other = files(&dir, "other", &ca.issue(&local()).unwrap(), &ca);
    server.key = other.key;
    assert!(TlsServer::new(End::Client, &server, ALPN_HTTP1).is_err());
}

#[test]
fn a_refusal_is_logged_once_per_address_and_reason() {
    let refusals = Refusals::default();
    let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
    let same_host: SocketAddr = "127.0.0.1:1001".parse().unwrap();
    let other: SocketAddr = "127.0.0.2:1000".parse().unwrap();
    assert!(refusals.first(a, "expired"));
    assert!(
        !refusals.first(same_host, "expired"),
        "another port of the same host"
    );
    assert!(refusals.first(a, "another CA"));
    assert!(refusals.first(other, "expired"));
}
