//! `synod dev`: a local cluster (three members unless told otherwise) in one process, for
//! trying Synod out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use paxos::QuorumSpec;
use server::config::{self, ClusterState, Config};
use server::tls::certs::{Authority, Request};
use server::tls::TlsInfo;

/// Flags of `synod dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the members keep their data (one directory each).
    #[arg(long, default_value = "synod-data")]
    data_dir: PathBuf,
    /// How many members, from 1 to 7.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=7))]
    members: u16,
    /// The first member's client port; member i uses this + 10000·i (2379, 12379, 22379,
    /// …), and each peer port is its client port + 1.
    #[arg(long, default_value_t = 2379)]
    port: u16,
    /// Log level.
    #[arg(long, default_value = "warn")]
    log_level: tracing::Level,
    /// Serve clients and peers over TLS (https URLs, client certificates required,
    /// mutual TLS between members), with a throwaway CA and certificates made in
    /// DATA_DIR/tls.
    #[arg(long)]
    tls: bool,
}

/// The throwaway certificates of `synod dev --tls`, in one directory.
#[derive(Debug)]
struct DevCertificates {
    dir: PathBuf,
}

impl DevCertificates {
    const CLIENT: &'static str = "client";

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-key.pem"))
    }

    /// The certificates in `dir` for `members`, made if any is missing: a CA, one
    /// certificate per member (served to clients and peers, and presented when dialing
    /// peers) and one for clients, CN `root` (the user it acts as when authentication is
    /// on), all for 127.0.0.1 and localhost.
    fn in_dir(dir: PathBuf, members: &[String]) -> Result<DevCertificates, String> {
        let certificates = DevCertificates { dir };
        let names = members.iter().map(String::as_str).chain([Self::CLIENT]);
        let all_there = certificates.ca().exists()
            && names
                .clone()
                .all(|n| certificates.cert(n).exists() && certificates.key(n).exists());
        if all_there {
            return Ok(certificates);
        }
        let ca = Authority::new("synod dev CA")?;
        ca.pem()
            .write(&certificates.ca(), &certificates.key("ca"))?;
        for name in names {
            let common_name = if name == Self::CLIENT { "root" } else { name };
            let request = Request::new(common_name, &["127.0.0.1", "localhost"]);
            ca.issue(&request)?
                .write(&certificates.cert(name), &certificates.key(name))?;
        }
        Ok(certificates)
    }

    /// The TLS flags of member `name`: its certificate, and the CA's for the other end.
    fn info(&self, name: &str) -> TlsInfo {
        TlsInfo {
            cert_file: Some(self.cert(name)),
            key_file: Some(self.key(name)),
            trusted_ca_file: Some(self.ca()),
            client_cert_auth: true,
            auto_tls: false,
        }
    }

    /// etcdctl's flags to reach the members with the client certificate.
    fn etcdctl_flags(&self) -> String {
        format!(
            "--cacert={} --cert={} --key={}",
            self.ca().display(),
            self.cert(Self::CLIENT).display(),
            self.key(Self::CLIENT).display()
        )
    }
}

fn configs(args: &DevArgs, tls: Option<&DevCertificates>) -> Result<Vec<Config>, String> {
    let count = usize::from(args.members);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let port = |i: usize, peer: bool| -> Result<u16, String> {
        let offset = u16::try_from(10_000 * i).map_err(|e| e.to_string())?;
        args.port
            .checked_add(offset + u16::from(peer))
            .ok_or_else(|| format!("--port {} leaves no room for {count} members", args.port))
    };
    let url = |i: usize, peer: bool| -> Result<String, String> {
        Ok(format!("{scheme}://127.0.0.1:{}", port(i, peer)?))
    };
    let mut cluster = Vec::new();
    for i in 0..count {
        cluster.push(format!("s{}={}", i + 1, url(i, true)?));
    }
    let (members, cluster_id) = config::parse_initial_cluster(&cluster.join(","), "synod-dev")
        .map_err(|e| e.to_string())?;
    let mut configs = Vec::new();
    for i in 0..count {
        let name = format!("s{}", i + 1);
        let client = url(i, false)?;
        let tls_info = tls.map(|t| t.info(&name)).unwrap_or_default();
        configs.push(Config {
            data_dir: args.data_dir.join(&name),
            listen_client: vec![config::parse_endpoint(&client).map_err(|e| e.to_string())?],
            advertise_client_urls: vec![client],
            listen_peer: config::parse_endpoint(&url(i, true)?).map_err(|e| e.to_string())?,
            name,
            members: members.clone(),
            cluster_id,
            cluster_state: ClusterState::New,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            max_request_bytes: server::limits::REQUEST_BYTES_DEFAULT,
            quota_backend_bytes: server::limits::QUOTA_BACKEND_BYTES_DEFAULT,
            quorum: QuorumSpec::Majority,
            snapshot_entries: 100_000,
            io_uring: true,
            auth: Default::default(),
            listen_metrics: Vec::new(),
            etcd_version: config::ETCD_VERSION_DEFAULT.into(),
            watch_progress_notify_interval: config::WATCH_PROGRESS_NOTIFY_DEFAULT,
            client_tls: tls_info.clone(),
            trace_file: None,
            peer_tls: tls_info,
        });
    }
    Ok(configs)
}

/// The certificates `--tls` asks for, made in the data directory.
fn certificates(args: &DevArgs) -> Result<Option<DevCertificates>, String> {
    if !args.tls {
        return Ok(None);
    }
    let dir = std::path::absolute(args.data_dir.join("tls")).map_err(|e| e.to_string())?;
    let names: Vec<String> = (1..=args.members).map(|i| format!("s{i}")).collect();
    DevCertificates::in_dir(dir, &names).map(Some)
}

/// Writes a line to stdout. A closed stdout (`synod dev | head`, a test that stopped
/// reading) is no reason to fail: the cluster keeps running and stops cleanly.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints the members' client URLs and the etcdctl lines to try.
fn print_banner(args: &DevArgs, urls: &[String], tls: Option<&DevCertificates>) {
    // Plain endpoints as host:port (the README's), TLS ones as https URLs.
    let endpoints: Vec<&str> = urls
        .iter()
        .map(|url| url.trim_start_matches("http://"))
        .collect();
    let all = endpoints.join(",");
    say(format_args!(
        "synod dev: {} members, data in {}",
        args.members,
        args.data_dir.display()
    ));
    for (i, url) in urls.iter().enumerate() {
        say(format_args!("  s{}  client {url}", i + 1));
    }
    let flags = match tls {
        Some(tls) => {
            say(format_args!(
                "\nTLS: clients need a certificate from the CA in {} (client.pem is one).",
                tls.dir.display()
            ));
            format!(" {}", tls.etcdctl_flags())
        }
        None => String::new(),
    };
    say(format_args!("\nTry:"));
    say(format_args!(
        "  etcdctl --endpoints={all}{flags} put greeting hello"
    ));
    say(format_args!(
        "  etcdctl --endpoints={all}{flags} get greeting"
    ));
    say(format_args!("\nCtrl-C stops the cluster."));
}

/// Runs `synod dev` until Ctrl-C.
pub fn run(args: DevArgs) -> Result<ExitCode, String> {
    super::serve::init_logging(args.log_level);
    let tls = certificates(&args)?;
    let configs = configs(&args, tls.as_ref())?;
    let urls: Vec<String> = configs
        .iter()
        .map(|c| c.advertise_client_urls.concat())
        .collect();
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut members = Vec::new();
        for config in configs {
            let mut stop = stop_rx.clone();
            let name = config.name.clone();
            let done = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            members.push((name, tokio::spawn(server::server::run(config, done))));
        }
        print_banner(&args, &urls, tls.as_ref());
        tokio::select! {
            () = super::serve::stop_signal() => {}
            () = async {
                // A member that fails (a port in use, a damaged data dir) ends the run.
                for (_, member) in &mut members {
                    if member.is_finished() { return; }
                }
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if members.iter().any(|(_, m)| m.is_finished()) { return; }
                }
            } => {}
        }
        let _ = stop_tx.send(true);
        let mut failed = None;
        for (name, member) in members {
            match member.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = Some(format!("member {name}: {e}")),
                Err(e) => failed = Some(format!("member {name}: {e}")),
            }
        }
        say(format_args!("synod dev: stopped"));
        match failed {
            Some(e) => Err(e),
            None => Ok(ExitCode::SUCCESS),
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dev: DevArgs,
    }

    fn args(flags: &[&str]) -> Result<DevArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("dev").chain(flags.iter().copied())).map(|c| c.dev)
    }

    #[test]
    fn one_to_seven_members_each_with_its_own_ports_and_directory() {
        for n in 1..=7 {
            let configs = configs(&args(&["--members", &n.to_string()]).unwrap(), None).unwrap();
            assert_eq!(configs.len(), n);
            for (i, config) in configs.iter().enumerate() {
                assert_eq!(config.members.len(), n, "every member knows all {n}");
                assert_eq!(config.name, format!("s{}", i + 1));
                assert_eq!(
                    config.advertise_client_urls,
                    [format!("http://127.0.0.1:{}", 2379 + 10_000 * i)]
                );
                assert_eq!(
                    usize::from(config.listen_peer.addr.port()),
                    2380 + 10_000 * i
                );
                assert!(config.data_dir.ends_with(format!("s{}", i + 1)));
            }
        }
        assert_eq!(
            configs(&args(&[]).unwrap(), None).unwrap().len(),
            3,
            "three by default"
        );
    }

    #[test]
    fn with_tls_every_url_is_https_and_every_member_has_its_own_certificate() {
        let dir = std::env::temp_dir().join(format!("synod-dev-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let flags = ["--tls", "--data-dir", dir.to_str().unwrap()];
        let args = args(&flags).unwrap();
        let tls = certificates(&args).unwrap().unwrap();
        let ca = std::fs::read(tls.ca()).unwrap();
        for (i, config) in configs(&args, Some(&tls)).unwrap().iter().enumerate() {
            let name = format!("s{}", i + 1);
            assert!(config.listen_client.iter().all(|e| e.tls));
            assert!(config.listen_peer.tls);
            assert!(config
                .members
                .iter()
                .all(|m| m.peer_url.starts_with("https://")));
            assert_eq!(config.client_tls.cert_file, Some(tls.cert(&name)));
            assert!(config.client_tls.client_cert_auth && config.peer_tls.client_cert_auth);
            assert!(config.check_tls().is_ok());
        }
        assert!(tls.etcdctl_flags().contains("client-key.pem"));
        // A second start reuses them: a client certificate handed out stays good.
        certificates(&args).unwrap();
        assert_eq!(std::fs::read(tls.ca()).unwrap(), ca);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_zero_or_more_than_seven_members_and_ports_past_the_range() {
        assert!(args(&["--members", "0"]).is_err());
        assert!(args(&["--members", "8"]).is_err());
        let crowded = args(&["--members", "7", "--port", "10000"]).unwrap();
        let refused = configs(&crowded, None).unwrap_err();
        assert!(
            refused.contains("leaves no room for 7 members"),
            "{refused}"
        );
    }
}
