//! `hoard cluster encrypt | status | rotate-key` through the real binary: encrypt-all is refused without a
//! key and then encrypts every new write; a rotation rewraps every SSE-S3 data key (objects and uploads in
//! progress), survives `kill -9` half-way, and afterwards the old key can go.

use std::process::Command;
use std::process::Output;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::types::VersioningConfiguration;
use hoard::cluster_cli::describe;
use hoard_it::client;
use hoard_it::get;
use hoard_it::hoard_bin;
use hoard_it::key_file;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::TestNode;
use hoard_it::ACCESS_KEY;
use hoard_it::SECRET_KEY;
use hoard_s3::cluster::ClusterStatus;

fn hoard(endpoint: &str, access: &str, secret: &str, args: &[&str]) -> Output {
    Command::new(hoard_bin())
        .args(args)
        .env("HOARD_ENDPOINT", endpoint)
        .env("HOARD_ROOT_ACCESS_KEY", access)
        .env("HOARD_ROOT_SECRET_KEY", secret)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("hoard runs")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "hoard failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(endpoint: &str, access: &str, secret: &str) -> ClusterStatus {
    let text = ok(hoard(endpoint, access, secret, &["cluster", "status", "--json"]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_encrypt_needs_a_key_then_encrypts_every_new_write() {
    let plain = TestNode::builder().start().await.unwrap();
    let out = hoard(&plain.endpoint(), plain.access_key(), plain.secret_key(), &["cluster", "encrypt"]);
    assert!(!out.status.success(), "encrypt-all on a node without a key must be refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no master key"), "{out:?}");
    plain.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "master.key", 0x61);
    let node = TestNode::builder().master_key_file(&key).trust_proxy_tls(true).start().await.unwrap();
    let (e, a, s) = (node.endpoint(), node.access_key().to_string(), node.secret_key().to_string());
    let c = client(&node);
    c.create_bucket().bucket("docs").send().await.unwrap();
    c.put_object().bucket("docs").key("before").body(ByteStream::from_static(b"written plain")).send().await.unwrap();
    let st = status(&e, &a, &s);
    assert!(!st.encrypt_all);
    assert_eq!((st.objects.plain, st.objects.sse_s3), (1, 0));
    let key_id = st.configured_key_id.clone().expect("the node reports its key id");

    let said = ok(hoard(&e, &a, &s, &["cluster", "encrypt"]));
    assert!(said.contains(&key_id), "{said}");
    let put = c.put_object().bucket("docs").key("after").body(ByteStream::from_static(b"secret")).send().await;
    assert_eq!(put.unwrap().server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get(&c, "docs", "before").await, b"written plain", "objects written before stay readable");
    assert_eq!(get(&c, "docs", "after").await, b"secret");

    let st = status(&e, &a, &s);
    assert!(st.encrypt_all);
    assert_eq!(st.active_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!((st.objects.plain, st.objects.sse_s3, st.objects.sse_c), (1, 1, 0));
    let [n] = &st.nodes[..] else { panic!("one node: {st:?}") };
    let raft = n.raft.as_ref().expect("metadata answers");
    assert!(raft.is_leader && raft.leader == Some(raft.node_id), "{raft:?}");
    assert_eq!(n.disks.len(), 6);
    assert!(n.disks.iter().all(|d| d.read_errors == 0 && d.write_errors == 0), "{n:?}");
    assert_eq!((n.repair.queued, n.repair.pending), (0, 0));
    let text = ok(hoard(&e, &a, &s, &["cluster", "status"]));
    assert_eq!(text, describe(&st));
    assert!(text.contains("every new write is encrypted"), "{text}");
    assert!(text.contains(&format!("node {}:             leader", raft.node_id)), "{text}");
    assert!(text.contains(&format!("{}: 0 read errors", n.disks[5].path)), "{text}");
    assert!(!text.contains(&hex::encode([0x61u8; 32])[..16]), "status never shows a key: {text}");
    ok(hoard(&e, &a, &s, &["cluster", "encrypt"])); // enabling twice is harmless
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_rewraps_every_data_key_and_resumes_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let old_key = key_file(dir.path(), "old.key", 0x01);
    let new_key = key_file(dir.path(), "new.key", 0x02);
    let data_dir = dir.path().join("data");
    let mut node = HoardProcess::start(&data_dir, &["--master-key-file", &old_key, "--fault-injection"]).unwrap();
    let e = node.endpoint();
    let c = node.client();
    c.create_bucket().bucket("vault").send().await.unwrap();

    // 300 small SSE-S3 objects (5 batches of the walk), one of several blocks, one plain, and an
    // SSE-S3 multipart upload in progress.
    const SMALL: usize = 300;
    let puts = (0..SMALL).map(|i| {
        let c = c.clone();
        async move {
            let body = ByteStream::from(pattern(i as u64, 100 + i));
            let sse = ServerSideEncryption::Aes256;
            c.put_object().bucket("vault").key(format!("o{i:03}")).server_side_encryption(sse).body(body).send().await
        }
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    let big = pattern(99, 3 * 1024 * 1024 + 7);
    let sse = ServerSideEncryption::Aes256;
    let put = c.put_object().bucket("vault").key("big").server_side_encryption(sse.clone());
    put.body(ByteStream::from(big.clone())).send().await.unwrap();
    c.put_object().bucket("vault").key("plain").body(ByteStream::from_static(b"plain")).send().await.unwrap();
    let upload = c.create_multipart_upload().bucket("vault").key("mp").server_side_encryption(sse).send().await;
    let upload_id = upload.unwrap().upload_id().unwrap().to_string();
    let part1 = pattern(5, 5 * 1024 * 1024);
    let up = c.upload_part().bucket("vault").key("mp").upload_id(&upload_id).part_number(1);
    let p1 = up.body(ByteStream::from(part1.clone())).send().await.unwrap();

    // Two SSE-S3 versions of one key of a versioned bucket, both noncurrent under a delete marker.
    c.create_bucket().bucket("history").send().await.unwrap();
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning().bucket("history").versioning_configuration(on).send().await.unwrap();
    let mut versions = Vec::new();
    for n in 0..2u8 {
        let put = c.put_object().bucket("history").key("doc").server_side_encryption(ServerSideEncryption::Aes256);
        let out = put.body(ByteStream::from(vec![n; 3000])).send().await.unwrap();
        versions.push(out.version_id().unwrap().to_string());
    }
    c.delete_object().bucket("history").key("doc").send().await.unwrap();
    const SEALED: u64 = SMALL as u64 + 4;

    let before = status(&e, ACCESS_KEY, SECRET_KEY);
    let old_id = before.configured_key_id.clone().unwrap();
    assert_eq!(before.objects.sse_s3_by_key.get(&old_id), Some(&SEALED), "objects, versions and the upload");
    assert_eq!((before.objects.noncurrent_versions, before.objects.delete_markers), (2, 1));

    // Slow the walk down so the kill lands half-way, then start the rotation.
    ok(hoard(&e, ACCESS_KEY, SECRET_KEY, &["debug", "fault", "arm", "rotation.batch", "stall:300"]));
    let said = ok(hoard(
        &e,
        ACCESS_KEY,
        SECRET_KEY,
        &["cluster", "rotate-key", "--new-master-key-file", &new_key, "--no-wait"],
    ));
    assert!(said.contains("rotation:           running"), "{said}");
    let new_id = loop {
        let st = status(&e, ACCESS_KEY, SECRET_KEY);
        let r = st.rotation.expect("the rotation is recorded");
        assert!(!r.finished, "the walk must still be running when the node is killed");
        if r.rewrapped > 0 {
            break r.to_key_id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(new_id, old_id);
    node.kill9();

    // Restarted with its old configuration: the KeyKeeper loads the rotation's key file from metadata
    // and the walk goes on from its last committed batch.
    node.restart().unwrap();
    let c = node.client();
    // Reads go on during the walk, whichever key a record is wrapped under at the moment.
    assert_eq!(get(&c, "vault", "o299").await, pattern(299, 399));
    assert_eq!(get(&c, "vault", "big").await, big);
    let finished = loop {
        let st = status(&e, ACCESS_KEY, SECRET_KEY);
        if st.rotation.as_ref().is_some_and(|r| r.finished) {
            break st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let r = finished.rotation.clone().unwrap();
    assert_eq!(finished.objects.sse_s3_by_key, [(new_id.clone(), SEALED)].into(), "every version too");
    assert_eq!((r.done, r.total), (SEALED, SEALED));
    assert!(r.rewrapped >= SEALED, "every data key was rewrapped at least once: {r:?}");
    assert_eq!(finished.active_key_id.as_deref(), Some(new_id.as_str()));

    // Afterwards the old key can go: the node runs on the new key alone and every object reads.
    std::fs::remove_file(&old_key).unwrap();
    node.extra_args = vec!["--master-key-file".into(), new_key.clone()];
    node.restart().unwrap();
    let c = node.client();
    for i in (0..SMALL).step_by(37) {
        assert_eq!(get(&c, "vault", &format!("o{i:03}")).await, pattern(i as u64, 100 + i));
    }
    assert_eq!(get(&c, "vault", "big").await, big);
    assert_eq!(get(&c, "vault", "plain").await, b"plain");
    for (n, version) in versions.iter().enumerate() {
        let got = c.get_object().bucket("history").key("doc").version_id(version).send().await.unwrap();
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.to_vec(), vec![n as u8; 3000], "noncurrent version {n} reads under the new key alone");
    }
    let up = c.upload_part().bucket("vault").key("mp").upload_id(&upload_id).part_number(2);
    let part2 = pattern(6, 1000);
    let p2 = up.body(ByteStream::from(part2.clone())).send().await.unwrap();
    let parts = vec![
        CompletedPart::builder().part_number(1).e_tag(p1.e_tag().unwrap()).build(),
        CompletedPart::builder().part_number(2).e_tag(p2.e_tag().unwrap()).build(),
    ];
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    c.complete_multipart_upload()
        .bucket("vault")
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "vault", "mp").await, [part1, part2].concat(), "a part sealed before the rotation");

    // The rotation's key file swapped for the node's own configured key: the configured key stays held
    // (and is not taken for the rotation's target), the target is missing and said to be.
    let old_key = key_file(dir.path(), "old.key", 0x01);
    std::fs::write(&new_key, [0x01; 32]).unwrap();
    node.extra_args = vec!["--master-key-file".into(), old_key];
    node.restart().unwrap();
    let swapped = status(&e, ACCESS_KEY, SECRET_KEY);
    assert_eq!(swapped.configured_key_id.as_deref(), Some(old_id.as_str()));
    assert_eq!(swapped.held_key_ids, vec![old_id.clone()], "the configured key is held, the missing target is not");
    let c = node.client();
    let err = c.get_object().bucket("vault").key("o000").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500), "{err:?}");
    assert!(err.message().unwrap_or_default().contains(&new_id), "{err:?}");

    // A node holding neither key refuses loudly, naming the key id, and never returns ciphertext.
    let stranger = key_file(dir.path(), "stranger.key", 0x03);
    std::fs::remove_file(&new_key).unwrap();
    node.extra_args = vec!["--master-key-file".into(), stranger];
    node.restart().unwrap();
    let c = node.client();
    let err = c.get_object().bucket("vault").key("big").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500), "{err:?}");
    let message = err.message().unwrap_or_default().to_string();
    assert!(message.contains(&new_id), "the error names the missing key id: {message}");
    assert_eq!(get(&c, "vault", "plain").await, b"plain");
}
