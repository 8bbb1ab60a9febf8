//! The network of several metadata Raft nodes in one process: an RPC is a direct call on the target's
//! [`Raft`] handle. It is what in-process clusters (tests of several nodes, the simulation) use; nodes in
//! separate processes talk over the transport.
//!
//! Invariants:
//! - A node not in the network (never added, or removed to cut it off) is cut off both ways: every RPC to
//!   it or from it fails as openraft's `Unreachable`, as across a partition, and the group goes on
//!   without it.
//! - Errors the target's Raft returns come back as remote errors of that target, unchanged, except that a
//!   target whose Raft has stopped is unreachable.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::RwLock;

use hoard_protocol::NodeAddr;
use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::RaftNetwork;
use openraft::RaftNetworkFactory;

use super::Raft;
use super::TypeConfig;

/// The Raft nodes of one process, by node id. Clones share the same set.
#[derive(Clone, Default)]
pub struct InProcessNetwork {
    nodes: Arc<RwLock<BTreeMap<u64, Raft>>>,
}

impl InProcessNetwork {
    pub fn new() -> InProcessNetwork {
        InProcessNetwork::default()
    }

    /// Makes node `id` reachable (again), answering with `raft`.
    pub fn add(&self, id: u64, raft: Raft) {
        self.nodes.write().unwrap_or_else(|p| p.into_inner()).insert(id, raft);
    }

    /// Cuts node `id` off, both ways, until it is added again.
    pub fn remove(&self, id: u64) -> Option<Raft> {
        self.nodes.write().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    /// The network as node `me` sees it: what its Raft is started with.
    pub fn endpoint(&self, me: u64) -> InProcessEndpoint {
        InProcessEndpoint { network: self.clone(), me }
    }

    /// `to`'s Raft, if both `from` and `to` are in the network.
    fn route(&self, from: u64, to: u64) -> Option<Raft> {
        let nodes = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        if nodes.contains_key(&from) {
            nodes.get(&to).cloned()
        } else {
            None
        }
    }
}

/// One node's view of an [`InProcessNetwork`].
#[derive(Clone)]
pub struct InProcessEndpoint {
    network: InProcessNetwork,
    me: u64,
}

/// A connection from one node to another; the route is looked up at every call, so a node added back
/// after a cut is reached again.
pub struct InProcessClient {
    network: InProcessNetwork,
    me: u64,
    target: u64,
}

impl InProcessClient {
    fn route(&self) -> Option<Raft> {
        self.network.route(self.me, self.target)
    }

    /// A target whose Raft has stopped (its node was stopped) is unreachable, as a dead peer is: openraft
    /// backs off from unreachable peers but retries remote errors at once.
    // openraft's network trait fixes the (large) error type; this only shapes the trait methods' results.
    #[allow(clippy::result_large_err)]
    fn answer<T, E: std::error::Error>(
        &self,
        r: Result<T, RaftError<u64, E>>,
    ) -> Result<T, RPCError<u64, NodeAddr, RaftError<u64, E>>> {
        match r {
            Ok(v) => Ok(v),
            Err(RaftError::Fatal(fatal)) => Err(RPCError::Unreachable(Unreachable::new(&fatal))),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, NodeAddr, E> {
        let e =
            io::Error::new(io::ErrorKind::NotConnected, format!("node {} cannot reach node {}", self.me, self.target));
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

impl RaftNetworkFactory<TypeConfig> for InProcessEndpoint {
    type Network = InProcessClient;

    async fn new_client(&mut self, target: u64, _node: &NodeAddr) -> InProcessClient {
        InProcessClient { network: self.network.clone(), me: self.me, target }
    }
}

impl RaftNetwork<TypeConfig> for InProcessClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        let Some(raft) = self.route() else { return Err(self.unreachable()) };
        self.answer(raft.append_entries(rpc).await)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64, InstallSnapshotError>>> {
        let Some(raft) = self.route() else { return Err(self.unreachable()) };
        self.answer(raft.install_snapshot(rpc).await)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        let Some(raft) = self.route() else { return Err(self.unreachable()) };
        self.answer(raft.vote(rpc).await)
    }
}

impl InProcessEndpoint {
    /// Puts this node's (new) Raft into the network.
    pub fn join(&self, raft: Raft) {
        self.network.add(self.me, raft);
    }

    /// The Raft of node `id`, if this node can reach it (both are in the network).
    pub fn peer(&self, id: u64) -> Option<Raft> {
        self.network.route(self.me, id)
    }
}

/// The future of one Raft RPC to another node.
pub type RpcFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, RPCError<u64, NodeAddr, E>>> + Send>>;

/// Raft's RPCs to nodes in other processes (implemented by the gRPC transport in `hoard-actors`).
pub trait RaftRpc: Send + Sync + 'static {
    fn append_entries(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcFuture<AppendEntriesResponse<u64>, RaftError<u64>>;

    fn install_snapshot(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcFuture<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>;

    fn vote(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcFuture<VoteResponse<u64>, RaftError<u64>>;
}

/// The metadata network a node runs with: none (one node), an in-process cluster's, or RPCs to other
/// processes.
#[derive(Clone)]
pub enum MetaNetwork {
    LocalOnly,
    InProcess(InProcessEndpoint),
    Remote(Arc<dyn RaftRpc>),
}

impl MetaNetwork {
    /// The Raft of another member, where this network can reach it directly (in one process).
    pub fn peer(&self, id: u64) -> Option<Raft> {
        match self {
            MetaNetwork::LocalOnly | MetaNetwork::Remote(_) => None,
            MetaNetwork::InProcess(endpoint) => endpoint.peer(id),
        }
    }
}

/// A connection of a [`MetaNetwork`].
pub enum MetaClient {
    LocalOnly(super::LocalOnlyClient),
    InProcess(InProcessClient),
    Remote { rpc: Arc<dyn RaftRpc>, target: u64, node: NodeAddr },
}

impl RaftNetworkFactory<TypeConfig> for MetaNetwork {
    type Network = MetaClient;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> MetaClient {
        match self {
            MetaNetwork::LocalOnly => MetaClient::LocalOnly(super::LocalOnlyNetwork.new_client(target, node).await),
            MetaNetwork::InProcess(endpoint) => MetaClient::InProcess(endpoint.new_client(target, node).await),
            MetaNetwork::Remote(rpc) => MetaClient::Remote { rpc: rpc.clone(), target, node: node.clone() },
        }
    }
}

impl RaftNetwork<TypeConfig> for MetaClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        match self {
            MetaClient::LocalOnly(c) => c.append_entries(rpc, option).await,
            MetaClient::InProcess(c) => c.append_entries(rpc, option).await,
            MetaClient::Remote { rpc: r, target, node } => r.append_entries(*target, node, rpc, option).await,
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64, InstallSnapshotError>>> {
        match self {
            MetaClient::LocalOnly(c) => c.install_snapshot(rpc, option).await,
            MetaClient::InProcess(c) => c.install_snapshot(rpc, option).await,
            MetaClient::Remote { rpc: r, target, node } => r.install_snapshot(*target, node, rpc, option).await,
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, NodeAddr, RaftError<u64>>> {
        match self {
            MetaClient::LocalOnly(c) => c.vote(rpc, option).await,
            MetaClient::InProcess(c) => c.vote(rpc, option).await,
            MetaClient::Remote { rpc: r, target, node } => r.vote(*target, node, rpc, option).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use hoard_protocol::MetaCommand;
    use openraft::ServerState;

    use super::super::open;
    use super::super::test_support::bucket;
    use super::super::test_support::config;
    use super::super::test_support::TIMEOUT;
    use super::super::MetaReader;
    use super::*;

    struct Member {
        raft: Raft,
        reader: MetaReader,
    }

    async fn member(id: u64, dir: &Path, network: &InProcessNetwork) -> Member {
        let (log, state_machine, reader) = open(dir).unwrap();
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..config()
        };
        let raft = Raft::new(id, Arc::new(config.validate().unwrap()), network.endpoint(id), log, state_machine)
            .await
            .unwrap();
        network.add(id, raft.clone());
        Member { raft, reader }
    }

    async fn leader_of(members: &BTreeMap<u64, Member>) -> u64 {
        let first = members.values().next().unwrap();
        let metrics =
            first.raft.wait(Some(TIMEOUT)).metrics(|m| m.current_leader.is_some(), "a leader is known").await.unwrap();
        metrics.current_leader.unwrap()
    }

    async fn write(member: &Member, command: MetaCommand) -> u64 {
        member.raft.client_write(command).await.unwrap().log_id.index
    }

    async fn applied(member: &Member, index: u64) {
        member.raft.wait(Some(TIMEOUT)).applied_index_at_least(Some(index), "applied").await.unwrap();
    }

    /// Three nodes in one process form one group: a write on the leader is applied on every member; with
    /// the leader cut off the other two elect a new one, which holds every committed write and takes new
    /// ones; the old leader, let back in, catches up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_members_replicate_and_survive_the_loss_of_their_leader() {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let network = InProcessNetwork::new();
        let mut members = BTreeMap::new();
        for (i, dir) in dirs.iter().enumerate() {
            let id = i as u64 + 1;
            members.insert(id, member(id, dir.path(), &network).await);
        }
        let addrs: BTreeMap<u64, NodeAddr> =
            members.keys().map(|id| (*id, NodeAddr { addr: format!("node-{id}") })).collect();
        members[&1].raft.initialize(addrs).await.unwrap();

        let first = leader_of(&members).await;
        let index = write(&members[&first], bucket("before")).await;
        for m in members.values() {
            applied(m, index).await;
            assert!(m.reader.bucket("before").unwrap().is_some());
        }

        // Cut the leader off; the two others elect one of themselves.
        network.remove(first);
        let rest: BTreeSet<u64> = members.keys().copied().filter(|id| *id != first).collect();
        let other = *rest.iter().next().unwrap();
        let metrics = members[&other]
            .raft
            .wait(Some(TIMEOUT))
            .metrics(|m| m.current_leader.is_some_and(|l| l != first), "a new leader")
            .await
            .unwrap();
        let second = metrics.current_leader.unwrap();
        assert!(rest.contains(&second));
        assert_eq!(members[&second].raft.metrics().borrow().state, ServerState::Leader);
        assert!(members[&second].reader.bucket("before").unwrap().is_some(), "the new leader holds the commit");
        let index = write(&members[&second], bucket("after")).await;
        for id in &rest {
            applied(&members[id], index).await;
            assert!(members[id].reader.bucket("after").unwrap().is_some());
        }
        assert!(members[&first].reader.bucket("after").unwrap().is_none(), "the cut-off node heard nothing");

        // Let it back in: it catches up.
        network.add(first, members[&first].raft.clone());
        applied(&members[&first], index).await;
        assert!(members[&first].reader.bucket("after").unwrap().is_some());

        for m in members.into_values() {
            m.raft.shutdown().await.unwrap();
        }
    }
}
