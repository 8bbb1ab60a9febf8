//! Details of the S3 API where clients notice a difference from AWS: what a listing echoes and how it encodes
//! names, how the object lock APIs answer on a hoard bucket (which never has object lock), keys that are not
//! UTF-8, and object bodies sent with `Transfer-Encoding: chunked` and no `Content-Length`.
//!
//! Requests the SDK cannot express (a listing's raw XML, a key of bytes that are not UTF-8, a chunked body)
//! are signed here with `aws-sigv4` and sent on a bare HTTP/1.1 socket; the rest go through `aws-sdk-s3`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::ObjectLockConfiguration;
use aws_sdk_s3::types::ObjectLockEnabled;
use aws_sdk_s3::types::ObjectLockLegalHold;
use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
use aws_sdk_s3::types::ObjectLockRetention;
use aws_sdk_s3::types::ObjectLockRetentionMode;
use aws_sdk_s3::types::VersioningConfiguration;
use aws_sdk_s3::Client;
use aws_sigv4::http_request::SignableBody;
use base64::Engine as _;
use hoard_it::client;
use hoard_it::failure;
use hoard_it::get;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::TestNode;

/// How long a test waits on a bare HTTP exchange.
const RAW_HTTP_DEADLINE: Duration = Duration::from_secs(30);
/// The chunk size of a chunked request body.
const CHUNK: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

async fn start_with_bucket(bucket: &str) -> anyhow::Result<(TestNode, Client)> {
    let node = TestNode::builder().start().await?;
    let c = client(&node);
    c.create_bucket().bucket(bucket).send().await?;
    Ok((node, c))
}

/// How a raw request's body travels.
enum Body<'a> {
    /// With a `Content-Length`.
    Sized(&'a [u8]),
    /// With `Transfer-Encoding: chunked` and no `Content-Length`, in chunks of [`CHUNK`] bytes.
    Chunked(&'a [u8]),
}

/// A response read off a bare socket.
struct RawResponse {
    status: u16,
    body: String,
}

impl RawResponse {
    /// The text of the first `<tag>` element, if there is one.
    fn element(&self, tag: &str) -> Option<&str> {
        let open = format!("<{tag}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{tag}>"))? + start;
        Some(&self.body[start..end])
    }

    /// The text of every `<tag>` element, in order.
    fn elements(&self, tag: &str) -> Vec<&str> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = Vec::new();
        let mut rest = self.body.as_str();
        while let Some(at) = rest.find(&open) {
            rest = &rest[at + open.len()..];
            let Some(end) = rest.find(&close) else { break };
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
        out
    }

    fn has(&self, tag: &str) -> bool {
        self.body.contains(&format!("<{tag}>")) || self.body.contains(&format!("<{tag}/>"))
    }
}

/// The headers that sign a request for `node` by SigV4 (in the `Authorization` header), besides `headers`,
/// which are signed too. `path_and_query` is sent as it is: already percent-encoded.
fn signed(
    node: &TestNode,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: SignableBody<'_>,
) -> anyhow::Result<Vec<(String, String)>> {
    let host = node.addr().to_string();
    let credential = (node.access_key(), node.secret_key());
    let signature = hoard_it::sigv4_headers(&host, credential, method, path_and_query, headers, body)?;
    let mut out: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    out.extend(signature);
    Ok(out)
}

/// One HTTP/1.1 exchange with `node` on a fresh connection, sending exactly the headers given (and `Host`,
/// and the body's framing).
async fn raw(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Body<'_>,
) -> anyhow::Result<RawResponse> {
    let mut head = format!("{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut payload = Vec::new();
    match body {
        Body::Sized(b) => {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
            payload.extend_from_slice(b);
        }
        Body::Chunked(b) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            for chunk in b.chunks(CHUNK) {
                payload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                payload.extend_from_slice(chunk);
                payload.extend_from_slice(b"\r\n");
            }
            payload.extend_from_slice(b"0\r\n\r\n");
        }
    }
    head.push_str("\r\n");
    let (status, body) = hoard_it::raw_exchange(addr, &head, &payload, RAW_HTTP_DEADLINE).await?;
    Ok(RawResponse { status, body: String::from_utf8(body)? })
}

/// A signed GET of `path_and_query` (no body), its answer read raw.
async fn signed_get(node: &TestNode, path_and_query: &str) -> anyhow::Result<RawResponse> {
    let headers = signed(node, "GET", path_and_query, &[], SignableBody::Bytes(b""))?;
    raw(node.addr(), "GET", path_and_query, &headers, Body::Sized(b"")).await
}

// ---------------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_echo_an_empty_marker_but_never_an_empty_delimiter() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "a/1", b"x").await;

    for (version, query) in [("v1", "/bkt?delimiter="), ("v2", "/bkt?list-type=2&delimiter=")] {
        let r = signed_get(&node, query).await?;
        assert_eq!(r.status, 200, "{version}: {}", r.body);
        assert!(!r.has("Delimiter"), "{version}: an empty delimiter is not echoed: {}", r.body);
        assert_eq!(r.elements("Key"), ["a/1"], "{version}: an empty delimiter groups nothing");
    }
    let r = signed_get(&node, "/bkt?delimiter=%2F").await?;
    assert_eq!(r.element("Delimiter"), Some("/"), "a delimiter given is echoed: {}", r.body);

    // ListObjects (v1) always echoes its marker, empty when none was given; v2 has no marker.
    let r = signed_get(&node, "/bkt").await?;
    assert_eq!(r.element("Marker"), Some(""), "{}", r.body);
    let r = signed_get(&node, "/bkt?marker=a%2F0").await?;
    assert_eq!(r.element("Marker"), Some("a/0"), "{}", r.body);
    let r = signed_get(&node, "/bkt?list-type=2").await?;
    assert!(!r.has("Marker"), "{}", r.body);

    // Through the SDK too.
    let v1 = c.list_objects().bucket("bkt").delimiter("").send().await?;
    assert_eq!((v1.delimiter(), v1.marker()), (None, Some("")));
    let v2 = c.list_objects_v2().bucket("bkt").delimiter("").send().await?;
    assert_eq!(v2.delimiter(), None);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v2_names_owners_only_when_asked_to_fetch_them() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", b"x").await;

    let r = signed_get(&node, "/bkt?list-type=2").await?;
    assert_eq!(r.elements("Key"), ["k"], "{}", r.body);
    assert!(!r.has("Owner"), "FetchOwner defaults to false: {}", r.body);
    let r = signed_get(&node, "/bkt?list-type=2&fetch-owner=false").await?;
    assert!(!r.has("Owner"), "{}", r.body);
    let r = signed_get(&node, "/bkt?list-type=2&fetch-owner=true").await?;
    assert_eq!(r.elements("Owner").len(), 1, "{}", r.body);
    // ListObjects (v1) always names the owner.
    let r = signed_get(&node, "/bkt").await?;
    assert_eq!(r.elements("Owner").len(), 1, "{}", r.body);

    let sdk = c.list_objects_v2().bucket("bkt").send().await?;
    assert!(sdk.contents().iter().all(|o| o.owner().is_none()));
    let sdk = c.list_objects_v2().bucket("bkt").fetch_owner(true).send().await?;
    assert!(sdk.contents().iter().all(|o| o.owner().is_some()));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_encoding_type_encodes_every_name_a_listing_returns_and_only_then() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    for key in ["a b/x+y|1", "a b/x+y|2", "a b/z é"] {
        put(&c, "bkt", key, b"x").await;
    }
    // Prefix `a b/`, delimiter `|`, one entry a page.
    let (prefix, delimiter) = ("a%20b%2F", "%7C");

    // ListObjects (v1): Prefix, Delimiter, Marker, NextMarker, CommonPrefixes and keys.
    let first = signed_get(
        &node,
        &format!("/bkt?prefix={prefix}&delimiter={delimiter}&max-keys=1&marker=a%20b%2F&encoding-type=url"),
    )
    .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.element("EncodingType"), Some("url"));
    assert_eq!(first.element("Prefix"), Some("a%20b/"), "{}", first.body);
    assert_eq!(first.element("Delimiter"), Some("%7C"));
    assert_eq!(first.element("Marker"), Some("a%20b/"));
    assert_eq!(first.element("NextMarker"), Some("a%20b/x%2By%7C"));
    assert_eq!(first.elements("Prefix"), ["a%20b/", "a%20b/x%2By%7C"], "the common prefix, encoded");
    let next = signed_get(
        &node,
        &format!("/bkt?prefix={prefix}&delimiter={delimiter}&max-keys=1&marker=a%20b%2Fx%2By%7C&encoding-type=url"),
    )
    .await?;
    assert_eq!(next.element("Marker"), Some("a%20b/x%2By%7C"));
    assert_eq!(next.elements("Key"), ["a%20b/z%20%C3%A9"], "{}", next.body);
    assert!(!next.has("NextMarker"), "the last page names no next marker: {}", next.body);

    // Without encoding-type, every name is as stored (XML-escaped only).
    let plain =
        signed_get(&node, &format!("/bkt?prefix={prefix}&delimiter={delimiter}&max-keys=1&marker=a%20b%2F")).await?;
    assert!(!plain.has("EncodingType"));
    assert_eq!(plain.element("Prefix"), Some("a b/"));
    assert_eq!(plain.element("Delimiter"), Some("|"));
    assert_eq!(plain.element("Marker"), Some("a b/"));
    assert_eq!(plain.element("NextMarker"), Some("a b/x+y|"));
    assert_eq!(plain.elements("Prefix"), ["a b/", "a b/x+y|"]);
    let plain = signed_get(&node, "/bkt?prefix=a%20b%2Fz").await?;
    assert_eq!(plain.elements("Key"), ["a b/z é"]);

    // ListObjectsV2: Prefix, Delimiter, StartAfter and keys; the continuation token is opaque and kept as is.
    let v2 =
        signed_get(&node, "/bkt?list-type=2&prefix=a%20b%2F&start-after=a%20b%2Fx%2By%7C1&encoding-type=url").await?;
    assert_eq!(v2.element("StartAfter"), Some("a%20b/x%2By%7C1"), "{}", v2.body);
    assert_eq!(v2.element("Prefix"), Some("a%20b/"));
    assert_eq!(v2.elements("Key"), ["a%20b/x%2By%7C2", "a%20b/z%20%C3%A9"]);
    let v2 =
        signed_get(&node, &format!("/bkt?list-type=2&prefix={prefix}&delimiter={delimiter}&encoding-type=url")).await?;
    assert_eq!(v2.element("Delimiter"), Some("%7C"));
    assert_eq!(v2.elements("Prefix"), ["a%20b/", "a%20b/x%2By%7C"]);
    let v2 = signed_get(&node, "/bkt?list-type=2&prefix=a%20b%2F&start-after=a%20b%2Fx%2By%7C1").await?;
    assert_eq!(v2.element("StartAfter"), Some("a b/x+y|1"));
    assert_eq!(v2.elements("Key"), ["a b/x+y|2", "a b/z é"]);

    // ListObjectVersions: Prefix, KeyMarker, NextKeyMarker and keys.
    let versions =
        signed_get(&node, "/bkt?versions&prefix=a%20b%2F&key-marker=a%20b%2Fx%2By%7C1&max-keys=1&encoding-type=url")
            .await?;
    assert_eq!(versions.element("KeyMarker"), Some("a%20b/x%2By%7C1"), "{}", versions.body);
    assert_eq!(versions.element("NextKeyMarker"), Some("a%20b/x%2By%7C2"));
    assert_eq!(versions.elements("Key"), ["a%20b/x%2By%7C2"]);
    let versions = signed_get(&node, "/bkt?versions&prefix=a%20b%2F&key-marker=a%20b%2Fx%2By%7C1&max-keys=1").await?;
    assert_eq!(versions.element("KeyMarker"), Some("a b/x+y|1"));
    assert_eq!(versions.elements("Key"), ["a b/x+y|2"]);
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Object lock: hoard buckets never have it
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_cannot_be_created_with_object_lock() -> anyhow::Result<()> {
    let node = TestNode::builder().start().await?;
    let c = client(&node);
    let r = c.create_bucket().bucket("locked").object_lock_enabled_for_bucket(true).send().await;
    assert_eq!(failure(r), (501, "NotImplemented".to_string()));
    let (status, _) = failure(c.head_bucket().bucket("locked").send().await);
    assert_eq!(status, 404, "a refused bucket is not created without the lock");
    c.create_bucket().bucket("unlocked").object_lock_enabled_for_bucket(false).send().await?;
    c.head_bucket().bucket("unlocked").send().await?;
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_configuration_is_not_found_and_cannot_be_put_on_a_bucket() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let config = || ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
    let r = c.get_object_lock_configuration().bucket("bkt").send().await;
    assert_eq!(failure(r), (404, "ObjectLockConfigurationNotFoundError".to_string()));
    let r = c.put_object_lock_configuration().bucket("bkt").object_lock_configuration(config()).send().await;
    assert_eq!(failure(r), (409, "InvalidBucketState".to_string()));

    // With versioning on, as AWS asks, still not: the bucket was created without object lock.
    let on = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    c.put_bucket_versioning().bucket("bkt").versioning_configuration(on).send().await?;
    let r = c.put_object_lock_configuration().bucket("bkt").object_lock_configuration(config()).send().await;
    assert_eq!(failure(r), (409, "InvalidBucketState".to_string()));
    let r = c.get_object_lock_configuration().bucket("bkt").send().await;
    assert_eq!(failure(r), (404, "ObjectLockConfigurationNotFoundError".to_string()), "nothing was stored");

    // A missing bucket is that first.
    let r = c.get_object_lock_configuration().bucket("nope").send().await;
    assert_eq!(failure(r), (404, "NoSuchBucket".to_string()));
    let r = c.put_object_lock_configuration().bucket("nope").object_lock_configuration(config()).send().await;
    assert_eq!(failure(r), (404, "NoSuchBucket".to_string()));
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_legal_holds_are_invalid_requests_on_a_bucket_without_object_lock() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "k", b"data").await;
    let invalid = (400, "InvalidRequest".to_string());
    let retention = || {
        ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Governance)
            .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(4_102_444_800))
            .build()
    };
    let hold = || ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();

    // The bucket has no object lock configuration, whether the key exists or not.
    for key in ["k", "absent"] {
        assert_eq!(failure(c.get_object_retention().bucket("bkt").key(key).send().await), invalid, "{key}");
        assert_eq!(failure(c.get_object_legal_hold().bucket("bkt").key(key).send().await), invalid, "{key}");
        let r = c.put_object_retention().bucket("bkt").key(key).retention(retention()).send().await;
        assert_eq!(failure(r), invalid, "{key}");
        let r = c.put_object_legal_hold().bucket("bkt").key(key).legal_hold(hold()).send().await;
        assert_eq!(failure(r), invalid, "{key}");
    }
    assert_eq!(get(&c, "bkt", "k").await, b"data", "the object is untouched");

    let no_bucket = (404, "NoSuchBucket".to_string());
    assert_eq!(failure(c.get_object_retention().bucket("nope").key("k").send().await), no_bucket);
    assert_eq!(failure(c.get_object_legal_hold().bucket("nope").key("k").send().await), no_bucket);
    let r = c.put_object_retention().bucket("nope").key("k").retention(retention()).send().await;
    assert_eq!(failure(r), no_bucket);
    let r = c.put_object_legal_hold().bucket("nope").key("k").legal_hold(hold()).send().await;
    assert_eq!(failure(r), no_bucket);
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Keys that are not UTF-8
// ---------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_utf8_once_decoded_is_an_invalid_uri() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    put(&c, "bkt", "é", b"x").await;
    for path in ["/bkt/%FF", "/bkt/a%C3%28b", "/bkt/%E9"] {
        for method in ["GET", "HEAD", "DELETE"] {
            let headers = signed(&node, method, path, &[], SignableBody::Bytes(b""))?;
            let r = raw(node.addr(), method, path, &headers, Body::Sized(b"")).await?;
            assert_eq!(r.status, 400, "{method} {path}: {}", r.body);
            if method != "HEAD" {
                assert_eq!(r.element("Code"), Some("InvalidURI"), "{method} {path}: {}", r.body);
                let message = r.element("Message").unwrap_or_default();
                assert!(message.contains("parse the specified URI"), "{method} {path}: {}", r.body);
            }
        }
        let headers = signed(&node, "PUT", path, &[], SignableBody::Bytes(b"body"))?;
        let r = raw(node.addr(), "PUT", path, &headers, Body::Sized(b"body")).await?;
        assert_eq!((r.status, r.element("Code")), (400, Some("InvalidURI")), "PUT {path}: {}", r.body);
    }
    // The same letter encoded as UTF-8 is a key like any other.
    let r = signed_get(&node, "/bkt/%C3%A9").await?;
    assert_eq!((r.status, r.body.as_str()), (200, "x"));
    let r = signed_get(&node, "/bkt/%C3%A8").await?;
    assert_eq!((r.status, r.element("Code")), (404, Some("NoSuchKey")));
    let listed = c.list_objects_v2().bucket("bkt").send().await?;
    assert_eq!(listed.key_count(), Some(1), "nothing was stored under a bad key");
    node.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Chunked request bodies
// ---------------------------------------------------------------------------------------------------

/// A signed PUT of `data` to `path` with `Transfer-Encoding: chunked` and no `Content-Length`, its payload
/// signed as `payload` (`UNSIGNED-PAYLOAD`, or the hex SHA-256 of the body).
async fn chunked_put(
    node: &TestNode,
    path: &str,
    data: &[u8],
    payload: SignableBody<'_>,
) -> anyhow::Result<RawResponse> {
    let headers = signed(node, "PUT", path, &[], payload)?;
    raw(node.addr(), "PUT", path, &headers, Body::Chunked(data)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_put_without_a_length_is_stored_when_its_payload_is_unsigned() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    for (key, len) in [("small", 10), ("large", 3 * 1024 * 1024 + 17), ("empty", 0)] {
        let data = pattern(7, len);
        let r = chunked_put(&node, &format!("/bkt/{key}"), &data, SignableBody::UnsignedPayload).await?;
        assert_eq!(r.status, 200, "{key}: {}", r.body);
        let head = c.head_object().bucket("bkt").key(key).send().await?;
        assert_eq!(head.content_length(), Some(len as i64), "{key}");
        assert_eq!(head.e_tag(), Some(format!("\"{}\"", md5_hex(&data)).as_str()), "{key}");
        assert!(get(&c, "bkt", key).await == data, "{key}: other bytes were stored");
    }

    // A part of a multipart upload, the same way.
    let upload = c.create_multipart_upload().bucket("bkt").key("parts").send().await?;
    let id = upload.upload_id().context("an upload id")?;
    let data = pattern(8, 100_000);
    let r = chunked_put(&node, &format!("/bkt/parts?partNumber=1&uploadId={id}"), &data, SignableBody::UnsignedPayload)
        .await?;
    assert_eq!(r.status, 200, "{}", r.body);
    let part = CompletedPart::builder().part_number(1).e_tag(format!("\"{}\"", md5_hex(&data))).build();
    let done = CompletedMultipartUpload::builder().parts(part).build();
    c.complete_multipart_upload().bucket("bkt").key("parts").upload_id(id).multipart_upload(done).send().await?;
    assert!(get(&c, "bkt", "parts").await == data);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_put_whose_payload_is_signed_whole_must_give_its_length() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(9, 1000);
    let r = chunked_put(&node, "/bkt/k", &data, SignableBody::Bytes(&data)).await?;
    assert_eq!((r.status, r.element("Code")), (411, Some("MissingContentLength")), "{}", r.body);
    let (status, _) = failure(c.head_object().bucket("bkt").key("k").send().await);
    assert_eq!(status, 404, "nothing was stored");
    // The same request with its length is stored.
    let headers = signed(&node, "PUT", "/bkt/k", &[], SignableBody::Bytes(&data))?;
    let r = raw(node.addr(), "PUT", "/bkt/k", &headers, Body::Sized(&data)).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_aws_chunked_put_is_stored_by_its_decoded_length() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(10, 300_000);
    // As the SDKs stream a body with a trailing checksum: `aws-chunked` chunks, unsigned, then the trailer.
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(&data).to_be_bytes());
    let mut body = Vec::new();
    for chunk in data.chunks(100_000) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n").as_bytes());
    let decoded = data.len().to_string();
    let send = |decoded: Option<&str>, key: &'static str| {
        let mut headers = vec![("content-encoding", "aws-chunked"), ("x-amz-trailer", "x-amz-checksum-crc32")];
        if let Some(d) = decoded {
            headers.push(("x-amz-decoded-content-length", d));
        }
        let payload = SignableBody::StreamingUnsignedPayloadTrailer;
        let path = format!("/bkt/{key}");
        let headers = signed(&node, "PUT", &path, &headers, payload);
        let body = body.clone();
        let addr = node.addr();
        async move { raw(addr, "PUT", &path, &headers?, Body::Chunked(&body)).await }
    };

    let r = send(Some(&decoded), "streamed").await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(get(&c, "bkt", "streamed").await == data);
    let head = c.head_object().bucket("bkt").key("streamed").send().await?;
    assert_eq!(head.content_length(), Some(data.len() as i64));

    // Without the decoded length there is no length at all.
    let r = send(None, "unknown").await?;
    assert_eq!((r.status, r.element("Code")), (411, Some("MissingContentLength")), "{}", r.body);

    // A decoded length over the most one PUT may carry is refused before the body is read.
    let too_large = (5u64 << 30) + 1;
    let headers = [("x-amz-decoded-content-length", too_large.to_string())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = signed(&node, "PUT", "/bkt/huge", &headers, SignableBody::StreamingUnsignedPayloadTrailer)?;
    let r = raw(node.addr(), "PUT", "/bkt/huge", &sent, Body::Chunked(b"")).await?;
    assert_eq!((r.status, r.element("Code")), (400, Some("EntityTooLarge")), "{}", r.body);
    for refused in ["unknown", "huge"] {
        let (status, _) = failure(c.head_object().bucket("bkt").key(refused).send().await);
        assert_eq!(status, 404, "{refused}: nothing was stored");
    }
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_put_may_send_its_body_chunked() -> anyhow::Result<()> {
    let (node, c) = start_with_bucket("bkt").await?;
    let data = pattern(11, 200_000);
    let presigned = c
        .put_object()
        .bucket("bkt")
        .key("pre")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300))?)
        .await?;
    let path_and_query =
        presigned.uri().split_once(&node.addr().to_string()).context("the node's address")?.1.to_string();
    let headers: Vec<(String, String)> = presigned
        .headers()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = raw(node.addr(), "PUT", &path_and_query, &headers, Body::Chunked(&data)).await?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(get(&c, "bkt", "pre").await == data);
    node.stop().await;
    Ok(())
}
