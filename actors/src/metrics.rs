//! A node's metrics, served as Prometheus text on `GET /metrics`.
//!
//! Two kinds of figures:
//! - **Request metrics**, recorded as requests finish (`record_request`): count by operation and status,
//!   duration by operation (from the first byte of the request to the last byte of the response), and bytes
//!   received and sent by operation (body bytes on the wire, aws-chunked framing included).
//! - **Node state**, read when scraped (`render`): Raft term, leader and indexes, every disk's read and write
//!   errors, repair's work and backlog, and restarts of each supervisor's children. These already live in the
//!   actors' own counters; the scrape copies them ([`NodeHealth`], which `hoard cluster status` shows too),
//!   so nothing is counted twice.
//!
//! Decisions:
//! - Labels never carry bucket names, object keys, credentials or key ids: the endpoint is unauthenticated
//!   (like `/health`) and says how busy and how healthy the node is, nothing about what it stores.
//! - Operation names are the S3 ones (`PutObject`, `GetObject`, ...). A request refused before its operation
//!   is known (a bad signature, an unknown access key) counts under `operation="unknown"`; calls of hoard's
//!   own admin API count under `operation="Admin"`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;
use serde::Deserialize;
use serde::Serialize;

use crate::NodeContext;

/// The content type of [`NodeMetrics::render`]'s text (OpenMetrics, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Operation label of requests refused before s3s knew their operation.
pub const UNKNOWN_OPERATION: &str = "unknown";

/// Request-duration buckets: 1 ms doubling to about 65 s.
const DURATION_BUCKETS: (f64, f64, u16) = (0.001, 2.0, 17);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiskLabels {
    disk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SupervisorLabels {
    supervisor: String,
}

/// One finished request, as [`NodeMetrics::record_request`] counts it.
#[derive(Debug, Clone)]
pub struct FinishedRequest<'a> {
    pub operation: &'a str,
    pub status: u16,
    pub seconds: f64,
    pub received: u64,
    pub sent: u64,
}

/// What a supervisor tells (the supervisors live above this crate): its restart count, and its children
/// down now.
struct SupervisorSource {
    name: String,
    restarts: Box<dyn Fn() -> u64 + Send + Sync>,
    down: Box<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
}

pub struct NodeMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram>,
    received: Family<OperationLabels, Counter>,
    sent: Family<OperationLabels, Counter>,
    state: Arc<Mutex<NodeState>>,
    supervisors: Mutex<Vec<SupervisorSource>>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("hoard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("s3_requests", "S3 requests answered, by operation and HTTP status", requests.clone());
        let durations = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            let (start, factor, count) = DURATION_BUCKETS;
            Histogram::new(exponential_buckets(start, factor, count))
        });
        registry.register_with_unit(
            "s3_request_duration",
            "Time from a request's arrival to the last byte of its response, by operation",
            Unit::Seconds,
            durations.clone(),
        );
        let received = Family::<OperationLabels, Counter>::default();
        registry.register_with_unit(
            "s3_received",
            "Request body bytes received, by operation",
            Unit::Bytes,
            received.clone(),
        );
        let sent = Family::<OperationLabels, Counter>::default();
        registry.register_with_unit("s3_sent", "Response body bytes sent, by operation", Unit::Bytes, sent.clone());
        let state = Arc::new(Mutex::new(NodeState::default()));
        registry.register_collector(Box::new(StateCollector(state.clone())));
        NodeMetrics { registry, requests, durations, received, sent, state, supervisors: Mutex::new(Vec::new()) }
    }

    /// Counts one answered request.
    pub fn record_request(&self, r: &FinishedRequest<'_>) {
        let operation = r.operation.to_string();
        self.requests.get_or_create(&RequestLabels { operation: operation.clone(), status: r.status }).inc();
        let op = OperationLabels { operation };
        self.durations.get_or_create(&op).observe(r.seconds);
        if r.received > 0 {
            self.received.get_or_create(&op).inc_by(r.received);
        }
        if r.sent > 0 {
            self.sent.get_or_create(&op).inc_by(r.sent);
        }
    }

    /// Adds a supervisor whose children's restarts are reported as `hoard_actor_restarts_total`, and whose
    /// children that are down now (name, why) make the node not ready.
    pub fn add_supervisor(
        &self,
        name: &str,
        restarts: impl Fn() -> u64 + Send + Sync + 'static,
        down: impl Fn() -> Vec<(String, String)> + Send + Sync + 'static,
    ) {
        self.lock_supervisors().push(SupervisorSource {
            name: name.to_string(),
            restarts: Box::new(restarts),
            down: Box::new(down),
        });
    }

    /// Every child that is down now, as `supervisor/child: why`.
    pub fn down(&self) -> Vec<String> {
        self.lock_supervisors()
            .iter()
            .flat_map(|s| (s.down)().into_iter().map(move |(child, why)| format!("{}/{child}: {why}", s.name)))
            .collect()
    }

    /// Everything, as Prometheus (OpenMetrics) text: request metrics as counted, node state as it is now.
    pub async fn render(&self, ctx: &NodeContext) -> String {
        let NodeHealth { raft, disks, repair, .. } = NodeHealth::read(ctx).await;
        let restarts = self.lock_supervisors().iter().map(|s| (s.name.clone(), (s.restarts)())).collect();
        // The collector encodes under the same lock, so each scrape's text is one whole snapshot (with two
        // scrapes at once, possibly the other's, which is as current).
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = NodeState { raft, disks, repair, restarts };
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics could not be encoded");
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }

    fn lock_supervisors(&self) -> std::sync::MutexGuard<'_, Vec<SupervisorSource>> {
        self.supervisors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Default)]
struct NodeState {
    raft: Option<RaftState>,
    disks: Vec<DiskState>,
    repair: RepairState,
    restarts: Vec<(String, u64)>,
}

/// How one node is doing, read fresh from the actors' own counters: what `/metrics` exports and
/// `hoard cluster status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// `None` while the metadata actor does not answer.
    pub raft: Option<RaftState>,
    pub disks: Vec<DiskState>,
    pub repair: RepairState,
    /// Actors down now and waiting for a restart, as `supervisor/child: why`.
    #[serde(default)]
    pub down: Vec<String>,
    /// What this node's rebalance actor did (it moves shards only while the node leads).
    #[serde(default)]
    pub rebalance: crate::rebalance::RebalanceProgress,
}

impl NodeHealth {
    pub async fn read(ctx: &NodeContext) -> NodeHealth {
        let raft = match ctx.meta.metrics().await {
            Ok(m) => Some(RaftState {
                node_id: m.id,
                term: m.current_term,
                leader: m.current_leader,
                is_leader: m.current_leader == Some(m.id),
                last_log_index: m.last_log_index.unwrap_or(0),
                applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            }),
            Err(e) => {
                tracing::debug!(error = %e, "metadata metrics unavailable");
                None
            }
        };
        let disks = ctx
            .shards
            .iter()
            .map(|s| DiskState {
                index: s.index,
                path: s.label.clone(),
                read_errors: s.stats.read_errors.load(Ordering::Relaxed),
                write_errors: s.stats.write_errors.load(Ordering::Relaxed),
                degraded: s.io.is_degraded(),
                slow_ios: s.io.slow_jobs(),
            })
            .collect();
        let repair = RepairState {
            queued: ctx.repair.queued_segments() as u64,
            rebuilt: ctx.repair.stats.shards_rebuilt.load(Ordering::Relaxed),
            failures: ctx.repair.stats.failures.load(Ordering::Relaxed),
            reports: ctx.repair.stats.reports.load(Ordering::Relaxed),
            pending: ctx.repair.pending_segments() as u64,
        };
        NodeHealth { raft, disks, repair, down: ctx.metrics.down(), rebalance: ctx.rebalance.progress() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftState {
    pub node_id: u64,
    pub term: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub applied_index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskState {
    /// The disk's slot.
    pub index: u32,
    /// The disk's directory.
    pub path: String,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Keeps taking too long: skipped by reads and, where the node has disks to spare, by new data.
    #[serde(default)]
    pub degraded: bool,
    /// I/O that took longer than two seconds, or was refused because the disk's queue was full.
    #[serde(default)]
    pub slow_ios: u64,
}

/// Repair's work since the node started, and its backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairState {
    /// Shard files rebuilt.
    pub rebuilt: u64,
    /// Segments that could not be rebuilt (they stay queued).
    pub failures: u64,
    /// Damage reports received (merged ones included).
    pub reports: u64,
    /// Segments waiting now.
    pub pending: u64,
    /// Segments in the node-local repair queue: those waiting now, and those whose rebuild failed, which
    /// the next start tries again.
    pub queued: u64,
}

/// Encodes the node state the last `render` read.
#[derive(Debug)]
struct StateCollector(Arc<Mutex<NodeState>>);

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let e = &mut encoder;
        if let Some(raft) = &state.raft {
            one(e, "raft_term", "Current Raft term", &ConstGauge::new(raft.term as i64))?;
            // No leader known: -1 (node ids start at 1).
            let leader = raft.leader.map(|l| l as i64).unwrap_or(-1);
            one(e, "raft_leader", "Node id of the Raft leader this node knows, -1 for none", &ConstGauge::new(leader))?;
            one(e, "raft_is_leader", "1 while this node is the Raft leader", &ConstGauge::new(raft.is_leader as i64))?;
            one(
                e,
                "raft_last_log_index",
                "Index of the last entry in this node's Raft log",
                &ConstGauge::new(raft.last_log_index as i64),
            )?;
            one(
                e,
                "raft_applied_index",
                "Index of the last committed Raft entry applied to this node's metadata",
                &ConstGauge::new(raft.applied_index as i64),
            )?;
        }
        let disk = |d: &DiskState| DiskLabels { disk: d.index.to_string() };
        let reads: Vec<_> = state.disks.iter().map(|d| (disk(d), ConstCounter::new(d.read_errors))).collect();
        family(e, "disk_read_errors", "Shard reads that failed or found a bad checksum, by disk slot", &reads)?;
        let writes: Vec<_> = state.disks.iter().map(|d| (disk(d), ConstCounter::new(d.write_errors))).collect();
        family(e, "disk_write_errors", "Shard writes or syncs that failed, by disk slot", &writes)?;
        let degraded: Vec<_> = state.disks.iter().map(|d| (disk(d), ConstGauge::new(d.degraded as i64))).collect();
        family(
            e,
            "disk_degraded",
            "1 while the disk keeps taking too long and reads and new data avoid it",
            &degraded,
        )?;
        let slow: Vec<_> = state.disks.iter().map(|d| (disk(d), ConstCounter::new(d.slow_ios))).collect();
        family(e, "disk_slow_ios", "Disk I/O that took over two seconds or found the disk's queue full", &slow)?;
        let r = &state.repair;
        one(
            e,
            "repair_reports",
            "Damage reports received by repair (missing or corrupt shards)",
            &ConstCounter::new(r.reports),
        )?;
        one(e, "repair_shards_rebuilt", "Shard files rebuilt by repair", &ConstCounter::new(r.rebuilt))?;
        one(e, "repair_failures", "Segments repair could not rebuild", &ConstCounter::new(r.failures))?;
        one(e, "repair_pending_segments", "Segments waiting for repair", &ConstGauge::new(r.pending as i64))?;
        one(
            e,
            "repair_queued_segments",
            "Segments in the repair queue on disk: waiting now, or failed and retried at the next start",
            &ConstGauge::new(r.queued as i64),
        )?;
        let restarts: Vec<_> = state
            .restarts
            .iter()
            .map(|(name, n)| (SupervisorLabels { supervisor: name.clone() }, ConstCounter::new(*n)))
            .collect();
        family(e, "actor_restarts", "Children restarted by each supervisor after a crash", &restarts)?;
        Ok(())
    }
}

fn one<M: EncodeMetric>(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, metric: &M) -> std::fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    members: &[(L, M)],
) -> std::fmt::Result {
    let Some((_, first)) = members.first() else { return Ok(()) };
    let mut family = encoder.encode_descriptor(name, help, None, first.metric_type())?;
    for (labels, metric) in members {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}
