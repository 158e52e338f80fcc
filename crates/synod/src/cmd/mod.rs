//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod dev;
pub mod serve;
pub mod sim;
pub mod sim_cluster;
pub mod snapshot;
