//! Keys never reach the logs: a real `hoard` process logging at `trace` (every crate, hyper and rustls
//! included; the S3 library's debug events are never logged) serves the whole SSE matrix over HTTPS — SSE-S3,
//! bucket defaults, SSE-C put/get/head/range, wrong keys, copies that change keys, an SSE-C multipart upload
//! and its UploadPartCopy, a master-key rotation — and then its captured output is searched for every key in
//! every usual spelling.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use hoard_it::aws_tls;
use hoard_it::hoard_bin;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::TestCert;
use hoard_it::ACCESS_KEY;
use hoard_it::SECRET_KEY;

/// The spellings a key could leak in: raw, hex, base64 (standard and URL-safe, with and without
/// padding), and Rust's `Debug` of a byte array or slice.
fn spellings(key: &[u8; 32]) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let url = base64::engine::general_purpose::URL_SAFE.encode(key);
    let debug: Vec<String> = key[..8].iter().map(|b| b.to_string()).collect();
    vec![
        ("raw".into(), key[..16].to_vec()),
        ("hex".into(), hex::encode(key).into_bytes()),
        ("HEX".into(), hex::encode_upper(key).into_bytes()),
        ("base64".into(), b64.trim_end_matches('=').as_bytes()[..40].to_vec()),
        ("base64url".into(), url.trim_end_matches('=').as_bytes()[..40].to_vec()),
        ("debug".into(), format!("[{}", debug.join(", ")).into_bytes()),
    ]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

fn key(seed: u64) -> [u8; 32] {
    pattern(seed, 32).try_into().expect("32 bytes")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_of_the_whole_sse_matrix_contain_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (master, next, customer, other) = (key(0x1001), key(0x1002), key(0x1003), key(0x1004));
    let master_file = write(d, "master.key", hex::encode(master).as_bytes());
    let next_file = write(d, "next.key", base64::engine::general_purpose::STANDARD.encode(next).as_bytes());
    let cust = format!("fileb://{}", write(d, "cust.key", &customer));
    let oth = format!("fileb://{}", write(d, "other.key", &other));
    let cert = TestCert::new();
    let node = HoardProcess::start_tls(&d.join("data"), &cert, "trace", &["--master-key-file", &master_file]).unwrap();
    let endpoint = node.endpoint();
    let aws = |args: &[&str]| {
        let out = aws_tls(&endpoint, &cert.cert, args);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let ok = |args: &[&str]| {
        let (success, stderr) = aws(args);
        assert!(success, "aws {args:?}: {stderr}");
    };

    let small = write(d, "small", &pattern(1, 300_000));
    let big = write(d, "big", &pattern(2, 10 * 1024 * 1024 + 3));
    let out = d.join("out").display().to_string();
    ok(&["s3", "mb", "s3://logs"]);
    ok(&["s3", "cp", &small, "s3://logs/s3", "--sse", "AES256"]);
    ok(&["s3", "cp", "s3://logs/s3", &out]);
    let config = r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}"#;
    ok(&["s3api", "put-bucket-encryption", "--bucket", "logs", "--server-side-encryption-configuration", config]);
    ok(&["s3", "cp", &small, "s3://logs/default"]);
    ok(&["s3", "cp", &small, "s3://logs/c", "--sse-c", "AES256", "--sse-c-key", &cust]);
    ok(&["s3", "cp", "s3://logs/c", &out, "--sse-c", "AES256", "--sse-c-key", &cust]);
    let with_key = ["--sse-customer-algorithm", "AES256", "--sse-customer-key", cust.as_str()];
    let head = ["s3api", "head-object", "--bucket", "logs", "--key", "c"];
    ok(&[&head[..], &with_key[..]].concat());
    let ranged = ["s3api", "get-object", "--bucket", "logs", "--key", "c", "--range", "bytes=10-20000"];
    ok(&[&ranged[..], &with_key[..], &[out.as_str()]].concat());
    let (success, _) = aws(&["s3", "cp", "s3://logs/c", &out, "--sse-c", "AES256", "--sse-c-key", &oth]);
    assert!(!success, "a wrong customer key must be refused");
    // Multipart with the customer key, then a multipart copy (UploadPartCopy) that changes the key.
    ok(&["s3", "cp", &big, "s3://logs/mp", "--sse-c", "AES256", "--sse-c-key", &cust]);
    let change = ["--sse-c-copy-source", "AES256", "--sse-c-copy-source-key", cust.as_str()];
    let to_other = ["--sse-c", "AES256", "--sse-c-key", oth.as_str()];
    ok(&[&["s3", "cp", "s3://logs/mp", "s3://logs/mp2"][..], &change[..], &to_other[..]].concat());
    ok(&[&["s3", "cp", "s3://logs/c", "s3://logs/c"][..], &change[..], &to_other[..]].concat());
    ok(&["s3", "cp", "s3://logs/mp2", &out, "--sse-c", "AES256", "--sse-c-key", &oth]);

    // A master-key rotation, followed to the end.
    let rotate = Command::new(hoard_bin())
        .args(["cluster", "rotate-key", "--new-master-key-file", &next_file])
        .env("HOARD_ENDPOINT", &endpoint)
        .env("AWS_CA_BUNDLE", &cert.cert)
        .env("HOARD_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("HOARD_ROOT_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    ok(&["s3", "cp", "s3://logs/s3", &out]);

    drop(node); // kill -9; every log line is already written (stdout is line-buffered)
    let log = std::fs::read(d.join("data.log")).unwrap();
    assert!(log.len() > 100_000 && contains(&log, b"TRACE"), "the process logged at trace level");
    assert!(!contains(&log, b" s3s::"), "the S3 library's debug events (whole requests) are dropped");
    for (name, k) in [("master", &master), ("rotated-to master", &next), ("customer", &customer), ("other", &other)] {
        for (spelling, needle) in spellings(k) {
            if let Some(at) = find(&log, &needle) {
                let line_start = log[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let context = String::from_utf8_lossy(&log[line_start.max(at.saturating_sub(400))..at]);
                panic!("the {name} key appears in the log as {spelling}, after: {context}");
            }
        }
    }
}
