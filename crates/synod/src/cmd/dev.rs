//! `synod dev`: a local cluster (three members unless told otherwise) in one process, for
//! trying Synod out.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use paxos::QuorumSpec;
use server::config::{self, ClusterState, Config};

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
}

fn configs(args: &DevArgs) -> Result<Vec<Config>, String> {
    let count = usize::from(args.members);
    let port = |i: usize, peer: bool| -> Result<u16, String> {
        let offset = u16::try_from(10_000 * i).map_err(|e| e.to_string())?;
        args.port
            .checked_add(offset + u16::from(peer))
            .ok_or_else(|| format!("--port {} leaves no room for {count} members", args.port))
    };
    let mut cluster = Vec::new();
    for i in 0..count {
        cluster.push(format!("s{}=http://127.0.0.1:{}", i + 1, port(i, true)?));
    }
    let (members, cluster_id) = config::parse_initial_cluster(&cluster.join(","), "synod-dev")
        .map_err(|e| e.to_string())?;
    let mut configs = Vec::new();
    for i in 0..count {
        let client = format!("http://127.0.0.1:{}", port(i, false)?);
        configs.push(Config {
            name: format!("s{}", i + 1),
            data_dir: args.data_dir.join(format!("s{}", i + 1)),
            listen_client: vec![config::parse_url(&client).map_err(|e| e.to_string())?],
            advertise_client_urls: vec![client],
            listen_peer: config::parse_url(&format!("http://127.0.0.1:{}", port(i, true)?))
                .map_err(|e| e.to_string())?,
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
        });
    }
    Ok(configs)
}

/// Writes a line to stdout. A closed stdout (`synod dev | head`, a test that stopped
/// reading) is no reason to fail: the cluster keeps running and stops cleanly.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn print_banner(args: &DevArgs, endpoints: &[String]) {
    let all = endpoints.join(",");
    say(format_args!(
        "synod dev: {} members, data in {}",
        args.members,
        args.data_dir.display()
    ));
    for (i, e) in endpoints.iter().enumerate() {
        say(format_args!("  s{}  client http://{e}", i + 1));
    }
    say(format_args!("\nTry:"));
    say(format_args!(
        "  etcdctl --endpoints={all} put greeting hello"
    ));
    say(format_args!("  etcdctl --endpoints={all} get greeting"));
    say(format_args!("\nCtrl-C stops the cluster."));
}

/// Runs `synod dev` until Ctrl-C.
pub fn run(args: DevArgs) -> Result<ExitCode, String> {
    super::serve::init_logging(args.log_level);
    let configs = configs(&args)?;
    let endpoints: Vec<String> = configs
        .iter()
        .map(|c| {
            c.advertise_client_urls[0]
                .trim_start_matches("http://")
                .to_string()
        })
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
        print_banner(&args, &endpoints);
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
            let configs = configs(&args(&["--members", &n.to_string()]).unwrap()).unwrap();
            assert_eq!(configs.len(), n);
            for (i, config) in configs.iter().enumerate() {
                assert_eq!(config.members.len(), n, "every member knows all {n}");
                assert_eq!(config.name, format!("s{}", i + 1));
                assert_eq!(
                    config.advertise_client_urls,
                    [format!("http://127.0.0.1:{}", 2379 + 10_000 * i)]
                );
                assert_eq!(usize::from(config.listen_peer.port()), 2380 + 10_000 * i);
                assert!(config.data_dir.ends_with(format!("s{}", i + 1)));
            }
        }
        assert_eq!(
            configs(&args(&[]).unwrap()).unwrap().len(),
            3,
            "three by default"
        );
    }

    #[test]
    fn refuses_zero_or_more_than_seven_members_and_ports_past_the_range() {
        assert!(args(&["--members", "0"]).is_err());
        assert!(args(&["--members", "8"]).is_err());
        let crowded = args(&["--members", "7", "--port", "10000"]).unwrap();
        let refused = configs(&crowded).unwrap_err();
        assert!(
            refused.contains("leaves no room for 7 members"),
            "{refused}"
        );
    }
}
