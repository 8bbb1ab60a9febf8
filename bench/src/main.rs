//! `hoard-bench`: throughput, latency and server memory of one hoard node, measured from outside through the S3
//! API with `aws-sdk-s3`. Numbers are printed, never asserted.
//!
//! It measures, in this order (`--only` runs one part):
//! 1. **Server RSS during one large PUT and its GET** (`--rss-size`, 1 GiB), once per `--encryption` mode: VmRSS
//!    of the server from `/proc/<pid>/status` before each request (baseline), then sampled every 20 ms by a
//!    separate task until the request has completed (peak). It runs first, on the fresh server, so the other parts do not raise the
//!    baseline. The PUT body is one stream with an explicit Content-Length, generated as 1 MiB chunks (one chunk
//!    repeated), and the GET body is counted as it arrives, so the client never holds the object.
//! 2. **Large objects** (`--large-size` x `--large-count`, spread over `--concurrency` clients): PUT of new
//!    objects, then GET throughput as total bytes over wall time. By default each object is read once, right
//!    after its round's PUTs: a cold read, since hoard writes shard files around the page cache
//!    (`--get-passes 4` reads each four times, the later passes mostly from the page cache). GET bodies are
//!    streamed and counted, never buffered whole, and every length is checked. Once per `--encryption` mode (plain, SSE-S3,
//!    SSE-C by default) in each of `--rounds` rounds, the modes interleaved; the median over the rounds is
//!    printed with the least and greatest, and each encrypted median with its ratio to the plain one. The
//!    child server is started with a random master key and `--trust-proxy-tls`, so SSE-C runs over the same
//!    plain HTTP as the others and the ratio is the cost of encryption alone, not of TLS.
//! 3. **Small objects** (`--small-size` x `--small-count`, same clients): PUT, then GET ops/s, p50/p99 of
//!    the per-request latency (nearest rank over all requests), the server's and the client's CPU time per
//!    PUT and per GET, and the PUT rate over the first and the last tenth of the objects (whether the rate
//!    holds as the metadata grows).
//!
//! The target is a `hoard serve` child on a fresh data directory, deleted afterwards unless `--keep` (hoard
//! always fsyncs), or a running server given by `--endpoint` (its RSS only with `--pid`). MB/s means 10^6 bytes
//! per second; object sizes are binary (KiB, MiB, GiB). Client and server share the machine, so the client's
//! own CPU (SigV4 signing, CRC32 checksums) is part of what is measured.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context as _;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use clap::Parser;
use clap::ValueEnum;
use hoard::config::ServeArgs;
use hoard_it::client_for;
use hoard_it::hoard_bin;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use hoard_it::ACCESS_KEY;
use hoard_it::SECRET_KEY;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Chunk size of the generated streaming body of the RSS PUT.
const STREAM_CHUNK: u64 = MIB;
/// How often the server's VmRSS is sampled during the RSS PUT.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(20);
/// Where the default data directories go, relative to the working directory.
const DEFAULT_DATA_ROOT: &str = "hoard-bench-data";

#[derive(Parser)]
#[command(name = "hoard-bench", about = "Measure throughput, latency and server RSS of one hoard node over S3")]
struct Args {
    /// Data directory of the `hoard serve` child; must not exist or be empty. Default:
    /// ./hoard-bench-data/<UTC timestamp>.
    #[arg(long, conflicts_with = "endpoint")]
    data_dir: Option<PathBuf>,
    /// Keep the data directory and the server log afterwards.
    #[arg(long, conflicts_with = "endpoint")]
    keep: bool,
    /// An argument for `hoard serve` (repeat for each), e.g. `--extra-serve-arg=--data-shards=3`.
    #[arg(long = "extra-serve-arg", allow_hyphen_values = true, conflicts_with = "endpoint")]
    extra_serve_args: Vec<String>,
    /// Benchmark a running server at this URL instead of starting one. Repeat it for the nodes of a cluster:
    /// the clients are spread over them in turn.
    #[arg(long, requires_all = ["access_key", "secret_key"])]
    endpoint: Vec<String>,
    /// Access key for --endpoint.
    #[arg(long, requires = "endpoint")]
    access_key: Option<String>,
    /// Secret key for --endpoint.
    #[arg(long, requires = "endpoint")]
    secret_key: Option<String>,
    /// Pid of the server at --endpoint, to measure its RSS (skipped without it).
    #[arg(long, requires = "endpoint")]
    pid: Option<u32>,
    /// Size of each large object (bytes, or with a KiB/MiB/GiB suffix).
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    large_size: u64,
    /// Large objects in total, spread over the clients.
    #[arg(long, default_value_t = 16)]
    large_count: usize,
    /// How many times each large object is read per round: 1 (a cold read right after the PUTs) or more
    /// (the later passes mostly from the page cache).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    get_passes: u64,
    /// Small objects in total, spread over the clients.
    #[arg(long, default_value_t = 2000)]
    small_count: usize,
    /// Size of each small object.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    small_size: u64,
    /// Also print the small-object PUT rate over each tenth of the objects, in the order they finished.
    #[arg(long)]
    by_tenth: bool,
    /// Concurrent clients, each with its own connection pool.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Size of the PUT during which the server's RSS is sampled.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    rss_size: u64,
    /// Run only one part.
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Rounds of the large-object runs; each round runs every mode once, and the median is printed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    rounds: u64,
    /// Encryption modes of the large-object and RSS runs, comma-separated (the first is the baseline of the
    /// ratios).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain,sse-s3,sse-c")]
    encryption: Vec<Mode>,
}

/// How the benchmark's objects are stored.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Plain,
    SseS3,
    SseC,
}

/// The customer key of the SSE-C runs: a fixed test key (base64, and the base64 of its MD5).
const CUSTOMER_KEY: &str = "aG9hcmQtYmVuY2gtY3VzdG9tZXIta2V5LTMyLWJ5dGU=";
const CUSTOMER_KEY_MD5: &str = "XM5/tynbR4CyYAeXBPCc+g==";

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::SseS3 => "SSE-S3",
            Mode::SseC => "SSE-C",
        }
    }

    /// Every round writes new objects: a PUT measures storing an object, not replacing one.
    fn key(self, round: u64, i: usize) -> String {
        format!("large-{}/{round}/{i:06}", self.label())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Large,
    Small,
    Rss,
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        self.only.is_none_or(|only| only == part)
    }
}

/// The server under test, however it was found.
struct Target {
    /// The clients are spread over these in turn.
    endpoints: Vec<String>,
    access_key: String,
    secret_key: String,
    /// For reading its RSS.
    pid: Option<u32>,
    /// First line of the report.
    describe: String,
    /// Whether the objects must be deleted afterwards (a server we did not start).
    external: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.endpoint.is_empty() || args.pid.is_some() || args.only != Some(Part::Rss),
        "--only rss needs --pid with --endpoint"
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.endpoint.is_empty() {
        return run_own_server(&args, &runtime, cores);
    }
    let endpoint = args.endpoint.join(", ");
    let target = Target {
        endpoints: args.endpoint.clone(),
        access_key: args.access_key.clone().unwrap_or_default(),
        secret_key: args.secret_key.clone().unwrap_or_default(),
        pid: args.pid,
        describe: format!("hoard-bench: running server at {endpoint}, {cores} cores here"),
        external: true,
    };
    runtime.block_on(run(&args, &target))
}

/// Starts `hoard serve` on a fresh data directory, benchmarks it, stops it and cleans up.
fn run_own_server(args: &Args, runtime: &tokio::runtime::Runtime, cores: usize) -> anyhow::Result<()> {
    let bin = hoard_bin();
    anyhow::ensure!(
        bin.is_file(),
        "no hoard binary at {} (build it with `cargo build --release -p hoard`, or set HOARD_BIN)",
        bin.display()
    );
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => Path::new(DEFAULT_DATA_ROOT).join(utc_timestamp()),
    };
    if data_dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        anyhow::bail!("{} is not empty; the benchmark needs a fresh data directory", data_dir.display());
    }
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let log = data_dir.with_extension("log");
    let layout = describe_layout(&data_dir, &args.extra_serve_args);
    // A random master key beside the data directory, for the encrypted runs.
    let key_file = data_dir.with_extension("master.key");
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    std::fs::write(&key_file, hex::encode(key)).with_context(|| format!("writing {}", key_file.display()))?;
    let key_path = key_file.display().to_string();
    let mut extra: Vec<&str> = vec!["--master-key-file", &key_path, "--trust-proxy-tls"];
    extra.extend(args.extra_serve_args.iter().map(String::as_str));

    let result = HoardProcess::start(&data_dir, &extra).and_then(|server| {
        let target = Target {
            endpoints: vec![server.endpoint()],
            access_key: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
            pid: server.child.as_ref().map(|c| c.id()),
            describe: format!("hoard-bench: {layout}, fsync on, {cores} cores"),
            external: false,
        };
        let result = runtime.block_on(run(args, &target));
        drop(server); // SIGKILL, before its directory goes away
        result
    });

    let _ = std::fs::remove_file(&key_file);
    if args.keep {
        eprintln!("hoard-bench: kept {} and {}", data_dir.display(), log.display());
    } else {
        std::fs::remove_dir_all(&data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
        if result.is_ok() {
            let _ = std::fs::remove_file(&log);
        } else {
            eprintln!("hoard-bench: server log kept at {}", log.display());
        }
        if args.data_dir.is_none() {
            let _ = std::fs::remove_dir(DEFAULT_DATA_ROOT); // only if no other run's files are left in it
        }
    }
    result
}

/// The coding and disk layout the child will use, resolved the way `hoard serve` resolves its flags.
fn describe_layout(data_dir: &Path, extra_serve_args: &[String]) -> String {
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }
    let argv = ["serve".as_ref(), "--data-dir".as_ref(), data_dir.as_os_str()]
        .into_iter()
        .chain(extra_serve_args.iter().map(|a| a.as_ref()));
    match Serve::try_parse_from(argv).map_err(anyhow::Error::from).and_then(|s| s.args.resolve()) {
        Ok(o) => format!("{}+{} over {} disk dirs", o.data_shards, o.parity_shards, o.disk_paths().len()),
        Err(_) => "unknown layout".to_string(),
    }
}

/// One benchmark run against `target` in a bucket of its own; on a running server the bucket is removed again.
async fn run(args: &Args, target: &Target) -> anyhow::Result<()> {
    let endpoint = |i: usize| &target.endpoints[i % target.endpoints.len()];
    let clients: Vec<Client> =
        (0..args.concurrency).map(|i| client_for(endpoint(i), &target.access_key, &target.secret_key)).collect();
    let bucket = if target.external { format!("hoard-bench-{}", utc_timestamp()) } else { "hoard-bench".to_string() };
    clients[0].create_bucket().bucket(&bucket).send().await.with_context(|| format!("creating bucket {bucket}"))?;
    let result = measure(args, target, &clients, &bucket).await;
    if target.external {
        eprintln!("hoard-bench: deleting the objects and bucket {bucket} ...");
        let cleanup = delete_bucket(&clients[0], &bucket).await;
        if result.is_ok() {
            cleanup?;
        } else if let Err(e) = cleanup {
            eprintln!("hoard-bench: could not delete bucket {bucket}: {e:#}");
        }
    }
    result
}

/// The measurements; prints the report at the end.
async fn measure(args: &Args, target: &Target, clients: &[Client], bucket: &str) -> anyhow::Result<()> {
    let mut rss_lines = Vec::new();
    if args.runs(Part::Rss) {
        match target.pid {
            Some(pid) => {
                eprintln!("hoard-bench: server RSS during a {} PUT and its GET ...", fmt_size(args.rss_size));
                for &mode in &args.encryption {
                    rss_lines.extend(rss_during(&clients[0], bucket, pid, args.rss_size, mode).await?);
                }
            }
            None => rss_lines.push((
                format!("server RSS during {} PUT and GET:", fmt_size(args.rss_size)),
                "not measured (no --pid)".into(),
            )),
        }
    }

    let mut lines = Vec::new();
    let n = args.concurrency;
    if args.runs(Part::Large) {
        let (size, count) = (args.large_size, args.large_count);
        let body = Bytes::from(pattern(1, usize::try_from(size)?));
        let total = size * count as u64;
        // Rounds interleave the modes, so a drift of the machine (page cache, other load) touches them all.
        let mut rates: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); args.encryption.len()];
        for round in 1..=args.rounds {
            for (&mode, (puts, gets)) in args.encryption.iter().zip(&mut rates) {
                let passes = args.get_passes;
                eprintln!(
                    "hoard-bench: round {round}/{}: {count} x {} PUT, then GET x{passes}, {} ...",
                    args.rounds,
                    fmt_size(size),
                    mode.label()
                );
                let b = body.clone();
                let put =
                    parallel(clients, bucket, count, move |c, bk, i| put(c, bk, mode.key(round, i), b.clone(), mode))
                        .await?;
                let reads = count * usize::try_from(passes)?;
                let get = parallel(clients, bucket, reads, move |c, bk, i| {
                    get(c, bk, mode.key(round, i % count), size, mode)
                })
                .await?;
                puts.push(mbps(total, put.wall));
                gets.push(mbps(total * passes, get.wall));
            }
        }
        let summaries: Vec<(Summary, Summary)> = rates.iter().map(|(p, g)| (Summary::of(p), Summary::of(g))).collect();
        let base = args.encryption.first().copied().zip(summaries.first());
        for (&mode, (put, get)) in args.encryption.iter().zip(&summaries) {
            let ratio = |rate: f64, of: fn(&(Summary, Summary)) -> f64| match base {
                Some((base_mode, b)) if base_mode != mode => {
                    format!("   {:.0}% of {}", 100.0 * rate / of(b), base_mode.label())
                }
                _ => String::new(),
            };
            let label = |op: &str| format!("{op} {} x{count}, {n} clients, {}:", fmt_size(size), mode.label());
            let reads = match args.get_passes {
                1 => "GET (cold)".to_string(),
                p => format!("GET x{p}"),
            };
            lines.push((label("PUT"), format!("{put}{}", ratio(put.median, |b| b.0.median))));
            lines.push((label(&reads), format!("{get}{}", ratio(get.median, |b| b.1.median))));
        }
    }
    if args.runs(Part::Small) {
        let (count, size) = (args.small_count, args.small_size);
        eprintln!("hoard-bench: {count} x {} PUT, then GET ...", fmt_size(size));
        let body = Bytes::from(pattern(2, usize::try_from(size)?));
        let cpu_before = CpuTimes::now(target.pid)?;
        let put =
            parallel(clients, bucket, count, move |c, b, i| put(c, b, small_key(i), body.clone(), Mode::Plain)).await?;
        let after_put = CpuTimes::now(target.pid)?;
        let cpu = after_put.since(&cpu_before, count);
        let get = parallel(clients, bucket, count, move |c, b, i| get(c, b, small_key(i), size, Mode::Plain)).await?;
        let get_cpu = CpuTimes::now(target.pid)?.since(&after_put, count);
        let tenths = put.tenths();
        lines
            .push((format!("PUT {} x{count}, {n} clients:", fmt_size(size)), format!("{}{tenths}", put.ops_summary())));
        lines.push(("PUT CPU per object:".to_string(), cpu));
        if args.by_tenth {
            let rates: Vec<String> = put.tenth_rates().iter().map(|r| format!("{r:.0}")).collect();
            lines.push(("PUT ops/s by tenth:".to_string(), rates.join(" ")));
        }
        lines.push((format!("GET {} x{count}, {n} clients:", fmt_size(size)), get.ops_summary()));
        lines.push(("GET CPU per object:".to_string(), get_cpu));
    }
    lines.extend(rss_lines);

    println!("{}", target.describe);
    let width = lines.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in &lines {
        println!("{label:<width$}  {value}");
    }

    Ok(())
}

fn small_key(i: usize) -> String {
    format!("small/{i:06}")
}

/// Median, least and greatest of one figure over the rounds.
#[derive(Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn of(rates: &[f64]) -> Summary {
        let mut sorted = rates.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |i: usize| sorted.get(i).copied().unwrap_or(0.0);
        let n = sorted.len();
        let median = if n % 2 == 1 { at(n / 2) } else { (at(n / 2 - 1) + at(n / 2)) / 2.0 };
        Summary { median, min: at(0), max: at(n.saturating_sub(1)) }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} MB/s (min {:.1}, max {:.1})", self.median, self.min, self.max)
    }
}

/// Wall time of a batch, the sorted latencies of its requests, and when each finished (sorted, from the start).
struct Timings {
    wall: Duration,
    latencies: Vec<Duration>,
    finished: Vec<Duration>,
}

impl Timings {
    /// Nearest-rank percentile.
    fn percentile(&self, p: usize) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[(n * p).div_ceil(100).clamp(1, n) - 1]
    }

    /// The rate over each tenth of the requests, in the order they finished (none under 20 requests).
    fn tenth_rates(&self) -> Vec<f64> {
        let n = self.finished.len();
        let tenth = n / 10;
        if tenth < 2 {
            return Vec::new();
        }
        // Tenth i ends when its last request finished; the last tenth is the last `tenth` requests, however
        // many the division left over before it.
        let bound = |i: usize| if i == 0 { Duration::ZERO } else { self.finished[i * tenth - 1] };
        let rate = |from: Duration, to: Duration| tenth as f64 / (to - from).as_secs_f64().max(1e-9);
        let mut rates: Vec<f64> = (0..9).map(|i| rate(bound(i), bound(i + 1))).collect();
        rates.push(rate(self.finished[n - tenth - 1], self.finished[n - 1]));
        rates
    }

    /// The rate over the first and over the last tenth of the requests to finish (empty under 20 requests).
    fn tenths(&self) -> String {
        match self.tenth_rates()[..] {
            [first, .., last] => format!("   first tenth {first:.0} ops/s, last tenth {last:.0} ops/s"),
            _ => String::new(),
        }
    }

    fn ops_summary(&self) -> String {
        let ops = self.latencies.len() as f64 / self.wall.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!("{ops:.0} ops/s   p50 {:.1} ms   p99 {:.1} ms", ms(self.percentile(50)), ms(self.percentile(99)))
    }
}

/// Runs `op` for indices `0..count`, one task per client, each taking the next index until none are left.
// A benchmark measures real time.
#[allow(clippy::disallowed_methods)]
async fn parallel<F, Fut>(clients: &[Client], bucket: &str, count: usize, op: F) -> anyhow::Result<Timings>
where
    F: Fn(Client, String, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in clients {
        let (client, next, op, bucket) = (client.clone(), next.clone(), op.clone(), bucket.to_string());
        tasks.spawn(async move {
            let (mut latencies, mut finished) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok((latencies, finished));
                }
                let t = Instant::now();
                op(client.clone(), bucket.clone(), i).await?;
                latencies.push(t.elapsed());
                finished.push(start.elapsed());
            }
        });
    }
    let (mut latencies, mut finished) = (Vec::with_capacity(count), Vec::with_capacity(count));
    while let Some(done) = tasks.join_next().await {
        let (l, f) = done??;
        latencies.extend(l);
        finished.extend(f);
    }
    let wall = start.elapsed();
    latencies.sort_unstable();
    finished.sort_unstable();
    Ok(Timings { wall, latencies, finished })
}

async fn put(client: Client, bucket: String, key: String, body: Bytes, mode: Mode) -> anyhow::Result<()> {
    let req = client.put_object().bucket(bucket).key(&key).body(ByteStream::from(body));
    encrypted(req, mode).send().await.with_context(|| format!("PUT {key}"))?;
    Ok(())
}

/// A PUT asking for `mode`'s encryption.
fn encrypted(req: PutObjectFluentBuilder, mode: Mode) -> PutObjectFluentBuilder {
    match mode {
        Mode::Plain => req,
        Mode::SseS3 => req.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256),
        Mode::SseC => {
            req.sse_customer_algorithm("AES256").sse_customer_key(CUSTOMER_KEY).sse_customer_key_md5(CUSTOMER_KEY_MD5)
        }
    }
}

/// GETs `key`, counting the streamed body without keeping it, and checks its length.
async fn get(client: Client, bucket: String, key: String, expected: u64, mode: Mode) -> anyhow::Result<()> {
    let req = client.get_object().bucket(bucket).key(&key);
    let req = match mode {
        Mode::Plain | Mode::SseS3 => req,
        Mode::SseC => {
            req.sse_customer_algorithm("AES256").sse_customer_key(CUSTOMER_KEY).sse_customer_key_md5(CUSTOMER_KEY_MD5)
        }
    };
    let out = req.send().await.with_context(|| format!("GET {key}"))?;
    let mut body = out.body;
    let mut len = 0u64;
    while let Some(chunk) = body.next().await {
        len += chunk.with_context(|| format!("reading the body of {key}"))?.len() as u64;
    }
    anyhow::ensure!(len == expected, "GET {key}: {len} bytes, expected {expected}");
    Ok(())
}

/// One streamed PUT of `size` generated bytes stored as `mode` asks, then one GET of it, while a separate task
/// samples the server's VmRSS during each.
async fn rss_during(
    client: &Client,
    bucket: &str,
    pid: u32,
    size: u64,
    mode: Mode,
) -> anyhow::Result<Vec<(String, String)>> {
    let key = format!("rss/{}", mode.label());
    let put = client.put_object().bucket(bucket).key(&key).content_length(i64::try_from(size)?);
    let put = encrypted(put.body(generated_body(size)), mode).send();
    let put = rss_line(pid, "PUT", size, mode, put).await?;
    let get = rss_line(pid, "GET", size, mode, get(client.clone(), bucket.to_string(), key, size, mode));
    Ok(vec![put, get.await?])
}

/// The server's VmRSS before `request` (baseline) and at its highest until it completes.
// A benchmark measures real time.
#[allow(clippy::disallowed_methods)]
async fn rss_line<T, E>(
    pid: u32,
    op: &str,
    size: u64,
    mode: Mode,
    request: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<(String, String)>
where
    E: Into<anyhow::Error>,
{
    let baseline = vm_rss_kib(pid)?;
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample_peak_rss(pid, stopped));
    let start = Instant::now();
    let done = request.await;
    let elapsed = start.elapsed();
    let _ = stop.send(());
    let (peak, samples) = sampler.await??;
    done.map_err(Into::into).with_context(|| format!("the RSS {op}"))?;
    let peak = peak.max(baseline);
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok((
        match mode {
            Mode::Plain => format!("server RSS during {} {op}:", fmt_size(size)),
            _ => format!("server RSS during {} {op}, {}:", fmt_size(size), mode.label()),
        },
        format!(
            "baseline {:.0} MiB, peak {:.0} MiB, growth {:.0} MiB   (one streamed {op}, {samples} samples, {:.1} s)",
            mib(baseline),
            mib(peak),
            mib(peak - baseline),
            elapsed.as_secs_f64()
        ),
    ))
}

/// Highest VmRSS (KiB) seen until `stop` fires, and how many samples were taken.
async fn sample_peak_rss(pid: u32, mut stop: oneshot::Receiver<()>) -> anyhow::Result<(u64, usize)> {
    let mut tick = tokio::time::interval(RSS_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut peak, mut samples) = (0, 0);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                peak = peak.max(vm_rss_kib(pid)?);
                samples += 1;
            }
        }
    }
    // One more, at the moment the PUT completed.
    Ok((peak.max(vm_rss_kib(pid)?), samples + 1))
}

/// CPU time (user and system, all threads) used so far by the server, when its pid is known, and by this
/// client process.
struct CpuTimes {
    server: Option<f64>,
    client: f64,
}

impl CpuTimes {
    fn now(server: Option<u32>) -> anyhow::Result<CpuTimes> {
        Ok(CpuTimes {
            server: server.map(|pid| cpu_seconds(&pid.to_string())).transpose()?,
            client: cpu_seconds("self")?,
        })
    }

    /// The CPU time per operation each side used since `before`, over `ops` operations.
    fn since(&self, before: &CpuTimes, ops: usize) -> String {
        let per_op = |now: f64, then: f64| (now - then) * 1e3 / ops.max(1) as f64;
        let server = match (self.server, before.server) {
            (Some(now), Some(then)) => format!("{:.3} ms", per_op(now, then)),
            _ => "not measured (no --pid)".to_string(),
        };
        format!("server {server}, client {:.3} ms", per_op(self.client, before.client))
    }
}

/// utime + stime of a process (`self` or a pid), in seconds, from /proc/<pid>/stat. Linux reports them in
/// USER_HZ ticks, which is 100 on every architecture's user ABI.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).with_context(|| format!("no command name in {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name come state (3), ..., utime (14), stime (15): indices 11 and 12 here.
    let tick = |i: usize| -> anyhow::Result<u64> {
        let field = fields.get(i).with_context(|| format!("{path} has too few fields"))?;
        field.parse().with_context(|| format!("field {} of {path}: {field:?}", i + 3))
    };
    Ok((tick(11)? + tick(12)?) as f64 / 100.0)
}

/// VmRSS of `pid` in KiB, from /proc/<pid>/status.
fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).with_context(|| format!("no VmRSS in {path}"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("VmRSS in {path}: {line:?}"))
}

/// A body of `size` bytes made on the fly from one repeated 1 MiB chunk (and a shorter last one).
fn generated_body(size: u64) -> ByteStream {
    let chunk = Bytes::from(pattern(3, STREAM_CHUNK as usize));
    let tail = chunk.slice(..(size % STREAM_CHUNK) as usize);
    let chunks = (0..size / STREAM_CHUNK).map(move |_| chunk.clone()).chain((!tail.is_empty()).then_some(tail));
    let frames = futures::stream::iter(chunks.map(|c| Ok::<_, Infallible>(Frame::data(c))));
    ByteStream::from_body_1_x(StreamBody::new(frames))
}

/// Deletes every object in `bucket`, then the bucket.
async fn delete_bucket(client: &Client, bucket: &str) -> anyhow::Result<()> {
    let mut pages = client.list_objects_v2().bucket(bucket).into_paginator().send();
    let mut keys = Vec::new();
    while let Some(page) = pages.next().await {
        keys.extend(page?.contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    for key in keys {
        client.delete_object().bucket(bucket).key(&key).send().await.with_context(|| format!("DELETE {key}"))?;
    }
    client.delete_bucket().bucket(bucket).send().await.with_context(|| format!("deleting bucket {bucket}"))?;
    Ok(())
}

/// `64MiB`, `4 KiB`, `1g`, `1000` (bytes).
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("size too large: {s:?}"))
}

fn fmt_size(bytes: u64) -> String {
    match bytes {
        b if b >= GIB && b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

fn mbps(bytes: u64, wall: Duration) -> f64 {
    bytes as f64 / 1e6 / wall.as_secs_f64()
}

/// `20250102-030405`, in UTC: names the default data directory and the bucket on a running server.
fn utc_timestamp() -> String {
    #[expect(clippy::disallowed_methods, reason = "a benchmark binary, outside the Env seam; only names a directory")]
    let now = time::OffsetDateTime::from(std::time::SystemTime::now());
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
