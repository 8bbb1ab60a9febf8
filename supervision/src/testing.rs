//! An in-process hoard for integration tests — yours or ours.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hoard::testing::TestNode;
//! use hoard::Fault;
//! let node = TestNode::builder().fault_injection(true).start().await?;
//! node.faults().arm("put.before_commit", Fault::Panic);
//! // ... point an S3 client at node.endpoint() with node.access_key()/node.secret_key() ...
//! node.faults().disarm("put.before_commit");
//! node.stop().await;
//! # Ok(()) }
//! ```
//! Each node gets its own temporary directory (removed on drop) and a free port on 127.0.0.1.
//!
//! [`TestCluster`] runs several such nodes in one process as one cluster: one metadata Raft group over an
//! in-process network, each object coded across the disks of every node, any node taking reads and writes.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use hoard::testing::TestCluster;
//! use hoard::Fault;
//! let cluster = TestCluster::builder().nodes(3).disks_per_node(2).fault_injection(true).start().await?;
//! cluster.node(1).faults().arm("put.before_commit", Fault::Error);
//! // ... PUT through cluster.node(1).endpoint(), read through cluster.node(2).endpoint() ...
//! cluster.stop().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use hoard_actors::repair::RepairStats;
use hoard_actors::scrub::ScrubReport;
use hoard_protocol::Credential;
use hoard_s3::tls::TlsFiles;

use hoard_actors::net::Net;
use hoard_actors::transport::InProcessTransport;
use hoard_protocol::NodeAddr;
use hoard_storage::meta::InProcessNetwork;

use crate::faults::FaultRegistry;
use crate::node::InProcessCluster;
use crate::node::Node;
use crate::node::NodeOptions;
use crate::node::NodeStats;
use crate::node::PeerOptions;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::transport::actor::PeerListen;
use hoard_storage::env::Env;
use hoard_storage::env::SystemEnv;
use std::sync::Arc;

pub struct TestNodeBuilder {
    opts: NodeOptions,
    dir: Option<tempfile::TempDir>,
}

impl TestNodeBuilder {
    pub fn data_shards(mut self, k: u8) -> Self {
        self.opts.data_shards = k;
        self
    }
    pub fn parity_shards(mut self, m: u8) -> Self {
        self.opts.parity_shards = m;
        self
    }
    pub fn fault_injection(mut self, on: bool) -> Self {
        self.opts.fault_injection = on;
        self
    }
    /// How old unreferenced shard files must be before scrub deletes them (default here: 0).
    pub fn scrub_grace(mut self, d: Duration) -> Self {
        self.opts.scrub_grace = d;
        self
    }
    /// Keeps the node's data under `dir`, which the caller owns and which outlives the node, instead of in
    /// the builder's temporary directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.opts.data_dir = dir.into();
        self
    }

    /// Starts the node with this master key file (encryption at rest).
    pub fn master_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.opts.master_key_file = Some(path.into());
        self
    }

    /// Accepts SSE-C on the plain-HTTP endpoint, as behind a trusted TLS-terminating proxy.
    pub fn trust_proxy_tls(mut self, on: bool) -> Self {
        self.opts.trust_proxy_tls = on;
        self
    }

    /// Serves HTTPS with this certificate and key (PEM files) instead of plain HTTP.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.opts.tls = Some(TlsFiles { cert: cert.into(), key: key.into() });
        self
    }

    /// With `tls`: also serves plain HTTP on a free port (see `http_endpoint`).
    pub fn http_listen(mut self, on: bool) -> Self {
        self.opts.http_listen = on.then(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        self
    }

    pub fn credential(mut self, access_key: &str, secret_key: &str) -> Self {
        self.opts.root_credential = Some(Credential { access_key: access_key.into(), secret_key: secret_key.into() });
        self
    }
    pub async fn start(self) -> anyhow::Result<TestNode> {
        let node = Node::start(self.opts.clone()).await?;
        Ok(TestNode { node: Some(node), opts: self.opts, _dir: self.dir })
    }
}

pub struct TestNode {
    node: Option<Node>,
    opts: NodeOptions,
    _dir: Option<tempfile::TempDir>,
}

impl TestNode {
    /// A node in a fresh temporary directory, 4+2 over six disk directories, scrub only when asked.
    pub fn builder() -> TestNodeBuilder {
        let dir = tempfile::Builder::new().prefix("hoard-test-").tempdir().expect("a temporary directory");
        let mut opts = NodeOptions::new(dir.path().join("data"));
        opts.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        opts.scrub_interval = None;
        opts.scrub_grace = Duration::ZERO;
        opts.root_credential =
            Some(Credential { access_key: "hoardtest".into(), secret_key: "hoardtestsecret".into() });
        opts.workers = 2;
        TestNodeBuilder { opts, dir: Some(dir) }
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("the node is running")
    }

    /// The S3 endpoint: `https://` when the node serves TLS.
    pub fn endpoint(&self) -> String {
        self.node().endpoint()
    }
    /// The plain-HTTP endpoint beside HTTPS, when the node was built with `http_listen(true)`.
    pub fn http_endpoint(&self) -> Option<String> {
        self.node().http_addr.map(|a| format!("http://{a}"))
    }
    pub fn addr(&self) -> SocketAddr {
        self.node().addr
    }
    pub fn access_key(&self) -> &str {
        &self.node().credential.access_key
    }
    pub fn secret_key(&self) -> &str {
        &self.node().credential.secret_key
    }
    pub fn faults(&self) -> &FaultRegistry {
        &self.node().faults
    }
    pub fn stats(&self) -> &NodeStats {
        &self.node().stats
    }
    pub fn repair_stats(&self) -> &RepairStats {
        &self.node().ctx.repair.stats
    }
    pub fn data_dir(&self) -> &Path {
        &self.opts.data_dir
    }
    pub fn disk_paths(&self) -> Vec<PathBuf> {
        self.opts.disk_paths()
    }
    pub fn context(&self) -> &hoard_actors::NodeContext {
        &self.node().ctx
    }

    /// Runs one scrub pass now.
    pub async fn scrub_now(&self) -> anyhow::Result<ScrubReport> {
        Ok(self.node().ctx.scrub.run().await?)
    }

    /// Waits until repair has handled every damage report made so far.
    pub async fn repair_idle(&self) -> anyhow::Result<()> {
        Ok(self.node().ctx.repair.flush().await?)
    }

    /// Stops the first actor of the node whose name starts with `prefix`, as a crash would take it; its
    /// supervisor sees it go. Returns whether there was one.
    pub fn stop_actor(&self, prefix: &str) -> bool {
        match self.node().find_actor(prefix) {
            Some(cell) => {
                cell.stop(Some("stopped by a test".into()));
                true
            }
            None => false,
        }
    }

    /// Stops the node and starts it again on the same directories and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.halt().await;
        self.node = Some(Node::start(self.opts.clone()).await?);
        Ok(())
    }

    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }

    /// Stops the node but keeps its directories and ports, to `restart` it later.
    pub async fn halt(&mut self) {
        if let Some(node) = self.node.take() {
            self.opts.listen = node.addr;
            self.opts.http_listen = node.http_addr;
            node.stop().await;
        }
    }

    /// Where the node serves its peers, in a cluster over gRPC.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.opts.peer.as_ref().map(|p| p.listen.addr)
    }

    /// The cluster CA's certificate (PEM), in a cluster over gRPC.
    pub fn cluster_ca_pem(&self) -> Option<&str> {
        self.opts.peer.as_ref().map(|p| p.ca_pem.as_str())
    }

    /// The cluster's id, in a cluster over gRPC.
    pub fn cluster_id(&self) -> Option<&str> {
        self.opts.peer.as_ref().map(|p| p.cluster_id.as_str())
    }

    /// The links to the other members, in a cluster over gRPC.
    pub fn peers(&self) -> Option<&Arc<hoard_actors::transport::peer::Peers>> {
        self.node().peers.as_ref()
    }
}

pub struct TestClusterBuilder {
    nodes: usize,
    disks_per_node: usize,
    data_shards: u8,
    parity_shards: u8,
    fault_injection: bool,
    grpc: bool,
    env: Option<Arc<dyn Env>>,
    net: Option<Arc<dyn Net>>,
}

impl TestClusterBuilder {
    /// Nodes talk gRPC over mutual TLS on loopback, as separate processes do (each with a certificate from
    /// one test CA), instead of calling each other directly.
    pub fn grpc(mut self, on: bool) -> Self {
        self.grpc = on;
        self
    }
    /// Nodes in the cluster (default 3).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }
    /// Disk directories of each node (default 2).
    pub fn disks_per_node(mut self, n: usize) -> Self {
        self.disks_per_node = n;
        self
    }
    pub fn data_shards(mut self, k: u8) -> Self {
        self.data_shards = k;
        self
    }
    pub fn parity_shards(mut self, m: u8) -> Self {
        self.parity_shards = m;
        self
    }
    /// Enables every node's fault registry.
    pub fn fault_injection(mut self, on: bool) -> Self {
        self.fault_injection = on;
        self
    }
    /// The time and randomness every node sees (default: each node the system's). One seeded `SimEnv` shared by
    /// the nodes is what makes a run repeatable.
    pub fn env(mut self, env: Arc<dyn Env>) -> Self {
        self.env = Some(env);
        self
    }

    /// Where every node's S3 endpoints listen (default: the operating system's TCP). Not with
    /// [`grpc`](Self::grpc), whose peers listen on TCP: nodes reach each other in-process.
    pub fn net(mut self, net: Arc<dyn Net>) -> Self {
        self.net = Some(net);
        self
    }

    /// Starts every node at once (a new group needs a majority of its members to elect a leader).
    pub async fn start(self) -> anyhow::Result<TestCluster> {
        let width = self.data_shards as usize + self.parity_shards as usize;
        if self.nodes == 0 || self.nodes * self.disks_per_node < width {
            anyhow::bail!(
                "{} nodes with {} disks each cannot hold {}+{} coding",
                self.nodes,
                self.disks_per_node,
                self.data_shards,
                self.parity_shards
            );
        }
        if self.grpc && self.net.is_some() {
            anyhow::bail!("a cluster over gRPC listens for its peers on TCP: it takes no other network");
        }
        let ids = 1..=self.nodes as u64;
        let peering = if self.grpc { Some(grpc_peers(ids.clone())?) } else { None };
        let members: BTreeMap<u64, NodeAddr> = match &peering {
            Some(peers) => peers.iter().map(|(id, p)| (*id, NodeAddr { addr: p.listen.addr.to_string() })).collect(),
            None => ids.clone().map(|id| (id, NodeAddr { addr: format!("in-process-{id}") })).collect(),
        };
        let wiring =
            InProcessCluster { network: InProcessNetwork::new(), transport: InProcessTransport::new(), members };
        let builders: Vec<TestNodeBuilder> = ids
            .map(|id| {
                let mut b = TestNode::builder()
                    .data_shards(self.data_shards)
                    .parity_shards(self.parity_shards)
                    .fault_injection(self.fault_injection);
                b.opts.node_id = id;
                if let Some(env) = &self.env {
                    b.opts.env = env.clone();
                }
                if let Some(net) = &self.net {
                    b.opts.net = net.clone();
                }
                match &peering {
                    Some(peers) => {
                        let mut p = peers[&id].clone();
                        p.members = wiring.members.clone();
                        b.opts.peer = Some(p);
                    }
                    None => b.opts.cluster = Some(wiring.clone()),
                }
                b.opts.disks = (1..=self.disks_per_node).map(|d| b.opts.data_dir.join(format!("disk{d}"))).collect();
                b
            })
            .collect();
        let started = futures::future::join_all(builders.into_iter().map(TestNodeBuilder::start)).await;
        let mut nodes = Vec::with_capacity(started.len());
        let mut failed = None;
        for node in started {
            match node {
                Ok(n) => nodes.push(n),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            for n in nodes {
                n.stop().await;
            }
            return Err(e.context("a node of the cluster did not start"));
        }
        // Stripes span every node only once each node has heard every other's disks.
        for n in &nodes {
            if let Some(peers) = &n.node().peers {
                peers.wait_for(nodes.len() - 1, Duration::from_secs(30)).await?;
            }
        }
        Ok(TestCluster { nodes, network: wiring.network })
    }
}

/// Each node's peer options for a cluster over gRPC: a test CA, a certificate per node, a bound port each.
fn grpc_peers(ids: impl Iterator<Item = u64>) -> anyhow::Result<BTreeMap<u64, PeerOptions>> {
    let cluster_id = format!("test{:08x}", SystemEnv.random_u64() as u32);
    let ca = ClusterCa::generate(&cluster_id)?;
    let mut peers = BTreeMap::new();
    for id in ids {
        let listen = PeerListen::bind_now(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let identity = Arc::new(ca.issue(id, "127.0.0.1")?);
        let options = PeerOptions {
            cluster_id: cluster_id.clone(),
            ca_pem: ca.cert_pem().to_string(),
            identity,
            advertise: listen.addr.to_string(),
            listen,
            members: BTreeMap::new(),
            ca: None,
        };
        peers.insert(id, options);
    }
    Ok(peers)
}

/// Several nodes in one process, forming one cluster. Nodes are numbered from 1, as their Raft ids.
pub struct TestCluster {
    nodes: Vec<TestNode>,
    network: InProcessNetwork,
}

impl TestCluster {
    /// Three nodes of two disk directories each, 4+2 coding across all six, scrub only when asked.
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder {
            nodes: 3,
            disks_per_node: 2,
            data_shards: 4,
            parity_shards: 2,
            fault_injection: false,
            grpc: false,
            env: None,
            net: None,
        }
    }

    /// Node `id` (1-based).
    ///
    /// # Panics
    /// If there is no node `id`.
    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[self.index(id)]
    }

    /// The position of node `id` in `nodes`.
    fn index(&self, id: u64) -> usize {
        match usize::try_from(id).ok().and_then(|id| id.checked_sub(1)).filter(|i| *i < self.nodes.len()) {
            Some(i) => i,
            None => panic!("the cluster has nodes 1..={}, not {id}", self.nodes.len()),
        }
    }

    pub fn nodes(&self) -> &[TestNode] {
        &self.nodes
    }

    /// Node `id`, to halt and restart it.
    ///
    /// # Panics
    /// If there is no node `id`.
    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        let i = self.index(id);
        &mut self.nodes[i]
    }

    /// Waits (up to 30 s) until node `seen_by` knows a leader of the metadata group other than `not`, and
    /// returns its id.
    pub async fn leader(&self, seen_by: u64, not: Option<u64>) -> anyhow::Result<u64> {
        let raft = self.node(seen_by).context().meta.raft.lock().await.clone();
        let raft = raft.ok_or_else(|| anyhow::anyhow!("node {seen_by} runs no metadata Raft"))?;
        let metrics = raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(|m| m.current_leader.is_some_and(|l| Some(l) != not), "a leader")
            .await?;
        metrics.current_leader.ok_or_else(|| anyhow::anyhow!("no leader"))
    }

    /// The in-process Raft network, to cut a node's metadata off (`remove`) and let it back (`add`).
    pub fn network(&self) -> &InProcessNetwork {
        &self.network
    }

    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}
