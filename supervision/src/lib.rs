//! `hoard`: the supervision tree that boots a node, the restart policies, the fault-injection registry,
//! the CLI, and the public test harness (`testing::TestNode`) other projects may use in their tests.

pub mod admin_client;
pub mod cluster_cli;
pub mod cluster_files;
pub mod config;
pub mod debug;
pub mod disk_sup;
pub mod faults;
pub mod key_cli;
pub mod maintenance_sup;
pub mod meta_sup;
pub mod node;
pub mod node_sup;
pub mod pool_sup;
pub mod s3_sup;
pub mod sup;
pub mod telemetry;
pub mod testing;
pub mod transport_sup;

pub use faults::Fault;
pub use faults::Gate;
pub use node::Node;
pub use node::NodeOptions;

/// What `hoard version` prints: the version, the commit and date of the build, its target and compiled-in features.
pub fn version_text() -> String {
    format!(
        "hoard {}\ncommit: {}\nbuilt: {}\ntarget: {}\nfeatures: {}\nprofile: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("HOARD_COMMIT"),
        env!("HOARD_BUILD_DATE"),
        env!("HOARD_TARGET"),
        env!("HOARD_FEATURES"),
        env!("HOARD_PROFILE"),
    )
}
