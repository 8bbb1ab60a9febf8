//! Bucket versioning as a client sees it, through the real `aws-sdk-s3` client over HTTPS: versions kept
//! and read back by id, delete markers, the null version, ListObjectVersions with its markers, DeleteObjects
//! with version ids, copies of old versions, each version's own SSE-C key, and a crash before a versioned
//! PUT commits.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::Delete;
use aws_sdk_s3::types::ObjectIdentifier;
use aws_sdk_s3::types::VersioningConfiguration;
use aws_sdk_s3::Client;
use base64::Engine as _;
use hoard::Fault;
use hoard_it::failure;
use hoard_it::pattern;
use hoard_it::tls_client;
use hoard_it::TestCert;
use hoard_it::TestNode;
use md5::Digest as _;

const BUCKET: &str = "history";

/// A node with a master key, serving HTTPS (SSE-C needs it), with fault injection, and a client trusting it.
async fn node(dir: &Path) -> (TestNode, Client) {
    let key_file = dir.join("master.key");
    std::fs::write(&key_file, [0x42u8; 32]).unwrap();
    let cert = TestCert::new();
    let node = TestNode::builder()
        .data_dir(dir.join("node"))
        .master_key_file(&key_file)
        .tls(&cert.cert, &cert.key)
        .fault_injection(true)
        .scrub_grace(std::time::Duration::ZERO)
        .start()
        .await
        .unwrap();
    let c = tls_client(&node, &cert);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (node, c)
}

async fn set_versioning(c: &Client, status: BucketVersioningStatus) {
    let config = VersioningConfiguration::builder().status(status).build();
    c.put_bucket_versioning().bucket(BUCKET).versioning_configuration(config).send().await.unwrap();
}

/// PUTs `data` and answers the version id the response carries.
async fn put(c: &Client, key: &str, data: &[u8]) -> Option<String> {
    let out = c.put_object().bucket(BUCKET).key(key).body(ByteStream::from(data.to_vec())).send().await.unwrap();
    out.version_id().map(str::to_string)
}

async fn get(c: &Client, key: &str, version: Option<&str>) -> Vec<u8> {
    let out = c.get_object().bucket(BUCKET).key(key).set_version_id(version.map(Into::into)).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// `(key, version id, is latest, is a delete marker)` of every version in the bucket, as listed.
async fn versions(c: &Client) -> Vec<(String, String, bool, bool)> {
    let out = c.list_object_versions().bucket(BUCKET).send().await.unwrap();
    let mut rows: Vec<(String, String, bool, bool, i64)> = Vec::new();
    for v in out.versions() {
        let when = v.last_modified().map(|t| t.secs()).unwrap_or(0);
        rows.push((v.key().unwrap().into(), v.version_id().unwrap().into(), v.is_latest().unwrap(), false, when));
    }
    for m in out.delete_markers() {
        let when = m.last_modified().map(|t| t.secs()).unwrap_or(0);
        rows.push((m.key().unwrap().into(), m.version_id().unwrap().into(), m.is_latest().unwrap(), true, when));
    }
    // The SDK hands versions and markers back as two lists: order them by key, latest first.
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    rows.into_iter().map(|(k, v, latest, marker, _)| (k, v, latest, marker)).collect()
}

fn header<'a, T, E>(r: &'a Result<T, aws_sdk_s3::error::SdkError<E>>, name: &str) -> Option<&'a str> {
    r.as_ref().err().and_then(|e| e.raw_response()).and_then(|raw| raw.headers().get(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_put_keeps_a_version_readable_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    let status = c.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
    assert_eq!(status.status(), None, "a new bucket is unversioned");
    // Written before versioning: the null version, and no version id in the answer.
    assert_eq!(put(&c, "k", b"before").await, None);
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let status = c.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));

    let bodies = [pattern(1, 100), pattern(2, 3 << 20), pattern(3, 7)];
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(put(&c, "k", body).await.expect("a versioned PUT answers its version id"));
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != "null");
    assert!(get(&c, "k", None).await == bodies[2], "the newest version is current");
    for (id, body) in ids.iter().zip(&bodies) {
        assert!(get(&c, "k", Some(id)).await == *body, "version {id} reads back as written");
        let head = c.head_object().bucket(BUCKET).key("k").version_id(id).send().await.unwrap();
        assert_eq!((head.content_length(), head.version_id()), (Some(body.len() as i64), Some(id.as_str())));
    }
    assert_eq!(get(&c, "k", Some("null")).await, b"before");
    let listed = versions(&c).await;
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[0], ("k".into(), ids[2].clone(), true, false));
    assert!(listed[1..].iter().all(|(_, _, latest, marker)| !latest && !marker));

    // Bad and unknown version ids.
    let (status, code) = failure(c.get_object().bucket(BUCKET).key("k").version_id("v123").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
    let unknown = format!("v{}", "0".repeat(32));
    let (status, code) = failure(c.get_object().bucket(BUCKET).key("k").version_id(&unknown).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchVersion"));
    // A bucket never goes back to unversioned.
    let empty = VersioningConfiguration::builder().build();
    let r = c.put_bucket_versioning().bucket(BUCKET).versioning_configuration(empty).send().await;
    assert_eq!(failure(r), (400, "MalformedXML".into()));
    // Nor is it emptied by deleting it while versions remain.
    let (status, code) = failure(c.delete_bucket().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (409, "BucketNotEmpty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_marker_hides_the_key_and_deleting_it_brings_the_object_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let v1 = put(&c, "k", b"one").await.unwrap();
    let deleted = c.delete_object().bucket(BUCKET).key("k").send().await.unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().unwrap().to_string();
    assert_ne!(marker, v1);

    let r = c.get_object().bucket(BUCKET).key("k").send().await;
    assert_eq!(header(&r, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header(&r, "x-amz-version-id"), Some(marker.as_str()));
    assert_eq!(failure(r), (404, "NoSuchKey".into()));
    let r = c.get_object().bucket(BUCKET).key("k").version_id(&marker).send().await;
    assert_eq!(header(&r, "x-amz-delete-marker"), Some("true"));
    assert_eq!(failure(r).0, 405, "GET of a delete marker by its id is MethodNotAllowed");
    let r = c.head_object().bucket(BUCKET).key("k").version_id(&marker).send().await;
    assert_eq!(failure(r).0, 405);
    assert!(c.list_objects_v2().bucket(BUCKET).send().await.unwrap().contents().is_empty());
    assert_eq!(versions(&c).await, [("k".into(), marker.clone(), true, true), ("k".into(), v1.clone(), false, false)]);
    assert_eq!(get(&c, "k", Some(&v1)).await, b"one", "the old version is still readable by id");

    let removed = c.delete_object().bucket(BUCKET).key("k").version_id(&marker).send().await.unwrap();
    assert_eq!((removed.delete_marker(), removed.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(get(&c, "k", None).await, b"one", "the object is back");

    // A delete marker is no copy source: by its id 400, as the current version 404 without marker headers.
    let copy = |source: String| c.copy_object().bucket(BUCKET).key("copy").copy_source(source).send();
    let marker2 = c.delete_object().bucket(BUCKET).key("k").send().await.unwrap().version_id().unwrap().to_string();
    let r = copy(format!("{BUCKET}/k?versionId={marker2}")).await;
    assert_eq!(failure(r), (400, "InvalidRequest".into()));
    let r = copy(format!("{BUCKET}/k")).await;
    assert_eq!(header(&r, "x-amz-delete-marker"), None, "the marker headers would describe the copy");
    assert_eq!(failure(r), (404, "NoSuchKey".into()));
    // DeleteObjects of a marker by its id names it as a marker's version.
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("k").version_id(&marker2).build().unwrap())
        .build()
        .unwrap();
    let out = c.delete_objects().bucket(BUCKET).delete(delete).send().await.unwrap();
    let gone = &out.deleted()[0];
    assert_eq!((gone.delete_marker(), gone.delete_marker_version_id()), (Some(true), Some(marker2.as_str())));
    assert_eq!(get(&c, "k", None).await, b"one");

    // Deleting the only version for good leaves nothing; the bucket can then go.
    c.delete_object().bucket(BUCKET).key("k").version_id(&v1).send().await.unwrap();
    assert!(versions(&c).await.is_empty());
    c.delete_bucket().bucket(BUCKET).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_bucket_writes_the_null_version_over_and_over() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let kept = put(&c, "k", b"kept").await.unwrap();
    set_versioning(&c, BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&c, "k", b"null 1").await.as_deref(), Some("null"));
    assert_eq!(put(&c, "k", b"null 2").await.as_deref(), Some("null"));
    assert_eq!(
        versions(&c).await,
        [("k".into(), "null".into(), true, false), ("k".into(), kept.clone(), false, false)]
    );
    assert_eq!(get(&c, "k", Some("null")).await, b"null 2");
    // A delete makes a null delete marker in place of the null version.
    let deleted = c.delete_object().bucket(BUCKET).key("k").send().await.unwrap();
    assert_eq!((deleted.delete_marker(), deleted.version_id()), (Some(true), Some("null")));
    assert_eq!(versions(&c).await, [("k".into(), "null".into(), true, true), ("k".into(), kept, false, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_page_through_key_and_version_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let mut expected = Vec::new();
    for key in ["a/1", "a/2", "b", "c%d é"] {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(put(&c, key, format!("{key}{n}").as_bytes()).await.unwrap());
        }
        expected.extend(ids.into_iter().rev().map(|id| (key.to_string(), id)));
    }
    let mut got = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = c
            .list_object_versions()
            .bucket(BUCKET)
            .max_keys(5)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.versions().len() <= 5);
        got.extend(page.versions().iter().map(|v| (v.key().unwrap().to_string(), v.version_id().unwrap().to_string())));
        if !page.is_truncated().unwrap() {
            break;
        }
        key_marker = page.next_key_marker().map(Into::into);
        version_marker = page.next_version_id_marker().map(Into::into);
    }
    assert_eq!(got, expected, "pages of five put the whole listing back together");

    let rolled = c.list_object_versions().bucket(BUCKET).delimiter("/").send().await.unwrap();
    let prefixes: Vec<&str> = rolled.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["a/"]);
    assert_eq!(rolled.versions().len(), 6);
    let only_a = c.list_object_versions().bucket(BUCKET).prefix("a/").send().await.unwrap();
    assert_eq!(only_a.versions().len(), 6);
    let r = c.list_object_versions().bucket(BUCKET).version_id_marker("null").send().await;
    assert_eq!(failure(r), (400, "InvalidArgument".into()), "a version marker needs a key marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_removes_named_versions_and_makes_markers_for_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let a1 = put(&c, "a", b"a1").await.unwrap();
    let a2 = put(&c, "a", b"a2").await.unwrap();
    put(&c, "b", b"b1").await.unwrap();
    let ident = |key: &str, version: Option<&str>| {
        ObjectIdentifier::builder().key(key).set_version_id(version.map(Into::into)).build().unwrap()
    };
    let delete = Delete::builder().objects(ident("a", Some(&a1))).objects(ident("b", None)).build().unwrap();
    let out = c.delete_objects().bucket(BUCKET).delete(delete).send().await.unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let by_key = |k: &str| out.deleted().iter().find(|d| d.key() == Some(k)).unwrap().clone();
    assert_eq!((by_key("a").version_id(), by_key("a").delete_marker()), (Some(a1.as_str()), None));
    assert_eq!(by_key("b").delete_marker(), Some(true));
    let b_marker = by_key("b").delete_marker_version_id().unwrap().to_string();
    let listed = versions(&c).await;
    assert_eq!(listed.iter().filter(|r| r.0 == "a").count(), 1, "only a2 is left of a: {listed:?}");
    assert!(listed.contains(&("b".into(), b_marker, true, true)));
    assert_eq!(get(&c, "a", None).await, b"a2");
    assert_eq!(get(&c, "a", Some(&a2)).await, b"a2");
    // One bad version id refuses the whole request.
    let bad = Delete::builder().objects(ident("a", Some(&a2))).objects(ident("b", Some("nope"))).build().unwrap();
    let (status, code) = failure(c.delete_objects().bucket(BUCKET).delete(bad).send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"));
    assert_eq!(get(&c, "a", None).await, b"a2", "nothing was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_are_copy_and_part_copy_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let old_body = pattern(7, 6 << 20);
    let old = put(&c, "src", &old_body).await.unwrap();
    put(&c, "src", b"newer").await.unwrap();
    let copied = c
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(format!("{BUCKET}/src?versionId={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.copy_source_version_id(), Some(old.as_str()));
    assert!(copied.version_id().is_some_and(|v| v != old));
    assert!(get(&c, "dst", None).await == old_body);
    // Copying the old version onto its own key restores it as the newest version.
    c.copy_object()
        .bucket(BUCKET)
        .key("src")
        .copy_source(format!("{BUCKET}/src?versionId={old}"))
        .send()
        .await
        .unwrap();
    assert!(get(&c, "src", None).await == old_body);
    assert_eq!(versions(&c).await.iter().filter(|r| r.0 == "src").count(), 3);

    let upload = c.create_multipart_upload().bucket(BUCKET).key("mp").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = c
        .upload_part_copy()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source(format!("{BUCKET}/src?versionId={old}"))
        .copy_source_range("bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.copy_source_version_id(), Some(old.as_str()));
    let etag = part.copy_part_result().unwrap().e_tag().unwrap().to_string();
    let done = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mp_version = done.version_id().expect("a completed upload on a versioned bucket has a version id");
    assert_eq!(get(&c, "mp", Some(mp_version)).await, old_body[..100]);
}

/// A customer key: (key base64, key MD5 base64).
fn customer_key(seed: u8) -> (String, String) {
    let key = [seed; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(key), b64.encode(md5::Md5::digest(key)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_keeps_its_own_customer_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let (ka, ka_md5) = customer_key(1);
    let (kb, kb_md5) = customer_key(2);
    let (kc, kc_md5) = customer_key(3);
    let put_with = |body: &'static [u8], key: &str, md5: &str| {
        c.put_object()
            .bucket(BUCKET)
            .key("secret")
            .body(ByteStream::from_static(body))
            .sse_customer_algorithm("AES256")
            .sse_customer_key(key)
            .sse_customer_key_md5(md5)
            .send()
    };
    let va = put_with(b"version a", &ka, &ka_md5).await.unwrap().version_id().unwrap().to_string();
    let vb = put_with(b"version b", &kb, &kb_md5).await.unwrap().version_id().unwrap().to_string();
    let read = |version: &str, key: &str, md5: &str| {
        c.get_object()
            .bucket(BUCKET)
            .key("secret")
            .version_id(version)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(key)
            .sse_customer_key_md5(md5)
            .send()
    };
    let body = |out: aws_sdk_s3::operation::get_object::GetObjectOutput| async move {
        out.body.collect().await.unwrap().into_bytes().to_vec()
    };
    assert_eq!(body(read(&va, &ka, &ka_md5).await.unwrap()).await, b"version a");
    assert_eq!(body(read(&vb, &kb, &kb_md5).await.unwrap()).await, b"version b");
    assert_eq!(failure(read(&va, &kb, &kb_md5).await).0, 403, "version a with version b's key");
    assert_eq!(failure(read(&vb, &ka, &ka_md5).await).0, 403, "version b with version a's key");
    assert_eq!(failure(c.get_object().bucket(BUCKET).key("secret").version_id(&va).send().await).0, 400);
    // GetObjectAttributes of a version takes that version's key too.
    let attributes = |version: &str, key: &str, md5: &str| {
        c.get_object_attributes()
            .bucket(BUCKET)
            .key("secret")
            .version_id(version)
            .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectSize)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(key)
            .sse_customer_key_md5(md5)
            .send()
    };
    let got = attributes(&va, &ka, &ka_md5).await.unwrap();
    assert_eq!((got.object_size(), got.version_id()), (Some(9), Some(va.as_str())));
    assert_eq!(failure(attributes(&va, &kb, &kb_md5).await).0, 403);

    // Copying version a re-keys it: the new version opens with key c only.
    let copied = c
        .copy_object()
        .bucket(BUCKET)
        .key("secret")
        .copy_source(format!("{BUCKET}/secret?versionId={va}"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&ka)
        .copy_source_sse_customer_key_md5(&ka_md5)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&kc)
        .sse_customer_key_md5(&kc_md5)
        .send()
        .await
        .unwrap();
    let vc = copied.version_id().unwrap().to_string();
    assert_eq!(body(read(&vc, &kc, &kc_md5).await.unwrap()).await, b"version a");
    assert_eq!(failure(read(&vc, &ka, &ka_md5).await).0, 403);
    assert_eq!(body(read(&va, &ka, &ka_md5).await.unwrap()).await, b"version a", "the source version is unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_a_versioned_put_commits_leaves_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let first = put(&c, "k", b"first").await.unwrap();
    node.faults().arm_times("put.before_commit", Fault::Panic, Some(1));
    let c = hoard_it::no_retry(c);
    let r = c.put_object().bucket(BUCKET).key("k").body(ByteStream::from(pattern(9, 2 << 20))).send().await;
    assert!(r.is_err(), "the PUT whose session crashed must fail");
    assert_eq!(versions(&c).await, [("k".into(), first.clone(), true, false)], "no half version");
    assert_eq!(get(&c, "k", None).await, b"first");
    let report = node.scrub_now().await.unwrap();
    assert!(report.orphans_deleted > 0, "the crashed PUT's shard files are orphans: {report:?}");
    assert_eq!(get(&c, "k", Some(&first)).await, b"first", "scrub keeps every version's shards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_to_one_key_make_one_version_each() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    const WRITERS: u64 = 8;
    let puts = (0..WRITERS).map(|n| {
        let c = c.clone();
        async move {
            let body = pattern(100 + n, 1000 + n as usize);
            let out = c.put_object().bucket(BUCKET).key("hot").body(ByteStream::from(body.clone())).send().await;
            (out.unwrap().version_id().unwrap().to_string(), body)
        }
    });
    let written: Vec<(String, Vec<u8>)> = futures::future::join_all(puts).await;
    let listed = versions(&c).await;
    assert_eq!(listed.len(), WRITERS as usize, "one version per PUT: {listed:?}");
    let mut ids: Vec<&str> = listed.iter().map(|r| r.1.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), WRITERS as usize, "distinct ids");
    // The latest version is the current object, and every version holds the body its PUT sent.
    let latest = listed.iter().find(|r| r.2).expect("one version is the latest");
    assert_eq!(listed.iter().filter(|r| r.2).count(), 1);
    for (id, body) in &written {
        assert!(get(&c, "hot", Some(id)).await == *body, "version {id}");
    }
    let current = get(&c, "hot", None).await;
    assert!(written.iter().any(|(id, body)| *id == latest.1 && *body == current), "the newest version is current");
}

/// Noncurrent versions are scrubbed and repaired like current objects: with a disk directory gone, scrub finds
/// the missing shards of every version and repair rebuilds them, so two more disks can then go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noncurrent_versions_are_scrubbed_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = node(dir.path()).await;
    set_versioning(&c, BucketVersioningStatus::Enabled).await;
    let bodies: Vec<Vec<u8>> = (0..3).map(|n| pattern(200 + n, (2 << 20) + n as usize)).collect();
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(put(&c, "k", body).await.unwrap());
    }
    c.delete_object().bucket(BUCKET).key("k").send().await.unwrap();
    let disks = node.disk_paths();
    assert_eq!(hoard_it::shard_files(&disks).len(), 3, "one segment per version");
    std::fs::remove_dir_all(&disks[2]).unwrap();
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.segments_checked, 3, "{report:?}");
    assert_eq!(report.orphans_deleted, 0, "no version's shard is an orphan: {report:?}");
    node.repair_idle().await.unwrap();
    let report = node.scrub_now().await.unwrap();
    assert_eq!(report.damaged_shards, 0, "repair rebuilt every version's lost shard: {report:?}");
    for lost in [&disks[0], &disks[4]] {
        std::fs::remove_dir_all(lost).unwrap();
    }
    for (id, body) in ids.iter().zip(&bodies) {
        assert!(get(&c, "k", Some(id)).await == *body, "version {id} after losing three disks one by one");
    }
}
