//! `hoard-actors`: the behaviour of every actor of a node but the S3 session.
//!
//! Actors talk by messages only: each actor file exports a typed handle whose methods wrap `call`/`cast`
//! with a deadline. A node's handles travel together in a [`NodeContext`]; there is no global registry,
//! so several nodes can live in one process. Supervisors (in the `hoard` crate) fill the handles' slots
//! when they start or restart an actor.

pub mod blocking;
pub mod disk_io;
pub mod ec_pool;
pub mod encryptor;
pub mod error;
pub mod faults;
pub mod get;
pub mod key_keeper;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod peer_tls;
pub mod pool;
pub mod put;
pub mod rebalance;
pub mod repair;
pub mod rotation;
pub mod scrub;
pub mod shard;
pub mod slot;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hoard_protocol::DiskRef;
use hoard_protocol::NodeId;
use hoard_protocol::ShardLayout;
use hoard_storage::env::Env;

use crate::ec_pool::EcPool;
use crate::encryptor::EncryptorPool;
use crate::faults::FaultInjector;
use crate::key_keeper::KeyKeeperHandle;
use crate::meta::MetaHandle;
use crate::metrics::NodeMetrics;
use crate::rebalance::RebalanceHandle;
use crate::repair::RepairHandle;
use crate::rotation::RotationHandle;
use crate::scrub::ScrubHandle;
use crate::shard::Shard;
use crate::shard::ShardHandle;
use crate::transport::Transport;

/// Plaintext bytes per block: the unit of streaming, coding and (with encryption) sealing.
pub const BLOCK_SIZE: u32 = 1024 * 1024;

/// Objects up to this size live in their metadata record: a small PUT is one Raft commit instead of
/// six shard files with twelve fsyncs. MinIO inlines up to 128 KiB for the same reason; hoard keeps
/// the Raft log lean with a smaller bound.
pub const INLINE_MAX: usize = 32 * 1024;

/// What a node was configured with, as the actors need it.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_id: NodeId,
    pub data_shards: u8,
    pub parity_shards: u8,
    pub block_size: u32,
    /// How often scrub runs on its own; `None`: only when asked.
    pub scrub_interval: Option<Duration>,
    /// How old an unreferenced shard file must be before scrub deletes it.
    pub scrub_grace: Duration,
    /// Bodies up to this many bytes are kept inline in their metadata record.
    pub inline_max: usize,
    /// Set on a node of a cluster of processes (made by `hoard cluster init` or `join`).
    pub cluster: Option<ClusterIdentity>,
}

/// Which cluster a node belongs to, as a join token names it.
#[derive(Debug, Clone)]
pub struct ClusterIdentity {
    pub cluster_id: String,
    /// SHA-256 of the cluster CA's certificate: a joiner trusts only a member presenting this CA.
    pub ca_fingerprint: [u8; 32],
    /// The address this node's peers (and joiners) reach it at.
    pub node_addr: String,
    /// Whether this node holds the CA key (and so signs joins).
    pub signs_joins: bool,
}

impl ClusterIdentity {
    /// The identity of a node of `cluster_id`, whose CA certificate is `ca_pem`, reached at `node_addr`.
    pub fn new(
        cluster_id: &str,
        ca_pem: &str,
        node_addr: &str,
        signs_joins: bool,
    ) -> std::result::Result<ClusterIdentity, peer_tls::PeerTlsError> {
        Ok(ClusterIdentity {
            cluster_id: cluster_id.to_string(),
            ca_fingerprint: peer_tls::fingerprint(ca_pem)?,
            node_addr: node_addr.to_string(),
            signs_joins,
        })
    }
}

/// Every handle of one node.
#[derive(Clone)]
pub struct NodeContext {
    pub config: Arc<NodeConfig>,
    pub env: Arc<dyn Env>,
    pub faults: Arc<dyn FaultInjector>,
    pub key_keeper: KeyKeeperHandle,
    pub meta: MetaHandle,
    /// The node's disks, by index.
    pub shards: Arc<Vec<ShardHandle>>,
    pub ec: EcPool,
    pub encryptor: EncryptorPool,
    pub repair: RepairHandle,
    pub scrub: ScrubHandle,
    pub rotation: RotationHandle,
    pub rebalance: RebalanceHandle,
    /// Other nodes' disks.
    pub transport: Arc<dyn Transport>,
    /// What `/metrics` serves.
    pub metrics: Arc<NodeMetrics>,
    /// Where the node's sockets come from.
    pub net: Arc<dyn net::Net>,
}

impl NodeContext {
    /// The handle of a disk, local or (through the transport) on another node.
    pub fn shard(&self, disk: DiskRef) -> Option<Shard> {
        if disk.node == self.config.node_id {
            self.shards.get(disk.disk as usize).cloned().map(Shard::Local)
        } else {
            self.transport.remote_shard(disk)
        }
    }

    /// The layout of a new segment: `data + parity` distinct disks, starting at a random disk so that
    /// nodes with more disks than the stripe is wide spread their load, and leaving out degraded disks
    /// where there are enough others. With other nodes' disks, disks are taken from the nodes in turn, so a
    /// stripe spans as many nodes as it can. Never two shards on one disk: a node that knows fewer distinct
    /// disks than a stripe is wide (one just started that has not heard from its peers yet) refuses the write
    /// (`Quorum`, a 503 the client retries) rather than put a stripe's shards together.
    pub fn choose_layout(&self) -> error::Result<ShardLayout> {
        let me = self.config.node_id;
        let width = self.config.data_shards as usize + self.config.parity_shards as usize;
        // Degraded disks get no new data while the node has enough others; without them the stripe could
        // not be as wide, so they stay in it and their shards are skipped (repair writes them later).
        let healthy: Vec<u32> = self.shards.iter().filter(|s| !s.io.is_degraded()).map(|s| s.index).collect();
        let remote = self.transport.remote_disks(me);
        let local: Vec<u32> = if self.transport.leaving(me) && remote.len() >= width {
            // This node is being drained: its disks take nothing new while the others are enough.
            Vec::new()
        } else if healthy.len() >= width || remote.len() + healthy.len() >= width {
            healthy
        } else {
            (0..self.shards.len() as u32).collect()
        };
        let mut by_node: BTreeMap<NodeId, Vec<DiskRef>> = BTreeMap::new();
        by_node.insert(me, local.into_iter().map(|disk| DiskRef { node: me, disk }).collect());
        for d in remote {
            by_node.entry(d.node).or_default().push(d);
        }
        let deepest = by_node.values().map(Vec::len).max().unwrap_or(0);
        let all: Vec<DiskRef> =
            (0..deepest).flat_map(|i| by_node.values().filter_map(move |disks| disks.get(i).copied())).collect();
        let n = all.len();
        if n < width {
            return Err(error::ActorError::Quorum(format!(
                "{n} distinct disks are known and a stripe needs {width}; this node has not heard from enough peers"
            )));
        }
        let start = (self.env.random_u64() % n as u64) as usize;
        let disks = (0..width).filter_map(|i| all.get((start + i) % n).copied()).collect();
        Ok(ShardLayout {
            data: self.config.data_shards,
            parity: self.config.parity_shards,
            block_size: self.config.block_size,
            disks,
        })
    }
}
