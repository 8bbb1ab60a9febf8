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
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;
use tracing::Instrument as _;

use super::policy;
use super::wire;
use crate::meta::read_outcome;
use crate::meta::write_outcome;
use crate::meta::ForwardError;
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
                                match writer.append(piece).await {
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
            Ok(Response::new(rpc::Piece { data: data.into() }))
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

    async fn read_index(&self, request: Request<rpc::Empty>) -> Result<Response<RaftMessage>, Status> {
        let span = super::trace::server_span(request.metadata(), "meta.read_index");
        async move {
            let outcome = read_outcome(self.raft().await?.ensure_linearizable().await);
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
            Err(ForwardError::Unreachable(e) | ForwardError::Failed(e)) => ForwardAnswer::Failed(e.to_string()),
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
}

/// A running peer server; dropping it stops accepting and serving.
pub struct PeerServerTask {
    accepting: tokio::task::JoinHandle<()>,
    serving: tokio::task::JoinHandle<()>,
    connections: tokio_util::sync::CancellationToken,
}

impl Drop for PeerServerTask {
    fn drop(&mut self) {
        self.accepting.abort();
        self.serving.abort();
        self.connections.cancel();
    }
}

/// Serves `services` on `listener` with mutual TLS `tls` until the returned task is dropped.
pub fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, services: Services) -> PeerServerTask {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    let connections = tokio_util::sync::CancellationToken::new();
    let token = connections.clone();
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
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, token) = (acceptor.clone(), tx.clone(), token.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(policy::HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(Severable::new(stream, &token))).await;
                    }
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
    PeerServerTask { accepting, serving, connections }
}

/// A peer connection that the server can cut: once `cut` fires, every read and write fails, so the HTTP/2
/// connection (and the task serving it) ends even while the peer keeps it open. Without this a stopped or
/// restarted server would leave its old connections answering for a node that is gone.
pub(crate) struct Severable<S> {
    inner: S,
    cut: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl<S> Severable<S> {
    fn new(inner: S, token: &tokio_util::sync::CancellationToken) -> Self {
        Severable { inner, cut: Box::pin(token.clone().cancelled_owned()) }
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
