//! The listener actor: accepts TCP connections and serves S3 (and the health endpoints) over HTTP/1.1
//! and HTTP/2 with hyper, in clear or over TLS (one listener per address; a node may run both).
//!
//! Invariants:
//! - Every accepted socket has TCP_NODELAY set: small requests must not wait on Nagle's algorithm.
//! - The listener never does a request's work itself; each request runs in its own session actor.
//! - At most `MAX_CONNECTIONS` connections are open at once; each holds a permit until it closes.
//! - A TLS listener finishes the handshake within `HEADER_READ_DEADLINE` or drops the connection.
//! - Stopping the actor closes the listening socket and every connection it accepted: a stopped node
//!   answers nothing, not even on a client's kept-alive connection.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::frontend::Frontend;

/// How long a client may take to send a request's headers.
pub const HEADER_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Open connections per listener; at the cap the listener stops accepting until one closes (clients then
/// wait in the kernel's backlog instead of exhausting file descriptors and memory).
pub const MAX_CONNECTIONS: usize = 4096;

pub struct Listener;

pub struct ListenerArgs {
    pub addr: SocketAddr,
    pub frontend: Arc<Frontend>,
    /// Told the bound address once listening (useful with port 0).
    pub bound: watch::Sender<Option<SocketAddr>>,
    /// Serve HTTPS with this configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct ListenerState {
    accept: JoinHandle<()>,
}

impl Actor for Listener {
    type Msg = ();
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: ListenerArgs) -> Result<ListenerState, ActorProcessingErr> {
        let listener = TcpListener::bind(args.addr).await?;
        let local = listener.local_addr()?;
        let scheme = if args.tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %local, scheme, "S3 endpoint listening");
        args.bound.send_replace(Some(local));
        let frontend = args.frontend;
        let acceptor = args.tls.map(TlsAcceptor::from);
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting the task drops the set, which aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                while connections.try_join_next().is_some() {}
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (socket, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let service = frontend.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    match acceptor {
                        None => serve(TokioIo::new(socket), service, peer).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HEADER_READ_DEADLINE, acceptor.accept(socket)).await {
                                Ok(Ok(tls)) => serve(TokioIo::new(tls), service, peer).await,
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
        });
        Ok(ListenerState { accept })
    }

    async fn post_stop(&self, _me: ActorRef<()>, state: &mut ListenerState) -> Result<(), ActorProcessingErr> {
        state.accept.abort();
        // Wait until the aborted task has dropped the socket, so the port is free once the actor has stopped
        // (a restarted node binds it again at once).
        let _ = (&mut state.accept).await;
        Ok(())
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2, whichever the client speaks) until it closes.
async fn serve<I>(io: TokioIo<I>, service: Arc<Frontend>, peer: SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and never finishes its headers is dropped.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_DEADLINE);
    let conn = builder.serve_connection(
        io,
        hyper::service::service_fn(move |req| {
            let service = service.clone();
            async move { service.call(req).await }
        }),
    );
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
