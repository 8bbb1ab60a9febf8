//! `hoard cluster init | join | token | remove-node | encrypt | status | rotate-key | rotate-root-key`: forming
//! a cluster (init and join work on the data dir and the peer port, not the S3 endpoint) and the operator's side
//! of the cluster admin API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use clap::Subcommand;
use hoard_actors::metrics::NodeHealth;
use hoard_s3::cluster::ClusterStatus;
use hoard_s3::cluster::NewRootCredential;

use crate::admin_client::encode;
use crate::admin_client::ConnectArgs;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub action: ClusterAction,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Encrypt every new write with SSE-S3 from now on (enable-only; the node must hold a master key).
    Encrypt,
    /// Encryption posture (master key ids, objects plain/SSE-S3/SSE-C, rotation progress), Raft role, disks
    /// and their errors, repair backlog.
    Status {
        /// Print the node's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Rewrap every SSE-S3 data key under a new master key (metadata only; no object is rewritten).
    RotateKey {
        /// The new key's file, as the node sees it (the key itself is never sent).
        #[arg(long)]
        new_master_key_file: PathBuf,
        /// Return once the rotation has started instead of following it to the end.
        #[arg(long)]
        no_wait: bool,
    },
    /// Replace the root access key and secret with a fresh pair, printed once (HTTPS only). The old pair
    /// stops working at once.
    RotateRootKey,
    /// Make this node the first of a cluster: the cluster CA, this node's certificate, and a join token.
    /// The node must not be running; an existing one-node data dir keeps its objects.
    Init {
        #[command(flatten)]
        node: NodeArgs,
        /// How long the printed join token stays valid (e.g. 1h, 30m, 90s).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        token_ttl: Duration,
    },
    /// Join a cluster: this node's key is made here, a member signs its certificate, and it becomes a
    /// learner, then a voter once caught up. Run it before the node's first start, with an empty data dir.
    Join {
        #[command(flatten)]
        node: NodeArgs,
        /// The peer address of the member that ran `cluster init` (it holds the CA key).
        #[arg(long)]
        peer: String,
        /// The join token (`hoard cluster token`); one use, it expires.
        #[arg(long, env = "HOARD_JOIN_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Make a new one-time join token. With --data-dir (on the node that ran `init`) it is made there and the
    /// running node records it within a second; without, the node at --endpoint makes it (HTTPS only).
    Token {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// How long the token stays valid (e.g. 1h, 30m, 90s).
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    /// Take a node out of the cluster: its shards are moved to the other nodes first (progress shown), then
    /// its certificate is refused from then on.
    RemoveNode {
        /// The node's id (`hoard cluster status` lists them).
        node: u64,
    },
}

/// The node a cluster's files are made for (`init`, `join`).
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[arg(long, env = "HOARD_DATA_DIR", default_value = "hoard-data")]
    pub data_dir: PathBuf,
    /// host:port at which the other nodes reach this one (the peer port, not the S3 port).
    #[arg(long)]
    pub node_addr: String,
    /// Where the peer server binds, when not the node address (behind NAT, in a container).
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
}

/// `90s`, `30m`, `1h`, `2d` or a number of seconds.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => s.split_at(at),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 1h or 2d"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?} is not a duration like 90s, 30m, 1h or 2d")),
    };
    if secs == 0 || secs > 30 * 86_400 {
        return Err("a join token lives from 1 second to 30 days".into());
    }
    Ok(Duration::from_secs(secs))
}

/// How long a token that expires at `expires_ms` still lives, as the operator reads it.
fn expiry(expires_ms: i64) -> String {
    use hoard_storage::env::Env as _;
    let left = (expires_ms - hoard_storage::env::SystemEnv.now_ms()).max(0) / 1000;
    match left {
        s if s >= 7200 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// How often a waiting `rotate-key` asks for progress.
const POLL: Duration = Duration::from_millis(500);

pub async fn run(args: ClusterArgs) -> anyhow::Result<String> {
    let connect = &args.connect;
    let env = hoard_storage::env::SystemEnv;
    match args.action {
        ClusterAction::Init { node: NodeArgs { data_dir, node_addr, peer_listen }, token_ttl } => {
            let made = crate::cluster_files::init(&data_dir, &node_addr, peer_listen, token_ttl, &env)?;
            Ok(format!(
                "cluster {id} created; this node is node 1 at {node_addr}\n\
                 (files in {dir}/cluster; keep ca.key safe: it admits nodes)\n\
                 start it:    hoard serve --data-dir {dir} ...\n\
                 join token (one use, valid for {until}):\n  {token}\n\
                 on each new node, before its first start:\n  \
                 hoard cluster join --data-dir <dir> --node-addr <host:port> --peer {node_addr} --token <token>\n\
                 more tokens: hoard cluster token --data-dir {dir}\n",
                id = made.cluster_id,
                dir = data_dir.display(),
                until = expiry(made.expires_ms),
                token = made.token.text().as_str(),
            ))
        }
        ClusterAction::Join { node: NodeArgs { data_dir, node_addr, peer_listen }, peer, token } => {
            let joined = crate::cluster_files::join(&data_dir, &node_addr, peer_listen, &peer, &token).await?;
            Ok(format!(
                "joined cluster {} as node {} (a learner until it has caught up)\nstart it: hoard serve --data-dir {} ...\n",
                joined.cluster_id,
                joined.node_id,
                data_dir.display()
            ))
        }
        ClusterAction::Token { data_dir: Some(dir), ttl } => {
            let (token, expires_ms) = crate::cluster_files::local_token(&dir, ttl, &env)?;
            Ok(format!("{}\n(one use, valid for {})\n", token.text().as_str(), expiry(expires_ms)))
        }
        ClusterAction::Token { data_dir: None, ttl } => {
            let text = connect.call("POST", &format!("hoard-cluster=&action=token&ttl-secs={}", ttl.as_secs())).await?;
            let made: hoard_s3::cluster::NewJoinToken =
                serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))?;
            Ok(format!(
                "{}\n(one use, valid for {}; join through {})\n",
                made.token,
                expiry(made.expires_ms),
                made.join_through
            ))
        }
        ClusterAction::RemoveNode { node } => remove_node(connect, node).await,
        ClusterAction::Encrypt => {
            let status = parse(&connect.call("POST", "hoard-cluster=&action=encrypt").await?)?;
            Ok(format!(
                "every new write is now encrypted (SSE-S3) under master key {}\n",
                status.active_key_id.as_deref().unwrap_or("?")
            ))
        }
        ClusterAction::Status { json } => {
            let text = connect.call("GET", "hoard-cluster=&action=status").await?;
            if json {
                return Ok(text);
            }
            Ok(describe(&parse(&text)?))
        }
        ClusterAction::RotateKey { new_master_key_file, no_wait } => {
            // The node reads the path itself; an absolute path means the same file there as here.
            let path = match std::fs::canonicalize(&new_master_key_file) {
                Ok(p) => p,
                Err(_) if new_master_key_file.is_absolute() => new_master_key_file.clone(),
                Err(e) => anyhow::bail!("{}: {e}", new_master_key_file.display()),
            };
            let path = path.to_str().context("the key file's path is not UTF-8")?;
            let query = format!("hoard-cluster=&action=rotate-key&key-file={}", encode(path));
            let status = parse(&connect.call("POST", &query).await?)?;
            if no_wait {
                return Ok(describe(&status));
            }
            follow(connect, status).await
        }
        ClusterAction::RotateRootKey => {
            let text = connect.call("POST", "hoard-cluster=&action=rotate-root-key").await?;
            let new: NewRootCredential =
                serde_json::from_str(&text).with_context(|| format!("unexpected answer: {text}"))?;
            let kept =
                if new.sealed { "sealed under the master key" } else { "in clear: the node holds no master key" };
            Ok(format!(
                "new root credentials (shown only now; metadata keeps them {kept}):\n  AWS_ACCESS_KEY_ID={}\n  \
                 AWS_SECRET_ACCESS_KEY={}\n",
                new.access_key, new.secret_key
            ))
        }
    }
}

fn parse(text: &str) -> anyhow::Result<ClusterStatus> {
    serde_json::from_str(text).with_context(|| format!("unexpected answer from the node: {text}"))
}

/// Shows the rotation on a progress bar until it finishes.
async fn follow(connect: &ConnectArgs, mut status: ClusterStatus) -> anyhow::Result<String> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("rewrapping data keys {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    loop {
        let Some(rotation) = &status.rotation else {
            anyhow::bail!("the node recorded no rotation");
        };
        bar.set_length(rotation.total);
        bar.set_position(rotation.done);
        bar.set_message(rotation.error.clone().unwrap_or_default());
        if rotation.finished {
            bar.finish_and_clear();
            return Ok(format!(
                "rotation finished: {} data keys rewrapped; every SSE-S3 object is wrapped under {}.\n\
                 Make {} the node's --master-key-file; the old key file can then be removed.\n",
                rotation.rewrapped, rotation.to_key_id, rotation.key_file
            ));
        }
        tokio::time::sleep(POLL).await;
        status = parse(&connect.call("GET", "hoard-cluster=&action=status").await?)?;
    }
}

/// Drains `node` (a progress bar of the segments moved off it), then removes it.
async fn remove_node(connect: &ConnectArgs, node: u64) -> anyhow::Result<String> {
    let remove = format!("hoard-cluster=&action=remove-node&node={node}");
    let left = |s: &ClusterStatus| s.draining.iter().find(|d| d.node_id == node).map(|d| d.segments_left);
    let mut status = parse(&connect.call("POST", &remove).await?)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("moving shards off node {msg} {bar:40} {pos}/{len} segments")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(node.to_string());
    let mut first = None;
    while let Some(n) = left(&status).filter(|n| *n > 0) {
        let total = *first.get_or_insert(n);
        bar.set_length(total.max(n));
        bar.set_position(total.saturating_sub(n));
        let stalled = status.nodes.iter().find_map(|h| h.rebalance.last_error.clone());
        if let Some(e) = stalled {
            bar.println(format!("rebalance: {e}"));
        }
        tokio::time::sleep(POLL).await;
        status = parse(&connect.call("GET", "hoard-cluster=&action=status").await?)?;
    }
    bar.finish_and_clear();
    if left(&status).is_some() {
        // Drained: this call records the removal.
        parse(&connect.call("POST", &remove).await?)?;
    }
    Ok(format!(
        "node {node} is removed: its shards are on the other nodes, its certificate is refused and it is out of \
         the metadata group\n"
    ))
}

/// The status as an operator reads it.
pub fn describe(s: &ClusterStatus) -> String {
    let none = || "none".to_string();
    let mut out = String::new();
    let posture = if s.encrypt_all {
        "on: every new write is encrypted"
    } else if s.configured_key_id.is_some() {
        "on request (SSE-S3, SSE-C, bucket defaults)"
    } else {
        "off: no master key, new writes are stored unencrypted (SSE-C still possible)"
    };
    out.push_str(&format!("encryption:         {posture}\n"));
    out.push_str(&format!("active master key:  {}\n", s.active_key_id.clone().unwrap_or_else(none)));
    out.push_str(&format!("configured key:     {}\n", s.configured_key_id.clone().unwrap_or_else(none)));
    out.push_str(&format!("keys held:          {}\n", s.held_key_ids.join(", ")));
    let o = &s.objects;
    out.push_str(&format!(
        "objects:            {} plain, {} SSE-S3, {} SSE-C; {} multipart uploads in progress\n",
        o.plain, o.sse_s3, o.sse_c, o.uploads
    ));
    if o.noncurrent_versions > 0 || o.delete_markers > 0 {
        out.push_str(&format!(
            "versions:           {} of those objects are noncurrent versions; {} delete markers\n",
            o.noncurrent_versions, o.delete_markers
        ));
    }
    if !o.sse_s3_by_key.is_empty() {
        let by_key: Vec<String> = o.sse_s3_by_key.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        out.push_str(&format!("SSE-S3 by key:      {}\n", by_key.join(", ")));
    }
    match &s.rotation {
        None => out.push_str("rotation:           none\n"),
        Some(r) => {
            let state = if r.finished { "finished" } else { "running" };
            out.push_str(&format!(
                "rotation:           {state}, to {} ({}): {}/{} under the new key, {} rewrapped\n",
                r.to_key_id, r.key_file, r.done, r.total, r.rewrapped
            ));
            if let Some(e) = &r.error {
                out.push_str(&format!("rotation error:     {e}\n"));
            }
        }
    }
    for m in &s.members {
        let role = if m.voter { "voter" } else { "learner" };
        let up = if m.up { "up" } else { "DOWN: did not answer" };
        out.push_str(&format!("member {}:           {} ({role}, {up})\n", m.node_id, m.addr));
    }
    for d in &s.draining {
        out.push_str(&format!(
            "draining node {}:    {} segments still have a shard on it (hoard cluster remove-node {} goes on)\n",
            d.node_id, d.segments_left, d.node_id
        ));
    }
    for n in &s.nodes {
        describe_node(&mut out, n);
    }
    out
}

/// One node's lines: its Raft role, each disk with its errors, and repair.
fn describe_node(out: &mut String, n: &NodeHealth) {
    match &n.raft {
        Some(r) => {
            let role = if r.is_leader { "leader".to_string() } else { "follower".to_string() };
            let leader = r.leader.map(|l| format!("leader {l}")).unwrap_or_else(|| "no leader".to_string());
            out.push_str(&format!("node {}:             {role}, term {}, {leader}\n", r.node_id, r.term));
        }
        None => out.push_str("node:               metadata not answering\n"),
    }
    for down in &n.down {
        out.push_str(&format!("  down:             {down} (restarting with back-off)\n"));
    }
    for d in &n.disks {
        let state = if d.degraded { "DEGRADED (too slow; reads and new data avoid it), " } else { "" };
        out.push_str(&format!(
            "  disk {}:           {}: {state}{} read errors, {} write errors, {} slow I/Os\n",
            d.index, d.path, d.read_errors, d.write_errors, d.slow_ios
        ));
    }
    let r = &n.repair;
    out.push_str(&format!(
        "  repair:           {} damaged segments queued, {} waiting now; since start {} reports, {} shard files \
         rebuilt, {} failed\n",
        r.queued, r.pending, r.reports, r.rebuilt, r.failures
    ));
    let b = &n.rebalance;
    if b.running || b.passes > 0 || b.moved_shards > 0 {
        let state = match b.running {
            true => format!("running, {}/{} records walked", b.walked, b.records),
            false => format!("idle after {} passes", b.passes),
        };
        out.push_str(&format!(
            "  rebalance:        {state}; {} shards moved ({} MiB), {} failed moves, {} shards on leaving nodes\n",
            b.moved_shards,
            b.moved_bytes >> 20,
            b.failed_moves,
            b.leaving_shards
        ));
        if let Some(e) = &b.last_error {
            out.push_str(&format!("  rebalance error:  {e}\n"));
        }
    }
}
