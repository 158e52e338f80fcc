//! TLS for the end-to-end tests: a throwaway CA, certificates issued from it, and a
//! three-member cluster whose client and peer ports all require them.

use std::path::{Path, PathBuf};

use server::tls::certs::{Authority, Request};

use super::Cluster;

/// Issues a certificate for `name` (valid for 127.0.0.1 and localhost) into `dir`:
/// NAME.pem and NAME-key.pem.
pub fn issue(ca: &Authority, dir: &Path, name: &str, request: &Request) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    ca.issue(request).unwrap().write(&cert, &key).unwrap();
    (cert, key)
}

/// A request for a certificate named `name`, valid for 127.0.0.1 and localhost.
pub fn local(name: &str) -> Request {
    Request::new(name, &["127.0.0.1", "localhost"])
}

/// A CA (ca.pem) and a client certificate (client.pem, CN root) in `dir`; etcdctl's flags.
pub fn authority(dir: &Path) -> (Authority, Vec<String>) {
    let ca = Authority::new("e2e CA").unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert).unwrap();
    let (cert, key) = issue(&ca, dir, "client", &Request::new("root", &[]));
    let flags = vec![
        format!("--cacert={}", dir.join("ca.pem").display()),
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
    ];
    (ca, flags)
}

/// Member `name`'s TLS flags: its certificate for clients and peers, both required to
/// present one signed by `ca_file`.
pub fn member_flags(cert: &Path, key: &Path, ca_file: &Path) -> Vec<String> {
    let (cert, key, ca) = (cert.display(), key.display(), ca_file.display());
    [
        format!("--cert-file={cert}"),
        format!("--key-file={key}"),
        format!("--trusted-ca-file={ca}"),
        "--client-cert-auth".into(),
        format!("--peer-cert-file={cert}"),
        format!("--peer-key-file={key}"),
        format!("--peer-trusted-ca-file={ca}"),
        "--peer-client-cert-auth".into(),
    ]
    .into()
}

/// A three-member cluster over TLS, every member's certificate from `ca` except those
/// `peer_ca_of` names another CA for (its peer certificate and the CA it trusts).
pub fn tls_cluster(test: &str, peer_ca_of: &[(usize, &Authority)]) -> (Cluster, Authority) {
    let mut cluster = Cluster::configure(test, &[]);
    let dir = cluster.root().join("tls");
    let (ca, etcdctl) = authority(&dir);
    cluster.use_https(&etcdctl);
    for i in 0..cluster.members.len() {
        let name = cluster.members[i].name.clone();
        let (cert, key) = issue(&ca, &dir, &name, &local(&name));
        let mut flags = member_flags(&cert, &key, &dir.join("ca.pem"));
        if let Some((_, other)) = peer_ca_of.iter().find(|(m, _)| *m == i) {
            let (peer_cert, peer_key) = issue(other, &dir, &format!("{name}-other"), &local(&name));
            let other_ca = dir.join(format!("{name}-other-ca.pem"));
            std::fs::write(&other_ca, &other.cert).unwrap();
            let peer = member_flags(&peer_cert, &peer_key, &other_ca);
            flags.splice(4.., peer[4..].iter().cloned());
        }
        cluster.members[i].extra = flags;
    }
    (cluster, ca)
}

/// etcdctl against `endpoint` with exactly `flags` (none of the cluster's), briefly.
pub fn etcdctl_with(endpoint: &str, flags: &[String], args: &[&str]) -> std::process::Output {
    std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(flags)
        .args(args)
        .output()
        .unwrap()
}
