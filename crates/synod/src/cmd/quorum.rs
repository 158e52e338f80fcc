//! `synod quorum get` and `synod quorum set SPEC`: the quorum system of a running
//! cluster, read and changed at runtime through Synod's Quorum service (majority ↔
//! flexible ↔ grid over the current voters; refused with the reason when unsafe).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use server::proto::synodpb::{
    quorum_client::QuorumClient, QuorumGetRequest, QuorumResponse, QuorumSetRequest,
};

/// `synod quorum`.
#[derive(Debug, Args)]
pub struct QuorumArgs {
    #[command(subcommand)]
    command: QuorumCommand,
    /// Client endpoints of the cluster, comma-separated (any member will do).
    #[arg(long, global = true, default_value = "127.0.0.1:2379")]
    endpoints: String,
}

#[derive(Debug, Subcommand)]
enum QuorumCommand {
    /// Print the quorum system, the configuration's epoch and the number of voters.
    Get,
    /// Replace the quorum system: `majority`, `flexible:Q1,Q2` or `grid:RxC`.
    Set {
        /// The new quorum system.
        spec: String,
    },
}

/// Runs `synod quorum`.
#[allow(clippy::print_stdout)] // Reporting the quorum system is the point.
pub fn run(args: QuorumArgs) -> Result<ExitCode, String> {
    let runtime = super::runtime()?;
    let answer = runtime.block_on(ask(&args))?;
    println!(
        "quorum system {} over {} voters (configuration epoch {})",
        answer.spec, answer.voters, answer.epoch
    );
    Ok(ExitCode::SUCCESS)
}

/// Asks each endpoint in turn until one answers; a refusal is the answer.
async fn ask(args: &QuorumArgs) -> Result<QuorumResponse, String> {
    let mut last = String::from("no endpoint given");
    for endpoint in args
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let connected = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect()
            .await;
        let channel = match connected {
            Ok(channel) => channel,
            Err(e) => {
                last = format!("{endpoint}: {e}");
                continue;
            }
        };
        let mut client = QuorumClient::new(channel);
        let answer = match &args.command {
            QuorumCommand::Get => client.get(QuorumGetRequest {}).await,
            QuorumCommand::Set { spec } => {
                client.set(QuorumSetRequest { spec: spec.clone() }).await
            }
        };
        return answer.map(|a| a.into_inner()).map_err(|s| {
            let message = s.message();
            message
                .strip_prefix("synod: ")
                .unwrap_or(message)
                .to_string()
        });
    }
    Err(last)
}
