//! boto3, the Python SDK, against an in-process node over HTTPS: each script in `it/py/` checks one area as a
//! Python application would use it, and fails on its first wrong answer.

use hoard_it::TestCert;
use hoard_it::TestNode;

/// Runs `script` against a fresh node holding a master key and serving HTTPS; panics with the script's output
/// when it fails.
async fn run(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    std::fs::write(&key_file, [0x61u8; 32]).unwrap();
    let cert = TestCert::new();
    let node = TestNode::builder()
        .data_dir(dir.path().join("node"))
        .master_key_file(&key_file)
        .tls(&cert.cert, &cert.key)
        .start()
        .await
        .unwrap();
    let endpoint = node.endpoint();
    let out = tokio::task::block_in_place(|| hoard_it::boto3(script, &endpoint, Some(&cert.cert)));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim_end().ends_with("ok"),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_versioning() {
    run("versioning.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_browser_form_uploads() {
    run("post.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_attributes_checksums_listings_and_object_lock() {
    run("details.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_access_keys_acls_presigned_forms_and_policies() {
    run("access.py").await;
}
