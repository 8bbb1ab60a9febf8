//! The transport's actors (under `transport_sup`): the peer server, and the peer watch that keeps one
//! link per member of the metadata group and asks each peer's health.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;

use hoard_protocol::MembershipChange;
use hoard_protocol::NodeId;
use ractor::Actor;
use ractor::ActorProcessingErr;
use ractor::ActorRef;
use tokio_rustls::rustls;

use super::join::JoinAuthority;
use super::join::JoinService;
use super::peer::Peers;
use super::policy;
use super::server;
use super::server::PeerServerTask;
use crate::peer_tls::RevokedNodes;
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
    /// Where this node signs joins: the join connections' TLS and the CA.
    pub join: Option<(Arc<rustls::ServerConfig>, Arc<JoinAuthority>)>,
    pub revoked: Arc<RevokedNodes>,
}

impl Actor for PeerServerActor {
    type Msg = ();
    type State = PeerServerTask;
    type Arguments = PeerServerArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: PeerServerArgs) -> Result<PeerServerTask, ActorProcessingErr> {
        let bound = args.listen.bound.lock().unwrap_or_else(|p| p.into_inner()).take();
        let listener = match bound {
            Some(l) => crate::net::TcpNet::listener(tokio::net::TcpListener::from_std(l)?),
            None => args.ctx.net.bind(args.listen.addr).await?,
        };
        tracing::info!(addr = %args.listen.addr, "serving peers (mutual TLS)");
        let join = args.join.map(|(tls, authority)| (tls, JoinService::new(args.ctx.clone(), authority)));
        let tls = server::ServerTls { members: args.tls, join, revoked: args.revoked };
        Ok(server::serve(listener, tls, server::Services::new(args.ctx)))
    }
}

pub struct PeerWatchActor;

/// Health rounds (one a second) between retries of the repairs still queued, whatever the peers did.
const REPAIR_RETRY_ROUNDS: u64 = 30;

pub struct PeerWatchArgs {
    pub ctx: NodeContext,
    pub peers: Arc<Peers>,
    pub revoked: Arc<RevokedNodes>,
    /// The node's cluster directory, where join tokens made on this host wait to be recorded.
    pub cluster_dir: Option<std::path::PathBuf>,
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
            let mut rounds: u64 = 0;
            // The peers that were up with their disks known, last round: when they change, shards may go
            // elsewhere (a node joined, or came back), and rebalance looks at once.
            let mut usable: BTreeSet<NodeId> = BTreeSet::new();
            let mut tick = tokio::time::interval(policy::HEALTH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Some(dir) = &args.cluster_dir {
                    match super::join::import_pending(dir, &args.ctx).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(tokens = n, "join tokens made on this host are recorded"),
                        Err(e) => tracing::warn!(error = %e, "pending join tokens not recorded yet"),
                    }
                }
                if let Ok(record) = args
                    .ctx
                    .meta
                    .local()
                    .and_then(|r| r.cluster_record().map_err(|e| crate::error::ActorError::Meta(e.to_string())))
                {
                    args.revoked.extend(record.removed());
                    let draining = args
                        .ctx
                        .meta
                        .local()
                        .and_then(|r| r.draining().map_err(|e| crate::error::ActorError::Meta(e.to_string())));
                    if let Ok(draining) = draining {
                        args.peers.set_leaving(record.removed().union(&draining).copied().collect());
                    }
                }
                let raft = args.ctx.meta.raft.lock().await.clone();
                if let Some(raft) = raft {
                    let metrics = raft.metrics().borrow().clone();
                    let members: BTreeMap<_, _> =
                        metrics.membership_config.membership().nodes().map(|(id, addr)| (*id, addr.clone())).collect();
                    args.peers.set_members(&members);
                    if metrics.current_leader == Some(args.ctx.config.node_id) {
                        if let Some(change) = next_change(&metrics, &args.peers, &args.revoked) {
                            tracing::info!(?change, "changing the metadata group's membership");
                            if let Err(e) = args.ctx.meta.change_membership(change).await {
                                tracing::warn!(error = %e, "membership change failed; tried again next round");
                            }
                        }
                    }
                }
                rounds += 1;
                let checks = args.peers.all().into_iter().map(|link| async move {
                    let (was_down, was_failing) = (link.is_down(), link.is_failing());
                    let r = link.check().await;
                    if let Err(e) = &r {
                        tracing::debug!(node = link.node, addr = %link.addr, error = %e, "peer health check failed");
                    }
                    match (&r, was_down, link.is_down()) {
                        (Ok(()), true, _) => {
                            tracing::info!(node = link.node, addr = %link.addr, "peer is back");
                            return true;
                        }
                        (Ok(()), false, _) if was_failing => return true,
                        (Err(e), false, true) => {
                            tracing::warn!(node = link.node, addr = %link.addr, error = %e, "peer is down")
                        }
                        _ => {}
                    }
                    false
                });
                // Repairs that failed while a peer was unreachable may succeed now that it answers again; and
                // every so often in any case (a peer may have come back between two checks).
                let back = futures::future::join_all(checks).await.into_iter().any(|back| back);
                let now_usable: BTreeSet<NodeId> =
                    args.peers.all().iter().filter(|l| l.knows_disks() && !l.is_down()).map(|l| l.node).collect();
                if now_usable != usable {
                    usable = now_usable;
                    let _ = args.ctx.rebalance.kick();
                }
                if back || rounds.is_multiple_of(REPAIR_RETRY_ROUNDS) {
                    let retried = args.ctx.repair.retry_queued();
                    if retried > 0 {
                        tracing::info!(segments = retried, "a peer is back: queued repairs are tried again");
                    }
                }
            }
        });
        Ok(PeerWatchState { task })
    }

    async fn post_stop(&self, _me: ActorRef<()>, state: &mut PeerWatchState) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }
}

/// The membership change the leader makes next, if any: a removed node leaves the group first; then
/// learners that are up and caught up become voters (see [`plan_voters`]).
fn next_change(
    metrics: &openraft::RaftMetrics<NodeId, hoard_protocol::NodeAddr>,
    peers: &Peers,
    revoked: &RevokedNodes,
) -> Option<MembershipChange> {
    let membership = metrics.membership_config.membership();
    if let Some((gone, _)) = membership.nodes().find(|(id, _)| revoked.contains(**id)) {
        return Some(MembershipChange::Remove(*gone));
    }
    // One change at a time: openraft refuses a change while the last one is not committed.
    if metrics.membership_config.log_id().map(|l| l.index) > metrics.last_applied.map(|l| l.index) {
        return None;
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let last = metrics.last_log_index.unwrap_or(0);
    let replication = metrics.replication.as_ref()?;
    let candidates: BTreeSet<NodeId> = membership
        .learner_ids()
        .filter(|id| {
            let matched = replication.get(id).cloned().flatten().map(|l| l.index).unwrap_or(0);
            let up = peers.get(*id).is_some_and(|l| !l.is_down());
            up && matched + policy::CAUGHT_UP_LAG >= last
        })
        .collect();
    plan_voters(&voters, &candidates, metrics.id)
}

/// How many voters the group should have, and which: 1, 3 or 5 (an odd number tolerates as many failures
/// as the even number above it, with a smaller quorum). Learners in `candidates` (caught up, up) are
/// promoted, lowest id first, to reach the largest such size there are nodes for; an even number of voters
/// with no learner to make it odd gives up one voter (never the leader) to a learner's role.
pub fn plan_voters(
    voters: &BTreeSet<NodeId>,
    candidates: &BTreeSet<NodeId>,
    leader: NodeId,
) -> Option<MembershipChange> {
    let (v, c) = (voters.len(), candidates.len());
    let target = [5, 3, 1].into_iter().find(|t| *t <= v + c).unwrap_or(1);
    if target > v {
        return Some(MembershipChange::Promote(candidates.iter().take(target - v).copied().collect()));
    }
    if v % 2 == 0 && target < v {
        let step_down = voters.iter().rev().find(|id| **id != leader)?;
        return Some(MembershipChange::SetVoters(voters.iter().filter(|id| *id != step_down).copied().collect()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn voters_grow_to_three_then_five_and_an_even_count_is_made_odd() {
        assert_eq!(plan_voters(&set(&[1]), &set(&[]), 1), None);
        assert_eq!(plan_voters(&set(&[1]), &set(&[2]), 1), None, "two voters tolerate no more than one");
        assert_eq!(plan_voters(&set(&[1]), &set(&[2, 3]), 1), Some(MembershipChange::Promote(set(&[2, 3]))));
        assert_eq!(plan_voters(&set(&[1]), &set(&[4, 2, 3]), 1), Some(MembershipChange::Promote(set(&[2, 3]))));
        assert_eq!(plan_voters(&set(&[1, 2, 3]), &set(&[4]), 1), None);
        assert_eq!(plan_voters(&set(&[1, 2, 3]), &set(&[4, 5]), 2), Some(MembershipChange::Promote(set(&[4, 5]))));
        assert_eq!(plan_voters(&set(&[1, 2, 3, 4, 5]), &set(&[6, 7]), 1), None, "never more than five");
        // A removal left four voters: a caught-up learner makes five, or else one voter steps down.
        assert_eq!(plan_voters(&set(&[1, 2, 3, 5]), &set(&[6]), 1), Some(MembershipChange::Promote(set(&[6]))));
        assert_eq!(plan_voters(&set(&[1, 2, 3, 5]), &set(&[]), 5), Some(MembershipChange::SetVoters(set(&[1, 2, 5]))));
        assert_eq!(plan_voters(&set(&[1, 2]), &set(&[]), 2), Some(MembershipChange::SetVoters(set(&[2]))));
    }
}
