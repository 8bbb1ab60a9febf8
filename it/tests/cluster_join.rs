//! Forming a cluster the way an operator does, with the nodes in one test process over loopback gRPC and
//! TLS: `cluster init` on a one-node hoard that already holds an object, `cluster join` of two empty nodes
//! with one-time tokens, each node started from its data dir as `hoard serve` starts it. The joiners become
//! learners and then voters; the object written before the cluster existed stays readable through every
//! node; a token is refused when reused, expired or presented to a server whose CA is not the token's (and
//! is not spent by that); rebalance spreads the object written before the cluster over the nodes that
//! joined; remove-node drains a node that holds shards before it removes it, and its certificate is refused.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use hoard::cluster_files;
use hoard::cluster_files::ClusterFiles;
use hoard::config::ServeArgs;
use hoard::node::Node;
use hoard_actors::peer_tls;
use hoard_actors::peer_tls::ClusterCa;
use hoard_actors::transport::actor::PeerListen;
use hoard_actors::transport::join::token_hash;
use hoard_actors::transport::join::JoinToken;
use hoard_it::client_for;
use hoard_it::get;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::put;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_storage::env::Env as _;
use hoard_storage::env::SystemEnv;

const ROOT: (&str, &str) = ("hoardjoinroot", "hoardjoinsecret1");

/// Starts the node of `data_dir` as `hoard serve --data-dir` would, its peer server on `peer` (already
/// bound at the node address its cluster files name).
async fn serve(data_dir: &Path, peer: Option<PeerListen>, master_key: Option<&Path>) -> Node {
    let args = ServeArgs {
        data_dir: Some(data_dir.to_path_buf()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    };
    let mut opts = args.resolve().unwrap();
    opts.root_credential = Some(hoard_protocol::Credential { access_key: ROOT.0.into(), secret_key: ROOT.1.into() });
    opts.scrub_interval = None;
    opts.master_key_file = master_key.map(Path::to_path_buf);
    if let (Some(p), Some(listen)) = (opts.peer.as_mut(), peer) {
        p.listen = listen;
    }
    Node::start(opts).await.unwrap()
}

fn s3(node: &Node) -> aws_sdk_s3::Client {
    client_for(&node.endpoint(), ROOT.0, ROOT.1)
}

/// Waits (on the node's Raft metrics, not on a clock) until the group's voters are `voters`.
async fn voters_become(node: &Node, voters: &[u64]) {
    let raft = node.ctx.meta.raft.lock().await.clone().unwrap();
    let want: BTreeSet<u64> = voters.iter().copied().collect();
    raft.wait(Some(Duration::from_secs(60)))
        .metrics(|m| m.membership_config.membership().voter_ids().collect::<BTreeSet<_>>() == want, "voters")
        .await
        .unwrap_or_else(|e| panic!("voters never became {want:?}: {e}"));
}

/// `node`, once its Raft metrics show every entry of its log applied.
async fn applied_all(node: &Node) -> &Node {
    let raft = node.ctx.meta.raft.lock().await.clone().unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.last_applied.map(|l| l.index) == m.last_log_index, "every entry applied")
        .await
        .unwrap();
    node
}

/// Waits (up to `limit`) until `cond` holds: for what background actors do at their own pace.
async fn within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh token of `leader`'s cluster, recorded as `cluster token --data-dir` records it, once the node
/// has moved it into the metadata.
async fn token(dir: &Path, node: &Node) -> String {
    let env = SystemEnv;
    let (token, _) = cluster_files::local_token(dir, Duration::from_secs(600), &env).unwrap();
    let hash = token_hash(&token.secret);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !node.ctx.meta.local().unwrap().cluster_record().unwrap().join_tokens.contains_key(&hash) {
        assert!(tokio::time::Instant::now() < deadline, "the node never recorded the new token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.text().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_one_time_tokens_and_serve_one_store() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (d1, d2, d3) = (dirs[0].path(), dirs[1].path(), dirs[2].path());

    // A one-node hoard with an object, stopped, then made the first node of a cluster.
    let alone = serve(d1, None, None).await;
    s3(&alone).create_bucket().bucket("before").send().await.unwrap();
    assert!(applied_all(&alone).await.ctx.meta.reads_here(), "the one voter of its group reads without a barrier");
    let early = pattern(1, 3 << 20);
    put(&s3(&alone), "before", "early", &early).await;
    alone.stop().await;

    let listens: Vec<PeerListen> =
        (0..3).map(|_| PeerListen::bind_now("127.0.0.1:0".parse().unwrap()).unwrap()).collect();
    let addrs: Vec<String> = listens.iter().map(|l| l.addr.to_string()).collect();
    let env = SystemEnv;
    let made = cluster_files::init(d1, &addrs[0], None, Duration::from_secs(600), &env).unwrap();
    assert!(cluster_files::init(d1, &addrs[0], None, Duration::from_secs(600), &env).is_err(), "init runs once");
    // Nodes 1 and 3 get the same master key file; node 2, by mistake, another one.
    let keys = tempfile::tempdir().unwrap();
    let (key_a, key_b) = (keys.path().join("a.key"), keys.path().join("b.key"));
    std::fs::write(&key_a, [0x11; 32]).unwrap();
    std::fs::write(&key_b, [0x22; 32]).unwrap();
    let mut listens = listens.into_iter();
    let one = serve(d1, listens.next(), Some(&key_a)).await;
    let first = made.token.text().to_string();
    assert!(applied_all(&one).await.ctx.meta.reads_here(), "a cluster of one node, as yet");

    // A token that names another CA: the joiner refuses the server before sending anything, so the token is
    // not spent and works afterwards.
    let mut wrong_pin = JoinToken::parse(&first).unwrap();
    wrong_pin.ca_pin = peer_tls::fingerprint(ClusterCa::generate(&made.cluster_id).unwrap().cert_pem()).unwrap();
    let refused = cluster_files::join(d2, &addrs[1], None, &addrs[0], &wrong_pin.text()).await.unwrap_err();
    assert!(format!("{refused:#}").contains("CA"), "{refused:#}");
    assert!(ClusterFiles::load(d2).unwrap().is_none(), "a refused join leaves no cluster files");

    let joined = cluster_files::join(d2, &addrs[1], None, &addrs[0], &first).await.unwrap();
    assert_eq!((joined.node_id, joined.cluster_id.as_str()), (2, made.cluster_id.as_str()));
    let log_before = one.ctx.meta.metrics().await.unwrap().last_log_index;
    let again = cluster_files::join(d3, &addrs[2], None, &addrs[0], &first).await.unwrap_err();
    assert!(format!("{again:#}").contains("used already"), "a token admits one node: {again:#}");
    let guessed = JoinToken { secret: zeroize::Zeroizing::new("a-guess".into()), ..JoinToken::parse(&first).unwrap() };
    let refused = cluster_files::join(d3, &addrs[2], None, &addrs[0], &guessed.text()).await.unwrap_err();
    assert!(format!("{refused:#}").contains("unknown"), "{refused:#}");
    let log_after = one.ctx.meta.metrics().await.unwrap().last_log_index;
    assert_eq!(log_before, log_after, "a refused join appends nothing to the Raft log");
    let files = ClusterFiles::load(d2).unwrap().unwrap();
    assert!(files.ca.is_none(), "a joined node does not get the CA key");
    let mode = std::fs::metadata(d2.join("cluster/node.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);

    // An expired token is refused.
    let mut expired = JoinToken::generate(&one.ctx.config.cluster.clone().unwrap(), &env);
    expired.secret = zeroize::Zeroizing::new("expired-secret".into());
    let cmd = MetaCommand::AddJoinToken {
        hash: token_hash(&expired.secret),
        expires_ms: env.now_ms() + 50,
        now_ms: env.now_ms(),
    };
    assert_eq!(one.ctx.meta.write(cmd).await.unwrap(), MetaResponse::Ok);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = cluster_files::join(d3, &addrs[2], None, &addrs[0], &expired.text()).await.unwrap_err();
    assert!(format!("{late:#}").contains("expired"), "{late:#}");

    let second = token(d1, &one).await;
    assert_eq!(cluster_files::join(d3, &addrs[2], None, &addrs[0], &second).await.unwrap().node_id, 3);

    let two = serve(d2, listens.next(), Some(&key_b)).await;
    let three = serve(d3, listens.next(), Some(&key_a)).await;
    // Learners first; once both have caught up the leader makes them voters together (1, then 3).
    voters_become(&one, &[1, 2, 3]).await;
    for n in [&one, &two, &three] {
        assert!(!n.ctx.meta.reads_here(), "with three voters every read confirms the leader's read index");
    }
    for n in [&two, &three] {
        n.peers.as_ref().unwrap().wait_for(2, Duration::from_secs(30)).await.unwrap();
    }

    // One store: the object from before the cluster, a bucket made on node 3, an object written through
    // node 2 and read through every node.
    for n in [&one, &two, &three] {
        assert!(get(&s3(n), "before", "early").await == early);
    }
    // The object written on the one-node store had all six shards on node 1: rebalance spreads them over
    // the nodes that joined, two on each, as a new write is placed.
    within(Duration::from_secs(60), "the early object spread over three nodes", || {
        let record = one.ctx.meta.local().unwrap().object("before", "early").unwrap().unwrap();
        let per_node: Vec<usize> =
            (1..=3).map(|n| record.segments[0].layout.disks.iter().filter(|d| d.node == n).count()).collect();
        per_node == [2, 2, 2]
    })
    .await;
    for n in [&one, &two, &three] {
        assert!(get(&s3(n), "before", "early").await == early, "the moved shards are read");
    }
    s3(&three).create_bucket().bucket("after").send().await.unwrap();
    let data = pattern(2, 5 << 20);
    put(&s3(&two), "after", "spread", &data).await;
    for n in [&one, &two, &three] {
        assert!(get(&s3(n), "after", "spread").await == data);
    }
    // The first node to start with a key named it the cluster's: SSE-S3 through node 3 (same key) is read
    // through node 1; node 2, whose key is another, refuses SSE-S3 rather than wrap under a key the others
    // lack, and cannot read what the others wrapped.
    let sse = pattern(4, 100_000);
    s3(&three)
        .put_object()
        .bucket("after")
        .key("sealed")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(sse.clone().into())
        .send()
        .await
        .unwrap();
    assert!(get(&s3(&one), "after", "sealed").await == sse);
    let refused = no_retry(s3(&two))
        .put_object()
        .bucket("after")
        .key("wrong-key")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(sse.clone().into())
        .send()
        .await;
    assert!(refused.is_err(), "a node without the cluster's master key wrapped a data key");
    assert!(no_retry(s3(&two)).get_object().bucket("after").key("sealed").send().await.is_err());
    s3(&one).delete_object().bucket("after").key("sealed").send().await.unwrap();
    let named = one.ctx.meta.read(|r| r.encryption_settings()).await.unwrap().active_key_id;
    assert_eq!(named, one.ctx.key_keeper.status().await.unwrap().active, "node 1's key is the cluster's");

    let record = one.ctx.meta.read(|r| r.object("after", "spread")).await.unwrap().unwrap();
    let nodes: BTreeSet<u64> = record.segments[0].layout.disks.iter().map(|d| d.node).collect();
    assert_eq!(nodes, BTreeSet::from([1, 2, 3]), "a stripe spans every node");

    // Node 3 holds shards: remove-node drains it first (rebalance moves its shards to nodes 1 and 2, and new
    // writes leave it out), then removes it; its certificate no longer opens a connection, and every object
    // is whole without it.
    let admin = hoard::admin_client::ConnectArgs {
        endpoint: one.endpoint(),
        access_key: Some(ROOT.0.into()),
        secret_key: Some(ROOT.1.into()),
        ca_bundle: None,
    };
    let answer = admin.call("POST", "hoard-cluster=&action=remove-node&node=3").await.unwrap();
    let status: hoard_s3::cluster::ClusterStatus = serde_json::from_str(&answer).unwrap();
    assert!(status.draining.iter().any(|d| d.node_id == 3 && d.segments_left == 2), "{answer}");
    let during = pattern(5, 2 << 20);
    put(&s3(&two), "after", "during-drain", &during).await;
    within(Duration::from_secs(60), "node 3 drained", || {
        one.ctx.meta.local().unwrap().segments_on_node(3).unwrap() == 0
    })
    .await;
    admin.call("POST", "hoard-cluster=&action=remove-node&node=3").await.unwrap();
    for (bucket, key, data) in
        [("before", "early", &early), ("after", "spread", &data), ("after", "during-drain", &during)]
    {
        let record = one.ctx.meta.local().unwrap().object(bucket, key).unwrap().unwrap();
        assert!(record.segments[0].layout.disks.iter().all(|d| d.node != 3), "{key}: {:?}", record.segments[0].layout);
        assert!(get(&s3(&two), bucket, key).await == *data, "{key} read without node 3");
    }
    let record = one.ctx.meta.local().unwrap().cluster_record().unwrap();
    assert_eq!(record.removed(), BTreeSet::from([3]));
    let link = three.peers.as_ref().unwrap().link(1, &addrs[0]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if link.check().await.is_err() && link.check().await.is_err() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the removed node still talks to node 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two voters are left: one steps down so the group has an odd number, and the store still writes.
    let raft = one.ctx.meta.raft.lock().await.clone().unwrap();
    raft.wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.membership_config.membership().voter_ids().count() == 1, "one voter")
        .await
        .unwrap();
    put(&s3(&two), "after", "later", &pattern(3, 1000)).await;

    for n in [three, two, one] {
        n.stop().await;
    }
}
