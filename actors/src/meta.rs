//! The metadata actor: one openraft node whose log and state machine live in fjall.
//!
//! Invariants:
//! - The Raft log entry of a `CommitObject`/`CompleteUpload` is the only commit point of an object.
//! - Reads through [`MetaHandle::read`] are linearizable: they wait for a Raft read-index confirmation
//!   and for the local state machine to apply up to it, except on the one voter of a group, whose own
//!   state already is such a view ([`Live::reads_here`]).
//! - Writes and read barriers do not pass through the actor's mailbox: each incarnation publishes its Raft
//!   instance in the handle ([`Live`]) and a caller proposes or confirms on it from its own task: a small
//!   PUT pays no mailbox hop and no extra task. openraft fsyncs each entry before it takes the next, so
//!   concurrent writes are grouped into one entry here ([`MetaHandle::write`]). The actor owns the
//!   instance: it starts it, shuts the previous one down first, and withdraws it when it stops, after which
//!   calls fail at once with `Unavailable`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use hoard_protocol::MembershipChange;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::NodeId;
use hoard_protocol::MAX_BATCH_COMMANDS;
use hoard_storage::meta;
use hoard_storage::meta::LogStore;
use hoard_storage::meta::MetaNetwork;
use hoard_storage::meta::MetaReader;
use hoard_storage::meta::Raft;
use hoard_storage::meta::StateMachineStore;
use hoard_storage::meta::TypeConfig;
use openraft::error::CheckIsLeaderError;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use openraft::raft::ClientWriteResponse;
use openraft::ChangeMembers;
use openraft::LogId;
use openraft::ServerState;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use ractor::RpcReplyPort;

use crate::error::ActorError;
use crate::error::Result;
use crate::slot::Slot;

/// Deadline of one metadata write or linearizable read barrier.
pub const META_DEADLINE: Duration = Duration::from_secs(30);
/// How long a starting node waits for its group to have a leader.
pub const META_START_DEADLINE: Duration = Duration::from_secs(30);
/// How long shutdown waits for the last handle to the metadata store (a request finishing) to go.
pub const STORE_CLOSE_DEADLINE: Duration = Duration::from_secs(10);

pub struct MetaActor;

/// Where and how a node's metadata Raft runs.
#[derive(Clone)]
pub struct MetaSetup {
    pub dir: PathBuf,
    pub node_id: NodeId,
    pub addr: String,
    /// The group's members when it is first formed; empty: this node alone. The member with the lowest id
    /// forms it.
    pub members: BTreeMap<NodeId, NodeAddr>,
    pub network: MetaNetwork,
    /// How this node reaches the leader when it does not lead.
    pub forward: Arc<dyn Forward>,
}

impl MetaSetup {
    /// A one-node group in `dir`.
    pub fn alone(dir: PathBuf, node_id: NodeId, addr: String) -> MetaSetup {
        let network = MetaNetwork::LocalOnly;
        let forward = Arc::new(InProcessForward(network.clone()));
        MetaSetup { dir, node_id, addr, members: BTreeMap::new(), network, forward }
    }
}

pub struct MetaArgs {
    pub setup: MetaSetup,
    /// Where the running incarnation publishes its Raft instance for callers.
    pub live: Arc<RwLock<Option<Arc<Live>>>>,
    /// Shared with the handle, so readers see the current store after a restart.
    pub reader: Arc<RwLock<Option<MetaReader>>>,
    /// The Raft instance of the previous incarnation, shut down before a new one starts.
    pub raft: Arc<tokio::sync::Mutex<Option<Raft>>>,
    /// The opened stores, shared by every incarnation.
    pub stores: Stores,
}

/// The node's opened metadata stores (log, state machine, reader), once opened.
pub type Stores = Arc<tokio::sync::Mutex<Option<(LogStore, StateMachineStore, MetaReader)>>>;

/// A running incarnation's Raft instance, what callers need to propose on it, and its state machine's reader.
pub struct Live {
    node_id: NodeId,
    forward: Arc<dyn Forward>,
    raft: Raft,
    reader: MetaReader,
}

impl Live {
    /// Whether this node's state machine is a linearizable view as it stands, without a read barrier: the node
    /// leads a group whose one voter it is, and it has applied an entry of its own term.
    ///
    /// Why that is enough: with one voter, only this node commits, and it answers a write only once it has
    /// applied it; an entry of its own term applied means everything committed before it came to lead is
    /// applied too (after a restart, say). So every write answered before the read began is in the state
    /// machine. Another node could commit only under a configuration with another voter, and every membership
    /// change passes a joint configuration holding both the old voters and the new, which is written to this
    /// node's log before it can reach another node: from then on `one_voter_since_open` is false, while
    /// Raft's metrics may still show the old configuration for a moment, and reads take the barrier.
    fn reads_here(&self) -> bool {
        if !self.reader.one_voter_since_open() {
            return false;
        }
        let m = self.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        m.running_state.is_ok()
            && m.state == ServerState::Leader
            && m.current_leader == Some(self.node_id)
            && membership.get_joint_config().len() == 1
            && membership.voter_ids().eq([self.node_id])
            && m.vote.is_committed()
            && m.last_applied.is_some_and(|applied| applied.leader_id == *m.vote.leader_id())
    }
}

pub struct MetaState {
    live: Arc<Live>,
    published: Arc<RwLock<Option<Arc<Live>>>>,
}

pub enum MetaMsg {
    Metrics(RpcReplyPort<openraft::RaftMetrics<NodeId, NodeAddr>>),
    /// Changes the group's membership at the leader and waits until this node has applied the change.
    ChangeMembership(MembershipChange, RpcReplyPort<Result<()>>),
}

fn raft_config() -> Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "hoard".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        // Snapshots are asked for by the metrics watcher when the log has grown as large as the last one
        // (`MetaReader::snapshot_due`), not every so many entries: each copies the whole state.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 1000,
        // openraft gives each AppendEntries one heartbeat interval to be answered. A follower catching up gets
        // batches of at most this many entries (an entry holds up to an inline object, 32 KiB): 300, the
        // default, made batches of up to ~10 MiB that never went through in 250 ms, and a node returning after a
        // partition never caught up.
        max_payload_entries: 16,
        snapshot_max_chunk_size: 1 << 20,
        install_snapshot_timeout: 2000,
        ..Default::default()
    };
    Ok(Arc::new(config.validate().map_err(|e| ActorError::Meta(e.to_string()))?))
}

impl Actor for MetaActor {
    type Msg = MetaMsg;
    type State = MetaState;
    type Arguments = MetaArgs;

    async fn pre_start(
        &self,
        me: ActorRef<MetaMsg>,
        args: MetaArgs,
    ) -> std::result::Result<MetaState, ActorProcessingErr> {
        let mut previous = args.raft.lock().await;
        // Callers stop proposing on the previous instance before it is shut down: they get `Unavailable`.
        *args.live.write().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(old) = previous.take() {
            let _ = old.shutdown().await;
        }
        // The database is opened once per node and kept across restarts of this actor: a new Raft
        // instance starts from the same durable log and state machine, as it would after reopening them.
        let mut stores = args.stores.lock().await;
        let (log, sm, reader) = match stores.as_ref() {
            Some(open) => open.clone(),
            None => {
                let opened = meta::open(&args.setup.dir)?;
                *stores = Some(opened.clone());
                opened
            }
        };
        drop(stores);
        let setup = &args.setup;
        let initialized = log.is_initialized()?;
        let raft = Raft::new(setup.node_id, raft_config()?, setup.network.clone(), log, sm).await?;
        // Kept at once, so that if this start fails below, the next one shuts this instance down first:
        // two Raft cores on one log must never run together.
        *previous = Some(raft.clone());
        // Released before waiting for a leader: peers' votes reach this Raft through the same handle.
        drop(previous);
        if let MetaNetwork::InProcess(endpoint) = &setup.network {
            endpoint.join(raft.clone());
        }
        if !initialized {
            let mut members = setup.members.clone();
            if members.is_empty() {
                members.insert(setup.node_id, NodeAddr { addr: setup.addr.clone() });
            }
            if members.keys().next() == Some(&setup.node_id) {
                raft.initialize(members).await?;
            }
        }
        raft.wait(Some(META_START_DEADLINE))
            .metrics(|m| m.current_leader.is_some(), "a leader of the metadata group")
            .await?;
        *args.reader.write().unwrap_or_else(|p| p.into_inner()) = Some(reader.clone());
        // A Raft instance that hit a fatal error (a failed log fsync, say) answers every request with an
        // error for ever: stop this actor instead, so that meta_sup restarts it on a fresh instance, or
        // gives up and takes the node down if it keeps failing.
        //
        // It also asks for a snapshot whenever one is due, once per snapshot taken. It reaches Raft and the store
        // through the published instance only, never holding either: the store must close once the node stops.
        let mut metrics = raft.metrics();
        let published = args.live.clone();
        tokio::spawn(async move {
            let mut asked = None;
            while metrics.changed().await.is_ok() {
                let fatal = metrics.borrow().running_state.clone().err();
                if let Some(fatal) = fatal {
                    if matches!(fatal, openraft::error::Fatal::Stopped) {
                        // Shut down on purpose (the node is stopping, or this actor is being replaced).
                        tracing::debug!("metadata Raft shut down");
                        break;
                    }
                    tracing::error!(error = %fatal, "metadata Raft stopped");
                    me.stop(Some(format!("raft: {fatal}")));
                    break;
                }
                let live = published.read().unwrap_or_else(|p| p.into_inner()).clone();
                let Some(live) = live else { continue };
                if let Some(mark) = live.reader.snapshot_due().filter(|mark| asked != Some(*mark)) {
                    asked = Some(mark);
                    if let Err(e) = live.raft.trigger().snapshot().await {
                        tracing::warn!(error = %e, "could not ask for a metadata snapshot");
                    }
                }
            }
        });
        let live = Arc::new(Live { node_id: args.setup.node_id, forward: args.setup.forward.clone(), raft, reader });
        *args.live.write().unwrap_or_else(|p| p.into_inner()) = Some(live.clone());
        Ok(MetaState { live, published: args.live })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<MetaMsg>,
        state: &mut MetaState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let mut published = state.published.write().unwrap_or_else(|p| p.into_inner());
        if published.as_ref().is_some_and(|l| Arc::ptr_eq(l, &state.live)) {
            *published = None;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<MetaMsg>,
        msg: MetaMsg,
        state: &mut MetaState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        let Live { node_id, forward, raft, .. } = &*state.live;
        match msg {
            MetaMsg::Metrics(reply) => {
                let _ = reply.send(raft.metrics().borrow().clone());
            }
            MetaMsg::ChangeMembership(change, reply) => {
                let (raft, forward, me) = (raft.clone(), forward.clone(), *node_id);
                tokio::spawn(async move {
                    let _ = reply.send(change_membership(&raft, &forward, me, change).await);
                });
            }
        }
        Ok(())
    }
}

fn meta_err(e: impl std::fmt::Display) -> ActorError {
    ActorError::Meta(e.to_string())
}

/// Why a call forwarded to the leader gave no answer.
#[derive(Debug)]
pub enum ForwardError {
    /// The node asked does not lead (it may know who does). Nothing was appended to its log: openraft
    /// answers so only before appending, or after dropping an entry that was never committed.
    NotLeader,
    /// The leader could not be asked, or did not answer: for a write, it may or may not have been appended.
    Unreachable(ActorError),
    /// No connection to the leader could be made (or it is known to be down): nothing was sent, so the call
    /// may be made again, to whichever node leads by then.
    NotSent(ActorError),
    /// The leader answered with an error.
    Failed(ActorError),
}

/// The future of a forwarded call.
pub type ForwardFuture<T> = Pin<Box<dyn Future<Output = std::result::Result<T, ForwardError>> + Send>>;

/// How a follower reaches the leader's Raft: directly in one process, over gRPC between processes.
pub trait Forward: Send + Sync + 'static {
    /// Proposes `cmd` at `leader`: the index it was committed at and the state machine's answer.
    fn write(&self, leader: NodeId, addr: &NodeAddr, cmd: MetaCommand) -> ForwardFuture<(u64, MetaResponse)>;
    /// A read index confirmed by `leader`.
    fn read_index(&self, leader: NodeId, addr: &NodeAddr) -> ForwardFuture<Option<u64>>;
    /// Changes the membership at `leader`: the index the change was committed at.
    fn membership(&self, leader: NodeId, addr: &NodeAddr, change: MembershipChange) -> ForwardFuture<u64>;
}

/// Makes `change` at this node, which must lead: the index it was committed at.
pub async fn apply_change(raft: &Raft, change: MembershipChange) -> std::result::Result<u64, ForwardError> {
    let nodes = |node: NodeId, addr: String| BTreeMap::from([(node, NodeAddr { addr })]);
    let r = match change {
        MembershipChange::AddLearner { node, addr } => raft.add_learner(node, NodeAddr { addr }, false).await,
        MembershipChange::Promote(voters) => raft.change_membership(ChangeMembers::AddVoterIds(voters), true).await,
        MembershipChange::SetVoters(voters) => {
            raft.change_membership(ChangeMembers::ReplaceAllVoters(voters), true).await
        }
        MembershipChange::SetAddr { node, addr } => {
            raft.change_membership(ChangeMembers::SetNodes(nodes(node, addr)), true).await
        }
        MembershipChange::Remove(node) => {
            let voter = raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == node);
            let gone = BTreeSet::from([node]);
            if voter {
                raft.change_membership(ChangeMembers::RemoveVoters(gone), false).await
            } else {
                raft.change_membership(ChangeMembers::RemoveNodes(gone), false).await
            }
        }
    };
    write_outcome(r).map(|(index, _)| index)
}

/// The outcome of a client write at a Raft node, as a forwarded call reports it.
pub fn write_outcome(
    r: std::result::Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, NodeAddr>>>,
) -> std::result::Result<(u64, MetaResponse), ForwardError> {
    match r {
        Ok(w) => Ok((w.log_id.index, w.data)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(ForwardError::NotLeader),
        Err(e) => Err(ForwardError::Failed(meta_err(e))),
    }
}

/// What `Raft::ensure_linearizable` answers.
pub type ReadIndexResult =
    std::result::Result<Option<LogId<NodeId>>, RaftError<NodeId, CheckIsLeaderError<NodeId, NodeAddr>>>;

/// The outcome of a read-index confirmation at a Raft node.
fn read_outcome(r: ReadIndexResult) -> std::result::Result<Option<u64>, ForwardError> {
    match r {
        Ok(id) => Ok(id.map(|id| id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(ForwardError::NotLeader),
        Err(e) => Err(ForwardError::Failed(meta_err(e))),
    }
}

/// Times a leader asks its followers again to confirm a read index when too few of them answered in time.
const READ_CONFIRM_ATTEMPTS: usize = 3;

/// Confirms a read index at this node (`Raft::ensure_linearizable`). When too few followers answered in time
/// (one slow under load misses the heartbeat's deadline) it asks again after a pause, up to
/// [`READ_CONFIRM_ATTEMPTS`] times in all: a read has no effect that could happen twice, and a quorum that is
/// really gone still fails within a second.
pub async fn confirm_read(raft: &Raft) -> std::result::Result<Option<u64>, ForwardError> {
    let mut attempt = 1;
    loop {
        match raft.ensure_linearizable().await {
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) if attempt < READ_CONFIRM_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "too few followers confirmed a read index; asking again");
                attempt += 1;
                tokio::time::sleep(crate::transport::policy::RETRY_PAUSE).await;
            }
            r => return read_outcome(r),
        }
    }
}

/// Forwarding inside one process: a direct call on the leader's Raft, where the network reaches it.
pub struct InProcessForward(pub MetaNetwork);

impl InProcessForward {
    fn leader(&self, leader: NodeId) -> std::result::Result<Raft, ForwardError> {
        self.0.peer(leader).ok_or(ForwardError::NotSent(ActorError::Unavailable("metadata leader")))
    }
}

impl Forward for InProcessForward {
    fn write(&self, leader: NodeId, _addr: &NodeAddr, cmd: MetaCommand) -> ForwardFuture<(u64, MetaResponse)> {
        let raft = self.leader(leader);
        Box::pin(async move { write_outcome(raft?.client_write(cmd).await) })
    }

    fn read_index(&self, leader: NodeId, _addr: &NodeAddr) -> ForwardFuture<Option<u64>> {
        let raft = self.leader(leader);
        Box::pin(async move { confirm_read(&raft?).await })
    }

    fn membership(&self, leader: NodeId, _addr: &NodeAddr, change: MembershipChange) -> ForwardFuture<u64> {
        let raft = self.leader(leader);
        Box::pin(async move { apply_change(&raft?, change).await })
    }
}

/// The leader this node knows and its address, waiting (until `deadline`) while there is none.
async fn known_leader(raft: &Raft, deadline: tokio::time::Instant) -> Result<(NodeId, NodeAddr)> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let metrics = raft
        .wait(Some(left))
        .metrics(|m| m.current_leader.is_some(), "a leader of the metadata group")
        .await
        .map_err(|_| ActorError::Timeout("metadata leader election"))?;
    let leader = metrics.current_leader.ok_or(ActorError::Timeout("metadata leader election"))?;
    let addr = metrics.membership_config.membership().get_node(&leader).cloned().unwrap_or_default();
    Ok((leader, addr))
}

/// Waits until this node has applied the log up to `index`.
async fn applied_here(raft: &Raft, index: Option<u64>, what: &str) -> Result<()> {
    raft.wait(Some(META_DEADLINE)).applied_index_at_least(index, what).await.map(|_| ()).map_err(meta_err)
}

/// Runs `call` at the leader (this node or another), again at the new leader each time the one asked
/// answers that it does not lead (nothing was appended then) or could not be sent the call at all, until
/// [`META_DEADLINE`]. `retry_unreachable`:
/// also try again when the leader could not be asked (only for calls that are safe to repeat).
async fn at_leader<T>(
    raft: &Raft,
    me: NodeId,
    retry_unreachable: bool,
    mut call: impl FnMut(NodeId, &NodeAddr) -> ForwardFuture<T>,
) -> Result<(NodeId, T)> {
    let deadline = tokio::time::Instant::now() + META_DEADLINE;
    loop {
        let (leader, addr) = known_leader(raft, deadline).await?;
        let outcome = tokio::time::timeout_at(deadline, call(leader, &addr))
            .await
            .map_err(|_| ActorError::Timeout(if leader == me { "metadata" } else { "metadata leader" }))?;
        let retry = match outcome {
            Ok(v) => return Ok((leader, v)),
            Err(ForwardError::NotLeader) => ActorError::Meta(format!("node {leader} no longer leads")),
            Err(ForwardError::NotSent(e)) => e,
            Err(ForwardError::Unreachable(e)) if retry_unreachable => e,
            Err(ForwardError::Unreachable(e) | ForwardError::Failed(e)) => return Err(e),
        };
        if tokio::time::Instant::now() + crate::transport::policy::RETRY_PAUSE >= deadline {
            return Err(retry);
        }
        tracing::debug!(leader, error = %retry, "metadata leader changed; asking again");
        tokio::time::sleep(crate::transport::policy::RETRY_PAUSE).await;
    }
}

/// Proposes `cmd` at the leader (here or forwarded), and then waits until this node has applied it, so that
/// what the caller reads here next includes it. A leader change on the way is retried, never surfaced.
async fn write(raft: &Raft, forward: &Arc<dyn Forward>, me: NodeId, cmd: MetaCommand) -> Result<MetaResponse> {
    let (leader, (index, response)) = at_leader(raft, me, false, |leader, addr| {
        if leader == me {
            let (raft, cmd) = (raft.clone(), cmd.clone());
            Box::pin(async move { write_outcome(raft.client_write(cmd).await) })
        } else {
            forward.write(leader, addr, cmd.clone())
        }
    })
    .await?;
    if leader != me {
        applied_here(raft, Some(index), "apply a write made at the leader").await?;
    }
    Ok(response)
}

/// Changes the membership at the leader (here or forwarded) and waits until this node has applied it. Only a
/// "not leader" answer is retried: a change that may have been made is not made twice.
async fn change_membership(
    raft: &Raft,
    forward: &Arc<dyn Forward>,
    me: NodeId,
    change: MembershipChange,
) -> Result<()> {
    let (_, index) = at_leader(raft, me, false, |leader, addr| {
        if leader == me {
            let (raft, change) = (raft.clone(), change.clone());
            Box::pin(async move { apply_change(&raft, change).await })
        } else {
            forward.membership(leader, addr, change.clone())
        }
    })
    .await?;
    applied_here(raft, Some(index), "apply a membership change").await
}

/// Confirms a read index with the leader (here or forwarded) and waits until this node has applied up to it.
async fn read_barrier(raft: &Raft, forward: &Arc<dyn Forward>, me: NodeId) -> Result<()> {
    let (leader, index) = at_leader(raft, me, true, |leader, addr| {
        if leader == me {
            let raft = raft.clone();
            Box::pin(async move { confirm_read(&raft).await })
        } else {
            forward.read_index(leader, addr)
        }
    })
    .await?;
    if leader != me {
        applied_here(raft, index, "apply up to the leader's read index").await?;
    }
    Ok(())
}

/// A write waiting for its round, and where its answer goes.
type Waiting = (MetaCommand, tokio::sync::oneshot::Sender<Result<MetaResponse>>);

/// Writes waiting to be proposed together (group commit).
#[derive(Default)]
pub struct Pending {
    queue: Vec<Waiting>,
    /// A committer task is proposing rounds; it takes the queue each time its proposal ends.
    busy: bool,
}

/// Encoded bytes one round carries at most (one write is always taken, whatever its size): a follower
/// catching up receives up to `max_payload_entries` entries per AppendEntries, which must still go through
/// within a heartbeat interval.
const ROUND_BYTES: u64 = 128 << 10;

/// An error of a round, for each of its writes.
fn for_each_write(e: &ActorError) -> ActorError {
    match e {
        ActorError::Timeout(what) => ActorError::Timeout(what),
        ActorError::Unavailable(what) => ActorError::Unavailable(what),
        e => ActorError::Meta(e.to_string()),
    }
}

/// The right to propose the pending writes, held by the one committer task. Dropped without finishing (a
/// panic) it gives the right back and fails the writes still queued, whose callers get `Unavailable` at once.
struct Committer {
    pending: Arc<std::sync::Mutex<Pending>>,
    finished: bool,
}

impl Pending {
    fn lock(pending: &std::sync::Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is a push, a drain or a flag: a panic elsewhere while it was held left it whole.
        pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Committer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        Pending::lock(&self.pending)
    }

    /// The next round: writes in arrival order, at most [`MAX_BATCH_COMMANDS`] and [`ROUND_BYTES`] encoded
    /// (but at least one). None, and the right given back, when nothing waits.
    fn next_round(&mut self) -> Option<Vec<Waiting>> {
        let mut pending = self.lock();
        if pending.queue.is_empty() {
            pending.busy = false;
            drop(pending);
            self.finished = true;
            return None;
        }
        let mut bytes = 0;
        let mut take = 0;
        for (cmd, _) in &pending.queue {
            bytes = hoard_protocol::format::encoded_len(cmd).saturating_add(bytes);
            if take == MAX_BATCH_COMMANDS || (take > 0 && bytes > ROUND_BYTES) {
                break;
            }
            take += 1;
        }
        Some(pending.queue.drain(..take).collect())
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if !self.finished {
            let mut pending = self.lock();
            pending.queue.clear();
            pending.busy = false;
        }
    }
}

/// The typed handle of the metadata actor.
#[derive(Clone)]
pub struct MetaHandle {
    pub slot: Slot<MetaMsg>,
    pub live: Arc<RwLock<Option<Arc<Live>>>>,
    pub pending: Arc<std::sync::Mutex<Pending>>,
    pub reader: Arc<RwLock<Option<MetaReader>>>,
    pub raft: Arc<tokio::sync::Mutex<Option<Raft>>>,
    pub stores: Stores,
}

impl Default for MetaHandle {
    fn default() -> Self {
        MetaHandle {
            slot: Slot::new("meta"),
            live: Arc::new(RwLock::new(None)),
            pending: Arc::default(),
            reader: Arc::new(RwLock::new(None)),
            raft: Arc::new(tokio::sync::Mutex::new(None)),
            stores: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }
}

impl MetaHandle {
    /// Shuts Raft down and releases the store (when the node stops).
    pub async fn shutdown(&self) {
        let closed = self.reader.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|r| r.closed());
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(raft) = self.raft.lock().await.take() {
            let _ = raft.shutdown().await;
        }
        *self.reader.write().unwrap_or_else(|p| p.into_inner()) = None;
        *self.stores.lock().await = None;
        // Return only once the database is closed: its files are at rest and it may be opened again.
        if let Some(closed) = closed {
            if tokio::time::timeout(STORE_CLOSE_DEADLINE, closed).await.is_err() {
                tracing::warn!("the metadata store is still held {STORE_CLOSE_DEADLINE:?} after shutdown");
            }
        }
    }
}

impl MetaHandle {
    /// Proposes a command and waits until it is committed and applied.
    ///
    /// Writes are proposed in rounds by one committer task: the writes that arrive while a round is being
    /// committed go together in the next, as one [`MetaCommand::Batch`] entry (one alone goes as itself), so
    /// concurrent writes share a log append and an fsync. openraft appends and fsyncs each entry before it
    /// takes the next, so without rounds every write would wait for the fsyncs of all those ahead of it.
    #[tracing::instrument(name = "meta.write", skip_all)]
    pub async fn write(&self, cmd: MetaCommand) -> Result<MetaResponse> {
        if !self.alone() {
            // In a cluster each write is its own entry (see `commit_round`), proposed at once.
            return self.propose(cmd).await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut pending = Pending::lock(&self.pending);
            pending.queue.push((cmd, reply));
            !std::mem::replace(&mut pending.busy, true)
        };
        if start {
            let committer = Committer { pending: self.pending.clone(), finished: false };
            tokio::spawn(self.clone().commit_rounds(committer));
        }
        // A write may wait for the round ahead of its own, each bounded by META_DEADLINE.
        match tokio::time::timeout(2 * META_DEADLINE, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ActorError::Unavailable("meta")),
            Err(_) => Err(ActorError::Timeout("meta")),
        }
    }

    /// Proposes rounds of pending writes until none is left.
    async fn commit_rounds(self, mut committer: Committer) {
        while let Some(round) = committer.next_round() {
            self.commit_round(round).await;
        }
    }

    /// Proposes one round and answers each of its writes. A write whose names fail the check goes alone (the
    /// state machine refuses it as it always has), never inside a batch that it would spoil for the others.
    ///
    /// Batches are proposed only while the metadata group has this one member: a node of an earlier build
    /// cannot apply a batch entry, and nothing tells which build each member of a cluster runs, so in a
    /// cluster each write of a round is proposed as its own entry (all at once, as before group commit).
    async fn commit_round(&self, round: Vec<Waiting>) {
        let alone = self.alone();
        let (mut batch, mut singles): (Vec<Waiting>, Vec<Waiting>) =
            round.into_iter().partition(|(c, _)| alone && c.check().is_ok());
        if batch.len() == 1 {
            singles.append(&mut batch);
        }
        let each = singles.into_iter().map(|(cmd, reply)| async move {
            let _ = reply.send(self.propose(cmd).await);
        });
        futures::future::join_all(each).await;
        if batch.is_empty() {
            return;
        }
        let (commands, replies): (Vec<MetaCommand>, Vec<_>) = batch.into_iter().unzip();
        let count = commands.len();
        let e = match self.propose(MetaCommand::Batch(commands)).await {
            Ok(MetaResponse::Batch(answers)) if answers.len() == count => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
                return;
            }
            Ok(other) => ActorError::Meta(format!("a batch of {count} writes was answered {other:?}")),
            Err(e) => e,
        };
        for reply in replies {
            let _ = reply.send(Err(for_each_write(&e)));
        }
    }

    /// Whether the metadata group has this node as its one member (false while no Raft instance runs).
    fn alone(&self) -> bool {
        self.live().is_ok_and(|live| live.raft.metrics().borrow().membership_config.membership().nodes().count() == 1)
    }

    /// Proposes one command at the leader and waits until this node has applied it.
    async fn propose(&self, cmd: MetaCommand) -> Result<MetaResponse> {
        let live = self.live()?;
        tokio::time::timeout(META_DEADLINE, write(&live.raft, &live.forward, live.node_id, cmd))
            .await
            .map_err(|_| ActorError::Timeout("meta"))?
    }

    /// Runs `f` against a linearizable view of the state machine: after a read barrier, or at once where
    /// this node's own state already is one ([`Live::reads_here`]).
    pub async fn read<T>(&self, f: impl FnOnce(&MetaReader) -> std::result::Result<T, meta::MetaError>) -> Result<T> {
        let live = self.live()?;
        if !live.reads_here() {
            tokio::time::timeout(META_DEADLINE, read_barrier(&live.raft, &live.forward, live.node_id))
                .await
                .map_err(|_| ActorError::Timeout("meta"))??;
        }
        f(&live.reader).map_err(|e| ActorError::Meta(e.to_string()))
    }

    /// Whether a read on this node now goes without a read barrier ([`Live::reads_here`]).
    pub fn reads_here(&self) -> bool {
        self.live().is_ok_and(|live| live.reads_here())
    }

    /// The running incarnation's Raft, or `Unavailable` while there is none (starting, restarting, stopped).
    fn live(&self) -> Result<Arc<Live>> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ActorError::Unavailable("meta"))
    }

    /// Reads the local state machine without a Raft round trip: for background walks (scrub, repair)
    /// that tolerate a slightly stale view.
    pub fn local(&self) -> Result<MetaReader> {
        self.reader.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ActorError::Unavailable("meta"))
    }

    pub async fn metrics(&self) -> Result<openraft::RaftMetrics<NodeId, NodeAddr>> {
        self.slot.call(MetaMsg::Metrics, META_DEADLINE).await
    }

    /// Whether this node leads the metadata group now (the background work only the leader does).
    pub async fn leads(&self) -> Result<bool> {
        let metrics = self.metrics().await?;
        Ok(metrics.current_leader == Some(metrics.id))
    }

    /// Changes the metadata group's membership (at the leader, wherever it is).
    pub async fn change_membership(&self, change: MembershipChange) -> Result<()> {
        self.slot.call(|r| MetaMsg::ChangeMembership(change, r), META_DEADLINE).await?
    }
}
