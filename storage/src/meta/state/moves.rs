//! Applying shard moves (rebalance), their stale copies and the draining set.
//!
//! Invariants (besides the parent module's):
//! - Every record naming a segment places its shards on the same disks: a move changes all of them in one
//!   entry or none, and a sharing copy or a completed upload takes the layout its source holds when it
//!   commits (see `apply`). So a shard has one place, whichever record a read starts from.
//! - A move is made only when the records it names are every record naming the segment (their number is the
//!   segment's reference count), each still has the shard on `from`, and `to` holds no shard of the segment.
//! - The copy left on `from` is recorded as stale: it is deleted after the grace period and forgotten after.
//!   No shard moves onto a disk where a stale copy of the same shard is still recorded, so deleting a stale
//!   copy never deletes a live one.
//! - A refused move's copy on `to` is recorded as stale too when the segment's records do not place the
//!   shard there, so it does not stay behind.

use std::collections::BTreeSet;

use hoard_protocol::decode;
use hoard_protocol::encode;
use hoard_protocol::Draining;
use hoard_protocol::NodeId;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::Segment;
use hoard_protocol::SegmentHolder;
use hoard_protocol::SegmentId;
use hoard_protocol::ShardLayout;
use hoard_protocol::ShardMove;
use hoard_protocol::StaleCopy;
use hoard_protocol::VersionRecord;

use crate::meta::keys::object_key;
use crate::meta::keys::part_key;
use crate::meta::keys::stale_key;
use crate::meta::keys::version_idx_key;
use crate::meta::Ks;
use crate::meta::Result;

use super::txn::Txn;
use super::DRAINING;

/// Applies each move that holds; answers which did.
pub(super) fn apply_moves(tx: &mut Txn<'_>, moves: Vec<ShardMove>, now_ms: i64) -> Result<Vec<bool>> {
    let mut done = Vec::with_capacity(moves.len());
    for m in moves {
        let moved = apply_move(tx, &m, now_ms)?;
        if !moved {
            forget_refused_copy(tx, &m, now_ms)?;
        }
        done.push(moved);
    }
    Ok(done)
}

/// Where a record is stored: its keyspace and key.
type Place = (Ks, Vec<u8>);

/// Where a holder keeps its record, if it has one.
fn holder_key(tx: &Txn<'_>, holder: &SegmentHolder) -> Result<Option<Place>> {
    Ok(match holder {
        SegmentHolder::Object { bucket, key } => Some((Ks::Objects, object_key(bucket, key))),
        SegmentHolder::Part { upload_id, part_number } => Some((Ks::Parts, part_key(upload_id, *part_number))),
        SegmentHolder::Version { bucket, key, version_id } => {
            tx.get(Ks::VersionIdx, &version_idx_key(bucket, key, version_id))?.map(|map_key| (Ks::Versions, map_key))
        }
    })
}

/// A record that names segments, as stored.
enum Held {
    Object(Box<ObjectRecord>),
    Part(Box<PartRecord>),
    /// A noncurrent version (a delete marker names no segment and is never one).
    Version(Box<ObjectRecord>),
}

impl Held {
    /// The holder's record and where it is, if there is one.
    fn read(tx: &Txn<'_>, holder: &SegmentHolder) -> Result<Option<(Place, Held)>> {
        let Some(place) = holder_key(tx, holder)? else { return Ok(None) };
        let Some(bytes) = tx.get(place.0, &place.1)? else { return Ok(None) };
        let held = match holder {
            SegmentHolder::Object { .. } => Held::Object(Box::new(decode(&bytes)?)),
            SegmentHolder::Part { .. } => Held::Part(Box::new(decode(&bytes)?)),
            SegmentHolder::Version { .. } => match decode(&bytes)? {
                VersionRecord::Object(o) => Held::Version(Box::new(o)),
                VersionRecord::DeleteMarker(_) => return Ok(None),
            },
        };
        Ok(Some((place, held)))
    }

    /// Its copy of `segment`, if it names it.
    fn segment_mut(&mut self, segment: SegmentId) -> Option<&mut Segment> {
        match self {
            Held::Object(record) | Held::Version(record) => record.segments.iter_mut().find(|s| s.id == segment),
            Held::Part(part) => Some(&mut part.segment).filter(|s| s.id == segment),
        }
    }

    fn encode(self) -> Vec<u8> {
        match self {
            Held::Object(record) => encode(record.as_ref()),
            Held::Part(part) => encode(part.as_ref()),
            Held::Version(record) => encode(&VersionRecord::Object(*record)),
        }
    }
}

fn apply_move(tx: &mut Txn<'_>, m: &ShardMove, now_ms: i64) -> Result<bool> {
    let refs = tx.refs(m.segment)?;
    if refs == 0 || m.holders.len() != refs as usize {
        return Ok(false);
    }
    if tx.exists(Ks::SmMeta, &stale_key(m.segment, m.shard, m.to))? {
        return Ok(false);
    }
    let mut updates = Vec::with_capacity(m.holders.len());
    for holder in &m.holders {
        let Some((place, mut record)) = Held::read(tx, holder)? else { return Ok(false) };
        let Some(segment) = record.segment_mut(m.segment) else { return Ok(false) };
        let disks = &mut segment.layout.disks;
        if disks.contains(&m.to) {
            return Ok(false);
        }
        match disks.get_mut(m.shard as usize) {
            Some(disk) if *disk == m.from => *disk = m.to,
            _ => return Ok(false),
        }
        updates.push((place, record.encode()));
    }
    let distinct: BTreeSet<&Place> = updates.iter().map(|(place, _)| place).collect();
    if distinct.len() != updates.len() {
        return Ok(false);
    }
    for ((ks, key), record) in updates {
        tx.put(ks, key, record);
    }
    record_stale(tx, StaleCopy { segment: m.segment, shard: m.shard, disk: m.from, since_ms: now_ms });
    Ok(true)
}

/// After a refused move: the copy written to `to` is stale unless the segment's records place the shard
/// there (or a stale copy there is recorded already). When no named record holds the segment any more,
/// the segment's files go with the segment (scrub deletes unreferenced files).
fn forget_refused_copy(tx: &mut Txn<'_>, m: &ShardMove, now_ms: i64) -> Result<()> {
    if tx.refs(m.segment)? == 0 || tx.exists(Ks::SmMeta, &stale_key(m.segment, m.shard, m.to))? {
        return Ok(());
    }
    let Some(layout) = current_layout(tx, &m.holders, m.segment)? else { return Ok(()) };
    if layout.disks.get(m.shard as usize) != Some(&m.to) {
        record_stale(tx, StaleCopy { segment: m.segment, shard: m.shard, disk: m.to, since_ms: now_ms });
    }
    Ok(())
}

/// The layout of `segment` in the first of `holders` that names it.
fn current_layout(tx: &Txn<'_>, holders: &[SegmentHolder], segment: SegmentId) -> Result<Option<ShardLayout>> {
    for holder in holders {
        if let Some(s) = Held::read(tx, holder)?.as_mut().and_then(|(_, r)| r.segment_mut(segment)) {
            return Ok(Some(s.layout.clone()));
        }
    }
    Ok(None)
}

fn record_stale(tx: &mut Txn<'_>, copy: StaleCopy) {
    tx.put(Ks::SmMeta, stale_key(copy.segment, copy.shard, copy.disk), encode(&copy));
}

/// Forgets stale copies whose files are gone: each only as it was recorded (a copy recorded again since, by a
/// later move, stays until its own deletion).
pub(super) fn forget_stale(tx: &mut Txn<'_>, copies: Vec<StaleCopy>) -> Result<()> {
    for copy in copies {
        let key = stale_key(copy.segment, copy.shard, copy.disk);
        if tx.get_decoded::<StaleCopy>(Ks::SmMeta, &key)? == Some(copy) {
            tx.delete(Ks::SmMeta, key);
        }
    }
    Ok(())
}

/// Adds `node` to, or takes it out of, the draining set.
pub(super) fn set_draining(tx: &mut Txn<'_>, node: NodeId, draining: bool) -> Result<()> {
    let mut set: Draining = tx.get_decoded(Ks::SmMeta, DRAINING)?.unwrap_or_default();
    let changed = match draining {
        true => set.nodes.insert(node),
        false => set.nodes.remove(&node),
    };
    if changed {
        tx.put(Ks::SmMeta, DRAINING.to_vec(), encode(&set));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hoard_protocol::DiskRef;
    use hoard_protocol::MetaCommand;
    use hoard_protocol::MetaResponse;

    use super::*;
    use crate::meta::test_support::*;
    use crate::meta::WalkCursor;

    const A: DiskRef = DiskRef { node: 1, disk: 0 };
    const B: DiskRef = DiskRef { node: 2, disk: 0 };

    fn object(key: &str) -> SegmentHolder {
        SegmentHolder::Object { bucket: "b".into(), key: key.into() }
    }

    fn move_of(segment: u128, from: DiskRef, to: DiskRef, holders: Vec<SegmentHolder>) -> ShardMove {
        ShardMove { segment: SegmentId(segment), shard: 0, from, to, holders }
    }

    async fn moved(node: &TestNode, moves: Vec<ShardMove>, now_ms: i64) -> Vec<bool> {
        match node.write(MetaCommand::MoveShards { moves, now_ms }).await {
            MetaResponse::Moved { moved } => moved,
            other => panic!("expected Moved, got {other:?}"),
        }
    }

    fn shard0(node: &TestNode, key: &str) -> DiskRef {
        node.reader.object("b", key).unwrap().unwrap().segments[0].layout.disks[0]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_move_changes_the_record_and_leaves_a_stale_copy() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "k", 1, 100)).await;
        assert_eq!(moved(&node, vec![move_of(1, A, B, vec![object("k")])], 200).await, vec![true]);
        assert_eq!(shard0(&node, "k"), B);
        let stale = node.reader.stale_copies().unwrap();
        assert_eq!(stale, vec![StaleCopy { segment: SegmentId(1), shard: 0, disk: A, since_ms: 200 }]);

        // Moving it back onto the disk whose stale copy is still recorded is refused; once forgotten, allowed.
        assert_eq!(moved(&node, vec![move_of(1, B, A, vec![object("k")])], 300).await, vec![false]);
        assert_eq!(shard0(&node, "k"), B);
        node.write(MetaCommand::ForgetStaleCopies { copies: stale }).await;
        assert!(node.reader.stale_copies().unwrap().is_empty());
        assert_eq!(moved(&node, vec![move_of(1, B, A, vec![object("k")])], 400).await, vec![true]);
        assert_eq!(shard0(&node, "k"), A);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_noncurrent_version_moves_like_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        let status = hoard_protocol::VersioningStatus::Enabled;
        node.write(MetaCommand::SetBucketVersioning { bucket: "b".into(), status }).await;
        for n in [1, 2] {
            let mut r = record("b", "k", vec![segment(n, 0)]);
            r.version_id = hoard_protocol::new_version_id(n, true);
            node.write(MetaCommand::CommitObject { record: r, now_ms: 10 }).await;
        }
        // The walk names the old version as its segment's holder.
        let (holdings, _) = node.reader.holdings_after(&WalkCursor::Versions(None), 10).unwrap();
        let holder = holdings.iter().find(|h| h.segment.id == SegmentId(1)).unwrap().holder.clone();
        let old = hoard_protocol::new_version_id(1, true);
        assert_eq!(holder, SegmentHolder::Version { bucket: "b".into(), key: "k".into(), version_id: old.clone() });
        assert_eq!(moved(&node, vec![move_of(1, A, B, vec![holder])], 200).await, vec![true]);
        let Some(VersionRecord::Object(moved_version)) = node.reader.version("b", "k", &old).unwrap() else {
            panic!("the old version is still there");
        };
        assert_eq!(moved_version.segments[0].layout.disks[0], B);
        // A holder naming a version that is gone moves nothing.
        let gone = SegmentHolder::Version { bucket: "b".into(), key: "k".into(), version_id: "null".into() };
        assert_eq!(moved(&node, vec![move_of(1, B, A, vec![gone])], 300).await, vec![false]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_move_that_no_longer_holds_changes_nothing_and_marks_its_copy_stale() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "k", 1, 100)).await;
        // Wrong `from`, a target already in the layout, an unknown holder, a missing holder: all refused.
        let in_layout = DiskRef { node: 1, disk: 1 };
        let refused = vec![
            move_of(1, B, DiskRef { node: 3, disk: 0 }, vec![object("k")]),
            move_of(1, A, in_layout, vec![object("k")]),
            move_of(1, A, B, vec![object("other")]),
            move_of(1, A, B, vec![]),
            move_of(1, A, B, vec![object("k"), object("k")]),
        ];
        assert_eq!(moved(&node, refused, 200).await, vec![false; 5]);
        assert_eq!(shard0(&node, "k"), A);
        // The copies written for the refused moves are stale (shard 0 on the disk of shard 1 too), but never
        // the live copy on A.
        let stale: Vec<DiskRef> = node.reader.stale_copies().unwrap().iter().map(|c| c.disk).collect();
        assert_eq!(stale, vec![in_layout, B, DiskRef { node: 3, disk: 0 }]);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_segment_moves_only_with_every_record_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(put("b", "src", 1, 100)).await;
        let mut copy = record("b", "dst", vec![segment(1, 0)]);
        copy.version_id = "copy".into();
        let copy = MetaCommand::CommitCopy {
            record: copy,
            now_ms: 110,
            source_bucket: "b".into(),
            source_key: "src".into(),
            source_version_id: "id-src".into(),
        };
        node.write(copy.clone()).await;
        assert_eq!(moved(&node, vec![move_of(1, A, B, vec![object("src")])], 200).await, vec![false]);
        assert_eq!((shard0(&node, "src"), shard0(&node, "dst")), (A, A));

        // The refused move's copy on B is stale: no move onto B until it is deleted and forgotten.
        let stale = node.reader.stale_copies().unwrap();
        assert_eq!(stale.iter().map(|c| c.disk).collect::<Vec<_>>(), vec![B]);
        node.write(MetaCommand::ForgetStaleCopies { copies: stale }).await;
        let holders = node.reader.holders_of(&[SegmentId(1)].into()).unwrap();
        assert_eq!(holders[&SegmentId(1)], vec![object("dst"), object("src")]);
        assert_eq!(node.reader.current_segment(SegmentId(1)).unwrap().map(|s| s.layout.disks[0]), Some(A));
        assert_eq!(moved(&node, vec![move_of(1, A, B, holders[&SegmentId(1)].clone())], 300).await, vec![true]);
        assert_eq!((shard0(&node, "src"), shard0(&node, "dst")), (B, B));
        // Where repair finds a segment whose report carried the layout before the move.
        assert_eq!(node.reader.current_segment(SegmentId(1)).unwrap().map(|s| s.layout.disks[0]), Some(B));
        assert_eq!(node.reader.current_segment(SegmentId(2)).unwrap(), None);

        // A copy that read its source before the move takes the layout the source has when it commits.
        let MetaCommand::CommitCopy { mut record, now_ms, source_bucket, source_key, source_version_id } = copy else {
            unreachable!()
        };
        record.key = "late".into();
        let late = MetaCommand::CommitCopy { record, now_ms, source_bucket, source_key, source_version_id };
        node.write(late).await;
        assert_eq!(shard0(&node, "late"), B);
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parts_move_and_a_completed_upload_takes_their_current_layout() {
        let dir = tempfile::tempdir().unwrap();
        let node = node_with_bucket(dir.path()).await;
        node.write(create_upload("b", "big", "u1")).await;
        node.write(commit_part("b", "big", "u1", 1, 9)).await;
        let (walk, next) = node.reader.holdings_after(&WalkCursor::Objects(None), 10).unwrap();
        assert!(walk.is_empty() && next == WalkCursor::Versions(None));
        let (walk, next) = node.reader.holdings_after(&next, 10).unwrap();
        assert!(walk.is_empty() && next == WalkCursor::Parts(None));
        let (walk, next) = node.reader.holdings_after(&next, 10).unwrap();
        assert_eq!(next, WalkCursor::End);
        let part = SegmentHolder::Part { upload_id: "u1".into(), part_number: 1 };
        assert_eq!((walk.len(), &walk[0].holder, walk[0].refs), (1, &part, 1));

        // The completion was built from the part as it was before the move.
        let complete = MetaCommand::CompleteUpload {
            upload_id: "u1".into(),
            record: record("b", "big", vec![segment(9, 1)]),
            now_ms: 300,
        };
        assert_eq!(moved(&node, vec![move_of(9, A, B, vec![part])], 200).await, vec![true]);
        assert_eq!(node.reader.current_segment(SegmentId(9)).unwrap().map(|s| s.layout.disks[0]), Some(B));
        node.write(complete).await;
        assert_eq!(shard0(&node, "big"), B);
        let (walk, _) = node.reader.holdings_after(&WalkCursor::Objects(None), 10).unwrap();
        assert_eq!(walk[0].holder, object("big"));
        node.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn draining_nodes_are_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let node = TestNode::start(dir.path(), config()).await;
        assert!(node.reader.draining().unwrap().is_empty());
        node.write(MetaCommand::SetDraining { node_id: 3, draining: true }).await;
        node.write(MetaCommand::SetDraining { node_id: 4, draining: true }).await;
        node.write(MetaCommand::SetDraining { node_id: 3, draining: false }).await;
        assert_eq!(node.reader.draining().unwrap(), [4].into());
        node.stop().await;
    }
}
