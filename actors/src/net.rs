//! The network seam: every socket a node opens (its S3 endpoints, its peer server, its connections to peers)
//! comes from a [`Net`]. A real node uses [`TcpNet`] (the operating system's TCP, `TCP_NODELAY` on every
//! connection); the simulation gives each node a simulated network in which links can be cut, delayed or
//! made to drop, so a whole cluster runs in one process under one seeded schedule.
//!
//! Invariants:
//! - A [`Conn`] is a byte stream and nothing more: TLS, HTTP and gRPC run over it unchanged, whatever
//!   network made it, so the simulated cluster runs the same transport code as a real one.
//! - Its addresses are what the network says they are: a simulated connection reports simulated addresses.

use std::future::Future;
use std::io;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::task::Poll;

use tokio::io::AsyncRead;
use tokio::io::AsyncWrite;
use tokio::io::ReadBuf;

/// A boxed future a [`Net`] returns.
pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// A byte stream a [`Conn`] can carry.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Where sockets come from.
pub trait Net: Send + Sync + 'static {
    /// Listens on `addr` (port 0: any free port; [`Listener::local_addr`] tells which).
    fn bind(&self, addr: SocketAddr) -> NetFuture<'static, Box<dyn Listener>>;
    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: String) -> NetFuture<'static, Conn>;
}

/// A listening socket.
pub trait Listener: Send + 'static {
    /// The next connection and the address it came from.
    fn accept(&mut self) -> NetFuture<'_, (Conn, SocketAddr)>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// One connection, from any [`Net`].
pub struct Conn {
    io: Box<dyn Stream>,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
}

impl Conn {
    pub fn new(io: impl Stream, local: Option<SocketAddr>, remote: Option<SocketAddr>) -> Conn {
        Conn { io: Box::new(io), local, remote }
    }

    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo { local_addr: self.local, remote_addr: self.remote }
    }
}

/// The operating system's TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNet;

impl TcpNet {
    /// A listener already bound (a node binds its peer port before it starts, to know the port).
    pub fn listener(listener: tokio::net::TcpListener) -> Box<dyn Listener> {
        Box::new(TcpListener(listener))
    }

    fn conn(tcp: tokio::net::TcpStream) -> Conn {
        // Small requests must not wait on Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let (local, remote) = (tcp.local_addr().ok(), tcp.peer_addr().ok());
        Conn::new(tcp, local, remote)
    }
}

impl Net for TcpNet {
    fn bind(&self, addr: SocketAddr) -> NetFuture<'static, Box<dyn Listener>> {
        Box::pin(async move { Ok(TcpNet::listener(tokio::net::TcpListener::bind(addr).await?)) })
    }

    fn connect(&self, addr: String) -> NetFuture<'static, Conn> {
        Box::pin(async move { Ok(TcpNet::conn(tokio::net::TcpStream::connect(&addr).await?)) })
    }
}

struct TcpListener(tokio::net::TcpListener);

impl Listener for TcpListener {
    fn accept(&mut self) -> NetFuture<'_, (Conn, SocketAddr)> {
        Box::pin(async move {
            let (tcp, peer) = self.0.accept().await?;
            Ok((TcpNet::conn(tcp), peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The default network of a node.
pub fn tcp() -> Arc<dyn Net> {
    Arc::new(TcpNet)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A connection from `TcpNet` reaches its listener, both ends report each other's addresses, and bytes
    /// go both ways.
    #[tokio::test]
    async fn tcp_connections_carry_bytes_and_report_their_addresses() {
        let net = tcp();
        let mut listener = net.bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let at = listener.local_addr().unwrap();
        let (dialled, accepted) = tokio::join!(net.connect(at.to_string()), listener.accept());
        let (mut client, (mut server, from)) = (dialled.unwrap(), accepted.unwrap());
        assert_eq!(client.remote_addr(), Some(at));
        assert_eq!(server.remote_addr(), Some(from));
        use tonic::transport::server::Connected;
        assert_eq!(server.connect_info().local_addr, Some(at));
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
    }

    /// Nothing listening: the connect fails with the system's error, not a hang.
    #[tokio::test]
    async fn a_connect_to_a_closed_port_fails() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(tcp().connect(closed.to_string()).await.is_err());
    }
}
