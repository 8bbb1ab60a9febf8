//! The repair actor: rebuilds missing or corrupt shard files from the surviving ones.
//!
//! Invariants:
//! - Repair works on stored bytes only (ciphertext when objects are encrypted) and never asks for a key.
//! - A rebuilt shard file is written whole under a temp name and renamed over the damaged one only
//!   when complete and synced, so a crash mid-repair leaves the old state, never a half file.
//! - A segment no longer referenced by metadata is not repaired (its files are garbage), nor a shard that
//!   rebalance moved away from the disk named in the report (its copy there is stale).
//! - Every damaged shard reported is in the metadata database's node-local repair queue (mirrored in memory
//!   as `known`) until a pass that covered it succeeds, or its segment is no longer referenced: a restart of
//!   the node, or a crash of this actor, picks up the rest. A failed pass leaves its shards queued; they are
//!   tried again with the segment's next pass (the next report, the next start, or a peer coming back), and
//!   after 1, 2, 4 … 32 s when the failure was a peer or disk out of reach.
//! - A report is a suspicion, not a verdict: the shards reported are read like the others, and every piece whose
//!   checksum holds is a source, so a segment rebuilds whenever `data` of its pieces are whole, however many
//!   shards were reported (rewriting a whole shard writes the same bytes).
//! - Reports are deduplicated: a segment is `due` at most once; a report that arrives while the segment is
//!   being rebuilt makes it due again, and that pass takes every shard still known damaged.
//!
//! Fault point: `repair.rebuild` (before a segment's shard files are rebuilt).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;
use std::time::Duration;

use bytes::Bytes;
use hoard_protocol::RepairRecord;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_storage::error::StorageError;
use hoard_storage::meta::MetaError;
use hoard_storage::meta::MetaReader;
use hoard_storage::meta::RepairQueue;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::meta::MetaHandle;
use crate::slot::Slot;
use crate::NodeContext;

/// How long a caller waits for repair to drain its queue.
pub const REPAIR_FLUSH_DEADLINE: Duration = Duration::from_secs(600);

pub struct RepairActor;

pub struct RepairState {
    ctx: NodeContext,
}

/// What repair knows of damage, behind one lock so the on-disk queue follows it in order. Ordered maps: segments
/// queued together are passed over in id order, the same order in every run of a simulation.
#[derive(Default)]
struct Book {
    /// The on-disk queue's contents: every segment with damage not yet repaired, and its damaged shards.
    known: BTreeMap<SegmentId, (Segment, BTreeSet<u8>)>,
    /// Segments reported since their last pass began: each is due one (more) pass.
    due: BTreeSet<SegmentId>,
    /// Failed passes in a row, per segment (for the timed retries).
    failures: BTreeMap<SegmentId, u32>,
}

/// Timed retries of a segment whose pass failed for a passing reason (a peer restarting, a disk not answering):
/// after 1, 2, 4, 8, 16 and 32 s; after that the segment waits, queued, for its next report, a peer coming
/// back, or the next start.
const TIMED_RETRIES: u32 = 6;

type Shared = Arc<Mutex<Book>>;

pub enum RepairMsg {
    /// Shards of this segment were found missing or corrupt; details wait in the book.
    Damaged(SegmentId),
    /// Answers once every report sent before it has been handled.
    Flush(RpcReplyPort<()>),
}

/// Counters kept across restarts of the actor.
#[derive(Default)]
pub struct RepairStats {
    /// Damage reports received (merged ones included).
    pub reports: AtomicU64,
    pub shards_rebuilt: AtomicU64,
    pub failures: AtomicU64,
}

impl Actor for RepairActor {
    type Msg = RepairMsg;
    type State = RepairState;
    type Arguments = NodeContext;

    async fn pre_start(
        &self,
        me: ActorRef<RepairMsg>,
        ctx: NodeContext,
    ) -> std::result::Result<RepairState, ActorProcessingErr> {
        // Reports queued for an earlier incarnation, or before the node last stopped, are picked up again.
        let queued = ctx.meta.local().and_then(|m| m.repair_queue().all().map_err(|e| ActorError::Meta(e.to_string())));
        let due: Vec<SegmentId> = {
            let mut book = ctx.repair.book();
            match queued {
                Ok(records) => {
                    for r in records {
                        let id = r.segment.id;
                        book.known.entry(id).or_insert_with(|| (r.segment, BTreeSet::new())).1.extend(r.shards);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the repair queue"),
            }
            let ids: Vec<SegmentId> = book.known.keys().copied().collect();
            book.due.extend(ids);
            book.due.iter().copied().collect()
        };
        for id in due {
            me.cast(RepairMsg::Damaged(id))?;
        }
        Ok(RepairState { ctx })
    }

    async fn handle(
        &self,
        _me: ActorRef<RepairMsg>,
        msg: RepairMsg,
        state: &mut RepairState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            RepairMsg::Damaged(id) => {
                let Some((segment, shards)) = state.ctx.repair.take(id) else { return Ok(()) };
                let stats = state.ctx.repair.stats.clone();
                match repair_segment(&state.ctx, &segment, &shards).await {
                    Ok(n) => {
                        state.ctx.repair.done(id);
                        stats.shards_rebuilt.fetch_add(n as u64, Ordering::Relaxed);
                        if n > 0 {
                            tracing::info!(segment = %segment.id, rebuilt = n, "repaired shards");
                        }
                    }
                    Err(e) => {
                        // The shards stay queued: a timed retry, the segment's next report, a peer coming back or
                        // the next start tries again.
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(segment = %segment.id, error = %e, "repair failed");
                        // Only a passing trouble (a peer or disk unreachable or slow right now) is retried on a
                        // timer; damage beyond parity, or a failing rebuild, waits for an event.
                        let passing = matches!(e, ActorError::Unavailable(_) | ActorError::Timeout(_));
                        let failed = state.ctx.repair.failed(id);
                        if passing && failed <= TIMED_RETRIES {
                            let handle = state.ctx.repair.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(1 << (failed - 1))).await;
                                handle.retry(id);
                            });
                        }
                    }
                }
            }
            RepairMsg::Flush(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Rebuilds the named shards of one segment; returns how many were rewritten.
///
/// The segment's layout is the one its report carried. Rebalance may have moved shards since (a report waits
/// in the queue while its rebuild keeps failing): a pass that fails for want of pieces looks up where the
/// records place the segment now, and when that differs, the queue takes the new layout and the pass is made
/// again with it.
pub async fn repair_segment(ctx: &NodeContext, segment: &Segment, shards: &[u8]) -> Result<usize> {
    let reader = ctx.meta.local()?;
    let referenced = reader.is_referenced(segment.id).map_err(|e| ActorError::Meta(e.to_string()))?;
    if !referenced {
        return Ok(0);
    }
    faults::hit(ctx.faults.as_ref(), "repair.rebuild").await?;
    match rebuild(ctx, &reader, segment, shards).await {
        Err(e @ ActorError::Storage(StorageError::Ec(_))) => {
            let current = reader.current_segment(segment.id).map_err(|e| ActorError::Meta(e.to_string()))?;
            match current {
                Some(current) if current.layout != segment.layout => {
                    tracing::info!(segment = %segment.id, "the segment's shards moved since the report: repairing where they are now");
                    ctx.repair.relayout(&current);
                    rebuild(ctx, &reader, &current, shards).await
                }
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// One pass of [`repair_segment`] with `segment`'s layout as given.
async fn rebuild(ctx: &NodeContext, reader: &MetaReader, segment: &Segment, shards: &[u8]) -> Result<usize> {
    let layout = &segment.layout;
    // A shard that rebalance moved away since the damage was reported lives elsewhere now: the copy reported
    // is stale, and rebuilding it would only leave a file no record names.
    let moved = |i: u8| {
        let disk = layout.disks[i as usize];
        reader.is_stale(segment.id, i, disk).unwrap_or(false)
    };
    let targets: BTreeSet<u8> =
        shards.iter().copied().filter(|i| (*i as usize) < layout.width() && !moved(*i)).collect();
    if targets.is_empty() {
        return Ok(0);
    }
    let mut writers = Vec::new();
    for &i in &targets {
        let disk = layout.disks[i as usize];
        let shard = ctx
            .shard(disk)
            .ok_or(ActorError::Invalid(format!("disk {} of node {} is unreachable", disk.disk, disk.node)))?;
        let header = ShardHeader::for_layout(segment.id, i, layout);
        writers.push((i, shard.create(header).await?));
    }
    let blocks = shard_file::block_count(segment.size, layout.block_size);
    // The shards being rebuilt are read too: a report may name a shard that is whole (a read that could not
    // reach it, a block that was damaged elsewhere in the file), and every piece whose checksum holds is a
    // source. Skipping them would make a segment with more reported shards than parity unrepairable for good.
    let sources = BTreeSet::new();
    for block in 0..blocks {
        let block_len = shard_file::block_len(segment.size, layout.block_size, block);
        let pieces = read_pieces(ctx, segment, block, block_len, &sources).await;
        let all = ctx.ec.reconstruct_all(layout.data, layout.parity, pieces).await?;
        for (i, w) in writers.iter_mut() {
            let piece = all.get(*i as usize).ok_or(ActorError::Invalid("reconstruction lost a piece".into()))?;
            w.append(vec![Bytes::copy_from_slice(piece)]).await?;
        }
    }
    let n = writers.len();
    for (_, w) in writers {
        w.commit().await?;
    }
    Ok(n)
}

/// Every piece of one block of `segment` but those in `skip`, read at once; `None` for a piece that could
/// not be read (what the decoder rebuilds from the others).
pub async fn read_pieces(
    ctx: &NodeContext,
    segment: &Segment,
    block: u64,
    block_len: usize,
    skip: &BTreeSet<u8>,
) -> Vec<Option<Vec<u8>>> {
    let layout = &segment.layout;
    let reads = (0..layout.width() as u8).map(|i| {
        let skip = skip.contains(&i);
        async move {
            if skip {
                return None;
            }
            let shard = ctx.shard(*layout.disks.get(i as usize)?)?;
            let header = ShardHeader::for_layout(segment.id, i, layout);
            match shard.read_piece(header, block, block_len, crate::get::PIECE_READ_DEADLINE).await {
                Ok(piece) => Some(Vec::from(piece)),
                Err(e) => {
                    tracing::debug!(segment = %segment.id, shard = i, block, error = %e, "piece not read for repair");
                    None
                }
            }
        }
    });
    futures::future::join_all(reads).await
}

#[derive(Clone)]
pub struct RepairHandle {
    pub slot: Slot<RepairMsg>,
    pub stats: Arc<RepairStats>,
    book: Shared,
    /// Where the node-local repair queue is kept.
    meta: MetaHandle,
}

impl RepairHandle {
    pub fn new(meta: MetaHandle) -> Self {
        RepairHandle {
            slot: Slot::new("repair"),
            stats: Arc::new(RepairStats::default()),
            book: Arc::new(Mutex::new(Book::default())),
            meta,
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Every update of the book is a few map operations that leave it consistent: a panic elsewhere
        // while it was held loses nothing.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports damage; never waits for repair (a read must not slow down because repair is busy).
    pub fn report(&self, segment: Segment, shards: Vec<u8>) {
        let id = segment.id;
        self.stats.reports.fetch_add(1, Ordering::Relaxed);
        let newly_due = {
            let mut book = self.book();
            let (segment, known) = book.known.entry(id).or_insert_with(|| (segment, BTreeSet::new()));
            known.extend(shards);
            // Under the lock, so the queue's entry is never older than the book's.
            let record = RepairRecord { segment: segment.clone(), shards: known.iter().copied().collect() };
            self.persist(|q| q.put(&record));
            book.due.insert(id)
        };
        if newly_due {
            if let Err(e) = self.slot.cast(RepairMsg::Damaged(id)) {
                // The actor is between incarnations. The damage stays known (and queued on disk); the
                // segment is due again with its next report, or at the next start of the actor.
                self.book().due.remove(&id);
                tracing::warn!(error = %e, "could not report damage to repair");
            }
        }
    }

    /// Takes `segment`'s layout for its queued damage (the records place its shards elsewhere now).
    fn relayout(&self, segment: &Segment) {
        let mut book = self.book();
        if let Some((known, shards)) = book.known.get_mut(&segment.id) {
            *known = segment.clone();
            let record = RepairRecord { segment: segment.clone(), shards: shards.iter().copied().collect() };
            self.persist(|q| q.put(&record));
        }
    }

    /// Counts a failed pass over `id`; answers how many failed in a row.
    fn failed(&self, id: SegmentId) -> u32 {
        let mut book = self.book();
        let n = book.failures.entry(id).or_insert(0);
        *n += 1;
        *n
    }

    /// Makes `id` due again if it is still queued and not due already.
    fn retry(&self, id: SegmentId) {
        let newly_due = {
            let mut book = self.book();
            book.known.contains_key(&id) && book.due.insert(id)
        };
        if newly_due && self.slot.cast(RepairMsg::Damaged(id)).is_err() {
            self.book().due.remove(&id);
        }
    }

    /// Makes every queued segment that is not already due due again, and answers how many: for when a pass
    /// may now succeed that failed before (a peer whose disks it needed is back).
    pub fn retry_queued(&self) -> usize {
        let ids: Vec<SegmentId> = {
            let mut book = self.book();
            let ids: Vec<SegmentId> = book.known.keys().filter(|id| !book.due.contains(id)).copied().collect();
            book.due.extend(ids.iter().copied());
            ids
        };
        for id in &ids {
            if self.slot.cast(RepairMsg::Damaged(*id)).is_err() {
                // Between incarnations: the next start of the actor takes every queued segment anyway.
                self.book().due.remove(id);
            }
        }
        ids.len()
    }

    /// Starts a pass over a due segment: every shard known damaged in it. `None` if it is not due.
    fn take(&self, id: SegmentId) -> Option<(Segment, Vec<u8>)> {
        let mut book = self.book();
        if !book.due.remove(&id) {
            return None;
        }
        let (segment, shards) = book.known.get(&id)?;
        Some((segment.clone(), shards.iter().copied().collect()))
    }

    /// A pass over a segment succeeded: it leaves the queue, unless a report made it due again meanwhile
    /// (then that pass takes every shard still known).
    fn done(&self, id: SegmentId) {
        let mut book = self.book();
        book.failures.remove(&id);
        if !book.due.contains(&id) {
            book.known.remove(&id);
            self.persist(|q| q.remove(id));
        }
    }

    /// Applies `change` to the node-local queue; a failure is logged (scrub finds the damage again).
    fn persist(&self, change: impl FnOnce(&RepairQueue) -> std::result::Result<(), MetaError>) {
        let result = match self.meta.local() {
            Ok(reader) => change(&reader.repair_queue()).map_err(|e| ActorError::Meta(e.to_string())),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not update the repair queue");
        }
    }

    /// Segments due a repair pass.
    pub fn pending_segments(&self) -> usize {
        self.book().due.len()
    }

    /// Segments with damage not yet repaired (what the node-local queue holds).
    pub fn queued_segments(&self) -> usize {
        self.book().known.len()
    }

    /// Waits until every report made before this call has been handled (by the next incarnation of the actor
    /// when it is being restarted: it picks the queue up).
    pub async fn flush(&self) -> Result<()> {
        self.slot.call_waiting(RepairMsg::Flush, REPAIR_FLUSH_DEADLINE).await
    }
}
