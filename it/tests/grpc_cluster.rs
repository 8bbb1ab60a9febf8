//! Three nodes that talk gRPC over mutual TLS on loopback, as separate processes do: a bucket made on one
//! node is listed on another, an object written through one is read through every one with its shard
//! files on every node's disks; with the metadata leader stopped the other two elect a new leader and
//! take writes, and the old leader, started again, catches up; a caller whose certificate the cluster CA
//! did not sign is refused; a remote shard write is visible only once committed, and a remote disk's damage
//! comes back as damage; a coordinator (session or whole node) lost before its commit leaves nothing visible,
//! and each node's scrub deletes the orphans on its own disks.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use hoard_actors::error::ActorError;
use hoard_actors::peer_tls;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::transport::peer::GrpcTransport;
use hoard_actors::transport::peer::Peers;
use hoard_actors::transport::Transport as _;
use hoard_it::assert_one_segment_two_shards_per_node;
use hoard_it::client;
use hoard_it::eventually;
use hoard_it::files_under;
use hoard_it::get;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::shard_files;
use hoard_it::TestCluster;
use hoard_protocol::DiskRef;
use hoard_protocol::SegmentId;
use hoard_storage::error::StorageError;
use hoard_storage::shard_file::ShardHeader;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_over_grpc_serve_one_store_and_survive_the_loss_of_their_leader() {
    let mut cluster = TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).start().await.unwrap();
    let clients: Vec<_> = cluster.nodes().iter().map(client).collect();

    clients[0].create_bucket().bucket("spread").send().await.unwrap();
    let listed = clients[2].list_buckets().send().await.unwrap();
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["spread"], "a bucket made on node 1 is listed on node 3");

    let data = pattern(11, 3 * MIB + 17);
    put(&clients[1], "spread", "obj", &data).await;
    for (i, c) in clients.iter().enumerate() {
        assert!(get(c, "spread", "obj").await == data, "GET on node {}", i + 1);
    }
    let small = pattern(12, 1000);
    put(&clients[2], "spread", "small", &small).await;
    assert_eq!(get(&clients[0], "spread", "small").await, small);

    // 4+2 over three nodes of two disks: two shard files of the object on each node.
    assert_one_segment_two_shards_per_node(&cluster);

    // The leader stops: the other two elect one of themselves and take writes (placed on the live nodes'
    // disks), and every earlier object stays readable.
    let leader = cluster.leader(1, None).await.unwrap();
    cluster.node_mut(leader).halt().await;
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for id in &others {
        let new = cluster.leader(*id, Some(leader)).await.unwrap();
        assert!(others.contains(&new), "node {id} follows node {new}");
    }
    let (a, b) = (&clients[others[0] as usize - 1], &clients[others[1] as usize - 1]);
    let later = pattern(13, 2 * MIB + 5);
    put(a, "spread", "later", &later).await;
    assert!(get(b, "spread", "later").await == later);
    assert!(get(b, "spread", "obj").await == data, "an object with two shards on the stopped node is read");
    // Enough inline objects (each in its Raft entry) that the returned node's catch-up is many appends of
    // many entries: one append of them all would not be answered within openraft's heartbeat-long deadline.
    let inline = |i: usize| pattern(100 + i as u64, 30 * 1024);
    let writes = (0..320).map(|i| {
        let a = a.clone();
        async move { put(&a, "spread", &format!("inline{i}"), &inline(i)).await }
    });
    futures::stream::iter(writes).buffer_unordered(8).collect::<Vec<()>>().await;

    // Back again, the old leader catches up and serves what was written without it; its scrub finds its two
    // shards of the later object missing (a read need not: it reads data shards first, and those may all be
    // on the other nodes), and its repair writes them from the other nodes' shards.
    cluster.node_mut(leader).restart().await.unwrap();
    let back = client(cluster.node(leader));
    let caught_up = tokio::time::timeout(Duration::from_secs(60), get(&back, "spread", "later"));
    assert!(caught_up.await.expect("the returned node catches up within a minute") == later);
    assert!(get(&back, "spread", "obj").await == data);
    for i in [0, 159, 319] {
        assert!(get(&back, "spread", &format!("inline{i}")).await == inline(i), "inline{i} on the returned node");
    }
    cluster.node(leader).scrub_now().await.unwrap();
    cluster.node(leader).repair_idle().await.unwrap();
    let files = shard_files(&cluster.node(leader).disk_paths());
    assert_eq!(files.len(), 2, "both segments on the returned node: {files:?}");
    assert!(files.values().all(|shards| shards.len() == 2), "{files:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_certificate_from_the_cluster_ca_is_refused() {
    let cluster = TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).start().await.unwrap();
    let node = cluster.node(1);
    let (cluster_id, addr) = (node.cluster_id().unwrap().to_string(), node.peer_addr().unwrap());

    // A member's own links answer.
    let member = cluster.node(2).peers().unwrap().link(1, &addr.to_string()).unwrap();
    member.check().await.unwrap();

    // A caller that trusts the cluster CA but presents a certificate of another CA (even one naming this
    // cluster and a member's id) is refused by the server at the handshake.
    let rogue = ClusterCa::generate(&cluster_id).unwrap();
    let identity = rogue.issue(2, "127.0.0.1").unwrap();
    let tls = peer_tls::client_config(node.cluster_ca_pem().unwrap(), &identity).unwrap();
    let outsider = Peers::new(2, &cluster_id, tls, hoard_actors::net::tcp());
    let refused = tokio::time::timeout(Duration::from_secs(10), outsider.link(1, &addr.to_string()).unwrap().check())
        .await
        .expect("the refusal is prompt");
    assert!(refused.is_err(), "a rogue CA's node was answered");
    cluster.stop().await;
}

/// A shard write to another node's disk is visible there only once committed: one dropped before its commit
/// leaves nothing (not even its temp file), one committed reads back piece by piece, and a piece that is
/// missing or corrupt on the remote disk comes back as damage (repair's business), not as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_shard_write_is_visible_only_once_committed() {
    let cluster = TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).start().await.unwrap();
    let transport = GrpcTransport(cluster.node(2).peers().unwrap().clone());
    let disk = cluster.node(1).disk_paths()[0].clone();
    let shard = transport.remote_shard(DiskRef { node: 1, disk: 0 }).expect("node 1 is a peer of node 2");
    let header =
        |segment| ShardHeader { segment: SegmentId(segment), shard_index: 0, data: 4, parity: 2, block_size: 4096 };
    let piece = |i: u8| Bytes::from(vec![i; 1024]);

    let mut aborted = shard.create(header(7)).await.unwrap();
    for i in 0..3 {
        aborted.append(vec![piece(i)]).await.unwrap();
    }
    eventually("the write's temp file exists", || !files_under(std::slice::from_ref(&disk)).is_empty()).await;
    drop(aborted);
    eventually("the aborted write leaves nothing", || files_under(std::slice::from_ref(&disk)).is_empty()).await;
    assert!(shard_files(std::slice::from_ref(&disk)).is_empty());

    let mut written = shard.create(header(8)).await.unwrap();
    for i in 0..20 {
        written.append(vec![piece(i)]).await.unwrap();
    }
    written.commit().await.unwrap();
    let files = shard_files(std::slice::from_ref(&disk));
    assert_eq!(files.len(), 1, "{files:?}");
    for block in [0u64, 7, 19] {
        let read = shard.read_piece(header(8), block, 4096, Duration::from_secs(5)).await.unwrap();
        assert_eq!(read, piece(block as u8), "block {block}");
    }

    // Flip a byte of block 3's piece on node 1's disk: the read is refused as corrupt.
    let path = files.values().next().unwrap()[&0].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes[len - 17 * (1024 + 4) + 10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let corrupt = shard.read_piece(header(8), 3, 4096, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(corrupt, ActorError::Storage(StorageError::Corrupt(_))), "{corrupt:?}");
    let missing = shard.read_piece(header(9), 0, 4096, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(missing, ActorError::Storage(StorageError::NotFound(_))), "{missing:?}");
    cluster.stop().await;
}

/// A coordinator that dies after its shards are on the other nodes' disks and before the commit leaves
/// nothing visible anywhere, and each node's scrub deletes the orphans on its own disks: first a session actor
/// that panics at the commit point, then a whole node stopped there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_lost_before_its_commit_leaves_orphans_each_node_deletes() {
    let mut cluster =
        TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).fault_injection(true).start().await.unwrap();
    let clients: Vec<_> = cluster.nodes().iter().map(client).collect();
    clients[0].create_bucket().bucket("lost").send().await.unwrap();
    let shards_on = |cluster: &TestCluster, id: u64| shard_files(&cluster.node(id).disk_paths());

    // The session actor panics at the commit point.
    cluster.node(2).faults().arm_times("put.before_commit", hoard::Fault::Panic, Some(1));
    let failed = hoard_it::no_retry(clients[1].clone())
        .put_object()
        .bucket("lost")
        .key("panicked")
        .body(pattern(21, 3 * MIB).into())
        .send()
        .await;
    assert!(failed.is_err(), "the PUT whose session panicked was acknowledged");
    for (i, c) in clients.iter().enumerate() {
        let (status, _) = hoard_it::failure(c.head_object().bucket("lost").key("panicked").send().await);
        assert_eq!(status, 404, "visible through node {}", i + 1);
    }
    for id in 1..=3 {
        assert_eq!(shards_on(&cluster, id).len(), 1, "node {id} holds the uncommitted segment's shards");
        let report = cluster.node(id).scrub_now().await.unwrap();
        assert_eq!(report.orphans_deleted, 2, "node {id} deletes its two orphans: {report:?}");
        assert!(shards_on(&cluster, id).is_empty(), "node {id}");
    }

    // The whole coordinating node stops while its PUT waits at the commit point.
    let gate = hoard::Gate::new();
    cluster.node(2).faults().arm_times("put.before_commit", hoard::Fault::Gate(gate.clone()), Some(1));
    let put = tokio::spawn({
        let c = hoard_it::no_retry(clients[1].clone());
        async move { c.put_object().bucket("lost").key("orphaned").body(pattern(22, 3 * MIB).into()).send().await }
    });
    gate.reached(1).await;
    cluster.node_mut(2).halt().await;
    assert!(put.await.unwrap().is_err(), "a PUT whose node stopped before its commit was acknowledged");
    for id in [1, 3] {
        let (status, _) =
            hoard_it::failure(clients[id as usize - 1].head_object().bucket("lost").key("orphaned").send().await);
        assert_eq!(status, 404, "visible through node {id}");
        let report = cluster.node(id).scrub_now().await.unwrap();
        assert_eq!(report.orphans_deleted, 2, "node {id} deletes its own two orphans: {report:?}");
        assert!(shards_on(&cluster, id).is_empty(), "node {id}");
    }
    assert_eq!(shards_on(&cluster, 2).len(), 1, "the stopped node's orphans wait for its own scrub");
    cluster.node_mut(2).restart().await.unwrap();
    let report = cluster.node(2).scrub_now().await.unwrap();
    assert_eq!(report.orphans_deleted, 2, "{report:?}");
    assert!(shards_on(&cluster, 2).is_empty());
    cluster.stop().await;
}

/// A repair that cannot read enough shards while a peer is down stays queued, and is tried again as soon as
/// the peer is back: the shard file comes back without another report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_that_failed_while_a_peer_was_down_runs_when_it_is_back() {
    let mut cluster = TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).start().await.unwrap();
    let c = client(cluster.node(1));
    c.create_bucket().bucket("heal").send().await.unwrap();
    let data = pattern(31, 3 * MIB);
    put(&c, "heal", "obj", &data).await;

    // Node 3 (two shards) is down; one of node 1's two shards is lost: three shards are left of the four a
    // rebuild needs, so the repair scrub asks for fails and stays queued.
    cluster.node_mut(3).halt().await;
    let link = cluster.node(1).peers().unwrap().get(3).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !link.is_down() {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never saw node 3 down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let files = shard_files(&cluster.node(1).disk_paths());
    let lost = files.values().next().unwrap().values().next().unwrap().clone();
    std::fs::remove_file(&lost).unwrap();
    let report = cluster.node(1).scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 1, "{report:?}");
    cluster.node(1).repair_idle().await.unwrap();
    let stats = cluster.node(1).context().repair.stats.clone();
    assert_eq!(stats.failures.load(std::sync::atomic::Ordering::Relaxed), 1, "the repair could not run");
    assert!(!lost.exists());
    assert_eq!(cluster.node(1).context().repair.queued_segments(), 1);

    // Node 3 returns: node 1's peer watch sees it back and the queued repair runs.
    cluster.node_mut(3).restart().await.unwrap();
    // Background work on two cores shared with the other tests of this file: a longer limit than `eventually`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !lost.exists() {
        assert!(tokio::time::Instant::now() < deadline, "the queued repair never ran once node 3 was back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.node(1).repair_idle().await.unwrap();
    assert_eq!(stats.shards_rebuilt.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(cluster.node(1).context().repair.queued_segments(), 0);
    assert!(get(&c, "heal", "obj").await == data);
    cluster.stop().await;
}

/// With three nodes of two disks and 4+2 coding, any one node may be lost, leader or not: every object stays
/// readable through the other two and the store keeps taking writes; back again, the node gets the shards it
/// missed, so the next node may be lost in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_one_node_may_be_lost_and_the_store_reads_and_writes() {
    let mut cluster = TestCluster::builder().nodes(3).disks_per_node(2).grpc(true).start().await.unwrap();
    client(cluster.node(1)).create_bucket().bucket("any").send().await.unwrap();
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for lost in 1..=3u64 {
        let before = pattern(40 + lost, 2 * MIB + lost as usize);
        put(&client(cluster.node(lost)), "any", &format!("before{lost}"), &before).await;
        written.push((format!("before{lost}"), before));
        cluster.node_mut(lost).halt().await;
        let others: Vec<u64> = (1..=3).filter(|id| *id != lost).collect();
        let during = pattern(50 + lost, 2 * MIB + 7);
        put(&client(cluster.node(others[0])), "any", &format!("during{lost}"), &during).await;
        written.push((format!("during{lost}"), during));
        for id in &others {
            let c = client(cluster.node(*id));
            for (key, data) in &written {
                assert!(get(&c, "any", key).await == *data, "{key} through node {id} with node {lost} down");
            }
        }
        // Back, the node gets the shards it missed (the writer's queued repair runs when it sees it back):
        // only then is the store ready to lose another node.
        cluster.node_mut(lost).restart().await.unwrap();
        let disks: Vec<_> = (1..=3).flat_map(|id| cluster.node(id).disk_paths()).collect();
        hoard_it::eventually("every segment has its six shards again", || {
            shard_files(&disks).values().all(|shards| shards.len() == 6)
        })
        .await;
    }
    cluster.stop().await;
}

/// Draining a node over gRPC: rebalance moves each of its shards to the other nodes (an actor that dies
/// after writing copies and before committing them is restarted, and the next pass finishes the work), the
/// objects stay whole, and the leader's scrub deletes the old copies once the grace period is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_gives_its_shards_to_the_others_even_when_rebalance_dies_midway() {
    let cluster = TestCluster::builder()
        .nodes(3)
        .disks_per_node(2)
        .data_shards(2)
        .parity_shards(1)
        .fault_injection(true)
        .grpc(true)
        .start()
        .await
        .unwrap();
    let c = client(cluster.node(1));
    c.create_bucket().bucket("drain").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..4).map(|i| (format!("o{i}"), pattern(70 + i, MIB + 1000 * i as usize))).collect();
    for (key, data) in &objects {
        put(&c, "drain", key, data).await;
    }
    let leader = cluster.leader(1, None).await.unwrap();
    let drained = (1..=3).find(|id| *id != leader).unwrap();
    let held = |ctx: &hoard_actors::NodeContext| ctx.meta.local().unwrap().segments_on_node(drained).unwrap();
    assert_eq!(held(cluster.node(leader).context()), 4, "2+1 over three nodes: a shard of each on every node");

    // The leader's rebalance dies once after its first batch of copies, before the moves commit.
    cluster.node(leader).faults().arm_times("rebalance.commit", hoard::Fault::Panic, Some(1));
    let ctx = cluster.node(leader).context().clone();
    ctx.meta.write(hoard_protocol::MetaCommand::SetDraining { node_id: drained, draining: true }).await.unwrap();
    ctx.rebalance.kick().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while held(&ctx) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "node {drained} never drained: {:?}", ctx.rebalance.progress());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.node(leader).faults().list().is_empty(), "the fault fired");
    // Four shards left the drained node (a later pass may even out the disks with more).
    assert!(ctx.rebalance.progress().moved_shards >= 4, "{:?}", ctx.rebalance.progress());
    for id in 1..=3 {
        for (key, data) in &objects {
            assert!(get(&client(cluster.node(id)), "drain", key).await == *data, "{key} through node {id}");
        }
    }
    // The old copies are stale until the leader's scrub deletes them (the grace period is 0 here).
    let stale = ctx.meta.local().unwrap().stale_copies().unwrap();
    assert!(stale.len() >= 4 && stale.iter().any(|s| s.disk.node == drained), "{stale:?}");
    let report = cluster.node(leader).scrub_now().await.unwrap();
    assert!(report.stale_deleted >= 4, "{report:?}");
    assert!(ctx.meta.local().unwrap().stale_copies().unwrap().is_empty());
    let left = shard_files(&cluster.node(drained).disk_paths());
    assert!(left.is_empty(), "node {drained} still holds {left:?}");
    cluster.stop().await;
}
