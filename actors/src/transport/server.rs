//! The gRPC server a node offers its peers: its disks (shard service), its metadata Raft (Raft's RPCs and
//! what followers forward to the leader) and its health, all over mutual TLS under the cluster CA.
//!
//! Invariants:
//! - Nothing is served before the TLS handshake has verified the caller's certificate; handshakes run
//!   beside the accept loop, each within [`policy::HANDSHAKE`], so a silent client holds nothing else up.
//! - A shard write that ends without its `commit` frame (the stream ended or broke, the caller went away)
//!   leaves no visible file: the local writer is dropped, which removes its temp file.
//! - Every request is answered from the node's own handles, under the same deadlines as local callers.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use futures::StreamExt as _;
use hoard_protocol::rpc;
use hoard_protocol::rpc::join_server::JoinServer;
use hoard_protocol::rpc::meta_server::Meta;
use hoard_protocol::rpc::meta_server::MetaServer;
use hoard_protocol::rpc::peer_server::Peer;
use hoard_protocol::rpc::peer_server::PeerServer;
use hoard_protocol::rpc::shard_server::Shard as ShardService;
use hoard_protocol::rpc::shard_server::ShardServer;
use hoard_protocol::rpc::write_ack::Ack;
use hoard_protocol::rpc::write_frame::Frame;
use hoard_protocol::rpc::RaftMessage;
use hoard_storage::meta::Raft;
use hoard_storage::meta::TypeConfig;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::VoteRequest;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tracing::Instrument as _;

use super::join::JoinService;
use super::policy;
use super::wire;
use crate::meta::confirm_read;
use crate::meta::write_outcome;
use crate::meta::ForwardError;
use crate::net::Listener;
use crate::peer_tls;
use crate::peer_tls::RevokedNodes;
use crate::shard::ShardHandle;
use crate::NodeContext;

/// The services of one node, answered from its context.
#[derive(Clone)]
pub struct Services {
    ctx: NodeContext,
}

impl Services {
    pub fn new(ctx: NodeContext) -> Services {
        Services { ctx }
    }

    fn disk(&self, slot: u32) -> Result<ShardHandle, Status> {
        self.ctx.shards.get(slot as usize).cloned().ok_or_else(|| Status::not_found(format!("no disk {slot} here")))
    }

    async fn raft(&self) -> Result<Raft, Status> {
        self.ctx.meta.raft.lock().await.clone().ok_or_else(|| Status::unavailable("metadata Raft not running"))
    }
}

type AckStream = Pin<Box<dyn Stream<Item = Result<rpc::WriteAck, Status>> + Send>>;

fn ack(a: Ack) -> rpc::WriteAck {
    rpc::WriteAck { ack: Some(a) }
}

#[tonic::async_trait]
impl ShardService for Services {
    type WriteStream = AckStream;

    async fn write(&self, request: Request<Streaming<rpc::WriteFrame>>) -> Result<Response<AckStream>, Status> {
        let span = super::trace::server_span(request.metadata(), "shard.write");
        async move {
            let mut frames = request.into_inner();
            let create = match frames.message().await? {
                Some(rpc::WriteFrame { frame: Some(Frame::Create(c)) }) => c,
                _ => return Err(Status::invalid_argument("a shard write starts with its create frame")),
            };
            let header = wire::header_from_wire(create.header)?;
            let mut writer = self.disk(create.disk)?.create(header).await.map_err(wire::status_of)?;
            // Room for every answer the sender's window allows, so the writer never waits on a slow reader.
            let (tx, rx) = mpsc::channel::<Result<rpc::WriteAck, Status>>(policy::PIECE_WINDOW as usize + 2);
            let _ = tx.send(Ok(ack(Ack::Created(rpc::Empty {})))).await;
            tokio::spawn(
                async move {
                    let mut pieces: u64 = 0;
                    loop {
                        let answer = match frames.message().await {
                            Ok(Some(rpc::WriteFrame { frame: Some(Frame::Piece(piece)) })) => {
                                match writer.append(vec![piece]).await {
                                    Ok(()) => {
                                        pieces += 1;
                                        Ok(ack(Ack::Pieces(pieces)))
                                    }
                                    Err(e) => Err(wire::status_of(e)),
                                }
                            }
                            Ok(Some(rpc::WriteFrame { frame: Some(Frame::Commit(_)) })) => {
                                let done = writer.commit().await;
                                let _ = tx
                                    .send(done.map(|()| ack(Ack::Committed(rpc::Empty {}))).map_err(wire::status_of))
                                    .await;
                                return;
                            }
                            Ok(Some(_)) => Err(Status::invalid_argument("a shard write takes pieces, then its commit")),
                            // Ended or broken before the commit: an abort. Dropping the writer removes its file.
                            Ok(None) | Err(_) => return,
                        };
                        let failed = answer.is_err();
                        if tx.send(answer).await.is_err() || failed {
                            return;
                        }
                    }
                }
                .in_current_span(),
            );
            let acks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) });
            let acks: AckStream = Box::pin(acks);
            Ok(Response::new(acks))
        }
        .instrument(span)
        .await
    }

    async fn read_piece(&self, request: Request<rpc::ReadPieceRequest>) -> Result<Response<rpc::Piece>, Status> {
        let span = super::trace::server_span(request.metadata(), "shard.read_piece");
        async move {
            let r = request.into_inner();
            let header = wire::header_from_wire(r.header)?;
            let block_len = usize::try_from(r.block_len).map_err(|_| Status::invalid_argument("block length"))?;
            let data = self
                .disk(r.disk)?
                .read_piece(header, r.block, block_len, policy::SHARD_CALL_DEADLINE)
                .await
                .map_err(wire::status_of)?;
            Ok(Response::new(rpc::Piece { data }))
        }
        .instrument(span)
        .await
    }

    async fn verify(&self, request: Request<rpc::VerifyRequest>) -> Result<Response<rpc::Empty>, Status> {
        let span = super::trace::server_span(request.metadata(), "shard.verify");
        async move {
            let r = request.into_inner();
            let header = wire::header_from_wire(r.header)?;
            self.disk(r.disk)?.verify(header, r.size, policy::SHARD_CALL_DEADLINE).await.map_err(wire::status_of)?;
            Ok(Response::new(rpc::Empty {}))
        }
        .instrument(span)
        .await
    }

    async fn remove(&self, request: Request<rpc::RemoveRequest>) -> Result<Response<rpc::Empty>, Status> {
        let span = super::trace::server_span(request.metadata(), "shard.remove");
        async move {
            let r = request.into_inner();
            self.disk(r.disk)?.remove_name(&r.name).await.map_err(wire::status_of)?;
            Ok(Response::new(rpc::Empty {}))
        }
        .instrument(span)
        .await
    }

    async fn list(&self, request: Request<rpc::ListRequest>) -> Result<Response<rpc::ListReply>, Status> {
        let r = request.into_inner();
        let entries = self.disk(r.disk)?.list().await.map_err(wire::status_of)?;
        let entries = entries
            .into_iter()
            .map(|e| rpc::DiskEntry { name: e.name, len: e.len, modified_ms: e.modified_ms })
            .collect();
        Ok(Response::new(rpc::ListReply { entries }))
    }
}

#[tonic::async_trait]
impl Meta for Services {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = wire::decode_raft(request.get_ref())?;
        let answer = self.raft().await?.append_entries(rpc).await;
        Ok(Response::new(wire::encode_raft(&answer)?))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: VoteRequest<u64> = wire::decode_raft(request.get_ref())?;
        let answer = self.raft().await?.vote(rpc).await;
        Ok(Response::new(wire::encode_raft(&answer)?))
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = wire::decode_raft(request.get_ref())?;
        let answer = self.raft().await?.install_snapshot(rpc).await;
        Ok(Response::new(wire::encode_raft(&answer)?))
    }

    async fn propose(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let span = super::trace::server_span(request.metadata(), "meta.propose");
        async move {
            let cmd: hoard_protocol::MetaCommand = wire::decode_raft(request.get_ref())?;
            let outcome = write_outcome(self.raft().await?.client_write(cmd).await);
            Ok(Response::new(wire::encode_raft(&ForwardAnswer::from(outcome))?))
        }
        .instrument(span)
        .await
    }

    async fn change_membership(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let change: hoard_protocol::MembershipChange = wire::decode_raft(request.get_ref())?;
        let outcome = crate::meta::apply_change(&self.raft().await?, change).await;
        Ok(Response::new(wire::encode_raft(&ForwardAnswer::from(outcome))?))
    }

    async fn read_index(&self, request: Request<rpc::Empty>) -> Result<Response<RaftMessage>, Status> {
        let span = super::trace::server_span(request.metadata(), "meta.read_index");
        async move {
            let outcome = confirm_read(&self.raft().await?).await;
            Ok(Response::new(wire::encode_raft(&ForwardAnswer::from(outcome))?))
        }
        .instrument(span)
        .await
    }
}

/// A forwarded call's outcome as it crosses the wire.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum ForwardAnswer<T> {
    Done(T),
    NotLeader,
    Failed(String),
}

impl<T> From<Result<T, ForwardError>> for ForwardAnswer<T> {
    fn from(r: Result<T, ForwardError>) -> Self {
        match r {
            Ok(v) => ForwardAnswer::Done(v),
            Err(ForwardError::NotLeader) => ForwardAnswer::NotLeader,
            Err(ForwardError::Unreachable(e) | ForwardError::NotSent(e) | ForwardError::Failed(e)) => {
                ForwardAnswer::Failed(e.to_string())
            }
        }
    }
}

#[tonic::async_trait]
impl Peer for Services {
    async fn health(&self, _request: Request<rpc::Empty>) -> Result<Response<rpc::HealthReply>, Status> {
        let disks =
            self.ctx.shards.iter().map(|s| rpc::DiskHealth { slot: s.index, degraded: s.io.is_degraded() }).collect();
        Ok(Response::new(rpc::HealthReply {
            node_id: self.ctx.config.node_id,
            disks,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn status(&self, _request: Request<rpc::Empty>) -> Result<Response<RaftMessage>, Status> {
        let health = crate::metrics::NodeHealth::read(&self.ctx).await;
        Ok(Response::new(wire::encode_raft(&health)?))
    }
}

/// A running peer server; dropping it stops accepting and serving.
pub struct PeerServerTask {
    accepting: tokio::task::JoinHandle<()>,
    serving: tokio::task::JoinHandle<()>,
    joining: Option<tokio::task::JoinHandle<()>>,
    revoking: tokio::task::JoinHandle<()>,
    connections: tokio_util::sync::CancellationToken,
}

impl Drop for PeerServerTask {
    fn drop(&mut self) {
        self.accepting.abort();
        self.serving.abort();
        if let Some(joining) = &self.joining {
            joining.abort();
        }
        self.revoking.abort();
        self.connections.cancel();
    }
}

/// The TLS of a peer server: members' connections, and (on a node that signs joins) joiners' ones.
pub struct ServerTls {
    pub members: Arc<rustls::ServerConfig>,
    /// The configuration and service of join connections (ALPN [`peer_tls::JOIN_ALPN`]).
    pub join: Option<(Arc<rustls::ServerConfig>, JoinService)>,
    /// Told when a node is removed: every member connection is then cut, and the next handshake of the
    /// removed node fails.
    pub revoked: Arc<RevokedNodes>,
}

/// Serves `services` on `listener` with mutual TLS until the returned task is dropped; a connection asking
/// for the join protocol gets only the join service.
pub fn serve(mut listener: Box<dyn Listener>, tls: ServerTls, services: Services) -> PeerServerTask {
    let (tx, rx) = mpsc::channel(64);
    let (join_tx, join_rx) = mpsc::channel(policy::JOIN_CONNECTIONS);
    let join_slots = Arc::new(tokio::sync::Semaphore::new(policy::JOIN_CONNECTIONS));
    let connections = tokio_util::sync::CancellationToken::new();
    // Member connections are cut together when a node is removed: they are made under `current`, replaced then.
    let current = Arc::new(std::sync::Mutex::new(connections.child_token()));
    let mut removals = tls.revoked.subscribe();
    let (parent, latest) = (connections.clone(), current.clone());
    let revoking = tokio::spawn(async move {
        while removals.changed().await.is_ok() {
            let fresh = parent.child_token();
            let old = std::mem::replace(&mut *latest.lock().unwrap_or_else(|p| p.into_inner()), fresh);
            old.cancel();
            tracing::info!("a node was removed: peer connections are made again, without it");
        }
    });
    let members = tls.members.clone();
    let join_tls = tls.join.as_ref().map(|(config, _)| config.clone());
    let accepting = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "peer listener: accept failed");
                    tokio::time::sleep(policy::RETRY_PAUSE).await;
                    continue;
                }
            };
            let (members, join_tls, tx, join_tx) = (members.clone(), join_tls.clone(), tx.clone(), join_tx.clone());
            let token = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let join_slots = join_slots.clone();
            tokio::spawn(async move {
                let handshake = async {
                    let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
                    let wants_join = start
                        .client_hello()
                        .alpn()
                        .is_some_and(|mut offered| offered.any(|p| p == peer_tls::JOIN_ALPN));
                    match (wants_join, join_tls) {
                        (false, _) => Ok(Some((false, start.into_stream(members).await?))),
                        (true, Some(config)) => Ok(Some((true, start.into_stream(config).await?))),
                        (true, None) => Ok::<_, std::io::Error>(None),
                    }
                };
                match tokio::time::timeout(policy::HANDSHAKE, handshake).await {
                    Ok(Ok(Some((false, stream)))) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(Severable::new(stream, &token, None))).await;
                    }
                    Ok(Ok(Some((true, stream)))) => {
                        // A stranger's connection: a bounded number at once, each for a bounded time.
                        let Ok(slot) = join_slots.try_acquire_owned() else {
                            tracing::info!(%peer, "join connection dropped: too many at once");
                            return;
                        };
                        let limit = token.child_token();
                        let expire = limit.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(policy::JOIN_DEADLINE).await;
                            expire.cancel();
                        });
                        let _ = join_tx.send(Ok::<_, std::io::Error>(Severable::new(stream, &limit, Some(slot)))).await;
                    }
                    Ok(Ok(None)) => tracing::info!(%peer, "join refused: this node does not sign joins"),
                    Ok(Err(e)) => tracing::info!(%peer, error = %e, "peer connection refused at the TLS handshake"),
                    Err(_) => tracing::info!(%peer, "peer connection dropped: no TLS handshake in time"),
                }
            });
        }
    });
    let incoming = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) });
    let serving = tokio::spawn(async move {
        let max = policy::MAX_MESSAGE;
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(policy::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(policy::KEEPALIVE_TIMEOUT))
            .initial_stream_window_size(Some(policy::STREAM_WINDOW))
            .initial_connection_window_size(Some(policy::CONNECTION_WINDOW))
            .add_service(
                ShardServer::new(services.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
            )
            .add_service(
                MetaServer::new(services.clone()).max_decoding_message_size(max).max_encoding_message_size(max),
            )
            .add_service(PeerServer::new(services))
            .serve_with_incoming(incoming.boxed())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "peer server stopped");
        }
    });
    let joining = tls.join.map(|(_, service)| {
        let incoming = futures::stream::unfold(join_rx, |mut rx| async move { rx.recv().await.map(|s| (s, rx)) });
        tokio::spawn(async move {
            let max = policy::MAX_JOIN_MESSAGE;
            let served = tonic::transport::Server::builder()
                .timeout(policy::JOIN_DEADLINE)
                .add_service(JoinServer::new(service).max_decoding_message_size(max).max_encoding_message_size(max))
                .serve_with_incoming(incoming.boxed())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "join server stopped");
            }
        })
    });
    PeerServerTask { accepting, serving, joining, revoking, connections }
}

/// A peer connection that the server can cut: once `cut` fires, every read and write fails, so the HTTP/2
/// connection (and the task serving it) ends even while the peer keeps it open. Without this a stopped or
/// restarted server would leave its old connections answering for a node that is gone.
pub(crate) struct Severable<S> {
    inner: S,
    cut: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// The connection's place among a bounded number (join connections), given back when it closes.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<S> Severable<S> {
    fn new(
        inner: S,
        token: &tokio_util::sync::CancellationToken,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Self {
        Severable { inner, cut: Box::pin(token.clone().cancelled_owned()), _slot: slot }
    }

    fn severed(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.cut.as_mut().poll(cx).is_ready()
    }
}

fn cut_off() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the peer server stopped")
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Severable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.severed(cx) {
            return std::task::Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Severable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.severed(cx) {
            return std::task::Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        if self.severed(cx) {
            return std::task::Poll::Ready(Err(cut_off()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Severable<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
