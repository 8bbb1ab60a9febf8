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

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use hoard_actors::repair::RepairStats;
use hoard_actors::scrub::ScrubReport;
use hoard_protocol::Credential;
use hoard_s3::tls::TlsFiles;

use crate::faults::FaultRegistry;
use crate::node::Node;
use crate::node::NodeOptions;
use crate::node::NodeStats;

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

    /// Stops the node and starts it again on the same directories and port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            self.opts.listen = node.addr;
            self.opts.http_listen = node.http_addr;
            node.stop().await;
        }
        self.node = Some(Node::start(self.opts.clone()).await?);
        Ok(())
    }

    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.stop().await;
        }
    }
}
