//! The supervision tree under crashes: children restarted after a back-off, a supervisor whose children
//! keep failing escalating to its parent, and a root that never gives up, reporting what is down instead.

use std::sync::atomic::Ordering;

use hoard_actors::metrics::NodeHealth;
use hoard_it::client;
use hoard_it::eventually;
use hoard_it::http_get;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::TestNode;

const MIB: usize = 1024 * 1024;

fn ready(node: &TestNode) -> (u16, String) {
    http_get(node.addr(), "/health/ready").expect("the node answers /health/ready")
}

/// A shard actor, the scrub actor and the S3 listener each come back after they crash, and the node serves
/// as before: a PUT lands on every disk, scrub runs, a new connection is accepted on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_disk_actor_scrub_actor_or_listener_is_restarted() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("sup").send().await.unwrap();

    let stats = node.stats();
    let disk_restarts = stats.disks.restarts.load(Ordering::Relaxed);
    assert!(node.stop_actor("shard-2-"), "disk 2's actor");
    eventually("disk_sup restarts the shard actor", || stats.disks.restarts.load(Ordering::Relaxed) > disk_restarts)
        .await;
    let data = pattern(601, 3 * MIB);
    put(&c, "sup", "after-disk", &data).await;
    let shards = hoard_it::shard_files(&node.disk_paths());
    assert!(shards.values().all(|s| s.len() == 6), "every disk took its shard: {shards:?}");

    let maintenance = stats.maintenance.restarts.load(Ordering::Relaxed);
    assert!(node.stop_actor("scrub-"));
    eventually("maintenance_sup restarts scrub", || stats.maintenance.restarts.load(Ordering::Relaxed) > maintenance)
        .await;
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 0, "{report:?}");

    let s3 = stats.s3.restarts.load(Ordering::Relaxed);
    assert!(node.stop_actor("listener-"));
    eventually("s3_sup restarts the listener", || stats.s3.restarts.load(Ordering::Relaxed) > s3).await;
    // A new client: a fresh connection to the same port.
    assert_eq!(hoard_it::get(&client(&node), "sup", "after-disk").await, data);
    assert_eq!(ready(&node).0, 200);
    node.stop().await;
}

/// disk_sup crashing again and again: the root restarts it with a growing back-off and, past its policy,
/// keeps it down for the longest back-off instead of stopping the node. Meanwhile the node answers what
/// needs no disk, refuses what does with 503, and says why in `/health/ready` and its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_that_keeps_failing_is_reported_down_and_the_node_serves_the_rest() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("sup").send().await.unwrap();
    put(&c, "sup", "small", b"kept in metadata").await;

    let stats = node.stats();
    // NODE_SUP_POLICY allows 3 restarts a minute; the 4th failure keeps disk_sup down.
    for n in 1..=3 {
        assert!(node.stop_actor("disk_sup-"));
        eventually("node_sup restarts disk_sup", || stats.node.restarts.load(Ordering::Relaxed) >= n).await;
    }
    assert!(node.stop_actor("disk_sup-"));
    eventually("disk_sup reported down", || ready(&node).0 == 503).await;
    let (_, why) = ready(&node);
    assert!(why.contains("node_sup/disk_sup"), "{why}");
    let health = NodeHealth::read(node.context()).await;
    assert!(health.down.iter().any(|d| d.starts_with("node_sup/disk_sup")), "{health:?}");

    // What needs no disk is served; what needs one is refused with 503, and nothing is stored.
    assert_eq!(hoard_it::get(&c, "sup", "small").await, b"kept in metadata");
    c.list_objects_v2().bucket("sup").send().await.unwrap();
    let big = c.put_object().bucket("sup").key("big").body(pattern(602, 2 * MIB).into()).send().await;
    assert_eq!(hoard_it::failure(big).0, 503);
    assert_eq!(hoard_it::failure(c.head_object().bucket("sup").key("big").send().await).0, 404);
    assert_eq!(http_get(node.addr(), "/health/live").map(|(s, _)| s), Some(200), "the node is still up");
    node.stop().await;
}

/// The metadata actor crashing more often than meta_sup allows: meta_sup escalates, the root restarts the
/// whole metadata subtree, and metadata serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_past_its_policy_escalates_and_its_parent_restarts_it() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("sup").send().await.unwrap();
    let stats = node.stats();
    // META_SUP_POLICY allows 3 restarts a minute; the 4th failure escalates.
    for n in 1..=3 {
        assert!(node.stop_actor("meta-"));
        eventually("meta_sup restarts meta", || stats.meta.restarts.load(Ordering::Relaxed) >= n).await;
    }
    let root = stats.node.restarts.load(Ordering::Relaxed);
    assert!(node.stop_actor("meta-"));
    eventually("node_sup restarts meta_sup", || stats.node.restarts.load(Ordering::Relaxed) > root).await;
    eventually("the node is ready again", || ready(&node).0 == 200).await;
    put(&c, "sup", "after", b"written after the escalation").await;
    assert_eq!(hoard_it::get(&c, "sup", "after").await, b"written after the escalation");
    node.stop().await;
}
