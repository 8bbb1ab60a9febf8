//! hoard tried as an attacker would, against a real `hoard` process: names that could break metadata,
//! requests that would hold memory or connections before authentication, signatures that could be replayed,
//! and logs that could be flooded or leak what signs a request.

use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use aws_sdk_s3::types::Delete;
use aws_sdk_s3::types::ObjectIdentifier;
use hoard_it::failure;
use hoard_it::get;
use hoard_it::no_retry;
use hoard_it::pattern;
use hoard_it::put;
use hoard_it::HoardProcess;
use hoard_it::TestCert;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls;

const MIB: u64 = 1 << 20;

/// Sends `head` (and nothing more) on a fresh connection and returns the status line's code and the body
/// the server answered with, reading until it closes the connection.
fn raw(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// Waits until the server closes `s` (a read returns end of file or an error) and says how long that took;
/// panics if it stays open for `limit`.
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
async fn wait_closed<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => panic!("the connection stayed open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// A connection from the loopback address `from` (127.0.0.2 is another client to the server).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// `GET path` over a fresh connection from `from`; `None` if the server closed it unanswered.
async fn get_from(from: [u8; 4], to: SocketAddr, path: &str) -> Option<String> {
    let mut s = connect_from(from, to).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_70_000_byte_key_in_a_body_is_refused_and_the_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut hoard = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
    let c = no_retry(hoard.client());
    c.create_bucket().bucket("keys").send().await.unwrap();
    let data = pattern(7, 200_000);
    put(&c, "keys", "kept", &data).await;

    let huge = "k".repeat(70_000);
    let one = |key: &str| ObjectIdentifier::builder().key(key).build().unwrap();
    let delete = Delete::builder().objects(one("kept")).objects(one(&huge)).build().unwrap();
    let (status, code) = failure(c.delete_objects().bucket("keys").delete(delete).send().await);
    assert_eq!((status, code.as_str()), (400, "KeyTooLongError"));
    assert_eq!(get(&c, "keys", "kept").await, data, "one bad key deletes nothing");

    let just_over = "€".repeat(342); // 1026 bytes of UTF-8
    let delete = Delete::builder().objects(one(&just_over)).build().unwrap();
    let (status, code) = failure(c.delete_objects().bucket("keys").delete(delete).send().await);
    assert_eq!((status, code.as_str()), (400, "KeyTooLongError"));

    let source = format!("keys/{}", "s".repeat(5_000));
    let (status, code) = failure(c.copy_object().bucket("keys").key("copy").copy_source(source).send().await);
    assert_eq!(status, 400, "a copy source is checked as a key");
    assert!(["KeyTooLongError", "InvalidArgument"].contains(&code.as_str()), "{code}");

    let (status, code) = failure(c.list_parts().bucket("keys").key("kept").upload_id("u".repeat(2_000)).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));

    // Nothing of it reached the log: a restart replays it and serves.
    hoard.restart().unwrap();
    let c = no_retry(hoard.client());
    assert_eq!(get(&c, "keys", "kept").await, data);
    put(&c, "keys", "after", b"still writable").await;
}

#[test]
fn signature_version_2_and_long_lived_presigned_urls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
    let (status, body) = raw(
        hoard.addr,
        "GET /b/k HTTP/1.1\r\nHost: x\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\
         Authorization: AWS hoardtest:c2lnbmF0dXJlLXYy\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidRequest</Code>") && body.contains("AWS4-HMAC-SHA256"), "{body}");

    let (status, body) = raw(
        hoard.addr,
        "GET /b/k?AWSAccessKeyId=hoardtest&Expires=4102444800&Signature=c2ln HTTP/1.1\r\nHost: x\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{body}");

    for expires in ["10000000", "604801", "-5", "soon"] {
        let head = format!(
            "GET /b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=hoardtest%2F20261204%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20261204T000000Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=00 HTTP/1.1\r\n\
             Host: x\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = raw(hoard.addr, &head);
        assert_eq!(status, 400, "X-Amz-Expires={expires}: {body}");
        assert!(body.contains("AuthorizationQueryParametersError"), "{body}");
    }
}

#[test]
fn unauthenticated_bodies_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
    let before = hoard.rss().expect("the process's RSS");

    // A 300 MiB unsigned form upload: refused (403) once its fields show no signature; the file is never
    // stored, and at most a bounded part of it is read and dropped so that the client hears the answer.
    let mut s = TcpStream::connect(hoard.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let len = 300 * MIB;
    let head = format!(
        "POST /bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zzz\r\n\
         Content-Length: {len}\r\n\r\n--zzz\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n\
         --zzz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    // Keep sending until the server answers or stops reading; it must answer long before 300 MiB.
    let chunk = vec![b'x'; MIB as usize];
    let mut sent = 0u64;
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    while sent < 32 * MIB && s.write_all(&chunk).is_ok() {
        sent += MIB;
    }
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).expect("an answer before the body is sent");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let after = hoard.rss().expect("the process's RSS");
    assert!(after < before + 16 * MIB, "RSS grew from {before} to {after} bytes on an unauthenticated request");

    // A form that never reaches its file (no boundary ever comes) is held back after a bounded prefix: the
    // server stops reading, so the sender stalls and the node's memory does not follow it.
    let mut s = TcpStream::connect(hoard.addr).unwrap();
    let head = "POST /bucket HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zzz\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut framed = format!("{:x}\r\n", MIB).into_bytes();
    framed.extend(std::iter::repeat_n(b'y', MIB as usize));
    framed.extend_from_slice(b"\r\n");
    let mut sent = 0u64;
    while sent < 256 * MIB && s.write_all(&framed).is_ok() {
        sent += MIB;
    }
    assert!(sent < 256 * MIB, "the node kept reading a form that never reached its file");
    let held = hoard.rss().expect("the process's RSS");
    assert!(held < before + 32 * MIB, "RSS grew from {before} to {held} bytes on an endless form");
    drop(s);

    // An anonymous PUT with a body is answered from its headers too: 404 for a bucket that does not exist (as S3
    // answers anyone), 403 for a private one.
    let (status, body) =
        raw(hoard.addr, "PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 404, "{body}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(hoard.client().create_bucket().bucket("bucket").send()).unwrap();
    let (status, body) =
        raw(hoard.addr, "PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 403, "{body}");

    // A 50 MB XML body is too big, refused from its declared length with S3's code for it.
    let (status, body) = raw(
        hoard.addr,
        "POST /bucket?delete HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\nConnection: close\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=hoardtest/20261204/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=00\r\n\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("MaxMessageLengthExceeded"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
async fn silent_connections_from_one_address_never_lock_out_another() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = HoardProcess::start(
        &dir.path().join("data"),
        &["--max-connections-per-ip", "40", "--first-request-timeout", "3"],
    )
    .unwrap();
    // More silent connections from 127.0.0.1 than its cap: each one over the cap takes the place of the
    // longest-idle one, so the first 20 are closed at once and 40 are held.
    let opened = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(connect_from([127, 0, 0, 1], hoard.addr).await.unwrap());
    }
    let mut held = silent.split_off(20);
    for s in &mut silent {
        wait_closed(s, Duration::from_secs(2)).await;
    }
    // Meanwhile a client on 127.0.0.2 is served within a second, every time.
    while opened.elapsed() < Duration::from_secs(2) {
        let start = Instant::now();
        let served = get_from([127, 0, 0, 2], hoard.addr, "/health/live").await;
        assert_eq!(served.as_deref(), Some("live\n"));
        assert!(start.elapsed() < Duration::from_secs(1), "a request from 127.0.0.2 took {:?}", start.elapsed());
    }
    // A real client on the silent ones' own address is served too, in a silent one's place.
    assert_eq!(get_from([127, 0, 0, 1], hoard.addr, "/health/live").await.as_deref(), Some("live\n"));
    // The silent ones are closed by the first-request deadline (3 s from their accept), not before.
    for s in &mut held {
        wait_closed(s, Duration::from_secs(6)).await;
    }
    let elapsed = opened.elapsed();
    assert!(elapsed >= Duration::from_millis(2_900), "silent connections closed after only {elapsed:?}");
    assert_eq!(get_from([127, 0, 0, 1], hoard.addr, "/health/live").await.as_deref(), Some("live\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_slow_http2_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::new();
    let args = ["--first-request-timeout", "2", "--idle-timeout", "2"];
    let hoard = HoardProcess::start_tls(&dir.path().join("data"), &cert, "info", &args).unwrap();

    // A TLS client that completes its handshake and then says nothing.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(cert.pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hoard.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("the handshake completes");
    let held = wait_closed(&mut tls, Duration::from_secs(5)).await;
    assert!(held >= Duration::from_millis(1_500), "closed after {held:?}, before the deadline");

    // An HTTP/2 preface sent slowly: half of it, then nothing.
    let plain = hoard.http_addr.expect("the plain endpoint");
    let mut h2 = tokio::net::TcpStream::connect(plain).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    wait_closed(&mut h2, Duration::from_secs(5)).await;

    // A kept-alive connection that goes quiet after one request is closed after the idle timeout.
    let mut idle = tokio::net::TcpStream::connect(plain).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let held = wait_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(held >= Duration::from_millis(1_500), "an idle connection closed after {held:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A real `hoard` process takes real time: the wall clock bounds it.
#[allow(clippy::disallowed_methods)]
async fn bad_signatures_leak_nothing_and_cannot_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let hoard = HoardProcess::start_logging(&dir.path().join("data"), "debug", &[]).unwrap();
    let c = no_retry(hoard.client());
    c.create_bucket().bucket("logs").send().await.unwrap();
    let forger = no_retry(hoard_it::client_for(&hoard.endpoint(), hoard_it::ACCESS_KEY, "not-the-secret-key"));
    let started = Instant::now();
    for i in 0..40 {
        let (status, code) = failure(forger.head_object().bucket("logs").key(format!("k{i}")).send().await);
        assert_eq!(status, 403, "{code}");
    }
    let elapsed = started.elapsed();
    // The client's own request, made right: the log must not carry the signature it should have had.
    put(&c, "logs", "done", b"x").await;
    let log = hoard.log_text();
    assert!(log.contains(" DEBUG "), "the process logged at debug level");
    assert!(!log.contains("signature mismatch") && !log.contains("expected"), "a signature was logged");
    assert!(!log.contains("Signature="), "a request's signature was logged");
    let lines = log.matches("requests refused before authentication").count();
    let allowed = 1 + (elapsed.as_secs() / 10) as usize;
    assert!(lines >= 1 && lines <= allowed, "{lines} refusal lines for 40 refusals in {elapsed:?}");
    assert!(
        log.lines().filter(|l| l.contains("refused before authentication")).all(|l| l.contains(" INFO ")),
        "refusals are logged below ERROR"
    );
}
