//! The listener actor: accepts TCP connections and serves S3 (and the health endpoints) over HTTP/1.1
//! and HTTP/2 with hyper, in clear or over TLS (one listener per address; a node may run both).
//!
//! Invariants:
//! - Sockets come from the node's [`Net`] (the operating system's TCP, with TCP_NODELAY on every accepted
//!   socket: small requests must not wait on Nagle's algorithm).
//! - The listener never does a request's work itself; each request runs in its own session actor.
//! - At most [`ConnectionLimits::max_connections`] connections are open at once (at the cap the listener
//!   stops accepting: clients wait in the kernel's backlog), and at most
//!   [`ConnectionLimits::max_connections_per_ip`] from one client address, so one address cannot lock the
//!   others out. A new connection from an address at its cap closes that address's longest-idle connection
//!   (one with no request in flight: a client's pooled keep-alive, or a silent one) and takes its place; when
//!   all of them are busy, the new one is closed at once.
//! - A connection's first request arrives within [`ConnectionLimits::first_request`] of its accept, TLS
//!   handshake and protocol detection included, or the connection is closed: a silent client holds nothing
//!   for long. After a request, a connection with none in flight is closed after
//!   [`ConnectionLimits::idle`]. HTTP/2 connections are pinged; one that does not answer is closed.
//! - Stopping the actor closes the listening socket and every connection it accepted: a stopped node
//!   answers nothing, not even on a client's kept-alive connection.
//! - A [`Drain`] begun (the node stopping on SIGTERM) closes the listening socket at once, closes idle
//!   connections, and lets each connection with a request in flight finish that request, however long it
//!   takes; the node decides how long it waits ([`Drain::closed`]) before stopping the actor.

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
use hoard_actors::net::Net;
use http_body::Frame;
use http_body::SizeHint;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use tokio::sync::watch;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::frontend::Frontend;

/// Why a connection closes when the node stops.
const STOPPING: &str = "the node is stopping";

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
            max_connections_per_ip: 1024,
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            http2_keepalive: Duration::from_secs(30),
        }
    }
}

/// A node's graceful stop, shared by its listeners: once begun, nothing new is accepted and each connection
/// closes after the request it has in flight, if any.
#[derive(Clone)]
pub struct Drain(Arc<DrainState>);

struct DrainState {
    begun: watch::Sender<bool>,
    open: AtomicUsize,
    closed: Notify,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain(Arc::new(DrainState { begun: watch::channel(false).0, open: AtomicUsize::new(0), closed: Notify::new() }))
    }
}

impl Drain {
    /// Stops accepting and closes every connection once its request in flight is answered.
    pub fn begin(&self) {
        self.0.begun.send_replace(true);
    }

    pub fn has_begun(&self) -> bool {
        *self.0.begun.borrow()
    }

    /// Resolves once the drain has begun.
    async fn begun(&self) {
        let mut rx = self.0.begun.subscribe();
        let _ = rx.wait_for(|b| *b).await;
    }

    /// Connections open now across the node's listeners, and listeners still accepting.
    pub fn open(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }

    /// Resolves when no connection is open.
    pub async fn closed(&self) {
        loop {
            let closed = self.0.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }

    /// Counts one connection (or accepting listener) until the guard drops.
    fn hold(&self) -> DrainGuard {
        self.0.open.fetch_add(1, Ordering::SeqCst);
        DrainGuard(self.clone())
    }
}

struct DrainGuard(Drain);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.0 .0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0 .0.closed.notify_waiters();
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
    /// The node's graceful stop.
    pub drain: Drain,
    /// Where the listening socket comes from.
    pub net: Arc<dyn Net>,
}

pub struct ListenerState {
    accept: JoinHandle<()>,
}

impl Actor for Listener {
    type Msg = ();
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: ListenerArgs) -> Result<ListenerState, ActorProcessingErr> {
        let drain = args.drain;
        if drain.has_begun() {
            // Restarted while the node stops: the address stays closed.
            return Ok(ListenerState { accept: tokio::spawn(async {}) });
        }
        let mut listener = args.net.bind(args.addr).await?;
        let local = listener.local_addr()?;
        let scheme = if args.tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = %local, scheme, "S3 endpoint listening");
        args.bound.send_replace(Some(local));
        let frontend = args.frontend;
        let acceptor = args.tls.map(TlsAcceptor::from);
        let limits = args.limits;
        // Counted as open until it has stopped accepting, so that a drain waits for every listener to close
        // its socket (and for any connection accepted just before) before it reports everything closed.
        let accepting = drain.hold();
        let accept = tokio::spawn(async move {
            let accepting = accepting;
            // Owned by this task: aborting the task drops the set, which aborts every connection.
            let mut connections = tokio::task::JoinSet::new();
            let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
            let per_ip = PerIp::new(limits.max_connections_per_ip);
            loop {
                while connections.try_join_next().is_some() {}
                let accepted = tokio::select! {
                    biased;
                    _ = drain.begun() => break,
                    accepted = async {
                        let permit = permits.clone().acquire_owned().await;
                        (permit, listener.accept().await)
                    } => accepted,
                };
                let (Ok(permit), accepted) = accepted else { return };
                let (socket, peer) = match accepted {
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
                let activity = slot.activity.clone();
                let service = frontend.clone();
                let acceptor = acceptor.clone();
                let drain = drain.clone();
                let counted = drain.hold();
                connections.spawn(async move {
                    let _held = (permit, slot, counted);
                    match acceptor {
                        None => serve(TokioIo::new(socket), service, peer, limits, activity, drain).await,
                        Some(acceptor) => {
                            let deadline = activity.accepted + limits.first_request;
                            let handshake = acceptor.accept(socket);
                            let tls = tokio::select! {
                                tls = tokio::time::timeout_at(deadline, handshake) => tls,
                                _ = activity.evict.notified() => return,
                                _ = drain.begun() => return,
                            };
                            match tls {
                                Ok(Ok(tls)) => serve(TokioIo::new(tls), service, peer, limits, activity, drain).await,
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            drop(listener);
            drop(accepting);
            tracing::info!(addr = %local, open = connections.len(), "stopped accepting; open connections close after their requests in flight");
            while connections.join_next().await.is_some() {}
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
    open: Arc<Mutex<HashMap<IpAddr, Vec<Arc<Activity>>>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp { max, open: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A slot for one more connection from `ip`, or `None` at its cap with every connection busy. At the cap
    /// the longest-idle connection of `ip` is told to close and gives up its place. The slot frees itself on
    /// drop.
    fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let conns = open.entry(ip).or_default();
        if conns.len() >= self.max {
            let idlest = conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, c)| c.last_active())
                .map(|(i, _)| i)?;
            let evicted = conns.swap_remove(idlest);
            evicted.evict.notify_one();
        }
        let activity = Arc::new(Activity::new());
        conns.push(activity.clone());
        Some(IpSlot { ip, activity, of: self.clone() })
    }
}

struct IpSlot {
    ip: IpAddr,
    activity: Arc<Activity>,
    of: PerIp,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = open.get_mut(&self.ip) {
            conns.retain(|c| !Arc::ptr_eq(c, &self.activity));
            if conns.is_empty() {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a connection's watchdog needs to know of its requests.
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    /// When a request last started or finished (`None` until the first one arrived): the idle timeout runs
    /// from here, and a watchdog that sees it move knows the connection was busy meanwhile.
    last_request: Mutex<Option<Instant>>,
    /// Told each time a request finishes.
    done: Notify,
    /// Told when a newer connection from the same address takes this one's place.
    evict: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_request: Mutex::new(None),
            done: Notify::new(),
            evict: Notify::new(),
        }
    }

    fn last_request(&self) -> Option<Instant> {
        *self.last_request.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the connection last did anything: its accept, or the start or end of its last request.
    fn last_active(&self) -> Instant {
        self.last_request().unwrap_or(self.accepted)
    }

    fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut last = self.last_request.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some(Instant::now());
    }

    fn finished(&self) {
        let mut last = self.last_request.lock().unwrap_or_else(|p| p.into_inner());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        *last = Some(Instant::now());
        drop(last);
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
/// misses its first-request deadline, it stays idle too long, or a newer connection takes its place.
async fn serve<I>(
    io: TokioIo<I>,
    service: Arc<Frontend>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    drain: Drain,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
        hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(crate::access::ClientAddr(peer.ip()));
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
    let why = loop {
        let busy = activity.in_flight.load(Ordering::SeqCst) > 0;
        let since = activity.last_request();
        let expires = match since {
            None => activity.accepted + limits.first_request,
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
            _ = activity.evict.notified() => break "a newer connection from this address took its place",
            _ = drain.begun() => break STOPPING,
            _ = tokio::time::sleep_until(expires), if !busy => {
                if activity.last_request() == since && activity.in_flight.load(Ordering::SeqCst) == 0 {
                    break if since.is_none() { "no request in time" } else { "idle" };
                }
            }
        }
    };
    tracing::debug!(%peer, why, "closing connection");
    conn.as_mut().graceful_shutdown();
    if why == STOPPING {
        // The request in flight finishes, however long it takes: the node bounds the whole stop.
        let _ = conn.as_mut().await;
    } else {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_at_its_cap_gives_its_idlest_connection_up_and_never_a_busy_one() {
        let per_ip = PerIp::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let first = per_ip.take(ip).expect("under the cap");
        let second = per_ip.take(ip).expect("under the cap");
        first.activity.started();
        second.activity.started();
        assert!(per_ip.take(ip).is_none(), "every connection is busy: the newcomer is refused");
        let other = per_ip.take([10, 0, 0, 2].into());
        assert!(other.is_some(), "another address has its own cap");

        second.activity.finished();
        let third = per_ip.take(ip).expect("an idle connection gives up its place");
        // The idle one was told to close; the busy one was not.
        tokio::time::timeout(Duration::from_secs(1), second.activity.evict.notified()).await.expect("evicted");
        let busy = tokio::time::timeout(Duration::from_millis(50), first.activity.evict.notified()).await;
        assert!(busy.is_err(), "a connection with a request in flight is never evicted");
        drop((first, second, third));
        assert!(per_ip.open.lock().unwrap().get(&ip).is_none(), "slots free themselves");
    }
}
