//! Booting and stopping one node: builds its `NodeContext`, starts `node_sup` and its subtree, and
//! settles the root credentials.
//!
//! Several nodes may run in one process (tests, simulation): nothing here is global.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use hoard_actors::ec_pool::EcPool;
use hoard_actors::encryptor::EncryptorPool;
use hoard_actors::faults::FaultAdmin;
use hoard_actors::faults::FaultInjector;
use hoard_actors::faults::NoFaults;
use hoard_actors::key_keeper::KeyKeeperArgs;
use hoard_actors::key_keeper::KeyKeeperHandle;
use hoard_actors::meta::InProcessForward;
use hoard_actors::meta::MetaHandle;
use hoard_actors::meta::MetaSetup;
use hoard_actors::metrics::NodeMetrics;
use hoard_actors::net::Net;
use hoard_actors::peer_tls;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::peer_tls::NodeIdentity;
use hoard_actors::peer_tls::RevokedNodes;
use hoard_actors::repair::RepairHandle;
use hoard_actors::scrub::ScrubHandle;
use hoard_actors::shard::ShardHandle;
use hoard_actors::transport::actor::PeerListen;
use hoard_actors::transport::join::JoinAuthority;
use hoard_actors::transport::peer::GrpcTransport;
use hoard_actors::transport::peer::Peers;
use hoard_actors::transport::InProcessTransport;
use hoard_actors::transport::LocalOnly;
use hoard_actors::ClusterIdentity;
use hoard_actors::NodeConfig;
use hoard_actors::NodeContext;
use hoard_actors::BLOCK_SIZE;
use hoard_actors::INLINE_MAX;
use hoard_protocol::Credential;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::NodeAddr;
use hoard_protocol::NodeId;
use hoard_protocol::StoredCredential;
use hoard_s3::listener::ConnectionLimits;
use hoard_s3::listener::Drain;
use hoard_s3::tls::TlsFiles;
use hoard_storage::disk::Disk;
use hoard_storage::env::Env;
use hoard_storage::env::SystemEnv;
use hoard_storage::identity;
use hoard_storage::meta::InProcessNetwork;
use hoard_storage::meta::MetaNetwork;
use hoard_storage::seal::MasterKey;
use ractor::ActorCell;
use ractor::SpawnErr;
use std::collections::BTreeMap;

use crate::faults::FaultRegistry;
use crate::s3_sup::Endpoint;
use crate::sup::spawn_sup;
use crate::sup::ChildSpec;
use crate::sup::SupStats;

/// How a node of an in-process cluster (tests, the simulation) reaches the others: the metadata Raft
/// network, the other nodes' disks, and the members the group is formed with.
#[derive(Clone)]
pub struct InProcessCluster {
    pub network: InProcessNetwork,
    pub transport: InProcessTransport,
    pub members: BTreeMap<NodeId, NodeAddr>,
}

/// How a node of a cluster of processes reaches the others: gRPC over mutual TLS under the cluster CA.
#[derive(Clone)]
pub struct PeerOptions {
    pub cluster_id: String,
    /// The cluster CA's certificate (PEM): the only issuer a peer's certificate is accepted from.
    pub ca_pem: String,
    /// This node's certificate and key.
    pub identity: Arc<NodeIdentity>,
    /// Where the peer server listens.
    pub listen: PeerListen,
    /// The address the other nodes reach this one at (`host:port`), as the group's membership records it.
    pub advertise: String,
    /// The metadata group's members when it is first formed; the member with the lowest id forms it. A node
    /// that joined lists the members it was told of, all with lower ids: it never forms a group.
    pub members: BTreeMap<NodeId, NodeAddr>,
    /// The cluster CA with its key, on a node that signs joins.
    pub ca: Option<Arc<ClusterCa>>,
}

/// Everything a node is started with.
#[derive(Clone)]
pub struct NodeOptions {
    /// This node's id in its metadata group (1 for a node of its own).
    pub node_id: NodeId,
    /// Set for a node of an in-process cluster; `None`: a node of its own.
    pub cluster: Option<InProcessCluster>,
    /// Set for a node of a cluster of processes (also when they share one process, as in tests).
    pub peer: Option<PeerOptions>,
    pub data_dir: PathBuf,
    /// Disk directories; empty = `data_shards + parity_shards` directories under `data_dir`.
    pub disks: Vec<PathBuf>,
    pub data_shards: u8,
    pub parity_shards: u8,
    /// The S3 endpoint: HTTPS when `tls` is set, plain HTTP otherwise.
    pub listen: SocketAddr,
    /// Certificate and key (PEM) for HTTPS on `listen`.
    pub tls: Option<TlsFiles>,
    /// A plain-HTTP endpoint beside the HTTPS one (only with `tls`).
    pub http_listen: Option<SocketAddr>,
    /// Root credentials given by the operator; when absent a pair is generated once and stored.
    pub root_credential: Option<Credential>,
    pub scrub_interval: Option<Duration>,
    pub scrub_grace: Duration,
    /// Workers per CPU pool; 0 = one per core.
    pub workers: usize,
    /// Enables the fault registry (refused by the admin API otherwise).
    pub fault_injection: bool,
    /// The master key file (32 bytes raw, hex or base64); without it the node stores plaintext only.
    pub master_key_file: Option<PathBuf>,
    /// Accept SSE-C on plain HTTP because a TLS-terminating proxy the operator trusts is in front.
    pub trust_proxy_tls: bool,
    /// Where `hoard serve` exports traces (OTLP/gRPC); the process installs the exporter, the node ignores it.
    pub otlp_endpoint: Option<String>,
    /// Threads of `hoard serve`'s async runtime (None: one per core); the process builds the runtime, the
    /// node ignores it.
    pub runtime_threads: Option<usize>,
    /// Connection caps and timeouts of the S3 listeners.
    pub limits: ConnectionLimits,
    /// How long a graceful stop (SIGTERM, Ctrl-C) waits for requests in flight.
    pub shutdown_timeout: Duration,
    pub env: Arc<dyn Env>,
    /// Where the node's sockets come from (the operating system's TCP; a simulation's network).
    pub net: Arc<dyn Net>,
    /// Disks given ready-made, in slot order, instead of the directories of `disks` (a simulation's
    /// in-memory disks); they are not assigned identities.
    pub given_disks: Option<Vec<Arc<dyn Disk>>>,
}

/// The default of `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

impl NodeOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeOptions {
            node_id: 1,
            cluster: None,
            peer: None,
            data_dir: data_dir.into(),
            disks: Vec::new(),
            data_shards: 4,
            parity_shards: 2,
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            tls: None,
            http_listen: None,
            root_credential: None,
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
            scrub_grace: Duration::from_secs(3600),
            workers: 0,
            fault_injection: false,
            master_key_file: None,
            trust_proxy_tls: false,
            otlp_endpoint: None,
            runtime_threads: None,
            limits: ConnectionLimits::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            env: Arc::new(SystemEnv),
            net: hoard_actors::net::tcp(),
            given_disks: None,
        }
    }

    /// Refuses a plain-HTTP endpoint beside HTTPS when there is no HTTPS.
    pub fn check_endpoints(&self) -> anyhow::Result<()> {
        if self.http_listen.is_some() && self.tls.is_none() {
            anyhow::bail!(
                "--http-listen opens a plain-HTTP endpoint beside the HTTPS one: give --tls-cert and --tls-key too"
            );
        }
        Ok(())
    }

    pub fn disk_paths(&self) -> Vec<PathBuf> {
        if self.disks.is_empty() {
            let n = self.data_shards as usize + self.parity_shards as usize;
            (1..=n).map(|i| self.data_dir.join(format!("disk{i}"))).collect()
        } else {
            self.disks.clone()
        }
    }
}

/// Supervisor counters of one node, for tests and status.
#[derive(Default)]
pub struct NodeStats {
    pub node: Arc<SupStats>,
    pub transport: Arc<SupStats>,
    pub meta: Arc<SupStats>,
    pub disks: Arc<SupStats>,
    pub pools: Arc<SupStats>,
    pub maintenance: Arc<SupStats>,
    pub s3: Arc<SupStats>,
}

impl NodeStats {
    /// Each supervisor's counters under the supervisor's actor name.
    pub fn named(&self) -> [(&'static str, Arc<SupStats>); 7] {
        [
            ("node_sup", self.node.clone()),
            ("transport_sup", self.transport.clone()),
            ("meta_sup", self.meta.clone()),
            ("disk_sup", self.disks.clone()),
            ("pool_sup", self.pools.clone()),
            ("maintenance_sup", self.maintenance.clone()),
            ("s3_sup", self.s3.clone()),
        ]
    }
}

/// A running node.
pub struct Node {
    pub ctx: NodeContext,
    /// The S3 endpoint's bound address (HTTPS when `tls`).
    pub addr: SocketAddr,
    pub tls: bool,
    /// The plain-HTTP endpoint beside the HTTPS one, when asked for.
    pub http_addr: Option<SocketAddr>,
    pub credential: Credential,
    /// True when the credential was generated at this start (print it once).
    pub generated_credential: bool,
    pub faults: Arc<FaultRegistry>,
    pub stats: Arc<NodeStats>,
    /// The links to the other members, in a cluster of processes.
    pub peers: Option<Arc<Peers>>,
    drain: Drain,
    root: ActorCell,
    join: tokio::task::JoinHandle<()>,
}

fn startup(e: impl std::fmt::Display) -> SpawnErr {
    SpawnErr::StartupFailed(e.to_string().into())
}

impl Node {
    pub async fn start(opts: NodeOptions) -> anyhow::Result<Node> {
        if opts.data_shards == 0 {
            anyhow::bail!("--data-shards must be at least 1");
        }
        let width = opts.data_shards as usize + opts.parity_shards as usize;
        if width > 255 {
            anyhow::bail!("data + parity shards must be at most 255");
        }
        let paths = opts.disk_paths();
        // A node of a cluster codes across every node's disks; the cluster checks that there are enough.
        if opts.cluster.is_none() && opts.peer.is_none() && paths.len() < width {
            anyhow::bail!(
                "{} disks configured but {}+{} coding needs at least {width} distinct disks",
                paths.len(),
                opts.data_shards,
                opts.parity_shards
            );
        }
        opts.check_endpoints()?;
        let tls = match &opts.tls {
            Some(files) => Some(hoard_s3::tls::server_config(files).context("TLS")?),
            None => None,
        };
        if let Some(path) = &opts.master_key_file {
            // Checked here so a bad key file refuses the start with its reason; the KeyKeeper loads it itself.
            let key = MasterKey::load(path).map_err(|e| anyhow::anyhow!("master key: {e}"))?;
            tracing::info!(key_id = %key.id(), "encryption at rest available: SSE-S3 and SSE-C");
        } else {
            tracing::warn!("no --master-key-file: this node stores objects unencrypted and refuses SSE-S3");
        }
        std::fs::create_dir_all(&opts.data_dir).with_context(|| format!("creating {}", opts.data_dir.display()))?;
        // Each disk, with the directory it is (for the log) and whether it replaces a lost one.
        let given: Vec<(Arc<dyn Disk>, String, bool)> = match &opts.given_disks {
            Some(disks) => {
                disks.iter().enumerate().map(|(i, d)| (d.clone(), format!("given disk {i}"), false)).collect()
            }
            None => {
                let assigned = identity::assign(&opts.data_dir, &paths, opts.env.as_ref()).context("disks")?;
                let replaced = assigned.replaced;
                let disks = assigned.disks.into_iter().enumerate().map(|(i, d)| {
                    let label = d.root().display().to_string();
                    (Arc::new(d) as Arc<dyn Disk>, label, replaced.contains(&(i as u32)))
                });
                disks.collect()
            }
        };
        let workers = if opts.workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            opts.workers
        };
        let registry = Arc::new(FaultRegistry::new());
        let faults: Arc<dyn FaultInjector> = if opts.fault_injection { registry.clone() } else { Arc::new(NoFaults) };
        let mut disks: Vec<ShardHandle> = Vec::new();
        for (i, (disk, label, replaced)) in given.into_iter().enumerate() {
            if replaced {
                tracing::warn!(
                    disk = %label,
                    slot = i,
                    "a new, empty directory takes the place of a lost disk; reads use parity until repair refills it"
                );
            }
            disks.push(ShardHandle::new(i as u32, disk, faults.clone()));
        }
        let meta = MetaHandle::default();
        let revoked = Arc::new(RevokedNodes::default());
        let peering = match &opts.peer {
            Some(p) => {
                let client = peer_tls::client_config(&p.ca_pem, &p.identity).context("peer TLS")?;
                let server = peer_tls::server_config(&p.cluster_id, &p.ca_pem, &p.identity, revoked.clone())
                    .context("peer TLS")?;
                Some((Peers::new(opts.node_id, &p.cluster_id, client, opts.net.clone()), server))
            }
            None => None,
        };
        let join = match &opts.peer {
            Some(p) if p.ca.is_some() => {
                let tls = peer_tls::join_server_config(&p.ca_pem, &p.identity).context("join TLS")?;
                let authority =
                    JoinAuthority { cluster_id: p.cluster_id.clone(), ca_pem: p.ca_pem.clone(), ca: p.ca.clone() };
                Some((tls, Arc::new(authority)))
            }
            _ => None,
        };
        let cluster = match &opts.peer {
            Some(p) => Some(
                ClusterIdentity::new(&p.cluster_id, &p.ca_pem, &p.advertise, p.ca.is_some()).context("cluster CA")?,
            ),
            None => None,
        };
        let ctx = NodeContext {
            config: Arc::new(NodeConfig {
                node_id: opts.node_id,
                data_shards: opts.data_shards,
                parity_shards: opts.parity_shards,
                block_size: BLOCK_SIZE,
                scrub_interval: opts.scrub_interval,
                scrub_grace: opts.scrub_grace,
                inline_max: INLINE_MAX,
                cluster,
            }),
            env: opts.env.clone(),
            faults: faults.clone(),
            key_keeper: KeyKeeperHandle::default(),
            meta: meta.clone(),
            shards: Arc::new(disks.clone()),
            ec: EcPool::new(workers),
            encryptor: EncryptorPool::new(workers),
            repair: RepairHandle::new(meta),
            scrub: ScrubHandle::default(),
            rotation: hoard_actors::rotation::RotationHandle::default(),
            rebalance: hoard_actors::rebalance::RebalanceHandle::default(),
            transport: match (&opts.cluster, &peering) {
                (Some(cluster), _) => {
                    cluster.transport.register(opts.node_id, disks.clone());
                    Arc::new(cluster.transport.clone())
                }
                (None, Some((peers, _))) => Arc::new(GrpcTransport(peers.clone())),
                (None, None) => Arc::new(LocalOnly),
            },
            metrics: Arc::new(NodeMetrics::new()),
            net: opts.net.clone(),
        };
        let stats = Arc::new(NodeStats::default());
        for (name, sup) in stats.named() {
            let down = sup.clone();
            ctx.metrics.add_supervisor(name, move || sup.restarts.load(Ordering::Relaxed), move || down.down());
        }
        let drain = Drain::default();
        let main = Endpoint::new(opts.listen, tls.clone(), drain.clone());
        let plain = opts.http_listen.map(|a| Endpoint::new(a, None, drain.clone()));
        let endpoints: Vec<Endpoint> = std::iter::once(main.clone()).chain(plain.clone()).collect();
        let credential_out: Arc<Mutex<Option<(Credential, bool)>>> = Arc::new(Mutex::new(None));

        let mut children: Vec<ChildSpec> = Vec::new();
        // Before metadata: a starting Raft needs its peers' votes, and they need this node's server.
        if let (Some(p), Some((peers, server_tls))) = (&opts.peer, &peering) {
            let transport = crate::transport_sup::TransportSetup {
                listen: p.listen.clone(),
                tls: server_tls.clone(),
                join: join.clone(),
                peers: peers.clone(),
                revoked: revoked.clone(),
                cluster_dir: Some(opts.data_dir.join("cluster")),
            };
            let (c, st) = (ctx.clone(), stats.transport.clone());
            children.push(crate::node_sup::sup_child("transport_sup", move || {
                crate::transport_sup::spec(c.clone(), transport.clone(), st.clone())
            }));
        }
        {
            let (h, st) = (ctx.meta.clone(), stats.meta.clone());
            let mut setup = MetaSetup::alone(opts.data_dir.join("meta"), opts.node_id, opts.listen.to_string());
            if let Some(cluster) = &opts.cluster {
                setup.members = cluster.members.clone();
                setup.network = MetaNetwork::InProcess(cluster.network.endpoint(opts.node_id));
                setup.forward = Arc::new(InProcessForward(setup.network.clone()));
            } else if let (Some(p), Some((peers, _))) = (&opts.peer, &peering) {
                setup.addr = p.advertise.clone();
                setup.members = p.members.clone();
                setup.network = MetaNetwork::Remote(peers.clone());
                setup.forward = peers.clone();
            }
            children.push(crate::node_sup::sup_child("meta_sup", move || {
                crate::meta_sup::spec(h.clone(), setup.clone(), st.clone())
            }));
        }
        // After metadata: the KeyKeeper reads which rotation key file to load.
        let key_args = KeyKeeperArgs {
            master_key_file: opts.master_key_file.clone(),
            meta: ctx.meta.clone(),
            faults: faults.clone(),
        };
        children.push(crate::node_sup::key_keeper_child(ctx.key_keeper.clone(), key_args));
        {
            let (f, st) = (faults.clone(), stats.disks.clone());
            children.push(crate::node_sup::sup_child("disk_sup", move || {
                crate::disk_sup::spec(disks.clone(), f.clone(), st.clone())
            }));
        }
        {
            let (ec, enc, f, st) = (ctx.ec.clone(), ctx.encryptor.clone(), faults.clone(), stats.pools.clone());
            children.push(crate::node_sup::sup_child("pool_sup", move || {
                crate::pool_sup::spec(ec.clone(), enc.clone(), f.clone(), st.clone())
            }));
        }
        {
            let (c, st) = (ctx.clone(), stats.maintenance.clone());
            children.push(crate::node_sup::sup_child("maintenance_sup", move || {
                crate::maintenance_sup::spec(c.clone(), st.clone())
            }));
        }
        {
            let (c, st, trust, limits) = (ctx.clone(), stats.s3.clone(), opts.trust_proxy_tls, opts.limits);
            let given = opts.root_credential.clone();
            let out = credential_out.clone();
            let admin: Option<Arc<dyn FaultAdmin>> =
                opts.fault_injection.then(|| registry.clone() as Arc<dyn FaultAdmin>);
            children.push(ChildSpec::new("s3_sup", move |parent| {
                let (c, st, given, out) = (c.clone(), st.clone(), given.clone(), out.clone());
                let (admin, endpoints) = (admin.clone(), endpoints.clone());
                async move {
                    let (cred, generated) = settle_credential(&c, given.clone()).await.map_err(startup)?;
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = Some((cred, generated));
                    let spec = crate::s3_sup::spec(c, endpoints, given, admin, trust, limits, st);
                    spawn_sup(parent, spec).await
                }
                .boxed()
            }));
        }

        let spawned = ractor::Actor::spawn(
            Some(format!("node_sup-{}", crate::sup::uniq())),
            crate::sup::Supervisor,
            crate::node_sup::spec(children, stats.node.clone()),
        )
        .await;
        let (root, join) = match spawned {
            Ok(started) => started,
            Err(e) => {
                // A metadata Raft that did start must not go on voting without its node.
                ctx.meta.shutdown().await;
                anyhow::bail!("node failed to start: {e}");
            }
        };
        let addr = main.bound_addr().await?;
        let http_addr = match &plain {
            Some(p) => Some(p.bound_addr().await?),
            None => None,
        };
        let (credential, generated_credential) =
            credential_out.lock().unwrap_or_else(|p| p.into_inner()).clone().context("credentials were not settled")?;
        if let Some(p) = &opts.peer {
            settle_address(&ctx, &p.advertise).await;
            check_master_key(&ctx).await;
            // Tokens made while the node was down (`cluster init`, `cluster token --data-dir`) work as soon as
            // it serves; later ones are picked up by the peer watch.
            match hoard_actors::transport::join::import_pending(&opts.data_dir.join("cluster"), &ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(tokens = n, "join tokens made on this host are recorded"),
                Err(e) => tracing::warn!(error = %e, "pending join tokens not recorded yet; retried every second"),
            }
        }
        Ok(Node {
            ctx,
            addr,
            tls: tls.is_some(),
            http_addr,
            credential,
            generated_credential,
            faults: registry,
            stats,
            peers: peering.map(|(peers, _)| peers),
            drain,
            root: root.get_cell(),
            join,
        })
    }

    /// The S3 endpoint's URL: `https://` when the node serves TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A graceful stop (SIGTERM): accepts nothing new, closes idle connections, lets the requests in flight
    /// finish for up to `grace`, then stops every actor and closes the metadata store. Each step is logged.
    pub async fn shutdown(self, grace: Duration) {
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            open_connections = self.drain.open(),
            "stopping: no new connections; requests in flight may finish"
        );
        self.drain.begin();
        match tokio::time::timeout(grace, self.drain.closed()).await {
            Ok(()) => tracing::info!("every request in flight has finished"),
            Err(_) => tracing::warn!(
                open_connections = self.drain.open(),
                "the stop deadline passed: closing the connections still open"
            ),
        }
        self.stop().await;
        tracing::info!("actors stopped and the metadata store closed");
    }

    /// Stops every actor of the node and releases its stores.
    pub async fn stop(self) {
        self.root.stop(None);
        let _ = self.join.await;
        self.ctx.meta.shutdown().await;
    }

    /// The first actor of the node's tree whose name starts with `prefix` (`listener-`, `disk_sup-`), for
    /// tests that stop one to see it restarted.
    pub fn find_actor(&self, prefix: &str) -> Option<ActorCell> {
        let mut stack = vec![self.root.clone()];
        while let Some(cell) = stack.pop() {
            if cell.get_name().is_some_and(|n| n.starts_with(prefix)) {
                return Some(cell);
            }
            stack.extend(cell.get_children());
        }
        None
    }

    /// Resolves when the node's root supervisor has stopped (gave up, or was stopped).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.join).await;
    }
}

/// Records `advertise` as this node's address in the group's membership when it says otherwise: the first
/// member of a cluster made from a one-node hoard, or a node given a new address.
async fn settle_address(ctx: &NodeContext, advertise: &str) {
    let me = ctx.config.node_id;
    let recorded = match ctx.meta.metrics().await {
        Ok(m) => m.membership_config.membership().get_node(&me).map(|n| n.addr.clone()),
        Err(_) => return,
    };
    if recorded.as_deref().is_some_and(|r| r != advertise) {
        let change = hoard_protocol::MembershipChange::SetAddr { node: me, addr: advertise.to_string() };
        match ctx.meta.change_membership(change).await {
            Ok(()) => tracing::info!(was = ?recorded, now = advertise, "this node's address in the cluster is updated"),
            Err(e) => tracing::warn!(error = %e, "this node's new address is not recorded yet; peers may not reach it"),
        }
    }
}

/// In a cluster every node wraps SSE-S3 data keys under one master key: the first node that starts with a key
/// names it, and a node that does not hold the named key says so loudly at start (SSE-S3 then fails on it,
/// naming the key, rather than wrapping under a key the other nodes lack). Key ids are not secret.
async fn check_master_key(ctx: &NodeContext) {
    let keys = match ctx.key_keeper.status().await {
        Ok(keys) => keys,
        Err(e) => return tracing::warn!(error = %e, "the master key check waits for the KeyKeeper; SSE-S3 checks it"),
    };
    let Ok(mut settings) = ctx.meta.read(|r| r.encryption_settings()).await else { return };
    // Proposed only while no key is named: a restart of a node of a cluster that has one writes nothing.
    if let (None, Some(mine)) = (&settings.active_key_id, &keys.active) {
        if let Err(e) = ctx.meta.write(MetaCommand::SetActiveKey { key_id: mine.clone() }).await {
            return tracing::warn!(error = %e, "could not name the cluster's master key yet");
        }
        let Ok(named) = ctx.meta.read(|r| r.encryption_settings()).await else { return };
        settings = named;
    }
    match settings.active_key_id {
        Some(cluster) if !keys.held.contains(&cluster) => tracing::error!(
            cluster_key = %cluster,
            held = ?keys.held,
            "this node does not hold the cluster's master key: SSE-S3 writes, and reads of SSE-S3 objects, fail on \
             this node until it is started with that key's file (--master-key-file)"
        ),
        Some(cluster) => tracing::info!(key_id = %cluster, "this node holds the cluster's master key"),
        None => {}
    }
}

/// The operator's credential wins; otherwise the stored one; otherwise a new random pair is stored. Metadata
/// keeps it sealed under the master key where the node holds one: a credential stored in clear before the
/// node had a key is sealed now, unchanged.
async fn settle_credential(ctx: &NodeContext, given: Option<Credential>) -> anyhow::Result<(Credential, bool)> {
    if let Some(c) = given {
        return Ok((c, false));
    }
    if let Some(stored) = ctx.meta.read(|r| r.root_credential()).await? {
        let open = hoard_s3::auth::open(ctx, &stored).await.map_err(|e| {
            anyhow::anyhow!("cannot open the stored root credential ({e}); start the node with its master key")
        })?;
        if matches!(stored, StoredCredential::Plain(_)) && ctx.key_keeper.has_key().await? {
            let sealed = hoard_s3::auth::seal(ctx, &open).await?;
            ctx.meta.write(MetaCommand::PutRootCredential { credential: sealed, replace: true }).await?;
            tracing::info!("the stored root credential is now sealed under the master key");
        }
        return Ok((open, false));
    }
    let proposed = hoard_s3::auth::generate(ctx);
    let stored = hoard_s3::auth::seal(ctx, &proposed).await?;
    match ctx.meta.write(MetaCommand::PutRootCredential { credential: stored, replace: false }).await? {
        MetaResponse::RootCredential(kept) => {
            let open = hoard_s3::auth::open(ctx, &kept).await?;
            let generated = open == proposed;
            Ok((open, generated))
        }
        other => anyhow::bail!("unexpected answer storing credentials: {other:?}"),
    }
}
