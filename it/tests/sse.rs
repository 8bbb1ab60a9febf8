//! Encryption at rest as a client sees it, through the real `aws-sdk-s3` client: SSE-S3 (asked for, and as a
//! bucket default), SSE-C (right key, wrong key, no key, key changes), multipart and ranged reads of
//! encrypted objects, and the on-disk proof that no plaintext, data key or master key is stored.
//!
//! SSE-C needs a secure connection: these nodes serve HTTPS with a self-signed certificate the client
//! trusts; other tests check that plain HTTP refuses SSE-C unless a trusted TLS proxy is declared.

use std::path::Path;
use std::path::PathBuf;

use aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder;
use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;
use aws_sdk_s3::operation::head_object::builders::HeadObjectFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::types::ServerSideEncryptionByDefault;
use aws_sdk_s3::types::ServerSideEncryptionConfiguration;
use aws_sdk_s3::types::ServerSideEncryptionRule;
use aws_sdk_s3::Client;
use base64::Engine as _;
use hoard_it::client;
use hoard_it::failure;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::tls_client;
use hoard_it::tls_client_for;
use hoard_it::TestCert;
use hoard_it::TestNode;
use md5::Digest as _;

const MASTER_KEY: [u8; 32] = [0x5a; 32];
const BUCKET: &str = "vault";

/// A node holding a master key (written as hex, one of the accepted forms), serving HTTPS, and a client
/// over HTTPS that trusts its certificate.
async fn encrypted_node(dir: &Path) -> (TestNode, Client) {
    let key_file = dir.join("master.key");
    std::fs::write(&key_file, format!("{}\n", hex::encode(MASTER_KEY))).unwrap();
    let cert = TestCert::new();
    let node = TestNode::builder()
        .data_dir(dir.join("node"))
        .master_key_file(&key_file)
        .tls(&cert.cert, &cert.key)
        .start()
        .await
        .unwrap();
    assert!(node.endpoint().starts_with("https://"));
    let c = tls_client(&node, &cert);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (node, c)
}

/// A customer key: (key base64, key MD5 base64).
fn customer_key(seed: u8) -> (String, String) {
    let key = [seed; 32];
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(key), b64.encode(md5::Md5::digest(key)))
}

/// Sets the three SSE-C headers on the SDK's request builders that carry them.
trait WithCustomerKey: Sized {
    fn with_customer_key(self, key: &str, key_md5: &str) -> Self;
}

macro_rules! with_customer_key {
    ($($builder:ty),*) => {$(
        impl WithCustomerKey for $builder {
            fn with_customer_key(self, key: &str, key_md5: &str) -> Self {
                self.sse_customer_algorithm("AES256").sse_customer_key(key).sse_customer_key_md5(key_md5)
            }
        }
    )*};
}

with_customer_key!(
    PutObjectFluentBuilder,
    GetObjectFluentBuilder,
    HeadObjectFluentBuilder,
    CopyObjectFluentBuilder,
    CreateMultipartUploadFluentBuilder,
    UploadPartFluentBuilder
);

/// Sets a copy's source SSE-C headers.
trait WithCopySourceCustomerKey {
    fn with_copy_source_customer_key(self, key: &str, key_md5: &str) -> Self;
}

impl WithCopySourceCustomerKey for CopyObjectFluentBuilder {
    fn with_copy_source_customer_key(self, key: &str, key_md5: &str) -> Self {
        self.copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(key)
            .copy_source_sse_customer_key_md5(key_md5)
    }
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn get_bytes(c: &Client, key: &str) -> Vec<u8> {
    hoard_it::get(c, BUCKET, key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_s3_objects_round_trip_and_nothing_readable_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = encrypted_node(dir.path()).await;
    // A recognisable plaintext: one inline object and one of several blocks with a short last block.
    let marker = b"hoard-plaintext-marker-0123456789";
    let small: Vec<u8> = marker.iter().copied().cycle().take(20_000).collect();
    let large: Vec<u8> = marker.iter().copied().cycle().take(3 * 1024 * 1024 + 12_345).collect();
    // And one that ends exactly on a block boundary: its second block is its last.
    let exact: Vec<u8> = marker.iter().copied().cycle().take(2 * 1024 * 1024).collect();
    for (key, data) in [("small", &small), ("large", &large), ("exact", &exact)] {
        let out = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(out.e_tag().unwrap().trim_matches('"'), md5_hex(data), "SSE-S3 ETags are the plaintext MD5");
        assert_eq!(&get_bytes(&c, key).await, data);
        let head = c.head_object().bucket(BUCKET).key(key).send().await.unwrap();
        assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
        assert_eq!(head.content_length(), Some(data.len() as i64));
    }
    // Ranges across block boundaries decrypt only what they touch and return exactly the bytes asked for.
    let mib = 1024 * 1024;
    for (a, b) in [(mib - 3, mib + 5), (0, 0), (2 * mib - 1, 3 * mib + 100), (large.len() - 10, large.len() - 1)] {
        let out = c.get_object().bucket(BUCKET).key("large").range(format!("bytes={a}-{b}")).send().await.unwrap();
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &large[a..=b], "range {a}-{b}");
    }

    node.stop().await;
    let master_hex = hex::encode(MASTER_KEY);
    for file in all_files(&dir.path().join("node")) {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!contains(&bytes, &marker[..16]), "plaintext found in {}", file.display());
        assert!(!contains(&bytes, &MASTER_KEY[..16]), "master key found in {}", file.display());
        assert!(!contains(&bytes, master_hex.as_bytes()), "master key hex found in {}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_default_encrypts_writes_that_ask_for_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = encrypted_node(dir.path()).await;
    let (status, code) = failure(c.get_bucket_encryption().bucket(BUCKET).send().await);
    assert_eq!((status, code.as_str()), (404, "ServerSideEncryptionConfigurationNotFoundError"));
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build().unwrap(),
        )
        .build();
    let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap();
    c.put_bucket_encryption().bucket(BUCKET).server_side_encryption_configuration(config).send().await.unwrap();
    let got = c.get_bucket_encryption().bucket(BUCKET).send().await.unwrap();
    let rules = got.server_side_encryption_configuration().unwrap().rules();
    let algorithm = rules[0].apply_server_side_encryption_by_default().unwrap().sse_algorithm();
    assert_eq!(algorithm, &ServerSideEncryption::Aes256);

    let data = pattern(7, 100_000);
    let out = c.put_object().bucket(BUCKET).key("k").body(ByteStream::from(data.clone())).send().await.unwrap();
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get_bytes(&c, "k").await, data);

    c.delete_bucket_encryption().bucket(BUCKET).send().await.unwrap();
    let out = c.put_object().bucket(BUCKET).key("plain").body(ByteStream::from(data.clone())).send().await.unwrap();
    assert_eq!(out.server_side_encryption(), None, "without a default, a plain PUT stays plain");
    assert_eq!(get_bytes(&c, "k").await, data, "objects written under the default stay readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_needs_the_right_key_and_never_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = encrypted_node(dir.path()).await;
    let (key, key_md5) = customer_key(0x11);
    let (other, other_md5) = customer_key(0x22);
    let data = pattern(3, 2 * 1024 * 1024 + 17);
    let out = c
        .put_object()
        .bucket(BUCKET)
        .key("c")
        .with_customer_key(&key, &key_md5)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.sse_customer_algorithm(), Some("AES256"));
    assert_eq!(out.sse_customer_key_md5(), Some(key_md5.as_str()));
    assert_ne!(out.e_tag().unwrap().trim_matches('"'), md5_hex(&data), "an SSE-C ETag must not be the MD5");

    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("c")
        .with_customer_key(&key, &key_md5)
        .range("bytes=1048570-1048600")
        .send()
        .await
        .unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], &data[1_048_570..=1_048_600]);

    let wrong = c.get_object().bucket(BUCKET).key("c").with_customer_key(&other, &other_md5).send().await;
    assert_eq!(failure(wrong), (403, "AccessDenied".to_string()));
    let (status, _) = failure(c.get_object().bucket(BUCKET).key("c").send().await);
    assert_eq!(status, 400, "an SSE-C object without its key is a bad request");
    let bad_md5 = c.get_object().bucket(BUCKET).key("c").with_customer_key(&key, &other_md5).send().await;
    assert_eq!(failure(bad_md5), (400, "InvalidArgument".to_string()));

    // Changing the key: a copy onto itself with the old key as source and the new key as destination.
    c.copy_object()
        .bucket(BUCKET)
        .key("c")
        .copy_source("vault/c")
        .with_copy_source_customer_key(&key, &key_md5)
        .with_customer_key(&other, &other_md5)
        .send()
        .await
        .unwrap();
    let got = c.get_object().bucket(BUCKET).key("c").with_customer_key(&other, &other_md5).send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), data);
    let old = c.head_object().bucket(BUCKET).key("c").with_customer_key(&key, &key_md5).send().await;
    assert_eq!(failure(old).0, 403, "the old key no longer opens the object");

    node.stop().await;
    let raw_keys = [[0x11u8; 32], [0x22u8; 32]];
    for file in all_files(&dir.path().join("node")) {
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!contains(&bytes, &data[1000..1032]), "plaintext found in {}", file.display());
        for k in &raw_keys {
            assert!(!contains(&bytes, &k[..16]), "a customer key found in {}", file.display());
        }
        assert!(!contains(&bytes, key_md5.as_bytes()) && !contains(&bytes, other_md5.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_multipart_upload_needs_the_key_on_every_part() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = encrypted_node(dir.path()).await;
    let (key, key_md5) = customer_key(0x33);
    let (other, other_md5) = customer_key(0x44);
    let upload =
        c.create_multipart_upload().bucket(BUCKET).key("mp").with_customer_key(&key, &key_md5).send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let parts = [pattern(1, 5 * 1024 * 1024), pattern(2, 1024 * 1024 + 3)];
    let wrong = c
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .with_customer_key(&other, &other_md5)
        .body(ByteStream::from(parts[0].clone()))
        .send()
        .await;
    assert_eq!(failure(wrong).0, 403);
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .with_customer_key(&key, &key_md5)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        completed.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
    }
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    let whole: Vec<u8> = parts.concat();
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("mp")
        .with_customer_key(&key, &key_md5)
        .range(format!("bytes={}-{}", 5 * 1024 * 1024 - 4, 5 * 1024 * 1024 + 4))
        .send()
        .await
        .unwrap();
    let range = 5 * 1024 * 1024 - 4..=5 * 1024 * 1024 + 4;
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], &whole[range], "a range across two parts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_plain_and_encrypted_rewrite_and_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = encrypted_node(dir.path()).await;
    let data = pattern(9, 1_500_000);
    c.put_object().bucket(BUCKET).key("plain").body(ByteStream::from(data.clone())).send().await.unwrap();
    let out = c
        .copy_object()
        .bucket(BUCKET)
        .key("sealed")
        .copy_source("vault/plain")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(out.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(get_bytes(&c, "sealed").await, data);
    let out = c.copy_object().bucket(BUCKET).key("back").copy_source("vault/sealed").send().await.unwrap();
    assert_eq!(out.server_side_encryption(), None);
    assert_eq!(get_bytes(&c, "back").await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_a_node_cannot_honour_is_refused_before_anything_is_stored() {
    let node = TestNode::builder().start().await.unwrap();
    let c = client(&node);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    for (sse, case) in
        [(ServerSideEncryption::Aes256, "SSE-S3 without a master key"), (ServerSideEncryption::AwsKms, "SSE-KMS")]
    {
        let r = c
            .put_object()
            .bucket(BUCKET)
            .key("k")
            .server_side_encryption(sse)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(failure(r), (501, "NotImplemented".to_string()), "{case}");
    }
    let (key, key_md5) = customer_key(0x55);
    let r = c
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .with_customer_key(&key, &key_md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(failure(r).0, 400, "SSE-C over plain HTTP");
    let listed = c.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_master_key_file_refuses_the_start_without_printing_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("short.key");
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"; // 62 hex digits
    std::fs::write(&key_file, secret).unwrap();
    let started = TestNode::builder().master_key_file(&key_file).start().await;
    let error = match started {
        Ok(_) => panic!("a node started with a 62-digit key file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("master key"), "{error}");
    assert!(!error.contains(&secret[..16]), "the error printed the key: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_c_is_refused_on_plain_http_unless_a_trusted_proxy_is_declared() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, MASTER_KEY).unwrap();
    let cert = TestCert::new();
    let node = TestNode::builder()
        .master_key_file(&key_file)
        .tls(&cert.cert, &cert.key)
        .http_listen(true)
        .start()
        .await
        .unwrap();
    let secure = tls_client(&node, &cert);
    let plain = hoard_it::client_for(&node.http_endpoint().unwrap(), node.access_key(), node.secret_key());
    secure.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (key, key_md5) = customer_key(0x66);
    let put = |c: &Client, k: &str| {
        c.put_object().bucket(BUCKET).key(k).with_customer_key(&key, &key_md5).body(ByteStream::from_static(b"abc"))
    };
    let (status, code) = failure(put(&plain, "over-http").send().await);
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "SSE-C on the node's plain-HTTP listener");
    put(&secure, "over-https").send().await.unwrap();
    // The plain listener serves everything else, and an SSE-C object read there without a key is refused.
    assert_eq!(failure(plain.get_object().bucket(BUCKET).key("over-https").send().await).0, 400);
    let listed = plain.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["over-https"], "nothing was stored by the refused PUT");
    node.stop().await;

    // Behind a TLS-terminating proxy the operator trusts, the proxy's plain-HTTP hop may carry SSE-C.
    let proxied = TestNode::builder().master_key_file(&key_file).trust_proxy_tls(true).start().await.unwrap();
    let c = client(&proxied);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    put(&c, "via-proxy").send().await.unwrap();
    let got = c.get_object().bucket(BUCKET).key("via-proxy").with_customer_key(&key, &key_md5).send().await.unwrap();
    assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _c) = encrypted_node(dir.path()).await;
    let stranger = TestCert::new();
    let c = tls_client_for(&node.endpoint(), node.access_key(), node.secret_key(), &stranger.pem);
    let r = c.list_buckets().send().await;
    let err = r.expect_err("a client trusting another certificate must not get through");
    assert!(err.raw_response().is_none(), "no HTTP exchange happens without a trusted handshake: {err:?}");
}

/// Runs curl over HTTPS trusting `ca`; returns (status, body).
fn curl(ca: &Path, method: &str, url: &str, headers: &[(String, String)], upload: Option<&Path>) -> (u16, Vec<u8>) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--cacert"]).arg(ca).args(["-X", method, "-o", "-", "-w", "\n%{http_code}"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(file) = upload {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    let out = cmd.arg(url).output().expect("curl is installed");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let split = out.stdout.iter().rposition(|b| *b == b'\n').expect("curl printed the status");
    let status = std::str::from_utf8(&out.stdout[split + 1..]).unwrap().trim().parse().unwrap();
    (status, out.stdout[..split].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_sse_c_urls_need_the_key_headers() {
    use aws_sdk_s3::presigning::PresigningConfig;
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, MASTER_KEY).unwrap();
    let node = TestNode::builder().master_key_file(&key_file).tls(&cert.cert, &cert.key).start().await.unwrap();
    let c = tls_client(&node, &cert);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (key, key_md5) = customer_key(0x77);
    let data = pattern(11, 1024 * 1024 + 99);
    let body = dir.path().join("body");
    std::fs::write(&body, &data).unwrap();
    let expiry = PresigningConfig::expires_in(std::time::Duration::from_secs(600)).unwrap();
    let headers = |p: &aws_sdk_s3::presigning::PresignedRequest| -> Vec<(String, String)> {
        p.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };

    let put = c.put_object().bucket(BUCKET).key("p").with_customer_key(&key, &key_md5).presigned(expiry.clone()).await;
    let put = put.unwrap();
    let sse_headers = headers(&put);
    assert!(sse_headers.iter().any(|(k, _)| k == "x-amz-server-side-encryption-customer-key"));
    let (status, text) = curl(&cert.cert, "PUT", put.uri(), &sse_headers, Some(&body));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));

    let get = c.get_object().bucket(BUCKET).key("p").with_customer_key(&key, &key_md5).presigned(expiry).await;
    let get = get.unwrap();
    let (status, got) = curl(&cert.cert, "GET", get.uri(), &headers(&get), None);
    assert_eq!(status, 200);
    assert_eq!(got, data, "the presigned SSE-C GET returns the plaintext");
    // The same URL without the key headers: the signature covers them, so it no longer matches.
    let (status, _) = curl(&cert.cert, "GET", get.uri(), &[], None);
    assert_eq!(status, 403, "a presigned SSE-C URL is useless without the customer key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploading_a_part_twice_never_reuses_a_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c) = encrypted_node(dir.path()).await;
    let (key, key_md5) = customer_key(0x88);
    let upload = c.create_multipart_upload().bucket(BUCKET).key("again").with_customer_key(&key, &key_md5);
    let id = upload.send().await.unwrap().upload_id().unwrap().to_string();
    let part = pattern(12, 2 * 1024 * 1024);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let up = c.upload_part().bucket(BUCKET).key("again").upload_id(&id).part_number(1);
        up.with_customer_key(&key, &key_md5).body(ByteStream::from(part.clone())).send().await.unwrap();
        let upload_id = id.clone();
        let parts = node.context().meta.read(move |r| r.all_parts(&upload_id)).await.unwrap();
        assert_eq!(parts.len(), 1);
        let segment = parts[0].segment.clone();
        let salt = segment.seal.as_ref().expect("an encrypted part's segment records its salt").salt;
        seen.push((segment.id, salt));
    }
    assert_ne!(seen[0].0, seen[1].0, "each upload of the part is a new segment");
    assert_ne!(seen[0].1, seen[1].1, "the same plaintext, key and part under a fresh nonce salt");
    // The ciphertext on disk differs too: shard 0 of both uploads (the first is garbage, not yet removed).
    let files = hoard_it::shard_files(&node.disk_paths());
    let shard0 = |id: &hoard_protocol::SegmentId| std::fs::read(&files[&id.to_string()][&0]).unwrap();
    let (a, b) = (shard0(&seen[0].0), shard0(&seen[1].0));
    assert_eq!(a.len(), b.len());
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert!(same < a.len() / 10, "two sealings of one plaintext must not look alike ({same} equal bytes)");
}

/// One multipart object per kind of encryption; every part read by number, with GET and HEAD, returns that
/// part's plaintext and its plaintext length and window (the stored segments are longer by their tags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_parts_read_by_number_return_the_plaintext_window() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, c) = encrypted_node(dir.path()).await;
    let (key, key_md5) = customer_key(0x5c);
    let parts = [pattern(11, 5 * 1024 * 1024 + 17), pattern(12, 6 * 1024 * 1024 + 5), pattern(13, 1024 * 1024 + 3)];
    let whole: Vec<u8> = parts.concat();
    for customer in [false, true] {
        let name = if customer { "sse-c" } else { "sse-s3" };
        let mut create = c.create_multipart_upload().bucket(BUCKET).key(name);
        create = if customer {
            create.with_customer_key(&key, &key_md5)
        } else {
            create.server_side_encryption(ServerSideEncryption::Aes256)
        };
        let upload = create.send().await.unwrap();
        let id = upload.upload_id().unwrap();
        let mut completed = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let mut up = c
                .upload_part()
                .bucket(BUCKET)
                .key(name)
                .upload_id(id)
                .part_number(n)
                .body(ByteStream::from(part.clone()));
            if customer {
                up = up.with_customer_key(&key, &key_md5);
            }
            let out = up.send().await.unwrap();
            completed.push(CompletedPart::builder().part_number(n).e_tag(out.e_tag().unwrap()).build());
        }
        c.complete_multipart_upload()
            .bucket(BUCKET)
            .key(name)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
            .send()
            .await
            .unwrap();
        let mut start = 0usize;
        for (i, part) in parts.iter().enumerate() {
            let n = i as i32 + 1;
            let end = start + part.len();
            let window = format!("bytes {}-{}/{}", start, end - 1, whole.len());
            let mut get = c.get_object().bucket(BUCKET).key(name).part_number(n);
            let mut head = c.head_object().bucket(BUCKET).key(name).part_number(n);
            if customer {
                get = get.with_customer_key(&key, &key_md5);
                head = head.with_customer_key(&key, &key_md5);
            }
            let got = get.send().await.unwrap();
            assert_eq!(got.content_length(), Some(part.len() as i64), "{name} GET part {n}: length");
            assert_eq!(got.content_range(), Some(window.as_str()), "{name} GET part {n}: range");
            assert_eq!(got.parts_count(), Some(3), "{name} GET part {n}");
            let body = got.body.collect().await.unwrap().into_bytes();
            assert!(body[..] == part[..], "{name} GET part {n}: the bytes are not the part's");
            let head = head.send().await.unwrap();
            assert_eq!(head.content_length(), Some(part.len() as i64), "{name} HEAD part {n}: length");
            assert_eq!(head.content_range(), Some(window.as_str()), "{name} HEAD part {n}: range");
            start = end;
        }
    }
}
