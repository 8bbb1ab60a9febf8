//! A disk that hangs while the node runs: reads go around it, writes go on without it, the rest of the node
//! is not slowed, and the operator sees it degraded until it answers again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::Client;
use hoard::Fault;
use hoard::Gate;
use hoard_actors::disk_io::SLOW_IO;
use hoard_actors::get::READ_AHEAD;
use hoard_actors::metrics::NodeHealth;
use hoard_it::client;
use hoard_it::http_get;
use hoard_it::metric;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::TestNode;
// The node's own clock: the same as the wall clock here, and what the node judges its disks by.
use tokio::time::Instant;

const MIB: usize = 1024 * 1024;

async fn timed_get(c: &Client, key: &str) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let body = hoard_it::get(c, "slow", key).await;
    (started.elapsed(), body)
}

fn degraded_metric(node: &TestNode, slot: usize) -> Option<f64> {
    let (status, text) = http_get(node.addr(), "/metrics").expect("the node answers /metrics");
    assert_eq!(status, 200);
    metric(&text, &format!(r#"hoard_disk_degraded{{disk="{slot}"}}"#))
}

/// The stall fault point of one disk holds every I/O of that disk (a hung drive). A 64 MiB GET whose data
/// pieces are partly on it asks the hung disk only for the first blocks it reads ahead, then reads parity in
/// their place, and stays far below the disk's slow-I/O judgement; PUTs go on; small requests are not held up;
/// the disk shows as degraded in status and `/metrics`, slowness is not reported to repair as damage, and
/// once the disk answers again it is healthy and repair fills in what was written without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_disk_slows_no_read_stops_no_write_and_shows_as_degraded() {
    let node = TestNode::builder().fault_injection(true).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("slow").send().await.unwrap();
    let big = pattern(501, 64 * MIB);
    put(&c, "slow", "big", &big).await;
    let disks = node.disk_paths();
    let shards = hoard_it::shard_files(&disks);
    let (_, placed) = shards.iter().next().expect("the object's segment");
    // The disk holding data piece 0: every block needs it, or parity in its place.
    let slot = disks.iter().position(|d| placed[&0].starts_with(d)).expect("piece 0 is on a disk of the node");

    // Each time is the best of three runs, so that a hiccup of the (shared, two-core) machine does not decide.
    let mut usual = Duration::MAX;
    for _ in 0..3 {
        let (took, body) = timed_get(&c, "big").await;
        assert!(body == big);
        usual = usual.min(took);
    }

    let gate = Gate::new();
    node.faults().arm(&format!("disk.{slot}"), Fault::Gate(gate.clone()));
    let reports = node.repair_stats().reports.load(Ordering::Relaxed);
    let mut hung = Duration::MAX;
    for _ in 0..3 {
        let (took, body) = timed_get(&c, "big").await;
        assert!(body == big, "the bytes are right without the hung disk");
        hung = hung.min(took);
    }
    // Only the first blocks read ahead wait for the hung disk (until it is seen lagging); every later piece
    // comes from parity. Were each block to wait, all 64 blocks of all three GETs would have asked it. Times
    // on a shared machine vary too much to compare closely: the GET only has to stay far from waiting out
    // the disk (it never answers) or its slow-I/O judgement.
    let asked = node.context().shards.iter().find(|s| s.index as usize == slot).expect("the disk").io.pending_jobs();
    assert!(asked <= 2 * READ_AHEAD, "{asked} reads wait for the hung disk");
    assert!(hung < SLOW_IO, "GET took {hung:?} with a hung disk, {usual:?} without");
    assert_eq!(node.repair_stats().reports.load(Ordering::Relaxed), reports, "slowness is not damage");

    // Small requests are served while the disk hangs.
    let started = Instant::now();
    put(&c, "slow", "small", b"inline").await;
    assert_eq!(hoard_it::get(&c, "slow", "small").await, b"inline");
    c.list_objects_v2().bucket("slow").send().await.unwrap();
    c.head_object().bucket("slow").key("big").send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "small requests took {:?}", started.elapsed());

    // A PUT goes on: the hung disk is degraded by now and gets no shard.
    let written = pattern(502, 5 * MIB + 3);
    let started = Instant::now();
    put(&c, "slow", "written", &written).await;
    assert!(started.elapsed() < Duration::from_secs(10), "PUT took {:?}", started.elapsed());
    let health = NodeHealth::read(node.context()).await;
    assert!(health.disks[slot].degraded, "{health:?}");
    assert!(health.disks.iter().filter(|d| d.index as usize != slot).all(|d| !d.degraded), "{health:?}");
    assert_eq!(degraded_metric(&node, slot), Some(1.0));
    assert_eq!(hoard_it::get(&c, "slow", "written").await, written);

    // The disk answers again: a probe finds it healthy, and repair writes what it missed.
    node.faults().disarm(&format!("disk.{slot}"));
    gate.open();
    hoard_it::eventually("the disk to be healthy again", || degraded_metric(&node, slot) == Some(0.0)).await;
    node.scrub_now().await.unwrap();
    node.repair_idle().await.unwrap();
    let after = hoard_it::shard_files(&disks);
    assert!(after.values().all(|s| s.len() == disks.len()), "every segment has all its shards again: {after:?}");
    assert!(hoard_it::get(&c, "slow", "big").await == big);
    node.stop().await;
}
