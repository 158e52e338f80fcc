//! `synod bench`: a closed-loop load generator for any etcd v3 endpoint (Synod or etcd),
//! reporting as etcd's `benchmark` tool does: total time, slowest, fastest, average,
//! standard deviation, requests per second and latency percentiles (or `--json`).
//!
//! `failover-probe` is not a load: it measures leader failover, from `kill -9` of a member
//! (`--kill-pid`, normally the leader) to the first put that succeeds through the given
//! endpoints, retrying with a short per-request deadline (`--request-timeout-ms`).

mod conn;
mod kubernetes;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use server::proto::etcdserverpb as pb;
use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::watch_client::WatchClient;
use tonic::transport::Channel;

use conn::Conn;

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Puts of random keys.
    Put,
    /// Ranges of single random keys (see --consistency).
    Range,
    /// Compare-and-set: a transaction that puts if the key's version is what was read.
    TxnPut,
    /// Put, then time until a watcher sees the event.
    WatchLatency,
    /// Ranges and puts mixed (see --read-ratio).
    Mixed,
    /// etcd's robustness "Kubernetes" traffic: lists and watches, gets, optimistic
    /// creates, updates and deletes of pods (half the clients read, half write).
    Kubernetes,
    /// Leader failover: after one put through every endpoint, `kill -9` --kill-pid, then
    /// retry a put round-robin over the endpoints (each with --request-timeout-ms) until
    /// one succeeds; reports the milliseconds from the kill.
    FailoverProbe,
}

/// Read consistency for ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// Flags of `synod bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload.
    #[arg(value_enum)]
    workload: Workload,
    /// Endpoints (host:port), comma-separated; connections are spread over them.
    #[arg(long, default_value = "127.0.0.1:2379")]
    endpoints: String,
    /// gRPC connections.
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent clients (each with one request outstanding).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests in all (unless --duration).
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Run for this many seconds instead of a request count.
    #[arg(long)]
    duration: Option<f64>,
    /// At most this many requests per second in all (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1)]
    key_space: u64,
    /// Use keys 0, 1, 2, … in order (wrapping at --key-space) rather than at random.
    #[arg(long)]
    sequential_keys: bool,
    /// Range consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value = "l")]
    consistency: Consistency,
    /// Mixed workload: the share of reads.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// failover-probe: the process to `kill -9` once the probe is connected.
    #[arg(long)]
    kill_pid: Option<u32>,
    /// failover-probe: the deadline of each put, in milliseconds.
    #[arg(long, default_value_t = 100)]
    request_timeout_ms: u64,
    /// failover-probe: give up after this many seconds without a successful put.
    #[arg(long, default_value_t = 60.0)]
    give_up_after: f64,
}

/// What a run measured.
#[derive(Debug, Default)]
struct Results {
    latencies: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
}

fn key(args: &BenchArgs, n: u64) -> Vec<u8> {
    let mut key = format!("{n:0width$}", width = args.key_size).into_bytes();
    key.truncate(args.key_size.max(1));
    key
}

struct Plan {
    next: AtomicU64,
    seed: AtomicU64,
    total: Option<u64>,
    deadline: Option<Instant>,
}

impl Plan {
    /// The next request's number, or `None` once the run is over.
    fn take(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match self.total {
            Some(total) if n >= total => None,
            _ => Some(n),
        }
    }

    /// A pseudo-random number (xorshift on a shared counter: cheap, good enough for keys).
    fn random(&self) -> u64 {
        let mut x = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
}

async fn connect(endpoints: &[String], conns: usize) -> Result<Vec<Conn>, String> {
    let mut channels = Vec::new();
    for i in 0..conns.max(1) {
        channels.push(Conn::connect(&endpoints[i % endpoints.len()]).await?);
    }
    Ok(channels)
}

const PUT: &str = "/etcdserverpb.KV/Put";
const RANGE: &str = "/etcdserverpb.KV/Range";
const TXN: &str = "/etcdserverpb.KV/Txn";

async fn one_request(args: &BenchArgs, plan: &Plan, conn: &Conn, n: u64) -> bool {
    let k = if args.sequential_keys {
        n % args.key_space.max(1)
    } else {
        plan.random() % args.key_space.max(1)
    };
    let key = key(args, k);
    let value = vec![b'x'; args.val_size];
    let read = match args.workload {
        Workload::Range => true,
        Workload::Mixed => (plan.random() % 10_000) as f64 / 10_000.0 < args.read_ratio,
        _ => false,
    };
    if read {
        let r = pb::RangeRequest {
            key,
            serializable: args.consistency == Consistency::S,
            ..Default::default()
        };
        return conn.unary::<_, pb::RangeResponse>(RANGE, &r).await.is_ok();
    }
    if args.workload == Workload::TxnPut {
        let read = pb::RangeRequest {
            key: key.clone(),
            ..Default::default()
        };
        let Ok(got) = conn.unary::<_, pb::RangeResponse>(RANGE, &read).await else {
            return false;
        };
        let version = got.kvs.first().map_or(0, |kv| kv.version);
        let txn = compare_and_put(key, value, version);
        return conn.unary::<_, pb::TxnResponse>(TXN, &txn).await.is_ok();
    }
    let put = pb::PutRequest {
        key,
        value,
        ..Default::default()
    };
    conn.unary::<_, pb::PutResponse>(PUT, &put).await.is_ok()
}

fn compare_and_put(key: Vec<u8>, value: Vec<u8>, version: i64) -> pb::TxnRequest {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    pb::TxnRequest {
        compare: vec![pb::Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: key.clone(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::Version(version)),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key,
                value,
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    }
}

async fn client(
    args: Arc<BenchArgs>,
    plan: Arc<Plan>,
    channel: Conn,
    per_client_rate: f64,
) -> Results {
    let mut results = Results::default();
    let gap = (per_client_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / per_client_rate));
    let mut next_at = Instant::now();
    while let Some(n) = plan.take() {
        if let Some(gap) = gap {
            tokio::time::sleep_until(next_at.into()).await;
            next_at += gap;
        }
        let start = Instant::now();
        if one_request(&args, &plan, &channel, n).await {
            results.latencies.push(start.elapsed());
        } else {
            results.errors += 1;
        }
    }
    results
}

/// Watch latency: one watcher on the benchmark's prefix; each client puts a key whose
/// value is its send time, and the watcher measures how long until it sees the event.
async fn watch_latency(
    args: Arc<BenchArgs>,
    plan: Arc<Plan>,
    channels: Vec<Conn>,
    started: Instant,
) -> Results {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"bench-watch/".to_vec(),
                range_end: b"bench-watch0".to_vec(),
                ..Default::default()
            },
        )),
    };
    let _ = tx.send(create).await;
    // The watcher's stream goes through tonic; only the putters' calls are lean.
    let Ok(endpoint) = Channel::from_shared(format!("http://{}", channels[0].endpoint())) else {
        return Results {
            errors: 1,
            ..Results::default()
        };
    };
    let mut watch = WatchClient::new(endpoint.connect_lazy());
    let Ok(stream) = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return Results {
            errors: 1,
            ..Results::default()
        };
    };
    let mut stream = stream.into_inner();
    let putters: Vec<_> = (0..args.clients.max(1))
        .map(|i| {
            let (plan, channel) = (plan.clone(), channels[i % channels.len()].clone());
            let val_size = args.val_size;
            tokio::spawn(async move {
                let mut errors = 0;
                while let Some(n) = plan.take() {
                    let sent = started.elapsed().as_nanos().to_string();
                    let mut value = sent.into_bytes();
                    value.resize(val_size.max(value.len()), b' ');
                    let put = pb::PutRequest {
                        key: format!("bench-watch/{n}").into_bytes(),
                        value,
                        ..Default::default()
                    };
                    if channel
                        .unary::<_, pb::PutResponse>(PUT, &put)
                        .await
                        .is_err()
                    {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let expected = args.total;
    let mut results = Results::default();
    let watching = async {
        while let Ok(Some(response)) = stream.message().await {
            for event in response.events {
                let Some(kv) = event.kv else { continue };
                let text = String::from_utf8_lossy(&kv.value);
                if let Ok(sent) = text.trim().parse::<u64>() {
                    let now = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    results
                        .latencies
                        .push(Duration::from_nanos(now.saturating_sub(sent)));
                }
            }
            if args.duration.is_none() && results.latencies.len() as u64 >= expected {
                break;
            }
        }
    };
    let putting = async {
        let mut errors = 0;
        for p in putters {
            errors += p.await.unwrap_or(1);
        }
        errors
    };
    let limit = Duration::from_secs_f64(args.duration.unwrap_or(0.0) + 30.0);
    if let Ok(((), errors)) =
        tokio::time::timeout(limit, async { tokio::join!(watching, putting) }).await
    {
        results.errors += errors;
    }
    results
}

#[allow(clippy::cast_possible_truncation)] // A rank within the slice's length.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

#[allow(clippy::print_stdout)]
fn report(args: &BenchArgs, mut r: Results) {
    r.latencies.sort();
    let n = r.latencies.len();
    let secs = |d: Duration| d.as_secs_f64();
    let sum: f64 = r.latencies.iter().map(|d| secs(*d)).sum();
    let average = if n > 0 { sum / n as f64 } else { 0.0 };
    let variance = if n > 0 {
        r.latencies
            .iter()
            .map(|d| (secs(*d) - average).powi(2))
            .sum::<f64>()
            / n as f64
    } else {
        0.0
    };
    let rps = if r.elapsed.is_zero() {
        0.0
    } else {
        n as f64 / secs(r.elapsed)
    };
    let slowest = r.latencies.last().copied().unwrap_or_default();
    let fastest = r.latencies.first().copied().unwrap_or_default();
    if args.json {
        let percentiles: serde_json::Map<String, serde_json::Value> = PERCENTILES
            .iter()
            .map(|p| (format!("p{p}"), secs(percentile(&r.latencies, *p)).into()))
            .collect();
        let out = serde_json::json!({
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "clients": args.clients, "conns": args.conns,
            "requests": n, "errors": r.errors,
            "total_secs": secs(r.elapsed), "slowest_secs": secs(slowest),
            "fastest_secs": secs(fastest), "average_secs": average,
            "stddev_secs": variance.sqrt(), "requests_per_sec": rps,
            "percentiles_secs": percentiles,
        });
        println!("{out}");
        return;
    }
    println!("\nSummary:");
    println!("  Total:\t{:.4} secs.", secs(r.elapsed));
    println!("  Slowest:\t{:.4} secs.", secs(slowest));
    println!("  Fastest:\t{:.4} secs.", secs(fastest));
    println!("  Average:\t{average:.4} secs.");
    println!("  Stddev:\t{:.4} secs.", variance.sqrt());
    println!("  Requests/sec:\t{rps:.4}");
    if r.errors > 0 {
        println!("  Errors:\t{}", r.errors);
    }
    println!("\nLatency distribution:");
    for p in PERCENTILES {
        println!("  {p}% in {:.4} secs.", secs(percentile(&r.latencies, p)));
    }
}

/// Prints `done/total` once a second on stderr until the run ends.
fn progress(plan: Arc<Plan>, total: Option<u64>, quiet: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let done = plan.next.load(Ordering::Relaxed);
            match total {
                Some(t) => eprint!("\r  {}/{t} requests", done.min(t)),
                None => eprint!("\r  {done} requests"),
            }
        }
    })
}

/// What `failover-probe` measured.
#[derive(Debug)]
struct Failover {
    /// From the kill to the first successful put's response.
    elapsed: Duration,
    /// How long running the `kill` command took (not included in `elapsed`).
    kill: Duration,
    attempts: u64,
    endpoint: String,
    last_error: String,
}

/// The shortest time between the starts of two attempts, so that fast failures (no leader,
/// connection refused) do not turn the probe into a busy loop competing for the CPU with
/// the election it measures.
const PROBE_SPACING: Duration = Duration::from_millis(5);

fn probe_put(n: u64) -> pb::PutRequest {
    pb::PutRequest {
        key: b"bench-failover-probe".to_vec(),
        value: n.to_string().into_bytes(),
        ..Default::default()
    }
}

async fn failover_probe(args: &BenchArgs, endpoints: &[String]) -> Result<Failover, String> {
    let deadline = Duration::from_millis(args.request_timeout_ms.max(1));
    let mut clients = Vec::new();
    for endpoint in endpoints {
        let channel = Channel::from_shared(format!("http://{endpoint}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(deadline)
            .connect_lazy();
        clients.push((endpoint.clone(), KvClient::new(channel)));
    }
    // Every connection up and the cluster writable before the kill.
    for (endpoint, kv) in &mut clients {
        tokio::time::timeout(Duration::from_secs(10), kv.put(probe_put(0)))
            .await
            .map_err(|_| format!("{endpoint}: no answer to the first put in 10 s"))?
            .map_err(|e| format!("{endpoint}: the first put failed: {}", e.message()))?;
    }
    // The clock starts when `kill` has returned: its last act is the signal, whereas
    // starting the process (what `kill_ms` measures) takes milliseconds.
    let spawned = Instant::now();
    if let Some(pid) = args.kill_pid {
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .map_err(|e| format!("kill -9 {pid}: {e}"))?;
        if !status.success() {
            return Err(format!("kill -9 {pid}: {status}"));
        }
    }
    let kill = spawned.elapsed();
    let started = Instant::now();
    let give_up = Duration::from_secs_f64(args.give_up_after.max(0.0));
    let mut attempts = 0;
    let mut last_error = String::new();
    loop {
        for (endpoint, kv) in &mut clients {
            attempts += 1;
            let attempt = Instant::now();
            match tokio::time::timeout(deadline, kv.put(probe_put(attempts))).await {
                Ok(Ok(_)) => {
                    return Ok(Failover {
                        elapsed: started.elapsed(),
                        kill,
                        attempts,
                        endpoint: endpoint.clone(),
                        last_error,
                    })
                }
                Ok(Err(status)) => last_error = format!("{endpoint}: {}", status.message()),
                Err(_) => last_error = format!("{endpoint}: no answer in {deadline:?}"),
            }
            if started.elapsed() >= give_up {
                return Err(format!(
                    "no successful put in {give_up:?} ({attempts} attempts; last: {last_error})"
                ));
            }
            tokio::time::sleep_until((attempt + PROBE_SPACING).into()).await;
        }
    }
}

#[allow(clippy::print_stdout)]
fn report_failover(args: &BenchArgs, f: &Failover) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if args.json {
        let out = serde_json::json!({
            "workload": "failover-probe",
            "elapsed_ms": ms(f.elapsed), "kill_ms": ms(f.kill),
            "attempts": f.attempts, "endpoint": f.endpoint,
            "request_timeout_ms": args.request_timeout_ms,
            "last_error": f.last_error,
        });
        println!("{out}");
        return;
    }
    println!(
        "first successful put {:.1} ms after the kill ({} attempts, via {}; the kill took {:.1} ms)",
        ms(f.elapsed),
        f.attempts,
        f.endpoint,
        ms(f.kill)
    );
    if !f.last_error.is_empty() {
        println!("last error before it: {}", f.last_error);
    }
}

/// The clients' results together.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Results>>) -> Result<Results, String> {
    let mut all = Results::default();
    for task in tasks {
        let r = task.await.map_err(|e| e.to_string())?;
        all.latencies.extend(r.latencies);
        all.errors += r.errors;
    }
    Ok(all)
}

/// Runs `synod bench`.
pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    let endpoints: Vec<String> = args
        .endpoints
        .split(',')
        .map(|e| e.trim().trim_start_matches("http://").to_string())
        .collect();
    if args.clients == 0 || args.conns == 0 {
        return Err("--clients and --conns must be at least 1".into());
    }
    let runtime = super::runtime()?;
    if args.workload == Workload::FailoverProbe {
        let failover = runtime.block_on(failover_probe(&args, &endpoints))?;
        report_failover(&args, &failover);
        return Ok(ExitCode::SUCCESS);
    }
    let args = Arc::new(args);
    let results = runtime.block_on(async {
        let channels = connect(&endpoints, args.conns).await?;
        let started = Instant::now();
        let plan = Arc::new(Plan {
            next: AtomicU64::new(0),
            seed: AtomicU64::new(0x5eed),
            total: args.duration.is_none().then_some(args.total),
            deadline: args.duration.map(|d| started + Duration::from_secs_f64(d)),
        });
        let bar = progress(plan.clone(), plan.total, args.json);
        let mut results = if args.workload == Workload::WatchLatency {
            watch_latency(args.clone(), plan.clone(), channels, started).await
        } else if args.workload == Workload::Kubernetes {
            let pods = Arc::new(kubernetes::Pods::default());
            let tasks: Vec<_> = (0..args.clients)
                .map(|i| {
                    let conn = channels[i % channels.len()].clone();
                    tokio::spawn(kubernetes::client(
                        plan.clone(),
                        conn,
                        pods.clone(),
                        i % 2 == 0,
                    ))
                })
                .collect();
            gather(tasks).await?
        } else {
            let per_client = args.rate as f64 / args.clients as f64;
            let tasks: Vec<_> = (0..args.clients)
                .map(|i| {
                    tokio::spawn(client(
                        args.clone(),
                        plan.clone(),
                        channels[i % channels.len()].clone(),
                        per_client,
                    ))
                })
                .collect();
            gather(tasks).await?
        };
        results.elapsed = started.elapsed();
        bar.abort();
        if !args.json {
            eprintln!();
        }
        Ok::<Results, String>(results)
    })?;
    let failed = results.latencies.is_empty();
    report(&args, results);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
