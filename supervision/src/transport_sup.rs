//! Supervises the transport of a node in a cluster of processes: the peer server (this node's disks,
//! metadata Raft and health, offered to its peers) and the peer watch (links to the other members and
//! their health).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use hoard_actors::peer_tls::RevokedNodes;
use hoard_actors::transport::actor::PeerListen;
use hoard_actors::transport::actor::PeerServerActor;
use hoard_actors::transport::actor::PeerServerArgs;
use hoard_actors::transport::actor::PeerWatchActor;
use hoard_actors::transport::actor::PeerWatchArgs;
use hoard_actors::transport::join::JoinAuthority;
use hoard_actors::transport::peer::Peers;
use hoard_actors::NodeContext;
use ractor::Actor;
use tokio_rustls::rustls;

use crate::sup::uniq;
use crate::sup::ChildSpec;
use crate::sup::RestartPolicy;
use crate::sup::SupSpec;
use crate::sup::SupStats;

/// Both children hold nothing that a restart loses (links and their health live in `Peers`): restart
/// freely; a peer server that cannot bind ten times a minute is escalated and reported down.
pub const TRANSPORT_SUP_POLICY: RestartPolicy =
    RestartPolicy { max_restarts: 10, window: Duration::from_secs(60), escalate: true };

/// What the transport of a node is made of.
#[derive(Clone)]
pub struct TransportSetup {
    pub listen: PeerListen,
    pub tls: Arc<rustls::ServerConfig>,
    /// On a node that signs joins: the join connections' TLS and the CA.
    pub join: Option<(Arc<rustls::ServerConfig>, Arc<JoinAuthority>)>,
    pub peers: Arc<Peers>,
    pub revoked: Arc<RevokedNodes>,
    /// The node's cluster directory (pending join tokens).
    pub cluster_dir: Option<std::path::PathBuf>,
}

pub fn spec(ctx: NodeContext, setup: TransportSetup, stats: Arc<SupStats>) -> SupSpec {
    let (c1, s1) = (ctx.clone(), setup.clone());
    let server = ChildSpec::new("peer_server", move |parent| {
        let args = PeerServerArgs {
            ctx: c1.clone(),
            listen: s1.listen.clone(),
            tls: s1.tls.clone(),
            join: s1.join.clone(),
            revoked: s1.revoked.clone(),
        };
        async move {
            let name = Some(format!("peer_server-{}", uniq()));
            let (r, _) = PeerServerActor::spawn_linked(name, PeerServerActor, args, parent).await?;
            Ok(r.get_cell())
        }
        .boxed()
    });
    let watch = ChildSpec::new("peer_watch", move |parent| {
        let args = PeerWatchArgs {
            ctx: ctx.clone(),
            peers: setup.peers.clone(),
            revoked: setup.revoked.clone(),
            cluster_dir: setup.cluster_dir.clone(),
        };
        async move {
            let name = Some(format!("peer_watch-{}", uniq()));
            let (r, _) = PeerWatchActor::spawn_linked(name, PeerWatchActor, args, parent).await?;
            Ok(r.get_cell())
        }
        .boxed()
    });
    SupSpec { name: "transport_sup", policy: TRANSPORT_SUP_POLICY, children: vec![server, watch], stats }
}
