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
/// Disks within this fraction of the mean load (in 1/100) count as even.
pub const EVEN_WITHIN_PERCENT: u64 = 5;

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

/// Whether this node leads the metadata group.
async fn leads(ctx: &NodeContext) -> Result<bool> {
    Ok(ctx.meta.metrics().await?.current_leader == Some(ctx.config.node_id))
}

/// Starts a pass if this node leads, there is another node to move shards to, and the topology is not the
/// one the last pass `settled` in.
async fn begin(ctx: &NodeContext, settled: Option<&Topology>) -> Result<Option<Pass>> {
    if !leads(ctx).await? {
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
    let mut loads = Loads::default();
    for d in topology.targets.values().flatten() {
        loads.bytes.insert(*d, 0);
    }
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
            let bytes = shard_bytes(&h.segment);
            for d in &h.segment.layout.disks {
                if let Some(load) = loads.bytes.get_mut(d) {
                    *load += bytes;
                }
                if topology.leaving.contains(&d.node) {
                    leaving += 1;
                }
            }
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
    if !leads(ctx).await? {
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
        let leaving = h.segment.layout.disks.iter().filter(|d| pass.topology.leaving.contains(&d.node)).count();
        let leave = moves.iter().filter(|m| pass.topology.leaving.contains(&m.from.node)).count();
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
                all.into_iter().nth(index as usize).ok_or(ActorError::Invalid("reconstruction lost a piece".into()))?
            }
        };
        writer.append(Bytes::from(piece)).await.map_err(stage("append"))?;
    }
    writer.commit().await.map_err(stage("commit"))
}

/// Bytes of one shard file of `segment` (near enough: the planner compares them).
fn shard_bytes(segment: &Segment) -> u64 {
    segment.size.div_ceil(u64::from(segment.layout.data.max(1)))
}

/// Where shards may go: the usable disks of each node (up, member, not degraded, not leaving), and the nodes
/// whose shards must leave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub targets: BTreeMap<NodeId, Vec<DiskRef>>,
    /// Draining and removed nodes.
    pub leaving: BTreeSet<NodeId>,
    /// Of those, the draining ones (not removed yet).
    pub draining: BTreeSet<NodeId>,
}

/// Bytes held by each usable disk, as the pass goes.
#[derive(Debug, Clone, Default)]
pub struct Loads {
    pub bytes: BTreeMap<DiskRef, u64>,
}

impl Loads {
    fn mean(&self) -> u64 {
        self.bytes.values().sum::<u64>() / (self.bytes.len().max(1) as u64)
    }

    fn shift(&mut self, from: DiskRef, to: DiskRef, bytes: u64) {
        if let Some(l) = self.bytes.get_mut(&from) {
            *l = l.saturating_sub(bytes);
        }
        *self.bytes.entry(to).or_default() += bytes;
    }
}

/// One shard to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedMove {
    pub shard: u8,
    pub from: DiskRef,
    pub to: DiskRef,
}

/// The moves that make one segment's placement better, recorded in `loads` as planned:
/// - every shard on a leaving node goes to a usable disk the segment does not use yet, on the node with the
///   fewest of its shards (then the emptiest disk);
/// - while a usable node holds two more of its shards than another usable node, one goes from the first to
///   the emptiest free disk of the second (the spread a new write gets: as many nodes as there are);
/// - then, with `balance` (a pass plans either the moves above, or, when there are none anywhere, these),
///   while a shard on a usable disk can go to a usable disk that holds less by more than two shards'
///   bytes and than [`EVEN_WITHIN_PERCENT`] of the mean, without leaving the segment on fewer nodes (the
///   target node holds fewer of its shards than the source node, or it is the same node), the move with the
///   largest difference is made.
///
/// A shard never moves onto a disk the segment already uses, nor where a stale copy of it is still recorded.
pub fn plan_segment(
    segment: &Segment,
    topology: &Topology,
    loads: &mut Loads,
    stale: &dyn Fn(SegmentId, u8, DiskRef) -> bool,
    balance: bool,
) -> Vec<PlannedMove> {
    let mut disks = segment.layout.disks.clone();
    let bytes = shard_bytes(segment);
    let on_node = |disks: &[DiskRef], node: NodeId| disks.iter().filter(|d| d.node == node).count();
    let free = |disks: &[DiskRef], shard: u8, d: &DiskRef| !disks.contains(d) && !stale(segment.id, shard, *d);
    let mut moves = Vec::new();
    for shard in 0..disks.len() {
        let from = disks[shard];
        if !topology.leaving.contains(&from.node) {
            continue;
        }
        let to = topology
            .targets
            .values()
            .flatten()
            .filter(|d| free(&disks, shard as u8, d))
            .min_by_key(|d| (on_node(&disks, d.node), loads.bytes.get(d).copied().unwrap_or(0), **d))
            .copied();
        if let Some(to) = to {
            loads.shift(from, to, bytes);
            disks[shard] = to;
            moves.push(PlannedMove { shard: shard as u8, from, to });
        }
    }
    // Spread as a new write is: no usable node holds two more of the segment's shards than another.
    let nodes: Vec<NodeId> = topology.targets.keys().copied().collect();
    for _ in 0..disks.len() {
        let most = nodes.iter().copied().max_by_key(|n| (on_node(&disks, *n), std::cmp::Reverse(*n)));
        let fewest = nodes.iter().copied().min_by_key(|n| (on_node(&disks, *n), *n));
        let (Some(most), Some(fewest)) = (most, fewest) else { break };
        if on_node(&disks, most) < on_node(&disks, fewest) + 2 {
            break;
        }
        let load = |d: &DiskRef| loads.bytes.get(d).copied().unwrap_or(0);
        let from = (0..disks.len()).filter(|i| disks[*i].node == most).max_by_key(|i| (load(&disks[*i]), *i));
        let Some(shard) = from else { break };
        let to = topology.targets.get(&fewest).into_iter().flatten().filter(|d| free(&disks, shard as u8, d));
        let Some(to) = to.min_by_key(|d| (load(d), **d)).copied() else { break };
        let from = disks[shard];
        loads.shift(from, to, bytes);
        disks[shard] = to;
        moves.push(PlannedMove { shard: shard as u8, from, to });
    }
    if !balance {
        return moves;
    }
    let margin = (2 * bytes).max(loads.mean() * EVEN_WITHIN_PERCENT / 100);
    for _ in 0..disks.len() {
        let mut best: Option<(u64, usize, DiskRef)> = None;
        for shard in 0..disks.len() {
            let from = disks[shard];
            let Some(&held) = loads.bytes.get(&from) else { continue };
            for to in topology.targets.values().flatten().filter(|d| free(&disks, shard as u8, d)) {
                let spread = to.node == from.node || on_node(&disks, to.node) < on_node(&disks, from.node);
                let gap = held.saturating_sub(loads.bytes.get(to).copied().unwrap_or(0));
                if spread && gap > margin && best.is_none_or(|(g, _, _)| gap > g) {
                    best = Some((gap, shard, *to));
                }
            }
        }
        let Some((_, shard, to)) = best else { break };
        let from = disks[shard];
        loads.shift(from, to, bytes);
        disks[shard] = to;
        moves.push(PlannedMove { shard: shard as u8, from, to });
    }
    moves
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

#[cfg(test)]
mod tests {
    use hoard_protocol::ShardLayout;

    use super::*;

    fn d(node: NodeId, disk: u32) -> DiskRef {
        DiskRef { node, disk }
    }

    fn segment(id: u128, disks: Vec<DiskRef>) -> Segment {
        Segment {
            id: SegmentId(id),
            part_number: 0,
            size: 4 << 20,
            layout: ShardLayout { data: 4, parity: 2, block_size: 1 << 20, disks },
            seal: None,
        }
    }

    fn topology(nodes: &[NodeId], leaving: &[NodeId]) -> Topology {
        Topology {
            targets: nodes.iter().map(|n| (*n, vec![d(*n, 0), d(*n, 1)])).collect(),
            leaving: leaving.iter().copied().collect(),
            draining: leaving.iter().copied().collect(),
        }
    }

    /// One pass, as the actor makes it: plans every segment in turn and applies the moves; answers the moves
    /// made. It balances loads only when no segment needs a move to spread out or leave a node.
    fn pass(segments: &mut [Segment], topology: &Topology) -> usize {
        let mut scratch = Loads::default();
        let needed: usize =
            segments.iter().map(|s| plan_segment(s, topology, &mut scratch, &|_, _, _| false, false).len()).sum();
        let mut loads = loads_of(segments, topology);
        let mut made = 0;
        for s in segments.iter_mut() {
            for m in plan_segment(s, topology, &mut loads, &|_, _, _| false, needed == 0) {
                assert_eq!(s.layout.disks[m.shard as usize], m.from);
                assert!(!s.layout.disks.contains(&m.to), "a shard never joins another of its segment");
                s.layout.disks[m.shard as usize] = m.to;
                made += 1;
            }
        }
        made
    }

    /// Passes until one moves nothing; answers how many moved something.
    fn run(segments: &mut [Segment], topology: &Topology) -> usize {
        let mut passes = 0;
        while pass(segments, topology) > 0 {
            passes += 1;
            assert!(passes <= 3, "rebalancing does not settle");
        }
        passes
    }

    fn loads_of(segments: &[Segment], topology: &Topology) -> Loads {
        let mut loads = Loads::default();
        for disk in topology.targets.values().flatten() {
            loads.bytes.insert(*disk, 0);
        }
        for s in segments {
            for disk in &s.layout.disks {
                if let Some(l) = loads.bytes.get_mut(disk) {
                    *l += shard_bytes(s);
                }
            }
        }
        loads
    }

    /// 300 segments of 4+2 on three nodes with two disks each: each node holds two shards of each.
    fn three_node_store() -> Vec<Segment> {
        let disks: Vec<DiskRef> = (1..=3).flat_map(|n| [d(n, 0), d(n, 1)]).collect();
        (0..300).map(|i| segment(i, disks.clone())).collect()
    }

    #[test]
    fn a_joined_node_gets_its_share_and_a_second_pass_moves_nothing() {
        let mut segments = three_node_store();
        let four = topology(&[1, 2, 3, 4], &[]);
        assert_eq!(run(&mut segments, &four), 2, "one pass spreads the stripes, one evens the disks out");
        let loads = loads_of(&segments, &four);
        let (min, max) = (loads.bytes.values().min().copied(), loads.bytes.values().max().copied());
        let (min, max) = (min.unwrap_or(0), max.unwrap_or(0));
        let mean = loads.mean();
        assert!(max - min <= mean / 10 + 2 * shard_bytes(&segments[0]), "uneven: {loads:?}");
        for s in &segments {
            let nodes: BTreeSet<NodeId> = s.layout.disks.iter().map(|d| d.node).collect();
            assert!(nodes.len() >= 3, "a segment stays spread over at least as many nodes: {:?}", s.layout.disks);
        }
        assert_eq!(pass(&mut segments, &four), 0, "an even store stays as it is");
    }

    #[test]
    fn a_draining_node_is_emptied_onto_the_others() {
        let mut segments = three_node_store();
        // Node 4 joined and was filled; now node 2 leaves.
        let four = topology(&[1, 2, 3, 4], &[]);
        run(&mut segments, &four);
        let without_two = topology(&[1, 3, 4], &[2]);
        run(&mut segments, &without_two);
        for s in &segments {
            assert!(s.layout.disks.iter().all(|d| d.node != 2), "{:?}", s.layout.disks);
            let distinct: BTreeSet<&DiskRef> = s.layout.disks.iter().collect();
            assert_eq!(distinct.len(), 6);
        }
    }

    #[test]
    fn a_stripe_written_on_one_node_is_spread_over_the_nodes_that_join() {
        let mut segments = vec![segment(1, (0..6).map(|i| d(1, i)).collect())];
        let mut topo = topology(&[2, 3], &[]);
        topo.targets.insert(1, (0..6).map(|i| d(1, i)).collect());
        run(&mut segments, &topo);
        let per_node: BTreeMap<NodeId, usize> = segments[0].layout.disks.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(d.node).or_default() += 1;
            m
        });
        assert_eq!(per_node, [(1, 2), (2, 2), (3, 2)].into(), "{:?}", segments[0].layout.disks);
    }

    #[test]
    fn a_shard_never_moves_onto_its_own_stale_copy_and_waits_when_no_disk_is_free() {
        let s = segment(1, vec![d(1, 0), d(1, 1), d(2, 0), d(2, 1), d(3, 0), d(3, 1)]);
        // Node 3 leaves, and only node 4's disk 0 is usable; shard 4's stale copy is there.
        let topo = Topology { targets: [(4, vec![d(4, 0)])].into(), leaving: [3].into(), draining: [3].into() };
        let stale = |segment, shard, disk| (segment, shard, disk) == (SegmentId(1), 4, d(4, 0));
        let moves = plan_segment(&s, &topo, &mut Loads::default(), &stale, true);
        assert_eq!(moves, vec![PlannedMove { shard: 5, from: d(3, 1), to: d(4, 0) }]);
    }
}
