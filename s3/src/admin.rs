//! The admin API on the S3 port: fault injection (`POST /?hoard-faults&action=arm&point=P&fault=F[&times=N]`,
//! `POST /?hoard-faults&action=disarm&point=P`, `GET /?hoard-faults` to list) and the cluster commands of
//! [`crate::cluster`] (`?hoard-cluster&action=...`) and the access keys of [`crate::keys`] (`?hoard-keys&...`).
//! Requests are SigV4-signed like any S3 request (s3s checks the signature) by root: anonymous requests and
//! other keys are refused.
//!
//! A node started without fault injection answers 403 to fault requests and arms nothing.

use std::sync::Arc;

use hoard_actors::faults::Fault;
use hoard_actors::faults::FaultAdmin;
use hoard_actors::NodeContext;
use http::Extensions;
use http::HeaderMap;
use http::Method;
use http::Uri;
use s3s::route::S3Route;
use s3s::s3_error;
use s3s::Body;
use s3s::S3Request;
use s3s::S3Response;
use s3s::S3Result;

use crate::cluster;
use crate::cluster::CLUSTER_PARAM;
use crate::keys::KEYS_PARAM;

/// The query parameter that marks an admin request.
pub const ADMIN_PARAM: &str = "hoard-faults";

/// The fault points hoard's data path checks.
pub const FAULT_POINTS: &[&str] = &[
    "put.after_shards",
    "put.before_commit",
    "shard.write",
    "ec.encode",
    "encryptor.seal",
    "key_keeper.start",
    "key_keeper.wrap",
    "rotation.batch",
    "repair.rebuild",
    "rebalance.commit",
];

pub struct AdminRoute {
    pub ctx: NodeContext,
    pub faults: Option<Arc<dyn FaultAdmin>>,
    /// The root credential is the operator's (environment), not one hoard keeps and may rotate.
    pub root_given: bool,
    /// Who signed: admin calls are root's alone.
    pub credentials: crate::auth::SharedCredentials,
}

/// A point in [`FAULT_POINTS`], or `disk.<slot>` of one of the node's `disks`.
pub fn known_point(point: &str, disks: usize) -> bool {
    FAULT_POINTS.contains(&point)
        || point.strip_prefix("disk.").and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n < disks)
}

/// Parses the fault names the CLI and admin API use: `panic`, `error`, `stall:<ms>`.
pub fn parse_fault(s: &str) -> Option<Fault> {
    match s {
        "panic" => Some(Fault::Panic),
        "error" => Some(Fault::Error),
        _ => s
            .strip_prefix("stall:")
            .and_then(|ms| ms.parse().ok())
            .map(|ms| Fault::Stall(std::time::Duration::from_millis(ms))),
    }
}

pub fn fault_name(f: &Fault) -> String {
    match f {
        Fault::Panic => "panic".into(),
        Fault::Error => "error".into(),
        Fault::Stall(d) => format!("stall:{}", d.as_millis()),
        Fault::Gate(_) => "gate".into(),
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    let q = uri.query().unwrap_or("");
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (d(k), d(v))
        })
        .collect()
}

/// The operation label of admin calls in the metrics.
pub const ADMIN_OPERATION: &str = "Admin";

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap, _ext: &mut Extensions) -> bool {
        uri.path() == "/"
            && query_pairs(uri).iter().any(|(k, _)| k == ADMIN_PARAM || k == CLUSTER_PARAM || k == KEYS_PARAM)
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        if let Some(op) = req.extensions.get::<crate::frontend::Operation>() {
            op.set(ADMIN_OPERATION);
        }
        match &req.credentials {
            Some(c) if self.credentials.is_root(&c.access_key).await? => Ok(()),
            Some(_) => Err(s3_error!(AccessDenied, "Only root may call the admin API")),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if let Some(op) = req.extensions.get::<crate::frontend::Operation>() {
            op.set(ADMIN_OPERATION);
        }
        let q = query_pairs(&req.uri);
        let get = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        if get(KEYS_PARAM).is_some() {
            let secure = req.extensions.get::<crate::sse::Secure>().is_some_and(|s| s.0);
            let local = req.extensions.get::<crate::access::ClientAddr>().is_some_and(|a| a.0.is_loopback());
            return crate::keys::call(&self.ctx, &req.method, secure || local, get).await;
        }
        if get(CLUSTER_PARAM).is_some() {
            let secure = req.extensions.get::<crate::sse::Secure>().is_some_and(|s| s.0);
            return self.cluster(&req.method, secure, get).await;
        }
        let Some(faults) = &self.faults else {
            return Err(s3_error!(
                AccessDenied,
                "fault injection is disabled on this node; start it with --fault-injection"
            ));
        };
        let action = get("action").unwrap_or("list");
        match (req.method.clone(), action) {
            (Method::POST, "arm") => {
                let point = get("point").ok_or_else(|| s3_error!(InvalidArgument, "point is required"))?;
                if !known_point(point, self.ctx.shards.len()) {
                    return Err(s3_error!(
                        InvalidArgument,
                        "unknown fault point {point}; known: disk.<slot>, {}",
                        FAULT_POINTS.join(", ")
                    ));
                }
                let fault = get("fault")
                    .and_then(parse_fault)
                    .ok_or_else(|| s3_error!(InvalidArgument, "fault must be panic, error or stall:<ms>"))?;
                let times = match get("times") {
                    None => None,
                    Some(t) => Some(
                        t.parse::<u32>().map_err(|_| s3_error!(InvalidArgument, "times must be a positive integer"))?,
                    ),
                };
                faults.arm_times(point, fault, times);
            }
            (Method::POST, "disarm") => {
                let point = get("point").ok_or_else(|| s3_error!(InvalidArgument, "point is required"))?;
                faults.disarm(point);
            }
            (Method::GET, "list") => {}
            _ => return Err(s3_error!(InvalidRequest, "use POST action=arm|disarm, or GET to list")),
        }
        let mut out = String::new();
        for (point, fault, remaining) in faults.armed() {
            let times = remaining.map(|n| n.to_string()).unwrap_or_else(|| "always".into());
            out.push_str(&format!("{point} {} {times}\n", fault_name(&fault)));
        }
        Ok(S3Response::new(Body::from(out)))
    }
}

impl AdminRoute {
    /// `get` answers the request's query parameters; `secure` says whether the request came over TLS.
    async fn cluster<'q>(
        &self,
        method: &Method,
        secure: bool,
        get: impl Fn(&str) -> Option<&'q str>,
    ) -> S3Result<S3Response<Body>> {
        match (method.clone(), get("action").unwrap_or("status")) {
            (Method::GET, "status") => {}
            // Answers the new credential, not the status.
            (Method::POST, "rotate-root-key") => {
                return cluster::rotate_root_key(&self.ctx, secure, self.root_given).await
            }
            (Method::POST, "token") => {
                let ttl = match get("ttl-secs") {
                    None => 3600,
                    Some(t) => t
                        .parse::<u64>()
                        .ok()
                        .filter(|t| (1..=30 * 86_400).contains(t))
                        .ok_or_else(|| s3_error!(InvalidArgument, "ttl-secs must be from 1 to 2592000"))?,
                };
                return cluster::join_token(&self.ctx, std::time::Duration::from_secs(ttl), secure).await;
            }
            (Method::POST, "remove-node") => {
                let node = get("node")
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "node must be a node id"))?;
                // The status that follows tells how much is left to drain.
                cluster::remove_node(&self.ctx, node).await?;
            }
            (Method::POST, "encrypt") => cluster::encrypt(&self.ctx).await?,
            (Method::POST, "rotate-key") => {
                let file = get("key-file").ok_or_else(|| s3_error!(InvalidArgument, "key-file is required"))?;
                cluster::rotate_key(&self.ctx, file).await?;
            }
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "use GET action=status, or POST action=encrypt|rotate-key|rotate-root-key|token|remove-node"
                ))
            }
        }
        let status = cluster::status(&self.ctx).await?;
        let json = serde_json::to_string_pretty(&status).map_err(|e| s3_error!(InternalError, "{e}"))?;
        Ok(S3Response::new(Body::from(json + "\n")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_points_name_a_disk_of_the_node() {
        assert!(known_point("put.before_commit", 0));
        assert!(known_point("disk.0", 6) && known_point("disk.5", 6));
        assert!(!known_point("disk.6", 6) && !known_point("disk.", 6) && !known_point("disk.x", 6));
        assert!(!known_point("nowhere", 6));
        assert_eq!(parse_fault("stall:25"), Some(Fault::Stall(std::time::Duration::from_millis(25))));
        assert_eq!(fault_name(&Fault::Gate(hoard_actors::faults::Gate::new())), "gate");
    }
}
