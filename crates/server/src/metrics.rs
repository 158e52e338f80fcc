//! Prometheus metrics, under etcd's names where they mean the same thing (so dashboards
//! and alerts built for etcd read Synod's), and Synod's own under `synod_`.
//!
//! Two kinds: live metrics ([`Metrics`]) that the code paths update as they run (gRPC
//! calls, log write and snapshot durations, leader changes, failed proposals), and facts
//! read at scrape time ([`Facts`], from the core; [`process`], from `/proc`). A scrape
//! builds a registry of both and encodes it in the OpenMetrics text format
//! (`docs/OPERATIONS.md` lists every metric).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tonic::Code;

/// Labels of a gRPC call, as grpc-go's Prometheus interceptor names them.
type CallLabels = Vec<(&'static str, String)>;

/// Metrics the running member updates.
#[derive(Debug)]
pub struct Metrics {
    grpc_started: Family<CallLabels, Counter>,
    grpc_handled: Family<CallLabels, Counter>,
    /// The counters of each method seen, by path (at most [`METHODS_MAX`]).
    calls: Mutex<HashMap<String, Arc<CallCounters>>>,
    /// How long each write of the log took to become durable (write and sync).
    pub log_writes: Histogram,
    /// How long each snapshot of the state machine took to write.
    pub snapshot_writes: Histogram,
    /// Leaders seen, the first included.
    pub leader_changes: Counter,
    /// Proposals that failed (no leader, the leader changed, timed out).
    pub proposals_failed: Counter,
    /// Slots per accept a leader sends (each copy to each peer counted).
    pub accept_batches: Histogram,
    /// From a leader's heartbeat to a peer until its acknowledgement, by peer (`To`).
    pub peer_round_trips: Family<CallLabels, Histogram, fn() -> Histogram>,
    health_success: Counter,
    health_failures: Counter,
    /// When the process started (seconds since the epoch).
    started: f64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            grpc_started: Family::default(),
            grpc_handled: Family::default(),
            calls: Mutex::default(),
            // etcd's buckets: 1 ms to 8 s, doubling.
            log_writes: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            // etcd's snapshot save buckets: 10 ms to 82 s, doubling.
            snapshot_writes: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            leader_changes: Counter::default(),
            proposals_failed: Counter::default(),
            peer_round_trips: Family::new_with_constructor(round_trip_histogram),
            // 1 to 1,024 slots, doubling.
            accept_batches: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            health_success: Counter::default(),
            health_failures: Counter::default(),
            started: process::start_time().unwrap_or_else(|| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH);
                now.map_or(0.0, |d| d.as_secs_f64())
            }),
        }
    }
}

/// Methods counted apart; calls to further paths (clients may send any) share one
/// `unknown` method, so that no client can grow the metrics without bound.
const METHODS_MAX: usize = 256;

/// etcd's buckets for peer round trips: 0.1 ms to 3.3 s, doubling.
fn round_trip_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The counters of one gRPC method, taken once so that a hot path does no label lookup.
#[derive(Debug)]
pub struct CallCounters {
    started: Counter,
    /// By code (`tonic::Code as usize`, 0 to 16).
    handled: Vec<Counter>,
}

impl CallCounters {
    /// A call began.
    pub fn started(&self) {
        self.started.inc();
    }

    /// A call ended with `code`.
    pub fn handled(&self, code: Code) {
        if let Some(counter) = self.handled.get(code as usize) {
            counter.inc();
        }
    }
}

/// Every gRPC status code, in number order.
const CODES: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

/// The name grpc-go gives a code in metrics ("OK", "DeadlineExceeded", …).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// grpc-go's kind of a method: the streaming ones by name, the rest unary.
fn call_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
            "server_stream"
        }
        ("grpc.health.v1.Health", "Watch") => "server_stream",
        _ => "unary",
    }
}

impl Metrics {
    /// The counters of the method at `path` (`/service/method`).
    pub fn call(&self, path: &str) -> Arc<CallCounters> {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(counters) = calls.get(path) {
            return counters.clone();
        }
        let path = match calls.len() < METHODS_MAX {
            true => path,
            false => "/unknown/unknown",
        };
        let counters = Arc::new(self.counters(path));
        calls.insert(path.to_string(), counters.clone());
        counters
    }

    fn counters(&self, path: &str) -> CallCounters {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let labels = |extra: Option<Code>| {
            let mut labels = Vec::with_capacity(4);
            if let Some(code) = extra {
                labels.push(("grpc_code", code_name(code).to_string()));
            }
            labels.extend([
                ("grpc_method", method.to_string()),
                ("grpc_service", service.to_string()),
                ("grpc_type", call_type(service, method).to_string()),
            ]);
            labels
        };
        CallCounters {
            started: self.grpc_started.get_or_create_owned(&labels(None)),
            handled: CODES
                .iter()
                .map(|&code| self.grpc_handled.get_or_create_owned(&labels(Some(code))))
                .collect(),
        }
    }

    /// A round trip to `peer` took `seconds`.
    pub fn peer_round_trip(&self, peer: u64, seconds: f64) {
        let labels = vec![("To", format!("{peer:x}"))];
        self.peer_round_trips
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Counts one `/health` answer.
    pub fn health_checked(&self, healthy: bool) {
        match healthy {
            true => self.health_success.inc(),
            false => self.health_failures.inc(),
        };
    }
}

/// What the core reports at a scrape.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// This member's id.
    pub member_id: u64,
    pub has_leader: bool,
    pub is_leader: bool,
    pub is_learner: bool,
    /// The highest slot known chosen (etcd's committed index).
    pub committed: u64,
    /// The highest slot applied.
    pub applied: u64,
    /// Requests waiting for their command to be applied or their read to be served.
    pub pending: usize,
    /// Estimated bytes of the kept history.
    pub db_bytes: u64,
    /// Keys in the index (deleted ones included until compacted).
    pub keys: usize,
    pub revision: i64,
    pub compacted: i64,
    pub quota_bytes: u64,
    /// The promised ballot's round and epoch.
    pub round: u64,
    pub epoch: u64,
    /// The quorum system of the current configuration (`majority`, `grid:2x3`, …).
    pub quorum: String,
    pub voters: usize,
    pub learners: usize,
    /// Slots this leader proposed that are not yet known chosen.
    pub accepts_in_flight: u64,
    /// The etcd version this member reports.
    pub etcd_version: String,
}

/// The text of a scrape: `live` and `facts` in the OpenMetrics format.
pub fn render(live: &Arc<Metrics>, facts: &Facts) -> String {
    let mut registry = Registry::default();
    register_live(&mut registry, live);
    register_facts(&mut registry, facts);
    process::register(&mut registry, live.started);
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        // Writing to a String does not fail; an encoder error leaves what was written.
        let _ = writeln!(text, "# EOF");
    }
    text
}

fn register_live(registry: &mut Registry, live: &Metrics) {
    registry.register(
        "grpc_server_started",
        "Total number of RPCs started on the server.",
        live.grpc_started.clone(),
    );
    registry.register(
        "grpc_server_handled",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        live.grpc_handled.clone(),
    );
    registry.register(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of the log's writes (write and sync) by the log of Synod.",
        live.log_writes.clone(),
    );
    registry.register(
        "synod_snapshot_write_duration_seconds",
        "The latency distributions of writing a snapshot of the state machine \
         (Synod's equivalent of etcd's backend commit).",
        live.snapshot_writes.clone(),
    );
    registry.register(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers (from a leader's heartbeat to its \
         acknowledgement, through the peer's queue).",
        live.peer_round_trips.clone(),
    );
    registry.register(
        "synod_accept_batch_slots",
        "Slots per accept message a leader sends: how many commands' slots travel together.",
        live.accept_batches.clone(),
    );
    registry.register(
        "etcd_server_leader_changes_seen",
        "The number of leader changes seen.",
        live.leader_changes.clone(),
    );
    registry.register(
        "etcd_server_proposals_failed",
        "The total number of failed proposals seen.",
        live.proposals_failed.clone(),
    );
    // Counters to etcd, but named without `_total`, which OpenMetrics would add to a
    // counter: exported as gauges so that their names stay etcd's.
    #[allow(clippy::cast_precision_loss)]
    let checks = [
        (
            "etcd_server_health_success",
            "The total number of successful health checks",
            &live.health_success,
        ),
        (
            "etcd_server_health_failures",
            "The total number of failed health checks",
            &live.health_failures,
        ),
    ];
    for (name, help, counter) in checks {
        #[allow(clippy::cast_precision_loss)]
        gauge(registry, name, help, counter.get() as f64);
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    registry.register(name, help, ConstGauge::new(value));
}

fn flag(value: bool) -> f64 {
    f64::from(u8::from(value))
}

#[allow(clippy::cast_precision_loss)] // Gauges are f64; counts past 2^53 lose ones.
fn register_facts(registry: &mut Registry, facts: &Facts) {
    let f = facts;
    gauge(
        registry,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        flag(f.has_leader),
    );
    gauge(
        registry,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        flag(f.is_leader),
    );
    gauge(
        registry,
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        flag(f.is_learner),
    );
    gauge(
        registry,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        f.committed as f64,
    );
    gauge(
        registry,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        f.applied as f64,
    );
    gauge(
        registry,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        f.pending as f64,
    );
    gauge(
        registry,
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        f.quota_bytes as f64,
    );
    gauge(
        registry,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
        f.db_bytes as f64,
    );
    gauge(
        registry,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
        f.db_bytes as f64,
    );
    gauge(
        registry,
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys.",
        f.keys as f64,
    );
    gauge(
        registry,
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store.",
        f.revision as f64,
    );
    gauge(
        registry,
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store.",
        f.compacted as f64,
    );
    let id = format!("{:x}", f.member_id);
    let labelled =
        |registry: &mut Registry, name: &str, help: &str, label: &'static str, value: String| {
            let family = Family::<Vec<(&'static str, String)>, ConstGaugeOne>::default();
            drop(family.get_or_create(&vec![(label, value)]));
            registry.register(name, help, family);
        };
    labelled(
        registry,
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
        id,
    );
    labelled(
        registry,
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
        f.etcd_version.clone(),
    );
    labelled(
        registry,
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
        major_minor(&f.etcd_version),
    );
    labelled(
        registry,
        "synod_quorum_system",
        "The quorum system of the current configuration. 1 for its 'spec' label.",
        "spec",
        f.quorum.clone(),
    );
    gauge(
        registry,
        "synod_ballot_round",
        "The round of the highest ballot this member promised.",
        f.round as f64,
    );
    gauge(
        registry,
        "synod_configuration_epoch",
        "The epoch of this member's current configuration.",
        f.epoch as f64,
    );
    gauge(
        registry,
        "synod_voters",
        "Voting members in the current configuration.",
        f.voters as f64,
    );
    gauge(
        registry,
        "synod_learners",
        "Learners in the current configuration.",
        f.learners as f64,
    );
    gauge(
        registry,
        "synod_accepts_in_flight",
        "Slots this leader proposed that are not yet known chosen (0 on a follower).",
        f.accepts_in_flight as f64,
    );
}

/// A gauge that is always 1: an "info" metric whose labels carry the value.
#[derive(Debug, Default)]
struct ConstGaugeOne;

impl prometheus_client::encoding::EncodeMetric for ConstGaugeOne {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        ConstGauge::new(1i64).encode(encoder)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Gauge
    }
}

impl prometheus_client::metrics::TypedMetric for ConstGaugeOne {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Gauge;
}

/// "3.5" of "3.5.13", as etcd's cluster version.
pub fn major_minor(version: &str) -> String {
    version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

/// The process metrics every Prometheus client library exports, read from `/proc`.
pub mod process {
    use super::*;

    /// What `/proc/self` says, where it can be read.
    #[derive(Debug, Default, PartialEq)]
    pub struct Stats {
        pub cpu_seconds: f64,
        pub resident_bytes: f64,
        pub virtual_bytes: f64,
        pub open_fds: f64,
        pub max_fds: f64,
    }

    /// Ticks per second of `/proc`'s CPU times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    const CLOCK_TICKS: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;

    /// Parses `/proc/self/stat`: utime and stime (fields 14 and 15), vsize (23), rss
    /// in pages (24). The command name (field 2) may hold spaces and parentheses, so
    /// fields are counted after its last `)`.
    pub fn parse_stat(stat: &str) -> Option<(f64, f64, f64)> {
        let after = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        let cpu = (field(14)? + field(15)?) / CLOCK_TICKS;
        Some((cpu, field(24)? * PAGE_BYTES, field(23)?))
    }

    /// The soft limit on open files from `/proc/self/limits`.
    pub fn parse_max_fds(limits: &str) -> Option<f64> {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The process's stats now (zeros where `/proc` is missing).
    pub fn read() -> Stats {
        let mut stats = Stats::default();
        if let Some((cpu, rss, vsize)) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            (stats.cpu_seconds, stats.resident_bytes, stats.virtual_bytes) = (cpu, rss, vsize);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            #[allow(clippy::cast_precision_loss)]
            let open = fds.count() as f64;
            stats.open_fds = open;
        }
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        stats.max_fds = limits.as_deref().and_then(parse_max_fds).unwrap_or(0.0);
        stats
    }

    /// When this process started, in seconds since the epoch (from its start in clock
    /// ticks after boot, and the boot time in `/proc/stat`).
    pub fn start_time() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after = &stat[stat.rfind(')')? + 1..];
        let ticks: f64 = after.split_whitespace().nth(22 - 3)?.parse().ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let btime: f64 = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(btime + ticks / CLOCK_TICKS)
    }

    pub(super) fn register(registry: &mut Registry, started: f64) {
        let stats = read();
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            ConstCounter::new(stats.cpu_seconds),
        );
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                started,
            ),
        ];
        for (name, help, value) in gauges {
            gauge(registry, name, help, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_command_name_parses() {
        let stat = "42 (synod (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 \
                    1234 10485760 2560 18446744073709551615";
        let (cpu, rss, vsize) = process::parse_stat(stat).expect("parses");
        assert_eq!((cpu, rss, vsize), (3.0, 2560.0 * 4096.0, 10_485_760.0));
        assert_eq!(process::parse_stat("no paren"), None);
        assert_eq!(process::parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn the_open_file_limit_is_read() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                1048576              files\n";
        assert_eq!(process::parse_max_fds(limits), Some(20000.0));
        assert_eq!(process::parse_max_fds("Max processes 1 2"), None);
    }

    #[test]
    fn a_scrape_carries_etcds_names_and_the_calls_counted() {
        let live = Arc::new(Metrics::default());
        let put = live.call("/etcdserverpb.KV/Put");
        put.started();
        put.handled(Code::Ok);
        live.call("/etcdserverpb.Watch/Watch")
            .handled(Code::Cancelled);
        live.leader_changes.inc();
        let facts = Facts {
            has_leader: true,
            committed: 7,
            member_id: 0xabc,
            etcd_version: "3.5.13".into(),
            quorum: "grid:2x3".into(),
            ..Facts::default()
        };
        let text = render(&live, &facts);
        for line in [
            "etcd_server_has_leader 1.0",
            "etcd_server_is_leader 0.0",
            "etcd_server_proposals_committed_total 7.0",
            "etcd_server_leader_changes_seen_total 1",
            "etcd_server_id{server_id=\"abc\"} 1",
            "etcd_server_version{server_version=\"3.5.13\"} 1",
            "etcd_cluster_version{cluster_version=\"3.5\"} 1",
            "synod_quorum_system{spec=\"grid:2x3\"} 1",
            "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1",
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 1",
            "grpc_server_handled_total{grpc_code=\"Canceled\",grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        let rss = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("resident memory reported");
        assert!(rss > 0.0);
        assert!(text.contains("# TYPE etcd_disk_wal_fsync_duration_seconds histogram"));
    }
}
