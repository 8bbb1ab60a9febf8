//! The repair actor: rebuilds missing or corrupt shard files from the surviving ones.
//!
//! Invariants:
//! - Repair works on stored bytes only (ciphertext when objects are encrypted) and never asks for a key.
//! - A rebuilt shard file is written whole under a temp name and renamed over the damaged one only
//!   when complete and synced, so a crash mid-repair leaves the old state, never a half file.
//! - A segment no longer referenced by metadata is not repaired (its files are garbage).
//! - Reports are deduplicated: a report for a segment already waiting is merged into the waiting one;
//!   a report that arrives while the segment is being rebuilt queues one more pass.
//! - Every waiting segment is also in the metadata database's node-local repair queue, and leaves it only
//!   once rebuilt (or no longer referenced): a restart, or a crash of this actor, picks up the rest, and a
//!   failed rebuild is tried again at the next start (scrub reports it again too).
//!
//! Fault point: `repair.rebuild` (before a segment's shard files are rebuilt).

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hoard_protocol::RepairRecord;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_storage::meta::MetaError;
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

/// Segments waiting for repair, with the union of the shards reported damaged.
type Pending = Arc<Mutex<HashMap<SegmentId, (Segment, BTreeSet<u8>)>>>;

pub enum RepairMsg {
    /// Shards of this segment were found missing or corrupt; details wait in the pending map.
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
        let waiting: Vec<SegmentId> = {
            let mut pending = ctx.repair.pending.lock().unwrap_or_else(|p| p.into_inner());
            match queued {
                Ok(records) => {
                    for r in records {
                        pending.entry(r.segment.id).or_insert_with(|| (r.segment, BTreeSet::new())).1.extend(r.shards);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the repair queue"),
            }
            pending.keys().copied().collect()
        };
        for id in waiting {
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
                let taken = state.ctx.repair.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                let Some((segment, shards)) = taken else { return Ok(()) };
                let shards: Vec<u8> = shards.into_iter().collect();
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
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(segment = %segment.id, error = %e, "repair failed");
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
pub async fn repair_segment(ctx: &NodeContext, segment: &Segment, shards: &[u8]) -> Result<usize> {
    let referenced = ctx.meta.local()?.is_referenced(segment.id).map_err(|e| ActorError::Meta(e.to_string()))?;
    if !referenced {
        return Ok(0);
    }
    faults::hit(ctx.faults.as_ref(), "repair.rebuild").await?;
    let layout = &segment.layout;
    let targets: BTreeSet<u8> = shards.iter().copied().filter(|i| (*i as usize) < layout.width()).collect();
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
    for block in 0..blocks {
        let block_len = shard_file::block_len(segment.size, layout.block_size, block);
        let reads = (0..layout.width() as u8).map(|i| {
            let skip = targets.contains(&i);
            async move {
                if skip {
                    return None;
                }
                let disk = layout.disks[i as usize];
                let shard = ctx.shard(disk)?;
                let header = ShardHeader::for_layout(segment.id, i, layout);
                shard.read_piece(header, block, block_len, crate::get::PIECE_READ_DEADLINE).await.ok()
            }
        });
        let pieces: Vec<Option<Vec<u8>>> = futures::future::join_all(reads).await;
        let all = ctx.ec.reconstruct_all(layout.data, layout.parity, pieces).await?;
        for (i, w) in writers.iter_mut() {
            let piece = all.get(*i as usize).ok_or(ActorError::Invalid("reconstruction lost a piece".into()))?;
            w.append(Bytes::copy_from_slice(piece)).await?;
        }
    }
    let n = writers.len();
    for (_, w) in writers {
        w.commit().await?;
    }
    Ok(n)
}

#[derive(Clone)]
pub struct RepairHandle {
    pub slot: Slot<RepairMsg>,
    pub stats: Arc<RepairStats>,
    pending: Pending,
    /// Where the node-local repair queue is kept.
    meta: MetaHandle,
}

impl RepairHandle {
    pub fn new(meta: MetaHandle) -> Self {
        RepairHandle {
            slot: Slot::new("repair"),
            stats: Arc::new(RepairStats::default()),
            pending: Arc::new(Mutex::new(HashMap::new())),
            meta,
        }
    }

    /// Reports damage; never waits (a read must not slow down because repair is busy).
    pub fn report(&self, segment: Segment, shards: Vec<u8>) {
        let id = segment.id;
        self.stats.reports.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let first = !pending.contains_key(&id);
            let (segment, waiting) = pending.entry(id).or_insert_with(|| (segment, BTreeSet::new()));
            waiting.extend(shards);
            // Under the lock, so the queue's entry is never older than the waiting one.
            self.persist(|q| {
                q.put(&RepairRecord { segment: segment.clone(), shards: waiting.iter().copied().collect() })
            });
            first
        };
        if first {
            if let Err(e) = self.slot.cast(RepairMsg::Damaged(id)) {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                tracing::warn!(error = %e, "could not report damage to repair");
            }
        }
    }

    /// A segment was handled: it leaves the queue, unless a new report made it wait again meanwhile.
    fn done(&self, id: SegmentId) {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.contains_key(&id) {
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

    /// Segments reported and not yet rebuilt.
    pub fn pending_segments(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits until every report made before this call has been handled.
    pub async fn flush(&self) -> Result<()> {
        self.slot.call(RepairMsg::Flush, REPAIR_FLUSH_DEADLINE).await
    }
}
