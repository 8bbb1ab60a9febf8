//! The same seed gives the same run: a three-node in-process cluster on one current-thread runtime with paused
//! time, its blocking work inline (`hoard_storage::exec`), its time and randomness from one seeded `VirtualEnv`
//! and its Raft elections from the seeded thread generator, makes the same trace every time: each node's Raft
//! state after each step, what each S3 request answered, where each object's shards went (segment ids are drawn
//! from the seed) and how much virtual time each step took. The requests are real ones, from `aws-sdk-s3`, over an
//! in-memory network (`hoard_it::mem_net`): over loopback TCP the kernel's timing would leak into the run (a
//! segment delivered a moment late lets paused time jump to the next heartbeat), and under load two runs parted.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_sdk_s3::primitives::ByteStream;
use hoard_it::client;
use hoard_it::md5_hex;
use hoard_it::mem_net;
use hoard_it::mem_net::MemNet;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::TestCluster;
use hoard_storage::env::VirtualEnv;
use hoard_storage::exec;
use hoard_storage::meta::runtime::seed_raft_rng;

const SEED: u64 = 0x5eed_cafe;
/// The simulated clock's time at the start of a run: 2026-01-01 (it moves with virtual time).
const START_MS: i64 = 1_767_225_600_000;
/// PUT and GET pairs a run makes.
const STEPS: u64 = 20;
const NODES: u64 = 3;
/// Virtual time between two steps: several Raft heartbeats and election timeouts.
const PAUSE: Duration = Duration::from_secs(1);

/// Runs a whole cluster twice from one seed, each time on a fresh runtime: both runs' traces are the same, the
/// metadata group elected its leader in term 1 and kept it, and every request succeeded. A third run from another
/// seed makes another trace (the trace does see the seed).
#[test]
fn the_same_seed_gives_the_same_cluster_run() {
    let first = run(SEED);
    let second = run(SEED);
    if let Some(at) = first.iter().zip(&second).position(|(a, b)| a != b) {
        panic!("the runs part at event {at}:\n  first:  {}\n  second: {}", first[at], second[at]);
    }
    assert_eq!(first.len(), second.len(), "one run made more events than the other");
    let last_state = &first[first.len() - NODES as usize..];
    assert!(last_state.iter().all(|e| e.contains("term 1 ")), "the term-1 leader kept its place: {last_state:?}");
    assert_ne!(run(SEED + 1), first, "another seed, another run");
}

/// One run on a current-thread runtime with paused time, in inline mode; its trace.
fn run(seed: u64) -> Vec<String> {
    exec::set_inline(true);
    seed_raft_rng(seed);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let trace = runtime.block_on(traced(seed));
    drop(runtime);
    exec::set_inline(false);
    trace
}

async fn traced(seed: u64) -> Vec<String> {
    let began = tokio::time::Instant::now();
    let env = Arc::new(VirtualEnv::new(seed, START_MS));
    let net = MemNet::new();
    let cluster = TestCluster::builder().nodes(NODES as usize).disks_per_node(2).env(env).net(Arc::new(net.clone()));
    let cluster = cluster.start().await.unwrap();
    let mut trace = Vec::new();
    let leader = cluster.leader(1, None).await.unwrap();
    trace.push(format!("leader {leader}"));
    record_raft(&cluster, &mut trace).await;
    assert!(trace.iter().skip(1).all(|e| e.contains("term 1 ")), "the first election was won in term 1: {trace:?}");

    // Retries would hide a failed request; the stall check measures the wall clock, which paused time is not.
    let clients: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| {
            let c = mem_net::over(&net, no_retry(client(n)));
            let conf = c.config().to_builder().stalled_stream_protection(StalledStreamProtectionConfig::disabled());
            aws_sdk_s3::Client::from_conf(conf.build())
        })
        .collect();
    clients[0].create_bucket().bucket("same").send().await.expect("CreateBucket");
    trace.push("bucket same".to_string());
    for step in 0..STEPS {
        // Small objects stay in the metadata; the others are coded across every node's disks.
        let len = if step % 4 == 0 { 100 + step as usize } else { 40_000 * step as usize + 17 };
        let data = pattern(seed ^ step, len);
        let key = format!("obj-{step:02}");
        let (writer, reader) = ((step % NODES) as usize, ((step + 1) % NODES) as usize);
        let put = clients[writer].put_object().bucket("same").key(&key).body(ByteStream::from(data.clone())).send();
        let put = put.await.unwrap_or_else(|e| panic!("PUT {key} on node {}: {e:?}", writer + 1));
        trace.push(format!("put {key} on node {}: etag {}", writer + 1, put.e_tag().unwrap_or("none")));
        let got = clients[reader].get_object().bucket("same").key(&key).send().await;
        let got = got.unwrap_or_else(|e| panic!("GET {key} on node {}: {e:?}", reader + 1));
        let modified = got.last_modified().map(|t| t.secs());
        let body = got.body.collect().await.expect("a whole body").into_bytes();
        assert!(body == data, "GET {key} on node {} returned other bytes", reader + 1);
        trace.push(format!(
            "get {key} on node {}: {} bytes, md5 {}, modified {modified:?}",
            reader + 1,
            body.len(),
            md5_hex(&body)
        ));
        let stored = cluster.node(1).context().meta.local().unwrap().object("same", &key).unwrap().expect("committed");
        for s in &stored.segments {
            trace.push(format!("{key} segment {} on {:?}", s.id, s.layout.disks));
        }
        trace.push(format!("step {step} done at {} ms of virtual time", began.elapsed().as_millis()));
        record_raft(&cluster, &mut trace).await;
        // Virtual time passes between steps (heartbeats, election timers): none may fire an election.
        tokio::time::sleep(PAUSE).await;
    }
    cluster.stop().await;
    trace
}

/// Each node's view of the metadata group: its term, the leader it knows, its role and how far its log goes.
async fn record_raft(cluster: &TestCluster, trace: &mut Vec<String>) {
    for node in cluster.nodes() {
        let raft = node.context().meta.raft.lock().await.clone().expect("every node runs the metadata Raft");
        let m = raft.metrics().borrow().clone();
        trace.push(format!(
            "node {}: term {} leader {:?} {:?} log {:?} applied {:?}",
            m.id,
            m.current_term,
            m.current_leader,
            m.state,
            m.last_log_index,
            m.last_applied.map(|l| l.index)
        ));
    }
}
