//! A whole cluster in one process on turmoil's simulated network: each node is a full `hoard` node (its
//! supervision tree, metadata Raft in its own fjall directory, peer transport over mutual TLS and gRPC, S3
//! listener), started on a turmoil host whose sockets are simulated TCP (`SimNet`), whose disks are in-memory
//! `SimDisk`s and whose clock and randomness are the run's (`TurmoilEnv`). turmoil steps every host's runtime in
//! turn on this one thread, so a run is a function of its seed.
//!
//! What a node keeps across a crash is what a real one keeps: its metadata directory and its disks' durable
//! state. Everything in memory goes with the host's runtime.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::Mutex;

use hoard::faults::FaultRegistry;
use hoard::node::PeerOptions;
use hoard::Node;
use hoard::NodeOptions;
use hoard_actors::net::Conn;
use hoard_actors::net::Listener;
use hoard_actors::net::Net;
use hoard_actors::net::NetFuture;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::transport::actor::PeerListen;
use hoard_actors::NodeContext;
use hoard_protocol::Credential;
use hoard_protocol::NodeAddr;
use hoard_storage::disk::sim::SimDisk;
use hoard_storage::disk::sim::SimDiskConfig;
use hoard_storage::disk::Disk;
use hoard_storage::env::Env;
use rand::rngs::StdRng;
use rand::RngCore as _;
use rand::SeedableRng as _;

/// The port of every node's S3 endpoint, and of its peer server.
pub const S3_PORT: u16 = 9000;
pub const PEER_PORT: u16 = 7000;
/// The simulated wall clock at the start of a run: 2026-01-01.
pub const START_MS: i64 = 1_767_225_600_000;
/// How long a started node waits to hear from its peers before it counts as started.
const PEERS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
pub const ACCESS_KEY: &str = "SIMROOTACCESSKEY0001";
pub const SECRET_KEY: &str = "sim-root-secret-key-0000000000000000000";

/// turmoil's TCP as a node's network: names are the simulated hosts' (`n1:7000`).
pub struct SimNet;

impl Net for SimNet {
    fn bind(&self, addr: SocketAddr) -> NetFuture<'static, Box<dyn Listener>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(SimListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: String) -> NetFuture<'static, Conn> {
        Box::pin(async move { Ok(conn(turmoil::net::TcpStream::connect(addr.as_str()).await?)) })
    }
}

fn conn(stream: turmoil::net::TcpStream) -> Conn {
    let (local, remote) = (stream.local_addr().ok(), stream.peer_addr().ok());
    Conn::new(stream, local, remote)
}

struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    fn accept(&mut self) -> NetFuture<'_, (Conn, SocketAddr)> {
        Box::pin(async move {
            let (stream, from) = self.0.accept().await?;
            Ok((conn(stream), from))
        })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// The run's clock and randomness: the wall clock is [`START_MS`] plus turmoil's simulated time, and every
/// random draw of every node comes from one generator seeded by the run's seed, in the order the one thread
/// makes them (data keys, nonces and salts of encrypted writes included).
pub struct TurmoilEnv {
    rng: Mutex<StdRng>,
}

impl TurmoilEnv {
    pub fn new(seed: u64) -> TurmoilEnv {
        TurmoilEnv { rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed_0e17)) }
    }
}

impl Env for TurmoilEnv {
    fn now_ms(&self) -> i64 {
        let elapsed = turmoil::sim_elapsed().unwrap_or_default().as_millis();
        START_MS.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX))
    }

    fn fill_random(&self, buf: &mut [u8]) {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).fill_bytes(buf);
    }
}

/// A node while its host runs: its fault registry and its handles.
#[derive(Clone)]
pub struct Running {
    pub faults: Arc<FaultRegistry>,
    pub ctx: NodeContext,
}

/// One node of the simulated cluster: what survives its crashes (its metadata directory, its disks) and,
/// while its host runs, its handles.
pub struct SimNode {
    pub id: u64,
    pub host: String,
    pub disks: Vec<SimDisk>,
    pub running: Rc<RefCell<Option<Running>>>,
    /// How many times the node has started (told as each start completes).
    pub starts: tokio::sync::watch::Receiver<u64>,
    pub up: bool,
}

/// The cluster's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub nodes: usize,
    pub disks_per_node: usize,
    pub data_shards: u8,
    pub parity_shards: u8,
}

/// The host name of node `id`.
pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// Adds the nodes of a cluster of `shape` to `sim`, each a host that starts a node with its options (and
/// starts it again after a bounce). `dir` holds each node's metadata directory and the master key file.
pub fn add_nodes(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    shape: Shape,
    dir: &std::path::Path,
    env: Arc<TurmoilEnv>,
) -> anyhow::Result<Vec<SimNode>> {
    let key_file = dir.join("master.key");
    let mut key = [0u8; 32];
    StdRng::seed_from_u64(seed ^ 0x4b45_5953).fill_bytes(&mut key);
    std::fs::write(&key_file, key)?;
    let cluster_id = format!("sim{:08x}", seed as u32);
    let ca = ClusterCa::generate(&cluster_id)?;
    let ids = 1..=shape.nodes as u64;
    let members: BTreeMap<u64, NodeAddr> =
        ids.clone().map(|id| (id, NodeAddr { addr: format!("{}:{PEER_PORT}", host(id)) })).collect();
    let mut nodes = Vec::new();
    let others = shape.nodes - 1;
    for id in ids {
        let disks: Vec<SimDisk> = (0..shape.disks_per_node)
            .map(|d| {
                let disk_seed = seed ^ (id << 32) ^ d as u64;
                // A crash tears half the unfinished temp files; the one crash of the seed's damage also loses what
                // the disk's cache held (the driver flushes the caches before every other crash).
                let config =
                    SimDiskConfig { torn_temp_on_crash: 0.5, lose_unsynced_commits: true, ..Default::default() };
                SimDisk::new(format!("n{id}d{d}"), disk_seed, config).with_clock(env.clone())
            })
            .collect();
        let mut opts = NodeOptions::new(dir.join(host(id)));
        opts.node_id = id;
        opts.data_shards = shape.data_shards;
        opts.parity_shards = shape.parity_shards;
        opts.listen = SocketAddr::from(([0, 0, 0, 0], S3_PORT));
        opts.root_credential = Some(Credential { access_key: ACCESS_KEY.into(), secret_key: SECRET_KEY.into() });
        opts.master_key_file = Some(key_file.clone());
        // SSE-C over the simulated network's plain HTTP, as behind a TLS proxy.
        opts.trust_proxy_tls = true;
        opts.scrub_interval = None;
        opts.scrub_grace = super::driver::SCRUB_GRACE;
        opts.workers = 1;
        opts.fault_injection = true;
        opts.env = env.clone();
        opts.net = Arc::new(SimNet);
        opts.given_disks = Some(disks.iter().map(|d| Arc::new(d.clone()) as Arc<dyn Disk>).collect());
        opts.peer = Some(PeerOptions {
            cluster_id: cluster_id.clone(),
            ca_pem: ca.cert_pem().to_string(),
            identity: Arc::new(ca.issue(id, &host(id))?),
            listen: PeerListen { addr: SocketAddr::from(([0, 0, 0, 0], PEER_PORT)), bound: Arc::new(Mutex::new(None)) },
            advertise: members[&id].addr.clone(),
            members: members.clone(),
            ca: None,
        });
        let running: Rc<RefCell<Option<Running>>> = Rc::new(RefCell::new(None));
        let slot = running.clone();
        let (started, starts) = tokio::sync::watch::channel(0u64);
        let started = Rc::new(started);
        sim.host(host(id), move || {
            let (opts, slot, started) = (opts.clone(), slot.clone(), started.clone());
            async move {
                let node = Node::start(opts).await.map_err(|e| format!("node {id} did not start: {e:#}"))?;
                // Started means serving with its peers in reach, as an operator waits for before going on (a node
                // cut off meanwhile goes on after the wait).
                if let Some(peers) = &node.peers {
                    let _ = peers.wait_for(others, PEERS_WAIT).await;
                }
                *slot.borrow_mut() = Some(Running { faults: node.faults.clone(), ctx: node.ctx.clone() });
                started.send_modify(|n| *n += 1);
                // The node runs until its host crashes (its runtime, and so the node, is dropped).
                std::future::pending::<()>().await;
                drop(node);
                Ok(())
            }
        });
        nodes.push(SimNode { id, host: host(id), disks, running, starts, up: true });
    }
    Ok(nodes)
}

/// Every file under `dir`, recursively, sorted by path (a node's metadata directory, scanned for plaintext).
pub fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path.display().to_string(), bytes));
            }
        }
    }
    out.sort();
    out
}
