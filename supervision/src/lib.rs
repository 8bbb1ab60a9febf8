//! `hoard`: the supervision tree that boots a node, the restart policies, the fault-injection registry,
//! the CLI, and the public test harness (`testing::TestNode`) other projects may use in their tests.

pub mod admin_client;
pub mod cluster_cli;
pub mod config;
pub mod debug;
pub mod disk_sup;
pub mod faults;
pub mod maintenance_sup;
pub mod meta_sup;
pub mod node;
pub mod node_sup;
pub mod pool_sup;
pub mod s3_sup;
pub mod sup;
pub mod telemetry;
pub mod testing;

pub use faults::Fault;
pub use node::Node;
pub use node::NodeOptions;
