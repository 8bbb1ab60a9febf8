//! The metadata actor: one openraft node whose log and state machine live in fjall.
//!
//! Invariants:
//! - The Raft log entry of a `CommitObject`/`CompleteUpload` is the only commit point of an object.
//! - Reads through [`MetaHandle::read`] are linearizable: they wait for a Raft read-index confirmation
//!   and for the local state machine to apply up to it.
//! - The actor's mailbox never waits on Raft: each write or read barrier runs in its own task, so
//!   openraft batches concurrent proposals into one log append and one fsync.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::NodeId;
use hoard_storage::meta;
use hoard_storage::meta::LogStore;
use hoard_storage::meta::MetaNetwork;
use hoard_storage::meta::MetaReader;
use hoard_storage::meta::Raft;
use hoard_storage::meta::StateMachineStore;
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
}

impl MetaSetup {
    /// A one-node group in `dir`.
    pub fn alone(dir: PathBuf, node_id: NodeId, addr: String) -> MetaSetup {
        MetaSetup { dir, node_id, addr, members: BTreeMap::new(), network: MetaNetwork::LocalOnly }
    }
}

pub struct MetaArgs {
    pub setup: MetaSetup,
    /// Shared with the handle, so readers see the current store after a restart.
    pub reader: Arc<RwLock<Option<MetaReader>>>,
    /// The Raft instance of the previous incarnation, shut down before a new one starts.
    pub raft: Arc<tokio::sync::Mutex<Option<Raft>>>,
    /// The opened stores, shared by every incarnation.
    pub stores: Stores,
}

/// The node's opened metadata stores (log, state machine, reader), once opened.
pub type Stores = Arc<tokio::sync::Mutex<Option<(LogStore, StateMachineStore, MetaReader)>>>;

pub struct MetaState {
    node_id: NodeId,
    network: MetaNetwork,
    raft: Raft,
    reader: MetaReader,
}

pub enum MetaMsg {
    Write(Box<MetaCommand>, RpcReplyPort<Result<MetaResponse>>),
    /// Confirms leadership (read-index) and waits for the local apply; answers with the reader to use.
    ReadBarrier(RpcReplyPort<Result<MetaReader>>),
    Metrics(RpcReplyPort<openraft::RaftMetrics<NodeId, NodeAddr>>),
}

fn raft_config() -> Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "hoard".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1000,
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
        let mut metrics = raft.metrics();
        tokio::spawn(async move {
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
            }
        });
        Ok(MetaState { node_id: args.setup.node_id, network: args.setup.network.clone(), raft, reader })
    }

    async fn handle(
        &self,
        _me: ActorRef<MetaMsg>,
        msg: MetaMsg,
        state: &mut MetaState,
    ) -> std::result::Result<(), ActorProcessingErr> {
        match msg {
            MetaMsg::Write(cmd, reply) => {
                let (raft, network, me) = (state.raft.clone(), state.network.clone(), state.node_id);
                tokio::spawn(async move {
                    let _ = reply.send(write(&raft, &network, me, *cmd).await);
                });
            }
            MetaMsg::ReadBarrier(reply) => {
                let (raft, network, me) = (state.raft.clone(), state.network.clone(), state.node_id);
                let reader = state.reader.clone();
                tokio::spawn(async move {
                    let _ = reply.send(read_barrier(&raft, &network, me).await.map(|()| reader));
                });
            }
            MetaMsg::Metrics(reply) => {
                let _ = reply.send(state.raft.metrics().borrow().clone());
            }
        }
        Ok(())
    }
}

fn meta_err(e: impl std::fmt::Display) -> ActorError {
    ActorError::Meta(e.to_string())
}

/// The leader's Raft, when another node leads and this node can reach it directly.
async fn remote_leader(raft: &Raft, network: &MetaNetwork, me: NodeId) -> Option<Raft> {
    let leader = raft.current_leader().await.filter(|l| *l != me)?;
    network.peer(leader)
}

/// A call on the leader's Raft, within the metadata deadline.
async fn at_leader<T, E: std::fmt::Display>(call: impl Future<Output = std::result::Result<T, E>>) -> Result<T> {
    tokio::time::timeout(META_DEADLINE, call)
        .await
        .map_err(|_| ActorError::Timeout("metadata leader"))?
        .map_err(meta_err)
}

/// Waits until this node has applied the log up to `index`.
async fn applied_here(raft: &Raft, index: Option<u64>, what: &str) -> Result<()> {
    raft.wait(Some(META_DEADLINE)).applied_index_at_least(index, what).await.map(|_| ()).map_err(meta_err)
}

/// Proposes `cmd`: here when this node leads, otherwise at the leader, and then waits until this node has
/// applied it, so that what the caller reads here next includes it.
async fn write(raft: &Raft, network: &MetaNetwork, me: NodeId, cmd: MetaCommand) -> Result<MetaResponse> {
    if let Some(leader) = remote_leader(raft, network, me).await {
        let written = at_leader(leader.client_write(cmd)).await?;
        applied_here(raft, Some(written.log_id.index), "apply a write made at the leader").await?;
        return Ok(written.data);
    }
    raft.client_write(cmd).await.map(|r| r.data).map_err(meta_err)
}

/// Confirms a read index with the leader (this node, or the leader it can reach) and waits until this node
/// has applied up to it.
async fn read_barrier(raft: &Raft, network: &MetaNetwork, me: NodeId) -> Result<()> {
    if let Some(leader) = remote_leader(raft, network, me).await {
        let read = at_leader(leader.ensure_linearizable()).await?;
        return applied_here(raft, read.map(|id| id.index), "apply up to the leader's read index").await;
    }
    raft.ensure_linearizable().await.map(|_| ()).map_err(meta_err)
}

/// The typed handle of the metadata actor.
#[derive(Clone)]
pub struct MetaHandle {
    pub slot: Slot<MetaMsg>,
    pub reader: Arc<RwLock<Option<MetaReader>>>,
    pub raft: Arc<tokio::sync::Mutex<Option<Raft>>>,
    pub stores: Stores,
}

impl Default for MetaHandle {
    fn default() -> Self {
        MetaHandle {
            slot: Slot::new("meta"),
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
    #[tracing::instrument(name = "meta.write", skip_all)]
    pub async fn write(&self, cmd: MetaCommand) -> Result<MetaResponse> {
        self.slot.call(|r| MetaMsg::Write(Box::new(cmd), r), META_DEADLINE).await?
    }

    /// Runs `f` against a linearizable view of the state machine.
    pub async fn read<T>(&self, f: impl FnOnce(&MetaReader) -> std::result::Result<T, meta::MetaError>) -> Result<T> {
        let reader = self.slot.call(MetaMsg::ReadBarrier, META_DEADLINE).await??;
        f(&reader).map_err(|e| ActorError::Meta(e.to_string()))
    }

    /// Reads the local state machine without a Raft round trip: for background walks (scrub, repair)
    /// that tolerate a slightly stale view.
    pub fn local(&self) -> Result<MetaReader> {
        self.reader.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ActorError::Unavailable("meta"))
    }

    pub async fn metrics(&self) -> Result<openraft::RaftMetrics<NodeId, NodeAddr>> {
        self.slot.call(MetaMsg::Metrics, META_DEADLINE).await
    }
}
