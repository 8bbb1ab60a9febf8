//! Encryption at rest through the aws CLI over HTTPS, as the README shows it: `--sse AES256`,
//! `--sse-c AES256 --sse-c-key fileb://…` (put, get, copy with a key change, a 200 MiB multipart upload,
//! ranged reads across block boundaries), bucket default encryption with `s3api`, and the errors a wrong
//! or missing customer key gets.

use std::path::Path;
use std::process::Output;

use hoard_it::aws_tls;
use hoard_it::pattern;
use hoard_it::TestCert;
use hoard_it::TestNode;
use md5::Digest as _;

const MASTER_KEY: [u8; 32] = [0x3c; 32];

struct Cli {
    node: TestNode,
    cert: TestCert,
    dir: tempfile::TempDir,
}

impl Cli {
    async fn start() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        std::fs::write(&key_file, MASTER_KEY).unwrap();
        let cert = TestCert::new();
        let node = TestNode::builder().master_key_file(&key_file).tls(&cert.cert, &cert.key).start().await.unwrap();
        Cli { node, cert, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        aws_tls(&self.node.endpoint(), &self.cert.cert, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "aws {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "aws {args:?} succeeded but must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), data).unwrap();
        self.path(name)
    }
}

fn md5_of_file(path: &Path) -> String {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex::encode(h.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sse_s3_and_bucket_default_over_https() {
    let cli = Cli::start().await;
    cli.ok(&["s3", "mb", "s3://vault"]);
    let data = pattern(1, 3 * 1024 * 1024 + 5);
    let f = cli.write("f", &data);
    cli.ok(&["s3", "cp", &f, "s3://vault/f", "--sse", "AES256"]);
    let head = cli.ok(&["s3api", "head-object", "--bucket", "vault", "--key", "f"]);
    assert!(head.contains("\"ServerSideEncryption\": \"AES256\""), "{head}");
    let back = cli.path("f.back");
    cli.ok(&["s3", "cp", "s3://vault/f", &back]);
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // A bucket default encrypts a copy that asks for nothing.
    let config = r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}"#;
    cli.ok(&["s3api", "put-bucket-encryption", "--bucket", "vault", "--server-side-encryption-configuration", config]);
    let got = cli.ok(&["s3api", "get-bucket-encryption", "--bucket", "vault"]);
    assert!(got.contains("\"SSEAlgorithm\": \"AES256\""), "{got}");
    let g = cli.write("g", b"by default");
    cli.ok(&["s3", "cp", &g, "s3://vault/g"]);
    let head = cli.ok(&["s3api", "head-object", "--bucket", "vault", "--key", "g"]);
    assert!(head.contains("\"ServerSideEncryption\": \"AES256\""), "{head}");
    cli.ok(&["s3api", "delete-bucket-encryption", "--bucket", "vault"]);
    let err = cli.fails(&["s3api", "get-bucket-encryption", "--bucket", "vault"]);
    assert!(err.contains("ServerSideEncryptionConfigurationNotFoundError"), "{err}");

    let err = cli.fails(&["s3", "cp", &g, "s3://vault/kms", "--sse", "aws:kms"]);
    assert!(err.contains("NotImplemented") && err.contains("SSE-C"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sse_c_put_get_copy_and_a_200_mib_multipart_upload() {
    let cli = Cli::start().await;
    cli.ok(&["s3", "mb", "s3://vault"]);
    let key = cli.write("cust.key", &[0x42; 32]);
    let other = cli.write("other.key", &[0x24; 32]);
    let (key, other) = (format!("fileb://{key}"), format!("fileb://{other}"));

    let data = pattern(2, 2 * 1024 * 1024 + 321);
    let f = cli.write("f", &data);
    cli.ok(&["s3", "cp", &f, "s3://vault/g", "--sse-c", "AES256", "--sse-c-key", &key]);
    let out = cli.run(&["s3", "cp", "s3://vault/g", "-", "--sse-c", "AES256", "--sse-c-key", &key]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, data, "aws s3 cp s3://vault/g - with the key returns the plaintext");

    let err = cli.fails(&["s3", "cp", "s3://vault/g", "-", "--sse-c", "AES256", "--sse-c-key", &other]);
    assert!(err.contains("403"), "a wrong key: {err}");
    let err = cli.fails(&["s3", "cp", "s3://vault/g", "-"]);
    assert!(err.contains("400"), "no key: {err}");

    // A range across the first block boundary, read with s3api.
    let part = cli.path("range");
    let r = "bytes=1048570-1048590";
    cli.ok(&["s3api", "get-object", "--bucket", "vault", "--key", "g", "--range", r]
        .into_iter()
        .chain(["--sse-customer-algorithm", "AES256", "--sse-customer-key", &key, &part])
        .collect::<Vec<_>>());
    assert_eq!(std::fs::read(&part).unwrap(), &data[1_048_570..=1_048_590]);

    // Changing the customer key by copying onto another name with the old key as source.
    cli.ok(&[
        "s3",
        "cp",
        "s3://vault/g",
        "s3://vault/h",
        "--sse-c-copy-source",
        "AES256",
        "--sse-c-copy-source-key",
        &key,
        "--sse-c",
        "AES256",
        "--sse-c-key",
        &other,
    ]);
    let out = cli.run(&["s3", "cp", "s3://vault/h", "-", "--sse-c", "AES256", "--sse-c-key", &other]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, data);

    // 200 MiB: the CLI uploads it in 8 MiB parts, each with the key.
    let big = cli.dir.path().join("big");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        for i in 0..200u64 {
            w.write_all(&pattern(1000 + i, 1024 * 1024)).unwrap();
        }
        w.flush().unwrap();
    }
    let big = big.display().to_string();
    cli.ok(&["s3", "cp", &big, "s3://vault/big", "--sse-c", "AES256", "--sse-c-key", &key]);
    let head = cli.ok(&["s3api", "head-object", "--bucket", "vault", "--key", "big"]
        .into_iter()
        .chain(["--sse-customer-algorithm", "AES256", "--sse-customer-key", &key])
        .collect::<Vec<_>>());
    assert!(head.contains("\"ContentLength\": 209715200"), "{head}");
    assert!(head.contains("\"SSECustomerAlgorithm\": \"AES256\""), "{head}");
    let back = cli.path("big.back");
    cli.ok(&["s3", "cp", "s3://vault/big", &back, "--sse-c", "AES256", "--sse-c-key", &key]);
    assert_eq!(md5_of_file(Path::new(&back)), md5_of_file(Path::new(&big)), "200 MiB SSE-C round trip");
    let r = "bytes=100663286-100663306"; // across the 12th/13th part boundary (8 MiB parts), mid-object
    cli.ok(&["s3api", "get-object", "--bucket", "vault", "--key", "big", "--range", r]
        .into_iter()
        .chain(["--sse-customer-algorithm", "AES256", "--sse-customer-key", &key, &part])
        .collect::<Vec<_>>());
    let want = pattern(1096, 1024 * 1024);
    let got = std::fs::read(&part).unwrap();
    assert_eq!(got.len(), 21);
    assert_eq!(&got[..10], &pattern(1095, 1024 * 1024)[1024 * 1024 - 10..]);
    assert_eq!(&got[10..], &want[..11]);
}

/// The SSE-C guide's commands on a versioned bucket: two versions of one key under two customer keys, each
/// readable by its version id with its own key only, as `s3api list-object-versions` lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_each_version_of_a_versioned_bucket_has_its_own_customer_key() {
    let cli = Cli::start().await;
    cli.ok(&["s3", "mb", "s3://vault"]);
    cli.ok(&["s3api", "put-bucket-versioning", "--bucket", "vault", "--versioning-configuration", "Status=Enabled"]);
    let got = cli.ok(&["s3api", "get-bucket-versioning", "--bucket", "vault"]);
    assert!(got.contains("\"Enabled\""), "{got}");
    let keys = [cli.write("one.key", &[0x11; 32]), cli.write("two.key", &[0x22; 32])].map(|k| format!("fileb://{k}"));
    let bodies = [pattern(31, 1_500_000), pattern(32, 4_000)];
    let mut ids = Vec::new();
    for (n, (key, body)) in keys.iter().zip(&bodies).enumerate() {
        let file = cli.write(&format!("body{n}"), body);
        let put = ["s3api", "put-object", "--bucket", "vault", "--key", "doc", "--body", &file];
        let sse = ["--sse-customer-algorithm", "AES256", "--sse-customer-key", key];
        let out: serde_json::Value = serde_json::from_str(&cli.ok(&[&put[..], &sse[..]].concat())).unwrap();
        ids.push(out["VersionId"].as_str().expect("put-object prints the version id").to_string());
    }
    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["s3api", "list-object-versions", "--bucket", "vault"])).unwrap();
    let versions = listed["Versions"].as_array().unwrap();
    let listed_ids: Vec<&str> = versions.iter().map(|v| v["VersionId"].as_str().unwrap()).collect();
    assert_eq!(listed_ids, [ids[1].as_str(), ids[0].as_str()], "newest first");
    assert_eq!(versions[0]["IsLatest"], serde_json::Value::Bool(true));

    for (n, id) in ids.iter().enumerate() {
        let out = cli.path(&format!("out{n}"));
        let get = ["s3api", "get-object", "--bucket", "vault", "--key", "doc", "--version-id", id];
        let sse = ["--sse-customer-algorithm", "AES256", "--sse-customer-key", &keys[n]];
        cli.ok(&[&get[..], &sse[..], &[out.as_str()]].concat());
        assert!(std::fs::read(&out).unwrap() == bodies[n], "version {n} reads back with its own key");
        let wrong = ["--sse-customer-algorithm", "AES256", "--sse-customer-key", &keys[1 - n]];
        let err = cli.fails(&[&get[..], &wrong[..], &[out.as_str()]].concat());
        assert!(err.contains("AccessDenied"), "version {n} with the other version's key: {err}");
    }
    let err =
        cli.fails(&["s3api", "get-object", "--bucket", "vault", "--key", "doc", "--version-id", "v1", "/dev/null"]);
    assert!(err.contains("InvalidArgument"), "{err}");
}
