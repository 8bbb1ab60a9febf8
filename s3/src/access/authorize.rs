//! s3s's access hook ([`Authorize`]): who signed a request, what it names (bucket, key, version, copy source),
//! and the decisions it takes before any of its work is done.

use hoard_actors::NodeContext;
use s3s::access::S3Access;
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::s3_error;
use s3s::S3Result;

use super::decide::decide_new_acl;
use super::decide::decide_read;
use super::decide::AccessRequest;
use super::decide::ObjectAclCheck;
use super::denied;
use super::Caller;
use super::ClientAddr;
use super::Principal;
use crate::auth::SharedCredentials;
use crate::error::OrS3;
use crate::frontend::Operation;
use crate::sse::Secure;

/// s3s's access check: names the request's operation (for the metrics and traces), then decides it with
/// [`decide`] and records its [`Caller`].
pub struct Authorize {
    pub ctx: NodeContext,
    pub credentials: SharedCredentials,
}

/// The bucket, key and version named by `x-amz-copy-source`, parsed by the parser the operation uses (s3s's),
/// so that what is authorised is what is copied. `None`: not a `bucket/key` source.
pub fn copy_source(value: &str) -> Option<(String, String, Option<String>)> {
    match s3s::dto::CopySource::parse(value).ok()? {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => {
            Some((bucket.to_string(), key.to_string(), version_id.map(|v| v.to_string())))
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl S3Access for Authorize {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name().to_string();
        if let Some(operation) = cx.extensions_mut().get::<Operation>() {
            operation.set(op.clone());
        }
        let principal = self.credentials.principal(cx.credentials().map(|c| c.access_key.as_str())).await?;
        cx.extensions_mut().insert(Caller(principal.clone()));
        if principal == Principal::Root {
            return Ok(());
        }
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let secure = cx.extensions_mut().get::<Secure>().is_some_and(|s| s.0);
        let source_ip = cx.extensions_mut().get::<ClientAddr>().map(|a| a.0);
        // Names and values decoded as s3s decodes them (`%76ersionId` is `versionId`, `+` a space), so the
        // version and prefix decided on are the ones the operation acts on.
        let params = crate::gate::form_urlencoded(cx.uri().query().unwrap_or(""));
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let version_id = param("versionId");
        // A listing without a prefix lists from the root: `s3:prefix` is "" then, as AWS evaluates it.
        let listing = matches!(op.as_str(), "ListObjects" | "ListObjectsV2" | "ListObjectVersions");
        let prefix = param("prefix").or_else(|| listing.then(String::new));
        if principal == Principal::Anonymous && params.iter().any(|(k, _)| k.starts_with("response-")) {
            return Err(s3_error!(
                InvalidRequest,
                "Request specific response headers cannot be used for anonymous GET requests."
            ));
        }
        let reader = self.ctx.meta.local().or_s3()?;
        let req = AccessRequest {
            principal: &principal,
            op: &op,
            bucket: bucket.as_deref(),
            key: key.as_deref(),
            version_id: version_id.as_deref(),
            secure,
            source_ip,
            prefix: prefix.as_deref(),
        };
        // A read let in by the object's ACL alone is checked again on the version it serves (see ObjectAclCheck).
        if let Some(check) = decide_read(&reader, &req)? {
            cx.extensions_mut().insert(ReadAclCheck(check));
        }
        if asks_for_acl(cx.headers()) && matches!(op.as_str(), "PutObject" | "CopyObject" | "CreateMultipartUpload") {
            decide_new_acl(&reader, &req)?;
        }
        if matches!(op.as_str(), "CopyObject" | "UploadPartCopy") {
            let header = cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok());
            // A source that is not a bucket and key is refused here, not left for the operation to read.
            let (bucket, key, version_id) = header.and_then(copy_source).ok_or_else(denied)?;
            let read = AccessRequest {
                op: "GetObject",
                bucket: Some(&bucket),
                key: Some(&key),
                version_id: version_id.as_deref(),
                prefix: None,
                ..req.clone()
            };
            if let Some(check) = decide_read(&reader, &read)? {
                cx.extensions_mut().insert(SourceAclCheck(check));
            }
        }
        Ok(())
    }
}

/// Whether a canned ACL leaves a new object as private as no ACL would: its owner is the bucket's owner, so
/// the `bucket-owner-*` ACLs give nobody anything more.
pub fn canned_is_private(canned: &str) -> bool {
    matches!(canned, "private" | "bucket-owner-read" | "bucket-owner-full-control")
}

/// Whether a write asks for an ACL of its own (a canned one that is not private, or explicit grants).
pub fn asks_for_acl(headers: &http::HeaderMap) -> bool {
    let canned = headers.get("x-amz-acl").is_some_and(|v| v.to_str().map_or(true, |v| !canned_is_private(v)));
    canned || headers.keys().any(|k| k.as_str().starts_with("x-amz-grant-"))
}

/// The object ACL a read was let in by, to check again on the version it serves.
#[derive(Debug, Clone)]
pub struct ReadAclCheck(pub ObjectAclCheck);

/// The same, for a copy's source.
#[derive(Debug, Clone)]
pub struct SourceAclCheck(pub ObjectAclCheck);
