//! What a node tells its operator: `/metrics` in Prometheus text, checked against what the test did to it.

use aws_sdk_s3::primitives::ByteStream;
use hoard::Fault;
use hoard_it::client;
use hoard_it::client_for;
use hoard_it::eventually;
use hoard_it::failure;
use hoard_it::get;
use hoard_it::http_get;
use hoard_it::metric;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::shard_files;
use hoard_it::TestNode;
use std::sync::atomic::Ordering;

const MIB: usize = 1 << 20;

fn scrape(node: &TestNode) -> String {
    let (status, body) = http_get(node.addr(), "/metrics").expect("the node answers /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of `series` once it is at least `want` (a request is counted when its response is done, which
/// can be a moment after the client has read it).
async fn value_reaches(node: &TestNode, series: &str, want: f64) -> f64 {
    let mut last = None;
    eventually(&format!("{series} reaches {want}"), || {
        last = metric(&scrape(node), series);
        last.is_some_and(|v| v >= want)
    })
    .await;
    last.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_disk_errors_repairs_restarts_and_raft() {
    let node = TestNode::builder().fault_injection(true).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("metered").send().await.unwrap();
    let data = pattern(7, 3 * MIB);
    put(&c, "metered", "obj", &data).await;
    assert_eq!(get(&c, "metered", "obj").await, data);
    let (status, _) = failure(c.get_object().bucket("metered").key("missing").send().await);
    assert_eq!(status, 404);
    let wrong = client_for(&node.endpoint(), node.access_key(), "not-the-secret");
    let (status, code) = failure(wrong.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));

    // Requests, by operation and status; bytes both ways; durations.
    let put_series = r#"hoard_s3_requests_total{operation="PutObject",status="200"}"#;
    assert_eq!(value_reaches(&node, put_series, 1.0).await, 1.0);
    let get_series = r#"hoard_s3_requests_total{operation="GetObject",status="200"}"#;
    assert_eq!(value_reaches(&node, get_series, 1.0).await, 1.0);
    let missing = r#"hoard_s3_requests_total{operation="GetObject",status="404"}"#;
    assert_eq!(value_reaches(&node, missing, 1.0).await, 1.0);
    // Refused before s3s resolved the operation.
    let refused = r#"hoard_s3_requests_total{operation="unknown",status="403"}"#;
    assert_eq!(value_reaches(&node, refused, 1.0).await, 1.0);
    let text = scrape(&node);
    let received = metric(&text, r#"hoard_s3_received_bytes_total{operation="PutObject"}"#).unwrap_or_default();
    assert!(received >= data.len() as f64, "PUT body bytes counted: {received}");
    let sent = metric(&text, r#"hoard_s3_sent_bytes_total{operation="GetObject"}"#).unwrap_or_default();
    assert!(sent >= data.len() as f64, "GET body bytes counted: {sent}");
    let timed = metric(&text, r#"hoard_s3_request_duration_seconds_count{operation="PutObject"}"#);
    assert_eq!(timed, Some(1.0), "one PUT timed");
    assert!(text.contains("# TYPE hoard_s3_request_duration_seconds histogram"), "{text}");

    // Raft: one member, the leader, with the bucket and the object committed.
    assert_eq!(metric(&text, "hoard_raft_is_leader"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "hoard_raft_leader"), Some(1.0));
    assert!(metric(&text, "hoard_raft_term").is_some_and(|t| t >= 1.0));
    assert!(metric(&text, "hoard_raft_applied_index").is_some_and(|i| i >= 2.0), "{text}");

    // A lost shard file: the read on its disk fails, repair is told and rebuilds it.
    let disks = node.disk_paths();
    let shards = shard_files(&disks);
    let (_, files) = shards.iter().next().expect("the object has shard files");
    let lost = files.get(&0).expect("shard 0").clone();
    let slot = disks.iter().position(|d| lost.starts_with(d)).expect("the shard file is on a disk");
    std::fs::remove_file(&lost).unwrap();
    assert_eq!(get(&c, "metered", "obj").await, data, "read around the lost shard");
    node.repair_idle().await.unwrap();
    assert!(lost.exists(), "repair rebuilt the lost shard file");
    let text = scrape(&node);
    let errors = format!(r#"hoard_disk_read_errors_total{{disk="{slot}"}}"#);
    // One failed read per block of the object (each block's pieces are read separately), by the GET and again by
    // repair, which reads the shard reported damaged too (a report may name a whole shard).
    let blocks = data.len().div_ceil(MIB) as f64;
    assert_eq!(metric(&text, &errors), Some(2.0 * blocks), "{text}");
    for other in (0..disks.len()).filter(|d| *d != slot) {
        assert_eq!(metric(&text, &format!(r#"hoard_disk_read_errors_total{{disk="{other}"}}"#)), Some(0.0));
    }
    assert_eq!(metric(&text, "hoard_repair_reports_total"), Some(1.0));
    assert_eq!(metric(&text, "hoard_repair_shards_rebuilt_total"), Some(1.0));
    assert_eq!(metric(&text, "hoard_repair_failures_total"), Some(0.0));
    assert_eq!(metric(&text, "hoard_repair_pending_segments"), Some(0.0));
    assert_eq!(metric(&text, "hoard_repair_queued_segments"), Some(0.0), "rebuilt, so no longer queued");

    // A crashed pool worker, restarted by its supervisor.
    let restarts = r#"hoard_actor_restarts_total{supervisor="pool_sup"}"#;
    assert_eq!(metric(&text, restarts), Some(0.0), "{text}");
    node.faults().arm_times("ec.encode", Fault::Panic, Some(1));
    let body = ByteStream::from(pattern(8, 2 * MIB));
    let (status, _) = failure(no_retry(c.clone()).put_object().bucket("metered").key("crash").body(body).send().await);
    assert!((500..600).contains(&status), "the PUT under the panic fails with a 5xx, got {status}");
    eventually("pool_sup restarts the EC worker", || node.stats().pools.restarts.load(Ordering::Relaxed) >= 1).await;
    let counted = node.stats().pools.restarts.load(Ordering::Relaxed) as f64;
    assert_eq!(metric(&scrape(&node), restarts), Some(counted));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_reveal_no_bucket_key_or_credential() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("secret-bucket-name").send().await.unwrap();
    put(&c, "secret-bucket-name", "secret/key/name", b"x").await;
    let series = r#"hoard_s3_requests_total{operation="PutObject",status="200"}"#;
    value_reaches(&node, series, 1.0).await;
    let text = scrape(&node);
    for hidden in ["secret-bucket-name", "secret/key/name", node.access_key(), node.secret_key()] {
        assert!(!text.contains(hidden), "{hidden} appears in /metrics");
    }
    // Unsigned and plain: the text is OpenMetrics, which ends with its EOF marker.
    assert!(text.ends_with("# EOF\n"), "{text}");
    node.stop().await;
}
