//! Joining a cluster: the one call a node that is not yet a member makes, both sides of it.
//!
//! Invariants:
//! - The joiner sends nothing before it has checked the server: the CA certificate in the server's chain
//!   must be the one whose SHA-256 the token carries, and the server's certificate one that CA signed for a
//!   member ([`peer_tls::join_client_config`]).
//! - The joiner's private key never leaves it: only a certificate signing request crosses the wire, and
//!   the certificate signed for it takes nothing from the request but the public key.
//! - A token admits one node: it is spent by one Raft entry ([`MetaCommand::AdmitNode`]), which also gives
//!   the node its id; a second join with it, or one after it expired, is refused. The cluster stores only
//!   the token's SHA-256.
//! - Nothing of the request is believed before the token is spent but its shape (bounded sizes, an address
//!   that parses, a CSR whose signature holds): a stranger without a token changes nothing, and a token that
//!   is not live is refused from a read, without appending to the Raft log.
//! - A node added by a join is a learner; the peer watch promotes learners to voters once caught up.

use std::path::Path;
use std::sync::Arc;

use hoard_protocol::rpc;
use hoard_protocol::rpc::join_client::JoinClient;
use hoard_protocol::rpc::join_server::Join;
use hoard_protocol::MembershipChange;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::CLUSTER_VERSION;
use hoard_storage::disk::sync_dir;
use hoard_storage::disk::write_owner_only;
use sha2::Digest as _;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::policy;
use crate::error::ActorError;
use crate::error::Result;
use crate::peer_tls;
use crate::peer_tls::ClusterCa;
use crate::NodeContext;

/// Longest token secret accepted (hoard's are 43 characters).
const MAX_SECRET: usize = 256;

/// What a node needs to admit others: the cluster's identity and, where this node holds it, the CA key.
pub struct JoinAuthority {
    pub cluster_id: String,
    pub ca_pem: String,
    /// The CA with its key: only nodes holding it sign joins.
    pub ca: Option<Arc<ClusterCa>>,
}

/// A join token: which cluster, the fingerprint of its CA (so the joiner trusts no other), and a one-time
/// secret. Written `hoard1.<cluster id>.<CA SHA-256, base64url>.<secret, base64url>`.
pub struct JoinToken {
    pub cluster_id: String,
    pub ca_pin: [u8; 32],
    pub secret: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken").field("cluster_id", &self.cluster_id).finish_non_exhaustive()
    }
}

const TOKEN_PREFIX: &str = "hoard1";

/// Whether `id` may name a cluster: what DNS allows in one label (it is part of the nodes' names).
pub fn valid_cluster_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl JoinToken {
    /// A new token for `cluster`, with a 256-bit secret from `env`.
    pub fn generate(cluster: &crate::ClusterIdentity, env: &dyn hoard_storage::env::Env) -> JoinToken {
        use base64::Engine as _;
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        env.fill_random(secret.as_mut());
        JoinToken {
            cluster_id: cluster.cluster_id.clone(),
            ca_pin: cluster.ca_fingerprint,
            secret: zeroize::Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.as_ref())),
        }
    }

    /// The token as the operator copies it.
    pub fn text(&self) -> zeroize::Zeroizing<String> {
        use base64::Engine as _;
        let pin = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.ca_pin);
        zeroize::Zeroizing::new(format!("{TOKEN_PREFIX}.{}.{pin}.{}", self.cluster_id, self.secret.as_str()))
    }

    pub fn parse(text: &str) -> Result<JoinToken> {
        use base64::Engine as _;
        let bad = || ActorError::Invalid("not a hoard join token (hoard cluster token prints one)".into());
        let mut parts = text.trim().split('.');
        let (Some(TOKEN_PREFIX), Some(cluster_id), Some(pin), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let pin = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(pin).map_err(|_| bad())?;
        let ca_pin: [u8; 32] = pin.try_into().map_err(|_| bad())?;
        if !valid_cluster_id(cluster_id) || secret.is_empty() || secret.len() > MAX_SECRET {
            return Err(bad());
        }
        Ok(JoinToken {
            cluster_id: cluster_id.to_string(),
            ca_pin,
            secret: zeroize::Zeroizing::new(secret.to_string()),
        })
    }
}

/// When a token made at `now_ms` and valid for `ttl` expires.
pub fn expires_at(now_ms: i64, ttl: std::time::Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The SHA-256 of a token's secret: what the cluster keeps.
pub fn token_hash(secret: &str) -> [u8; 32] {
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// The file, in a node's cluster directory, of join tokens made there and not yet in the metadata: one
/// line per token, `<SHA-256 of the secret, hex> <expires, ms since the epoch>`.
pub const PENDING_TOKENS: &str = "pending-tokens";

/// Records a token as pending in `dir` (owner-only, synced; the file is replaced whole).
pub fn add_pending(dir: &Path, hash: [u8; 32], expires_ms: i64) -> std::io::Result<()> {
    let path = dir.join(PENDING_TOKENS);
    let mut text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    text.push_str(&format!("{} {expires_ms}\n", hex::encode(hash)));
    let tmp = dir.join(format!("{PENDING_TOKENS}.tmp"));
    write_owner_only(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir)
}

/// Moves the tokens pending in `dir` into the metadata, then removes the file. Expired tokens and lines
/// that do not parse are dropped (and the latter logged). Answers how many were recorded.
pub async fn import_pending(dir: &Path, ctx: &NodeContext) -> Result<usize> {
    let path = dir.join(PENDING_TOKENS);
    let reading = path.clone();
    let read = hoard_storage::exec::blocking(move || std::fs::read_to_string(reading)).await;
    let read = read.map_err(|e| ActorError::Invalid(format!("{}: {e}", path.display())))?;
    let text = match read {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(ActorError::Invalid(format!("{}: {e}", path.display()))),
    };
    let now_ms = ctx.env.now_ms();
    let mut added = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = line.split_once(' ').and_then(|(hash, expires)| {
            let hash: [u8; 32] = hex::decode(hash).ok()?.try_into().ok()?;
            Some((hash, expires.trim().parse::<i64>().ok()?))
        });
        let Some((hash, expires_ms)) = parsed else {
            tracing::warn!(file = %path.display(), "a pending join token line does not parse; dropped");
            continue;
        };
        if expires_ms <= now_ms {
            continue;
        }
        match ctx.meta.write(MetaCommand::AddJoinToken { hash, expires_ms, now_ms }).await? {
            MetaResponse::Ok => added += 1,
            MetaResponse::JoinRefused { reason } => tracing::warn!(reason, "a pending join token was not recorded"),
            other => return Err(ActorError::Refused(other)),
        }
    }
    let removing = path.clone();
    let removed = hoard_storage::exec::blocking(move || std::fs::remove_file(removing)).await;
    removed
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| ActorError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(added)
}

/// `host:port` split into its host (brackets of an IPv6 literal removed) and port.
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    let plain = host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    (!host.is_empty() && host.len() <= 253 && plain && port != 0).then_some((host, port))
}

/// The join service of one node.
#[derive(Clone)]
pub struct JoinService {
    ctx: NodeContext,
    authority: Arc<JoinAuthority>,
    /// One join at a time: each takes two Raft commits, and strangers may call.
    busy: Arc<tokio::sync::Semaphore>,
}

impl JoinService {
    pub fn new(ctx: NodeContext, authority: Arc<JoinAuthority>) -> JoinService {
        JoinService { ctx, authority, busy: Arc::new(tokio::sync::Semaphore::new(1)) }
    }
}

fn refused(e: ActorError) -> Status {
    Status::unavailable(format!("the cluster could not take the join now: {e}"))
}

#[tonic::async_trait]
impl Join for JoinService {
    async fn join(&self, request: Request<rpc::JoinRequest>) -> std::result::Result<Response<rpc::JoinReply>, Status> {
        let peer = request.remote_addr();
        let r = request.into_inner();
        let Ok(_turn) = self.busy.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted("another join is in progress; try again"));
        };
        if r.cluster_version < CLUSTER_VERSION {
            return Err(Status::failed_precondition(format!(
                "this cluster speaks cluster protocol {CLUSTER_VERSION}; the joining build ({}) speaks {}: upgrade it",
                r.version, r.cluster_version
            )));
        }
        let Some(ca) = &self.authority.ca else {
            return Err(Status::failed_precondition(
                "this node does not hold the cluster CA key: join through the node that ran `hoard cluster init`",
            ));
        };
        if r.token_secret.is_empty() || r.token_secret.len() > MAX_SECRET {
            return Err(Status::permission_denied("the join token is unknown or was used already"));
        }
        let Some((host, _)) = split_addr(&r.node_addr) else {
            return Err(Status::invalid_argument("--node-addr must be host:port (an IP address or a DNS name)"));
        };
        // The request's shape is checked before the token is spent: a bad CSR must not cost the operator it.
        if rcgen::CertificateSigningRequestParams::from_pem(&r.csr_pem).is_err() {
            return Err(Status::invalid_argument(
                "the certificate signing request does not parse or its signature is wrong",
            ));
        }
        // A token this node's view of the metadata does not hold live is refused without a Raft entry: a
        // stranger guessing tokens must not grow the log. (The view is linearizable, so a token recorded a
        // moment ago is seen; the entry below still decides, for two joins racing with one token.)
        let (hash, now_ms) = (token_hash(&r.token_secret), self.ctx.env.now_ms());
        let record = self.ctx.meta.read(|m| m.cluster_record()).await.map_err(refused)?;
        match record.join_tokens.get(&hash) {
            Some(expires) if *expires > now_ms => {}
            Some(_) => return Err(Status::permission_denied("the join token has expired")),
            None => return Err(Status::permission_denied("the join token is unknown or was used already")),
        }
        let admit = MetaCommand::AdmitNode { hash, addr: r.node_addr.clone(), now_ms };
        let node_id = match self.ctx.meta.write(admit).await.map_err(refused)? {
            MetaResponse::Admitted { node_id } => node_id,
            MetaResponse::JoinRefused { reason } => {
                tracing::warn!(peer = ?peer, reason, "join refused");
                return Err(Status::permission_denied(reason));
            }
            other => return Err(Status::internal(format!("unexpected answer admitting a node: {other:?}"))),
        };
        let cert_pem = ca.sign_csr(node_id, host, &r.csr_pem).map_err(|e| Status::internal(e.to_string()))?;
        self.ctx
            .meta
            .change_membership(MembershipChange::AddLearner { node: node_id, addr: r.node_addr.clone() })
            .await
            .map_err(refused)?;
        let metrics = self.ctx.meta.metrics().await.map_err(refused)?;
        let members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, addr)| rpc::JoinMember { node_id: *id, addr: addr.addr.clone() })
            .collect();
        tracing::info!(node = node_id, addr = %r.node_addr, version = %r.version, "a node joined (as a learner)");
        Ok(Response::new(rpc::JoinReply {
            node_id,
            cert_pem,
            ca_pem: self.authority.ca_pem.clone(),
            cluster_id: self.authority.cluster_id.clone(),
            members,
            data_shards: self.ctx.config.data_shards.into(),
            parity_shards: self.ctx.config.parity_shards.into(),
        }))
    }
}

/// Asks the member at `peer` to admit this node: connects, checks the server's CA against `pin`, and sends
/// `request`. The answer's CA is checked against `pin` too.
pub async fn request_join(
    peer: &str,
    cluster_id: &str,
    pin: [u8; 32],
    request: rpc::JoinRequest,
) -> Result<rpc::JoinReply> {
    let tls = peer_tls::join_client_config(pin).map_err(|e| ActorError::Invalid(e.to_string()))?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(peer_tls::cluster_name(cluster_id))
        .map_err(|e| ActorError::Invalid(e.to_string()))?;
    let channel = super::peer::channel(&crate::net::tcp(), "join", peer, tls, name)?;
    let mut client = JoinClient::new(channel)
        .max_decoding_message_size(policy::MAX_JOIN_MESSAGE)
        .max_encoding_message_size(policy::MAX_JOIN_MESSAGE);
    let mut call = Request::new(request);
    call.set_timeout(policy::JOIN_DEADLINE);
    let reply = match tokio::time::timeout(policy::JOIN_DEADLINE, client.join(call)).await {
        Ok(Ok(reply)) => reply.into_inner(),
        Ok(Err(status)) if super::peer::never_connected(&status) => {
            return Err(ActorError::Invalid(format!(
                "could not reach a member at {peer} whose cluster CA is the token's ({status}); check --peer, and that \
                 the token is for this cluster"
            )))
        }
        Ok(Err(status)) => return Err(ActorError::Invalid(status.message().to_string())),
        Err(_) => return Err(ActorError::Timeout("join")),
    };
    if peer_tls::fingerprint(&reply.ca_pem).ok() != Some(pin) {
        return Err(ActorError::Invalid("the CA the member sent is not the one the token names".into()));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_refused() {
        let cluster = crate::ClusterIdentity {
            cluster_id: "c0ffee".into(),
            ca_fingerprint: [9; 32],
            node_addr: "10.0.0.1:7000".into(),
            signs_joins: true,
        };
        let env = hoard_storage::env::SystemEnv;
        let token = JoinToken::generate(&cluster, &env);
        let again = JoinToken::parse(&token.text()).unwrap();
        assert_eq!((again.cluster_id.as_str(), again.ca_pin), ("c0ffee", [9; 32]));
        assert_eq!(again.secret.as_str(), token.secret.as_str());
        assert_ne!(JoinToken::generate(&cluster, &env).secret.as_str(), token.secret.as_str());
        assert!(!format!("{token:?}").contains(token.secret.as_str()), "Debug hides the secret");
        for bad in ["", "hoard1.c0ffee", "hoard2.c0ffee.AAAA.s", "hoard1.C0FFEE.AAAA.s", "hoard1.c.AAAA.s.x"] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(split_addr("10.0.0.1:7000"), Some(("10.0.0.1", 7000)));
        assert_eq!(split_addr("[::1]:7000"), Some(("::1", 7000)));
        assert_eq!(split_addr("node-2.example:7000"), Some(("node-2.example", 7000)));
        assert_eq!(split_addr("10.0.0.1"), None);
        assert_eq!(split_addr("a b:7000"), None);
        assert_eq!(split_addr(":7000"), None);
    }
}
