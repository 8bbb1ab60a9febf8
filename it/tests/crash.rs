//! Crashes at every step of a write: a panicking session or pool worker, failing shard writes, and
//! `kill -9` of a real `hoard` process in the middle of large uploads.
//!
//! What these tests hold hoard to (DESIGN.md §3, step 5-6): the metadata commit is the only commit point, so
//! a crash before it leaves no object and no partial one; an acknowledged write is never lost; the supervisor
//! restarts what crashed and the node keeps serving; scrub removes the orphaned shard files.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use hoard::Fault;
use hoard_it::client;
use hoard_it::eventually;
use hoard_it::get;
use hoard_it::md5_hex;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::HoardProcess;
use hoard_it::TestNode;
use rand::Rng;
use rand::SeedableRng;
use tokio::sync::watch;

const MIB: usize = 1024 * 1024;

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Bytes in unfinished (temp) shard files: how much of an upload in flight has reached the disks.
fn unfinished_bytes(disks: &[PathBuf]) -> u64 {
    hoard_it::files_under(disks).into_iter().filter(|(n, _, _)| n.ends_with(".tmp")).map(|(_, _, l)| l).sum()
}

fn process_disks(data_dir: &Path) -> Vec<PathBuf> {
    (1..=6).map(|i| data_dir.join(format!("disk{i}"))).collect()
}

async fn assert_reads(c: &aws_sdk_s3::Client, bucket: &str, key: &str, want: &[u8]) {
    let got = get(c, bucket, key).await;
    assert_eq!(got.len(), want.len(), "length of {bucket}/{key}");
    assert_eq!(md5_hex(&got), md5_hex(want), "content of {bucket}/{key}");
}

async fn assert_absent(c: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    let err = c.head_object().bucket(bucket).key(key).send().await.expect_err("no object");
    assert_eq!(status(&err), Some(404), "HEAD {bucket}/{key}: {err:?}");
    let listed = c.list_objects_v2().bucket(bucket).send().await.unwrap();
    assert!(listed.contents().iter().all(|o| o.key() != Some(key)), "{key} is not listed");
}

/// After a crash the key is either absent or the whole object: never a partial one.
/// Returns whether it was present.
async fn assert_absent_or_complete(c: &aws_sdk_s3::Client, bucket: &str, key: &str, want: &[u8]) -> bool {
    match c.head_object().bucket(bucket).key(key).send().await {
        Err(e) => {
            assert_eq!(status(&e), Some(404), "HEAD {bucket}/{key} after the crash: {e:?}");
            false
        }
        Ok(head) => {
            assert_eq!(head.content_length(), Some(want.len() as i64), "a present {key} has its full size");
            assert_reads(c, bucket, key, want).await;
            true
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_panic_mid_put_leaves_no_object_and_scrub_removes_orphans() {
    let node = TestNode::builder().fault_injection(true).scrub_grace(Duration::ZERO).start().await.unwrap();
    let c = no_retry(client(&node));
    c.create_bucket().bucket("crash").send().await.unwrap();
    let present = pattern(1, 12_345);
    put(&c, "crash", "present", &present).await;

    for (i, point) in ["put.before_commit", "put.after_shards"].into_iter().enumerate() {
        let key = format!("never-{i}");
        let before = hoard_it::shard_files(&node.disk_paths());
        let failures = node.stats().s3.temporary_failures.load(Ordering::Relaxed);
        node.faults().arm(point, Fault::Panic);
        let data = pattern(10 + i as u64, 2 * MIB + 5);
        let err = c
            .put_object()
            .bucket("crash")
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect_err("the session panicked");
        assert!(status(&err).is_some_and(|s| (500..600).contains(&s)), "{point}: a 5xx, got {err:?}");
        node.faults().disarm(point);
        eventually("s3_sup counts the session's panic", || {
            node.stats().s3.temporary_failures.load(Ordering::Relaxed) > failures
        })
        .await;
        assert_absent(&c, "crash", &key).await;

        // The shard files were written before the panic; nothing references them.
        let after = hoard_it::shard_files(&node.disk_paths());
        let orphans: Vec<PathBuf> =
            after.iter().filter(|(s, _)| !before.contains_key(*s)).flat_map(|(_, f)| f.values().cloned()).collect();
        assert_eq!(orphans.len(), 6, "{point}: the failed PUT left one segment's six shard files");

        // The node keeps serving.
        let next = pattern(20 + i as u64, 300_000);
        put(&c, "crash", &format!("after-{i}"), &next).await;
        assert_reads(&c, "crash", &format!("after-{i}"), &next).await;

        let report = node.scrub_now().await.unwrap();
        assert!(report.orphans_deleted >= 6, "{point}: {report:?}");
        assert_eq!(report.damaged_shards, 0, "{report:?}");
        for p in &orphans {
            assert!(!p.exists(), "{point}: orphan {} is deleted", p.display());
        }
        assert_absent(&c, "crash", &key).await;
        assert_reads(&c, "crash", &format!("after-{i}"), &next).await;
    }
    assert_reads(&c, "crash", "present", &present).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_worker_panic_is_restarted() {
    let node = TestNode::builder().fault_injection(true).start().await.unwrap();
    let c = no_retry(client(&node));
    c.create_bucket().bucket("ec-pool").send().await.unwrap();
    let restarts = node.stats().pools.restarts.load(Ordering::Relaxed);
    node.faults().arm_times("ec.encode", Fault::Panic, Some(1));
    let data = pattern(30, 2 * MIB + 1);
    let err = c
        .put_object()
        .bucket("ec-pool")
        .key("during-panic")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect_err("the EC worker panicked under this PUT");
    assert!(status(&err).is_some_and(|s| (500..600).contains(&s)), "a 5xx, got {err:?}");
    eventually("pool_sup restarts the EC worker", || node.stats().pools.restarts.load(Ordering::Relaxed) > restarts)
        .await;
    assert_absent(&c, "ec-pool", "during-panic").await;

    // A few attempts at most: the restarted worker is in its slot once the restart is counted.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match c.put_object().bucket("ec-pool").key("after-panic").body(ByteStream::from(data.clone())).send().await {
            Ok(_) => break,
            Err(e) => {
                assert!(status(&e).is_some_and(|s| (500..600).contains(&s)), "{e:?}");
                assert!(attempts < 3, "PUT still fails after the worker was restarted: {e:?}");
            }
        }
    }
    assert_reads(&c, "ec-pool", "after-panic", &data).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_write_errors_within_parity_still_commit() {
    let node = TestNode::builder().fault_injection(true).start().await.unwrap();
    let c = no_retry(client(&node));
    c.create_bucket().bucket("shard-writes").send().await.unwrap();
    let write_errors =
        || -> u64 { node.context().shards.iter().map(|s| s.stats.write_errors.load(Ordering::Relaxed)).sum() };
    let errors_before = write_errors();
    let rebuilt_before = node.repair_stats().shards_rebuilt.load(Ordering::Relaxed);
    let before = hoard_it::shard_files(&node.disk_paths());

    // Two failed shard writes leave four of six: exactly the write quorum of 4+2.
    node.faults().arm_times("shard.write", Fault::Error, Some(2));
    let data = pattern(40, 3 * MIB + 777);
    put(&c, "shard-writes", "degraded", &data).await;
    assert!(node.faults().list().is_empty(), "both armed shard write errors fired");
    assert_eq!(write_errors() - errors_before, 2, "two shard writes failed");
    assert_reads(&c, "shard-writes", "degraded", &data).await;

    node.repair_idle().await.unwrap();
    let after = hoard_it::shard_files(&node.disk_paths());
    let added: Vec<_> = after.iter().filter(|(s, _)| !before.contains_key(*s)).collect();
    assert_eq!(added.len(), 1, "one segment: {added:?}");
    assert_eq!(added[0].1.len(), 6, "repair rebuilt the two missing shard files: {:?}", added[0].1);
    // At least the two failed shards; the degraded read above may have reported them once more.
    let rebuilt = node.repair_stats().shards_rebuilt.load(Ordering::Relaxed) - rebuilt_before;
    assert!(rebuilt >= 2, "rebuilt {rebuilt} shards");
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 0, "{report:?}");
    assert_reads(&c, "shard-writes", "degraded", &data).await;

    // Three failures are one more than parity allows: the PUT is refused and nothing is visible.
    node.faults().arm_times("shard.write", Fault::Error, Some(3));
    let err = c
        .put_object()
        .bucket("shard-writes")
        .key("refused")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect_err("below the write quorum");
    assert!(status(&err).is_some_and(|s| (500..600).contains(&s)), "a 5xx, got {err:?}");
    node.faults().disarm_all();
    assert_absent(&c, "shard-writes", "refused").await;
    node.stop().await;
}

/// Waits until an upload in flight has put at least `bytes` into unfinished shard files, or fails if
/// `upload` ended first.
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
async fn wait_for_unfinished_bytes<T>(disks: &[PathBuf], bytes: u64, upload: &tokio::task::JoinHandle<T>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while unfinished_bytes(disks) < bytes {
        assert!(!upload.is_finished(), "the upload ended before {bytes} bytes reached the disks");
        assert!(Instant::now() < deadline, "the upload never reached {bytes} bytes on disk");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_100mib_upload_leaves_key_absent_or_complete() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut hoard = HoardProcess::start(&data_dir, &[]).unwrap();
    let disks = process_disks(&data_dir);
    let c = no_retry(hoard.client());
    c.create_bucket().bucket("big").send().await.unwrap();
    let data = Bytes::from(pattern(50, 100 * MIB));

    // One streamed PutObject, killed once about 10 MiB of it are on the disks.
    let upload = {
        let (c, body) = (c.clone(), data.clone());
        tokio::spawn(
            async move { c.put_object().bucket("big").key("single").body(ByteStream::from(body)).send().await },
        )
    };
    wait_for_unfinished_bytes(&disks, 15 * MIB as u64, &upload).await;
    tokio::task::block_in_place(|| hoard.kill9());
    assert!(upload.await.unwrap().is_err(), "a PUT whose server was killed mid-body cannot have succeeded");
    tokio::task::block_in_place(|| hoard.restart()).unwrap();
    let c = no_retry(hoard.client());
    let present = assert_absent_or_complete(&c, "big", "single", &data).await;
    assert!(!present, "the server died with 90 MiB of the body unsent");

    // A multipart upload of ten 10 MiB parts, killed while parts are in flight.
    let upload_id = c.create_multipart_upload().bucket("big").key("multi").send().await.unwrap().upload_id.unwrap();
    let part = |n: usize| data.slice((n - 1) * 10 * MIB..n * 10 * MIB);
    let acked: Arc<Mutex<BTreeMap<i32, String>>> = Arc::default();
    let (acked_tx, mut acked_rx) = watch::channel(0usize);
    let uploader = {
        let (c, acked, upload_id) = (c.clone(), acked.clone(), upload_id.clone());
        let parts: Vec<(i32, Bytes)> = (1..=10).map(|n| (n as i32, part(n))).collect();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut parts = parts.into_iter();
            loop {
                while set.len() < 2 {
                    let Some((n, body)) = parts.next() else { break };
                    let (c, id) = (c.clone(), upload_id.clone());
                    set.spawn(async move {
                        let r = c
                            .upload_part()
                            .bucket("big")
                            .key("multi")
                            .upload_id(id)
                            .part_number(n)
                            .body(ByteStream::from(body))
                            .send()
                            .await;
                        (n, r)
                    });
                }
                let Some(done) = set.join_next().await else { return };
                match done.unwrap() {
                    (n, Ok(out)) => {
                        acked.lock().unwrap().insert(n, out.e_tag.unwrap());
                        acked_tx.send_modify(|k| *k += 1);
                    }
                    (_, Err(_)) => {
                        set.abort_all();
                        return;
                    }
                }
            }
        })
    };
    acked_rx.wait_for(|n| *n >= 4).await.expect("four parts acknowledged before the uploader stopped");
    tokio::task::block_in_place(|| hoard.kill9());
    uploader.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < 10, "the kill interrupted the part uploads");
    tokio::task::block_in_place(|| hoard.restart()).unwrap();
    let c = no_retry(hoard.client());
    assert_absent(&c, "big", "multi").await;
    // Every acknowledged part survived, with its ETag.
    let listed = c.list_parts().bucket("big").key("multi").upload_id(&upload_id).send().await.unwrap();
    let listed: BTreeMap<i32, String> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.e_tag().unwrap().to_string()))
        .filter(|(n, _)| acked.contains_key(n))
        .collect();
    assert_eq!(listed, acked, "acknowledged parts survive kill -9");

    let mut etags = acked.clone();
    let missing: Vec<usize> = (1..=10).filter(|n| !acked.contains_key(&(*n as i32))).collect();
    for n in missing {
        let out = c
            .upload_part()
            .bucket("big")
            .key("multi")
            .upload_id(&upload_id)
            .part_number(n as i32)
            .body(ByteStream::from(part(n)))
            .send()
            .await
            .unwrap();
        etags.insert(n as i32, out.e_tag.unwrap());
    }
    let completion = CompletedMultipartUpload::builder()
        .set_parts(Some(etags.iter().map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(e).build()).collect()))
        .build();
    // Completion interrupted: the kill races the CompleteMultipartUpload request.
    let complete = {
        let (c, id, completion) = (c.clone(), upload_id.clone(), completion.clone());
        tokio::spawn(async move {
            c.complete_multipart_upload()
                .bucket("big")
                .key("multi")
                .upload_id(id)
                .multipart_upload(completion)
                .send()
                .await
        })
    };
    tokio::task::yield_now().await;
    tokio::task::block_in_place(|| hoard.kill9());
    let acknowledged = complete.await.unwrap().is_ok();
    tokio::task::block_in_place(|| hoard.restart()).unwrap();
    let c = no_retry(hoard.client());
    let present = assert_absent_or_complete(&c, "big", "multi", &data).await;
    assert!(present || !acknowledged, "an acknowledged completion survives kill -9");
    let uploads = c.list_multipart_uploads().bucket("big").send().await.unwrap();
    let open: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.upload_id()).collect();
    if present {
        assert!(open.is_empty(), "a completed upload is gone: {open:?}");
    } else {
        // Not completed: the upload is intact and completes now.
        assert_eq!(open, [upload_id.as_str()]);
        c.complete_multipart_upload()
            .bucket("big")
            .key("multi")
            .upload_id(&upload_id)
            .multipart_upload(completion)
            .send()
            .await
            .unwrap();
        assert!(assert_absent_or_complete(&c, "big", "multi", &data).await, "completed after the restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_kill9() {
    const OBJECTS: usize = 200;
    const IN_FLIGHT: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut hoard = HoardProcess::start(&data_dir, &[]).unwrap();
    let c = no_retry(hoard.client());
    c.create_bucket().bucket("acks").send().await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let sizes: Vec<usize> = (0..OBJECTS).map(|_| rng.gen_range(1024..=300 * 1024)).collect();
    let object = |i: usize| pattern(1000 + i as u64, sizes[i]);

    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let failed: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, mut acked_rx) = watch::channel(0usize);
    let writer = {
        let (c, acked, failed, stop) = (c.clone(), acked.clone(), failed.clone(), stop.clone());
        let bodies: Vec<Vec<u8>> = (0..OBJECTS).map(object).collect();
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut next = bodies.into_iter().enumerate();
            loop {
                while set.len() < IN_FLIGHT && !stop.load(Ordering::SeqCst) {
                    let Some((i, body)) = next.next() else { break };
                    let c = c.clone();
                    set.spawn(async move {
                        let r = c
                            .put_object()
                            .bucket("acks")
                            .key(format!("obj-{i:03}"))
                            .body(ByteStream::from(body))
                            .send()
                            .await;
                        (i, r.is_ok())
                    });
                }
                let Some(done) = set.join_next().await else { return };
                let (i, ok) = done.unwrap();
                if ok {
                    acked.lock().unwrap().push(i);
                    acked_tx.send_modify(|n| *n += 1);
                } else {
                    failed.lock().unwrap().push(i);
                }
            }
        })
    };
    acked_rx.wait_for(|n| *n >= OBJECTS / 3).await.expect("a third of the PUTs acknowledged");
    tokio::task::block_in_place(|| hoard.kill9());
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    assert!(!failed.is_empty(), "PUTs were in flight when the process was killed");
    assert!(acked.len() < OBJECTS, "the kill came before the last PUT");

    tokio::task::block_in_place(|| hoard.restart()).unwrap();
    let c = no_retry(hoard.client());
    for &i in &acked {
        assert_reads(&c, "acks", &format!("obj-{i:03}"), &object(i)).await;
    }
    // PUTs cut off by the kill left nothing, or the whole object.
    for &i in &failed {
        assert_absent_or_complete(&c, "acks", &format!("obj-{i:03}"), &object(i)).await;
    }
    let listed = c.list_objects_v2().bucket("acks").max_keys(1000).send().await.unwrap();
    assert!(listed.contents().len() >= acked.len(), "every acknowledged object is listed");
}

/// The metadata actor's supervisor restarts it on the same store: what was committed before is there, and
/// writes work again once the new Raft instance leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_meta_actor_is_restarted_on_the_same_store() {
    let node = hoard_it::TestNode::builder().start().await.unwrap();
    let c = hoard_it::client(&node);
    c.create_bucket().bucket("meta-restart").send().await.unwrap();
    let before = hoard_it::pattern(77, 40_000);
    c.put_object().bucket("meta-restart").key("before").body(before.clone().into()).send().await.unwrap();

    let meta = node.context().meta.slot.get().unwrap();
    let old_id = meta.get_id();
    meta.get_cell().kill();

    // The restart happens on the supervisor's task; nothing signals its end to a client, so poll with a bound.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let current = node.context().meta.slot.get().map(|r| r.get_id());
        if current.is_ok_and(|id| id != old_id) {
            let put = c.put_object().bucket("meta-restart").key("after").body(b"after".to_vec().into()).send().await;
            if put.is_ok() {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "meta was not restarted in time");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(node.stats().meta.restarts.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let got = c.get_object().bucket("meta-restart").key("before").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), &before[..]);
    let got = c.get_object().bucket("meta-restart").key("after").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"after");
    node.stop().await;
}

/// A node holding a master key, with fault injection, and a bucket.
async fn encrypted_node(dir: &Path, bucket: &str) -> (TestNode, aws_sdk_s3::Client) {
    let key = dir.join("master.key");
    std::fs::write(&key, [0x4b; 32]).unwrap();
    let node = TestNode::builder().master_key_file(&key).fault_injection(true).start().await.unwrap();
    let c = no_retry(client(&node));
    c.create_bucket().bucket(bucket).send().await.unwrap();
    (node, c)
}

async fn put_sse_s3(c: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> Result<(), u16> {
    let sse = aws_sdk_s3::types::ServerSideEncryption::Aes256;
    let put = c.put_object().bucket(bucket).key(key).server_side_encryption(sse);
    match put.body(ByteStream::from(data.to_vec())).send().await {
        Ok(_) => Ok(()),
        Err(e) => Err(status(&e).unwrap_or_else(|| panic!("no HTTP answer: {e:?}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryptor_worker_panic_mid_put_commits_nothing_and_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = encrypted_node(dir.path(), "sealed").await;
    let restarts = node.stats().pools.restarts.load(Ordering::Relaxed);
    node.faults().arm_times("encryptor.seal", Fault::Panic, Some(1));
    let data = pattern(31, 3 * MIB + 5);
    let code = put_sse_s3(&c, "sealed", "during-panic", &data).await.expect_err("the sealing worker panicked");
    assert!((500..600).contains(&code), "a 5xx, got {code}");
    eventually("pool_sup restarts the encryptor worker", || {
        node.stats().pools.restarts.load(Ordering::Relaxed) > restarts
    })
    .await;
    assert_absent(&c, "sealed", "during-panic").await;

    let mut attempts = 0;
    while let Err(code) = put_sse_s3(&c, "sealed", "after-panic", &data).await {
        attempts += 1;
        assert!((500..600).contains(&code) && attempts < 3, "PUT still fails after the restart: {code}");
    }
    assert_reads(&c, "sealed", "after-panic", &data).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_keeper_panic_mid_put_is_503_until_it_restarts_with_its_key_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = encrypted_node(dir.path(), "keys").await;
    let before = pattern(32, 2 * MIB + 9);
    put_sse_s3(&c, "keys", "before", &before).await.unwrap();
    put(&c, "keys", "plain", b"plain bytes").await;

    let restarts = node.stats().node.restarts.load(Ordering::Relaxed);
    // The KeyKeeper panics while wrapping this PUT's data key; its restart then stalls in loading its keys,
    // which holds the window in which it is down open for the requests below.
    node.faults().arm_times("key_keeper.start", Fault::Stall(Duration::from_secs(3)), Some(1));
    node.faults().arm_times("key_keeper.wrap", Fault::Panic, Some(1));
    let code = put_sse_s3(&c, "keys", "during", &before).await.expect_err("the KeyKeeper panicked under this PUT");
    assert_eq!(code, 503);
    // While it is down, encrypted requests fail with 503: never plaintext, never ciphertext.
    let err = c.get_object().bucket("keys").key("before").send().await.expect_err("no key to open it with");
    assert_eq!(status(&err), Some(503));
    assert_eq!(put_sse_s3(&c, "keys", "during-2", b"x").await, Err(503));
    assert_eq!(get(&c, "keys", "plain").await, b"plain bytes", "plaintext objects are still served");

    eventually("node_sup restarts the KeyKeeper", || node.stats().node.restarts.load(Ordering::Relaxed) > restarts)
        .await;
    assert_reads(&c, "keys", "before", &before).await;
    assert_absent(&c, "keys", "during").await;
    assert_absent(&c, "keys", "during-2").await;
    put_sse_s3(&c, "keys", "after", &before).await.unwrap();
    assert_reads(&c, "keys", "after", &before).await;
    node.stop().await;
}
