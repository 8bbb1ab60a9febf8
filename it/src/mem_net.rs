//! An in-memory network for in-process nodes, and an `aws-sdk-s3` client that speaks HTTP over it.
//!
//! A connection is a pair of `tokio::io::duplex` pipes: no socket, no kernel, no thread. Bytes written on one
//! end are readable on the other as soon as the writing task yields, so on a current-thread runtime with paused
//! time the order of every read and write follows from the tasks alone. Over loopback TCP it would not: when
//! the kernel hands a segment to its softirq thread (as it does under load), the runtime's I/O poll finds
//! nothing yet, paused time jumps to the next timer, and two runs of one seed part.
//!
//! Invariants:
//! - A listener is reachable at the address it reports from the moment `bind` returns until it is dropped;
//!   connecting to any other address fails with `ConnectionRefused`, as TCP does.
//! - Port 0 binds the next free port, counting up from [`FIRST_PORT`]: the same binds give the same ports.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::MutexGuard;

use aws_smithy_runtime_api::client::http::http_client_fn;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::http::HttpConnectorFuture;
use aws_smithy_runtime_api::client::http::SharedHttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use hoard_actors::net::Conn;
use hoard_actors::net::Listener;
use hoard_actors::net::Net;
use hoard_actors::net::NetFuture;
use tokio::io::DuplexStream;
use tokio::sync::mpsc;

/// The first port a bind to port 0 gets.
pub const FIRST_PORT: u16 = 20_000;
/// Bytes either direction of a connection holds before its writer waits for the reader.
const PIPE_BYTES: usize = 64 * 1024;

/// Connections on their way to a listener: the server's end and the address it came from.
type Backlog = mpsc::UnboundedSender<(DuplexStream, SocketAddr)>;

#[derive(Debug, Default)]
struct Table {
    listeners: HashMap<SocketAddr, Backlog>,
    /// The last port handed out, to a listener (port 0) or a connection's own end.
    last_port: Option<u16>,
}

impl Table {
    fn next_port(&mut self) -> io::Result<u16> {
        let port = match self.last_port {
            None => FIRST_PORT,
            Some(p) => p.checked_add(1).ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port"))?,
        };
        self.last_port = Some(port);
        Ok(port)
    }
}

/// An in-memory network (see the module's docs). Clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemNet {
    table: Arc<Mutex<Table>>,
}

impl MemNet {
    pub fn new() -> MemNet {
        MemNet::default()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection to `addr`: this end of it, with the addresses of both ends.
    fn dial(&self, addr: SocketAddr) -> io::Result<Conn> {
        let mut table = self.table();
        let backlog = table.listeners.get(&addr).cloned();
        let Some(backlog) = backlog else { return Err(refused(addr)) };
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), table.next_port()?);
        let (mine, theirs) = tokio::io::duplex(PIPE_BYTES);
        if backlog.send((theirs, local)).is_err() {
            table.listeners.remove(&addr);
            return Err(refused(addr));
        }
        Ok(Conn::new(mine, Some(local), Some(addr)))
    }
}

/// What connecting to `addr` gets when nothing listens there.
fn refused(addr: SocketAddr) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, format!("nothing listens on {addr}"))
}

impl Net for MemNet {
    fn bind(&self, addr: SocketAddr) -> NetFuture<'static, Box<dyn Listener>> {
        let net = self.clone();
        Box::pin(async move {
            let mut table = net.table();
            let port = if addr.port() == 0 { table.next_port()? } else { addr.port() };
            let at = SocketAddr::new(addr.ip(), port);
            if table.listeners.get(&at).is_some_and(|b| !b.is_closed()) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{at} is taken")));
            }
            let (tx, rx) = mpsc::unbounded_channel();
            table.listeners.insert(at, tx);
            Ok(Box::new(MemListener { at, backlog: rx }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: String) -> NetFuture<'static, Conn> {
        let net = self.clone();
        Box::pin(async move {
            let addr: SocketAddr =
                addr.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
            net.dial(addr)
        })
    }
}

struct MemListener {
    at: SocketAddr,
    backlog: mpsc::UnboundedReceiver<(DuplexStream, SocketAddr)>,
}

impl Listener for MemListener {
    fn accept(&mut self) -> NetFuture<'_, (Conn, SocketAddr)> {
        Box::pin(async move {
            let (io, from) = self.backlog.recv().await.ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
            Ok((Conn::new(io, Some(self.at), Some(from)), from))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.at)
    }
}

/// `client` with its requests sent over `net`: each on a fresh HTTP/1.1 connection to the host and port of
/// its URL (plain HTTP only).
pub fn over(net: &MemNet, client: aws_sdk_s3::Client) -> aws_sdk_s3::Client {
    let connector = SharedHttpConnector::new(MemConnector(net.clone()));
    let http = http_client_fn(move |_, _| connector.clone());
    aws_sdk_s3::Client::from_conf(client.config().to_builder().http_client(http).build())
}

#[derive(Debug)]
struct MemConnector(MemNet);

impl HttpConnector for MemConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let net = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (mut head, body) = request.into_parts();
            let authority = head.uri.authority().map(|a| a.to_string());
            let addr = authority.ok_or_else(|| ConnectorError::user("a request URL without a host".into()))?;
            // As hyper's pooled client sends it: the path in the request line, the host in its header.
            if !head.headers.contains_key(http::header::HOST) {
                let host = http::HeaderValue::from_str(&addr).map_err(|e| ConnectorError::user(e.into()))?;
                head.headers.insert(http::header::HOST, host);
            }
            let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
            head.uri = path.parse().map_err(|e: http::uri::InvalidUri| ConnectorError::user(e.into()))?;
            let request = http::Request::from_parts(head, body);
            let conn = net.connect(addr).await.map_err(|e| ConnectorError::io(e.into()))?;
            let io = hyper_util::rt::TokioIo::new(conn);
            let (mut send, connection) =
                hyper::client::conn::http1::handshake(io).await.map_err(|e| ConnectorError::io(e.into()))?;
            tokio::spawn(connection);
            let response = send.send_request(request).await.map_err(|e| ConnectorError::io(e.into()))?;
            let response = response.map(SdkBody::from_body_1_x);
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// A bind to port 0 gets a port of its own; a connection reaches the listener at it, both ends name each
    /// other, and bytes go both ways, more than a pipe holds at once. Another port refuses, and so does the
    /// listener's once it is dropped.
    #[tokio::test]
    async fn a_connection_reaches_its_listener_and_nothing_else() {
        let net = MemNet::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut listener = net.bind(any).await.unwrap();
        let at = listener.local_addr().unwrap();
        assert_eq!(at.port(), FIRST_PORT);
        assert_ne!(net.bind(any).await.unwrap().local_addr().unwrap(), at, "each bind, its own port");
        assert_eq!(net.bind(at).await.err().map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));

        let (dialled, accepted) = tokio::join!(net.connect(at.to_string()), listener.accept());
        let (mut client, (mut server, from)) = (dialled.unwrap(), accepted.unwrap());
        assert_eq!(client.remote_addr(), Some(at));
        assert_eq!(server.remote_addr(), Some(from));
        // More than a pipe holds: the writer waits for the reader, and every byte arrives in order.
        let sent: Vec<u8> = (0..3 * PIPE_BYTES).map(|i| (i % 251) as u8).collect();
        let mut got = Vec::new();
        let (wrote, read) = tokio::join!(
            async {
                client.write_all(&sent).await?;
                client.shutdown().await
            },
            server.read_to_end(&mut got)
        );
        wrote.unwrap();
        assert_eq!(read.unwrap(), sent.len());
        assert!(got == sent, "the bytes arrived as sent");
        server.write_all(b"back").await.unwrap();
        drop(server);
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"back", "then the other way, and the end of the stream once the server is gone");

        let elsewhere = SocketAddr::from(([127, 0, 0, 1], at.port() + 100));
        let refused = |r: io::Result<Conn>| r.err().map(|e| e.kind());
        assert_eq!(refused(net.connect(elsewhere.to_string()).await), Some(io::ErrorKind::ConnectionRefused));
        drop(listener);
        assert_eq!(refused(net.connect(at.to_string()).await), Some(io::ErrorKind::ConnectionRefused));
    }
}
