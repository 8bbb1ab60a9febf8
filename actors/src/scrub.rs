//! The scrub actor: walks every committed segment and verifies the checksums of the shard files on this
//! node's disks, sends damage to repair, and deletes what no committed object needs any more.
//!
//! Invariants:
//! - A shard file is deleted only if (a) its segment is queued as garbage by metadata for longer than
//!   the grace period, or (b) no record or in-progress part references its segment, it is not queued as
//!   garbage, and the file is older than the grace period (an orphan of a PUT that never committed). The disks are listed
//!   before the references are read, so a segment committed during the walk is never taken for an
//!   orphan; references and the garbage queue are read from one consistent view; young files are never
//!   touched, so a PUT still writing is never disturbed.
//! - Scrub only reads and deletes stored bytes; it never asks for a key.
//! - In a cluster each node scrubs only its own disks: it verifies the shards stored there and deletes the
//!   orphans found there, so a segment is verified once, by the node that holds each shard. Garbage (segments
//!   metadata queued for deletion) is deleted by the metadata leader alone, on whichever node holds each
//!   file, and forgotten once every file is gone. So are the old copies of shards that rebalance moved, once
//!   the grace period since the move is over (a read that began before the move may still stream from one).

use std::time::Duration;

use hoard_protocol::MetaCommand;
use hoard_protocol::SegmentId;
use hoard_protocol::StaleCopy;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::error::ActorError;
use crate::error::Result;
use crate::slot::Slot;
use crate::NodeContext;

/// A whole scrub pass may take this long before its caller gives up waiting (the pass goes on).
pub const SCRUB_DEADLINE: Duration = Duration::from_secs(3600);
/// Deadline for verifying one shard file.
pub const VERIFY_DEADLINE: Duration = Duration::from_secs(300);

/// What one pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Committed segments with at least one shard on this node's disks.
    pub segments_checked: u64,
    /// Shard files verified (those on this node's disks).
    pub shards_verified: u64,
    pub damaged_shards: u64,
    pub orphans_deleted: u64,
    pub garbage_deleted: u64,
    /// Old copies of moved shards deleted (by the metadata leader).
    pub stale_deleted: u64,
}

pub struct ScrubActor;

pub struct ScrubState {
    ctx: NodeContext,
}

pub enum ScrubMsg {
    /// Runs one pass now.
    Run(Option<RpcReplyPort<Result<ScrubReport>>>),
}

impl Actor for ScrubActor {
    type Msg = ScrubMsg;
    type State = ScrubState;
    type Arguments = NodeContext;

    async fn pre_start(
        &self,
        me: ActorRef<ScrubMsg>,
        ctx: NodeContext,
    ) -> std::result::Result<ScrubState, ActorProcessingErr> {
        if let Some(every) = ctx.config.scrub_interval {
            me.send_interval(every, || ScrubMsg::Run(None));
        }
        Ok(ScrubState { ctx })
    }

    async fn handle(
        &self,
        _me: ActorRef<ScrubMsg>,
        msg: ScrubMsg,
        state: &mut ScrubState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            ScrubMsg::Run(reply) => {
                let r = scrub_pass(&state.ctx).await;
                match &r {
                    Ok(report) => tracing::info!(?report, "scrub pass done"),
                    Err(e) => tracing::error!(error = %e, "scrub pass failed"),
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
        }
        Ok(())
    }
}

async fn scrub_pass(ctx: &NodeContext) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    let grace_ms = ctx.config.scrub_grace.as_millis() as i64;
    let now = ctx.env.now_ms();

    // List first, read references second (see the module invariants).
    let mut listings = Vec::new();
    for shard in ctx.shards.iter() {
        // A disk that cannot be listed is skipped this pass, not the whole pass.
        match shard.list().await {
            Ok(entries) => listings.push((shard.clone(), entries)),
            Err(e) => tracing::warn!(disk = %shard.label, error = %e, "scrub could not list a disk"),
        }
    }
    // Segments queued as garbage are not orphans: their grace runs from when they were queued (below), not from
    // their files' age, so a reader still streaming the replaced version is not cut off, and each file is
    // deleted and counted once. Both sets come from one view, so a segment a copy takes back from the queue
    // meanwhile is never in neither. The view is linearizable: a node whose metadata lags behind the group's
    // (a follower cut off, say) must not take shard files of objects committed elsewhere for orphans; if it
    // cannot confirm its view, the pass fails and deletes nothing.
    let (referenced, queued) = ctx.meta.read(|r| r.references_and_queued()).await?;
    let reader = ctx.meta.local()?;

    for (shard, entries) in listings {
        for entry in entries {
            if now - entry.modified_ms < grace_ms {
                continue;
            }
            let orphan = if entry.name.ends_with(".tmp") {
                true
            } else {
                match shard_file::parse_shard_name(&entry.name) {
                    Some((segment, _)) => !referenced.contains(&segment) && !queued.contains(&segment),
                    None => false,
                }
            };
            if orphan {
                match shard.remove_name(&entry.name).await {
                    Ok(()) => report.orphans_deleted += 1,
                    Err(e) => tracing::warn!(file = %entry.name, error = %e, "scrub could not delete an orphan"),
                }
            }
        }
    }

    // Verify every committed segment.
    let segments = reader.segments().map_err(|e| ActorError::Meta(e.to_string()))?;
    let me = ctx.config.node_id;
    for committed in segments {
        let segment = committed.segment;
        if segment.layout.disks.iter().all(|d| d.node != me) {
            continue;
        }
        report.segments_checked += 1;
        let mut damaged = Vec::new();
        for (i, disk) in segment.layout.disks.iter().enumerate() {
            if disk.node != me {
                continue;
            }
            let Some(shard) = ctx.shard(*disk) else { continue };
            report.shards_verified += 1;
            let header = ShardHeader::for_layout(segment.id, i as u8, &segment.layout);
            if let Err(e) = shard.verify(header, segment.size, VERIFY_DEADLINE).await {
                tracing::warn!(segment = %segment.id, shard = i, error = %e, "scrub found a damaged shard");
                damaged.push(i as u8);
            }
        }
        if !damaged.is_empty() {
            report.damaged_shards += damaged.len() as u64;
            ctx.repair.report(segment, damaged);
        }
    }

    // Delete garbage whose grace period is over, then forget it: the leader's work alone.
    let leads = ctx.meta.leads().await?;
    let garbage = match leads {
        true => reader.garbage(now - grace_ms).map_err(|e| ActorError::Meta(e.to_string()))?,
        false => Vec::new(),
    };
    // A copy may have taken a queued segment back since the walk began: read references again, last.
    let referenced = if garbage.is_empty() {
        referenced
    } else {
        reader.referenced_segments().map_err(|e| ActorError::Meta(e.to_string()))?
    };
    let mut forgotten: Vec<SegmentId> = Vec::new();
    for segment in garbage {
        if referenced.contains(&segment.id) {
            forgotten.push(segment.id);
            continue;
        }
        let mut all_gone = true;
        for (i, d) in segment.layout.disks.iter().enumerate() {
            if let Some(shard) = ctx.shard(*d) {
                match shard.remove(segment.id, i as u8).await {
                    Ok(()) => report.garbage_deleted += 1,
                    Err(e) => {
                        all_gone = false;
                        tracing::warn!(segment = %segment.id, shard = i, error = %e, "scrub could not delete garbage");
                    }
                }
            }
        }
        // Forgotten only when every file is gone; otherwise the next pass tries again.
        if all_gone {
            forgotten.push(segment.id);
        }
    }
    if !forgotten.is_empty() {
        ctx.meta.write(MetaCommand::ForgetGarbage { segments: forgotten }).await?;
    }
    if leads {
        report.stale_deleted = delete_stale_copies(ctx, now - grace_ms).await?;
    }
    Ok(report)
}

/// Stale copies deleted, then forgotten, per Raft entry.
const STALE_CHUNK: usize = 512;

/// Deletes the old copies of shards moved at or before `moved_by_ms` (the leader's work), and forgets them
/// once their files are gone; a copy on a node that was removed from the cluster is forgotten as it is. Each
/// chunk is checked first, from a linearizable read, to be still recorded as it was, and this node to still
/// lead: a leader deposed meanwhile never deletes a copy that a newer leader forgot and moved a shard back onto.
async fn delete_stale_copies(ctx: &NodeContext, moved_by_ms: i64) -> Result<u64> {
    let stale: Vec<StaleCopy> = ctx.meta.read(|r| r.stale_copies()).await?;
    let due: Vec<StaleCopy> = stale.into_iter().filter(|c| c.since_ms <= moved_by_ms).collect();
    let mut deleted = 0;
    for chunk in due.chunks(STALE_CHUNK) {
        let wanted = chunk.to_vec();
        let (current, removed) = ctx
            .meta
            .read(move |r| {
                let current: Vec<StaleCopy> = r.stale_copies_among(&wanted)?;
                Ok((current, r.cluster_record()?.removed()))
            })
            .await?;
        if !ctx.meta.leads().await? {
            break;
        }
        let mut gone = Vec::new();
        for copy in current {
            if removed.contains(&copy.disk.node) {
                gone.push(copy);
                continue;
            }
            let Some(shard) = ctx.shard(copy.disk) else { continue };
            match shard.remove(copy.segment, copy.shard).await {
                Ok(()) => {
                    deleted += 1;
                    gone.push(copy);
                }
                Err(e) => {
                    tracing::warn!(segment = %copy.segment, shard = copy.shard, error = %e, "scrub could not delete a stale copy")
                }
            }
        }
        if !gone.is_empty() {
            ctx.meta.write(MetaCommand::ForgetStaleCopies { copies: gone }).await?;
        }
    }
    Ok(deleted)
}

#[derive(Clone)]
pub struct ScrubHandle {
    pub slot: Slot<ScrubMsg>,
}

impl Default for ScrubHandle {
    fn default() -> Self {
        ScrubHandle { slot: Slot::new("scrub") }
    }
}

impl ScrubHandle {
    /// Runs a pass now and waits for its report.
    pub async fn run(&self) -> Result<ScrubReport> {
        self.slot.call(|r| ScrubMsg::Run(Some(r)), SCRUB_DEADLINE).await?
    }
}
