//! The aws CLI against a real `hoard serve` process: what an operator would type.
//!
//! Every command runs the real `aws` program (`pip install awscli`) with the test credentials; answers are
//! checked on the CLI's own output and, where it matters, read back through the SDK.

use std::io::Read;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

use hoard_it::aws;
use hoard_it::md5_hex;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::ACCESS_KEY;

const MIB: usize = 1024 * 1024;

struct Cli {
    _dir: tempfile::TempDir,
    hoard: HoardProcess,
    work: std::path::PathBuf,
}

impl Cli {
    fn start() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let hoard = HoardProcess::start(&dir.path().join("data"), &[]).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Cli { _dir: dir, hoard, work }
    }

    fn run(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| aws(&self.hoard.endpoint(), args))
    }

    /// Like [`Cli::run`] with another secret key and CLI config file.
    fn run_with(&self, secret: &str, config_file: &Path, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| {
            Command::new("aws")
                .arg("--endpoint-url")
                .arg(self.hoard.endpoint())
                .args(args)
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_CONFIG_FILE", config_file)
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .stdin(Stdio::null())
                .output()
                .expect("the aws CLI runs")
        })
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "aws {}: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn ok_text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).expect("utf-8 output")
    }

    /// Runs a command that must fail and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "aws {} should fail; stdout: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.work.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p.to_string_lossy().into_owned()
    }
}

/// A plain HTTP/1.1 GET of `url` (no signing, no SDK): status and body.
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (status, hoard_it::dechunk(&body).expect("a chunked body"));
    }
    (status, body)
}

fn files_in(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_copies_lists_streams_and_removes_objects() {
    let cli = Cli::start();
    let out = cli.ok_text(&["s3", "mb", "s3://cli"]);
    assert!(out.contains("make_bucket: cli"), "{out}");

    let small = pattern(1, 2000);
    let small_path = cli.file("small.txt", &small);
    cli.ok(&["s3", "cp", &small_path, "s3://cli/small.txt"]);
    let big = pattern(2, 40 * MIB);
    let big_path = cli.file("big.bin", &big);
    cli.ok(&["s3", "cp", &big_path, "s3://cli/dir/big.bin"]);

    let ls = cli.ok_text(&["s3", "ls", "s3://cli/"]);
    assert!(ls.contains(" 2000 small.txt"), "{ls}");
    assert!(ls.contains("PRE dir/"), "{ls}");
    let ls = cli.ok_text(&["s3", "ls", "--recursive", "s3://cli/"]);
    assert!(ls.contains(&format!(" {} dir/big.bin", 40 * MIB)), "{ls}");

    let streamed = cli.ok(&["s3", "cp", "s3://cli/dir/big.bin", "-"]);
    assert_eq!(streamed.len(), big.len());
    assert_eq!(md5_hex(&streamed), md5_hex(&big), "40 MiB streamed to stdout");
    assert_eq!(cli.ok(&["s3", "cp", "s3://cli/small.txt", "-"]), small);

    // The CLI uploaded 40 MiB in 8 MiB parts: a multipart ETag of five parts.
    let head = cli.ok_text(&["s3api", "head-object", "--bucket", "cli", "--key", "dir/big.bin"]);
    assert!(head.contains(&format!("\"ContentLength\": {}", 40 * MIB)), "{head}");
    assert!(head.contains("-5\\\""), "multipart ETag with 5 parts: {head}");
    let sdk = cli.hoard.client();
    let h = sdk.head_object().bucket("cli").key("dir/big.bin").send().await.unwrap();
    assert_eq!(h.content_length(), Some(40 * MIB as i64));

    let meta_path = cli.file("meta.txt", b"with metadata");
    cli.ok(&[
        "s3api",
        "put-object",
        "--bucket",
        "cli",
        "--key",
        "meta.txt",
        "--body",
        &meta_path,
        "--content-type",
        "text/plain",
        "--metadata",
        "colour=blue,team=storage",
    ]);
    let head = cli.ok_text(&["s3api", "head-object", "--bucket", "cli", "--key", "meta.txt"]);
    assert!(head.contains("\"colour\": \"blue\""), "{head}");
    assert!(head.contains("\"team\": \"storage\""), "{head}");
    assert!(head.contains("\"ContentType\": \"text/plain\""), "{head}");
    let h = sdk.head_object().bucket("cli").key("meta.txt").send().await.unwrap();
    assert_eq!(h.metadata().and_then(|m| m.get("colour")).map(String::as_str), Some("blue"));

    let out = cli.ok_text(&["s3", "rm", "s3://cli/small.txt"]);
    assert!(out.contains("delete: s3://cli/small.txt"), "{out}");
    let ls = cli.ok_text(&["s3", "ls", "--recursive", "s3://cli/"]);
    assert!(!ls.contains("small.txt"), "{ls}");
    let err = cli.fails(&["s3", "cp", "s3://cli/small.txt", "-"]);
    assert!(err.contains("404") || err.contains("Not Found") || err.contains("NoSuchKey"), "{err}");

    let err = cli.fails(&["s3", "rb", "s3://cli"]);
    assert!(err.contains("BucketNotEmpty"), "{err}");
    cli.ok(&["s3", "rb", "--force", "s3://cli"]);
    let ls = cli.ok_text(&["s3", "ls"]);
    assert!(!ls.contains(" cli\n") && !ls.ends_with(" cli"), "{ls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_uploads_a_tree_that_lists_by_prefix_and_delimiter() {
    let cli = Cli::start();
    cli.ok(&["s3", "mb", "s3://tree"]);
    let src = cli.work.join("src");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("top.txt", pattern(10, 10)),
        ("a/one.txt", pattern(11, 1000)),
        ("a/b/two.bin", pattern(12, 300_000)),
        ("c/three.txt", pattern(13, 0)),
        ("c/four.txt", pattern(14, 4444)),
    ];
    for (name, data) in &files {
        cli.file(&format!("src/{name}"), data);
    }
    let src_s = src.to_string_lossy().into_owned();
    let out = cli.ok_text(&["s3", "sync", &src_s, "s3://tree/up/"]);
    assert_eq!(out.matches("upload:").count(), files.len(), "{out}");
    // A second sync finds nothing to do.
    let out = cli.ok_text(&["s3", "sync", &src_s, "s3://tree/up/"]);
    assert!(!out.contains("upload:"), "{out}");

    let listing = cli.ok_text(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "tree",
        "--prefix",
        "up/",
        "--delimiter",
        "/",
        "--query",
        "[Contents[].Key, CommonPrefixes[].Prefix]",
        "--output",
        "text",
    ]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines, ["up/top.txt", "up/a/\tup/c/"], "{listing}");
    let listing = cli.ok_text(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "tree",
        "--prefix",
        "up/c/",
        "--query",
        "Contents[].[Key, Size]",
        "--output",
        "text",
    ]);
    assert_eq!(listing.lines().collect::<Vec<_>>(), ["up/c/four.txt\t4444", "up/c/three.txt\t0"], "{listing}");

    let dst = cli.work.join("dst");
    let dst_s = dst.to_string_lossy().into_owned();
    cli.ok(&["s3", "sync", "s3://tree/up/", &dst_s]);
    assert_eq!(files_in(&dst), files_in(&src), "the tree round-trips byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_presigned_url_serves_the_object_to_plain_http() {
    let cli = Cli::start();
    cli.ok(&["s3", "mb", "s3://pre"]);
    let data = pattern(20, 1_500_000);
    let path = cli.file("shared.bin", &data);
    cli.ok(&["s3", "cp", &path, "s3://pre/shared/file.bin"]);

    // The CLI presigns with signature version 2 by default, which hoard refuses (it cannot be bounded in
    // time); configured for s3v4 it makes an X-Amz-Signature URL.
    let v2 = cli.ok_text(&["s3", "presign", "s3://pre/shared/file.bin", "--expires-in", "600"]);
    let v2 = v2.trim();
    assert!(v2.starts_with(&cli.hoard.endpoint()) && v2.contains("AWSAccessKeyId="), "{v2}");
    let (status, body) = tokio::task::block_in_place(|| http_get(v2));
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "a SigV2-presigned URL is refused: {body}");
    assert!(body.contains("InvalidRequest") && body.contains("AWS4-HMAC-SHA256"), "{body}");

    let config = cli.file("aws-config", b"[default]\ns3 =\n    signature_version = s3v4\n");
    let args = ["s3", "presign", "s3://pre/shared/file.bin", "--expires-in", "600"];
    let out = cli.run_with(hoard_it::SECRET_KEY, Path::new(&config), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8(out.stdout).unwrap();
    let url = url.trim();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let (status, body) = tokio::task::block_in_place(|| http_get(url));
    assert_eq!(status, 200, "SigV4-presigned GET of {url}: {}", String::from_utf8_lossy(&body));
    assert_eq!(md5_hex(&body), md5_hex(&data));

    // The signature covers the key: the same query on another key is refused.
    let other = url.replacen("/shared/file.bin", "/shared/other.bin", 1);
    let (status, body) = tokio::task::block_in_place(|| http_get(&other));
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    // And without the signature it is an anonymous request, refused.
    let bare = url.split('?').next().unwrap();
    let (status, _) = tokio::task::block_in_place(|| http_get(bare));
    assert_eq!(status, 403);
    let tampered = url.replacen("X-Amz-Expires=600", "X-Amz-Expires=601", 1);
    assert_ne!(tampered, url);
    let (status, _) = tokio::task::block_in_place(|| http_get(&tampered));
    assert_eq!(status, 403, "a changed expiry breaks the signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_with_a_wrong_secret_is_refused_with_signature_mismatch() {
    let cli = Cli::start();
    cli.ok(&["s3", "mb", "s3://locked"]);
    let out =
        cli.run_with("not-the-secret", Path::new("/dev/null"), &["s3api", "list-objects-v2", "--bucket", "locked"]);
    assert!(!out.status.success(), "a wrong secret must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");
    // The right secret still works.
    cli.ok(&["s3api", "list-objects-v2", "--bucket", "locked"]);
}
