//! The transport's actors (under `transport_sup`): the peer server, and the peer watch that keeps one
//! link per member of the metadata group and asks each peer's health.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;

use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use tokio_rustls::rustls;

use super::peer::Peers;
use super::policy;
use super::server;
use super::server::PeerServerTask;
use crate::NodeContext;

/// Where the peer server listens: an address, and a socket already bound to it for the first start (a
/// restart binds the address again).
#[derive(Clone)]
pub struct PeerListen {
    pub addr: SocketAddr,
    pub bound: Arc<Mutex<Option<std::net::TcpListener>>>,
}

impl PeerListen {
    /// Binds now, so that the port (when `addr` asks for any, port 0) is known before the node starts.
    pub fn bind_now(addr: SocketAddr) -> std::io::Result<PeerListen> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(PeerListen { addr, bound: Arc::new(Mutex::new(Some(listener))) })
    }
}

pub struct PeerServerActor;

pub struct PeerServerArgs {
    pub ctx: NodeContext,
    pub listen: PeerListen,
    pub tls: Arc<rustls::ServerConfig>,
}

impl Actor for PeerServerActor {
    type Msg = ();
    type State = PeerServerTask;
    type Arguments = PeerServerArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: PeerServerArgs) -> Result<PeerServerTask, ActorProcessingErr> {
        let bound = args.listen.bound.lock().unwrap_or_else(|p| p.into_inner()).take();
        let listener = match bound {
            Some(l) => tokio::net::TcpListener::from_std(l)?,
            None => tokio::net::TcpListener::bind(args.listen.addr).await?,
        };
        tracing::info!(addr = %args.listen.addr, "serving peers (mutual TLS)");
        Ok(server::serve(listener, args.tls, server::Services::new(args.ctx)))
    }
}

pub struct PeerWatchActor;

pub struct PeerWatchArgs {
    pub ctx: NodeContext,
    pub peers: Arc<Peers>,
}

pub struct PeerWatchState {
    task: tokio::task::JoinHandle<()>,
}

impl Actor for PeerWatchActor {
    type Msg = ();
    type State = PeerWatchState;
    type Arguments = PeerWatchArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: PeerWatchArgs) -> Result<PeerWatchState, ActorProcessingErr> {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(policy::HEALTH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let raft = args.ctx.meta.raft.lock().await.clone();
                if let Some(raft) = raft {
                    let members: std::collections::BTreeMap<_, _> = raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .nodes()
                        .map(|(id, addr)| (*id, addr.clone()))
                        .collect();
                    args.peers.set_members(&members);
                }
                let checks = args.peers.all().into_iter().map(|link| async move {
                    let was_down = link.is_down();
                    let r = link.check().await;
                    if let Err(e) = &r {
                        tracing::debug!(node = link.node, addr = %link.addr, error = %e, "peer health check failed");
                    }
                    match (&r, was_down, link.is_down()) {
                        (Ok(()), true, _) => tracing::info!(node = link.node, addr = %link.addr, "peer is back"),
                        (Err(e), false, true) => {
                            tracing::warn!(node = link.node, addr = %link.addr, error = %e, "peer is down")
                        }
                        _ => {}
                    }
                });
                futures::future::join_all(checks).await;
            }
        });
        Ok(PeerWatchState { task })
    }

    async fn post_stop(&self, _me: ActorRef<()>, state: &mut PeerWatchState) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }
}
