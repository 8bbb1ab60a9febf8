//! The rebalance actor: moves shards between disks so that every usable disk holds about as many bytes as
//! the others (after a node joins), and so that a draining node holds nothing (before it is removed).
//!
//! Only the metadata leader moves shards. A pass walks every segment a record names, a page at a time, and
//! plans each segment's moves ([`plan_segment`]) against a running count of the bytes each disk holds; each
//! planned shard is copied to its new disk (read from the old one, or rebuilt from the others when that one
//! is out of reach: a draining node may be gone), then the moves are committed in one Raft entry.
//!
//! Invariants:
//! - A shard's new location is committed through Raft only after its copy is whole and synced on the new
//!   disk; the old copy is deleted only after that, by scrub, once the grace period is over (metadata
//!   records it as stale), so a read that began before the move is not cut off.
//! - A move names every record that names the segment; metadata makes it only if they all still place the
//!   shard on the old disk, so a record changed meanwhile is never pointed at the wrong place.
//! - Rebalance reads and writes stored bytes only (ciphertext when encrypted); it never asks for a key.
//! - All progress is in metadata: a pass interrupted anywhere (the leader killed, this actor restarted) is
//!   taken up by the next pass, on whichever node leads then, which plans only what is still uneven.
//!
//! Fault point: `rebalance.commit` (after the copies of a batch are written, before their moves commit).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hoard_protocol::DiskRef;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeId;
use hoard_protocol::Segment;
use hoard_protocol::SegmentId;
use hoard_protocol::ShardMove;
use hoard_storage::meta::Holding;
use hoard_storage::meta::WalkCursor;
use hoard_storage::shard_file;
use hoard_storage::shard_file::ShardHeader;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use serde::Deserialize;
use serde::Serialize;

use crate::error::ActorError;
use crate::error::Result;
use crate::faults;
use crate::slot::Slot;
use crate::NodeContext;

mod plan;

pub use plan::plan_segment;
use plan::shard_bytes;
pub use plan::Loads;
pub use plan::PlannedMove;
pub use plan::Topology;
pub use plan::EVEN_WITHIN_PERCENT;

/// How often the leader looks whether a pass is due.
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(10);
/// After a pass that found nothing to move, how long the leader waits before walking the records again while
/// nodes and disks stay as they were (new writes are placed evenly; this catches what drifts).
pub const SETTLED_RECHECK: Duration = Duration::from_secs(600);
/// Records read per page of the walk.
pub const WALK_PAGE: usize = 128;
/// Shard moves per Raft entry (and copies written before it).
pub const MOVES_PER_ENTRY: usize = 16;
/// Shard copies made at once.
pub const COPIES_AT_ONCE: usize = 2;

/// What `cluster status` shows of rebalancing (kept by the leader's actor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceProgress {
    /// Whether a pass is under way.
    pub running: bool,
    /// Passes finished since this node became leader or started.
    pub passes: u64,
    /// Records walked by the pass under way (or the last one), of `records`.
    pub walked: u64,
    pub records: u64,
    /// Shards moved, and their bytes, since this node started.
    pub moved_shards: u64,
    pub moved_bytes: u64,
    /// Moves whose copy or commit failed (tried again by a later pass).
    pub failed_moves: u64,
    /// Shards still on draining or removed nodes, as the last pass began.
    pub leaving_shards: u64,
    /// Why the last pass stopped early, or could not empty a leaving node, if it did.
    pub last_error: Option<String>,
    /// Why the last move that failed did.
    pub last_failure: Option<String>,
}

pub struct RebalanceActor;

pub enum RebalanceMsg {
    /// Starts a pass unless one is under way.
    Kick,
    /// Starts a pass unless one is under way or the last one found nothing to do and nothing changed since.
    Tick,
    /// One page of the pass under way.
    Step,
}

/// A pass under way.
struct Pass {
    topology: Topology,
    loads: Loads,
    cursor: WalkCursor,
    /// Shared segments already planned this pass (a segment named by several records is walked once each).
    planned: HashSet<SegmentId>,
    /// Shards on leaving nodes that no usable disk could take.
    stuck: u64,
    /// Whether this pass evens out the disks' loads: only when no shard must leave a node or spread out
    /// (those moves change the loads a great deal, so a pass makes them first, and the next one evens out).
    balance: bool,
    /// Shards moved since start when the pass began.
    moved_before: u64,
    /// Whether a copy or a commit failed during the pass.
    failed: bool,
    /// Shards on leaving nodes as the pass began.
    leaving_shards: u64,
}

pub struct RebalanceState {
    ctx: NodeContext,
    pass: Option<Pass>,
    /// The topology a pass last found nothing to move in, and when.
    settled: Option<(Topology, tokio::time::Instant)>,
}

impl Actor for RebalanceActor {
    type Msg = RebalanceMsg;
    type State = RebalanceState;
    type Arguments = NodeContext;

    async fn pre_start(
        &self,
        me: ActorRef<RebalanceMsg>,
        ctx: NodeContext,
    ) -> std::result::Result<RebalanceState, ActorProcessingErr> {
        me.send_interval(REBALANCE_INTERVAL, || RebalanceMsg::Tick);
        ctx.rebalance.update(|p| p.running = false);
        Ok(RebalanceState { ctx, pass: None, settled: None })
    }

    async fn handle(
        &self,
        me: ActorRef<RebalanceMsg>,
        msg: RebalanceMsg,
        state: &mut RebalanceState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let ctx = state.ctx.clone();
        match msg {
            RebalanceMsg::Kick | RebalanceMsg::Tick if state.pass.is_some() => {}
            RebalanceMsg::Kick | RebalanceMsg::Tick => {
                let settled = match msg {
                    RebalanceMsg::Tick => state.settled.as_ref().filter(|(_, at)| at.elapsed() < SETTLED_RECHECK),
                    _ => None,
                };
                match begin(&ctx, settled.map(|(t, _)| t)).await {
                    Ok(Some(pass)) => {
                        state.pass = Some(pass);
                        me.cast(RebalanceMsg::Step)?;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "no rebalance pass now");
                        ctx.rebalance.update(|p| p.last_error = Some(format!("starting a pass: {e}")));
                    }
                }
            }
            RebalanceMsg::Step => {
                let Some(pass) = state.pass.as_mut() else { return Ok(()) };
                match step(&ctx, pass).await {
                    Ok(true) => me.cast(RebalanceMsg::Step)?,
                    Ok(false) => {
                        let Some(done) = state.pass.take() else { return Ok(()) };
                        let stuck = done.stuck;
                        // A pass that moved shards may have left the loads to even out: the next one starts now.
                        // One that found nothing to move lets the records rest until something changes.
                        // One whose moves failed is tried again at the next tick, not at once.
                        if ctx.rebalance.progress().moved_shards > done.moved_before {
                            state.settled = None;
                            me.cast(RebalanceMsg::Kick)?;
                        } else if done.failed || done.leaving_shards > 0 || !done.topology.draining.is_empty() {
                            // Nor is one that left shards on leaving nodes, or ran while a node drains: a write
                            // placed on it while the news of its draining spread must still leave it.
                            state.settled = None;
                        } else {
                            state.settled = Some((done.topology, tokio::time::Instant::now()));
                        }
                        let error = (stuck > 0).then(|| {
                            format!(
                                "{stuck} shards on draining or removed nodes have no usable disk to go to (a stripe \
                                 needs as many distinct disks as it is wide; add a node or disks)"
                            )
                        });
                        ctx.rebalance.update(|p| {
                            p.running = false;
                            p.passes += 1;
                            p.last_error = error;
                        });
                    }
                    Err(e) => {
                        // The next pass (in REBALANCE_INTERVAL) plans again from the start.
                        tracing::warn!(error = %e, "rebalance pass stopped");
                        state.pass = None;
                        ctx.rebalance.update(|p| {
                            p.running = false;
                            p.last_error = Some(e.to_string());
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Starts a pass if this node leads, there is another node to move shards to, and the topology is not the
/// one the last pass `settled` in.
async fn begin(ctx: &NodeContext, settled: Option<&Topology>) -> Result<Option<Pass>> {
    if !ctx.meta.leads().await? {
        return Ok(None);
    }
    let topology = topology(ctx).await?;
    if topology.targets.len() < 2 && topology.leaving.is_empty() || settled == Some(&topology) {
        return Ok(None);
    }
    let (loads, records, leaving_shards, needed) = census(ctx, &topology).await?;
    ctx.rebalance.update(|p| {
        p.running = true;
        p.walked = 0;
        p.records = records;
        p.leaving_shards = leaving_shards;
    });
    let balance = needed == 0;
    let moved_before = ctx.rebalance.progress().moved_shards;
    let cursor = WalkCursor::Objects(None);
    let planned = HashSet::new();
    let failed = false;
    Ok(Some(Pass { topology, loads, cursor, planned, stuck: 0, balance, moved_before, failed, leaving_shards }))
}

/// Which disks may take shards now and which nodes must give theirs up.
async fn topology(ctx: &NodeContext) -> Result<Topology> {
    let me = ctx.config.node_id;
    let metrics = ctx.meta.metrics().await?;
    let members: BTreeSet<NodeId> = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
    let (removed, draining) = ctx.meta.read(|r| Ok((r.cluster_record()?.removed(), r.draining()?))).await?;
    let leaving: BTreeSet<NodeId> = removed.union(&draining).copied().collect();
    let draining: BTreeSet<NodeId> = draining.difference(&removed).copied().collect();
    let mut disks: Vec<DiskRef> = (0..ctx.shards.len() as u32).map(|disk| DiskRef { node: me, disk }).collect();
    disks.extend(ctx.transport.remote_disks(me));
    let mut targets: BTreeMap<NodeId, Vec<DiskRef>> = BTreeMap::new();
    for d in disks {
        let usable =
            members.contains(&d.node) && !leaving.contains(&d.node) && ctx.shard(d).is_some_and(|s| !s.is_degraded());
        if usable {
            targets.entry(d.node).or_default().push(d);
        }
    }
    Ok(Topology { targets, leaving, draining })
}

/// The bytes each usable disk holds, how many records there are, how many shards are on leaving nodes, and
/// how many shards must move to leave a node or to spread a stripe out.
async fn census(ctx: &NodeContext, topology: &Topology) -> Result<(Loads, u64, u64, u64)> {
    let mut loads = Loads::empty(topology);
    let (mut records, mut leaving) = (0u64, 0u64);
    let mut needed = 0u64;
    let mut scratch = Loads::default();
    let mut shared = HashSet::new();
    let mut cursor = WalkCursor::Objects(None);
    while cursor != WalkCursor::End {
        let at = cursor.clone();
        let (page, next) = ctx.meta.read(move |r| r.holdings_after(&at, WALK_PAGE)).await?;
        records += page.len() as u64;
        for h in page {
            if h.refs > 1 && !shared.insert(h.segment.id) {
                continue;
            }
            needed += plan_segment(&h.segment, topology, &mut scratch, &|_, _, _| false, false).len() as u64;
            loads.add(&h.segment);
            leaving += topology.leaving_shards(&h.segment.layout.disks) as u64;
        }
        cursor = next;
    }
    Ok((loads, records, leaving, needed))
}

/// Plans and makes the moves of one page of the walk; `false` when the walk is over.
async fn step(ctx: &NodeContext, pass: &mut Pass) -> Result<bool> {
    if pass.cursor == WalkCursor::End {
        return Ok(false);
    }
    if !ctx.meta.leads().await? {
        return Err(ActorError::Unavailable("metadata leadership (lost during a rebalance pass)"));
    }
    let at = pass.cursor.clone();
    let (page, next) = ctx.meta.read(move |r| r.holdings_after(&at, WALK_PAGE)).await?;
    // Where a stale copy is recorded, asked of this node's state (the leader's: as fresh as any); metadata
    // refuses a move onto one all the same.
    let reader = ctx.meta.local()?;
    let stale = |segment: SegmentId, shard: u8, disk: DiskRef| reader.is_stale(segment, shard, disk).unwrap_or(true);
    ctx.rebalance.update(|p| p.walked += page.len() as u64);
    let mut planned: Vec<(Holding, Vec<PlannedMove>)> = Vec::new();
    for h in page {
        if h.refs > 1 && !pass.planned.insert(h.segment.id) {
            continue;
        }
        let moves = plan_segment(&h.segment, &pass.topology, &mut pass.loads, &stale, pass.balance);
        let leaving = pass.topology.leaving_shards(&h.segment.layout.disks);
        let leave = pass.topology.leaving_shards(moves.iter().map(|m| &m.from));
        pass.stuck += leaving.saturating_sub(leave) as u64;
        if !moves.is_empty() {
            planned.push((h, moves));
        }
    }
    // Segments shared by copies move with every record naming them.
    let shared: HashSet<SegmentId> = planned.iter().filter(|(h, _)| h.refs > 1).map(|(h, _)| h.segment.id).collect();
    let holders = ctx.meta.read(move |r| r.holders_of(&shared)).await?;
    let mut batch: Vec<(Segment, ShardMove)> = Vec::new();
    for (h, moves) in planned {
        let names = match h.refs {
            1 => vec![h.holder.clone()],
            _ => holders.get(&h.segment.id).cloned().unwrap_or_default(),
        };
        // Records that do not add up to the reference count (one changed since the page was read): metadata
        // would refuse the moves, so their copies are not made; the next pass looks again.
        if names.len() != h.refs as usize {
            pass.failed = true;
            continue;
        }
        for m in moves {
            let shard_move =
                ShardMove { segment: h.segment.id, shard: m.shard, from: m.from, to: m.to, holders: names.clone() };
            batch.push((h.segment.clone(), shard_move));
            if batch.len() == MOVES_PER_ENTRY {
                pass.failed |= !make_moves(ctx, std::mem::take(&mut batch)).await?;
            }
        }
    }
    if !batch.is_empty() {
        pass.failed |= !make_moves(ctx, batch).await?;
    }
    pass.cursor = next;
    Ok(pass.cursor != WalkCursor::End)
}

/// Copies each planned shard to its new disk, then commits the moves whose copies are whole; answers whether
/// every move was made.
async fn make_moves(ctx: &NodeContext, batch: Vec<(Segment, ShardMove)>) -> Result<bool> {
    use futures::StreamExt;
    let copies = futures::stream::iter(batch)
        .map(|(segment, m)| async move {
            let r = copy_shard(ctx, &segment, m.shard, m.to).await;
            (segment, m, r)
        })
        .buffered(COPIES_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut moves = Vec::new();
    let mut bytes = Vec::new();
    let mut failed = 0;
    for (segment, m, r) in copies {
        match r {
            Ok(()) => {
                bytes.push(shard_bytes(&segment));
                moves.push(m);
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(segment = %segment.id, shard = m.shard, to = ?m.to, error = %e, "shard copy failed");
                let why = format!(
                    "copying shard {} of segment {} to node {} disk {}: {e}",
                    m.shard, segment.id, m.to.node, m.to.disk
                );
                ctx.rebalance.update(|p| p.last_failure = Some(why));
            }
        }
    }
    ctx.rebalance.update(|p| p.failed_moves += failed);
    if moves.is_empty() {
        return Ok(failed == 0);
    }
    faults::hit(ctx.faults.as_ref(), "rebalance.commit").await?;
    let cmd = MetaCommand::MoveShards { moves, now_ms: ctx.env.now_ms() };
    match ctx.meta.write(cmd).await? {
        MetaResponse::Moved { moved } => {
            let made: Vec<u64> = moved.iter().zip(&bytes).filter(|(m, _)| **m).map(|(_, b)| *b).collect();
            let refused = moved.len() - made.len();
            if refused > 0 {
                tracing::info!(refused, "shard moves no longer held (records changed meanwhile)");
            }
            ctx.rebalance.update(|p| {
                p.moved_shards += made.len() as u64;
                p.moved_bytes += made.iter().sum::<u64>();
            });
            Ok(failed == 0 && refused == 0)
        }
        other => Err(ActorError::Refused(other)),
    }
}

/// Writes shard `index` of `segment` whole to `to`: each piece read from where the shard is now, or rebuilt
/// from the other shards when that read fails.
pub async fn copy_shard(ctx: &NodeContext, segment: &Segment, index: u8, to: DiskRef) -> Result<()> {
    let layout = &segment.layout;
    let from = *layout.disks.get(index as usize).ok_or(ActorError::Invalid("shard index out of layout".into()))?;
    let header = ShardHeader::for_layout(segment.id, index, layout);
    let target = ctx.shard(to).ok_or(ActorError::Unavailable("the disk a shard moves to"))?;
    let source = ctx.shard(from);
    let stage = |what: &'static str| move |e: ActorError| ActorError::Invalid(format!("{what}: {e}"));
    let mut writer = target.create(header).await.map_err(stage("create"))?;
    for block in 0..shard_file::block_count(segment.size, layout.block_size) {
        let block_len = shard_file::block_len(segment.size, layout.block_size, block);
        let read = match &source {
            Some(s) => s.read_piece(header, block, block_len, crate::get::PIECE_READ_DEADLINE).await,
            None => Err(ActorError::Unavailable("the disk a shard moves from")),
        };
        let piece = match read {
            Ok(p) => p,
            Err(_) => {
                let pieces = crate::repair::read_pieces(ctx, segment, block, block_len, &[index].into()).await;
                let all = ctx.ec.reconstruct_all(layout.data, layout.parity, pieces).await?;
                let piece = all.into_iter().nth(index as usize);
                Bytes::from(piece.ok_or(ActorError::Invalid("reconstruction lost a piece".into()))?)
            }
        };
        writer.append(vec![piece]).await.map_err(stage("append"))?;
    }
    writer.commit().await.map_err(stage("commit"))
}

#[derive(Clone)]
pub struct RebalanceHandle {
    pub slot: Slot<RebalanceMsg>,
    progress: Arc<Mutex<RebalanceProgress>>,
}

impl Default for RebalanceHandle {
    fn default() -> Self {
        RebalanceHandle { slot: Slot::new("rebalance"), progress: Arc::default() }
    }
}

impl RebalanceHandle {
    /// Asks for a pass now (a node joined, or one is to be drained).
    pub fn kick(&self) -> Result<()> {
        self.slot.cast(RebalanceMsg::Kick)
    }

    /// What this node's rebalancing has done.
    pub fn progress(&self) -> RebalanceProgress {
        self.progress.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut RebalanceProgress)) {
        change(&mut self.progress.lock().unwrap_or_else(|p| p.into_inner()));
    }
}
