//! A member's configuration: who it is, where it listens, who its peers are, its timing
//! and its limits. Parsed from etcd's flag values (`--initial-cluster a=http://…,b=…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::limits::REQUEST_BYTES_CEILING;
use crate::tls::{End, TlsInfo};
use paxos::{NodeId, QuorumSpec};

/// One member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its name (`--name`).
    pub name: String,
    /// Its id: a hash of its name, peer URL and the cluster token, so every member
    /// derives the same ids from the same `--initial-cluster`.
    pub id: NodeId,
    /// Where its peers reach it.
    pub peer_url: String,
}

/// Whether the member starts a new cluster or joins an existing one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterState {
    /// `new`: the members of `--initial-cluster` form a fresh cluster.
    #[default]
    New,
    /// `existing`: the data directory already belongs to the cluster.
    Existing,
}

/// Everything a member needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// This member's name.
    pub name: String,
    /// Where its log, snapshots and identity live.
    pub data_dir: PathBuf,
    /// Where it serves clients.
    pub listen_client: Vec<Endpoint>,
    /// The client URLs it advertises.
    pub advertise_client_urls: Vec<String>,
    /// Where it accepts peers.
    pub listen_peer: Endpoint,
    /// Every member of the cluster, sorted by id.
    pub members: Vec<Member>,
    /// The cluster's id (a hash of the token and the member ids).
    pub cluster_id: u64,
    /// `new` or `existing`.
    pub cluster_state: ClusterState,
    /// How often a leader sends heartbeats: one engine tick.
    pub heartbeat: Duration,
    /// How long a follower waits for a leader before campaigning.
    pub election_timeout: Duration,
    /// The largest request accepted, in bytes.
    pub max_request_bytes: usize,
    /// Above this many bytes of live data the NOSPACE alarm is raised.
    pub quota_backend_bytes: u64,
    /// The quorum system.
    pub quorum: QuorumSpec,
    /// Take a snapshot and release the log after this many applied entries.
    pub snapshot_entries: u64,
    /// Where it serves HTTP alone (`/metrics`, `/health`, …), besides the client URLs
    /// (over TLS with the clients' certificate where the URL is `https`).
    pub listen_metrics: Vec<Endpoint>,
    /// The etcd version it reports (Status, `/version`, `/metrics`): clients such as
    /// Kubernetes turn features on by it.
    pub etcd_version: String,
    /// How often watchers that asked for progress notifications get one.
    pub watch_progress_notify_interval: Duration,
    /// Issue log writes from the core through io_uring where the kernel and the file
    /// system allow it (direct I/O), instead of handing them to a committer thread.
    pub io_uring: bool,
    /// Tokens and password hashing (`--auth-token`, `--auth-token-ttl`, `--bcrypt-cost`).
    pub auth: AuthConfig,
    /// TLS towards clients (`--cert-file`, …), on the `https` client and metrics URLs.
    pub client_tls: TlsInfo,
    /// TLS between members (`--peer-cert-file`, …), on `https` peer URLs.
    pub peer_tls: TlsInfo,
    /// Where this member records its trace (`--trace-file`, `--trace-file-max-bytes`);
    /// none: it keeps none.
    pub trace_file: Option<crate::node::TraceFile>,
}

/// How clients are authenticated once auth is enabled.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// How long a simple token lives unused (`--auth-token-ttl`).
    pub token_ttl: Duration,
    /// The bcrypt cost of new password hashes (`--bcrypt-cost`, 4 to 31).
    pub bcrypt_cost: u32,
    /// JWT tokens (`--auth-token jwt,…`) instead of simple ones.
    pub jwt: Option<std::sync::Arc<crate::auth::Jwt>>,
}

impl Default for AuthConfig {
    /// etcd's defaults: simple tokens living 300 s, bcrypt cost 10.
    fn default() -> AuthConfig {
        AuthConfig {
            token_ttl: crate::auth::TOKEN_TTL_DEFAULT,
            bcrypt_cost: crate::auth::BCRYPT_COST_DEFAULT,
            jwt: None,
        }
    }
}

/// A duration as Go writes one: a number and a unit (`h`, `m`, `s`, `ms`), or several
/// (`1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (like 10m, 5s or 500ms)"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "h" => Duration::from_secs(number * 3600),
            "m" => Duration::from_secs(number * 60),
            "s" => Duration::from_secs(number),
            "ms" => Duration::from_millis(number),
            _ => {
                return Err(format!(
                    "{text:?} is not a duration (like 10m, 5s or 500ms)"
                ))
            }
        };
        total += part;
        rest = &rest[unit..];
    }
    if total.is_zero() {
        return Err("the interval must be above zero".into());
    }
    Ok(total)
}

/// Parses `--auth-token`: `simple` (etcd's default) or
/// `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m`; the keys are read now.
pub fn parse_auth_token(
    text: &str,
) -> Result<Option<std::sync::Arc<crate::auth::Jwt>>, ConfigError> {
    match text
        .split_once(',')
        .map_or((text, ""), |(kind, rest)| (kind, rest))
    {
        ("simple", _) => Ok(None),
        ("jwt", options) => crate::auth::Jwt::from_options(options)
            .map(|jwt| Some(std::sync::Arc::new(jwt)))
            .map_err(ConfigError),
        _ => Err(ConfigError(format!(
            "--auth-token {text:?}: unknown token kind (expected simple or jwt,…)"
        ))),
    }
}

/// A URL flag's address, and whether it is served (or dialed) over TLS: `https://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The socket address.
    pub addr: SocketAddr,
    /// The host as the URL names it (an IP address or `localhost`): the name a dialer
    /// checks the server's certificate against.
    pub host: String,
    /// `https://`.
    pub tls: bool,
}

impl Endpoint {
    /// A plain (`http://`) endpoint at `addr`.
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            host: addr.ip().to_string(),
            tls: false,
        }
    }

    /// The URL it was given as.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// The etcd version a member reports unless told otherwise: the first 3.5 release whose
/// watch progress requests Kubernetes trusts (its `RequestWatchProgress` needs 3.5.13),
/// as kine reports by default.
pub const ETCD_VERSION_DEFAULT: &str = "3.5.13";

/// How often watchers that asked get a progress notification unless told otherwise
/// (etcd's `--experimental-watch-progress-notify-interval` default).
pub const WATCH_PROGRESS_NOTIFY_DEFAULT: Duration = Duration::from_secs(600);

/// A configuration that cannot work, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// 64-bit FNV-1a: stable across builds and platforms, which ids must be.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Parses `--initial-cluster` (`name=url,name=url`) into members with ids derived from
/// `token`, sorted by id, and the cluster id.
pub fn parse_initial_cluster(text: &str, token: &str) -> Result<(Vec<Member>, u64), ConfigError> {
    let mut members = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, url)) = part.split_once('=') else {
            return err(format!(
                "--initial-cluster entry {part:?} is not name=url (e.g. s1=http://127.0.0.1:2380)"
            ));
        };
        parse_url(url)?;
        if members.iter().any(|m: &Member| m.name == name) {
            return err(format!("--initial-cluster names {name:?} twice"));
        }
        let id = fnv1a(&[name.as_bytes(), url.as_bytes(), token.as_bytes()]) & (u64::MAX >> 1);
        members.push(Member {
            name: name.to_string(),
            id: NodeId(id.max(1)),
            peer_url: url.to_string(),
        });
    }
    if members.is_empty() {
        return err("--initial-cluster names no member");
    }
    members.sort_by_key(|m| m.id);
    let ids: Vec<[u8; 8]> = members.iter().map(|m| m.id.0.to_le_bytes()).collect();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(ids.iter().map(|id| id.as_slice()));
    Ok((members, fnv1a(&parts) & (u64::MAX >> 1)))
}

/// Parses `http://host:port` (or `host:port`) into a socket address. Host names other
/// than `localhost` are not resolved: members listen on addresses.
pub fn parse_url(url: &str) -> Result<SocketAddr, ConfigError> {
    parse_endpoint(url).map(|endpoint| endpoint.addr)
}

/// Parses `http://host:port`, `https://host:port` or `host:port` (plain).
pub fn parse_endpoint(url: &str) -> Result<Endpoint, ConfigError> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, url),
    };
    let rest = rest.trim_end_matches('/');
    let host = match rest.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => rest,
    };
    let address = rest.replacen("localhost:", "127.0.0.1:", 1);
    match address.parse() {
        Ok(addr) => Ok(Endpoint {
            addr,
            host: host.to_string(),
            tls,
        }),
        Err(_) => err(format!(
            "{url:?} is not an address URL like http://127.0.0.1:2379"
        )),
    }
}

/// Parses a comma-separated URL list.
pub fn parse_urls(text: &str) -> Result<Vec<Endpoint>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(parse_endpoint)
        .collect()
}

impl Config {
    /// This member's entry.
    pub fn me(&self) -> Result<&Member, ConfigError> {
        match self.members.iter().find(|m| m.name == self.name) {
            Some(m) => Ok(m),
            None => err(format!(
                "--name {:?} is not in --initial-cluster ({})",
                self.name,
                self.members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Refuses limits the peer protocol cannot carry: one command must fit in a frame
    /// beside a batch of others.
    pub fn check_limits(&self) -> Result<(), ConfigError> {
        if self.max_request_bytes == 0 || self.max_request_bytes > REQUEST_BYTES_CEILING {
            return err(format!(
                "--max-request-bytes must be between 1 and {REQUEST_BYTES_CEILING} (etcd recommends at most 10 MiB)"
            ));
        }
        Ok(())
    }

    /// Refuses TLS flags that cannot work: an `https` URL with no certificate to serve it
    /// (etcd's messages), a certificate without its key.
    pub fn check_tls(&self) -> Result<(), ConfigError> {
        self.client_tls.check(End::Client).map_err(ConfigError)?;
        self.peer_tls.check(End::Peer).map_err(ConfigError)?;
        let served = self.listen_client.iter().chain(&self.listen_metrics);
        if let Some(url) = served
            .filter(|e| e.tls)
            .find(|_| !self.client_tls.can_serve())
        {
            return err(format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                url.url()
            ));
        }
        if self.listen_peer.tls && !self.peer_tls.can_serve() {
            return err(format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented (--peer-cert-file and --peer-key-file, or --peer-auto-tls)",
                self.listen_peer.addr
            ));
        }
        Ok(())
    }

    /// The hosts this member's `end` answers at: the names an `--auto-tls` certificate
    /// is made for.
    pub fn hosts(&self, end: End) -> Vec<String> {
        let mut hosts: Vec<String> = match end {
            End::Client => (self.listen_client.iter())
                .map(|e| e.host.clone())
                .chain(
                    self.advertise_client_urls
                        .iter()
                        .filter_map(|url| parse_endpoint(url).ok().map(|e| e.host)),
                )
                .collect(),
            End::Peer => (self.members.iter().filter(|m| m.name == self.name))
                .filter_map(|m| parse_endpoint(&m.peer_url).ok().map(|e| e.host))
                .chain([self.listen_peer.host.clone()])
                .collect(),
        };
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Engine ticks per election timeout (one tick per heartbeat interval).
    pub fn election_ticks(&self) -> Result<u32, ConfigError> {
        let beat = self.heartbeat.as_millis().max(1);
        let ticks = self.election_timeout.as_millis() / beat;
        if ticks < 5 {
            return err(format!(
                "--election-timeout ({} ms) must be at least 5 times --heartbeat-interval ({} ms)",
                self.election_timeout.as_millis(),
                beat
            ));
        }
        Ok(u32::try_from(ticks).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_derives_the_same_ids_from_the_same_flags() {
        let text = "s2=http://127.0.0.1:2381,s1=http://127.0.0.1:2380";
        let (a, cluster_a) = parse_initial_cluster(text, "tok").unwrap();
        let (b, cluster_b) =
            parse_initial_cluster("s1=http://127.0.0.1:2380, s2=http://127.0.0.1:2381", "tok")
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(cluster_a, cluster_b);
        let (_, other) = parse_initial_cluster(text, "other-token").unwrap();
        assert_ne!(cluster_a, other, "the token separates clusters");
        assert!(a.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let e = parse_initial_cluster("s1", "t").unwrap_err();
        assert!(e.0.contains("not name=url"), "{e}");
        let e = parse_initial_cluster("s1=http://a:1,s1=http://127.0.0.1:2", "t").unwrap_err();
        assert!(e.0.contains("not an address"), "{e}");
        let e = parse_initial_cluster("s1=http://127.0.0.1:1,s1=http://127.0.0.1:2", "t");
        assert!(e.unwrap_err().0.contains("twice"));
        assert!(parse_initial_cluster("", "t").is_err());
        assert_eq!(
            parse_url("http://localhost:2379").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
    }

    fn member_listening_on(client: &str, peer: &str) -> Config {
        let (members, cluster_id) = parse_initial_cluster(&format!("s1={peer}"), "t").unwrap();
        Config {
            name: "s1".into(),
            data_dir: PathBuf::from("unused"),
            listen_client: parse_urls(client).unwrap(),
            advertise_client_urls: vec![client.to_string()],
            listen_peer: parse_endpoint(peer).unwrap(),
            members,
            cluster_id,
            cluster_state: ClusterState::New,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            max_request_bytes: 1 << 20,
            quota_backend_bytes: 1 << 30,
            quorum: QuorumSpec::Majority,
            snapshot_entries: 100,
            listen_metrics: Vec::new(),
            etcd_version: ETCD_VERSION_DEFAULT.into(),
            watch_progress_notify_interval: WATCH_PROGRESS_NOTIFY_DEFAULT,
            io_uring: false,
            auth: AuthConfig::default(),
            client_tls: TlsInfo::default(),
            trace_file: None,
            peer_tls: TlsInfo::default(),
        }
    }

    #[test]
    fn an_https_url_without_a_certificate_is_refused_with_etcds_message() {
        let plain = member_listening_on("http://127.0.0.1:2379", "http://127.0.0.1:2380");
        assert_eq!(plain.check_tls(), Ok(()));
        let mut client = member_listening_on("https://127.0.0.1:2379", "http://127.0.0.1:2380");
        assert_eq!(
            client.check_tls().unwrap_err().0,
            "TLS key/cert (--cert-file, --key-file) must be provided for client url \
             https://127.0.0.1:2379 with HTTPS scheme"
        );
        client.client_tls.auto_tls = true;
        assert_eq!(client.check_tls(), Ok(()));
        let mut metrics = plain.clone();
        metrics.listen_metrics = parse_urls("https://127.0.0.1:9000").unwrap();
        assert!(metrics
            .check_tls()
            .unwrap_err()
            .0
            .contains("client url https://127.0.0.1:9000"));
        let mut peer = member_listening_on("http://127.0.0.1:2379", "https://127.0.0.1:2380");
        assert!(peer.check_tls().unwrap_err().0.starts_with(
            "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
        ));
        peer.peer_tls.cert_file = Some("peer.pem".into());
        peer.peer_tls.key_file = Some("peer-key.pem".into());
        assert_eq!(peer.check_tls(), Ok(()));
        assert_eq!(peer.hosts(End::Peer), ["127.0.0.1"]);
    }

    #[test]
    fn https_urls_are_tls_endpoints_and_keep_their_host_for_verification() {
        let tls = parse_endpoint("https://localhost:2379/").unwrap();
        assert_eq!(
            (tls.addr, tls.host.as_str(), tls.tls),
            ("127.0.0.1:2379".parse().unwrap(), "localhost", true)
        );
        let plain = parse_endpoint("http://127.0.0.1:2380").unwrap();
        assert_eq!((plain.host.as_str(), plain.tls), ("127.0.0.1", false));
        assert!(!parse_endpoint("127.0.0.1:2380").unwrap().tls);
        let v6 = parse_endpoint("https://[::1]:2379").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.url()),
            ("::1", "https://[::1]:2379".to_string())
        );
        assert!(parse_endpoint("https://example.com:2379").is_err());
        assert_eq!(
            parse_urls("https://127.0.0.1:1, http://127.0.0.1:2")
                .unwrap()
                .iter()
                .map(|e| e.tls)
                .collect::<Vec<_>>(),
            [true, false]
        );
    }
}
