//! The seam to other nodes.
//!
//! A node reaches its own disks through its shard actors and another node's disks through a peer actor
//! that speaks the same `ShardMsg` protocol over the wire (tonic, mutual TLS), so the PUT/GET/repair code
//! never knows which is which. A one-node hoard uses [`LocalOnly`], which knows no other node; metadata's
//! own seam is openraft's network (`hoard_storage::meta::LocalOnlyNetwork` for one node,
//! `hoard_storage::meta::InProcessNetwork` for several nodes in one process).

use hoard_protocol::DiskRef;

use crate::shard::ShardHandle;

pub trait Transport: Send + Sync + 'static {
    /// The handle of a disk of another node, if that node is known and reachable.
    fn remote_shard(&self, disk: DiskRef) -> Option<ShardHandle>;
}

/// The transport of a one-node hoard: there are no other nodes.
pub struct LocalOnly;

impl Transport for LocalOnly {
    fn remote_shard(&self, _disk: DiskRef) -> Option<ShardHandle> {
        None
    }
}
