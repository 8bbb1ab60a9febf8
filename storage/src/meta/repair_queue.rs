//! The node-local queue of segments waiting for repair.
//!
//! Invariants:
//! - It lives in the metadata database but outside the state machine: it is neither replicated nor carried
//!   by snapshots, and nothing in it changes what any read returns.
//! - A write never waits for a disk (a report must not slow a read down): it asks the metadata fsync thread
//!   for a flush and returns; the entry is durable a moment later. An entry lost to a crash in that moment is
//!   found again by the next scrub.
//! - One entry per segment, keyed by its id; a later put replaces the entry.

use std::sync::Arc;

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::RepairRecord;
use hoard_protocol::SegmentId;

use super::keys::segment_key;
use super::Ks;
use super::Result;
use super::Store;

/// A handle to the repair queue; cheap to get from a [`super::MetaReader`], and meant to be dropped after use
/// (it keeps the database open while held).
pub struct RepairQueue {
    pub(crate) store: Arc<Store>,
}

impl RepairQueue {
    /// Records (or replaces) the damage known in `record.segment`.
    pub fn put(&self, record: &RepairRecord) -> Result<()> {
        self.store.ks(Ks::RepairQueue).insert(segment_key(record.segment.id), encode(record))?;
        self.store.flusher.request(self.store.clone());
        Ok(())
    }

    /// Forgets a segment: it was rebuilt, or is no longer referenced.
    pub fn remove(&self, id: SegmentId) -> Result<()> {
        self.store.ks(Ks::RepairQueue).remove(segment_key(id))?;
        self.store.flusher.request(self.store.clone());
        Ok(())
    }

    /// Every queued segment, in id order.
    pub fn all(&self) -> Result<Vec<RepairRecord>> {
        let mut out = Vec::new();
        for guard in self.store.ks(Ks::RepairQueue).iter() {
            out.push(decode(&guard.value()?)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use hoard_protocol::DiskRef;
    use hoard_protocol::Segment;
    use hoard_protocol::ShardLayout;

    fn segment(id: u128) -> Segment {
        let disks = (0..6).map(|disk| DiskRef { node: 1, disk }).collect();
        Segment {
            id: SegmentId(id),
            part_number: 0,
            size: 10,
            layout: ShardLayout { data: 4, parity: 2, block_size: 1 << 20, disks },
            seal: None,
        }
    }

    use super::*;

    #[test]
    fn queued_repairs_survive_reopening_and_are_not_state_machine_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_log, _sm, reader) = super::super::open(dir.path()).unwrap();
            let queue = reader.repair_queue();
            queue.put(&RepairRecord { segment: segment(2), shards: vec![5] }).unwrap();
            queue.put(&RepairRecord { segment: segment(1), shards: vec![0] }).unwrap();
            queue.put(&RepairRecord { segment: segment(1), shards: vec![0, 3] }).unwrap();
            queue.put(&RepairRecord { segment: segment(3), shards: vec![1] }).unwrap();
            queue.remove(SegmentId(3)).unwrap();
            queue.remove(SegmentId(99)).unwrap();
        }
        let (_log, _sm, reader) = super::super::open(dir.path()).unwrap();
        let queued = reader.repair_queue().all().unwrap();
        let got: Vec<(u128, Vec<u8>)> = queued.iter().map(|r| (r.segment.id.0, r.shards.clone())).collect();
        assert_eq!(got, [(1, vec![0, 3]), (2, vec![5])]);
        assert_eq!(reader.repair_queue().all().unwrap().len(), 2);
        assert!(!Ks::STATE_MACHINE.contains(&Ks::RepairQueue));
    }
}
