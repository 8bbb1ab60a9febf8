//! hoard run as a service: the `hoard serve` process stopped by SIGTERM (as systemd, Docker and Kubernetes
//! stop it), with a request in flight.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;
use std::time::Instant;

use aws_sdk_s3::presigning::PresigningConfig;
use hoard_it::eventually;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use tokio::io::AsyncReadExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

fn signal(process: &HoardProcess, name: &str) {
    let pid = process.child.as_ref().expect("the process runs").id();
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits for the process to exit, at most `deadline`.
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
fn exit_status(process: &mut HoardProcess, deadline: Duration) -> ExitStatus {
    let child = process.child.as_mut().expect("the process runs");
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            process.child = None;
            return status;
        }
        assert!(Instant::now() < until, "hoard still runs {deadline:?} after the signal; log:\n{}", process.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A presigned PUT of `len` bytes whose request head and first `sent` bytes of body are on the wire.
async fn put_in_flight(process: &HoardProcess, key: &str, body: &[u8], sent: usize) -> TcpStream {
    let c = process.client();
    let presigned = c
        .put_object()
        .bucket("svc")
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let url = presigned.uri().strip_prefix("http://").unwrap();
    let (authority, path) = url.split_at(url.find('/').unwrap());
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut s = TcpStream::connect(process.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..sent]).await.unwrap();
    s.flush().await.unwrap();
    s
}

/// The status code of the response read off `s` to its end.
async fn response_status(mut s: TcpStream) -> std::io::Result<u16> {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf)).await??;
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(head.to_string()))
}

fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// SIGTERM while a large PUT is half uploaded: the node stops accepting at once, the PUT completes and is
/// answered, the process exits 0 having logged each step, and the object reads back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_put_in_flight_finish_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
    process.client().create_bucket().bucket("svc").send().await.unwrap();
    let body = pattern(91, 48 * MIB + 13);
    let mut s = put_in_flight(&process, "big", &body, 20 * MIB).await;

    signal(&process, "TERM");
    eventually("the listener to close", || !accepts(process.addr)).await;
    s.write_all(&body[20 * MIB..]).await.unwrap();
    assert_eq!(response_status(s).await.unwrap(), 200, "the PUT in flight is answered; log:\n{}", process.log_text());
    let status = exit_status(&mut process, Duration::from_secs(30));
    assert!(status.success(), "{status}; log:\n{}", process.log_text());
    let log = process.log_text();
    for step in ["stop requested", "stopped accepting", "every request in flight has finished", "hoard stopped"] {
        assert!(log.contains(step), "the log tells {step:?}:\n{log}");
    }
    let stopping = &log[log.find("stop requested").unwrap_or(0)..];
    assert!(!stopping.contains("ERROR") && !stopping.contains("WARN"), "a clean stop logs no error or warning:\n{log}");

    process.restart().unwrap();
    assert!(hoard_it::get(&process.client(), "svc", "big").await == body, "the object reads back after the restart");
}

/// `--runtime-threads` sets the threads of the async runtime; the node serves on one as on many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_on_the_runtime_threads_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let process = HoardProcess::start(&dir.path().join("data"), &["--runtime-threads", "1"]).unwrap();
    eventually("the node to say it serves", || process.log_text().contains("hoard is serving")).await;
    let log = process.log_text();
    assert!(log.contains("runtime_threads=1"), "the runtime has the one thread asked for:\n{log}");
    let client = process.client();
    client.create_bucket().bucket("one").send().await.unwrap();
    let body = pattern(7, 3 * MIB + 5);
    hoard_it::put(&client, "one", "k", &body).await;
    assert!(hoard_it::get(&client, "one", "k").await == body, "the object reads back");
}

/// A request in flight holds the stop for at most `--shutdown-timeout`; a second signal does not wait at all.
/// Either way the half-sent object is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
async fn a_stalled_request_holds_the_stop_no_longer_than_its_deadline_and_a_second_signal_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = HoardProcess::start(&dir.path().join("data"), &["--shutdown-timeout", "2"]).unwrap();
    process.client().create_bucket().bucket("svc").send().await.unwrap();
    let body = pattern(92, 4 * MIB);

    let _stalled = put_in_flight(&process, "stalled", &body, MIB).await;
    let stopping = Instant::now();
    signal(&process, "TERM");
    let status = exit_status(&mut process, Duration::from_secs(20));
    assert!(status.success(), "{status}; log:\n{}", process.log_text());
    assert!(stopping.elapsed() >= Duration::from_secs(2), "the stop waited for the request in flight");
    assert!(process.log_text().contains("the stop deadline passed"), "{}", process.log_text());

    process.restart().unwrap();
    let _stalled = put_in_flight(&process, "stalled", &body, MIB).await;
    signal(&process, "TERM");
    eventually("the listener to close", || !accepts(process.addr)).await;
    signal(&process, "INT");
    let status = exit_status(&mut process, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "a second signal exits at once; log:\n{}", process.log_text());
    assert!(process.log_text().contains("second signal"), "{}", process.log_text());

    process.restart().unwrap();
    let head = process.client().head_object().bucket("svc").key("stalled").send().await;
    assert_eq!(hoard_it::failure(head).0, 404, "a PUT that never finished stores nothing");
}
