//! The S3 API as a client sees it: every test starts its own in-process node and talks to it through the
//! real `aws-sdk-s3` client (and, for presigned URLs, a bare HTTP/1.1 socket).
//!
//! Each test checks a behaviour on the happy path and on the error path; an error is checked by its S3
//! error code and its HTTP status, the two things clients branch on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU16;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::ConfigBag;
use aws_sdk_s3::config::Intercept;
use aws_sdk_s3::config::RuntimeComponents;
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::Delete;
use aws_sdk_s3::types::EncodingType;
use aws_sdk_s3::types::MetadataDirective;
use aws_sdk_s3::types::ObjectIdentifier;
use aws_sdk_s3::Client;
use base64::Engine as _;
use hoard::Fault;
use hoard::Gate;
use hoard_it::client;
use hoard_it::client_for;
use hoard_it::failure;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::TestNode;
use md5::Digest as _;

const MIB: usize = 1024 * 1024;
/// 2100-01-01T00:00:00Z: after any object in these tests was written.
const FUTURE_SECS: i64 = 4_102_444_800;
/// 2000-01-01T00:00:00Z: before any object in these tests was written.
const PAST_SECS: i64 = 946_684_800;
/// How long a test waits on a bare HTTP exchange.
const RAW_HTTP_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

async fn start() -> anyhow::Result<(TestNode, Client)> {
    let node = TestNode::builder().start().await?;
    let c = client(&node);
    Ok((node, c))
}

async fn start_with_bucket(bucket: &str) -> anyhow::Result<(TestNode, Client)> {
    let (node, c) = start().await?;
    c.create_bucket().bucket(bucket).send().await?;
    Ok((node, c))
}

async fn put(c: &Client, bucket: &str, key: &str, data: &[u8]) -> anyhow::Result<String> {
    let out = c.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await?;
    Ok(out.e_tag().context("PutObject returned no ETag")?.to_string())
}

async fn get(c: &Client, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
    let out = c.get_object().bucket(bucket).key(key).send().await?;
    Ok(out.body.collect().await?.into_bytes().to_vec())
}

async fn exists(c: &Client, bucket: &str, key: &str) -> anyhow::Result<bool> {
    match c.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn quoted(hex: &str) -> String {
    format!("\"{hex}\"")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn md5_raw(data: &[u8]) -> [u8; 16] {
    md5::Md5::digest(data).into()
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-<part count>`.
fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = md5::Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    quoted(&format!("{}-{}", hex::encode(h.finalize()), part_md5s.len()))
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts.iter().map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build()).collect(),
        ))
        .build()
}

async fn create_upload(c: &Client, bucket: &str, key: &str) -> anyhow::Result<String> {
    let out = c.create_multipart_upload().bucket(bucket).key(key).send().await?;
    Ok(out.upload_id().context("no upload id")?.to_string())
}

async fn upload_part(
    c: &Client,
    bucket: &str,
    key: &str,
    upload: &str,
    n: i32,
    data: Vec<u8>,
) -> anyhow::Result<String> {
    let out = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload)
        .part_number(n)
        .body(ByteStream::from(data))
        .send()
        .await?;
    Ok(out.e_tag().context("UploadPart returned no ETag")?.to_string())
}

/// Form-style URL decoding (`%XX`, and `+` for a space), as S3 clients undo `encoding-type=url`.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let v = u8::from_str_radix(&s[i + 1..i + 3], 16).expect("a %XX escape");
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// Records the HTTP status of the response and the headers of the request it is attached to.
#[derive(Debug, Clone, Default)]
struct Spy {
    status: Arc<AtomicU16>,
    request_headers: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Spy {
    fn status(&self) -> u16 {
        self.status.load(Ordering::SeqCst)
    }
    fn request_header(&self, name: &str) -> Option<String> {
        let h = self.request_headers.lock().unwrap();
        h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

impl Intercept for Spy {
    fn name(&self) -> &'static str {
        "Spy"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = ctx.request().headers().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        *self.request_headers.lock().unwrap() = headers;
        Ok(())
    }

    fn read_after_transmit(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.status.store(ctx.response().status().as_u16(), Ordering::SeqCst);
        Ok(())
    }
}

/// A response read off a bare socket.
struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

/// One HTTP/1.1 exchange on a fresh connection, with nothing but what the caller gives: the way a browser
/// or `curl` uses a presigned URL.
async fn raw_http(
    addr: SocketAddr,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (authority, path_and_query) = rest.split_at(rest.find('/').context("a path")?);
    let mut req = format!("{method} {path_and_query} HTTP/1.1\r\nHost: {authority}\r\n");
    for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    let (status, body) = hoard_it::raw_exchange(addr, &req, body, RAW_HTTP_DEADLINE).await?;
    Ok(RawResponse { status, body })
}

// ---------------------------------------------------------------------------------------------------
// Buckets
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_buckets_are_listed_headed_and_located() -> anyhow::Result<()> {
    let (node, c) = start().await?;
    c.create_bucket().bucket("zeta").send().await?;
    c.create_bucket().bucket("alpha").send().await?;

    let listed = c.list_buckets().send().await?;
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert!(listed.buckets().iter().all(|b| b.creation_date().is_some()));

    c.head_bucket().bucket("alpha").send().await?;
    let loc = c.get_bucket_location().bucket("alpha").send().await?;
    assert_eq!(loc.location_constraint().map(|l| l.as_str()).unwrap_or(""), "", "us-east-1 is the empty constraint");

    let (status, code) = failure(c.get_bucket_location().bucket("nope").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_bucket_of_a_missing_bucket_is_404() -> anyhow::Result<()> {
    let (node, c) = start().await?;
    let (status, _) = failure(c.head_bucket().bucket("missing").send().await);
    assert_eq!(status, 404);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_bucket_twice_is_bucket_already_owned_by_you() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("twice").await?;
    let (status, code) = failure(c.create_bucket().bucket("twice").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketAlreadyOwnedByYou"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_bucket_refuses_non_empty_and_missing_buckets_and_deletes_empty_ones() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", b"x").await?;

    let (status, code) = failure(c.delete_bucket().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketNotEmpty"));
    c.head_bucket().bucket("bkt").send().await?;

    c.delete_object().bucket("bkt").key("k").send().await?;
    c.delete_bucket().bucket("bkt").send().await?;
    let (status, _) = failure(c.head_bucket().bucket("bkt").send().await);
    assert_eq!(status, 404);
    assert!(c.list_buckets().send().await?.buckets().is_empty());

    let (status, code) = failure(c.delete_bucket().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// PutObject / GetObject / HeadObject
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_byte_identical_with_md5_etags() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("small", b"hello, hoard".to_vec()),
        ("one-block", pattern(1, MIB)),
        ("several-blocks", pattern(2, 3 * MIB + 17)),
    ];
    for (key, data) in &cases {
        let etag = put(&c, "bkt", key, data).await?;
        assert_eq!(etag, quoted(&md5_hex(data)), "{key}: PutObject ETag");

        let got = c.get_object().bucket("bkt").key(*key).send().await?;
        assert_eq!(got.content_length(), Some(data.len() as i64), "{key}");
        assert_eq!(got.e_tag(), Some(etag.as_str()), "{key}");
        let body = got.body.collect().await?.into_bytes();
        assert_eq!(body.len(), data.len(), "{key}: length");
        assert!(body[..] == data[..], "{key}: bytes differ");

        let head = c.head_object().bucket("bkt").key(*key).send().await?;
        assert_eq!(head.content_length(), Some(data.len() as i64), "{key}");
        assert_eq!(head.e_tag(), Some(etag.as_str()), "{key}");
        assert!(head.last_modified().is_some());
        assert_eq!(head.parts_count(), None, "{key}: a single PUT has no parts");
    }
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwriting_an_object_replaces_its_bytes() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", &pattern(3, 2 * MIB)).await?;
    let second = pattern(4, 1000);
    put(&c, "bkt", "k", &second).await?;
    assert_eq!(get(&c, "bkt", "k").await?, second);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_headers_and_user_metadata_round_trip() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let expires = DateTime::from_secs(2_000_000_000);
    c.put_object()
        .bucket("bkt")
        .key("doc")
        .body(ByteStream::from_static(b"compressed?"))
        .content_type("application/x-hoard")
        .content_encoding("gzip")
        .content_disposition("attachment; filename=\"doc.bin\"")
        .content_language("de-CH")
        .cache_control("max-age=60, private")
        .expires(expires)
        .metadata("colour", "blue")
        .metadata("owner-id", "42")
        .send()
        .await?;

    let got = c.get_object().bucket("bkt").key("doc").send().await?;
    let head = c.head_object().bucket("bkt").key("doc").send().await?;
    assert_eq!(got.content_type(), Some("application/x-hoard"));
    assert_eq!(got.content_encoding(), Some("gzip"));
    assert_eq!(got.content_disposition(), Some("attachment; filename=\"doc.bin\""));
    assert_eq!(got.content_language(), Some("de-CH"));
    assert_eq!(got.cache_control(), Some("max-age=60, private"));
    assert_eq!(got.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let meta = got.metadata().context("user metadata")?;
    assert_eq!(meta.len(), 2, "{meta:?}");
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(meta.get("owner-id").map(String::as_str), Some("42"));

    assert_eq!(head.content_type(), got.content_type());
    assert_eq!(head.content_encoding(), got.content_encoding());
    assert_eq!(head.content_disposition(), got.content_disposition());
    assert_eq!(head.content_language(), got.content_language());
    assert_eq!(head.cache_control(), got.cache_control());
    assert_eq!(head.expires_string(), got.expires_string());
    assert_eq!(head.metadata(), got.metadata());
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"compressed?");
    node.stop().await;
    Ok(())
}

/// A streaming body travels aws-chunked, and the SDK then sends `Content-Encoding: gzip` and
/// `Content-Encoding: aws-chunked` as two header lines; only the client's own encoding is the object's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_put_keeps_its_own_content_encoding() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let (body, _file) = body_of(BodyKind::Streaming, b"streamed").await?;
    c.put_object().bucket("bkt").key("streamed").content_encoding("gzip").body(body).send().await?;
    let head = c.head_object().bucket("bkt").key("streamed").send().await?;
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(get(&c, "bkt", "streamed").await?, b"streamed");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_missing_key_is_no_such_key_and_a_missing_bucket_is_no_such_bucket() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let (status, code) = failure(c.get_object().bucket("bkt").key("missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    let (status, _) = failure(c.head_object().bucket("bkt").key("missing").send().await);
    assert_eq!(status, 404);

    let (status, code) = failure(c.get_object().bucket("nobucket").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let (status, code) =
        failure(c.put_object().bucket("nobucket").key("k").body(ByteStream::from_static(b"x")).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Range GETs
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_gets_return_206_with_the_requested_bytes() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let size = 3 * MIB + 17;
    let data = pattern(5, size);
    put(&c, "bkt", "k", &data).await?;

    let cases: [(String, usize, usize); 5] = [
        ("bytes=0-99".into(), 0, 100),
        // Crosses the 1 MiB block boundary.
        (format!("bytes={}-{}", MIB - 1000, MIB + 999), MIB - 1000, MIB + 1000),
        // Crosses two block boundaries.
        (format!("bytes={}-{}", MIB - 1, 3 * MIB), MIB - 1, 3 * MIB + 1),
        ("bytes=-100".into(), size - 100, size),
        (format!("bytes={}-", 2 * MIB + 5), 2 * MIB + 5, size),
    ];
    for (range, start, end) in cases {
        let spy = Spy::default();
        let out =
            c.get_object().bucket("bkt").key("k").range(&range).customize().interceptor(spy.clone()).send().await?;
        assert_eq!(spy.status(), 206, "{range}");
        assert_eq!(out.content_range(), Some(format!("bytes {}-{}/{}", start, end - 1, size).as_str()), "{range}");
        assert_eq!(out.content_length(), Some((end - start) as i64), "{range}");
        let body = out.body.collect().await?.into_bytes();
        assert!(body[..] == data[start..end], "{range}: wrong bytes");
    }

    let spy = Spy::default();
    c.get_object().bucket("bkt").key("k").customize().interceptor(spy.clone()).send().await?;
    assert_eq!(spy.status(), 200, "a GET without Range is a 200");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_starting_at_or_past_the_end_is_416_invalid_range() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", &pattern(6, 1000)).await?;
    for range in ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000"] {
        let (status, code) = failure(c.get_object().bucket("bkt").key("k").range(range).send().await);
        assert_eq!((status, code.as_str()), (416, "InvalidRange"), "{range}");
    }
    put(&c, "bkt", "empty", b"").await?;
    for range in ["bytes=-100", "bytes=0-", "bytes=0-0"] {
        let (status, code) = failure(c.get_object().bucket("bkt").key("empty").range(range).send().await);
        assert_eq!((status, code.as_str()), (416, "InvalidRange"), "empty object, {range}");
    }
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Conditional GET
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_gets_follow_if_match_and_if_none_match() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let etag = put(&c, "bkt", "k", b"conditional").await?;
    let other = quoted(&md5_hex(b"something else"));

    let out = c.get_object().bucket("bkt").key("k").if_match(&etag).send().await?;
    assert_eq!(out.body.collect().await?.into_bytes().as_ref(), b"conditional");
    let (status, code) = failure(c.get_object().bucket("bkt").key("k").if_match(&other).send().await);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));

    let (status, _) = failure(c.get_object().bucket("bkt").key("k").if_none_match(&etag).send().await);
    assert_eq!(status, 304);
    c.get_object().bucket("bkt").key("k").if_none_match(&other).send().await?;

    let (status, _) = failure(c.head_object().bucket("bkt").key("k").if_match(&other).send().await);
    assert_eq!(status, 412);
    let (status, _) = failure(c.head_object().bucket("bkt").key("k").if_none_match(&etag).send().await);
    assert_eq!(status, 304);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_gets_follow_if_modified_since_and_if_unmodified_since() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", b"dated").await?;
    let future = DateTime::from_secs(FUTURE_SECS);
    let past = DateTime::from_secs(PAST_SECS);

    let (status, _) = failure(c.get_object().bucket("bkt").key("k").if_modified_since(future).send().await);
    assert_eq!(status, 304);
    c.get_object().bucket("bkt").key("k").if_modified_since(past).send().await?;

    let (status, code) = failure(c.get_object().bucket("bkt").key("k").if_unmodified_since(past).send().await);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    c.get_object().bucket("bkt").key("k").if_unmodified_since(future).send().await?;
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Integrity: Content-MD5 and x-amz-checksum-*
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_content_md5_is_accepted_and_a_wrong_one_is_bad_digest_and_stores_nothing() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(7, 300_000);
    c.put_object()
        .bucket("bkt")
        .key("good")
        .content_md5(b64(&md5_raw(&data)))
        .body(ByteStream::from(data.clone()))
        .send()
        .await?;
    assert_eq!(get(&c, "bkt", "good").await?, data);

    let wrong = b64(&md5_raw(b"other bytes"));
    let r =
        c.put_object().bucket("bkt").key("bad").content_md5(wrong).body(ByteStream::from(data.clone())).send().await;
    let (status, code) = failure(r);
    assert_eq!((status, code.as_str()), (400, "BadDigest"));
    assert!(!exists(&c, "bkt", "bad").await?, "a PUT refused for its digest must store nothing");

    // An overwrite with a wrong digest leaves the old object in place.
    let r = c
        .put_object()
        .bucket("bkt")
        .key("good")
        .content_md5(b64(&md5_raw(b"other bytes")))
        .body(ByteStream::from_static(b"replacement"))
        .send()
        .await;
    assert_eq!(failure(r).1, "BadDigest");
    assert_eq!(get(&c, "bkt", "good").await?, data);
    node.stop().await;
    Ok(())
}

fn expected_checksum(alg: &ChecksumAlgorithm, data: &[u8]) -> String {
    match alg {
        ChecksumAlgorithm::Crc32 => b64(&crc32fast::hash(data).to_be_bytes()),
        ChecksumAlgorithm::Crc32C => b64(&crc32c::crc32c(data).to_be_bytes()),
        ChecksumAlgorithm::Sha1 => {
            use sha1::Digest as _;
            b64(&sha1::Sha1::digest(data))
        }
        ChecksumAlgorithm::Sha256 => {
            use sha2::Digest as _;
            b64(&sha2::Sha256::digest(data))
        }
        ChecksumAlgorithm::Crc64Nvme => b64(&crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data).to_be_bytes()),
        other => panic!("no expectation for {other:?}"),
    }
}

/// How a test hands a body to the SDK, which decides where the checksum goes: an in-memory body gets it
/// in an `x-amz-checksum-*` header, a streaming body (here, a file) in an aws-chunked trailer.
#[derive(Debug, Clone, Copy)]
enum BodyKind {
    InMemory,
    Streaming,
}

/// The body, and the temporary file a streaming body reads from (keep it until the request is sent).
async fn body_of(kind: BodyKind, data: &[u8]) -> anyhow::Result<(ByteStream, Option<tempfile::NamedTempFile>)> {
    match kind {
        BodyKind::InMemory => Ok((ByteStream::from(data.to_vec()), None)),
        BodyKind::Streaming => {
            let mut file = tempfile::NamedTempFile::new()?;
            std::io::Write::write_all(&mut file, data)?;
            let body = ByteStream::from_path(file.path()).await?;
            Ok((body, Some(file)))
        }
    }
}

/// Checks where the SDK put the checksum of `alg`, so a test knows which path of the server it exercised.
fn assert_checksum_sent_as(spy: &Spy, kind: BodyKind, alg: &ChecksumAlgorithm) {
    let header = format!("x-amz-checksum-{}", alg.as_str().to_ascii_lowercase());
    match kind {
        BodyKind::InMemory => {
            assert!(spy.request_header(&header).is_some(), "{kind:?}: no {header} header");
            assert_eq!(spy.request_header("x-amz-trailer"), None, "{kind:?}");
        }
        BodyKind::Streaming => {
            assert_eq!(spy.request_header("x-amz-trailer"), Some(header.clone()), "{kind:?}");
            assert_eq!(spy.request_header(&header), None, "{kind:?}: the value belongs in the trailer");
            let encoding = spy.request_header("content-encoding").unwrap_or_default();
            assert!(encoding.contains("aws-chunked"), "{kind:?}: Content-Encoding {encoding:?}");
        }
    }
}

fn checksum_of_put(
    out: &aws_sdk_s3::operation::put_object::PutObjectOutput,
    alg: &ChecksumAlgorithm,
) -> Option<String> {
    match alg {
        ChecksumAlgorithm::Crc32 => out.checksum_crc32(),
        ChecksumAlgorithm::Crc32C => out.checksum_crc32_c(),
        ChecksumAlgorithm::Sha1 => out.checksum_sha1(),
        ChecksumAlgorithm::Crc64Nvme => out.checksum_crc64_nvme(),
        _ => out.checksum_sha256(),
    }
    .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_of_every_supported_algorithm_are_verified_stored_and_returned() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(8, MIB + 4321);
    let algorithms = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ];
    for kind in [BodyKind::Streaming, BodyKind::InMemory] {
        for alg in &algorithms {
            let key = format!("obj-{kind:?}-{}", alg.as_str());
            let want = expected_checksum(alg, &data);
            let spy = Spy::default();
            let (body, _file) = body_of(kind, &data).await?;
            let out = c
                .put_object()
                .bucket("bkt")
                .key(&key)
                .checksum_algorithm(alg.clone())
                .body(body)
                .customize()
                .interceptor(spy.clone())
                .send()
                .await?;
            assert_checksum_sent_as(&spy, kind, alg);
            assert_eq!(checksum_of_put(&out, alg).as_deref(), Some(want.as_str()), "{key}: PutObject response");

            let got = c.get_object().bucket("bkt").key(&key).checksum_mode(ChecksumMode::Enabled).send().await?;
            let head = c.head_object().bucket("bkt").key(&key).checksum_mode(ChecksumMode::Enabled).send().await?;
            let (g, h) = match alg {
                ChecksumAlgorithm::Crc32 => (got.checksum_crc32(), head.checksum_crc32()),
                ChecksumAlgorithm::Crc32C => (got.checksum_crc32_c(), head.checksum_crc32_c()),
                ChecksumAlgorithm::Sha1 => (got.checksum_sha1(), head.checksum_sha1()),
                ChecksumAlgorithm::Crc64Nvme => (got.checksum_crc64_nvme(), head.checksum_crc64_nvme()),
                _ => (got.checksum_sha256(), head.checksum_sha256()),
            };
            assert_eq!(g, Some(want.as_str()), "{key}: GetObject");
            assert_eq!(h, Some(want.as_str()), "{key}: HeadObject");
            assert!(got.body.collect().await?.into_bytes()[..] == data[..], "{key}: bytes differ");
        }
    }
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_put_carries_a_crc32_that_is_verified_and_stored() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(9, 2 * MIB + 3);
    let want = expected_checksum(&ChecksumAlgorithm::Crc32, &data);
    for kind in [BodyKind::Streaming, BodyKind::InMemory] {
        let key = format!("{kind:?}");
        let spy = Spy::default();
        let (body, _file) = body_of(kind, &data).await?;
        let out = c.put_object().bucket("bkt").key(&key).body(body).customize().interceptor(spy.clone()).send().await?;
        assert_checksum_sent_as(&spy, kind, &ChecksumAlgorithm::Crc32);
        assert_eq!(out.checksum_crc32(), Some(want.as_str()), "{kind:?}");
        let head = c.head_object().bucket("bkt").key(&key).checksum_mode(ChecksumMode::Enabled).send().await?;
        assert_eq!(head.checksum_crc32(), Some(want.as_str()), "{kind:?}");
        assert_eq!(head.content_encoding(), None, "{kind:?}: aws-chunked is not the object's encoding");
        assert!(get(&c, "bkt", &key).await? == data, "{kind:?}: bytes differ");
    }
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_explicit_checksum_is_bad_digest_and_stores_nothing() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let r = c
        .put_object()
        .bucket("bkt")
        .key("k")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(pattern(10, 5000)))
        .send()
        .await;
    let (status, code) = failure(r);
    assert_eq!((status, code.as_str()), (400, "BadDigest"));
    assert!(!exists(&c, "bkt", "k").await?);

    let r = c
        .put_object()
        .bucket("bkt")
        .key("k")
        .checksum_sha256(b64(&[0u8; 32]))
        .body(ByteStream::from(pattern(10, 5000)))
        .send()
        .await;
    assert_eq!(failure(r), (400, "BadDigest".to_string()));
    assert!(!exists(&c, "bkt", "k").await?);

    let r = c
        .put_object()
        .bucket("bkt")
        .key("k")
        .checksum_crc64_nvme(b64(&[7u8; 8]))
        .body(ByteStream::from(pattern(10, 5000)))
        .send()
        .await;
    assert_eq!(failure(r), (400, "BadDigest".to_string()));
    assert!(!exists(&c, "bkt", "k").await?);
    node.stop().await;
    Ok(())
}

/// CRC64NVME on a multipart upload is a FULL_OBJECT checksum (S3 has no composite CRC64NVME): the object's
/// checksum is the CRC of all its bytes, however they were split, and a wrong one given at completion is
/// refused. CRC32C asked for as FULL_OBJECT is combined the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_full_object_checksums_are_the_whole_objects() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(12, 11 * MIB + 77);
    let (first, second) = data.split_at(5 * MIB + 1);
    for (alg, key) in [(ChecksumAlgorithm::Crc64Nvme, "nvme"), (ChecksumAlgorithm::Crc32C, "crc32c")] {
        let created = c
            .create_multipart_upload()
            .bucket("bkt")
            .key(key)
            .checksum_algorithm(alg.clone())
            .checksum_type(aws_sdk_s3::types::ChecksumType::FullObject)
            .send()
            .await?;
        assert_eq!(created.checksum_type(), Some(&aws_sdk_s3::types::ChecksumType::FullObject));
        let upload = created.upload_id().context("upload id")?.to_string();
        let mut parts = Vec::new();
        for (n, bytes) in [(1, first), (2, second)] {
            let out = c
                .upload_part()
                .bucket("bkt")
                .key(key)
                .upload_id(&upload)
                .part_number(n)
                .checksum_algorithm(alg.clone())
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await?;
            let part = CompletedPart::builder().part_number(n).e_tag(out.e_tag().context("etag")?);
            parts.push(
                match alg {
                    ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(out.checksum_crc64_nvme().context("crc")?),
                    _ => part.checksum_crc32_c(out.checksum_crc32_c().context("crc")?),
                }
                .build(),
            );
        }
        let whole = expected_checksum(&alg, &data);
        let complete = |given: String| {
            let done = c
                .complete_multipart_upload()
                .bucket("bkt")
                .key(key)
                .upload_id(&upload)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build());
            match alg {
                ChecksumAlgorithm::Crc64Nvme => done.checksum_crc64_nvme(given),
                _ => done.checksum_crc32_c(given),
            }
            .send()
        };
        assert_eq!(failure(complete(b64(&[1u8; 8][..whole.len() / 2])).await).1, "BadDigest");
        let done = complete(whole.clone()).await?;
        let got = match alg {
            ChecksumAlgorithm::Crc64Nvme => done.checksum_crc64_nvme(),
            _ => done.checksum_crc32_c(),
        };
        assert_eq!(got, Some(whole.as_str()), "{key}: the completion answers the whole object's checksum");
        let head = c.head_object().bucket("bkt").key(key).checksum_mode(ChecksumMode::Enabled).send().await?;
        let stored = match alg {
            ChecksumAlgorithm::Crc64Nvme => head.checksum_crc64_nvme(),
            _ => head.checksum_crc32_c(),
        };
        assert_eq!(stored, Some(whole.as_str()), "{key}: HEAD");
        assert_eq!(head.checksum_type(), Some(&aws_sdk_s3::types::ChecksumType::FullObject));
        assert!(get(&c, "bkt", key).await? == data);
    }
    let r = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("no")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(aws_sdk_s3::types::ChecksumType::Composite)
        .send()
        .await;
    assert_eq!(failure(r), (400, "InvalidRequest".to_string()), "CRC64NVME is full-object only");
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_object_removes_existing_keys_and_succeeds_on_missing_ones() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", b"bye").await?;
    c.delete_object().bucket("bkt").key("k").send().await?;
    assert!(!exists(&c, "bkt", "k").await?);
    let (status, code) = failure(c.get_object().bucket("bkt").key("k").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));

    c.delete_object().bucket("bkt").key("k").send().await?;
    c.delete_object().bucket("bkt").key("never-was").send().await?;
    node.stop().await;
    Ok(())
}

fn identifiers(keys: &[&str]) -> anyhow::Result<Vec<ObjectIdentifier>> {
    Ok(keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build()).collect::<Result<_, _>>()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_objects_reports_every_key_unless_quiet_and_removes_them() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    for k in ["a", "b", "c", "keep", "q1", "q2"] {
        put(&c, "bkt", k, k.as_bytes()).await?;
    }

    let delete = Delete::builder().set_objects(Some(identifiers(&["a", "b", "c", "missing"])?)).build()?;
    let out = c.delete_objects().bucket("bkt").delete(delete).send().await?;
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["a", "b", "c", "missing"]);
    assert!(out.errors().is_empty(), "{:?}", out.errors());

    let delete = Delete::builder().set_objects(Some(identifiers(&["q1", "q2", "missing"])?)).quiet(true).build()?;
    let out = c.delete_objects().bucket("bkt").delete(delete).send().await?;
    assert!(out.deleted().is_empty(), "quiet mode lists no successes: {:?}", out.deleted());
    assert!(out.errors().is_empty());

    let left = c.list_objects_v2().bucket("bkt").send().await?;
    let keys: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["keep"]);

    let delete = Delete::builder().set_objects(Some(identifiers(&["keep"])?)).build()?;
    let (status, code) = failure(c.delete_objects().bucket("nobucket").delete(delete).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// CopyObject
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_with_the_copy_directive_keeps_metadata_and_etag() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("src").await?;
    c.create_bucket().bucket("dst").send().await?;
    let data = pattern(11, 2 * MIB + 100);
    let put = c
        .put_object()
        .bucket("src")
        .key("orig")
        .content_type("image/png")
        .metadata("origin", "camera")
        .body(ByteStream::from(data.clone()))
        .send()
        .await?;
    let out = c.copy_object().bucket("dst").key("copy").copy_source("src/orig").send().await?;
    let result = out.copy_object_result().context("CopyObjectResult")?;
    assert_eq!(result.e_tag(), put.e_tag());

    let head = c.head_object().bucket("dst").key("copy").send().await?;
    assert_eq!(head.e_tag(), put.e_tag());
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("camera"));
    assert_eq!(get(&c, "dst", "copy").await?, data);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object_with_the_replace_directive_replaces_metadata_and_content_type() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    c.put_object()
        .bucket("bkt")
        .key("orig")
        .content_type("image/png")
        .metadata("origin", "camera")
        .body(ByteStream::from_static(b"pixels"))
        .send()
        .await?;
    c.copy_object()
        .bucket("bkt")
        .key("copy")
        .copy_source("bkt/orig")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("origin", "scanner")
        .metadata("extra", "yes")
        .send()
        .await?;
    let head = c.head_object().bucket("bkt").key("copy").send().await?;
    assert_eq!(head.content_type(), Some("text/plain"));
    let meta = head.metadata().context("metadata")?;
    assert_eq!(meta.len(), 2, "{meta:?}");
    assert_eq!(meta.get("origin").map(String::as_str), Some("scanner"));
    assert_eq!(meta.get("extra").map(String::as_str), Some("yes"));
    assert_eq!(get(&c, "bkt", "copy").await?, b"pixels");

    let orig = c.head_object().bucket("bkt").key("orig").send().await?;
    assert_eq!(orig.content_type(), Some("image/png"), "the source is untouched");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_an_object_onto_itself_needs_the_replace_directive() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    c.put_object().bucket("bkt").key("k").metadata("v", "1").body(ByteStream::from_static(b"self")).send().await?;

    let (status, code) = failure(c.copy_object().bucket("bkt").key("k").copy_source("bkt/k").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"));

    c.copy_object()
        .bucket("bkt")
        .key("k")
        .copy_source("bkt/k")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("v", "2")
        .send()
        .await?;
    let head = c.head_object().bucket("bkt").key("k").send().await?;
    assert_eq!(head.metadata().and_then(|m| m.get("v")).map(String::as_str), Some("2"));
    assert_eq!(get(&c, "bkt", "k").await?, b"self");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_a_missing_source_is_no_such_key() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let (status, code) = failure(c.copy_object().bucket("bkt").key("dst").copy_source("bkt/missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
    assert!(!exists(&c, "bkt", "dst").await?);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_outlives_the_deletion_of_its_source() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(12, 3 * MIB + 17);
    put(&c, "bkt", "orig", &data).await?;
    c.copy_object().bucket("bkt").key("copy").copy_source("bkt/orig").send().await?;
    c.delete_object().bucket("bkt").key("orig").send().await?;
    put(&c, "bkt", "orig", b"new bytes under the old name").await?;
    assert_eq!(get(&c, "bkt", "copy").await?, data);
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------------

fn numbered_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k/{i:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v2_pages_with_continuation_tokens_until_complete() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let keys = numbered_keys(25);
    for k in &keys {
        put(&c, "bkt", k, k.as_bytes()).await?;
    }
    put(&c, "bkt", "other", b"x").await?;

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = c
            .list_objects_v2()
            .bucket("bkt")
            .prefix("k/")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await?;
        pages += 1;
        assert!(out.contents().len() <= 7);
        assert_eq!(out.key_count(), Some(out.contents().len() as i32));
        for o in out.contents() {
            assert_eq!(o.size(), Some(4));
            assert_eq!(o.e_tag(), Some(quoted(&md5_hex(o.key().unwrap().as_bytes())).as_str()));
        }
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        if out.is_truncated() == Some(true) {
            token =
                Some(out.next_continuation_token().context("a truncated page has a continuation token")?.to_string());
        } else {
            assert!(out.next_continuation_token().is_none());
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, keys);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v1_pages_with_markers_until_complete() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let keys = numbered_keys(25);
    for k in &keys {
        put(&c, "bkt", k, b"v").await?;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..10 {
        let out = c.list_objects().bucket("bkt").max_keys(7).set_marker(marker.clone()).send().await?;
        assert!(out.contents().len() <= 7);
        seen.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        if out.is_truncated() != Some(true) {
            marker = None;
            break;
        }
        marker = Some(out.next_marker().or(seen.last().map(String::as_str)).context("a marker")?.to_string());
    }
    assert!(marker.is_none(), "paging does not end");
    assert_eq!(seen, keys);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_group_keys_under_a_delimiter_into_common_prefixes() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    for k in ["a/1", "a/2", "a/deep/3", "b/1", "c", "d.txt"] {
        put(&c, "bkt", k, b"x").await?;
    }
    let out = c.list_objects_v2().bucket("bkt").delimiter("/").send().await?;
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(keys, ["c", "d.txt"]);
    assert_eq!(prefixes, ["a/", "b/"]);
    assert_eq!(out.key_count(), Some(4));

    let out = c.list_objects_v2().bucket("bkt").prefix("a/").delimiter("/").send().await?;
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(keys, ["a/1", "a/2"]);
    assert_eq!(prefixes, ["a/deep/"]);

    let out = c.list_objects().bucket("bkt").delimiter("/").send().await?;
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(keys, ["c", "d.txt"]);
    assert_eq!(prefixes, ["a/", "b/"]);

    let out = c.list_objects_v2().bucket("bkt").prefix("a/").send().await?;
    let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["a/1", "a/2", "a/deep/3"]);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v2_starts_after_the_given_key() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let keys = numbered_keys(12);
    for k in &keys {
        put(&c, "bkt", k, b"x").await?;
    }
    let out = c.list_objects_v2().bucket("bkt").start_after("k/07").send().await?;
    let got: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, ["k/08", "k/09", "k/10", "k/11"]);
    assert_eq!(out.start_after(), Some("k/07"));

    // A start-after between keys and one past the end.
    let out = c.list_objects_v2().bucket("bkt").start_after("k/07x").send().await?;
    assert_eq!(out.contents().first().and_then(|o| o.key()), Some("k/08"));
    let out = c.list_objects_v2().bucket("bkt").start_after("zzz").send().await?;
    assert!(out.contents().is_empty());
    assert_eq!(out.is_truncated(), Some(false));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_encoded_listings_escape_spaces_and_plus_signs() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let keys = ["dir one/a b.txt", "dir one/c+d.txt", "plain", "x+y z/%pct"];
    for k in keys {
        put(&c, "bkt", k, b"x").await?;
    }
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();

    let v2 = c.list_objects_v2().bucket("bkt").encoding_type(EncodingType::Url).send().await?;
    assert_eq!(v2.encoding_type(), Some(&EncodingType::Url));
    let v1 = c.list_objects().bucket("bkt").encoding_type(EncodingType::Url).send().await?;
    // aws-sdk-s3 (Rust) returns the keys as the server encoded them; a client decodes them.
    for raw in [
        v2.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(),
        v1.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>(),
    ] {
        for k in &raw {
            assert!(!k.contains(' ') && !k.contains('+'), "{k:?} was not URL-encoded");
        }
        let decoded: Vec<String> = raw.iter().map(|k| url_decode(k)).collect();
        assert_eq!(decoded, want);
    }

    let out = c
        .list_objects_v2()
        .bucket("bkt")
        .prefix("dir one/")
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .send()
        .await?;
    let decoded: Vec<String> = out.contents().iter().filter_map(|o| o.key()).map(url_decode).collect();
    assert_eq!(decoded, ["dir one/a b.txt", "dir one/c+d.txt"]);
    assert_eq!(out.prefix().map(url_decode).as_deref(), Some("dir one/"));

    let out = c.list_objects_v2().bucket("bkt").delimiter(" ").encoding_type(EncodingType::Url).send().await?;
    let prefixes: Vec<String> = out.common_prefixes().iter().filter_map(|p| p.prefix()).map(url_decode).collect();
    assert_eq!(prefixes, ["dir ", "x+y "]);

    // Without encoding-type the keys come back verbatim.
    let plain = c.list_objects_v2().bucket("bkt").send().await?;
    let raw: Vec<&str> = plain.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(raw, want);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_missing_bucket_is_no_such_bucket() -> anyhow::Result<()> {
    let (node, c) = start().await?;
    let (status, code) = failure(c.list_objects_v2().bucket("missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let (status, code) = failure(c.list_objects().bucket("missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let (status, code) = failure(c.list_multipart_uploads().bucket("missing").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Multipart uploads
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_completes_into_the_concatenation_of_its_parts() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let parts = [pattern(21, 5 * MIB), pattern(22, 5 * MIB), pattern(23, MIB + 3)];
    let upload = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("mp/obj")
        .content_type("application/x-parts")
        .metadata("kind", "multipart")
        .send()
        .await?;
    let upload_id = upload.upload_id().context("upload id")?.to_string();
    let other = create_upload(&c, "bkt", "other/obj").await?;

    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let etag = upload_part(&c, "bkt", "mp/obj", &upload_id, i as i32 + 1, p.clone()).await?;
        assert_eq!(etag, quoted(&md5_hex(p)), "part {}", i + 1);
        etags.push(etag);
    }

    let listed = c.list_parts().bucket("bkt").key("mp/obj").upload_id(&upload_id).send().await?;
    let got: Vec<(i32, i64, &str)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or(0), p.size().unwrap_or(-1), p.e_tag().unwrap_or("")))
        .collect();
    let want: Vec<(i32, i64, &str)> =
        parts.iter().zip(&etags).enumerate().map(|(i, (p, e))| (i as i32 + 1, p.len() as i64, e.as_str())).collect();
    assert_eq!(got, want);
    assert_eq!(listed.is_truncated(), Some(false));

    let uploads = c.list_multipart_uploads().bucket("bkt").prefix("mp/").send().await?;
    let found: Vec<(&str, &str)> =
        uploads.uploads().iter().map(|u| (u.key().unwrap_or(""), u.upload_id().unwrap_or(""))).collect();
    assert_eq!(found, [("mp/obj", upload_id.as_str())]);
    let all = c.list_multipart_uploads().bucket("bkt").send().await?;
    let mut ids: Vec<&str> = all.uploads().iter().filter_map(|u| u.upload_id()).collect();
    ids.sort();
    let mut want_ids = vec![upload_id.as_str(), other.as_str()];
    want_ids.sort();
    assert_eq!(ids, want_ids);

    let part_refs: Vec<(i32, &str)> = etags.iter().enumerate().map(|(i, e)| (i as i32 + 1, e.as_str())).collect();
    let done = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("mp/obj")
        .upload_id(&upload_id)
        .multipart_upload(completed(&part_refs))
        .send()
        .await?;
    let want_etag = multipart_etag(&parts.iter().map(|p| md5_raw(p)).collect::<Vec<_>>());
    assert_eq!(done.e_tag(), Some(want_etag.as_str()));

    let whole = parts.concat();
    assert!(get(&c, "bkt", "mp/obj").await? == whole, "the object is not the concatenation of its parts");
    let head = c.head_object().bucket("bkt").key("mp/obj").send().await?;
    assert_eq!(head.parts_count(), Some(3));
    assert_eq!(head.e_tag(), Some(want_etag.as_str()));
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.content_type(), Some("application/x-parts"));
    assert_eq!(head.metadata().and_then(|m| m.get("kind")).map(String::as_str), Some("multipart"));

    let spy = Spy::default();
    let p2 =
        c.get_object().bucket("bkt").key("mp/obj").part_number(2).customize().interceptor(spy.clone()).send().await?;
    assert_eq!(spy.status(), 206);
    assert_eq!(p2.parts_count(), Some(3));
    assert_eq!(p2.content_length(), Some(parts[1].len() as i64));
    assert_eq!(p2.content_range(), Some(format!("bytes {}-{}/{}", 5 * MIB, 10 * MIB - 1, whole.len()).as_str()));
    assert!(p2.body.collect().await?.into_bytes()[..] == parts[1][..]);

    // A range across the part boundary.
    let out = c
        .get_object()
        .bucket("bkt")
        .key("mp/obj")
        .range(format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9))
        .send()
        .await?;
    assert!(out.body.collect().await?.into_bytes()[..] == whole[5 * MIB - 10..5 * MIB + 10]);

    let left = c.list_multipart_uploads().bucket("bkt").send().await?;
    let ids: Vec<&str> = left.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, [other.as_str()], "a completed upload is no longer listed");
    let (status, code) = failure(c.list_parts().bucket("bkt").key("mp/obj").upload_id(&upload_id).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_uploading_a_part_number_replaces_the_part() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    upload_part(&c, "bkt", "k", &upload, 1, pattern(31, 5 * MIB)).await?;
    let first = pattern(32, 5 * MIB + 1);
    let e1 = upload_part(&c, "bkt", "k", &upload, 1, first.clone()).await?;
    let second = pattern(33, 1234);
    let e2 = upload_part(&c, "bkt", "k", &upload, 2, second.clone()).await?;

    let listed = c.list_parts().bucket("bkt").key("k").upload_id(&upload).send().await?;
    let got: Vec<(i32, i64, &str)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or(0), p.size().unwrap_or(-1), p.e_tag().unwrap_or("")))
        .collect();
    assert_eq!(got, [(1, first.len() as i64, e1.as_str()), (2, 1234, e2.as_str())]);

    c.complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await?;
    assert!(get(&c, "bkt", "k").await? == [first, second].concat());
    node.stop().await;
    Ok(())
}

/// Two uploads of one part number overlap, and the one that started first finishes last: it is the part (as
/// in S3, the upload that completes last wins), and the other's shards become garbage that scrub deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_uploads_of_one_part_the_last_to_complete_wins() -> anyhow::Result<()> {
    let node = TestNode::builder().fault_injection(true).start().await?;
    let c = client(&node);
    c.create_bucket().bucket("bkt").send().await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    let (early, late) = (pattern(51, 5 * MIB + 3), pattern(52, 5 * MIB + 4));
    let before = hoard_it::shard_files(&node.disk_paths());

    // The first upload is held just before it commits, while the second runs from start to end.
    let gate = Gate::new();
    node.faults().arm_times("put.before_commit", Fault::Gate(gate.clone()), Some(1));
    let first = tokio::spawn({
        let (c, upload, early) = (c.clone(), upload.clone(), early.clone());
        async move { upload_part(&c, "bkt", "k", &upload, 1, early).await }
    });
    gate.reached(1).await;
    let late_etag = upload_part(&c, "bkt", "k", &upload, 1, late.clone()).await?;
    gate.open();
    let early_etag = first.await??;
    assert_ne!(early_etag, late_etag);

    let listed = c.list_parts().bucket("bkt").key("k").upload_id(&upload).send().await?;
    let got: Vec<(i32, &str)> =
        listed.parts().iter().map(|p| (p.part_number().unwrap_or(0), p.e_tag().unwrap_or(""))).collect();
    assert_eq!(got, [(1, early_etag.as_str())], "the upload that completed last is the part");
    let (status, code) = failure(
        c.complete_multipart_upload()
            .bucket("bkt")
            .key("k")
            .upload_id(&upload)
            .multipart_upload(completed(&[(1, &late_etag)]))
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidPart"), "the replaced part cannot be completed");
    c.complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload)
        .multipart_upload(completed(&[(1, &early_etag)]))
        .send()
        .await?;
    assert!(get(&c, "bkt", "k").await? == early, "the object is the part that completed last");

    let report = node.scrub_now().await?;
    assert_eq!(report.garbage_deleted, 6, "the replaced part's six shards are collected: {report:?}");
    let after = hoard_it::shard_files(&node.disk_paths());
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(added.len(), 1, "one segment, the winner's, remains: {added:?}");
    assert!(get(&c, "bkt", "k").await? == early);
    node.stop().await;
    Ok(())
}

/// As in S3: DeleteBucket refuses a bucket that holds an object, and deletes one that holds only unfinished
/// multipart uploads, aborting them (their parts' shards are collected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bucket_with_only_unfinished_uploads_aborts_them() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let before = hoard_it::shard_files(&node.disk_paths());
    let upload = create_upload(&c, "bkt", "k").await?;
    upload_part(&c, "bkt", "k", &upload, 1, pattern(61, 300_000)).await?;
    create_upload(&c, "bkt", "empty-upload").await?;
    put(&c, "bkt", "obj", b"an object").await?;
    let (status, code) = failure(c.delete_bucket().bucket("bkt").send().await);
    assert_eq!((status, code.as_str()), (409, "BucketNotEmpty"));
    assert_eq!(c.list_multipart_uploads().bucket("bkt").send().await?.uploads().len(), 2, "nothing was aborted");

    c.delete_object().bucket("bkt").key("obj").send().await?;
    c.delete_bucket().bucket("bkt").send().await?;
    let buckets = c.list_buckets().send().await?;
    assert!(buckets.buckets().is_empty(), "{buckets:?}");
    let (status, code) = failure(c.list_parts().bucket("bkt").key("k").upload_id(&upload).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchBucket"));
    let report = node.scrub_now().await?;
    assert_eq!(report.garbage_deleted, 6, "the aborted part's six shards are collected: {report:?}");
    assert_eq!(hoard_it::shard_files(&node.disk_paths()), before, "no shard file is left");
    c.create_bucket().bucket("bkt").send().await?;
    assert!(c.list_multipart_uploads().bucket("bkt").send().await?.uploads().is_empty(), "a new bucket starts empty");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_is_gone() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    upload_part(&c, "bkt", "k", &upload, 1, pattern(41, 1000)).await?;
    c.abort_multipart_upload().bucket("bkt").key("k").upload_id(&upload).send().await?;

    let (status, code) = failure(c.list_parts().bucket("bkt").key("k").upload_id(&upload).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));
    assert!(c.list_multipart_uploads().bucket("bkt").send().await?.uploads().is_empty());
    let r = c
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload)
        .part_number(2)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(failure(r), (404, "NoSuchUpload".to_string()));
    assert!(!exists(&c, "bkt", "k").await?);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_to_or_completing_a_missing_upload_is_no_such_upload() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let r = c
        .upload_part()
        .bucket("bkt")
        .key("k")
        .upload_id("00000000000000000000000000000000")
        .part_number(1)
        .body(ByteStream::from_static(b"orphan"))
        .send()
        .await;
    assert_eq!(failure(r), (404, "NoSuchUpload".to_string()));
    let r = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id("00000000000000000000000000000000")
        .multipart_upload(completed(&[(1, "\"00\"")]))
        .send()
        .await;
    assert_eq!(failure(r), (404, "NoSuchUpload".to_string()));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_refuses_bad_part_lists_and_keeps_the_upload() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    let parts = [pattern(51, 5 * MIB), pattern(52, 5 * MIB), pattern(53, 10)];
    let mut e = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        e.push(upload_part(&c, "bkt", "k", &upload, i as i32 + 1, p.clone()).await?);
    }
    let complete = |list: CompletedMultipartUpload| {
        c.complete_multipart_upload().bucket("bkt").key("k").upload_id(&upload).multipart_upload(list).send()
    };

    let (status, code) = failure(complete(completed(&[(2, &e[1]), (1, &e[0])])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPartOrder"), "descending");
    let (status, code) = failure(complete(completed(&[(1, &e[0]), (1, &e[0])])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPartOrder"), "repeated");
    let (status, code) = failure(complete(completed(&[(1, &e[0]), (2, &e[1]), (4, &e[2])])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPart"), "never uploaded");
    let wrong = quoted(&md5_hex(b"not the part"));
    let (status, code) = failure(complete(completed(&[(1, &wrong), (2, &e[1])])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPart"), "wrong ETag");
    assert!(!exists(&c, "bkt", "k").await?, "a refused Complete stores nothing");

    // The upload survived every refusal; a correct list still completes it, leaving out part 2.
    let done = complete(completed(&[(1, &e[0]), (3, &e[2])])).await?;
    assert_eq!(done.e_tag(), Some(multipart_etag(&[md5_raw(&parts[0]), md5_raw(&parts[2])]).as_str()));
    assert!(get(&c, "bkt", "k").await? == [parts[0].clone(), parts[2].clone()].concat());
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_last_part_under_5_mib_is_entity_too_small() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    let e1 = upload_part(&c, "bkt", "k", &upload, 1, pattern(61, MIB)).await?;
    let e2 = upload_part(&c, "bkt", "k", &upload, 2, pattern(62, MIB)).await?;
    let r = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await;
    assert_eq!(failure(r), (400, "EntityTooSmall".to_string()));
    assert!(!exists(&c, "bkt", "k").await?);

    // A single small part is also the last one, and is fine.
    c.complete_multipart_upload()
        .bucket("bkt")
        .key("k")
        .upload_id(&upload)
        .multipart_upload(completed(&[(2, &e2)]))
        .send()
        .await?;
    assert_eq!(get(&c, "bkt", "k").await?, pattern(62, MIB));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_numbers_outside_1_to_10000_are_invalid_argument() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let upload = create_upload(&c, "bkt", "k").await?;
    for n in [0, 10_001, -1] {
        let r = c
            .upload_part()
            .bucket("bkt")
            .key("k")
            .upload_id(&upload)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(failure(r), (400, "InvalidArgument".to_string()), "part number {n}");
    }
    upload_part(&c, "bkt", "k", &upload, 10_000, b"last possible".to_vec()).await?;
    let listed = c.list_parts().bucket("bkt").key("k").upload_id(&upload).send().await?;
    let numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, [10_000]);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_builds_an_object_from_a_copied_range_and_an_uploaded_part() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let src = pattern(71, 6 * MIB + 12_345);
    put(&c, "bkt", "src", &src).await?;
    let upload = create_upload(&c, "bkt", "dst").await?;

    let (first, last) = (1000, 1000 + 5 * MIB - 1);
    let copied = c
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&upload)
        .part_number(1)
        .copy_source("bkt/src")
        .copy_source_range(format!("bytes={first}-{last}"))
        .send()
        .await?;
    let range = &src[first..=last];
    let e1 = copied.copy_part_result().and_then(|r| r.e_tag()).context("CopyPartResult ETag")?.to_string();
    assert_eq!(e1, quoted(&md5_hex(range)));
    let tail = pattern(72, 70_000);
    let e2 = upload_part(&c, "bkt", "dst", &upload, 2, tail.clone()).await?;

    let listed = c.list_parts().bucket("bkt").key("dst").upload_id(&upload).send().await?;
    let sizes: Vec<i64> = listed.parts().iter().filter_map(|p| p.size()).collect();
    assert_eq!(sizes, [5 * MIB as i64, 70_000]);

    let done = c
        .complete_multipart_upload()
        .bucket("bkt")
        .key("dst")
        .upload_id(&upload)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await?;
    assert_eq!(done.e_tag(), Some(multipart_etag(&[md5_raw(range), md5_raw(&tail)]).as_str()));
    assert!(get(&c, "bkt", "dst").await? == [range, &tail[..]].concat(), "the object differs from range + part");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy_refuses_bad_ranges_and_missing_sources() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "src", &pattern(73, 1000)).await?;
    let upload = create_upload(&c, "bkt", "dst").await?;
    for range in ["bytes=500-100", "bytes=0-1000", "bytes=2000-3000", "0-10", "bytes=a-b"] {
        let r = c
            .upload_part_copy()
            .bucket("bkt")
            .key("dst")
            .upload_id(&upload)
            .part_number(1)
            .copy_source("bkt/src")
            .copy_source_range(range)
            .send()
            .await;
        let (status, code) = failure(r);
        assert!((400..500).contains(&status), "{range}: status {status}");
        assert!(code == "InvalidRange" || code == "InvalidArgument", "{range}: code {code}");
    }
    let r = c
        .upload_part_copy()
        .bucket("bkt")
        .key("dst")
        .upload_id(&upload)
        .part_number(1)
        .copy_source("bkt/missing")
        .send()
        .await;
    assert_eq!(failure(r), (404, "NoSuchKey".to_string()));

    let listed = c.list_parts().bucket("bkt").key("dst").upload_id(&upload).send().await?;
    assert!(listed.parts().is_empty(), "a refused copy stores no part");
    node.stop().await;
    Ok(())
}

/// 1 GiB in 64 parts of 16 MiB, generated on the fly and checked while streaming back; at most a few parts
/// are in memory at any time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Makes test data on the blocking pool, started ahead of the stream that sends it; a real-time test, never inline.
#[allow(clippy::disallowed_methods)]
async fn a_one_gib_multipart_object_streams_back_byte_identical() -> anyhow::Result<()> {
    const PART: usize = 16 * MIB;
    const PARTS: usize = 64;
    const IN_FLIGHT: usize = 2;
    let seed = |i: usize| 10_000 + i as u64;
    let (node, c) = start_with_bucket("big").await?;
    let upload = create_upload(&c, "big", "gib").await?;

    let mut running = VecDeque::new();
    let mut done: Vec<(i32, String, [u8; 16])> = Vec::with_capacity(PARTS);
    for i in 0..PARTS {
        if running.len() == IN_FLIGHT {
            let joined: tokio::task::JoinHandle<anyhow::Result<_>> = running.pop_front().unwrap();
            done.push(joined.await??);
        }
        let (c, upload) = (c.clone(), upload.clone());
        running.push_back(tokio::spawn(async move {
            let data = tokio::task::spawn_blocking(move || pattern(seed(i), PART)).await?;
            // The client's own MD5 of every part would double the test's CPU; one part checks the server's.
            let md5 = (i == 0).then(|| md5_raw(&data));
            let n = i as i32 + 1;
            let etag = upload_part(&c, "big", "gib", &upload, n, data).await?;
            if let Some(md5) = md5 {
                anyhow::ensure!(etag == quoted(&hex::encode(md5)), "part {n} ETag {etag}");
            }
            let raw: [u8; 16] =
                hex::decode(etag.trim_matches('"'))?.try_into().map_err(|_| anyhow::anyhow!("ETag {etag}"))?;
            Ok((n, etag, raw))
        }));
    }
    for joined in running {
        done.push(joined.await??);
    }

    let refs: Vec<(i32, &str)> = done.iter().map(|(n, e, _)| (*n, e.as_str())).collect();
    let out = c
        .complete_multipart_upload()
        .bucket("big")
        .key("gib")
        .upload_id(&upload)
        .multipart_upload(completed(&refs))
        .send()
        .await?;
    let want_etag = multipart_etag(&done.iter().map(|(_, _, m)| *m).collect::<Vec<_>>());
    assert_eq!(out.e_tag(), Some(want_etag.as_str()));

    let mut got = c.get_object().bucket("big").key("gib").send().await?;
    assert_eq!(got.content_length(), Some((PART * PARTS) as i64));
    assert_eq!(got.e_tag(), Some(want_etag.as_str()));
    // The next part's expected bytes are generated while the current one streams in.
    let regenerate = |p: usize| tokio::task::spawn_blocking(move || pattern(seed(p), PART));
    let (mut part, mut offset, mut total) = (0usize, 0usize, 0usize);
    let mut expected = regenerate(0).await?;
    let mut upcoming = Some(regenerate(1));
    while let Some(chunk) = got.body.next().await {
        let mut chunk = &chunk?[..];
        total += chunk.len();
        while !chunk.is_empty() {
            anyhow::ensure!(part < PARTS, "the body is longer than {} bytes", PART * PARTS);
            let n = chunk.len().min(PART - offset);
            if chunk[..n] != expected[offset..offset + n] {
                anyhow::bail!("bytes differ in part {} at offset {}", part + 1, offset);
            }
            chunk = &chunk[n..];
            offset += n;
            if offset == PART {
                part += 1;
                offset = 0;
                if let Some(next) = upcoming.take() {
                    expected = next.await?;
                    upcoming = (part + 1 < PARTS).then(|| regenerate(part + 1));
                }
            }
        }
    }
    assert_eq!(total, PART * PARTS);
    assert_eq!((part, offset), (PARTS, 0));
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Authentication and presigned URLs
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_signature_does_not_match() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let bad = client_for(&node.endpoint(), node.access_key(), "not-the-secret");
    let (status, code) = failure(bad.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "SignatureDoesNotMatch"));
    let r = bad.put_object().bucket("bkt").key("k").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(failure(r), (403, "SignatureDoesNotMatch".to_string()));
    assert!(!exists(&c, "bkt", "k").await?);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_access_key_is_invalid_access_key_id() -> anyhow::Result<()> {
    let (node, _c) = start().await?;
    let stranger = client_for(&node.endpoint(), "nobody", node.secret_key());
    let (status, code) = failure(stranger.list_buckets().send().await);
    assert_eq!((status, code.as_str()), (403, "InvalidAccessKeyId"));
    node.stop().await;
    Ok(())
}

fn presigned_headers(p: &aws_sdk_s3::presigning::PresignedRequest) -> Vec<(String, String)> {
    p.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The URL with the last hex digit of its `X-Amz-Signature` changed.
fn tamper(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").expect("a signature parameter") + "X-Amz-Signature=".len();
    let end = url[at..].find('&').map_or(url.len(), |e| at + e);
    let mut s = url.to_string();
    let last = &url[end - 1..end];
    s.replace_range(end - 1..end, if last == "0" { "1" } else { "0" });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_put_and_get_work_over_plain_http_and_a_tampered_signature_is_403() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let expiry = PresigningConfig::expires_in(Duration::from_secs(300))?;
    let data = pattern(81, 200_000);

    let put_req = c.put_object().bucket("bkt").key("signed").presigned(expiry.clone()).await?;
    assert_eq!(put_req.method(), "PUT");
    let tampered = raw_http(node.addr(), "PUT", &tamper(put_req.uri()), &presigned_headers(&put_req), &data).await?;
    assert_eq!(tampered.status, 403, "{}", String::from_utf8_lossy(&tampered.body));
    assert!(String::from_utf8_lossy(&tampered.body).contains("SignatureDoesNotMatch"));
    assert!(!exists(&c, "bkt", "signed").await?, "a refused presigned PUT stores nothing");

    let resp = raw_http(node.addr(), "PUT", put_req.uri(), &presigned_headers(&put_req), &data).await?;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(get(&c, "bkt", "signed").await?, data);

    let get_req = c.get_object().bucket("bkt").key("signed").presigned(expiry).await?;
    let resp = raw_http(node.addr(), "GET", get_req.uri(), &presigned_headers(&get_req), b"").await?;
    assert_eq!(resp.status, 200);
    assert!(resp.body == data, "presigned GET returned other bytes");

    let tampered = raw_http(node.addr(), "GET", &tamper(get_req.uri()), &presigned_headers(&get_req), b"").await?;
    assert_eq!(tampered.status, 403);
    assert!(String::from_utf8_lossy(&tampered.body).contains("SignatureDoesNotMatch"));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_puts_create_only_or_replace_only_the_expected_version() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    // If-None-Match: * creates a key that does not exist yet, and refuses to overwrite one that does.
    c.put_object().bucket("bkt").key("lock").if_none_match("*").body(b"first".to_vec().into()).send().await?;
    let (status, code) = failure(
        c.put_object().bucket("bkt").key("lock").if_none_match("*").body(b"second".to_vec().into()).send().await,
    );
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    let got = c.get_object().bucket("bkt").key("lock").send().await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"first", "the refused write changed nothing");

    // If-Match replaces only the version with that ETag.
    let current = quoted(&md5_hex(b"first"));
    let (status, code) = failure(
        c.put_object()
            .bucket("bkt")
            .key("lock")
            .if_match(quoted(&md5_hex(b"other")))
            .body(b"x".to_vec().into())
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    c.put_object().bucket("bkt").key("lock").if_match(&current).body(b"third".to_vec().into()).send().await?;
    let got = c.get_object().bucket("bkt").key("lock").send().await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"third");
    let (status, code) =
        failure(c.put_object().bucket("bkt").key("absent").if_match(&current).body(b"y".to_vec().into()).send().await);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"), "If-Match on a missing key fails");
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_completion_creates_only_or_replaces_only_the_expected_version() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    async fn upload(c: &Client, key: &str, body: &[u8]) -> anyhow::Result<(String, CompletedMultipartUpload)> {
        let id = c
            .create_multipart_upload()
            .bucket("bkt")
            .key(key)
            .send()
            .await?
            .upload_id()
            .unwrap_or_default()
            .to_string();
        let part = c.upload_part().bucket("bkt").key(key).upload_id(&id).part_number(1);
        let etag = part.body(body.to_vec().into()).send().await?.e_tag().unwrap_or_default().to_string();
        let parts = CompletedPart::builder().part_number(1).e_tag(etag).build();
        Ok((id, CompletedMultipartUpload::builder().parts(parts).build()))
    }
    let complete = |id: &str, parts: CompletedMultipartUpload| {
        c.complete_multipart_upload().bucket("bkt").key("log").upload_id(id).multipart_upload(parts)
    };

    let (first, parts) = upload(&c, "log", b"first").await?;
    let done = complete(&first, parts).if_none_match("*").send().await?;
    let first_etag = done.e_tag().unwrap_or_default().to_string();

    // A second writer racing for the same key with If-None-Match: * loses, and may retry or abort.
    let (second, parts) = upload(&c, "log", b"second").await?;
    let (status, code) = failure(complete(&second, parts.clone()).if_none_match("*").send().await);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    let got = c.get_object().bucket("bkt").key("log").send().await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"first", "the refused completion changed nothing");
    let open = c.list_multipart_uploads().bucket("bkt").send().await?;
    assert_eq!(open.uploads().len(), 1, "the refused upload stays open");

    // If-Match completes only over the version with that ETag.
    let (status, code) = failure(complete(&second, parts.clone()).if_match("\"0123\"").send().await);
    assert_eq!((status, code.as_str()), (412, "PreconditionFailed"));
    complete(&second, parts).if_match(&first_etag).send().await?;
    let got = c.get_object().bucket("bkt").key("log").send().await?;
    assert_eq!(got.body.collect().await?.into_bytes().as_ref(), b"second");
    node.stop().await;
    Ok(())
}

/// A PUT with a signed aws-chunked body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), as minio-go and older SDKs
/// send it, signed here by hand: `chunks` are the body's chunks; `tamper_chunk` gets a wrong signature.
async fn signed_chunk_put(
    node: &TestNode,
    key: &str,
    chunks: &[&[u8]],
    tamper_chunk: Option<usize>,
) -> anyhow::Result<RawResponse> {
    use aws_sigv4::sign::v4::calculate_signature;
    use sha2::Digest as _;
    let sha = |data: &[u8]| hex::encode(sha2::Sha256::digest(data));

    // The server checks the date against its clock, the real one.
    let secs = hoard_storage::env::Env::now_ms(&hoard_storage::env::SystemEnv) / 1000;
    let now = DateTime::from_secs(secs).fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)?;
    let amz_date: String = now.chars().filter(|c| *c != '-' && *c != ':').collect(); // 20261123T193000Z
    let day = &amz_date[..8];
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let host = node.addr().to_string();
    let decoded: usize = chunks.iter().map(|c| c.len()).sum();
    const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let headers = [
        ("content-encoding", "aws-chunked".to_string()),
        ("host", host.clone()),
        ("x-amz-content-sha256", STREAMING.to_string()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-decoded-content-length", decoded.to_string()),
    ];
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let path = format!("/bkt/{key}");
    let canonical = format!("PUT\n{path}\n\n{canonical_headers}\n{}\n{STREAMING}", signed.join(";"));
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha(canonical.as_bytes()));
    let time = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs)?);
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(node.secret_key(), time, "us-east-1", "s3");
    let seed = calculate_signature(&signing_key, to_sign.as_bytes());
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={seed}",
        node.access_key(),
        signed.join(";")
    );

    let mut body = Vec::new();
    let mut previous = seed;
    let empty = sha(b"");
    for (i, chunk) in chunks.iter().copied().chain(std::iter::once(&[][..])).enumerate() {
        let to_sign = format!("AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}", sha(chunk));
        let mut signature = calculate_signature(&signing_key, to_sign.as_bytes());
        previous = signature.clone();
        if tamper_chunk == Some(i) {
            signature.replace_range(0..1, if signature.starts_with('0') { "1" } else { "0" });
        }
        body.extend_from_slice(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    let mut sent: Vec<(String, String)> =
        headers.iter().filter(|(k, _)| *k != "host").map(|(k, v)| (k.to_string(), v.clone())).collect();
    sent.push(("authorization".into(), authorization));
    raw_http(node.addr(), "PUT", &format!("http://{host}{path}"), &sent, &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_chunk_bodies_are_verified_chunk_by_chunk() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(17, 200_000);
    let chunks: Vec<&[u8]> = data.chunks(64 * 1024).collect();

    let ok = signed_chunk_put(&node, "signed", &chunks, None).await?;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(get(&c, "bkt", "signed").await?, data);

    // A wrong signature on a middle chunk, and on the final empty chunk: refused, nothing stored.
    for (key, bad) in [("bad-middle", 1), ("bad-last", chunks.len())] {
        let refused = signed_chunk_put(&node, key, &chunks, Some(bad)).await?;
        let text = String::from_utf8_lossy(&refused.body);
        assert_eq!(refused.status, 403, "{key}: {text}");
        assert!(text.contains("SignatureDoesNotMatch"), "{key}: {text}");
        assert!(!exists(&c, "bkt", key).await?, "{key}: a refused body stores nothing");
    }
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_object_attributes_answers_what_is_asked() -> anyhow::Result<()> {
    use aws_sdk_s3::types::ObjectAttributes as A;
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(13, 300_000);
    c.put_object()
        .bucket("bkt")
        .key("one")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from(data.clone()))
        .send()
        .await?;
    let all = [A::Etag, A::Checksum, A::ObjectSize, A::StorageClass, A::ObjectParts];
    let got =
        c.get_object_attributes().bucket("bkt").key("one").set_object_attributes(Some(all.to_vec())).send().await?;
    // Quoted, as every other ETag hoard answers (AWS writes this one bare; s3s quotes every ETag).
    assert_eq!(got.e_tag(), Some(quoted(&md5_hex(&data)).as_str()));
    assert_eq!(got.object_size(), Some(data.len() as i64));
    assert_eq!(got.storage_class(), Some(&aws_sdk_s3::types::StorageClass::Standard));
    let checksum = got.checksum().context("the checksum stored with the PUT")?;
    let crc = expected_checksum(&ChecksumAlgorithm::Crc64Nvme, &data);
    assert_eq!(checksum.checksum_crc64_nvme(), Some(crc.as_str()));
    assert!(got.object_parts().is_none(), "a single PUT has no parts");
    let only_size = c.get_object_attributes().bucket("bkt").key("one").object_attributes(A::ObjectSize).send().await?;
    assert_eq!((only_size.object_size(), only_size.e_tag()), (Some(data.len() as i64), None));

    // A multipart object lists its parts, paged.
    let upload = create_upload(&c, "bkt", "mp").await?;
    let sizes = [5 * MIB, 5 * MIB + 1, 17];
    let mut parts = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let etag = upload_part(&c, "bkt", "mp", &upload, n as i32 + 1, pattern(n as u64, *size)).await?;
        parts.push((n as i32 + 1, etag));
    }
    let named: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
    c.complete_multipart_upload()
        .bucket("bkt")
        .key("mp")
        .upload_id(&upload)
        .multipart_upload(completed(&named))
        .send()
        .await?;
    let page =
        c.get_object_attributes().bucket("bkt").key("mp").object_attributes(A::ObjectParts).max_parts(2).send().await?;
    let p = page.object_parts().context("parts")?;
    assert_eq!(
        (p.total_parts_count(), p.is_truncated(), p.next_part_number_marker()),
        (Some(3), Some(true), Some("2"))
    );
    let listed: Vec<(Option<i32>, Option<i64>)> = p.parts().iter().map(|x| (x.part_number(), x.size())).collect();
    assert_eq!(listed, [(Some(1), Some(sizes[0] as i64)), (Some(2), Some(sizes[1] as i64))]);
    let rest = c
        .get_object_attributes()
        .bucket("bkt")
        .key("mp")
        .object_attributes(A::ObjectParts)
        .part_number_marker("2")
        .send()
        .await?;
    let p = rest.object_parts().context("parts")?;
    assert_eq!(p.parts().iter().map(|x| x.part_number()).collect::<Vec<_>>(), [Some(3)]);
    assert_eq!(p.is_truncated(), Some(false));

    let r = c.get_object_attributes().bucket("bkt").key("nope").object_attributes(A::Etag).send().await;
    assert_eq!(failure(r), (404, "NoSuchKey".to_string()));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_asking_for_object_lock_are_refused_and_store_nothing() -> anyhow::Result<()> {
    use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
    use aws_sdk_s3::types::ObjectLockMode;
    let (node, c) = start_with_bucket("bkt").await?;
    let hold = c
        .put_object()
        .bucket("bkt")
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(failure(hold), (400, "InvalidRequest".to_string()));
    let retained = c
        .create_multipart_upload()
        .bucket("bkt")
        .key("kept")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(FUTURE_SECS))
        .send()
        .await;
    assert_eq!(failure(retained), (400, "InvalidRequest".to_string()));
    assert!(!exists(&c, "bkt", "held").await?);
    assert!(c.list_multipart_uploads().bucket("bkt").send().await?.uploads().is_empty());
    node.stop().await;
    Ok(())
}
