//! Three `hoard` processes on 127.0.0.1, .2 and .3, formed into one cluster with the CLI as an operator does
//! it (`cluster init`, `cluster token`, `cluster join`, then `serve` on each), each with the same master key
//! file and HTTPS: aws CLI round trips through every node (plain, SSE-S3, SSE-C, multipart, copy) read back
//! through the others; one PUT through node 2 is one trace whose spans every node exports (OTLP, as to one
//! Jaeger); then the metadata leader is killed with SIGKILL while a 100 MiB PUT goes through a follower, and
//! started again: every acknowledged object is byte-identical through every node, and the
//! interrupted PUT is either whole everywhere or absent.

use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use hoard_it::aws_tls;
use hoard_it::files_under;
use hoard_it::free_port;
use hoard_it::hoard_cli;
use hoard_it::key_file;
use hoard_it::md5_hex;
use hoard_it::no_retry;
use hoard_it::otlp::attr;
use hoard_it::otlp::traced_put;
use hoard_it::otlp::Exported;
use hoard_it::otlp::Received;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::TestCert;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

const HOSTS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
const MIB: usize = 1 << 20;
/// The caller's trace, as a client would send it in `traceparent`.
const TRACE_ID: &str = "5ad3c0ffee5ad3c0ffee5ad3c0ffee01";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn cli_ok(args: &[&str]) -> String {
    let out = hoard_cli(args);
    assert!(out.status.success(), "hoard {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The join token in what `cluster init` or `cluster token` printed.
fn token_in(printed: &str) -> String {
    printed.lines().map(str::trim).find(|l| l.starts_with("hoard1.")).expect("a join token").to_string()
}

/// `hoard cluster status --json` through `node`'s admin API.
fn status(node: &HoardProcess) -> serde_json::Value {
    let endpoint = format!("http://{}", node.http_addr.expect("a plain-HTTP endpoint"));
    serde_json::from_str(&cli_ok(&["cluster", "--endpoint", &endpoint, "status", "--json"])).expect("status JSON")
}

/// Waits until `node` reports `voters` voters and a leader; answers the leader's id.
async fn settled(node: &HoardProcess, voters: usize) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(node);
        let counted = s["members"].as_array().map(|m| m.iter().filter(|m| m["voter"] == true).count());
        let leader = s["nodes"][0]["raft"]["leader"].as_u64();
        if let (Some(n), Some(leader)) = (counted, leader) {
            if n == voters {
                return leader;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the cluster never had {voters} voters: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Cluster {
    nodes: Vec<HoardProcess>,
    cert: TestCert,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn aws(&self, node: usize, args: &[&str]) -> String {
        let out = aws_tls(&self.nodes[node].endpoint(), &self.cert.cert, args);
        assert!(
            out.status.success(),
            "aws {args:?} via node {} failed: {}",
            node + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn file(&self, name: &str, data: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn client(&self, node: usize) -> aws_sdk_s3::Client {
        self.nodes[node].client()
    }
}

fn disks(data_dir: &Path) -> Vec<PathBuf> {
    (1..=6).map(|i| data_dir.join(format!("disk{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_form_one_store_and_survive_sigkill_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let master = key_file(dir.path(), "master.key", 0x5a);
    let cert = TestCert::for_hosts(&HOSTS);
    let peers: Vec<String> = HOSTS.iter().map(|h| format!("{h}:{}", free_port())).collect();
    let data_dirs: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("node{i}"))).collect();
    let s3_addrs: Vec<SocketAddr> = HOSTS.iter().map(|h| SocketAddr::new(h.parse().unwrap(), free_port())).collect();
    // Every node exports its spans to this test's OTLP receiver, as three nodes would to one Jaeger.
    let otlp_port = free_port();
    let received = Received::default();
    let receiver = received.serve(otlp_port);
    let otlp = format!("http://127.0.0.1:{otlp_port}");
    let serve_args = ["--master-key-file", master.as_str(), "--scrub-interval", "0", "--otlp-endpoint", otlp.as_str()];
    let d = |i: usize| data_dirs[i].display().to_string();

    let first = token_in(&cli_ok(&["cluster", "init", "--data-dir", &d(0), "--node-addr", &peers[0]]));
    let mut nodes = vec![HoardProcess::start_at(&data_dirs[0], s3_addrs[0], &cert, &serve_args).unwrap()];
    cli_ok(&["cluster", "join", "--data-dir", &d(1), "--node-addr", &peers[1], "--peer", &peers[0], "--token", &first]);
    let second = token_in(&cli_ok(&["cluster", "token", "--data-dir", &d(0), "--ttl", "10m"]));
    // The running node picks the new token up within a second; a join before that is told the token is
    // unknown, and the operator would simply run it again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = hoard_cli(&[
            "cluster",
            "join",
            "--data-dir",
            &d(2),
            "--node-addr",
            &peers[2],
            "--peer",
            &peers[0],
            "--token",
            &second,
        ]);
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown") && tokio::time::Instant::now() < deadline, "join failed: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 1..3 {
        nodes.push(HoardProcess::start_at(&data_dirs[i], s3_addrs[i], &cert, &serve_args).unwrap());
    }
    let c = Cluster { nodes, cert, dir };
    settled(&c.nodes[0], 3).await;
    // `cluster status` through one node shows every node: each answered with its own Raft view and disks.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = status(&c.nodes[2]);
        let ids: Vec<u64> =
            s["nodes"].as_array().unwrap().iter().filter_map(|n| n["raft"]["node_id"].as_u64()).collect();
        if ids == [3, 1, 2] {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "status never showed every node: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(s["nodes"].as_array().unwrap().iter().all(|n| n["disks"].as_array().map(Vec::len) == Some(6)), "{s}");
    assert!(s["members"].as_array().unwrap().iter().all(|m| m["up"] == true), "{s}");

    // Round trips with the aws CLI: written through node i, read through the next ones.
    c.aws(0, &["s3", "mb", "s3://shared"]);
    let sse_c_key = c.file("customer.key", &[0x42; 32]);
    let sse_c_key = format!("fileb://{sse_c_key}");
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..3 {
        let (next, after) = ((i + 1) % 3, (i + 2) % 3);
        let plain = pattern(10 + i as u64, MIB + 7 * i);
        let f = c.file(&format!("plain{i}"), &plain);
        c.aws(i, &["s3", "cp", &f, &format!("s3://shared/plain{i}")]);
        c.aws(next, &["s3", "cp", &format!("s3://shared/plain{i}"), &c.path(&format!("plain{i}.back"))]);
        assert!(std::fs::read(c.path(&format!("plain{i}.back"))).unwrap() == plain, "plain object {i}");
        written.push((format!("plain{i}"), plain.clone()));

        c.aws(i, &["s3", "cp", &f, &format!("s3://shared/sse{i}"), "--sse", "AES256"]);
        let head = c.aws(after, &["s3api", "head-object", "--bucket", "shared", "--key", &format!("sse{i}")]);
        assert!(head.contains("\"ServerSideEncryption\": \"AES256\""), "{head}");
        written.push((format!("sse{i}"), plain.clone()));

        c.aws(i, &["s3", "cp", &f, &format!("s3://shared/ssec{i}"), "--sse-c", "AES256", "--sse-c-key", &sse_c_key]);
        let back = c.path(&format!("ssec{i}.back"));
        c.aws(
            after,
            &["s3", "cp", &format!("s3://shared/ssec{i}"), &back, "--sse-c", "AES256", "--sse-c-key", &sse_c_key],
        );
        assert!(std::fs::read(&back).unwrap() == plain, "SSE-C object {i} through node {}", after + 1);

        // Over the CLI's 8 MiB threshold: a multipart upload, its parts through node i.
        let big = pattern(20 + i as u64, 17 * MIB + 3);
        let g = c.file(&format!("big{i}"), &big);
        c.aws(i, &["s3", "cp", &g, &format!("s3://shared/big{i}")]);
        c.aws(i, &["s3", "cp", &format!("s3://shared/big{i}"), &format!("s3://shared/copy{i}")]);
        let back = c.path(&format!("copy{i}.back"));
        c.aws(next, &["s3", "cp", &format!("s3://shared/copy{i}"), &back]);
        assert!(md5_hex(&std::fs::read(&back).unwrap()) == md5_hex(&big), "copy of the multipart object {i}");
        written.push((format!("big{i}"), big.clone()));
        written.push((format!("copy{i}"), big));
    }
    let listed = c.aws(2, &["s3", "ls", "s3://shared/"]);
    assert_eq!(listed.lines().count(), written.len() + 3, "{listed}");

    // One PUT through node 2 is one trace: its request span there, and under it the shard writes that the
    // other nodes answered, each exported by the node that did the work.
    traced_put(&c.client(1), "shared", "traced", pattern(77, 3 * MIB), TRACE_ID, CALLER_SPAN).await;
    let instance = |node: usize| Value::StringValue(s3_addrs[node].to_string());
    let from = |spans: &[Exported], node: usize, name: &str| {
        spans.iter().any(|(resource, s)| {
            s.name == name
                && hex::encode(&s.trace_id) == TRACE_ID
                && attr(resource, "service.instance.id") == Some(&instance(node))
        })
    };
    received
        .until("the traced PUT's spans from every node", |s| {
            from(s, 1, "PutObject") && from(s, 0, "shard.write") && from(s, 2, "shard.write")
        })
        .await;
    let spans = received.spans();
    let by_id: std::collections::HashMap<Vec<u8>, &Span> = spans.iter().map(|(_, s)| (s.span_id.clone(), s)).collect();
    let (_, request) =
        spans.iter().find(|(_, s)| s.name == "PutObject" && hex::encode(&s.trace_id) == TRACE_ID).unwrap();
    for (resource, remote) in
        spans.iter().filter(|(_, s)| s.name == "shard.write" && hex::encode(&s.trace_id) == TRACE_ID)
    {
        // Its parent is a span of node 2 (the coordinator's shard write), itself under the request's span.
        let mut at = by_id.get(&remote.parent_span_id).copied();
        let mut hops = 0;
        while let Some(span) = at.filter(|s| s.span_id != request.span_id) {
            at = by_id.get(&span.parent_span_id).copied();
            hops += 1;
            assert!(hops < 16, "a cycle in the trace");
        }
        assert!(
            at.is_some(),
            "the shard write on {:?} descends from the PUT's span",
            attr(resource, "service.instance.id")
        );
    }
    receiver.abort();

    // SIGKILL of the leader during a 100 MiB PUT through a follower.
    let mut c = c;
    let leader = settled(&c.nodes[0], 3).await as usize - 1;
    let follower = (leader + 1) % 3;
    let big = bytes::Bytes::from(pattern(99, 100 * MIB));
    let client = no_retry(c.client(follower));
    let body = big.clone();
    let put =
        tokio::spawn(
            async move { client.put_object().bucket("shared").key("interrupted").body(body.into()).send().await },
        );
    // Killed once its shards are being written on the leader's disks (their temporary files appear).
    let leader_disks = disks(&data_dirs[leader]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !files_under(&leader_disks).iter().any(|(name, _, _)| name.ends_with(".tmp")) {
        assert!(!put.is_finished(), "the PUT ended before any shard reached the leader");
        assert!(tokio::time::Instant::now() < deadline, "no shard of the PUT reached the leader");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.nodes[leader].kill9();
    let outcome = put.await.unwrap();
    let s = status(&c.nodes[follower]);
    let killed = s["members"].as_array().unwrap().iter().find(|m| m["node_id"] == leader as u64 + 1).cloned();
    assert_eq!(killed.map(|m| m["up"].clone()), Some(serde_json::Value::Bool(false)), "{s}");
    assert_eq!(s["nodes"].as_array().map(Vec::len), Some(2), "the killed node has no health to show: {s}");
    c.nodes[leader].restart().unwrap();
    settled(&c.nodes[leader], 3).await;

    for node in 0..3 {
        let client = c.client(node);
        for (key, data) in &written {
            let got = hoard_it::get(&client, "shared", key).await;
            assert!(md5_hex(&got) == md5_hex(data), "{key} through node {}", node + 1);
        }
        match client.get_object().bucket("shared").key("interrupted").send().await {
            Ok(out) => {
                let got = out.body.collect().await.unwrap().into_bytes();
                assert!(got.len() == big.len() && md5_hex(&got) == md5_hex(&big), "the interrupted PUT is whole");
            }
            Err(e) => {
                assert!(outcome.is_err(), "an acknowledged PUT is missing through node {}: {e:?}", node + 1);
                let code = e.as_service_error().map(|s| s.is_no_such_key());
                assert_eq!(code, Some(true), "an unacknowledged PUT is absent, not broken: {e:?}");
            }
        }
    }
    eprintln!(
        "the PUT interrupted by SIGKILL of the leader: {}",
        if outcome.is_ok() { "acknowledged" } else { "failed" }
    );
}
