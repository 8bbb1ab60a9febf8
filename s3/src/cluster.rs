//! The cluster admin API, on the S3 port and signed with the root credentials like any S3 request:
//! `POST /?hoard-cluster&action=encrypt`, `GET /?hoard-cluster&action=status`,
//! `POST /?hoard-cluster&action=rotate-key&key-file=/abs/path`. Answers are JSON ([`ClusterStatus`]).
//!
//! A new master key is named by its file on the node, never sent: key material does not cross the
//! network (the KeyKeeper loads the file itself).

use std::collections::BTreeMap;
use std::path::PathBuf;

use hoard_actors::error::ActorError;
use hoard_actors::metrics::NodeHealth;
use hoard_actors::NodeContext;
use hoard_protocol::EncryptionSettings;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::StoredCredential;
use hoard_storage::meta::Census;
use s3s::s3_error;
use s3s::Body;
use s3s::S3Response;
use s3s::S3Result;
use serde::Deserialize;
use serde::Serialize;

use crate::error::OrS3;

/// The query parameter that marks a cluster admin request.
pub const CLUSTER_PARAM: &str = "hoard-cluster";

/// The encryption posture of the node (of the cluster, once there are several) and how each node is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Every new write is encrypted (`hoard cluster encrypt`).
    pub encrypt_all: bool,
    /// The master key new SSE-S3 data keys are wrapped under (`None`: no key, or the configured one
    /// before any `cluster encrypt` or rotation named one).
    pub active_key_id: Option<String>,
    /// The key of this node's `--master-key-file`.
    pub configured_key_id: Option<String>,
    /// Every master key id this node's KeyKeeper holds.
    pub held_key_ids: Vec<String>,
    pub objects: ObjectCounts,
    pub rotation: Option<RotationStatus>,
    /// Every node: its Raft role, its disks and their errors, repair's work and backlog.
    #[serde(default)]
    pub nodes: Vec<NodeHealth>,
    /// The metadata group's members (empty for a one-node hoard).
    #[serde(default)]
    pub members: Vec<Member>,
    /// Nodes being drained before their removal, and how many segments still have a shard on each.
    #[serde(default)]
    pub draining: Vec<DrainState>,
}

/// A node being drained (`hoard cluster remove-node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainState {
    pub node_id: u64,
    pub segments_left: u64,
}

/// A member of the metadata group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: u64,
    pub addr: String,
    /// A voter (else a learner: it holds shards and follows the log, but does not vote).
    pub voter: bool,
    /// It answered this status (its health is among `nodes`).
    #[serde(default)]
    pub up: bool,
}

/// What `cluster token` answers, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewJoinToken {
    pub token: String,
    pub expires_ms: i64,
    /// The peer address of the node that signs joins (when the answering node is it).
    pub join_through: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCounts {
    pub plain: u64,
    pub sse_s3: u64,
    pub sse_c: u64,
    /// Multipart uploads in progress.
    pub uploads: u64,
    /// SSE-S3 objects and uploads by the master key id their data key is wrapped under.
    pub sse_s3_by_key: BTreeMap<String, u64>,
    /// Of the objects counted above, the noncurrent versions of versioned buckets.
    #[serde(default)]
    pub noncurrent_versions: u64,
    #[serde(default)]
    pub delete_markers: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationStatus {
    pub to_key_id: String,
    pub key_file: String,
    pub finished: bool,
    /// Data keys rewrapped so far.
    pub rewrapped: u64,
    /// SSE-S3 objects and uploads already under the new key, out of `total`.
    pub done: u64,
    pub total: u64,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Why the walk last stopped, if it did (for example a key this node lacks); it retries.
    pub error: Option<String>,
}

impl From<Census> for ObjectCounts {
    fn from(c: Census) -> Self {
        ObjectCounts {
            plain: c.plain,
            sse_s3: c.sse_s3,
            sse_c: c.sse_c,
            uploads: c.uploads,
            sse_s3_by_key: c.by_key,
            noncurrent_versions: c.noncurrent,
            delete_markers: c.delete_markers,
        }
    }
}

/// Reads the status: settings and census from one linearizable read, key ids from the KeyKeeper.
pub async fn status(ctx: &NodeContext) -> S3Result<ClusterStatus> {
    let keys = ctx.key_keeper.status().await.or_s3()?;
    let (settings, census): (EncryptionSettings, Census) =
        ctx.meta.read(|r| Ok((r.encryption_settings()?, r.census()?))).await.or_s3()?;
    let objects = ObjectCounts::from(census);
    let rotation = settings.rotation.map(|r| {
        let total: u64 = objects.sse_s3_by_key.values().sum();
        let done = objects.sse_s3_by_key.get(&r.to_key_id).copied().unwrap_or(0);
        RotationStatus {
            finished: r.finished_ms.is_some(),
            error: if r.finished_ms.is_some() { None } else { ctx.rotation.status.last_error() },
            to_key_id: r.to_key_id,
            key_file: r.key_file,
            rewrapped: r.rewrapped,
            done,
            total,
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
        }
    });
    let mut nodes = vec![NodeHealth::read(ctx).await];
    let mut members = Vec::new();
    if ctx.config.cluster.is_some() {
        let metrics = ctx.meta.metrics().await.or_s3()?;
        let membership = metrics.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        // Every other member is asked at once; one that does not answer in time is shown down.
        let me = ctx.config.node_id;
        let asked = membership.nodes().filter(|(id, _)| **id != me).map(|(id, addr)| async move {
            let answer = match ctx.transport.node_health(*id, &addr.addr) {
                Some(health) => health.await.ok(),
                None => None,
            };
            (*id, answer)
        });
        let answers: BTreeMap<u64, Option<NodeHealth>> = futures::future::join_all(asked).await.into_iter().collect();
        for (id, addr) in membership.nodes() {
            let up = *id == me || answers.get(id).is_some_and(Option::is_some);
            members.push(Member { node_id: *id, addr: addr.addr.clone(), voter: voters.contains(id), up });
        }
        nodes.extend(answers.into_values().flatten());
    }
    let draining = ctx
        .meta
        .read(|r| {
            let nodes = r.draining()?;
            nodes
                .into_iter()
                .map(|node_id| Ok(DrainState { node_id, segments_left: r.segments_on_node(node_id)? }))
                .collect()
        })
        .await
        .or_s3()?;
    Ok(ClusterStatus {
        draining,
        members,
        encrypt_all: settings.encrypt_all,
        active_key_id: settings.active_key_id.or_else(|| keys.active.clone()),
        configured_key_id: keys.active,
        held_key_ids: keys.held,
        objects,
        rotation,
        nodes,
    })
}

/// `hoard cluster encrypt`: every new write SSE-S3 from now on; refused by a node without a key.
pub async fn encrypt(ctx: &NodeContext) -> S3Result<()> {
    let keys = ctx.key_keeper.status().await.or_s3()?;
    let Some(key_id) = keys.active else {
        return Err(s3_error!(
            InvalidRequest,
            "this node holds no master key: start it with --master-key-file before enabling encryption"
        ));
    };
    match ctx.meta.write(MetaCommand::EncryptAll { key_id }).await.or_s3()? {
        MetaResponse::Ok => Ok(()),
        other => Err(crate::error::to_s3(ActorError::Refused(other))),
    }
}

/// What `rotate-root-key` answers, once: the new root credential.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewRootCredential {
    pub access_key: String,
    pub secret_key: String,
    /// Whether metadata keeps it sealed under the master key.
    pub sealed: bool,
}

/// `hoard cluster rotate-root-key`: replaces the stored root credential with a fresh pair (sealed where the
/// node holds a master key) and answers it, once. The old pair stops working on each node as soon as that
/// node applies the change. Refused over plain HTTP (the answer carries a secret) and where the operator
/// gives the credential in the environment (hoard does not keep it, so cannot change it).
pub async fn rotate_root_key(ctx: &NodeContext, secure: bool, given: bool) -> S3Result<S3Response<Body>> {
    if given {
        return Err(s3_error!(
            InvalidRequest,
            "This node's root credential comes from HOARD_ROOT_ACCESS_KEY and HOARD_ROOT_SECRET_KEY; change it there"
        ));
    }
    if !secure {
        return Err(s3_error!(
            InvalidRequest,
            "rotate-root-key answers with a new secret: send it over HTTPS (or through a TLS proxy the node trusts)"
        ));
    }
    let fresh = crate::auth::generate(ctx);
    let stored = crate::auth::seal(ctx, &fresh).await.or_s3()?;
    let sealed = matches!(stored, StoredCredential::Sealed { .. });
    match ctx.meta.write(MetaCommand::PutRootCredential { credential: stored, replace: true }).await.or_s3()? {
        MetaResponse::RootCredential(_) => {}
        other => return Err(crate::error::to_s3(ActorError::Refused(other))),
    }
    tracing::info!(access_key = %fresh.access_key, sealed, "the root credential was rotated");
    let answer = NewRootCredential { access_key: fresh.access_key, secret_key: fresh.secret_key, sealed };
    let json = serde_json::to_string_pretty(&answer).map_err(|e| s3_error!(InternalError, "{e}"))?;
    Ok(S3Response::new(Body::from(json + "\n")))
}

/// `hoard cluster rotate-key`: loads the new key from `key_file` (a path on the node), records the
/// rotation and starts the walk.
pub async fn rotate_key(ctx: &NodeContext, key_file: &str) -> S3Result<()> {
    let path = PathBuf::from(key_file);
    if !path.is_absolute() {
        return Err(s3_error!(InvalidArgument, "key-file must be an absolute path on the node"));
    }
    if ctx.key_keeper.status().await.or_s3()?.active.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "this node holds no master key, so there is nothing to rotate: start it with --master-key-file"
        ));
    }
    // The caller learns only that the file is not usable: whether it exists, what it is and how long it is are
    // for the node's log, not for whoever can reach the admin API.
    let to_key_id = ctx.key_keeper.load(path).await.map_err(|e| {
        tracing::warn!(key_file, error = %e, "rotate-key: the new master key file is not usable");
        s3_error!(
            InvalidArgument,
            "The node cannot use {key_file} as a master key: it must be a regular file readable by hoard, holding 32 raw \
             bytes, 64 hex digits or base64 of 32 bytes (the node's log says what was wrong)"
        )
    })?;
    let cmd = MetaCommand::StartRotation { to_key_id, key_file: key_file.to_string(), now_ms: ctx.env.now_ms() };
    match ctx.meta.write(cmd).await.or_s3()? {
        MetaResponse::Ok => {}
        MetaResponse::RotationInProgress { to_key_id } => {
            return Err(s3_error!(
                OperationAborted,
                "a rotation to master key {to_key_id} is unfinished; wait for it (hoard cluster status) before starting another"
            ))
        }
        other => return Err(crate::error::to_s3(ActorError::Refused(other))),
    }
    // The actor also polls; a kick only saves the wait.
    let _ = ctx.rotation.kick();
    Ok(())
}

/// `hoard cluster token` through the admin API: a one-time join token, recorded by the hash of its secret and
/// answered once. Refused over plain HTTP (the answer admits a node), and by a node of no cluster.
pub async fn join_token(ctx: &NodeContext, ttl: std::time::Duration, secure: bool) -> S3Result<S3Response<Body>> {
    let Some(cluster) = &ctx.config.cluster else {
        return Err(s3_error!(InvalidRequest, "this node is not in a cluster: run hoard cluster init first"));
    };
    if !secure {
        return Err(s3_error!(
            InvalidRequest,
            "a join token admits a node: ask for it over HTTPS, or with hoard cluster token --data-dir on the node"
        ));
    }
    let token = hoard_actors::transport::join::JoinToken::generate(cluster, ctx.env.as_ref());
    let now_ms = ctx.env.now_ms();
    let expires_ms = hoard_actors::transport::join::expires_at(now_ms, ttl);
    let hash = hoard_actors::transport::join::token_hash(&token.secret);
    match ctx.meta.write(MetaCommand::AddJoinToken { hash, expires_ms, now_ms }).await.or_s3()? {
        MetaResponse::Ok => {}
        MetaResponse::JoinRefused { reason } => return Err(s3_error!(SlowDown, "{reason}")),
        other => return Err(crate::error::to_s3(ActorError::Refused(other))),
    }
    tracing::info!(expires_ms, "a join token was made");
    let answer = NewJoinToken {
        token: token.text().to_string(),
        expires_ms,
        join_through: if cluster.signs_joins { cluster.node_addr.clone() } else { String::new() },
    };
    let json = serde_json::to_string_pretty(&answer).map_err(|e| s3_error!(InternalError, "{e}"))?;
    Ok(S3Response::new(Body::from(json + "\n")))
}

/// How far `hoard cluster remove-node` got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The node is draining: this many segments still have a shard on it. Ask again when none has.
    Draining { segments_left: u64 },
    /// The node is removed and out of the metadata group.
    Removed,
}

/// `hoard cluster remove-node`: while any segment has a shard on the node, marks it draining (rebalance
/// moves its shards to the other nodes; no new shard goes to it) and answers how many are left; once none
/// is, records the node as removed (every node refuses its certificate from then on) and waits until the
/// leader has taken it out of the metadata group. Nothing loses redundancy by a removal.
pub async fn remove_node(ctx: &NodeContext, node: u64) -> S3Result<Removal> {
    if ctx.config.cluster.is_none() {
        return Err(s3_error!(InvalidRequest, "this node is not in a cluster"));
    }
    let metrics = ctx.meta.metrics().await.or_s3()?;
    let member = metrics.membership_config.membership().get_node(&node).is_some();
    if !member {
        return Err(s3_error!(InvalidArgument, "node {node} is not a member of this cluster"));
    }
    if metrics.membership_config.membership().nodes().count() == 1 {
        return Err(s3_error!(InvalidRequest, "node {node} is the only member: there is no cluster to leave"));
    }
    let held = ctx.meta.read(move |r| r.segments_on_node(node)).await.or_s3()?;
    if held > 0 {
        match ctx.meta.write(MetaCommand::SetDraining { node_id: node, draining: true }).await.or_s3()? {
            MetaResponse::Ok => {}
            other => return Err(crate::error::to_s3(ActorError::Refused(other))),
        }
        tracing::info!(node, segments_left = held, "draining a node before its removal");
        // The leader's rebalance actor does the moving; asking here saves a wait when this node leads.
        let _ = ctx.rebalance.kick();
        return Ok(Removal::Draining { segments_left: held });
    }
    match ctx.meta.write(MetaCommand::RemoveNode { node_id: node, now_ms: ctx.env.now_ms() }).await.or_s3()? {
        MetaResponse::Ok => {}
        other => return Err(crate::error::to_s3(ActorError::Refused(other))),
    }
    tracing::warn!(node, "node removed from the cluster: its certificate is refused from now on");
    // The leader's peer watch takes it out of the group (within a second or two); wait for that here, on the
    // membership this node applies.
    let raft =
        ctx.meta.raft.lock().await.clone().ok_or_else(|| s3_error!(ServiceUnavailable, "metadata is restarting"))?;
    let gone = raft
        .wait(Some(hoard_actors::meta::META_DEADLINE))
        .metrics(|m| m.membership_config.membership().get_node(&node).is_none(), "the node out of the group")
        .await;
    if gone.is_ok() {
        return Ok(Removal::Removed);
    }
    Err(s3_error!(
        ServiceUnavailable,
        "node {node} is removed (its certificate is refused) but the leader has not taken it out of the group yet; \
         hoard cluster status shows when it has"
    ))
}
