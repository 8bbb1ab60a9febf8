//! One seeded run of a whole simulated cluster: the nodes on turmoil hosts (`cluster`), the workload from a
//! client host (`run`), the faults of the seed's schedule (`schedule`) applied between turmoil's steps, and the
//! oracle's checks throughout and at the end, once every fault is healed.

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hoard::Fault as NodeFault;
use hoard_storage::disk::sim::SimOp;
use hoard_storage::exec;
use hoard_storage::meta::runtime::seed_raft_rng;
use sha2::Digest as _;

use super::body;
use super::client::Client;
use super::client::Dial;
use super::client::Io;
use super::cluster;
use super::cluster::Shape;
use super::cluster::SimNode;
use super::cluster::TurmoilEnv;
use super::oracle::Oracle;
use super::run::Run;
use super::schedule;
use super::schedule::Fault;
use super::trace::Trace;
use super::workload;

/// Simulated time a run may take: one that has not finished by then is stuck (a liveness failure).
const LIMIT: Duration = Duration::from_secs(900);

/// What a run is made of.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub shape: Shape,
    /// Rotate the master key halfway through the workload (through the admin API).
    pub rotate: bool,
    /// S3 operations of the workload, over `keys` keys.
    pub ops: usize,
    pub keys: usize,
    /// Faults of the schedule, spread over `span_ms` of simulated time.
    pub faults: usize,
    pub span_ms: u64,
}

impl Plan {
    /// A seed's run: 3 to 5 nodes of two disks each, 4+2 coding; a master-key rotation in every third run and
    /// wherever the seed's sure fault point is the rotation's.
    pub fn for_seed(seed: u64) -> Plan {
        // Rebalance has something to even out only where stripes are narrower than the cluster.
        let nodes = if schedule::point_of(seed) == "rebalance.commit" { 5 } else { 3 + (seed % 3) as usize };
        let rotate = seed.is_multiple_of(3) || schedule::point_of(seed) == "rotation.batch";
        Plan { shape: Shape { nodes, ..Plan::default().shape }, rotate, ..Plan::default() }
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            shape: Shape { nodes: 3, disks_per_node: 2, data_shards: 4, parity_shards: 2 },
            rotate: false,
            ops: 40,
            keys: 5,
            faults: 12,
            span_ms: 10_000,
        }
    }
}

/// What a run found.
pub struct Outcome {
    pub violations: Vec<String>,
    pub trace_hash: String,
    /// Simulated time the run took.
    pub sim_ms: u64,
    /// Fault points that fired.
    pub points_fired: BTreeSet<String>,
}

/// The client's side of a run, shared with the driver (one thread: `Rc`).
#[derive(Default)]
struct Shared {
    /// The workload has sent its last operation: heal everything.
    workload_done: Cell<bool>,
    /// Every fault is healed.
    healed: Arc<tokio::sync::Notify>,
    /// The client asks for the seed's permanent damage (once the cluster is whole again), and is told when it is
    /// done and the damaged node runs again.
    damage_wanted: Cell<bool>,
    damaged: Arc<tokio::sync::Notify>,
    /// The client's oracle and trace when it is done.
    finished: RefCell<Option<(Oracle, Trace, Vec<u64>)>>,
}

/// How often the disks' caches are flushed, in simulated milliseconds.
const SYNC_EVERY_MS: u64 = 250;

/// Scrub's grace period in a run: files younger than this are never taken for orphans.
pub const SCRUB_GRACE: Duration = Duration::from_secs(5);

/// A dialer of the simulated nodes' S3 endpoints, each connection to the next node in turn.
fn dial(nodes: usize) -> Dial {
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move || {
        let n = next.fetch_add(1, Ordering::Relaxed) % nodes + 1;
        Box::pin(async move {
            let stream =
                turmoil::net::TcpStream::connect(format!("{}:{}", cluster::host(n as u64), cluster::S3_PORT)).await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}

/// Whether node `n` answers `/health/ready` with 200 (metadata reads, no actor down awaiting its restart).
async fn ready(n: u64) -> bool {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;
    let asked = async {
        let mut s = turmoil::net::TcpStream::connect(format!("{}:{}", cluster::host(n), cluster::S3_PORT)).await?;
        s.write_all(b"GET /health/ready HTTP/1.1\r\nhost: hoard\r\nconnection: close\r\n\r\n").await?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.starts_with(b"HTTP/1.1 200"))
    };
    matches!(tokio::time::timeout(Duration::from_secs(5), asked).await, Ok(Ok(true)))
}

/// Waits until every node is ready (a supervisor may hold an actor back after failures in a row: up to 30 s), as
/// an operator waits for readiness after an incident; a node not ready within [`READY_WITHIN`] is a violation.
async fn all_ready(nodes: usize, run: &mut Run<'_>) {
    let until = tokio::time::Instant::now() + READY_WITHIN;
    for n in 1..=nodes as u64 {
        // Readiness has no event to await from outside the node: it is asked again every half second.
        while !ready(n).await {
            if tokio::time::Instant::now() >= until {
                run.oracle.violation(format!("node {n} was not ready {} s after the heal", READY_WITHIN.as_secs()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    run.trace.record("every node ready");
}

/// How long the nodes have to be ready again after the heal or the damage.
const READY_WITHIN: Duration = Duration::from_secs(90);

/// Log lines stamped with the simulated time.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(at) => write!(w, "[{} ms]", at.as_millis()),
            None => write!(w, "[-]"),
        }
    }
}

/// Runs `plan` from `seed` to its end: the workload, the faults, the heal, the final reads and the scans.
pub fn run(seed: u64, plan: Plan) -> anyhow::Result<Outcome> {
    // `HOARD_SIM_LOG=hoard_actors=debug,...` prints the nodes' logs, stamped with simulated time.
    let _logs = std::env::var("HOARD_SIM_LOG").ok().map(|filter| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_timer(SimTime)
            .with_writer(std::io::stderr)
            .finish();
        tracing::subscriber::set_default(subscriber)
    });
    exec::set_inline(true);
    seed_raft_rng(seed);
    let outcome = run_inline(seed, plan);
    exec::set_inline(false);
    outcome
}

fn run_inline(seed: u64, plan: Plan) -> anyhow::Result<Outcome> {
    // Metadata directories in memory where the machine has it: fsync there costs nothing.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm)? } else { tempfile::tempdir()? };
    let env = Arc::new(TurmoilEnv::new(seed));
    let mut sim = turmoil::Builder::new()
        .simulation_duration(LIMIT)
        .tick_duration(Duration::from_millis(1))
        .rng_seed(seed)
        .repair_rate(MEND_RATE)
        .build();
    let mut nodes = cluster::add_nodes(&mut sim, seed, plan.shape, dir.path(), env.clone())?;
    let shared = Rc::new(Shared::default());
    {
        let shared = shared.clone();
        let slots: Vec<_> = nodes.iter().map(|n| n.running.clone()).collect();
        let rotated_key = dir.path().join("rotated.key");
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(
            &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed ^ 0x2222),
            &mut key,
        );
        std::fs::write(&rotated_key, key)?;
        let sure = schedule::point_of(seed);
        sim.client("client", async move {
            let client = Client {
                dial: dial(plan.shape.nodes),
                // s3s checks a signature's date against the real clock (the one thing of a run that reads it,
                // within its 15 minutes of allowed skew): requests are signed by it.
                env: Arc::new(hoard_storage::env::SystemEnv),
                host: "hoard".into(),
                access_key: cluster::ACCESS_KEY.into(),
                secret_key: cluster::SECRET_KEY.into(),
            };
            let mut run = Run::new(&client, "sim").with_retries(8);
            // The bucket, once the cluster answers (its group elects a leader first).
            run.create_bucket().await;
            for (i, op) in workload::draw(seed, plan.ops, plan.keys, seed << 20).into_iter().enumerate() {
                if plan.rotate && i == plan.ops / 2 {
                    if sure == "rotation.batch" {
                        arm_everywhere(&slots, sure);
                    }
                    run.rotate_key(&rotated_key).await;
                }
                run.op(&op).await;
            }
            shared.workload_done.set(true);
            shared.healed.notified().await;
            all_ready(plan.shape.nodes, &mut run).await;
            run.oracle.healed();
            // Healed: every key reads as its last acknowledged version (or one whose outcome was never told), and
            // again once the damage is repaired.
            for k in 0..plan.keys {
                run.read(&format!("k{k}"), None).await;
            }
            maintain(&slots, &mut run, sure, &shared).await;
            // Through every node, each read on its own (connections go to the nodes in turn, and no retry
            // moves a failure to another node): each node answers for every key.
            all_ready(plan.shape.nodes, &mut run).await;
            run.set_retries(0);
            for k in 0..plan.keys {
                for _ in 0..plan.shape.nodes {
                    run.read(&format!("k{k}"), None).await;
                }
            }
            // Plain versions kept whole in the metadata may sit in a compressed block there: the scan's control
            // is the versions on the disks.
            let on_disks = |len: usize| len > hoard_actors::INLINE_MAX;
            let current =
                run.current().into_iter().filter(|(_, len, sse)| on_disks(*len) && *sse == workload::Sse::Plain);
            let plain: Vec<u64> = current.map(|(tag, _, _)| tag).collect();
            *shared.finished.borrow_mut() = Some((run.oracle, run.trace, plain));
            Ok(())
        });
    }

    let schedule = schedule::draw(seed, plan.shape.nodes as u64, plan.shape.disks_per_node, plan.faults, plan.span_ms);
    let mut faults = Faults { due: schedule.into_iter().collect(), ends: Vec::new(), out: None, log: Vec::new() };
    let damage = schedule::damage(seed, plan.shape.nodes as u64);
    // The damaged node's host start count when its crash struck: it is back once the count moves on.
    let mut damage_pending: Option<u64> = None;
    let mut raft = RaftSeen::default();
    let mut points_fired = BTreeSet::new();
    let mut healed = false;
    loop {
        let done = sim.step().map_err(|e| anyhow::anyhow!("the simulation failed: {e}"))?;
        let now = sim.elapsed().as_millis() as u64;
        faults.apply(now, &mut sim, &mut nodes, &mut points_fired);
        if now.is_multiple_of(50) {
            raft.observe(&nodes);
        }
        if now.is_multiple_of(SYNC_EVERY_MS) {
            // The operating system's periodic flush: what was committed so far survives a crash even on a disk
            // whose cache loses unsynced commits.
            nodes.iter().flat_map(|n| &n.disks).for_each(|d| d.sync_point());
        }
        if !healed && shared.workload_done.get() {
            faults.heal_all(&mut sim, &mut nodes);
            healed = true;
            shared.healed.notify_one();
        }
        if shared.damage_wanted.replace(false) {
            let starts = *nodes[(damage.node - 1) as usize].starts.borrow();
            faults.damage(now, damage, &mut sim, &mut nodes, &mut points_fired);
            damage_pending = Some(starts);
        }
        if let Some(starts) = damage_pending {
            if !damage.crash || *nodes[(damage.node - 1) as usize].starts.borrow() > starts {
                damage_pending = None;
                shared.damaged.notify_one();
            }
        }
        if done {
            break;
        }
    }
    raft.observe(&nodes);
    let sim_ms = sim.elapsed().as_millis() as u64;
    fired(&nodes, &mut points_fired);
    let orphans = orphans(&nodes);
    drop(sim);

    let Some((mut oracle, mut trace, plain)) = shared.finished.borrow_mut().take() else {
        anyhow::bail!("the client did not finish");
    };
    for line in &faults.log {
        trace.record(line);
    }
    trace.record(format!("leaders seen (term, node): {:?}", raft.leaders));
    for ((index, leader), node) in raft.applied {
        oracle.observe_applied(node, index, leader);
    }
    // No plaintext of an encrypted version on any disk or in any node's metadata; the scan does find every plain
    // version still held (it can see plaintext when there is some).
    // The bytes stored are part of the trace: the same seed stores the same ciphertext under the same names.
    let mut seen = BTreeSet::new();
    for node in &nodes {
        for (d, disk) in node.disks.iter().enumerate() {
            let mut stored = sha2::Sha256::new();
            for (name, bytes) in disk.committed_files() {
                oracle.check_disk_file(&format!("{}/{}", node.host, name), &bytes);
                seen.extend(body::tags_in(&bytes));
                stored.update(name.as_bytes());
                stored.update(&bytes);
            }
            trace.record(format!("{} disk {d}: {}", node.host, hex::encode(stored.finalize())));
        }
    }
    for (name, bytes) in cluster::files_under(dir.path()) {
        oracle.check_disk_file(&name, &bytes);
        seen.extend(body::tags_in(&bytes));
    }
    let mut violations = oracle.violations().to_vec();
    violations.extend(orphans);
    if let Some(missing) = plain.iter().find(|t| !seen.contains(t)) {
        violations.push(format!("the disk scan did not find plain version {missing}"));
    }
    Ok(Outcome { violations, trace_hash: trace.hash(), sim_ms, points_fired })
}

/// Once healed: after the grace period, scrub every node (it verifies each shard on the node's disks, reports
/// damage, including shards a crash or a lost disk left missing and writes that committed with fewer shards, to
/// repair, and deletes orphans) and wait for its repairs; three times. Then a last scrub must find every shard
/// whole: every object has full redundancy. Failures of the maintenance calls themselves are violations too.
///
/// Before that, the seed's `sure` fault point is armed on every node once more and passed: by an encrypted
/// write through each node for the write path's points and the KeyKeeper's start, by a rebalance for its
/// commit (repair's rebuild is armed before the damage, the rotation's batch before the rotation). After the first
/// round has made the cluster whole, the seed's permanent damage strikes one node; the rounds after repair it.
async fn maintain(
    slots: &[Rc<RefCell<Option<cluster::Running>>>],
    run: &mut Run<'_>,
    sure: &'static str,
    shared: &Shared,
) {
    {
        // Handles held only here: a node's handles must not outlive it when the damage crashes it (its metadata
        // store would stay open and locked).
        let running: Vec<cluster::Running> = slots.iter().filter_map(|s| s.borrow().clone()).collect();
        if WRITE_POINTS.contains(&sure) || sure == "key_keeper.start" || sure == "rebalance.commit" {
            arm_everywhere(slots, sure);
        }
        if WRITE_POINTS.contains(&sure) || sure == "key_keeper.start" {
            // An SSE-S3 write through each node (connections go to the nodes in turn) passes every point of the write
            // path; with the KeyKeeper's start armed, the KeyKeeper fails at the wrap, panics again as it starts
            // over, and starts the time after.
            for (i, node) in running.iter().enumerate() {
                if sure == "key_keeper.start" {
                    node.faults.arm_times("key_keeper.wrap", NodeFault::Panic, Some(1));
                }
                let tag = (1 << 41) + i as u64;
                let op = workload::Op::Put { key: format!("sse{i}"), tag, len: 40_000, sse: workload::Sse::SseS3 };
                run.op(&op).await;
            }
        }
        if sure == "rebalance.commit" {
            // Enough stripes for some disks to hold more than others, then rebalance evens them out in the
            // background while the grace period runs (the leader's does).
            for i in 0..12 {
                let op = workload::Op::Put {
                    key: format!("fill{i}"),
                    tag: (1 << 40) + i,
                    len: 40_000,
                    sse: workload::Sse::Plain,
                };
                run.op(&op).await;
            }
            for node in &running {
                let _ = node.ctx.rebalance.kick();
            }
        }
    }
    tokio::time::sleep(SCRUB_GRACE + Duration::from_secs(1)).await;
    const LAST: usize = 3;
    for round in 0..=LAST {
        if round == 1 {
            if sure == "repair.rebuild" {
                arm_everywhere(slots, sure);
            }
            shared.damage_wanted.set(true);
            shared.damaged.notified().await;
            run.trace.record("damage done");
        }
        for (i, slot) in slots.iter().enumerate() {
            let Some(node) = slot.borrow().clone() else {
                run.oracle.violation(format!("node {} is not running after the heal", i + 1));
                continue;
            };
            match node.ctx.scrub.run().await {
                Ok(report) => {
                    run.trace.record(format!("scrub {round} on node {}: {report:?}", i + 1));
                    if round == LAST && report.damaged_shards > 0 {
                        let n = report.damaged_shards;
                        run.oracle.violation(format!("after repair node {} still holds {n} damaged shards", i + 1));
                    }
                }
                Err(e) => run.oracle.violation(format!("scrub {round} on node {} failed: {e}", i + 1)),
            }
            if round < LAST {
                if let Err(e) = node.ctx.repair.flush().await {
                    run.oracle.violation(format!("repair on node {} failed: {e}", i + 1));
                }
            }
        }
    }
}

/// Shard files no committed object or upload part names, once scrub has run past the grace period: each is an
/// orphan (or garbage, a replaced version's) that scrub should have deleted.
fn orphans(nodes: &[SimNode]) -> Vec<String> {
    let Some(reader) = nodes.iter().find_map(|n| n.running.borrow().as_ref().and_then(|r| r.ctx.meta.local().ok()))
    else {
        return vec!["no node can read the metadata at the end".into()];
    };
    let (referenced, _) = match reader.references_and_queued() {
        Ok(known) => known,
        Err(e) => return vec![format!("the metadata's references do not read: {e}")],
    };
    let mut out = Vec::new();
    for node in nodes {
        for (d, disk) in node.disks.iter().enumerate() {
            for (name, _) in disk.committed_files() {
                match hoard_storage::shard_file::parse_shard_name(&name) {
                    Some((segment, _)) if referenced.contains(&segment) => {}
                    _ => out.push(format!("an orphan outlived scrub: {} disk {d}: {name}", node.host)),
                }
            }
        }
    }
    out
}

/// The schedule's faults as they strike and heal.
struct Faults {
    due: std::collections::VecDeque<(u64, Fault)>,
    /// (when, what) of faults to undo.
    ends: Vec<(u64, End)>,
    /// The node out now (crashed or cut off), if any.
    out: Option<u64>,
    /// What was done, for the trace.
    log: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum End {
    Repair(u64),
    Restart(u64),
    Reappear(u64, usize),
    /// Held messages between two nodes are delivered.
    Release(u64, u64),
    /// A flaky link is sound again.
    Mend(u64, u64),
}

/// Odds that a message on a flaky link breaks it (it mends with [`MEND_RATE`] odds per message).
const FLAKY_FAIL_RATE: f64 = 0.05;
const MEND_RATE: f64 = 0.3;

impl Faults {
    /// Applies the faults due at `now` and undoes those whose time is up; `fired` gathers the fault points a
    /// crashed node had fired.
    fn apply(&mut self, now: u64, sim: &mut turmoil::Sim<'_>, nodes: &mut [SimNode], fired: &mut BTreeSet<String>) {
        while let Some(i) = self.ends.iter().position(|(at, _)| *at <= now) {
            let (_, end) = self.ends.remove(i);
            self.end(now, end, sim, nodes);
        }
        while self.due.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, fault)) = self.due.pop_front() else { break };
            let node_of = |f: &Fault| match f {
                Fault::Partition { node, .. }
                | Fault::Crash { node, .. }
                | Fault::Panic { node, .. }
                | Fault::DiskErrors { node, .. }
                | Fault::DiskVanish { node, .. } => Some(*node),
                Fault::Latency { .. } | Fault::Hold { .. } | Fault::Flaky { .. } => None,
            };
            let target = node_of(&fault);
            // One node out at a time, and nothing done to a node that is down.
            let blocked = match (&fault, target) {
                (Fault::Partition { .. } | Fault::Crash { .. } | Fault::DiskVanish { .. }, Some(_)) => {
                    self.out.is_some()
                }
                (_, Some(n)) => !nodes[(n - 1) as usize].up,
                _ => false,
            };
            if blocked {
                self.log.push(format!("{now} ms: skipped {fault:?}"));
                continue;
            }
            self.log.push(format!("{now} ms: {fault:?}"));
            match fault {
                Fault::Partition { node, ms } => {
                    for other in nodes.iter().filter(|n| n.id != node) {
                        sim.partition(cluster::host(node), other.host.clone());
                    }
                    self.out = Some(node);
                    self.ends.push((now + ms, End::Repair(node)));
                }
                Fault::Crash { node, ms } => {
                    let n = &mut nodes[(node - 1) as usize];
                    // Honest disks: what was committed survives (unfinished files are dropped or torn).
                    n.disks.iter().for_each(|d| d.sync_point());
                    crash(n, sim, fired);
                    n.up = false;
                    self.out = Some(node);
                    self.ends.push((now + ms, End::Restart(node)));
                }
                Fault::Panic { node, point } => {
                    if let Some(running) = nodes[(node - 1) as usize].running.borrow().as_ref() {
                        running.faults.arm_times(point, NodeFault::Panic, Some(1));
                        if point == "key_keeper.start" {
                            // The KeyKeeper starts again once something makes it fail.
                            running.faults.arm_times("key_keeper.wrap", NodeFault::Panic, Some(1));
                        }
                    }
                }
                Fault::DiskErrors { node, disk, op, n } => {
                    nodes[(node - 1) as usize].disks[disk].fail_next(SimOp::ALL[op % SimOp::ALL.len()], n);
                }
                Fault::DiskVanish { node, disk, ms } => {
                    // Honest: what was committed on it survives (a vanishing device is a power loss for it).
                    let d = &nodes[(node - 1) as usize].disks[disk];
                    d.sync_point();
                    d.vanish();
                    self.out = Some(node);
                    self.ends.push((now + ms, End::Reappear(node, disk)));
                }
                Fault::Latency { ms } => sim.set_max_message_latency(Duration::from_millis(ms)),
                Fault::Hold { node, other, ms } => {
                    sim.hold(cluster::host(node), cluster::host(other));
                    self.ends.push((now + ms, End::Release(node, other)));
                }
                Fault::Flaky { node, other, ms } => {
                    sim.set_link_fail_rate(cluster::host(node), cluster::host(other), FLAKY_FAIL_RATE);
                    self.ends.push((now + ms, End::Mend(node, other)));
                }
            }
        }
    }

    /// The seed's permanent damage on one node: a crash that loses what its disks' caches held since their
    /// last flush (started again at once), bit rot (a flipped byte in the middle of every file), or both. At
    /// most the node's two shards of any stripe.
    fn damage(
        &mut self,
        now: u64,
        damage: schedule::Damage,
        sim: &mut turmoil::Sim<'_>,
        nodes: &mut [SimNode],
        fired: &mut BTreeSet<String>,
    ) {
        self.log.push(format!("{now} ms: damage {damage:?}"));
        let n = &mut nodes[(damage.node - 1) as usize];
        if damage.rot {
            for disk in &n.disks {
                for (name, bytes) in disk.committed_files() {
                    let _ = disk.corrupt(&name, bytes.len() as u64 / 2);
                }
            }
        }
        if damage.crash {
            crash(n, sim, fired);
            sim.bounce(n.host.clone());
        }
    }

    fn end(&mut self, now: u64, end: End, sim: &mut turmoil::Sim<'_>, nodes: &mut [SimNode]) {
        self.log.push(format!("{now} ms: end {end:?}"));
        match end {
            End::Repair(node) => {
                for other in nodes.iter().filter(|n| n.id != node) {
                    sim.repair(cluster::host(node), other.host.clone());
                }
            }
            End::Restart(node) => {
                let n = &mut nodes[(node - 1) as usize];
                sim.bounce(n.host.clone());
                n.up = true;
            }
            End::Reappear(node, disk) => nodes[(node - 1) as usize].disks[disk].reappear(false),
            End::Release(node, other) => {
                sim.release(cluster::host(node), cluster::host(other));
                return;
            }
            End::Mend(node, other) => {
                sim.set_link_fail_rate(cluster::host(node), cluster::host(other), 0.0);
                sim.repair(cluster::host(node), cluster::host(other));
                return;
            }
        }
        self.out = None;
    }

    /// Undoes every fault still in force and stops drawing new ones.
    fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>, nodes: &mut [SimNode]) {
        let now = sim.elapsed().as_millis() as u64;
        for (_, end) in std::mem::take(&mut self.ends) {
            self.end(now, end, sim, nodes);
        }
        self.due.clear();
        sim.set_max_message_latency(Duration::ZERO);
        // I/O errors still owed to calls that never came.
        for disk in nodes.iter().flat_map(|n| &n.disks) {
            SimOp::ALL.iter().for_each(|op| disk.fail_next(*op, 0));
        }
        for node in nodes.iter() {
            if let Some(running) = node.running.borrow().as_ref() {
                running.faults.disarm_all();
            }
        }
        self.log.push(format!("{now} ms: healed"));
    }
}

/// Crashes node `n`'s host and its disks (`kill -9` and the disks' unflushed caches), after taking its handles
/// (nothing of the old process may outlive it) and the fault points that fired in it.
fn crash(n: &mut SimNode, sim: &mut turmoil::Sim<'_>, fired: &mut BTreeSet<String>) {
    if let Some(running) = n.running.borrow_mut().take() {
        fired.extend(running.faults.fired().into_keys());
    }
    sim.crash(n.host.clone());
    n.disks.iter().for_each(|d| d.crash());
}

/// What the nodes' Raft metrics showed, sampled as the run goes (every 50 simulated ms and at the end).
#[derive(Default)]
struct RaftSeen {
    /// (term, node) of each leader seen: for the trace.
    leaders: BTreeSet<(u64, u64)>,
    /// (index, the entry's leader id (term, node)) of each applied entry seen, and the first node seen with it:
    /// an index applied differently on two nodes shows as two keys.
    applied: BTreeMap<(u64, (u64, u64)), u64>,
}

impl RaftSeen {
    fn observe(&mut self, nodes: &[SimNode]) {
        for node in nodes {
            let Some(running) = node.running.borrow().clone() else { continue };
            let Ok(raft) = running.ctx.meta.raft.try_lock() else { continue };
            let Some(raft) = raft.as_ref() else { continue };
            let m = raft.metrics().borrow().clone();
            if m.state.is_leader() {
                self.leaders.insert((m.current_term, m.id));
            }
            if let Some(log_id) = m.last_applied {
                let leader = (log_id.leader_id.term, log_id.leader_id.node_id);
                // One sample per (index, entry): the oracle compares the entries seen at each index.
                self.applied.entry((log_id.index, leader)).or_insert(m.id);
            }
        }
    }
}

/// The fault points an encrypted write of a coded object passes.
const WRITE_POINTS: [&str; 6] =
    ["put.after_shards", "put.before_commit", "shard.write", "ec.encode", "encryptor.seal", "key_keeper.wrap"];

/// Arms `point` to panic once on every running node.
fn arm_everywhere(slots: &[Rc<RefCell<Option<cluster::Running>>>], point: &str) {
    for node in slots.iter().filter_map(|s| s.borrow().clone()) {
        node.faults.arm_times(point, NodeFault::Panic, Some(1));
    }
}

/// Adds the points that fired on each running node to `out`.
fn fired(nodes: &[SimNode], out: &mut BTreeSet<String>) {
    for node in nodes {
        if let Some(running) = node.running.borrow().as_ref() {
            out.extend(running.faults.fired().into_keys());
        }
    }
}
