//! The listener actor: accepts TCP connections and serves S3 (and the health endpoints) over HTTP/1.1
//! and HTTP/2 with hyper, in clear or over TLS (one listener per address; a node may run both).
//!
//! Invariants:
//! - Every accepted socket has TCP_NODELAY set: small requests must not wait on Nagle's algorithm.
//! - The listener never does a request's work itself; each request runs in its own session actor.
//! - At most [`ConnectionLimits::max_connections`] connections are open at once (at the cap the listener
//!   stops accepting: clients wait in the kernel's backlog), and at most
//!   [`ConnectionLimits::max_connections_per_ip`] from one client address (one more is closed at once), so
//!   one address cannot lock the others out.
//! - A connection's first request arrives within [`ConnectionLimits::first_request`] of its accept, TLS
//!   handshake and protocol detection included, or the connection is closed: a silent client holds nothing
//!   for long. After a request, a connection with none in flight is closed after
//!   [`ConnectionLimits::idle`]. HTTP/2 connections are pinged; one that does not answer is closed.
//! - Stopping the actor closes the listening socket and every connection it accepted: a stopped node
//!   answers nothing, not even on a client's kept-alive connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body::SizeHint;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::frontend::Frontend;

/// How long an expired connection may take to finish what it is sending after a graceful shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// What a listener lets its clients hold. Every field is a setting of `hoard serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per listener.
    pub max_connections: usize,
    /// Open connections from one client IP address.
    pub max_connections_per_ip: usize,
    /// From accept to the first request's headers (TLS handshake and protocol detection included); also
    /// the time a client may take to send any request's headers.
    pub first_request: Duration,
    /// How long a connection with no request in flight stays open after its last response.
    pub idle: Duration,
    /// How often an HTTP/2 connection is pinged; one that does not answer within the same time is closed.
    pub http2_keepalive: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            max_connections_per_ip: 256,
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            http2_keepalive: Duration::from_secs(30),
        }
    }
}

pub struct Listener;

pub struct ListenerArgs {
    pub addr: SocketAddr,
    pub frontend: Arc<Frontend>,
    /// Told the bound address once listening (useful with port 0).
    pub bound: watch::Sender<Option<SocketAddr>>,
    /// Serve HTTPS with this configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: ConnectionLimits,
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
        let limits = args.limits;
        let accept = tokio::spawn(async move {
            // Owned by this task: aborting the task drops the set, which aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
            let per_ip = PerIp::new(limits.max_connections_per_ip);
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
                let Some(slot) = per_ip.take(peer.ip()) else {
                    tracing::debug!(%peer, "closed: too many connections from this address");
                    continue;
                };
                let accepted = Instant::now();
                let _ = socket.set_nodelay(true);
                let service = frontend.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let _held = (permit, slot);
                    match acceptor {
                        None => serve(TokioIo::new(socket), service, peer, limits, accepted).await,
                        Some(acceptor) => {
                            let deadline = accepted + limits.first_request;
                            match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
                                Ok(Ok(tls)) => serve(TokioIo::new(tls), service, peer, limits, accepted).await,
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

/// Open connections by client address.
#[derive(Clone)]
struct PerIp {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp { max, open: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A slot for one more connection from `ip`, or `None` at its cap. The slot frees itself on drop.
    fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot { ip, of: self.clone() })
    }
}

struct IpSlot {
    ip: IpAddr,
    of: PerIp,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a connection's watchdog needs to know of its requests.
struct Activity {
    in_flight: AtomicUsize,
    /// When the connection last became idle (`None` until its first request arrived).
    idle_since: Mutex<Option<Instant>>,
    /// Told each time a request finishes.
    done: Notify,
}

impl Activity {
    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        *idle = Some(Instant::now());
    }

    fn finished(&self) {
        let mut idle = self.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        *idle = Some(Instant::now());
        drop(idle);
        self.done.notify_one();
    }
}

/// Held by a request from its start until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2, whichever the client speaks) until it closes, the client
/// misses its first-request deadline, or it stays idle too long.
async fn serve<I>(io: TokioIo<I>, service: Arc<Frontend>, peer: SocketAddr, limits: ConnectionLimits, accepted: Instant)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity =
        Arc::new(Activity { in_flight: AtomicUsize::new(0), idle_since: Mutex::new(None), done: Notify::new() });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.first_request);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.http2_keepalive))
        .keep_alive_timeout(limits.http2_keepalive);
    let counted = activity.clone();
    let conn = builder.serve_connection(
        io,
        hyper::service::service_fn(move |req| {
            let service = service.clone();
            counted.started();
            let in_flight = InFlight(counted.clone());
            async move {
                let resp = service.call(req).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| Tracked { inner, _in_flight: in_flight }))
            }
        }),
    );
    tokio::pin!(conn);
    loop {
        let busy = activity.in_flight.load(Ordering::SeqCst) > 0;
        let since = *activity.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        let expires = match since {
            None => accepted + limits.first_request,
            Some(at) => at + limits.idle,
        };
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = activity.done.notified(), if busy => {}
            _ = tokio::time::sleep_until(expires), if !busy => {
                let unchanged = *activity.idle_since.lock().unwrap_or_else(|p| p.into_inner()) == since;
                if unchanged && activity.in_flight.load(Ordering::SeqCst) == 0 {
                    let why = if since.is_none() { "no request in time" } else { "idle" };
                    tracing::debug!(%peer, why, "closing connection");
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                    return;
                }
            }
        }
    }
}
