//! The seam to other nodes.
//!
//! A node reaches its own disks through its shard actors and another node's disks through a peer actor
//! that speaks the same `ShardMsg` protocol over the wire (tonic, mutual TLS), so the PUT/GET/repair code
//! never knows which is which. A one-node hoard uses [`LocalOnly`], which knows no other node; metadata's
//! own seam is openraft's network (`hoard_storage::meta::LocalOnlyNetwork` for one node,
//! `hoard_storage::meta::InProcessNetwork` for several nodes in one process).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;

use hoard_protocol::DiskRef;
use hoard_protocol::NodeId;

use crate::shard::Shard;
use crate::shard::ShardHandle;

pub mod actor;
pub mod join;
pub mod peer;
pub mod policy;
pub mod server;
pub mod trace;
mod wire;

pub trait Transport: Send + Sync + 'static {
    /// The handle of a disk of another node, if that node is known.
    fn remote_shard(&self, disk: DiskRef) -> Option<Shard>;

    /// Every disk of the nodes other than `me` that new segments may be placed on.
    fn remote_disks(&self, me: NodeId) -> Vec<DiskRef>;

    /// Whether `node` is being drained or was removed (no new segment goes to it).
    fn leaving(&self, _node: NodeId) -> bool {
        false
    }

    /// How node `node`, reached at `addr`, is doing, asked of it (`None`: this transport cannot ask).
    fn node_health(&self, _node: NodeId, _addr: &str) -> Option<HealthFuture> {
        None
    }
}

/// Another node's answer to [`Transport::node_health`].
pub type HealthFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = crate::error::Result<crate::metrics::NodeHealth>> + Send>>;

/// The transport of a one-node hoard: there are no other nodes.
pub struct LocalOnly;

impl Transport for LocalOnly {
    fn remote_shard(&self, _disk: DiskRef) -> Option<Shard> {
        None
    }

    fn remote_disks(&self, _me: NodeId) -> Vec<DiskRef> {
        Vec::new()
    }
}

/// The nodes of one process (an in-process cluster: tests, the simulation): another node's disk is reached
/// through that node's own shard actor. Clones share the same set.
#[derive(Clone, Default)]
pub struct InProcessTransport {
    nodes: Arc<RwLock<BTreeMap<NodeId, Vec<ShardHandle>>>>,
}

impl InProcessTransport {
    pub fn new() -> InProcessTransport {
        InProcessTransport::default()
    }

    /// Makes `node`'s disks reachable, in slot order.
    pub fn register(&self, node: NodeId, shards: Vec<ShardHandle>) {
        self.nodes.write().unwrap_or_else(|p| p.into_inner()).insert(node, shards);
    }
}

impl Transport for InProcessTransport {
    fn remote_shard(&self, disk: DiskRef) -> Option<Shard> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes.get(&disk.node)?.get(disk.disk as usize).cloned().map(Shard::Local)
    }

    fn remote_disks(&self, me: NodeId) -> Vec<DiskRef> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter()
            .filter(|(node, _)| **node != me)
            .flat_map(|(node, shards)| (0..shards.len()).map(|disk| DiskRef { node: *node, disk: disk as u32 }))
            .collect()
    }
}
