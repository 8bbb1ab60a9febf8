//! The `hoard` binary.

use clap::Parser;
use clap::Subcommand;
use hoard::config::same_filesystem;
use hoard::config::ServeArgs;
use hoard::node::Node;

/// mimalloc serves the many small, short-lived allocations of each request (headers, signatures, the metadata
/// round) in about a tenth fewer instructions than glibc's allocator, and with per-thread heaps that need no
/// lock (the measurements are in bench/RESULTS.md). Large buffers are hoard's own pools either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hoard",
    version,
    about = "An S3-compatible object store that keeps data durable and encrypted at rest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a one-node hoard: an S3 endpoint over local disks.
    Serve(Box<ServeArgs>),
    /// Encryption across the cluster: encrypt, status, rotate-key.
    Cluster(hoard::cluster_cli::ClusterArgs),
    /// Access keys besides root and their grants: create, list, info, delete, allow, deny.
    Key(hoard::key_cli::KeyArgs),
    /// Tools for testing a running node.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Print the version, the commit and date it was built from, and how it was built.
    Version,
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Arm, disarm or list fault points of a node started with --fault-injection.
    Fault(hoard::debug::FaultArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            print!("{}", hoard::version_text());
            Ok(())
        }
        Command::Debug(DebugCommand::Fault(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let out = runtime.block_on(hoard::debug::run(args))?;
            print!("{out}");
            Ok(())
        }
        Command::Key(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let out = runtime.block_on(hoard::key_cli::run(args))?;
            print!("{out}");
            Ok(())
        }
        Command::Cluster(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let out = runtime.block_on(hoard::cluster_cli::run(args))?;
            print!("{out}");
            Ok(())
        }
        Command::Serve(args) => {
            let opts = args.resolve()?;
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = opts.runtime_threads {
                runtime.worker_threads(threads);
            }
            let runtime = runtime.enable_all().build()?;
            runtime.block_on(async {
                let telemetry = hoard::telemetry::init(opts.otlp_endpoint.as_deref(), &opts.listen.to_string())?;
                let served = serve(opts).await;
                telemetry.shutdown().await;
                if served.is_ok() {
                    tracing::info!("hoard stopped");
                }
                served
            })
        }
    }
}

async fn serve(opts: hoard::NodeOptions) -> anyhow::Result<()> {
    let paths = opts.disk_paths();
    let mut node = Node::start(opts.clone()).await?;
    if same_filesystem(&paths) {
        tracing::warn!(
            disks = paths.len(),
            "all disk directories are on one filesystem: they will not fail independently; give each --disk its own drive for real durability"
        );
    }
    tracing::info!(
        endpoint = %node.endpoint(),
        http_endpoint = ?node.http_addr.map(|a| format!("http://{a}")),
        data_dir = %opts.data_dir.display(),
        coding = %format!("{}+{}", opts.data_shards, opts.parity_shards),
        runtime_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        encryption = if opts.master_key_file.is_some() { "available (SSE-S3, SSE-C)" } else { "off: no master key, objects are stored unencrypted" },
        "hoard is serving"
    );
    if node.generated_credential {
        let kept = if opts.master_key_file.is_some() { "sealed under the master key" } else { "in clear" };
        println!("hoard: generated root credentials (kept in the metadata, {kept}; shown only now):");
        println!("  AWS_ACCESS_KEY_ID={}", node.credential.access_key);
        println!("  AWS_SECRET_ACCESS_KEY={}", node.credential.secret_key);
    }
    let mut stop = Signals::new()?;
    tokio::select! {
        signal = stop.next() => {
            tracing::info!(signal, "stop requested; a second signal stops at once");
            tokio::spawn(async move {
                let signal = stop.next().await;
                tracing::warn!(signal, "second signal: exiting now, without waiting for requests in flight");
                std::process::exit(1);
            });
            node.shutdown(opts.shutdown_timeout).await;
        }
        _ = node.stopped() => {
            anyhow::bail!("the node's supervisor gave up; see the errors above");
        }
    }
    Ok(())
}

/// SIGTERM (systemd, Docker, Kubernetes) and SIGINT (Ctrl-C).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::signal;
        use tokio::signal::unix::SignalKind;
        Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
