//! Shared helpers of hoard's whole-system tests: S3 clients pointed at an in-process node, and a real
//! `hoard` process that can be killed with SIGKILL and restarted.

pub mod mem_net;
pub mod otlp;

use std::net::SocketAddr;
use std::net::TcpListener;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::config::BehaviorVersion;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::error::SdkError;
pub use hoard::testing::TestCluster;
pub use hoard::testing::TestNode;

pub const ACCESS_KEY: &str = "hoardtest";
pub const SECRET_KEY: &str = "hoardtestsecret";

/// The configuration of every test client: `endpoint`, path-style, us-east-1.
fn config_for(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
    let creds = Credentials::new(access_key, secret_key, None, None, "hoard-it");
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .force_path_style(true)
}

/// An `aws-sdk-s3` client for `endpoint` (path-style, us-east-1).
pub fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(config_for(endpoint, access_key, secret_key).build())
}

/// A client for `endpoint` that signs nothing: the anonymous caller of S3's access rules.
pub fn anonymous_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .allow_no_auth()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    aws_sdk_s3::Client::from_conf(config.build())
}

/// A client for an in-process test node (plain HTTP; see `tls_client` for a node serving HTTPS).
pub fn client(node: &TestNode) -> aws_sdk_s3::Client {
    client_for(&node.endpoint(), node.access_key(), node.secret_key())
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files into its own
/// temporary directory (removed on drop).
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate's PEM text: the one root a client must trust.
    pub pem: String,
}

impl TestCert {
    pub fn new() -> TestCert {
        let dir = tempfile::Builder::new().prefix("hoard-cert-").tempdir().expect("a temporary directory");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("a self-signed certificate");
        let pem = made.cert.pem();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pem).expect("writing cert.pem");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("writing key.pem");
        TestCert { dir, cert, key, pem }
    }
}

impl TestCert {
    /// A self-signed certificate for `localhost` and each of `hosts` (IP addresses or names).
    pub fn for_hosts(hosts: &[&str]) -> TestCert {
        let dir = tempfile::Builder::new().prefix("hoard-cert-").tempdir().expect("a temporary directory");
        let names = std::iter::once("localhost").chain(hosts.iter().copied()).map(str::to_string).collect::<Vec<_>>();
        let made = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
        let pem = made.cert.pem();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &pem).expect("writing cert.pem");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("writing key.pem");
        TestCert { dir, cert, key, pem }
    }
}

impl Default for TestCert {
    fn default() -> Self {
        TestCert::new()
    }
}

/// An `aws-sdk-s3` client for an HTTPS `endpoint` that trusts only `ca_pem`.
pub fn tls_client_for(endpoint: &str, access_key: &str, secret_key: &str, ca_pem: &str) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(ca_pem.as_bytes().to_vec());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls::TlsContext::builder().with_trust_store(trust).build().expect("a TLS context"))
        .build_https();
    aws_sdk_s3::Client::from_conf(config_for(endpoint, access_key, secret_key).http_client(http).build())
}

/// A client for an in-process node serving HTTPS with `cert`.
pub fn tls_client(node: &TestNode, cert: &TestCert) -> aws_sdk_s3::Client {
    tls_client_for(&node.endpoint(), node.access_key(), node.secret_key(), &cert.pem)
}

/// Deterministic pseudo-random bytes (xorshift), so a test can regenerate what it wrote.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A master key file of 32 raw bytes of `byte`, named `name` in `dir`; its path.
pub fn key_file(dir: &Path, name: &str, byte: u8) -> String {
    let path = dir.join(name);
    std::fs::write(&path, [byte; 32]).expect("writing a key file");
    path.display().to_string()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// The `hoard` binary built with these tests (`target/<profile>/hoard`).
pub fn hoard_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HOARD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("executable path");
    // A binary sits in target/<profile>/, a test in target/<profile>/deps/.
    let beside = exe.parent().map(|d| d.join("hoard"));
    match beside {
        Some(p) if p.is_file() => p,
        _ => exe.parent().and_then(Path::parent).expect("target profile directory").join("hoard"),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A free port other than `taken`: two calls of [`free_port`] in a row may give the same port (the first is
/// released before the second is asked for), and one process cannot listen twice on it.
pub fn free_port_besides(taken: u16) -> u16 {
    loop {
        let port = free_port();
        if port != taken {
            return port;
        }
    }
}

/// A real `hoard serve` process on its own data directory.
pub struct HoardProcess {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub extra_args: Vec<String>,
    /// `RUST_LOG` of the process.
    pub log_filter: String,
    /// Set when the process serves HTTPS on `addr` with this certificate (PEM), plus plain HTTP on
    /// `http_addr` for the readiness probe.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub http_addr: Option<SocketAddr>,
    /// Whether the process gets its root credential from `HOARD_ROOT_*` (otherwise it makes and keeps one).
    pub root_env: bool,
}

impl HoardProcess {
    /// Starts `hoard serve` in `data_dir` on a free port and waits until it is ready.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> anyhow::Result<HoardProcess> {
        let mut p = HoardProcess::new(data_dir, extra_args);
        p.spawn()?;
        Ok(p)
    }

    /// Like `start`, serving HTTPS with `cert` and logging with `log_filter` (`RUST_LOG`).
    pub fn start_tls(
        data_dir: &Path,
        cert: &TestCert,
        log_filter: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<HoardProcess> {
        let mut p = HoardProcess::new_tls(data_dir, cert, extra_args);
        p.log_filter = log_filter.into();
        p.spawn()?;
        Ok(p)
    }

    /// Like `start`, logging with `log_filter` (`RUST_LOG`).
    pub fn start_logging(data_dir: &Path, log_filter: &str, extra_args: &[&str]) -> anyhow::Result<HoardProcess> {
        let mut p = HoardProcess::new(data_dir, extra_args);
        p.log_filter = log_filter.into();
        p.spawn()?;
        Ok(p)
    }

    /// The resident set size of the running process, in bytes (`VmRSS` of `/proc/<pid>/status`).
    /// Starts `hoard serve` with its S3 endpoint on `addr`, HTTPS with `cert` (and plain HTTP beside it on
    /// the same host).
    pub fn start_at(
        data_dir: &Path,
        addr: SocketAddr,
        cert: &TestCert,
        extra_args: &[&str],
    ) -> anyhow::Result<HoardProcess> {
        let mut p = HoardProcess::new_tls(data_dir, cert, extra_args);
        p.addr = addr;
        p.http_addr = Some(SocketAddr::new(addr.ip(), free_port_besides(addr.port())));
        p.spawn()?;
        Ok(p)
    }

    pub fn rss(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    }

    /// What the process has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Like `start_tls`, with no root credential in its environment: the node makes one, keeps it in its
    /// metadata and prints it at its first start ([`HoardProcess::printed_credential`]).
    pub fn start_tls_keeping_credential(
        data_dir: &Path,
        cert: &TestCert,
        extra_args: &[&str],
    ) -> anyhow::Result<HoardProcess> {
        let mut p = HoardProcess::new_tls(data_dir, cert, extra_args);
        p.root_env = false;
        p.spawn()?;
        Ok(p)
    }

    /// The last root credential the process printed (at a first start), as (access key, secret key).
    pub fn printed_credential(&self) -> Option<(String, String)> {
        let log = self.log_text();
        let value = |name: &str| log.lines().rev().find_map(|l| l.trim().strip_prefix(name)).map(str::to_string);
        Some((value("AWS_ACCESS_KEY_ID=")?, value("AWS_SECRET_ACCESS_KEY=")?))
    }

    /// A client of this process signing with the given credential.
    pub fn client_as(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        match &self.tls {
            None => client_for(&self.endpoint(), access_key, secret_key),
            Some((cert, _)) => {
                let pem = std::fs::read_to_string(cert).expect("the certificate file");
                tls_client_for(&self.endpoint(), access_key, secret_key, &pem)
            }
        }
    }

    /// A process not started yet serving HTTPS with `cert`, plus plain HTTP for the readiness probe.
    fn new_tls(data_dir: &Path, cert: &TestCert, extra_args: &[&str]) -> HoardProcess {
        let mut p = HoardProcess::new(data_dir, extra_args);
        p.tls = Some((cert.cert.clone(), cert.key.clone()));
        p.http_addr = Some(SocketAddr::from(([127, 0, 0, 1], free_port_besides(p.addr.port()))));
        p
    }

    /// A process not started yet: plain HTTP on a free port, logging at `info`.
    fn new(data_dir: &Path, extra_args: &[&str]) -> HoardProcess {
        HoardProcess {
            child: None,
            data_dir: data_dir.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            log: data_dir.with_extension("log"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            log_filter: "info,openraft=warn".into(),
            tls: None,
            http_addr: None,
            root_env: true,
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(hoard_bin());
        cmd.arg("serve").arg("--data-dir").arg(&self.data_dir).arg("--listen").arg(self.addr.to_string());
        if let (Some((cert, key)), Some(http)) = (&self.tls, self.http_addr) {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key).arg("--http-listen").arg(http.to_string());
        }
        if self.root_env {
            cmd.env("HOARD_ROOT_ACCESS_KEY", ACCESS_KEY).env("HOARD_ROOT_SECRET_KEY", SECRET_KEY);
        } else {
            cmd.env_remove("HOARD_ROOT_ACCESS_KEY").env_remove("HOARD_ROOT_SECRET_KEY");
        }
        let child = cmd
            .args(&self.extra_args)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", hoard_bin().display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// A client of `endpoint()`; for an HTTPS process it trusts the process's certificate.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_as(ACCESS_KEY, SECRET_KEY)
    }

    /// Polls `/health/ready` until it answers 200 (the process exposes no other readiness event).
    // A real process takes real time: the deadline is the wall clock's.
    #[allow(clippy::disallowed_methods)]
    pub fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!(
                        "hoard exited with {status}; log: {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            if health_ok(self.http_addr.unwrap_or(self.addr)) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "hoard did not become ready; log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.spawn()
    }
}

impl Drop for HoardProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn health_ok(addr: SocketAddr) -> bool {
    http_get(addr, "/health/ready").is_some_and(|(status, _)| status == 200)
}

/// An unsigned plain-HTTP GET of `path`: the status and the body, or `None` if the node did not answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The value of one series (`name{labels}` exactly as the node prints it) in Prometheus text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The same client without retries: a retried request would hide the failure under test (and could land on
/// a restarted process).
pub fn no_retry(c: aws_sdk_s3::Client) -> aws_sdk_s3::Client {
    let conf = c.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// Polls `cond` until it holds, failing the test after ten seconds. Only for effects the node signals
/// nowhere else: a supervisor's counters, or a request's metrics, which move on the node's own tasks after
/// the client already has its answer.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the `hoard` binary with `args` (the test root credentials in its environment, for admin commands).
pub fn hoard_cli(args: &[&str]) -> Output {
    Command::new(hoard_bin())
        .args(args)
        .env("HOARD_ROOT_ACCESS_KEY", ACCESS_KEY)
        .env("HOARD_ROOT_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .output()
        .expect("running the hoard binary")
}

/// Runs the `hoard` binary with `args`, signing admin calls with the given key pair.
pub fn hoard_cli_as(access_key: &str, secret_key: &str, args: &[&str]) -> Output {
    Command::new(hoard_bin())
        .args(args)
        .env("HOARD_ROOT_ACCESS_KEY", access_key)
        .env("HOARD_ROOT_SECRET_KEY", secret_key)
        .stdin(Stdio::null())
        .output()
        .expect("running the hoard binary")
}

/// Runs the aws CLI against `endpoint` with the test credentials.
pub fn aws(endpoint: &str, args: &[&str]) -> Output {
    aws_command(endpoint, args).output().expect("the aws CLI is installed (pip install awscli)")
}

/// Runs the aws CLI against an HTTPS `endpoint` whose certificate is `ca` (a PEM file).
pub fn aws_tls(endpoint: &str, ca: &Path, args: &[&str]) -> Output {
    aws_command(endpoint, args)
        .env("AWS_CA_BUNDLE", ca)
        .output()
        .expect("the aws CLI is installed (pip install awscli)")
}

/// Runs the aws CLI against `endpoint`, signing with the given key pair.
pub fn aws_as(endpoint: &str, access_key: &str, secret_key: &str, args: &[&str]) -> Output {
    let mut cmd = aws_command(endpoint, args);
    cmd.env("AWS_ACCESS_KEY_ID", access_key).env("AWS_SECRET_ACCESS_KEY", secret_key);
    cmd.output().expect("the aws CLI is installed (pip install awscli)")
}

fn aws_command(endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("aws");
    cmd.arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null());
    cmd
}

/// Runs the boto3 script `it/py/<script>` against `endpoint` (with `ca`, a PEM file, for HTTPS) with the test
/// credentials. The script asserts what it checks and exits non-zero on the first failure.
pub fn boto3(script: &str, endpoint: &str, ca: Option<&Path>) -> Output {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("py");
    let mut cmd = Command::new("python3");
    cmd.arg(dir.join(script))
        .current_dir(&dir)
        .env("HOARD_ENDPOINT", endpoint)
        .env("HOARD_BIN", hoard_bin())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        cmd.env("AWS_CA_BUNDLE", ca);
    }
    cmd.output().expect("python3 with boto3 is installed (pip install boto3 requests)")
}

/// Every file in `<disk>/shards/<prefix>/`: (file name, path, length).
pub fn files_under(disks: &[PathBuf]) -> Vec<(String, PathBuf, u64)> {
    let mut out = Vec::new();
    for disk in disks {
        let Ok(prefixes) = std::fs::read_dir(disk.join("shards")) else {
            continue;
        };
        for prefix in prefixes.flatten() {
            let Ok(files) = std::fs::read_dir(prefix.path()) else {
                continue;
            };
            for f in files.flatten() {
                // A temp file may be renamed or removed between listing and stat.
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((f.file_name().to_string_lossy().into_owned(), f.path(), len));
            }
        }
    }
    out
}

/// Committed shard files of one segment: shard index → path.
pub type Shards = std::collections::BTreeMap<u8, PathBuf>;

/// Every committed shard file under `disks`, grouped by segment id (temp files are not shard files).
pub fn shard_files(disks: &[PathBuf]) -> std::collections::BTreeMap<String, Shards> {
    let mut out: std::collections::BTreeMap<String, Shards> = std::collections::BTreeMap::new();
    for (name, path, _) in files_under(disks) {
        if name.ends_with(".tmp") {
            continue;
        }
        let (segment, index) = name.split_once('.').expect("shard files are <segment>.<index>");
        let index: u8 = index.parse().expect("a shard index");
        let previous = out.entry(segment.to_string()).or_default().insert(index, path);
        assert!(previous.is_none(), "shard {index} of {segment} is on two disks");
    }
    out
}

/// PUTs `data` as one in-memory body, panicking with the key on failure.
pub async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key}: {e:?}"));
}

/// GETs the whole of `bucket/key`, panicking with the key on failure.
pub async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out =
        c.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"));
    out.body.collect().await.unwrap_or_else(|e| panic!("body of {bucket}/{key}: {e:?}")).into_bytes().to_vec()
}

/// The HTTP status and S3 error code of a request that must fail; panics if it succeeded or got no
/// HTTP response at all.
pub fn failure<T, E>(r: Result<T, SdkError<E>>) -> (u16, String)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let err = match r {
        Ok(_) => panic!("the request succeeded but should have failed"),
        Err(e) => e,
    };
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or_else(|| panic!("no HTTP response: {err:?}"));
    let code = err.code().unwrap_or_default().to_string();
    (status, code)
}

/// For a cluster holding one coded object, 4+2 over three nodes of two disks: the object's six shard files
/// lie two on each node, each index once.
pub fn assert_one_segment_two_shards_per_node(cluster: &TestCluster) {
    let mut indexes = Vec::new();
    for node in cluster.nodes() {
        let files = shard_files(&node.disk_paths());
        assert_eq!(files.len(), 1, "one segment on node {:?}", node.data_dir());
        let shards = files.into_values().next().expect("one segment");
        assert_eq!(shards.len(), 2, "two shards on node {:?}", node.data_dir());
        indexes.extend(shards.into_keys());
    }
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
}

/// One HTTP/1.1 exchange on a fresh connection, sending `head` (the request line and headers, `Connection:
/// close` among them, ended by the blank line) and `payload` exactly as given, the way a browser, curl or a
/// hostile client would: the answer's status and body (dechunked), read to its end within `deadline`.
pub async fn raw_exchange(
    addr: SocketAddr,
    head: &str,
    payload: &[u8],
    deadline: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        s.write_all(payload).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(deadline, exchange).await.context("raw HTTP deadline")??;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").context("a complete response head")?;
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head.split(' ').nth(1).context("a status line")?.parse()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &buf[head_end + 4..];
    // A HEAD answer names the framing of a body it does not carry.
    let body = if chunked && !body.is_empty() { dechunk(body)? } else { body.to_vec() };
    Ok((status, body))
}

/// The payload of an HTTP/1.1 body sent with `Transfer-Encoding: chunked` (chunk extensions and trailers
/// dropped), read off a bare socket.
pub fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").context("a chunk size line")?;
        let size_field = std::str::from_utf8(&b[..eol])?;
        let size = usize::from_str_radix(size_field.split(';').next().unwrap_or("").trim(), 16)?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).context("a whole chunk")?);
        b = b.get(size + 2..).context("a chunk's end")?;
    }
}

/// The headers that sign a request to `host` by SigV4 as S3 clients sign (in the `Authorization` header), for
/// `headers` (signed too, not returned) and `body`. `path_and_query` is signed as it is sent: already
/// percent-encoded, never normalised; the payload's hash is sent in `x-amz-content-sha256`. Dated by the real
/// clock.
pub fn sigv4_headers(
    host: &str,
    credential: (&str, &str),
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: aws_sigv4::http_request::SignableBody<'_>,
) -> anyhow::Result<Vec<(String, String)>> {
    let now_ms = hoard_storage::env::Env::now_ms(&hoard_storage::env::SystemEnv);
    sigv4_headers_at(now_ms, host, credential, method, (path_and_query, headers), body)
}

/// [`sigv4_headers`] dated `now_ms` (a simulation signs by its own clock, which its nodes check against).
pub fn sigv4_headers_at(
    now_ms: i64,
    host: &str,
    (access_key, secret_key): (&str, &str),
    method: &str,
    (path_and_query, headers): (&str, &[(&str, &str)]),
    body: aws_sigv4::http_request::SignableBody<'_>,
) -> anyhow::Result<Vec<(String, String)>> {
    use aws_sigv4::http_request::PayloadChecksumKind;
    use aws_sigv4::http_request::PercentEncodingMode;
    use aws_sigv4::http_request::SignableRequest;
    use aws_sigv4::http_request::SigningSettings;
    use aws_sigv4::http_request::UriPathNormalizationMode;
    let uri = format!("http://{host}{path_and_query}");
    let mut all: Vec<(&str, &str)> = vec![("host", host)];
    all.extend_from_slice(headers);
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = Credentials::new(access_key, secret_key, None, None, "hoard-it").into();
    let now = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms)?);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(settings)
        .build()?
        .into();
    let request = SignableRequest::new(method, uri, all.into_iter(), body)?;
    let (instructions, _) = aws_sigv4::http_request::sign(request, &params)?.into_parts();
    Ok(instructions.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}
