//! The client side of the transport: one HTTP/2 connection per peer (a tonic channel over mutual TLS,
//! made on first use and reused by every call), through which a peer's disks look like local ones
//! ([`RemoteShard`], [`RemoteWriter`]), Raft reaches the other members ([`RaftRpc`]) and a follower
//! forwards to the leader ([`Forward`]).
//!
//! Invariants:
//! - A connection is verified both ways before any byte of a call is sent: the peer's certificate must be
//!   signed by the cluster CA and name the node id it is called as.
//! - Every call has a deadline from [`policy`]; a peer that missed [`policy::DOWN_AFTER_MISSES`] health
//!   checks in a row is down: calls to it fail at once, so a PUT never waits on a dead node's connect.
//! - A remote shard write holds at most [`policy::PIECE_WINDOW`] unacknowledged pieces.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;

use bytes::Bytes;
use hoard_protocol::rpc;
use hoard_protocol::rpc::meta_client::MetaClient;
use hoard_protocol::rpc::peer_client::PeerClient;
use hoard_protocol::rpc::shard_client::ShardClient;
use hoard_protocol::rpc::write_ack::Ack;
use hoard_protocol::rpc::write_frame::Frame;
use hoard_protocol::DiskRef;
use hoard_protocol::MembershipChange;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::NodeId;
use hoard_storage::meta::RaftRpc;
use hoard_storage::meta::RpcFuture;
use hoard_storage::meta::TypeConfig;
use hoard_storage::shard_file::ShardHeader;
use openraft::error::InstallSnapshotError;
use openraft::error::NetworkError;
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
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;
use tonic::transport::Endpoint;
use tonic::Request;
use tonic::Status;
use tonic::Streaming;

use super::policy;
use super::server::ForwardAnswer;
use super::wire;
use super::Transport;
use crate::error::ActorError;
use crate::error::Result;
use crate::meta::Forward;
use crate::meta::ForwardError;
use crate::meta::ForwardFuture;
use crate::net::Net;
use crate::peer_tls;
use crate::shard::Shard;

const PEER: &str = "peer node";

/// What a node knows of a peer's health.
#[derive(Default)]
struct Health {
    /// Each disk's `degraded` flag, by slot, from the last answer; `None`: never heard from.
    disks: Option<Vec<bool>>,
    /// Health checks missed in a row.
    misses: u32,
    /// Round-trip time of health checks, smoothed.
    rtt: Option<Duration>,
}

/// The connection to one peer.
pub struct PeerLink {
    pub node: NodeId,
    pub addr: String,
    /// Replaced by a fresh one after a failed health check: a channel whose connection failed may keep
    /// failing without connecting again.
    channel: RwLock<Channel>,
    connect: Connector,
    health: Mutex<Health>,
    /// Told of every health answer (of every link of the same `Peers`).
    heard: tokio::sync::watch::Sender<u64>,
}

impl PeerLink {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the peer missed its last health check (it may not be down yet).
    pub fn is_failing(&self) -> bool {
        self.health().misses > 0
    }

    /// Whether the peer has told its disks.
    pub fn knows_disks(&self) -> bool {
        self.health().disks.is_some()
    }

    /// Whether the peer missed too many health checks in a row to be called now.
    pub fn is_down(&self) -> bool {
        self.health().misses >= policy::DOWN_AFTER_MISSES
    }

    /// The channel, or at once an error when the peer is down.
    fn channel(&self) -> Result<Channel> {
        if self.is_down() {
            return Err(ActorError::Unavailable("peer node (down)"));
        }
        Ok(self.current())
    }

    fn current(&self) -> Channel {
        self.channel.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the peer's health once and records the answer (or the miss).
    pub async fn check(&self) -> Result<()> {
        let started = Instant::now();
        let mut request = Request::new(rpc::Empty {});
        request.set_timeout(policy::HEALTH_DEADLINE);
        let answer =
            tokio::time::timeout(policy::HEALTH_DEADLINE, PeerClient::new(self.current()).health(request)).await;
        if !matches!(answer, Ok(Ok(_))) {
            match (self.connect)() {
                Ok(fresh) => *self.channel.write().unwrap_or_else(|p| p.into_inner()) = fresh,
                Err(e) => tracing::warn!(node = self.node, error = %e, "no new channel to a peer"),
            }
        }
        let mut health = self.health();
        match answer {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                if reply.node_id != self.node {
                    health.misses = health.misses.saturating_add(1);
                    return Err(ActorError::Invalid(format!(
                        "{} answers as node {}, not {}",
                        self.addr, reply.node_id, self.node
                    )));
                }
                let mut disks = vec![true; reply.disks.len()];
                for d in &reply.disks {
                    if let Some(flag) = disks.get_mut(d.slot as usize) {
                        *flag = d.degraded;
                    }
                }
                let rtt = started.elapsed();
                health.rtt = Some(match health.rtt {
                    Some(old) => (old * 7 + rtt) / 8,
                    None => rtt,
                });
                health.disks = Some(disks);
                health.misses = 0;
                drop(health);
                self.heard.send_modify(|n| *n += 1);
                Ok(())
            }
            Ok(Err(status)) => {
                health.misses = health.misses.saturating_add(1);
                Err(wire::error_of(status, PEER))
            }
            Err(_) => {
                health.misses = health.misses.saturating_add(1);
                Err(ActorError::Timeout(PEER))
            }
        }
    }
}

/// Every peer of a node, by node id; links are made on first use and replaced when a peer's address
/// changes.
pub struct Peers {
    me: NodeId,
    cluster_id: String,
    tls: Arc<rustls::ClientConfig>,
    net: Arc<dyn Net>,
    links: RwLock<BTreeMap<NodeId, Arc<PeerLink>>>,
    heard: tokio::sync::watch::Sender<u64>,
    /// Nodes being drained or removed: no new shard goes to them.
    leaving: RwLock<BTreeSet<NodeId>>,
}

impl Peers {
    /// The links of node `me` of `cluster_id`, whose connections `net` makes.
    pub fn new(me: NodeId, cluster_id: &str, tls: Arc<rustls::ClientConfig>, net: Arc<dyn Net>) -> Arc<Peers> {
        let heard = tokio::sync::watch::Sender::new(0);
        let (links, leaving) = (RwLock::new(BTreeMap::new()), RwLock::new(BTreeSet::new()));
        Arc::new(Peers { me, cluster_id: cluster_id.to_string(), tls, net, links, heard, leaving })
    }

    /// Sets the nodes being drained or removed (from the metadata, by the peer watch).
    pub fn set_leaving(&self, nodes: BTreeSet<NodeId>) {
        *self.leaving.write().unwrap_or_else(|p| p.into_inner()) = nodes;
    }

    fn is_leaving(&self, node: NodeId) -> bool {
        self.leaving.read().unwrap_or_else(|p| p.into_inner()).contains(&node)
    }

    /// Waits (up to `deadline`) until `peers` peers are up and have told their disks.
    pub async fn wait_for(&self, peers: usize, deadline: Duration) -> Result<()> {
        let mut heard = self.heard.subscribe();
        let up = || self.all().iter().filter(|l| !l.is_down() && l.health().disks.is_some()).count();
        tokio::time::timeout(deadline, async {
            while up() < peers {
                if heard.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
        .map_err(|_| ActorError::Timeout("peers"))
    }

    /// The link to `node`, if one was made.
    pub fn get(&self, node: NodeId) -> Option<Arc<PeerLink>> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).get(&node).cloned()
    }

    /// Every link.
    pub fn all(&self) -> Vec<Arc<PeerLink>> {
        self.links.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The link to `node` at `addr`, made now if there is none or the address changed.
    pub fn link(&self, node: NodeId, addr: &str) -> Result<Arc<PeerLink>> {
        if let Some(link) = self.get(node).filter(|l| l.addr == addr) {
            return Ok(link);
        }
        let link = Arc::new(self.connect(node, addr)?);
        self.links.write().unwrap_or_else(|p| p.into_inner()).insert(node, link.clone());
        Ok(link)
    }

    /// Keeps links to exactly `members` (this node left out), making the missing ones.
    pub fn set_members(&self, members: &BTreeMap<NodeId, NodeAddr>) {
        for (node, addr) in members {
            if *node != self.me {
                if let Err(e) = self.link(*node, &addr.addr) {
                    tracing::warn!(node, addr = %addr.addr, error = %e, "no link to a member");
                }
            }
        }
        self.links.write().unwrap_or_else(|p| p.into_inner()).retain(|node, _| members.contains_key(node));
    }

    /// A link to `node` at `addr`, whose channels connect lazily: TCP, then TLS verified as that node,
    /// then HTTP/2.
    fn connect(&self, node: NodeId, addr: &str) -> Result<PeerLink> {
        let name = peer_tls::server_name(&self.cluster_id, node).map_err(|e| ActorError::Invalid(e.to_string()))?;
        let (tls, target, net) = (self.tls.clone(), addr.to_string(), self.net.clone());
        let label = format!("node-{node}");
        let connect: Connector = Arc::new(move || channel(&net, &label, &target, tls.clone(), name.clone()));
        let first = connect()?;
        let heard = self.heard.clone();
        Ok(PeerLink {
            node,
            addr: addr.to_string(),
            channel: RwLock::new(first),
            connect,
            health: Mutex::new(Health::default()),
            heard,
        })
    }
}

/// Makes a new channel to one peer.
type Connector = Arc<dyn Fn() -> Result<Channel> + Send + Sync>;

/// A channel to `addr` (`label` names it) that connects on first use: TCP, then TLS verified as `name`,
/// then HTTP/2.
pub(crate) fn channel(
    net: &Arc<dyn Net>,
    label: &str,
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    name: tokio_rustls::rustls::pki_types::ServerName<'static>,
) -> Result<Channel> {
    let connector = TlsConnector::from(tls);
    let (target, net) = (addr.to_string(), net.clone());
    let connect = tower::service_fn(move |_: http::Uri| {
        let (connector, name, target, net) = (connector.clone(), name.clone(), target.clone(), net.clone());
        async move {
            let tls = tokio::time::timeout(policy::CONNECT, async {
                let conn = net.connect(target).await?;
                connector.connect(name, conn).await
            })
            .await
            .map_err(|_| NotConnected(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting to a peer")))?
            .map_err(NotConnected)?;
            Ok::<_, NotConnected>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(Endpoint::from_shared(format!("http://{label}"))
        .map_err(|e| ActorError::Invalid(e.to_string()))?
        .connect_timeout(policy::CONNECT)
        .http2_keep_alive_interval(policy::KEEPALIVE_INTERVAL)
        .keep_alive_timeout(policy::KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .initial_stream_window_size(Some(policy::STREAM_WINDOW))
        .initial_connection_window_size(Some(policy::CONNECTION_WINDOW))
        .connect_with_connector_lazy(connect))
}

/// The transport of a node in a cluster of processes.
pub struct GrpcTransport(pub Arc<Peers>);

impl Transport for GrpcTransport {
    fn remote_shard(&self, disk: DiskRef) -> Option<Shard> {
        let link = self.0.get(disk.node)?;
        Some(Shard::Remote(RemoteShard { link, disk: disk.disk }))
    }

    /// Every disk of every peer heard from, but those of nodes being drained or removed; a peer that is down or a degraded disk is still listed (a
    /// stripe placed on it is written without that shard, which repair adds later), but after the others.
    fn remote_disks(&self, me: NodeId) -> Vec<DiskRef> {
        let mut disks: Vec<(bool, DiskRef)> = Vec::new();
        for link in self.0.all().into_iter().filter(|l| l.node != me && !self.0.is_leaving(l.node)) {
            let down = link.is_down();
            let health = link.health();
            for (slot, degraded) in health.disks.iter().flatten().enumerate() {
                disks.push((down || *degraded, DiskRef { node: link.node, disk: slot as u32 }));
            }
        }
        disks.sort_by_key(|(avoid, _)| *avoid);
        disks.into_iter().map(|(_, d)| d).collect()
    }

    fn leaving(&self, node: NodeId) -> bool {
        self.0.is_leaving(node)
    }

    fn node_health(&self, node: NodeId, addr: &str) -> Option<super::HealthFuture> {
        let link = self.0.link(node, addr);
        Some(Box::pin(async move {
            // Asked even when the link counts the peer down: status is where an operator looks to see it back.
            let mut client = PeerClient::new(link?.current());
            let answer =
                within(policy::HEALTH_DEADLINE, client.status(untraced(rpc::Empty {}, policy::HEALTH_DEADLINE)));
            wire::decode_raft(&answer.await?).map_err(|s| wire::error_of(s, PEER))
        }))
    }
}

/// A disk of another node.
#[derive(Clone)]
pub struct RemoteShard {
    link: Arc<PeerLink>,
    disk: u32,
}

/// A call with its deadline, carrying the current trace context.
fn call<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = untraced(message, deadline);
    super::trace::inject(request.metadata_mut());
    request
}

/// A call with its deadline and no trace context: Raft's own traffic, which belongs to no request.
fn untraced<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

/// A unary call within `deadline`, its status mapped to hoard's errors.
async fn within<T>(
    deadline: Duration,
    answer: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(wire::error_of(status, PEER)),
        Err(_) => Err(ActorError::Timeout(PEER)),
    }
}

/// A forwarded call within `deadline`: a call that never got a connection is [`ForwardError::NotSent`].
async fn within_forward<T>(
    deadline: Duration,
    answer: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
) -> std::result::Result<T, ForwardError> {
    match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) if never_connected(&status) => Err(ForwardError::NotSent(wire::error_of(status, PEER))),
        Ok(Err(status)) => Err(ForwardError::Unreachable(wire::error_of(status, PEER))),
        Err(_) => Err(ForwardError::Unreachable(ActorError::Timeout(PEER))),
    }
}

/// The connector's failure: no TCP connection or TLS session was made, so nothing of a call was sent.
#[derive(Debug)]
struct NotConnected(std::io::Error);

impl std::fmt::Display for NotConnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no connection: {}", self.0)
    }
}

impl std::error::Error for NotConnected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether `status` comes from a call that never had a connection.
pub(crate) fn never_connected(status: &Status) -> bool {
    let mut cause = std::error::Error::source(status);
    while let Some(e) = cause {
        if e.is::<NotConnected>() {
            return true;
        }
        cause = e.source();
    }
    false
}

impl RemoteShard {
    fn client(&self) -> Result<ShardClient<Channel>> {
        Ok(ShardClient::new(self.link.channel()?)
            .max_decoding_message_size(policy::MAX_MESSAGE)
            .max_encoding_message_size(policy::MAX_MESSAGE))
    }

    pub async fn create(&self, header: ShardHeader) -> Result<RemoteWriter> {
        if self.is_degraded() {
            return Err(ActorError::Unavailable("disk of a peer (degraded)"));
        }
        let mut client = self.client()?;
        let (tx, rx) = mpsc::channel::<rpc::WriteFrame>(policy::PIECE_WINDOW as usize);
        let create = rpc::WriteCreate { disk: self.disk, header: Some(wire::header_to_wire(&header)) };
        tx.send(rpc::WriteFrame { frame: Some(Frame::Create(create)) })
            .await
            .map_err(|_| ActorError::Unavailable(PEER))?;
        let frames = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        let mut request = Request::new(frames);
        super::trace::inject(request.metadata_mut());
        let acks = within(policy::SHARD_CALL_DEADLINE, client.write(request)).await?;
        let mut writer = RemoteWriter { tx, acks, sent: 0, acked: 0 };
        match writer.next_ack(policy::SHARD_CALL_DEADLINE).await? {
            Ack::Created(_) => Ok(writer),
            _ => Err(ActorError::Invalid("a peer answered a shard create out of order".into())),
        }
    }

    pub async fn read_piece(
        &self,
        header: ShardHeader,
        block: u64,
        block_len: usize,
        deadline: Duration,
    ) -> Result<Bytes> {
        let request = rpc::ReadPieceRequest {
            disk: self.disk,
            header: Some(wire::header_to_wire(&header)),
            block,
            block_len: block_len as u64,
        };
        let piece = within(deadline, self.client()?.read_piece(call(request, deadline))).await?;
        Ok(piece.data)
    }

    pub async fn verify(&self, header: ShardHeader, size: u64, deadline: Duration) -> Result<()> {
        let request = rpc::VerifyRequest { disk: self.disk, header: Some(wire::header_to_wire(&header)), size };
        within(deadline, self.client()?.verify(call(request, deadline))).await.map(|_| ())
    }

    pub async fn remove_name(&self, name: &str) -> Result<()> {
        let request = rpc::RemoveRequest { disk: self.disk, name: name.to_string() };
        let deadline = policy::SHARD_CALL_DEADLINE;
        within(deadline, self.client()?.remove(call(request, deadline))).await.map(|_| ())
    }

    /// The peer is down, or says this disk is degraded.
    pub fn is_degraded(&self) -> bool {
        if self.link.is_down() {
            return true;
        }
        let health = self.link.health();
        health.disks.as_ref().and_then(|d| d.get(self.disk as usize).copied()).unwrap_or(false)
    }

    /// A peer that missed its last health check is read from last.
    pub fn lagging(&self) -> bool {
        self.link.health().misses > 0
    }

    /// Four round trips of the peer (at least 20 ms) before a second piece read is started.
    pub fn hedge_after(&self) -> Duration {
        let rtt = self.link.health().rtt.unwrap_or(Duration::from_millis(5));
        (rtt * 4).max(Duration::from_millis(20))
    }
}

/// A shard file being written on another node.
pub struct RemoteWriter {
    tx: mpsc::Sender<rpc::WriteFrame>,
    acks: Streaming<rpc::WriteAck>,
    sent: u64,
    acked: u64,
}

impl RemoteWriter {
    async fn next_ack(&mut self, deadline: Duration) -> Result<Ack> {
        match tokio::time::timeout(deadline, self.acks.message()).await {
            Ok(Ok(Some(rpc::WriteAck { ack: Some(Ack::Pieces(n)) }))) => {
                self.acked = n;
                Ok(Ack::Pieces(n))
            }
            Ok(Ok(Some(rpc::WriteAck { ack: Some(ack) }))) => Ok(ack),
            Ok(Ok(Some(rpc::WriteAck { ack: None }))) => Err(ActorError::Invalid("an empty write answer".into())),
            Ok(Ok(None)) => Err(ActorError::Unavailable("peer ended the shard write")),
            Ok(Err(status)) => Err(wire::error_of(status, PEER)),
            Err(_) => Err(ActorError::Timeout("peer shard write")),
        }
    }

    async fn send(&mut self, frame: Frame) -> Result<()> {
        match tokio::time::timeout(policy::SHARD_WRITE_DEADLINE, self.tx.send(rpc::WriteFrame { frame: Some(frame) }))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ActorError::Unavailable("peer shard write")),
            Err(_) => Err(ActorError::Timeout("peer shard write")),
        }
    }

    pub async fn append(&mut self, piece: Bytes) -> Result<()> {
        while self.sent - self.acked >= policy::PIECE_WINDOW {
            self.next_ack(policy::SHARD_WRITE_DEADLINE).await?;
        }
        self.send(Frame::Piece(piece)).await?;
        self.sent += 1;
        Ok(())
    }

    pub async fn commit(mut self) -> Result<()> {
        self.send(Frame::Commit(rpc::Empty {})).await?;
        loop {
            match self.next_ack(policy::SHARD_WRITE_DEADLINE).await? {
                Ack::Committed(_) if self.acked == self.sent => return Ok(()),
                Ack::Committed(_) => {
                    return Err(ActorError::Invalid(format!("a peer committed {} of {} pieces", self.acked, self.sent)))
                }
                _ => continue,
            }
        }
    }
}

/// A failed Raft RPC as openraft takes it: a peer out of reach is `Unreachable` (openraft backs off from
/// it), anything else a network error.
fn rpc_error<E: std::error::Error>(e: ActorError) -> RPCError<NodeId, NodeAddr, E> {
    match e {
        ActorError::Unavailable(_) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

/// A client of a peer's metadata service that takes Raft appends and snapshot chunks up to
/// [`policy::MAX_MESSAGE`].
fn meta_client(channel: Channel) -> MetaClient<Channel> {
    MetaClient::new(channel)
        .max_decoding_message_size(policy::MAX_MESSAGE)
        .max_encoding_message_size(policy::MAX_MESSAGE)
}

/// One method of the metadata service, called with one Raft message.
type RaftMethod =
    fn(
        MetaClient<Channel>,
        Request<rpc::RaftMessage>,
    ) -> futures::future::BoxFuture<'static, std::result::Result<tonic::Response<rpc::RaftMessage>, Status>>;

/// One Raft RPC to `target`: the request encoded, sent within openraft's deadline, the answer decoded;
/// the target Raft's own error comes back as a remote error.
async fn raft_call<Req, Resp, E>(
    link: Result<Arc<PeerLink>>,
    target: NodeId,
    request: Req,
    option: RPCOption,
    method: RaftMethod,
) -> std::result::Result<Resp, RPCError<NodeId, NodeAddr, RaftError<NodeId, E>>>
where
    Req: Serialize,
    Resp: DeserializeOwned,
    E: std::error::Error + DeserializeOwned,
{
    let deadline = option.hard_ttl();
    let channel = link.and_then(|l| l.channel()).map_err(rpc_error)?;
    let message = wire::encode_raft(&request).map_err(|s| rpc_error(wire::error_of(s, PEER)))?;
    let answer =
        within(deadline, method(meta_client(channel), untraced(message, deadline))).await.map_err(rpc_error)?;
    let answer: std::result::Result<Resp, RaftError<NodeId, E>> =
        wire::decode_raft(&answer).map_err(|s| rpc_error(wire::error_of(s, PEER)))?;
    answer.map_err(|e| RPCError::RemoteError(RemoteError::new(target, e)))
}

impl RaftRpc for Peers {
    fn append_entries(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcFuture<AppendEntriesResponse<u64>, RaftError<u64>> {
        Box::pin(raft_call(self.link(target, &node.addr), target, rpc, option, |mut c, r| {
            Box::pin(async move { c.append_entries(r).await })
        }))
    }

    fn install_snapshot(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcFuture<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>> {
        Box::pin(raft_call(self.link(target, &node.addr), target, rpc, option, |mut c, r| {
            Box::pin(async move { c.install_snapshot(r).await })
        }))
    }

    fn vote(
        &self,
        target: u64,
        node: &NodeAddr,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcFuture<VoteResponse<u64>, RaftError<u64>> {
        Box::pin(raft_call(self.link(target, &node.addr), target, rpc, option, |mut c, r| {
            Box::pin(async move { c.vote(r).await })
        }))
    }
}

/// A forwarded call's answer, decoded.
fn forwarded<T: DeserializeOwned>(
    answer: std::result::Result<rpc::RaftMessage, ForwardError>,
) -> std::result::Result<T, ForwardError> {
    let message = answer?;
    match wire::decode_raft::<ForwardAnswer<T>>(&message) {
        Ok(ForwardAnswer::Done(v)) => Ok(v),
        Ok(ForwardAnswer::NotLeader) => Err(ForwardError::NotLeader),
        Ok(ForwardAnswer::Failed(m)) => Err(ForwardError::Failed(ActorError::Meta(m))),
        Err(s) => Err(ForwardError::Failed(wire::error_of(s, PEER))),
    }
}

impl Forward for Peers {
    fn write(&self, leader: NodeId, addr: &NodeAddr, cmd: MetaCommand) -> ForwardFuture<(u64, MetaResponse)> {
        let link = self.link(leader, &addr.addr);
        Box::pin(async move {
            let channel = link.and_then(|l| l.channel()).map_err(ForwardError::NotSent)?;
            let message = wire::encode_raft(&cmd).map_err(|s| ForwardError::Failed(wire::error_of(s, PEER)))?;
            let deadline = policy::FORWARD_DEADLINE;
            forwarded(within_forward(deadline, meta_client(channel).propose(call(message, deadline))).await)
        })
    }

    fn read_index(&self, leader: NodeId, addr: &NodeAddr) -> ForwardFuture<Option<u64>> {
        let link = self.link(leader, &addr.addr);
        Box::pin(async move {
            let channel = link.and_then(|l| l.channel()).map_err(ForwardError::NotSent)?;
            let mut client = MetaClient::new(channel);
            let deadline = policy::FORWARD_DEADLINE;
            forwarded(within_forward(deadline, client.read_index(call(rpc::Empty {}, deadline))).await)
        })
    }

    fn membership(&self, leader: NodeId, addr: &NodeAddr, change: MembershipChange) -> ForwardFuture<u64> {
        let link = self.link(leader, &addr.addr);
        Box::pin(async move {
            let channel = link.and_then(|l| l.channel()).map_err(ForwardError::NotSent)?;
            let message = wire::encode_raft(&change).map_err(|s| ForwardError::Failed(wire::error_of(s, PEER)))?;
            let deadline = policy::FORWARD_DEADLINE;
            forwarded(within_forward(deadline, meta_client(channel).change_membership(call(message, deadline))).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_tls::ClusterCa;

    /// A forwarded call to an address where nothing listens never had a connection: it is `NotSent`, which
    /// the caller may make again at the next leader.
    #[tokio::test]
    async fn a_call_that_never_connected_is_not_sent() {
        let ca = ClusterCa::generate("c0ffee").unwrap();
        let identity = ca.issue(1, "127.0.0.1").unwrap();
        let peers =
            Peers::new(1, "c0ffee", peer_tls::client_config(ca.cert_pem(), &identity).unwrap(), crate::net::tcp());
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cmd = MetaCommand::DeleteBucket { name: "b".into() };
        let addr = NodeAddr { addr: closed.to_string() };
        match Forward::write(peers.as_ref(), 2, &addr, cmd).await {
            Err(ForwardError::NotSent(_)) => {}
            other => panic!("expected NotSent, got {:?}", other.map(|_| ())),
        }
    }
}
