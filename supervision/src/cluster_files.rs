//! A node's cluster files, in `<data dir>/cluster/`: what `hoard cluster init` and `hoard cluster join`
//! write and `hoard serve` reads. A data dir without them is a one-node hoard.
//!
//! | file                  | what                                                                 | mode |
//! |-----------------------|----------------------------------------------------------------------|------|
//! | `cluster.toml`        | cluster id, node id, node address, the members the group forms with  | 0600 |
//! | `ca.pem`              | the cluster CA's certificate                                         | 0600 |
//! | `ca.key`              | the CA's private key: on the node that ran `init` (it signs joins)   | 0600 |
//! | `node.pem`/`node.key` | this node's certificate and private key                              | 0600 |
//! | `pending-tokens`      | join tokens made here (by `init` or `token --data-dir`) by the hash of their secret, until the node moves them into the metadata | 0600 |
//!
//! Invariants:
//! - `init` and `join` write every file into a fresh directory and rename it into place last: a node has
//!   all its cluster files or none.
//! - Private keys are written owner-only and never printed; the pending tokens file holds only hashes.
//! - A join needs a data dir that has never served (no metadata): objects of another store cannot join.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hoard_actors::peer_tls;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::peer_tls::NodeIdentity;
use hoard_actors::transport::actor::PeerListen;
use hoard_actors::transport::join;
use hoard_actors::transport::join::JoinToken;
use hoard_actors::ClusterIdentity;
use hoard_protocol::rpc;
use hoard_protocol::NodeAddr;
use hoard_protocol::NodeId;
use hoard_protocol::CLUSTER_VERSION;
use hoard_storage::disk::sync_dir;
use hoard_storage::disk::write_owner_only;
use hoard_storage::env::Env;
use serde::Deserialize;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::node::PeerOptions;

/// The default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

const DIR: &str = "cluster";
const SETTINGS: &str = "cluster.toml";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const NODE_CERT: &str = "node.pem";
const NODE_KEY: &str = "node.key";

/// `cluster.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub cluster_id: String,
    pub node_id: NodeId,
    /// `host:port` the other nodes reach this one at.
    pub node_addr: String,
    /// Where the peer server binds, when not the node address (behind NAT, in a container).
    #[serde(default)]
    pub peer_listen: Option<SocketAddr>,
    /// The members the metadata group forms with (node id → address), as known when the files were written.
    pub members: BTreeMap<String, String>,
    /// The cluster's coding, as the node that admitted this one used it (flags still override).
    #[serde(default)]
    pub data_shards: Option<u8>,
    #[serde(default)]
    pub parity_shards: Option<u8>,
}

/// A node's cluster files, read.
pub struct ClusterFiles {
    pub dir: PathBuf,
    pub settings: ClusterSettings,
    pub ca_pem: String,
    pub identity: NodeIdentity,
    pub ca: Option<ClusterCa>,
}

impl std::fmt::Debug for ClusterFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterFiles").field("dir", &self.dir).field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn read(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Writes `contents` to `dir/name`, owner-only, and syncs it.
fn write_private(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    write_owner_only(&path, contents).with_context(|| format!("writing {}", path.display()))
}

fn sync(dir: &Path) -> anyhow::Result<()> {
    sync_dir(dir).with_context(|| format!("syncing {}", dir.display()))
}

impl ClusterFiles {
    /// The cluster files of `data_dir`, or `None` for a one-node hoard.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<ClusterFiles>> {
        let dir = data_dir.join(DIR);
        if !dir.join(SETTINGS).exists() {
            return Ok(None);
        }
        let settings: ClusterSettings = toml::from_str(&read(&dir, SETTINGS)?)
            .with_context(|| format!("parsing {}", dir.join(SETTINGS).display()))?;
        let ca_pem = read(&dir, CA_CERT)?;
        let identity =
            NodeIdentity { cert_pem: read(&dir, NODE_CERT)?, key_pem: Zeroizing::new(read(&dir, NODE_KEY)?) };
        let ca = match dir.join(CA_KEY).exists() {
            true => Some(ClusterCa::load(&settings.cluster_id, &ca_pem, &Zeroizing::new(read(&dir, CA_KEY)?))?),
            false => None,
        };
        Ok(Some(ClusterFiles { dir, settings, ca_pem, identity, ca }))
    }

    /// The peer options `hoard serve` starts this node with. The peer server binds `listen` when given,
    /// else the settings' `peer_listen`, else the node address (its port on every interface when the host
    /// is a name).
    pub fn peer_options(self, listen: Option<SocketAddr>) -> anyhow::Result<PeerOptions> {
        let s = &self.settings;
        let bind = match listen.or(s.peer_listen) {
            Some(a) => a,
            None => {
                let (host, port) = join::split_addr(&s.node_addr).context("node_addr in cluster.toml")?;
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SocketAddr::new(ip, port),
                    Err(_) => SocketAddr::from(([0, 0, 0, 0], port)),
                }
            }
        };
        let mut members = BTreeMap::new();
        for (id, addr) in &s.members {
            let id: NodeId = id.parse().with_context(|| format!("member id {id:?} in cluster.toml"))?;
            members.insert(id, NodeAddr { addr: addr.clone() });
        }
        Ok(PeerOptions {
            cluster_id: s.cluster_id.clone(),
            ca_pem: self.ca_pem,
            identity: Arc::new(self.identity),
            listen: PeerListen { addr: bind, bound: Default::default() },
            advertise: s.node_addr.clone(),
            members,
            ca: self.ca.map(Arc::new),
        })
    }
}

/// Moves a finished `staging` directory into place as `data_dir/cluster`.
fn publish(data_dir: &Path, staging: &Path) -> anyhow::Result<()> {
    sync(staging)?;
    std::fs::rename(staging, data_dir.join(DIR)).context("moving the cluster files into place")?;
    sync(data_dir)
}

/// A fresh, empty staging directory beside where the cluster files go; refuses a node that has them.
fn staging(data_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(files) = ClusterFiles::load(data_dir)? {
        anyhow::bail!(
            "{} is already node {} of cluster {}",
            data_dir.display(),
            files.settings.node_id,
            files.settings.cluster_id
        );
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let staging = data_dir.join(format!("{DIR}.new"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).context("removing a half-written cluster directory")?;
    }
    std::fs::create_dir(&staging)?;
    Ok(staging)
}

/// What `hoard cluster init` made.
pub struct Initialized {
    pub cluster_id: String,
    pub token: JoinToken,
    pub expires_ms: i64,
}

/// `hoard cluster init`: makes the cluster CA and this node's certificate as node 1 at `node_addr`, and a
/// first join token (valid `ttl`). A data dir that already served as a one-node hoard keeps its objects:
/// its metadata group simply gains peers.
pub fn init(
    data_dir: &Path,
    node_addr: &str,
    peer_listen: Option<SocketAddr>,
    ttl: Duration,
    env: &dyn Env,
) -> anyhow::Result<Initialized> {
    let (host, _) = join::split_addr(node_addr).context("--node-addr must be host:port")?;
    let staging = staging(data_dir)?;
    let cluster_id = format!("{:016x}", env.random_u64());
    let ca = ClusterCa::generate(&cluster_id)?;
    let identity = ca.issue(1, host)?;
    let settings = ClusterSettings {
        cluster_id: cluster_id.clone(),
        node_id: 1,
        node_addr: node_addr.to_string(),
        peer_listen,
        members: BTreeMap::from([("1".to_string(), node_addr.to_string())]),
        data_shards: None,
        parity_shards: None,
    };
    write_private(&staging, SETTINGS, toml::to_string(&settings)?.as_bytes())?;
    write_private(&staging, CA_CERT, ca.cert_pem().as_bytes())?;
    write_private(&staging, CA_KEY, ca.key_pem().as_bytes())?;
    write_private(&staging, NODE_CERT, identity.cert_pem.as_bytes())?;
    write_private(&staging, NODE_KEY, identity.key_pem.as_bytes())?;
    let cluster = ClusterIdentity::new(&cluster_id, ca.cert_pem(), node_addr, true)?;
    let (token, expires_ms) = add_pending_token(&staging, &cluster, ttl, env)?;
    publish(data_dir, &staging)?;
    Ok(Initialized { cluster_id, token, expires_ms })
}

/// `hoard cluster token --data-dir`: a new join token of the cluster this data dir belongs to, recorded as
/// pending here; the node moves it into the metadata within a second when it runs, or when it starts.
pub fn local_token(data_dir: &Path, ttl: Duration, env: &dyn Env) -> anyhow::Result<(JoinToken, i64)> {
    let files = ClusterFiles::load(data_dir)?
        .with_context(|| format!("{} is not a cluster member (run hoard cluster init first)", data_dir.display()))?;
    let s = &files.settings;
    let cluster = ClusterIdentity::new(&s.cluster_id, &files.ca_pem, &s.node_addr, files.ca.is_some())?;
    add_pending_token(&files.dir, &cluster, ttl, env)
}

fn add_pending_token(
    dir: &Path,
    cluster: &ClusterIdentity,
    ttl: Duration,
    env: &dyn Env,
) -> anyhow::Result<(JoinToken, i64)> {
    let token = JoinToken::generate(cluster, env);
    let expires_ms = join::expires_at(env.now_ms(), ttl);
    join::add_pending(dir, join::token_hash(&token.secret), expires_ms).context("recording the join token")?;
    Ok((token, expires_ms))
}

/// `hoard cluster join`: asks the member at `peer` to admit this node at `node_addr` with `token`, and
/// writes the cluster files. The node's key is made here and never sent.
pub async fn join(
    data_dir: &Path,
    node_addr: &str,
    peer_listen: Option<SocketAddr>,
    peer: &str,
    token: &str,
) -> anyhow::Result<ClusterSettings> {
    let token = JoinToken::parse(token)?;
    join::split_addr(node_addr).context("--node-addr must be host:port")?;
    if data_dir.join("meta").exists() {
        anyhow::bail!(
            "{} has served as a hoard of its own (it has metadata): a node joins with an empty data dir",
            data_dir.display()
        );
    }
    let staging = staging(data_dir)?;
    let (csr_pem, key_pem) = peer_tls::make_csr()?;
    let request = rpc::JoinRequest {
        token_secret: token.secret.to_string(),
        csr_pem,
        node_addr: node_addr.to_string(),
        cluster_version: CLUSTER_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let reply = join::request_join(peer, &token.cluster_id, token.ca_pin, request).await?;
    if reply.cluster_id != token.cluster_id {
        anyhow::bail!("{peer} answered for cluster {}, not the token's {}", reply.cluster_id, token.cluster_id);
    }
    let members = reply.members.iter().map(|m| (m.node_id.to_string(), m.addr.clone())).collect();
    let settings = ClusterSettings {
        cluster_id: reply.cluster_id.clone(),
        node_id: reply.node_id,
        node_addr: node_addr.to_string(),
        peer_listen,
        members,
        data_shards: u8::try_from(reply.data_shards).ok(),
        parity_shards: u8::try_from(reply.parity_shards).ok(),
    };
    write_private(&staging, SETTINGS, toml::to_string(&settings)?.as_bytes())?;
    write_private(&staging, CA_CERT, reply.ca_pem.as_bytes())?;
    write_private(&staging, NODE_CERT, reply.cert_pem.as_bytes())?;
    write_private(&staging, NODE_KEY, key_pem.as_bytes())?;
    publish(data_dir, &staging)?;
    Ok(settings)
}
