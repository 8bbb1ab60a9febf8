//! The fault admin API of a running process, driven by `hoard debug fault`.

use std::process::Command;

use hoard_it::hoard_bin;
use hoard_it::HoardProcess;
use hoard_it::ACCESS_KEY;
use hoard_it::SECRET_KEY;

fn debug_fault(endpoint: &str, secret: &str, args: &[&str]) -> std::process::Output {
    Command::new(hoard_bin())
        .args(["debug", "fault", "--endpoint", endpoint])
        .args(args)
        .env("HOARD_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("HOARD_ROOT_SECRET_KEY", secret)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("hoard runs")
}

fn no_retries(endpoint: &str) -> aws_sdk_s3::Client {
    let c = hoard_it::client_for(endpoint, ACCESS_KEY, SECRET_KEY);
    let conf = c.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()).build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn armed_fault_fails_the_next_put_then_disarms_itself() {
    let dir = tempfile::tempdir().unwrap();
    let node = HoardProcess::start(&dir.path().join("data"), &["--fault-injection"]).unwrap();
    let endpoint = node.endpoint();
    let c = no_retries(&endpoint);
    c.create_bucket().bucket("faults").send().await.unwrap();

    let out = debug_fault(&endpoint, SECRET_KEY, &["arm", "put.before_commit", "error", "--times", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = debug_fault(&endpoint, SECRET_KEY, &["list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "put.before_commit error 1");

    let err = c.put_object().bucket("faults").key("k").body(b"x".to_vec().into()).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
    let head = c.head_object().bucket("faults").key("k").send().await.unwrap_err();
    assert_eq!(head.raw_response().map(|r| r.status().as_u16()), Some(404), "a failed PUT stores nothing");

    c.put_object().bucket("faults").key("k").body(b"x".to_vec().into()).send().await.unwrap();
    let listed = debug_fault(&endpoint, SECRET_KEY, &["list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "", "a one-shot fault disarms itself");

    let bad = debug_fault(&endpoint, SECRET_KEY, &["arm", "no.such.point", "panic"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown fault point"));
    let forged = debug_fault(&endpoint, "not-the-secret", &["arm", "put.before_commit", "panic"]);
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("SignatureDoesNotMatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_is_refused_unless_enabled_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
    let out = debug_fault(&node.endpoint(), SECRET_KEY, &["arm", "put.before_commit", "panic"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("--fault-injection"), "{err}");
}
