//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod dev;
pub mod explore;
pub mod logging;
pub mod quorum;
pub mod serve;
pub mod sim;
pub mod sim_cluster;
pub mod sim_compare;
pub mod snapshot;
pub mod trace;

/// The runtime members and the benchmark client run on: the server's, plus handing freed
/// memory back to the system whenever a worker goes idle.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    server::server::runtime_builder()
        .on_thread_park(crate::allocator::collect_when_idle)
        .build()
        .map_err(|e| e.to_string())
}
