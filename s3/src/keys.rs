//! The admin API for access keys besides root (`hoard key ...`): `?hoard-keys&action=create|list|info|delete|
//! allow|deny|create-buckets`, signed by root (see [`crate::admin`]), answered in JSON.
//!
//! Invariants:
//! - A key's secret is answered once, at `create`, and only over TLS or to a client on the node's own
//!   machine (loopback): it never crosses a network in clear. Metadata keeps it sealed under the master key
//!   where the node has one ([`crate::auth::seal`]).
//! - `info` and `list` never answer a secret.

use std::collections::BTreeMap;

use hoard_actors::error::ActorError;
use hoard_actors::NodeContext;
use hoard_protocol::AccessKeyRecord;
use hoard_protocol::Grant;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::StoredCredential;
use s3s::s3_error;
use s3s::Body;
use s3s::S3Response;
use s3s::S3Result;
use serde::Deserialize;
use serde::Serialize;

use crate::error::OrS3;

/// The query parameter that marks a key admin request.
pub const KEYS_PARAM: &str = "hoard-keys";

pub use hoard_protocol::MAX_ACCESS_KEYS;

/// What `create` answers: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewKey {
    pub access_key: String,
    pub secret_key: String,
    pub name: String,
    /// Whether metadata keeps the secret sealed under the master key.
    pub sealed: bool,
}

/// A key as `info` and `list` answer it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key: String,
    pub name: String,
    pub created_ms: i64,
    pub may_create_buckets: bool,
    pub sealed: bool,
    /// The buckets it holds a grant in (`info` only; empty in `list`).
    pub buckets: BTreeMap<String, Grant>,
}

fn info_of(record: &AccessKeyRecord, buckets: BTreeMap<String, Grant>) -> KeyInfo {
    KeyInfo {
        access_key: record.credential.access_key().to_string(),
        name: record.name.clone(),
        created_ms: record.created_ms,
        may_create_buckets: record.may_create_buckets,
        sealed: matches!(record.credential, StoredCredential::Sealed { .. }),
        buckets,
    }
}

fn json<T: Serialize>(value: &T) -> S3Result<S3Response<Body>> {
    let text = serde_json::to_string_pretty(value).map_err(|e| s3_error!(InternalError, "{e}"))?;
    Ok(S3Response::new(Body::from(text + "\n")))
}

fn refused(response: MetaResponse) -> s3s::S3Error {
    match response {
        MetaResponse::NoSuchAccessKey => s3_error!(InvalidArgument, "There is no access key of that id"),
        MetaResponse::NoSuchBucket => s3_error!(NoSuchBucket, "The specified bucket does not exist"),
        MetaResponse::AccessKeyExists => s3_error!(InvalidArgument, "An access key of that id exists already"),
        other => crate::error::to_s3(ActorError::Refused(other)),
    }
}

async fn write(ctx: &NodeContext, command: MetaCommand) -> S3Result<()> {
    match ctx.meta.write(command).await.or_s3()? {
        MetaResponse::Ok => Ok(()),
        other => Err(refused(other)),
    }
}

/// One key admin call. `get` answers the request's query parameters; `private_channel`: the request came over
/// TLS or from the node's own machine.
pub async fn call<'q>(
    ctx: &NodeContext,
    method: &http::Method,
    private_channel: bool,
    get: impl Fn(&str) -> Option<&'q str>,
) -> S3Result<S3Response<Body>> {
    let key_param = || {
        let key = get("key").ok_or_else(|| s3_error!(InvalidArgument, "key (an access key id) is required"))?;
        hoard_protocol::names::check_access_key(key).map_err(crate::error::name_error)?;
        Ok::<_, s3s::S3Error>(key)
    };
    let flag = |name: &str| get(name).is_some_and(|v| v.is_empty() || v == "true");
    match (method.clone(), get("action").unwrap_or("list")) {
        (http::Method::POST, "create") => {
            if !private_channel {
                return Err(s3_error!(
                    InvalidRequest,
                    "create answers with a secret: send it over HTTPS, or from the node's own machine"
                ));
            }
            let name = get("name").unwrap_or("");
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err(s3_error!(InvalidArgument, "name must be 1 to 128 printable characters"));
            }
            let count = ctx.meta.read(|r| r.access_keys().map(|k| k.len())).await.or_s3()?;
            if count >= MAX_ACCESS_KEYS {
                return Err(s3_error!(InvalidRequest, "a cluster keeps at most {MAX_ACCESS_KEYS} access keys"));
            }
            let mut fresh = crate::auth::generate(ctx);
            // Keys made here start with HK, so an operator tells them from root's at a glance.
            fresh.access_key.replace_range(..2, "HK");
            let credential = crate::auth::seal(ctx, &fresh).await.or_s3()?;
            let sealed = matches!(credential, StoredCredential::Sealed { .. });
            let record = AccessKeyRecord {
                name: name.to_string(),
                credential,
                created_ms: ctx.env.now_ms(),
                may_create_buckets: flag("create-buckets"),
            };
            write(ctx, MetaCommand::PutAccessKey(record)).await?;
            tracing::info!(access_key = %fresh.access_key, name, sealed, "an access key was created");
            json(&NewKey {
                access_key: fresh.access_key.clone(),
                secret_key: fresh.secret_key.clone(),
                name: name.into(),
                sealed,
            })
        }
        (http::Method::GET, "list") => {
            let keys = ctx.meta.read(|r| r.access_keys()).await.or_s3()?;
            json(&keys.iter().map(|k| info_of(k, BTreeMap::new())).collect::<Vec<_>>())
        }
        (http::Method::GET, "info") => info(ctx, key_param()?).await,
        (http::Method::POST, "delete") => {
            let key = key_param()?;
            write(ctx, MetaCommand::DeleteAccessKey { access_key: key.to_string() }).await?;
            tracing::info!(access_key = %key, "an access key was deleted");
            json(&serde_json::json!({ "deleted": key }))
        }
        (http::Method::POST, "create-buckets") => {
            let key = key_param()?;
            let allowed = get("allowed").map(|v| v == "true").unwrap_or(true);
            write(ctx, MetaCommand::SetKeyCreatesBuckets { access_key: key.to_string(), allowed }).await?;
            info(ctx, key).await
        }
        (http::Method::POST, action @ ("allow" | "deny")) => {
            let key = key_param()?.to_string();
            let bucket = get("bucket").ok_or_else(|| s3_error!(InvalidArgument, "bucket is required"))?.to_string();
            hoard_protocol::names::check_bucket(&bucket).map_err(crate::error::name_error)?;
            let asked = Grant { read: flag("read"), write: flag("write"), owner: flag("owner") };
            if asked.is_none() {
                return Err(s3_error!(InvalidArgument, "name at least one of read, write, owner"));
            }
            let (k, b) = (key.clone(), bucket.clone());
            let now = ctx.meta.read(move |r| r.grant(&b, &k)).await.or_s3()?;
            let grant = if action == "allow" {
                Grant { read: now.read || asked.read, write: now.write || asked.write, owner: now.owner || asked.owner }
            } else {
                Grant {
                    read: now.read && !asked.read,
                    write: now.write && !asked.write,
                    owner: now.owner && !asked.owner,
                }
            };
            write(ctx, MetaCommand::SetGrant { access_key: key.clone(), bucket, grant }).await?;
            info(ctx, &key).await
        }
        _ => Err(s3_error!(
            InvalidRequest,
            "use GET action=list|info, or POST action=create|delete|allow|deny|create-buckets"
        )),
    }
}

async fn info(ctx: &NodeContext, key: &str) -> S3Result<S3Response<Body>> {
    let key = key.to_string();
    let (record, buckets) = ctx.meta.read(move |r| Ok((r.access_key(&key)?, r.grants_of(&key)?))).await.or_s3()?;
    let record = record.ok_or_else(|| refused(MetaResponse::NoSuchAccessKey))?;
    json(&info_of(&record, buckets))
}
