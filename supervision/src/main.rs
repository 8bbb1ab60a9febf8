//! The `hoard` binary.

use clap::Parser;
use clap::Subcommand;
use hoard::config::same_filesystem;
use hoard::config::ServeArgs;
use hoard::node::Node;

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
    Serve(ServeArgs),
    /// Encryption across the cluster: encrypt, status, rotate-key.
    Cluster(hoard::cluster_cli::ClusterArgs),
    /// Tools for testing a running node.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Print the version.
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
            println!("hoard {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Debug(DebugCommand::Fault(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let out = runtime.block_on(hoard::debug::run(args))?;
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
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(async {
                let telemetry = hoard::telemetry::init(opts.otlp_endpoint.as_deref(), &opts.listen.to_string())?;
                let served = serve(opts).await;
                telemetry.shutdown().await;
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
        encryption = if opts.master_key_file.is_some() { "available (SSE-S3, SSE-C)" } else { "off: no master key, objects are stored unencrypted" },
        "hoard is serving"
    );
    if node.generated_credential {
        let kept = if opts.master_key_file.is_some() { "sealed under the master key" } else { "in clear" };
        println!("hoard: generated root credentials (kept in the metadata, {kept}; shown only now):");
        println!("  AWS_ACCESS_KEY_ID={}", node.credential.access_key);
        println!("  AWS_SECRET_ACCESS_KEY={}", node.credential.secret_key);
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("stopping");
            node.stop().await;
        }
        _ = node.stopped() => {
            anyhow::bail!("the node's supervisor gave up; see the errors above");
        }
    }
    Ok(())
}
