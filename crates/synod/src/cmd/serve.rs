//! `synod serve`: run one member, configured with etcd's flag names, a config file of
//! `flag: value` lines, or `SYNOD_*` environment variables (flags win over the file).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use paxos::QuorumSpec;
use server::config::{self, ClusterState, Config};
use server::tls::TlsInfo;

/// Flags of `synod serve` (etcd's names).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// This member's name; must appear in --initial-cluster.
    #[arg(long, env = "SYNOD_NAME", default_value = "default")]
    name: String,
    /// Where the log and snapshots live.
    #[arg(long, env = "SYNOD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Addresses to serve clients on (comma-separated URLs).
    #[arg(
        long,
        env = "SYNOD_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    listen_client_urls: String,
    /// Client URLs advertised to the cluster.
    #[arg(long, env = "SYNOD_ADVERTISE_CLIENT_URLS")]
    advertise_client_urls: Option<String>,
    /// Address to accept peers on.
    #[arg(
        long,
        env = "SYNOD_LISTEN_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    listen_peer_urls: String,
    /// This member's peer URL as the others know it.
    #[arg(long, env = "SYNOD_INITIAL_ADVERTISE_PEER_URLS")]
    initial_advertise_peer_urls: Option<String>,
    /// Every member: name=peer-url,...
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// Separates clusters started from the same member list.
    #[arg(
        long,
        env = "SYNOD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    initial_cluster_token: String,
    /// `new` or `existing`.
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_STATE", default_value = "new")]
    initial_cluster_state: String,
    /// Heartbeat interval in milliseconds (one engine tick).
    #[arg(long, env = "SYNOD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Election timeout in milliseconds.
    #[arg(long, env = "SYNOD_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// The largest request accepted, in bytes.
    #[arg(long, env = "SYNOD_MAX_REQUEST_BYTES", default_value_t = server::limits::REQUEST_BYTES_DEFAULT)]
    max_request_bytes: usize,
    /// Raise the NOSPACE alarm above this many bytes of live data.
    #[arg(long, env = "SYNOD_QUOTA_BACKEND_BYTES", default_value_t = server::limits::QUOTA_BACKEND_BYTES_DEFAULT)]
    quota_backend_bytes: u64,
    /// Quorum system: majority, flexible:Q1,Q2 or grid:RxC.
    #[arg(long, env = "SYNOD_QUORUM", default_value = "majority", value_parser = super::sim::parse_quorum)]
    quorum: QuorumSpec,
    /// Take a snapshot and release the log every this many applied entries.
    #[arg(long, env = "SYNOD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    snapshot_count: u64,
    /// Issue log writes through io_uring where the kernel and the file system allow it
    /// (false: through a committer thread, as where they do not).
    #[arg(long, env = "SYNOD_IO_URING", default_value_t = true, action = clap::ArgAction::Set)]
    io_uring: bool,
    /// Addresses to serve HTTP alone on (`/metrics`, `/health`, `/livez`, `/readyz`,
    /// `/version`), comma-separated URLs; the client URLs serve them too.
    #[arg(long, env = "SYNOD_LISTEN_METRICS_URLS")]
    listen_metrics_urls: Option<String>,
    /// The etcd version to report (Status, `/version`, `/metrics`); clients such as
    /// Kubernetes turn features on by it.
    #[arg(long, env = "SYNOD_EMULATED_ETCD_VERSION", default_value = server::config::ETCD_VERSION_DEFAULT)]
    emulated_etcd_version: String,
    /// How often watchers that asked get a progress notification (etcd's duration
    /// syntax: 10m, 5s, 500ms).
    #[arg(long, env = "SYNOD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = config::parse_duration)]
    experimental_watch_progress_notify_interval: Duration,
    /// A file of `flag-name: value` lines (etcd's config file keys); flags override it.
    #[arg(long, env = "SYNOD_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "SYNOD_LOG_LEVEL", default_value = "info")]
    log_level: tracing::Level,
    /// The log's form: text, or zap (etcd's JSON lines).
    #[arg(long, env = "SYNOD_LOGGER", value_enum, default_value = "text")]
    logger: super::logging::Logger,
    /// Where the log goes: stderr, stdout, or files, comma-separated.
    #[arg(long, env = "SYNOD_LOG_OUTPUTS", default_value = "stderr")]
    log_outputs: String,
    /// The kind of token `Authenticate` issues once auth is enabled: simple (etcd's
    /// default) or jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m.
    #[arg(long, env = "SYNOD_AUTH_TOKEN", default_value = "simple")]
    auth_token: String,
    /// Seconds a simple token lives unused.
    #[arg(long, env = "SYNOD_AUTH_TOKEN_TTL", default_value_t = 300)]
    auth_token_ttl: u64,
    /// The bcrypt cost of password hashes (4 to 31).
    #[arg(long, env = "SYNOD_BCRYPT_COST", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    bcrypt_cost: u32,
    /// Record this member's trace in FILE (JSON lines: what it sent, received, applied,
    /// with vector clocks; `synod trace merge` joins the members' files). Off by
    /// default. A file of an earlier run of this member is continued.
    #[arg(long, env = "SYNOD_TRACE_FILE")]
    trace_file: Option<PathBuf>,
    /// The trace file grows to at most this many bytes, then records nothing more.
    #[arg(long, env = "SYNOD_TRACE_FILE_MAX_BYTES", default_value_t = server::node::trace::MAX_BYTES_DEFAULT)]
    trace_file_max_bytes: u64,
    /// TLS towards clients, on `https` client and metrics URLs.
    #[command(flatten)]
    client_tls: ClientTlsArgs,
    /// TLS between members, on `https` peer URLs.
    #[command(flatten)]
    peer_tls: PeerTlsArgs,
}

/// The clients' TLS flags (etcd's names). etcd's boolean flags take `--flag`,
/// `--flag=true` (a config file's `flag: true`) or `--flag=false`.
#[derive(Debug, Args)]
pub struct ClientTlsArgs {
    /// The certificate served to clients (PEM; rotated by replacing the file).
    #[arg(long, env = "SYNOD_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// The key of --cert-file (PEM).
    #[arg(long, env = "SYNOD_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// Require client certificates signed by --trusted-ca-file.
    #[arg(long, env = "SYNOD_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    client_cert_auth: bool,
    /// The CA bundle client certificates are verified against (PEM).
    #[arg(long, env = "SYNOD_TRUSTED_CA_FILE")]
    trusted_ca_file: Option<PathBuf>,
    /// Without --cert-file, serve clients a self-signed certificate (kept in the data dir).
    #[arg(long, env = "SYNOD_AUTO_TLS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    auto_tls: bool,
}

/// The peers' TLS flags (etcd's names).
#[derive(Debug, Args)]
pub struct PeerTlsArgs {
    /// The certificate served to peers and presented when dialing them (PEM).
    #[arg(long, env = "SYNOD_PEER_CERT_FILE")]
    peer_cert_file: Option<PathBuf>,
    /// The key of --peer-cert-file (PEM).
    #[arg(long, env = "SYNOD_PEER_KEY_FILE")]
    peer_key_file: Option<PathBuf>,
    /// Require peers' certificates signed by --peer-trusted-ca-file.
    #[arg(long, env = "SYNOD_PEER_CLIENT_CERT_AUTH", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    peer_client_cert_auth: bool,
    /// The CA bundle peers' certificates are verified against (PEM).
    #[arg(long, env = "SYNOD_PEER_TRUSTED_CA_FILE")]
    peer_trusted_ca_file: Option<PathBuf>,
    /// Without --peer-cert-file, use a self-signed certificate between peers (encrypts,
    /// does not authenticate).
    #[arg(long, env = "SYNOD_PEER_AUTO_TLS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    peer_auto_tls: bool,
}

impl ClientTlsArgs {
    fn info(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            trusted_ca_file: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            auto_tls: self.auto_tls,
        }
    }
}

impl PeerTlsArgs {
    fn info(&self) -> TlsInfo {
        TlsInfo {
            cert_file: self.peer_cert_file.clone(),
            key_file: self.peer_key_file.clone(),
            trusted_ca_file: self.peer_trusted_ca_file.clone(),
            client_cert_auth: self.peer_client_cert_auth,
            auto_tls: self.peer_auto_tls,
        }
    }
}

impl ServeArgs {
    /// The config file named by `--config-file`, if any.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config_file.clone()
    }

    /// The member configuration these flags describe.
    pub fn config(&self) -> Result<Config, String> {
        let peer = self
            .initial_advertise_peer_urls
            .clone()
            .unwrap_or_else(|| self.listen_peer_urls.clone());
        let cluster_text = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let (members, cluster_id) =
            config::parse_initial_cluster(&cluster_text, &self.initial_cluster_token)
                .map_err(|e| e.to_string())?;
        let listen_client =
            config::parse_urls(&self.listen_client_urls).map_err(|e| e.to_string())?;
        let advertise = self
            .advertise_client_urls
            .clone()
            .unwrap_or_else(|| self.listen_client_urls.clone());
        let cluster_state = match self.initial_cluster_state.as_str() {
            "new" => ClusterState::New,
            "existing" => ClusterState::Existing,
            other => {
                return Err(format!(
                    "--initial-cluster-state {other:?} is neither new nor existing"
                ))
            }
        };
        let config = Config {
            name: self.name.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.synod", self.name))),
            listen_client,
            advertise_client_urls: advertise.split(',').map(|s| s.trim().to_string()).collect(),
            listen_peer: config::parse_endpoint(&self.listen_peer_urls)
                .map_err(|e| e.to_string())?,
            members,
            cluster_id,
            cluster_state,
            heartbeat: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            max_request_bytes: self.max_request_bytes,
            quota_backend_bytes: self.quota_backend_bytes,
            quorum: self.quorum,
            snapshot_entries: self.snapshot_count.max(1),
            io_uring: self.io_uring,
            auth: config::AuthConfig {
                token_ttl: Duration::from_secs(self.auth_token_ttl),
                bcrypt_cost: self.bcrypt_cost,
                jwt: config::parse_auth_token(&self.auth_token).map_err(|e| e.to_string())?,
            },
            listen_metrics: match &self.listen_metrics_urls {
                Some(urls) => config::parse_urls(urls).map_err(|e| e.to_string())?,
                None => Vec::new(),
            },
            etcd_version: self.emulated_etcd_version.clone(),
            watch_progress_notify_interval: self.experimental_watch_progress_notify_interval,
            client_tls: self.client_tls.info(),
            peer_tls: self.peer_tls.info(),
            trace_file: self.trace_file.clone().map(|path| server::node::TraceFile {
                path,
                max_bytes: self.trace_file_max_bytes,
            }),
        };
        config.me().map_err(|e| e.to_string())?;
        config.check_tls().map_err(|e| e.to_string())?;
        config.election_ticks().map_err(|e| e.to_string())?;
        config.check_limits().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// Turns a config file's `flag-name: value` lines into flags that come before the
/// command line's own (which therefore win).
pub fn file_flags(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut flags = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "{}:{}: expected `flag-name: value`",
                path.display(),
                n + 1
            ));
        };
        let value = value.trim().trim_matches(|c| c == '\'' || c == '"');
        flags.push(format!("--{}={value}", key.trim()));
    }
    Ok(flags)
}

/// Logs to stderr at `level`.
pub fn init_logging(level: tracing::Level) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Runs `synod serve`.
pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    super::logging::init(args.log_level, args.logger, &args.log_outputs)?;
    let config = args.config()?;
    let runtime = super::runtime()?;
    runtime
        .block_on(server::server::run(config, stop_signal()))
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve(flags: &[&str]) -> Result<ServeArgs, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn tls_flags_take_etcds_names_and_boolean_forms() {
        let https = [
            "--listen-client-urls=https://127.0.0.1:2379",
            "--listen-peer-urls=https://127.0.0.1:2380",
        ];
        let with = |more: &[&str]| serve(&[&https[..], more].concat()).unwrap();
        let args = with(&[
            "--cert-file=s.pem",
            "--key-file=s-key.pem",
            "--trusted-ca-file=ca.pem",
            "--client-cert-auth",
            "--peer-auto-tls=true",
            "--peer-client-cert-auth=false",
        ]);
        let config = args.config().unwrap();
        assert_eq!(config.client_tls.cert_file, Some(PathBuf::from("s.pem")));
        assert!(config.client_tls.client_cert_auth && config.peer_tls.auto_tls);
        assert!(!config.peer_tls.client_cert_auth);
        assert!(config.listen_client[0].tls && config.listen_peer.tls);
        assert!(config.members[0].peer_url.starts_with("https://"));
        // A config file's `client-cert-auth: true` arrives as `--client-cert-auth=true`.
        assert!(
            with(&["--auto-tls", "--peer-auto-tls", "--client-cert-auth=true"])
                .config()
                .is_ok()
        );
        let refused = with(&["--peer-auto-tls"]).config().unwrap_err();
        assert!(refused.starts_with("TLS key/cert (--cert-file, --key-file) must be provided"));
        let refused = with(&["--auto-tls"]).config().unwrap_err();
        assert!(refused.starts_with("cannot listen on TLS for 127.0.0.1:2380"));
        assert!(serve(&["--client-cert-auth=maybe"]).is_err());
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let ok = |text| config::parse_duration(text).ok();
        assert_eq!(ok("10m"), Some(Duration::from_secs(600)));
        assert_eq!(ok("5s"), Some(Duration::from_secs(5)));
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(ok("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "5", "s", "5x", "0s", "-1s", "1.5s"] {
            assert!(config::parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
