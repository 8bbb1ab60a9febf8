//! `hoard key create | list | info | delete | allow | deny`: access keys besides root and what each may do in
//! which bucket, through the node's admin API (signed with the root credentials, see `admin_client`).

use anyhow::Context as _;
use clap::Args;
use clap::Subcommand;
use hoard_protocol::Grant;
use hoard_s3::keys::KeyInfo;
use hoard_s3::keys::NewKey;

use crate::admin_client::encode;
use crate::admin_client::ConnectArgs;

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Make a new access key; its secret is printed once (HTTPS, or from the node's own machine).
    Create {
        /// What the key is for (shown by list and info).
        name: String,
        /// Let the key create buckets (it owns those it creates).
        #[arg(long)]
        create_buckets: bool,
    },
    /// Every access key besides root.
    List,
    /// One key: its name, whether it may create buckets, and its grants.
    Info { key: String },
    /// Delete a key: its next request is refused, and its grants go with it.
    Delete { key: String },
    /// Let a key read (list, GET, HEAD), write (PUT, copy, multipart, DELETE) or own (settings, ACLs, policy,
    /// deletion) a bucket; with --create-buckets (and no bucket), let it create buckets.
    Allow(GrantArgs),
    /// Take permissions away (all three when none is named).
    Deny(GrantArgs),
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[arg(long)]
    read: bool,
    #[arg(long)]
    write: bool,
    #[arg(long)]
    owner: bool,
    /// Whether the key may create buckets (no bucket named then).
    #[arg(long, conflicts_with_all = ["read", "write", "owner", "bucket"])]
    create_buckets: bool,
    /// The access key id.
    key: String,
    bucket: Option<String>,
}

pub async fn run(args: KeyArgs) -> anyhow::Result<String> {
    let connect = &args.connect;
    match args.action {
        KeyAction::Create { name, create_buckets } => {
            let query = format!("hoard-keys=&action=create&name={}&create-buckets={create_buckets}", encode(&name));
            let new: NewKey = parse(&connect.call("POST", &query).await?)?;
            let kept =
                if new.sealed { "sealed under the master key" } else { "in clear: the node holds no master key" };
            Ok(format!(
                "access key {name:?} created (its secret is shown only now; metadata keeps it {kept}):\n  \
                 AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}\nit may do nothing yet: hoard key allow --read \
                 --write {} <bucket>{}\n",
                new.access_key,
                new.secret_key,
                new.access_key,
                if create_buckets { " (it may create buckets, and owns those it creates)" } else { "" },
                name = new.name,
            ))
        }
        KeyAction::List => {
            let keys: Vec<KeyInfo> = parse(&connect.call("GET", "hoard-keys=&action=list").await?)?;
            if keys.is_empty() {
                return Ok("no access keys besides root (hoard key create NAME)\n".into());
            }
            let mut out = format!("{:<22} {:<14} {}\n", "KEY", "CREATE-BUCKETS", "NAME");
            for k in keys {
                let creates = if k.may_create_buckets { "yes" } else { "no" };
                out.push_str(&format!("{:<22} {:<14} {}\n", k.access_key, creates, k.name));
            }
            Ok(out)
        }
        KeyAction::Info { key } => describe(&parse(&connect.call("GET", &key_query("info", &key)).await?)?),
        KeyAction::Delete { key } => {
            connect.call("POST", &key_query("delete", &key)).await?;
            Ok(format!("access key {key} deleted\n"))
        }
        KeyAction::Allow(g) => grant(connect, "allow", g).await,
        KeyAction::Deny(g) => grant(connect, "deny", g).await,
    }
}

async fn grant(connect: &ConnectArgs, action: &str, g: GrantArgs) -> anyhow::Result<String> {
    if g.create_buckets {
        let query = format!("{}&allowed={}", key_query("create-buckets", &g.key), action == "allow");
        return describe(&parse(&connect.call("POST", &query).await?)?);
    }
    let bucket = g.bucket.context("name the bucket (or use --create-buckets)")?;
    let (read, write, owner) = match (g.read, g.write, g.owner) {
        // Deny with nothing named takes everything; allow needs to be told what.
        (false, false, false) if action == "deny" => (true, true, true),
        (false, false, false) => anyhow::bail!("name at least one of --read, --write, --owner"),
        flags => flags,
    };
    let mut query = format!("{}&bucket={}", key_query(action, &g.key), encode(&bucket));
    for (flag, on) in [("read", read), ("write", write), ("owner", owner)] {
        if on {
            query.push_str(&format!("&{flag}=true"));
        }
    }
    describe(&parse(&connect.call("POST", &query).await?)?)
}

fn key_query(action: &str, key: &str) -> String {
    format!("hoard-keys=&action={action}&key={}", encode(key))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).with_context(|| format!("unexpected answer: {text}"))
}

fn describe(k: &KeyInfo) -> anyhow::Result<String> {
    let mut out = format!(
        "key {}\n  name: {}\n  may create buckets: {}\n  secret kept: {}\n",
        k.access_key,
        k.name,
        if k.may_create_buckets { "yes" } else { "no" },
        if k.sealed { "sealed under the master key" } else { "in clear" },
    );
    if k.buckets.is_empty() {
        out.push_str("  buckets: none\n");
    }
    for (bucket, g) in &k.buckets {
        out.push_str(&format!("  {bucket}: {}\n", flags(g)));
    }
    Ok(out)
}

fn flags(g: &Grant) -> String {
    let names: Vec<&str> = [("read", g.read), ("write", g.write), ("owner", g.owner)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    names.join(", ")
}
