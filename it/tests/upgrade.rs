//! Upgrades: a data directory written by an earlier build, kept in `it/fixtures/`, is opened by this build and
//! every object in it reads byte-identical: plain, SSE-S3 and SSE-C, inline and coded, single and multipart.
//!
//! Each change of a stored format adds a fixture written by the last build before it (run
//! `cargo test -p hoard-it --test upgrade -- --ignored write_fixture` on that build, then rename the file
//! after its format generation); this test reads every fixture there is.

use std::path::Path;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::CompletedPart;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use base64::Engine as _;
use hoard_it::pattern;
use hoard_it::tls_client;
use hoard_it::TestCert;
use hoard_it::TestNode;
use md5::Digest as _;

/// The master key every fixture was written with (not a secret: test data only).
const MASTER_KEY: [u8; 32] = [0x5a; 32];
/// The SSE-C key of the fixtures' customer-keyed objects.
const CUSTOMER_KEY: [u8; 32] = [0x42; 32];

/// What each fixture holds: (bucket, key, encryption, length, pattern seed).
/// Sizes keep the fixtures small: plain bodies repeat (they compress), encrypted ones cannot, so only one of
/// those spans two blocks.
const OBJECTS: &[(&str, &str, Enc, usize, u64)] = &[
    ("plain", "inline", Enc::None, 1000, 1),
    ("plain", "one-block", Enc::None, 700 * 1024, 2),
    ("plain", "three-blocks", Enc::None, 2 * 1024 * 1024 + 17, 3),
    ("plain", "empty", Enc::None, 0, 4),
    ("plain", "multipart", Enc::Multipart, 300 * 1024 + 5, 5),
    ("vault", "sse-s3-inline", Enc::SseS3, 2000, 6),
    ("vault", "sse-s3", Enc::SseS3, 1024 * 1024 + 300, 7),
    ("vault", "sse-c-inline", Enc::SseC, 500, 8),
    ("vault", "sse-c", Enc::SseC, 150 * 1024, 9),
];

/// An object's body: 4 KiB of `pattern(seed)`, over and over.
fn body(seed: u64, len: usize) -> Vec<u8> {
    pattern(seed, 4096).into_iter().cycle().take(len).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    None,
    Multipart,
    SseS3,
    SseC,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn customer() -> (String, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    (b64.encode(CUSTOMER_KEY), b64.encode(md5::Md5::digest(CUSTOMER_KEY)))
}

/// A node on `data_dir` with the fixtures' master key, over HTTPS (SSE-C needs it).
async fn node_on(dir: &Path) -> (TestNode, Client, TestCert) {
    let key_file = dir.join("master.key");
    std::fs::write(&key_file, MASTER_KEY).unwrap();
    let cert = TestCert::new();
    let node = TestNode::builder()
        .data_dir(dir.join("data"))
        .master_key_file(&key_file)
        .tls(&cert.cert, &cert.key)
        .start()
        .await
        .unwrap();
    let c = tls_client(&node, &cert);
    (node, c, cert)
}

/// Writes a fixture of this build's formats to `it/fixtures/new.tar.gz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes a new fixture; run by hand before a stored format changes"]
async fn write_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let (node, c, _cert) = node_on(dir.path()).await;
    let (key, key_md5) = customer();
    for bucket in ["plain", "vault"] {
        c.create_bucket().bucket(bucket).send().await.unwrap();
    }
    for &(bucket, name, enc, len, seed) in OBJECTS {
        let data = body(seed, len);
        match enc {
            Enc::Multipart => {
                let up = c.create_multipart_upload().bucket(bucket).key(name).send().await.unwrap();
                let id = up.upload_id().unwrap();
                let part = c
                    .upload_part()
                    .bucket(bucket)
                    .key(name)
                    .upload_id(id)
                    .part_number(1)
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .unwrap();
                let done = CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build();
                c.complete_multipart_upload()
                    .bucket(bucket)
                    .key(name)
                    .upload_id(id)
                    .multipart_upload(CompletedMultipartUpload::builder().parts(done).build())
                    .send()
                    .await
                    .unwrap();
            }
            _ => {
                let mut put = c.put_object().bucket(bucket).key(name).body(ByteStream::from(data));
                if enc == Enc::SseS3 {
                    put = put.server_side_encryption(ServerSideEncryption::Aes256);
                }
                if enc == Enc::SseC {
                    put = put.sse_customer_algorithm("AES256").sse_customer_key(&key).sse_customer_key_md5(&key_md5);
                }
                put.send().await.unwrap();
            }
        }
    }
    node.stop().await;
    let out = fixtures_dir().join("new.tar.gz");
    std::fs::create_dir_all(fixtures_dir()).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-czf"])
        .arg(&out)
        .arg("data")
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every fixture opens, and every object in it reads as it was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_by_earlier_builds_reads_byte_identical() {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "no fixture in {}", fixtures_dir().display());
    let (key, key_md5) = customer();
    for fixture in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let status =
            std::process::Command::new("tar").arg("-C").arg(dir.path()).arg("-xzf").arg(&fixture).status().unwrap();
        assert!(status.success(), "unpacking {}", fixture.display());
        let (node, c, _cert) = node_on(dir.path()).await;
        let name = fixture.file_name().unwrap().to_string_lossy().to_string();
        for &(bucket, object, enc, len, seed) in OBJECTS {
            let mut get = c.get_object().bucket(bucket).key(object);
            if enc == Enc::SseC {
                get = get.sse_customer_algorithm("AES256").sse_customer_key(&key).sse_customer_key_md5(&key_md5);
            }
            let got = get.send().await.unwrap_or_else(|e| panic!("{name}: {bucket}/{object}: {e:?}"));
            let got_body = got.body.collect().await.unwrap().into_bytes();
            assert!(got_body[..] == body(seed, len)[..], "{name}: {bucket}/{object} reads other bytes");
        }
        let listed = c.list_objects_v2().bucket("plain").send().await.unwrap();
        assert_eq!(listed.key_count(), Some(5), "{name}");
        // The old data takes new writes beside it.
        c.put_object().bucket("plain").key("new").body(ByteStream::from_static(b"after")).send().await.unwrap();
        node.stop().await;
    }
}
