//! Durability of a node: lost disk directories, bit rot, restarts, garbage, and disks known by their markers.
//!
//! What these tests hold hoard to (DESIGN.md §3-4):
//! - 4+2 coding reads every object byte-identical with any two of the six disks gone, and repair makes the
//!   object tolerate two more losses again.
//! - A piece whose CRC fails is never used: up to two damaged pieces per block are read around; three make
//!   the read fail, never return other bytes.
//! - Buckets, objects (with their metadata) and in-progress multipart uploads survive a restart.
//! - Scrub deletes the shard files of overwritten and deleted objects.

use hoard_actors::metrics::NodeHealth;
use hoard_actors::INLINE_MAX;
use hoard_it::Shards;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io::Read;
use std::io::Seek;
use std::io::SeekFrom;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use hoard::Fault;
use hoard_it::client;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::TestNode;

const MIB: usize = 1024 * 1024;
/// Every test node codes 4+2 in 1 MiB blocks.
const DATA_SHARDS: usize = 4;
const BLOCK_SIZE: usize = MIB;
/// Shard file layout, version 1: a 64-byte header, then per block its piece and a 4-byte CRC32C.
const HEADER_LEN: u64 = 64;
const CRC_LEN: u64 = 4;

/// A grace period longer than any test: repairs that reads set off may still be writing their temp files when
/// a test scrubs, and scrub deletes unfinished files older than the grace period.
const REPAIR_SAFE_GRACE: Duration = Duration::from_secs(3600);

/// The segments that appeared between two listings.
fn new_segments(before: &BTreeMap<String, Shards>, after: &BTreeMap<String, Shards>) -> Vec<(String, Shards)> {
    after.iter().filter(|(s, _)| !before.contains_key(*s)).map(|(s, f)| (s.clone(), f.clone())).collect()
}

/// PUTs `data` and returns the shard files of the one segment it created.
async fn put_tracked(node: &TestNode, bucket: &str, key: &str, data: &[u8]) -> Shards {
    let before = hoard_it::shard_files(&node.disk_paths());
    put(&client(node), bucket, key, data).await;
    let mut added = new_segments(&before, &hoard_it::shard_files(&node.disk_paths()));
    assert_eq!(added.len(), 1, "one PUT of {key} makes one segment, got {added:?}");
    let (_, shards) = added.remove(0);
    assert_eq!(shards.len(), 6, "every shard of {key} is written: {shards:?}");
    shards
}

use hoard_it::put;

/// The whole body of `bucket/key`, or why it could not be read (a refused GET or a body cut short).
async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str, range: Option<&str>) -> Result<Vec<u8>, String> {
    let out = c.get_object().bucket(bucket).key(key).set_range(range.map(String::from)).send().await;
    match out {
        Ok(o) => o.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| format!("body: {e:?}")),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Asserts that `bucket/key` reads back exactly `want` (compared by MD5 so a failure prints short).
async fn assert_reads(c: &aws_sdk_s3::Client, bucket: &str, key: &str, want: &[u8]) {
    let got = get(c, bucket, key, None).await.unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e}"));
    assert_eq!(got.len(), want.len(), "length of {bucket}/{key}");
    assert_eq!(md5_hex(&got), md5_hex(want), "content of {bucket}/{key}");
}

/// Byte offset of block `block`'s piece in a shard file of 1 MiB blocks coded 4+2 (all earlier blocks full).
fn piece_offset(block: u64) -> u64 {
    let piece = BLOCK_SIZE.div_ceil(DATA_SHARDS) as u64;
    HEADER_LEN + block * (piece + CRC_LEN)
}

/// Flips one byte in the middle of block `block`'s piece of a shard file (whose block is `block_len` bytes).
fn rot(shard: &Path, block: u64, block_len: usize) {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(shard).expect("open shard file");
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).expect("read shard header");
    assert_eq!(&magic, b"HOARDSHD", "{} is a shard file", shard.display());
    let at = piece_offset(block) + (block_len.div_ceil(DATA_SHARDS) / 2) as u64;
    assert!(at < f.metadata().unwrap().len(), "block {block} lies inside {}", shard.display());
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
    f.sync_all().unwrap();
}

fn count_shard_files(disk: &Path) -> usize {
    hoard_it::shard_files(&[disk.to_path_buf()]).values().map(|s| s.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_survives_loss_of_two_whole_disk_directories() {
    let node = TestNode::builder().scrub_grace(REPAIR_SAFE_GRACE).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("durable").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = [
        ("big", 10 * MIB),
        ("block-and-a-bit", MIB + 1),
        ("exact-block", MIB),
        ("small", 4321),
        ("one-byte", 1),
        ("empty", 0),
    ]
    .iter()
    .enumerate()
    .map(|(i, (k, len))| (k.to_string(), pattern(100 + i as u64, *len)))
    .collect();
    for (k, data) in &objects {
        put(&c, "durable", k, data).await;
    }
    let disks = node.disk_paths();
    assert_eq!(disks.len(), 6);
    let segments = hoard_it::shard_files(&disks).len();
    let coded = objects.iter().filter(|(_, d)| d.len() > INLINE_MAX).count();
    assert_eq!(segments, coded, "one segment per object larger than the inline bound; the rest live in metadata");

    for lost in &disks[1..3] {
        std::fs::remove_dir_all(lost).unwrap();
    }
    for (k, data) in &objects {
        assert_reads(&c, "durable", k, data).await;
    }

    // Scrub finds every missing shard and repair rebuilds them. The reads above reported the data shards they
    // missed, so repair may already have rebuilt some or all of them by the time scrub looks.
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.segments_checked, segments as u64, "{report:?}");
    assert!(
        report.damaged_shards <= 2 * segments as u64,
        "two shards of every segment are gone, some perhaps already rebuilt: {report:?}"
    );
    node.repair_idle().await.unwrap();
    for lost in &disks[1..3] {
        assert_eq!(count_shard_files(lost), segments, "{} holds one shard of every segment again", lost.display());
    }
    let rebuilt = node.repair_stats().shards_rebuilt.load(Ordering::Relaxed);
    assert!(rebuilt >= 2 * segments as u64, "rebuilt {rebuilt} shards; first scrub: {report:?}");
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 0, "repair left nothing damaged: {report:?}");

    // Redundancy is back: two other disks can go.
    for lost in [&disks[0], &disks[4]] {
        std::fs::remove_dir_all(lost).unwrap();
    }
    for (k, data) in &objects {
        assert_reads(&c, "durable", k, data).await;
    }
    node.stop().await;
}

/// Damage repair could not rebuild before the node stopped is remembered: the restarted node rebuilds it with no
/// read or scrub to find it again, and the queue is empty afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_repairs_are_picked_up_after_a_restart() {
    let mut node = TestNode::builder().fault_injection(true).scrub_grace(REPAIR_SAFE_GRACE).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("queued").send().await.unwrap();
    let data = pattern(77, 3 * MIB + 5);
    let shards = put_tracked(&node, "queued", "obj", &data).await;
    let lost = shards[&0].clone();
    std::fs::remove_file(&lost).unwrap();

    node.faults().arm("repair.rebuild", Fault::Error);
    assert_reads(&c, "queued", "obj", &data).await;
    node.repair_idle().await.unwrap();
    assert_eq!(node.repair_stats().failures.load(Ordering::Relaxed), 1, "the read reported the lost shard");
    assert!(!lost.exists(), "no rebuild while repair.rebuild fails");
    let queued = node.context().meta.local().unwrap().repair_queue().all().unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].shards, [0]);
    let health = NodeHealth::read(node.context()).await;
    assert_eq!((health.repair.queued, health.repair.pending), (1, 0), "failed, so queued for the next start");

    // A second loss in the same segment: its report adds to the queued damage instead of replacing it, and
    // the pass it starts takes both shards (and fails again).
    let second = shards[&1].clone();
    std::fs::remove_file(&second).unwrap();
    assert_reads(&c, "queued", "obj", &data).await;
    node.repair_idle().await.unwrap();
    assert_eq!(node.repair_stats().failures.load(Ordering::Relaxed), 2);
    let queued = node.context().meta.local().unwrap().repair_queue().all().unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].shards, [0, 1]);

    node.faults().disarm("repair.rebuild");
    node.restart().await.unwrap();
    node.repair_idle().await.unwrap();
    assert!(lost.exists(), "the restarted node rebuilt {}", lost.display());
    assert!(second.exists(), "the restarted node rebuilt {}", second.display());
    assert_eq!(node.repair_stats().shards_rebuilt.load(Ordering::Relaxed), 2);
    assert_eq!(node.repair_stats().reports.load(Ordering::Relaxed), 0, "nothing read the object since the restart");
    assert!(node.context().meta.local().unwrap().repair_queue().all().unwrap().is_empty());
    let health = NodeHealth::read(node.context()).await;
    assert_eq!((health.repair.queued, health.repair.pending, health.repair.failures), (0, 0, 0));
    std::fs::remove_file(&shards[&1]).unwrap();
    std::fs::remove_file(&shards[&5]).unwrap();
    assert_reads(&c, "queued", "obj", &data).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrot_is_detected_and_never_returned() {
    let node = TestNode::builder().scrub_grace(REPAIR_SAFE_GRACE).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("rot").send().await.unwrap();

    // A: damage on two disks, at most two pieces per block: reads go around it.
    let a = pattern(1, 3 * MIB + 12345);
    let a_shards = put_tracked(&node, "rot", "a", &a).await;
    rot(&a_shards[&0], 0, MIB);
    rot(&a_shards[&0], 2, MIB);
    rot(&a_shards[&1], 1, MIB);
    rot(&a_shards[&1], 2, MIB);
    rot(&a_shards[&1], 3, 12345);
    // B: three damaged pieces in block 1: that block cannot be read.
    let b = pattern(2, 2 * MIB + 100);
    let b_shards = put_tracked(&node, "rot", "b", &b).await;
    for i in [0, 3, 5] {
        rot(&b_shards[&i], 1, MIB);
    }
    // C: damage on two disks that no read sees before scrub.
    let c_data = pattern(3, MIB + 7);
    let c_shards = put_tracked(&node, "rot", "c", &c_data).await;
    rot(&c_shards[&2], 0, MIB);
    rot(&c_shards[&5], 1, 7);

    assert_reads(&c, "rot", "a", &a).await;
    let tail = get(&c, "rot", "a", Some("bytes=2097000-")).await.expect("a range over damaged blocks reads");
    assert_eq!(md5_hex(&tail), md5_hex(&a[2_097_000..]), "range of a");

    match get(&c, "rot", "b", None).await {
        Ok(got) => panic!(
            "GET of an object with three damaged pieces in one block returned {} bytes ({})",
            got.len(),
            if got == b { "the right bytes, from damaged pieces?" } else { "WRONG BYTES" }
        ),
        Err(e) => assert!(!e.is_empty()),
    }
    match get(&c, "rot", "b", Some("bytes=1048576-1048675")).await {
        Ok(got) => {
            panic!("a range in the unreadable block returned {} bytes; equal: {}", got.len(), got == b[MIB..MIB + 100])
        }
        Err(e) => assert!(!e.is_empty()),
    }
    // Only the blocks a range touches are read: block 0 of B is intact.
    let head = get(&c, "rot", "b", Some("bytes=0-999")).await.expect("block 0 of b is readable");
    assert_eq!(head, b[..1000], "block 0 of b");

    // Scrub finds the damage of B and C (A may already be repaired after its read reported it).
    let report = node.scrub_now().await.unwrap();
    assert!((5..=7).contains(&report.damaged_shards), "damaged shards: B has 3, C 2, A 0 or 2: {report:?}");
    node.repair_idle().await.unwrap();
    assert!(node.repair_stats().shards_rebuilt.load(Ordering::Relaxed) >= 4, "A's and C's shards were rebuilt");
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 3, "only B, beyond repair, stays damaged: {report:?}");
    node.repair_idle().await.unwrap();

    // Repair restored redundancy: A and C survive losing two shards they had not lost before.
    std::fs::remove_file(&a_shards[&2]).unwrap();
    std::fs::remove_file(&a_shards[&4]).unwrap();
    assert_reads(&c, "rot", "a", &a).await;
    std::fs::remove_file(&c_shards[&0]).unwrap();
    std::fs::remove_file(&c_shards[&1]).unwrap();
    assert_reads(&c, "rot", "c", &c_data).await;
    // B is still refused, never served wrong.
    assert!(get(&c, "rot", "b", None).await.is_err(), "b stays unreadable");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_buckets_objects_and_multipart_uploads() {
    let mut node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    for b in ["keep-one", "keep-two", "keep-empty"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let small = pattern(7, 5000);
    let large = pattern(8, 3 * MIB + 3);
    c.put_object()
        .bucket("keep-one")
        .key("dir/small.txt")
        .content_type("text/plain")
        .metadata("colour", "blue")
        .metadata("owner", "it")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .unwrap();
    put(&c, "keep-two", "large.bin", &large).await;
    let part1 = pattern(9, 5 * MIB);
    let part2 = pattern(10, 1234);
    let upload = c
        .create_multipart_upload()
        .bucket("keep-one")
        .key("multi")
        .metadata("stage", "before-restart")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let p1 = c
        .upload_part()
        .bucket("keep-one")
        .key("multi")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(part1.clone()))
        .send()
        .await
        .unwrap();
    let p1_etag = p1.e_tag().unwrap().to_string();

    node.restart().await.unwrap();
    // A fresh client: keep-alive connections to the stopped node outlive it (its listener lets requests in
    // flight finish) and would be answered by the old node's front end.
    let c = client(&node);

    let buckets: BTreeSet<String> =
        c.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(String::from)).collect();
    for b in ["keep-one", "keep-two", "keep-empty"] {
        assert!(buckets.contains(b), "{b} survives the restart: {buckets:?}");
    }
    let head = c.head_object().bucket("keep-one").key("dir/small.txt").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.content_length(), Some(small.len() as i64));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"), "{meta:?}");
    assert_eq!(meta.get("owner").map(String::as_str), Some("it"), "{meta:?}");
    assert_reads(&c, "keep-one", "dir/small.txt", &small).await;
    assert_reads(&c, "keep-two", "large.bin", &large).await;
    let listed = c.list_objects_v2().bucket("keep-one").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/small.txt"], "the unfinished upload is not an object yet");

    let uploads = c.list_multipart_uploads().bucket("keep-one").send().await.unwrap();
    let ids: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, [upload_id.as_str()], "the upload survives the restart");
    let parts = c.list_parts().bucket("keep-one").key("multi").upload_id(&upload_id).send().await.unwrap();
    let listed: Vec<(i32, i64, &str)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or(0), p.size().unwrap_or(0), p.e_tag().unwrap_or("")))
        .collect();
    assert_eq!(listed, [(1, part1.len() as i64, p1_etag.as_str())]);

    let p2 = c
        .upload_part()
        .bucket("keep-one")
        .key("multi")
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from(part2.clone()))
        .send()
        .await
        .unwrap();
    let done = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(&p1_etag).build())
        .parts(CompletedPart::builder().part_number(2).e_tag(p2.e_tag().unwrap()).build())
        .build();
    c.complete_multipart_upload()
        .bucket("keep-one")
        .key("multi")
        .upload_id(&upload_id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    let whole = [part1, part2].concat();
    assert_reads(&c, "keep-one", "multi", &whole).await;
    let head = c.head_object().bucket("keep-one").key("multi").send().await.unwrap();
    assert_eq!(head.metadata().and_then(|m| m.get("stage")).map(String::as_str), Some("before-restart"));
    assert!(head.e_tag().unwrap_or("").ends_with("-2\""), "multipart ETag: {:?}", head.e_tag());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_deletes_garbage_of_overwritten_and_deleted_objects() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("gc-test").send().await.unwrap();
    let old = put_tracked(&node, "gc-test", "overwritten", &pattern(20, 2 * MIB)).await;
    let new_data = pattern(21, 300_000);
    let current = put_tracked(&node, "gc-test", "overwritten", &new_data).await;
    let deleted = put_tracked(&node, "gc-test", "deleted", &pattern(22, 70_000)).await;
    let kept_data = pattern(23, INLINE_MAX + 1000);
    let kept = put_tracked(&node, "gc-test", "kept", &kept_data).await;
    c.delete_object().bucket("gc-test").key("deleted").send().await.unwrap();
    // Before scrub the garbage is still on disk: deleting is scrub's job.
    assert!(old.values().chain(deleted.values()).all(|p| p.exists()), "garbage waits for scrub");

    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.garbage_deleted, 12, "six shards each of the old and the deleted version: {report:?}");
    assert_eq!(report.orphans_deleted, 0, "{report:?}");
    for p in old.values().chain(deleted.values()) {
        assert!(!p.exists(), "{} is deleted", p.display());
    }
    for p in current.values().chain(kept.values()) {
        assert!(p.exists(), "{} of a current object is kept", p.display());
    }
    assert_reads(&c, "gc-test", "overwritten", &new_data).await;
    assert_reads(&c, "gc-test", "kept", &kept_data).await;
    let err = c.get_object().bucket("gc-test").key("deleted").send().await.expect_err("deleted object");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));

    let again = node.scrub_now().await.unwrap();
    assert_eq!((again.garbage_deleted, again.orphans_deleted, again.damaged_shards), (0, 0, 0), "{again:?}");
    assert_eq!(hoard_it::shard_files(&node.disk_paths()).len(), 2, "only the two current objects' segments remain");
    node.stop().await;
}

/// A real process knows its disks by their markers: a reordered `--disk` list reads the same bytes, a disk of
/// another node is refused with its path, and an empty directory in place of a lost disk is taken in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_are_known_by_their_markers_not_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let disk = |node: &str, i: usize| dir.path().join(format!("{node}-disk{i}")).display().to_string();
    let args = |disks: Vec<String>| disks.into_iter().flat_map(|d| ["--disk".to_string(), d]).collect::<Vec<_>>();
    let ours: Vec<String> = (0..6).map(|i| disk("a", i)).collect();

    let other_disks = args((0..6).map(|i| disk("b", i)).collect());
    let other_args: Vec<&str> = other_disks.iter().map(String::as_str).collect();
    drop(HoardProcess::start(&dir.path().join("b-data"), &other_args).unwrap());

    let our_args = args(ours.clone());
    let mut node =
        HoardProcess::start(&dir.path().join("a-data"), &our_args.iter().map(String::as_str).collect::<Vec<_>>())
            .unwrap();
    let c = node.client();
    c.create_bucket().bucket("vault").send().await.unwrap();
    let data = pattern(41, 3 * MIB + 11);
    hoard_it::put(&c, "vault", "k", &data).await;

    node.extra_args = args(ours.iter().rev().cloned().collect());
    node.restart().unwrap();
    assert_eq!(hoard_it::get(&node.client(), "vault", "k").await, data, "disks listed in reverse");

    let mut swapped = ours.clone();
    swapped[2] = disk("b", 2);
    node.extra_args = args(swapped);
    let refused = node.restart().unwrap_err().to_string();
    assert!(refused.contains("disk of another node") && refused.contains("b-disk2"), "{refused}");

    std::fs::remove_dir_all(&ours[2]).unwrap();
    node.extra_args = args(ours.clone());
    node.restart().unwrap();
    assert_eq!(hoard_it::get(&node.client(), "vault", "k").await, data, "read around the new, empty disk");
    assert!(Path::new(&ours[2]).join("hoard-disk.json").is_file(), "the new disk is marked");
}

/// Empties a directory, keeping the directory itself: a drive swapped at the same mount point.
fn empty_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// Two disks emptied while the node runs are written again by repair, by new PUTs and by scrub: each gets its
/// marker back before its first new file, so a node killed afterwards starts again and reads every object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_emptied_at_run_time_are_refilled_and_the_node_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let node = TestNode::builder().data_dir(&data_dir).scrub_grace(REPAIR_SAFE_GRACE).start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("swap").send().await.unwrap();
    let mut objects: Vec<(String, Vec<u8>)> =
        (0..3).map(|i| (format!("before-{i}"), pattern(300 + i, 2 * MIB + 77 * i as usize))).collect();
    for (k, data) in &objects {
        put(&c, "swap", k, data).await;
    }
    let disks = node.disk_paths();
    for swapped in &disks[2..4] {
        empty_dir(swapped);
    }
    // A PUT right after the swap lands shards on the new disks first.
    let after = ("after".to_string(), pattern(310, 3 * MIB + 5));
    put(&c, "swap", &after.0, &after.1).await;
    objects.push(after);
    node.scrub_now().await.unwrap();
    node.repair_idle().await.unwrap();
    let segments = hoard_it::shard_files(&disks).len();
    assert_eq!(segments, objects.len());
    for swapped in &disks[2..4] {
        assert!(swapped.join("hoard-disk.json").is_file(), "{} is marked again", swapped.display());
        assert_eq!(count_shard_files(swapped), segments, "{} holds a shard of every segment", swapped.display());
    }
    drop(c);
    node.stop().await;

    // The same directories under a real process, killed with SIGKILL and started again.
    let mut process = HoardProcess::start(&data_dir, &[]).unwrap();
    process.kill9();
    process.restart().unwrap();
    let c = process.client();
    for (k, data) in &objects {
        assert_eq!(hoard_it::get(&c, "swap", k).await, *data, "{k} reads after the restart");
    }
}

/// Concurrent small PUTs share Raft entries (group commit: fewer log entries than writes, so fewer fsyncs),
/// and each is answered, stored and read back as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_each_stands() {
    const WRITES: usize = 48;
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("group").send().await.unwrap();
    let before = node.context().meta.metrics().await.unwrap().last_log_index.unwrap_or(0);
    let puts = (0..WRITES).map(|i| {
        let c = c.clone();
        async move {
            let body = pattern(i as u64, 300 + i);
            c.put_object().bucket("group").key(format!("k{i:02}")).body(body.into()).send().await.map(|_| ())
        }
    });
    for put in futures::future::join_all(puts).await {
        put.unwrap();
    }
    let after = node.context().meta.metrics().await.unwrap().last_log_index.unwrap_or(0);
    let entries = after - before;
    assert!(entries < WRITES as u64, "{WRITES} concurrent PUTs took {entries} log entries: none were grouped");
    for i in 0..WRITES {
        assert_reads(&c, "group", &format!("k{i:02}"), &pattern(i as u64, 300 + i)).await;
    }
    node.stop().await;
}

/// Once the log written since the last snapshot passes the floor, the node snapshots its metadata on its own, once,
/// and a restart brings every object back from the snapshot and the log after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_is_snapshotted_once_the_log_has_grown_and_survives_a_restart() {
    let mut node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket("grown").send().await.unwrap();
    let raft = || async { node.context().meta.raft.lock().await.clone().unwrap() };
    assert_eq!(raft().await.metrics().borrow().snapshot, None, "no snapshot of a new node");
    // Inline bodies go into the log whole: a little over the floor's worth of them.
    let count = hoard_storage::meta::SNAPSHOT_LOG_FLOOR as usize / INLINE_MAX + 8;
    let body = |i: usize| pattern(i as u64, INLINE_MAX);
    for start in (0..count).step_by(8) {
        let puts = (start..count.min(start + 8)).map(|i| {
            let c = c.clone();
            async move { c.put_object().bucket("grown").key(format!("k{i:03}")).body(body(i).into()).send().await }
        });
        for put in futures::future::join_all(puts).await {
            put.unwrap();
        }
    }
    let metrics = raft()
        .await
        .wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.snapshot.is_some(), "a snapshot taken by the node itself")
        .await
        .unwrap();
    let snapshot = metrics.snapshot.unwrap();
    assert!(snapshot.index > 0, "{snapshot:?}");
    let reader = node.context().meta.local().unwrap();
    assert_eq!(reader.snapshot_due(), None, "not due again right after");
    // A few more writes do not make another due: the log since is far smaller than the snapshot.
    put(&c, "grown", "after", b"after the snapshot").await;
    assert_eq!(reader.snapshot_due(), None);
    assert_eq!(raft().await.metrics().borrow().snapshot, Some(snapshot), "one snapshot, not one per write");
    // The store closes only once nothing holds it, and the restarted node opens it again.
    drop(reader);

    node.restart().await.unwrap();
    let c = client(&node);
    for i in [0, count / 2, count - 1] {
        assert_reads(&c, "grown", &format!("k{i:03}"), &body(i)).await;
    }
    assert_reads(&c, "grown", "after", b"after the snapshot").await;
    node.stop().await;
}
