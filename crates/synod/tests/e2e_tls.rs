//! TLS on a real cluster of `synod serve` processes, with etcd's flags: https client and
//! peer URLs, mutual TLS between members, client certificates required. etcdctl with
//! `--cacert/--cert/--key` works and without them is refused; HTTPS `/health` and
//! `/metrics` answer over HTTP/1.1 and HTTP/2; bad handshakes leave members serving; a
//! member whose peer certificate another CA signed is refused with one log line;
//! certificates rotate under a running member; `synod dev --tls` serves the etcdctl line
//! it prints.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failure is the report.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use server::tls::certs::{Authority, Request};
use server::tls::{End, TlsClient, TlsFiles, ALPN_HTTP1};
use support::tls::{etcdctl_with, issue, local, tls_cluster};
use support::{free_port, Background, Cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS client presenting `name`'s certificate (from the cluster's tls directory).
fn client(cluster: &Cluster, name: &str, alpn: &'static [&'static [u8]]) -> TlsClient {
    let dir = cluster.root().join("tls");
    let files = TlsFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
        trusted_ca: Some(dir.join("ca.pem")),
        client_cert_auth: false,
        verify_servers: true,
    };
    TlsClient::new(End::Client, &files, alpn).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One HTTP/1.1 GET over TLS: status line and body.
async fn https_get(tls: &TlsClient, address: &str, path: &str) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let mut stream = tls.connect("127.0.0.1", tcp).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    // The server closes after its answer; rustls reports a close without close_notify
    // as an error only after the bytes.
    let _ = stream.read_to_end(&mut answer).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// An HTTP/2 connection over TLS (ALPN h2) to `address`.
async fn h2_connect(tls: &TlsClient, address: &str) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let stream = tls.connect("127.0.0.1", tcp).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A GET over an HTTP/2 connection: the status and body.
async fn h2_get(client: &mut h2::client::SendRequest<bytes::Bytes>, path: &str) -> (u16, String) {
    let request = http::Request::get(format!("https://127.0.0.1{path}"))
        .body(())
        .unwrap();
    let mut ready = client.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    *client = ready;
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (
        head.status.as_u16(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

/// The DER of the certificate a new TLS connection to `address` is served.
async fn served_certificate(tls: &TlsClient, address: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let stream = tls.connect("127.0.0.1", tcp).await.unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[test]
fn a_tls_cluster_serves_etcdctl_and_https_and_refuses_bad_clients() {
    let (mut cluster, ca) = tls_cluster("tls", &[]);
    let metrics = format!("127.0.0.1:{}", free_port());
    cluster.members[1]
        .extra
        .push(format!("--listen-metrics-urls=https://{metrics}"));
    cluster.start_all();
    cluster.etcdctl(&["put", "greeting", "hello"]);
    let got = cluster.etcdctl(&["get", "greeting", "--print-value-only"]);
    assert_eq!(got.trim(), "hello");

    // A watch sees a write made through another member.
    let s1 = format!("https://{}", cluster.members[0].client);
    let mut watch = Background(cluster.etcdctl_spawn(&s1, &["watch", "greeting"]));
    let lines = lines_of(watch.0.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let s3 = format!("https://{}", cluster.members[2].client);
    let out = cluster.etcdctl_at(&s3, &["put", "greeting", "watched"]);
    assert!(out.status.success(), "{out:?}");
    let seen = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a watch event");
    assert_eq!(seen, "PUT");

    // Without the CA (the server is not trusted), without a client certificate, with an
    // expired one or one from another CA, or in plain text: refused.
    let dir = cluster.root().join("tls");
    let cacert = format!("--cacert={}", dir.join("ca.pem").display());
    let mut old = Request::new("old", &[]);
    let day = Duration::from_secs(86_400);
    old.valid = SystemTime::now() - 10 * day..SystemTime::now() - day;
    let (expired, expired_key) = issue(&ca, &dir, "expired", &old);
    let stranger_ca = Authority::new("stranger CA").unwrap();
    let (stranger, stranger_key) = issue(&stranger_ca, &dir, "stranger", &Request::new("x", &[]));
    let with_cert = |cert: &Path, key: &Path| {
        let cert = format!("--cert={}", cert.display());
        vec![cacert.clone(), cert, format!("--key={}", key.display())]
    };
    let refused: Vec<(&str, String, Vec<String>)> = vec![
        (
            "no --cacert",
            s1.clone(),
            cluster.etcdctl_flags[1..].to_vec(),
        ),
        ("no client certificate", s1.clone(), vec![cacert.clone()]),
        (
            "an expired certificate",
            s1.clone(),
            with_cert(&expired, &expired_key),
        ),
        (
            "another CA's certificate",
            s1.clone(),
            with_cert(&stranger, &stranger_key),
        ),
        ("plain text", cluster.members[0].client.clone(), Vec::new()),
    ];
    for (case, endpoint, flags) in refused {
        let out = etcdctl_with(&endpoint, &flags, &["get", "greeting"]);
        assert!(!out.status.success(), "{case}: etcdctl succeeded");
    }

    // Garbage instead of a handshake: closed, and the member serves on.
    let mut garbage = std::net::TcpStream::connect(&cluster.members[0].client).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, not TLS at all")
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        garbage.read_to_end(&mut rest).is_ok(),
        "closed, not left hanging"
    );

    let rt = runtime();
    rt.block_on(async {
        let client_port = &cluster.members[0].client;
        // HTTP/1.1 by ALPN, and by its first bytes when the client offers no ALPN.
        for alpn in [ALPN_HTTP1, &[]] {
            let tls = client(&cluster, "client", alpn);
            let health = https_get(&tls, client_port, "/health").await.unwrap();
            assert!(health.starts_with("HTTP/1.1 200"), "{health}");
            assert!(health.contains(r#""health":"true""#), "{health}");
        }
        let tls = client(&cluster, "client", &[b"h2"]);
        let mut h2 = h2_connect(&tls, client_port).await;
        let (status, body) = h2_get(&mut h2, "/health").await;
        assert_eq!(
            (status, body.contains(r#""health":"true""#)),
            (200, true),
            "{body}"
        );
        let (status, body) = h2_get(&mut h2, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("etcd_server_has_leader 1"), "{body}");

        // The metrics URL is https too, with the clients' certificate.
        let tls = client(&cluster, "client", ALPN_HTTP1);
        let scraped = https_get(&tls, &metrics, "/metrics").await.unwrap();
        assert!(scraped.contains("etcd_server_has_leader 1"), "{scraped}");

        // Rotation: member s1's certificate is replaced on disk. New connections get the
        // new one; the HTTP/2 connection opened before keeps working.
        let before = served_certificate(&tls, client_port).await;
        issue(&ca, &dir, "s1", &local("s1"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = served_certificate(&tls, client_port).await;
        assert_ne!(
            before, after,
            "a new connection still gets the old certificate"
        );
        let rotated = std::fs::read_to_string(dir.join("s1.pem")).unwrap();
        assert!(
            rotated.contains(&base64_prefix(&after)),
            "not the file's certificate"
        );
        let (status, _) = h2_get(&mut h2, "/health").await;
        assert_eq!(status, 200, "the connection opened before the rotation");
    });
    let out = cluster.etcdctl_at(&s1, &["get", "greeting", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "watched");
    let log = cluster.log(0);
    assert!(
        log.contains("client port: refused a TLS connection"),
        "{log}"
    );
    assert!(
        log.contains("reloaded the changed certificate files"),
        "{log}"
    );
}

/// The base64 of `der`'s first 45 bytes: the start of its PEM file's first line.
fn base64_prefix(der: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in der[..45].chunks(3) {
        let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        for i in 0..4 {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The event types a watch prints (its lines PUT/DELETE), as they come.
fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if (line == "PUT" || line == "DELETE") && sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

#[test]
fn a_member_with_a_peer_certificate_from_another_ca_is_refused_and_the_others_serve() {
    let stranger = Authority::new("another CA").unwrap();
    let (mut cluster, _) = tls_cluster("tls-peer-ca", &[(2, &stranger)]);
    for i in 0..3 {
        cluster.spawn(i);
    }
    let two = format!(
        "https://{},https://{}",
        cluster.members[0].client, cluster.members[1].client
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster
        .etcdctl_at(&two, &["put", "k", "v"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "s1 and s2 never served\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The stranger keeps dialing and being dialed, once a second at most.
    std::thread::sleep(Duration::from_secs(4));
    let out = cluster.etcdctl_at(&two, &["get", "k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    let s3 = format!("https://{}", cluster.members[2].client);
    let out = etcdctl_with(&s3, &cluster.etcdctl_flags, &["put", "k", "s3"]);
    assert!(
        !out.status.success(),
        "s3 has no quorum: it cannot have joined"
    );
    for i in 0..2 {
        let log = cluster.log(i);
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("peer port: refused a TLS connection"))
            .collect();
        assert_eq!(refusals.len(), 1, "one line, not one per retry:\n{log}");
        // The stranger dials and finds this member's certificate from another CA, and
        // this member dialing it finds the same of the stranger's.
        assert!(refusals[0].contains("another CA"), "{}", refusals[0]);
        assert!(
            log.contains("not signed by a CA in --peer-trusted-ca-file"),
            "{log}"
        );
    }
    let log = cluster.log(2);
    assert!(
        log.contains("not signed by a CA in --peer-trusted-ca-file"),
        "{log}"
    );
}

#[test]
fn synod_dev_tls_serves_the_etcdctl_line_it_prints() {
    support::etcdctl_installed();
    // Member i binds the port + 10,000·i and the next: all below the ephemeral range.
    let port = loop {
        let p = free_port();
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if p < 12_700 && (0..3).all(|i| free(p + 10_000 * i) && free(p + 10_000 * i + 1)) {
            break p;
        }
    };
    let dir = std::env::temp_dir().join(format!("synod-e2e-dev-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = [
        "--tls".to_string(),
        "--port".to_string(),
        port.to_string(),
        format!("--data-dir={}", dir.display()),
    ];
    let (mut dev, _stdout, printed) = support::spawn_dev(&args);
    let command = |verb: &str| -> Vec<String> {
        let line = printed.lines().find(|l| l.contains(verb)).expect(verb);
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        assert_eq!(words[0], "etcdctl", "{line}");
        words[1..].to_vec()
    };
    let run = |args: &[String]| {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(args)
            .output()
            .unwrap()
    };
    let (put, get) = (command("put greeting"), command("get greeting"));
    assert!(
        put.iter().any(|w| w.starts_with("--endpoints=https://")),
        "{put:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run(&put).status.success() {
        assert!(
            Instant::now() < deadline,
            "synod dev --tls never took a write"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = run(&get);
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("hello"),
        "{got:?}"
    );
    let stopped = std::process::Command::new("kill")
        .args(["-INT", &dev.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = dev.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.join("tls/ca.pem").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
