//! Several nodes in one process as one cluster (`hoard::testing::TestCluster`): a write on any node is read on
//! every node, an object's shard files lie on every node's disks, a fault armed on one node fails only the
//! request it hits, and with the metadata leader cut off the other nodes elect a new one and go on; scrub on
//! a node removes only the files of the refused write.

use aws_sdk_s3::primitives::ByteStream;
use hoard::Fault;
use hoard_it::assert_one_segment_two_shards_per_node;
use hoard_it::client;
use hoard_it::failure;
use hoard_it::get;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::shard_files;
use hoard_it::TestCluster;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_in_one_process_writes_and_reads_on_any_node() {
    let cluster = TestCluster::builder().nodes(3).disks_per_node(2).fault_injection(true).start().await.unwrap();
    let clients: Vec<_> = cluster.nodes().iter().map(client).collect();

    // Created on one node, written on another, read on all three.
    clients[1].create_bucket().bucket("spread").send().await.unwrap();
    let data = pattern(5, 3 * MIB + 17);
    put(&clients[2], "spread", "obj", &data).await;
    for (i, c) in clients.iter().enumerate() {
        assert!(get(c, "spread", "obj").await == data, "GET on node {}", i + 1);
    }

    // 4+2 over three nodes of two disks: the object's six shard files, two on each node.
    assert_one_segment_two_shards_per_node(&cluster);

    // A fault on node 1 fails a PUT made there, and no node shows the object.
    cluster.node(1).faults().arm("put.before_commit", Fault::Error);
    let refused = no_retry(clients[0].clone())
        .put_object()
        .bucket("spread")
        .key("refused")
        .body(ByteStream::from(pattern(6, MIB + 3)))
        .send()
        .await;
    assert!(refused.is_err(), "the armed fault failed the PUT");
    cluster.node(1).faults().disarm("put.before_commit");
    for c in &clients {
        let (status, _) = failure(c.head_object().bucket("spread").key("refused").send().await);
        assert_eq!(status, 404);
    }

    // With the leader's metadata cut off, the other two elect a new leader and take writes.
    let leader = cluster.leader(1, None).await.unwrap();
    cluster.network().remove(leader);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &others {
        let new = cluster.leader(*id, Some(leader)).await.unwrap();
        assert!(others.contains(&new), "node {id} follows node {new}");
    }
    let later = pattern(7, 2 * MIB + 5);
    put(&clients[others[0] as usize - 1], "spread", "later", &later).await;
    let reader = &clients[others[1] as usize - 1];
    assert!(get(reader, "spread", "later").await == later);
    assert!(get(reader, "spread", "obj").await == data, "earlier commits are kept");
    // A scrub on a node that did not coordinate either write deletes the two shard files the refused PUT
    // left on its disks, and keeps those of both committed objects.
    let report = cluster.node(others[1]).scrub_now().await.unwrap();
    assert_eq!(report.orphans_deleted, 2, "{report:?}");
    assert_eq!(report.segments_checked, 2, "{report:?}");
    assert_eq!(report.shards_verified, 4, "only the node's own shards are verified: {report:?}");
    let kept = shard_files(&cluster.node(others[1]).disk_paths());
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.values().all(|shards| shards.len() == 2), "{kept:?}");
    assert!(get(reader, "spread", "later").await == later);
    cluster.stop().await;
}
