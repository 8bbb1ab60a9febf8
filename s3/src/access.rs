//! Who may do what: the one authorisation function every S3 request passes, after its signature is checked
//! and before any of its work is done (s3s calls [`Authorize::check`] before it reads a body).
//!
//! Invariants:
//! - Deny by default: an operation not in [`rule`]'s table is root's alone; a request allowed by nothing below
//!   is refused with 403 `AccessDenied`.
//! - Root (the key pair `hoard` made or was given) may do everything, as an account's root user does.
//! - For anyone else, in this order: an explicit `Deny` of the bucket policy refuses; then the request is allowed
//!   by the caller's grant on the bucket (`hoard key allow`), by an ACL (the bucket's for bucket operations and
//!   object writes, the object's for object reads), or by an `Allow` of the policy. Block Public Access's
//!   `IgnorePublicAcls` takes public ACL grants out, and `RestrictPublicBuckets` takes a public policy's
//!   `Allow` from anonymous callers.
//! - Decisions are made on the node's local state machine (no Raft round trip), so a grant or a revocation takes
//!   effect on a node as soon as that node has applied it.
//! - A request for a bucket that does not exist goes on (it is answered `NoSuchBucket`, as S3 answers it to
//!   anyone); a read of a key that does not exist is answered 404 only to a caller who may list the bucket,
//!   403 to others (as S3 does), so listing rights are not leaked through GETs.

use std::net::IpAddr;

use hoard_actors::error::ActorError;
use hoard_actors::NodeContext;
use hoard_protocol::BucketSetting;
use hoard_protocol::Grant;
use hoard_protocol::ObjectRecord;
use hoard_protocol::VersionRecord;
use hoard_storage::meta::MetaReader;
use s3s::access::S3Access;
use s3s::access::S3AccessContext;
use s3s::path::S3Path;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Result;
use serde::Deserialize;
use serde::Serialize;

use crate::acl::Acl;
use crate::acl::AclPermission;
use crate::acl::ROOT_ID;
use crate::auth::SharedCredentials;
use crate::error::OrS3;
use crate::frontend::Operation;
use crate::policy::Decision;
use crate::policy::Policy;
use crate::policy::PolicyRequest;
use crate::sse::Secure;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
    /// An access key besides root, by id.
    Key(String),
    Anonymous,
}

impl Principal {
    /// The caller's canonical id in ACLs (`None`: anonymous).
    pub fn canonical_id(&self) -> Option<&str> {
        match self {
            Principal::Root => Some(ROOT_ID),
            Principal::Key(id) => Some(id),
            Principal::Anonymous => None,
        }
    }
}

/// The caller of a request, put into its extensions once it is authorised (the operations read it: who creates
/// a bucket, whose buckets a listing shows).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// The caller of a request that passed [`Authorize`] (anonymous where none was recorded).
    pub fn of(extensions: &http::Extensions) -> Principal {
        extensions.get::<Caller>().map(|c| c.0.clone()).unwrap_or(Principal::Anonymous)
    }
}

/// The client's address, put into every request by the listener (for `aws:SourceIp`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// What a caller's grant on the bucket must hold for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any signed caller (ListBuckets, which shows only what the caller may see).
    Signed,
    /// A key allowed to create buckets.
    CreateBucket,
    Read,
    Write,
    Owner,
    /// Root alone.
    Root,
}

/// Where an ACL permission for an operation is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclOn {
    Bucket,
    Object,
}

/// What an operation needs: of a grant, in a policy (its IAM action), and in an ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub need: Need,
    pub action: &'static str,
    pub acl: Option<(AclOn, AclPermission)>,
}

/// The table of operation → permission (s3s's operation names). What is not here is root's alone.
pub fn rule(op: &str) -> Rule {
    use AclOn::*;
    use AclPermission as P;
    use Need::*;
    let r = |need, action, acl| Rule { need, action, acl };
    match op {
        "ListBuckets" => r(Signed, "s3:ListAllMyBuckets", None),
        "CreateBucket" => r(CreateBucket, "s3:CreateBucket", None),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => r(Read, "s3:ListBucket", Some((Bucket, P::Read))),
        "ListObjectVersions" => r(Read, "s3:ListBucketVersions", Some((Bucket, P::Read))),
        "ListMultipartUploads" => r(Read, "s3:ListBucketMultipartUploads", Some((Bucket, P::Read))),
        "GetBucketLocation" => r(Read, "s3:GetBucketLocation", None),
        "GetBucketVersioning" => r(Read, "s3:GetBucketVersioning", None),
        "GetObjectLockConfiguration" => r(Read, "s3:GetBucketObjectLockConfiguration", None),
        "GetObject" | "HeadObject" => r(Read, "s3:GetObject", Some((Object, P::Read))),
        "GetObjectAttributes" => r(Read, "s3:GetObjectAttributes", Some((Object, P::Read))),
        "GetObjectTagging" => r(Read, "s3:GetObjectTagging", None),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => r(Write, "s3:PutObject", Some((Bucket, P::Write))),
        "AbortMultipartUpload" => r(Write, "s3:AbortMultipartUpload", Some((Bucket, P::Write))),
        "ListParts" => r(Write, "s3:ListMultipartUploadParts", Some((Bucket, P::Write))),
        "DeleteObject" | "DeleteObjects" => r(Write, "s3:DeleteObject", Some((Bucket, P::Write))),
        "PutObjectTagging" => r(Write, "s3:PutObjectTagging", None),
        "DeleteObjectTagging" => r(Write, "s3:DeleteObjectTagging", None),
        "GetObjectAcl" => r(Owner, "s3:GetObjectAcl", Some((Object, P::ReadAcp))),
        "PutObjectAcl" => r(Owner, "s3:PutObjectAcl", Some((Object, P::WriteAcp))),
        "GetBucketAcl" => r(Owner, "s3:GetBucketAcl", Some((Bucket, P::ReadAcp))),
        "PutBucketAcl" => r(Owner, "s3:PutBucketAcl", Some((Bucket, P::WriteAcp))),
        "GetBucketPolicy" => r(Owner, "s3:GetBucketPolicy", None),
        "PutBucketPolicy" => r(Owner, "s3:PutBucketPolicy", None),
        "DeleteBucketPolicy" => r(Owner, "s3:DeleteBucketPolicy", None),
        "GetBucketPolicyStatus" => r(Owner, "s3:GetBucketPolicyStatus", None),
        "GetPublicAccessBlock" => r(Owner, "s3:GetBucketPublicAccessBlock", None),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => r(Owner, "s3:PutBucketPublicAccessBlock", None),
        "GetBucketCors" => r(Owner, "s3:GetBucketCORS", None),
        "PutBucketCors" | "DeleteBucketCors" => r(Owner, "s3:PutBucketCORS", None),
        "PutBucketVersioning" => r(Owner, "s3:PutBucketVersioning", None),
        "GetBucketEncryption" => r(Owner, "s3:GetEncryptionConfiguration", None),
        "PutBucketEncryption" | "DeleteBucketEncryption" => r(Owner, "s3:PutEncryptionConfiguration", None),
        "GetBucketTagging" => r(Owner, "s3:GetBucketTagging", None),
        "PutBucketTagging" | "DeleteBucketTagging" => r(Owner, "s3:PutBucketTagging", None),
        "DeleteBucket" => r(Owner, "s3:DeleteBucket", None),
        _ => r(Root, "", None),
    }
}

/// The IAM action a request needs: a version named turns the object actions into their `*Version` forms.
fn action_of(rule: &Rule, versioned: bool) -> &'static str {
    if !versioned {
        return rule.action;
    }
    match rule.action {
        "s3:GetObject" => "s3:GetObjectVersion",
        "s3:DeleteObject" => "s3:DeleteObjectVersion",
        "s3:GetObjectAcl" => "s3:GetObjectVersionAcl",
        "s3:PutObjectAcl" => "s3:PutObjectVersionAcl",
        "s3:GetObjectTagging" => "s3:GetObjectVersionTagging",
        "s3:PutObjectTagging" => "s3:PutObjectVersionTagging",
        "s3:DeleteObjectTagging" => "s3:DeleteObjectVersionTagging",
        "s3:GetObjectAttributes" => "s3:GetObjectVersionAttributes",
        other => other,
    }
}

/// Block Public Access, as a bucket keeps it (every flag off when the bucket has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub fn from_dto(c: &s3s::dto::PublicAccessBlockConfiguration) -> Self {
        PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        }
    }

    pub fn to_dto(self) -> s3s::dto::PublicAccessBlockConfiguration {
        s3s::dto::PublicAccessBlockConfiguration {
            block_public_acls: Some(self.block_public_acls),
            ignore_public_acls: Some(self.ignore_public_acls),
            block_public_policy: Some(self.block_public_policy),
            restrict_public_buckets: Some(self.restrict_public_buckets),
        }
    }
}

fn denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

/// A read of the state machine, its error as S3's.
pub(crate) fn meta<T>(r: hoard_storage::meta::Result<T>) -> S3Result<T> {
    r.map_err(|e| ActorError::Meta(e.to_string())).or_s3()
}

/// A stored setting that no longer parses: refused (fail closed) and logged, never taken as "none".
fn unreadable(what: &str, bucket: &str) -> S3Error {
    tracing::error!(bucket, setting = what, "a stored bucket setting does not parse; refusing access through it");
    s3_error!(InternalError, "a stored bucket setting does not parse")
}

/// What the authorisation of requests to one bucket reads of it.
pub struct BucketAccess {
    pub bucket: String,
    /// The owning key's canonical id ([`ROOT_ID`] for root's buckets).
    pub owner: String,
    pub acl: Option<Acl>,
    pub policy: Option<Policy>,
    pub block: PublicAccessBlock,
}

impl BucketAccess {
    /// The bucket's access settings; `None` when the bucket does not exist.
    pub fn load(reader: &MetaReader, bucket: &str) -> S3Result<Option<BucketAccess>> {
        if meta(reader.bucket(bucket))?.is_none() {
            return Ok(None);
        }
        let owner = meta(reader.bucket_owner(bucket))?.unwrap_or_else(|| ROOT_ID.to_string());
        let acl = match meta(reader.bucket_setting(bucket, BucketSetting::Acl))? {
            Some(text) => Some(Acl::from_json(&text).map_err(|_| unreadable("acl", bucket))?),
            None => None,
        };
        let policy = match meta(reader.bucket_setting(bucket, BucketSetting::Policy))? {
            Some(text) => Some(Policy::parse_stored(&text, bucket).map_err(|_| unreadable("policy", bucket))?),
            None => None,
        };
        let block = match meta(reader.bucket_setting(bucket, BucketSetting::PublicAccessBlock))? {
            Some(text) => serde_json::from_str(&text).map_err(|_| unreadable("public access block", bucket))?,
            None => PublicAccessBlock::default(),
        };
        Ok(Some(BucketAccess { bucket: bucket.to_string(), owner, acl, policy, block }))
    }

    /// The bucket's ACL, or the private one its owner has when none was set.
    pub fn acl_or_private(&self) -> Acl {
        self.acl.clone().unwrap_or_else(|| Acl::private(&self.owner))
    }

    /// The ACL of one of the bucket's object versions, or the private one when it has none.
    pub fn object_acl(&self, record: &ObjectRecord) -> S3Result<Acl> {
        match record.headers.acl() {
            Some(text) => Acl::from_json(text).map_err(|_| unreadable("object acl", &self.bucket)),
            None => Ok(Acl::private(&self.owner)),
        }
    }
}

/// One request as the authorisation sees it.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    pub principal: &'a Principal,
    /// s3s's operation name.
    pub op: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// The `versionId` asked for.
    pub version_id: Option<&'a str>,
    pub secure: bool,
    pub source_ip: Option<IpAddr>,
    /// A listing's `prefix`.
    pub prefix: Option<&'a str>,
}

impl AccessRequest<'_> {
    fn policy_request(&self, action: &'static str) -> (PolicyRequest<'_>, String) {
        let resource = match (self.bucket, self.key) {
            (Some(b), Some(k)) => format!("arn:aws:s3:::{b}/{k}"),
            (Some(b), None) => format!("arn:aws:s3:::{b}"),
            _ => "arn:aws:s3:::".to_string(),
        };
        let principal = match self.principal {
            Principal::Key(id) => Some(id.as_str()),
            _ => None,
        };
        let req = PolicyRequest {
            principal,
            action,
            resource: "",
            secure: self.secure,
            source_ip: self.source_ip,
            prefix: self.prefix,
        };
        (req, resource)
    }
}

/// Decides one request: `Ok` when it may go on. `reader` is the node's local state machine.
pub fn decide(reader: &MetaReader, req: &AccessRequest<'_>) -> S3Result<()> {
    decide_by(reader, req, &rule(req.op))
}

/// Decides whether a write may give the new object an ACL of its own: the owner's grant or a policy's `Allow` of
/// `s3:PutObjectAcl`, never an ACL (the object has none yet) nor the 404 a missing key gets on a read.
pub fn decide_new_acl(reader: &MetaReader, req: &AccessRequest<'_>) -> S3Result<()> {
    decide_by(reader, req, &Rule { need: Need::Owner, action: "s3:PutObjectAcl", acl: None })
}

fn decide_by(reader: &MetaReader, req: &AccessRequest<'_>, rule: &Rule) -> S3Result<()> {
    if *req.principal == Principal::Root {
        return Ok(());
    }
    let Some(bucket) = req.bucket else {
        return match (rule.need, req.principal) {
            (Need::Signed, Principal::Key(_)) => Ok(()),
            _ => Err(denied()),
        };
    };
    if rule.need == Need::Root {
        return Err(denied());
    }
    if rule.need == Need::CreateBucket {
        let Principal::Key(id) = req.principal else { return Err(denied()) };
        let may = meta(reader.access_key(id))?.is_some_and(|k| k.may_create_buckets);
        return if may { Ok(()) } else { Err(denied()) };
    }
    match BucketDecider::load(reader, req.principal, bucket)? {
        Some(decider) => decider.decide_by(req, rule),
        // As S3 answers anyone; and nothing goes on to act on a bucket that this node does not know.
        None => Err(s3_error!(NoSuchBucket, "The specified bucket does not exist")),
    }
}

/// What deciding requests of one caller to one bucket reads, read once (DeleteObjects decides each key with it).
pub struct BucketDecider {
    reader: MetaReader,
    access: BucketAccess,
    grant: Grant,
}

impl BucketDecider {
    /// `None` when the bucket does not exist.
    pub fn load(reader: &MetaReader, principal: &Principal, bucket: &str) -> S3Result<Option<BucketDecider>> {
        let Some(access) = BucketAccess::load(reader, bucket)? else { return Ok(None) };
        let grant = match principal {
            Principal::Key(id) => meta(reader.grant(bucket, id))?,
            _ => Grant::default(),
        };
        Ok(Some(BucketDecider { reader: reader.clone(), access, grant }))
    }

    /// Decides a request to this decider's bucket, by the caller it was loaded for.
    pub fn decide(&self, req: &AccessRequest<'_>) -> S3Result<()> {
        self.decide_by(req, &rule(req.op))
    }

    fn decide_by(&self, req: &AccessRequest<'_>, rule: &Rule) -> S3Result<()> {
        if *req.principal == Principal::Root {
            return Ok(());
        }
        match self.allowed(req, rule)? {
            Verdict::Allowed => Ok(()),
            Verdict::Denied => Err(denied()),
            Verdict::Missing => {
                // A read of a key that is not there: 404 only to those who may list the bucket.
                let list =
                    AccessRequest { op: "ListObjects", key: None, version_id: None, prefix: None, ..req.clone() };
                match self.allowed(&list, &self::rule("ListObjects"))? {
                    Verdict::Allowed => Ok(()),
                    _ => Err(denied()),
                }
            }
        }
    }

    /// The version a request names, if it is there (`Err(Denied)` for a delete marker named by id).
    fn version(&self, req: &AccessRequest<'_>) -> S3Result<Result<Option<ObjectRecord>, Verdict>> {
        let (Some(bucket), Some(key)) = (req.bucket, req.key) else { return Ok(Err(Verdict::Denied)) };
        Ok(Ok(match req.version_id {
            None => meta(self.reader.object(bucket, key))?,
            Some(id) => match meta(self.reader.version(bucket, key, id))? {
                Some(VersionRecord::Object(o)) => Some(o),
                // A delete marker has no ACL; S3 answers its owner 405, others 403.
                Some(VersionRecord::DeleteMarker(_)) => return Ok(Err(Verdict::Denied)),
                None => None,
            },
        }))
    }

    fn allowed(&self, req: &AccessRequest<'_>, rule: &Rule) -> S3Result<Verdict> {
        let access = &self.access;
        let action = action_of(rule, req.version_id.is_some());
        let mut decision = Decision::Default;
        if let Some(policy) = &access.policy {
            let (mut preq, resource) = req.policy_request(action);
            preq.resource = &resource;
            decision = policy.evaluate(&preq);
            if decision == Decision::Deny {
                return Ok(Verdict::Denied);
            }
            if decision == Decision::Allow
                && access.block.restrict_public_buckets
                && policy.is_public()
                && *req.principal == Principal::Anonymous
            {
                decision = Decision::Default;
            }
        }
        let by_grant = match rule.need {
            Need::Read => self.grant.read,
            Need::Write => self.grant.write,
            Need::Owner => self.grant.owner,
            _ => false,
        };
        if by_grant {
            return Ok(Verdict::Allowed);
        }
        let object_read = matches!(rule.acl, Some((AclOn::Object, AclPermission::Read)));
        if decision == Decision::Allow {
            // Allowed to read a key, not to learn whether it is there: that takes the right to list.
            if object_read {
                return Ok(match self.version(req)? {
                    Ok(Some(_)) => Verdict::Allowed,
                    Ok(None) => Verdict::Missing,
                    Err(v) => v,
                });
            }
            return Ok(Verdict::Allowed);
        }
        let caller = req.principal.canonical_id();
        // A bucket's owner holds what its grant says: ACLs name it as owner, they give it nothing more (so
        // `hoard key deny` takes from a bucket's creator what it takes from any key).
        if caller == Some(access.owner.as_str()) {
            return Ok(Verdict::Denied);
        }
        let ignore_public = access.block.ignore_public_acls;
        match rule.acl {
            Some((AclOn::Bucket, perm)) if access.acl_or_private().allows(caller, perm, ignore_public) => {
                Ok(Verdict::Allowed)
            }
            Some((AclOn::Object, perm)) => {
                let record = match self.version(req)? {
                    Ok(Some(record)) => record,
                    Ok(None) => return Ok(Verdict::Missing),
                    Err(v) => return Ok(v),
                };
                let allows = access.object_acl(&record)?.allows(caller, perm, ignore_public);
                Ok(if allows { Verdict::Allowed } else { Verdict::Denied })
            }
            _ => Ok(Verdict::Denied),
        }
    }
}

enum Verdict {
    Allowed,
    Denied,
    /// Nothing allowed it but the object it names is not there.
    Missing,
}

/// s3s's access check: names the request's operation (for the metrics and traces), then decides it with
/// [`decide`] and records its [`Caller`].
pub struct Authorize {
    pub ctx: NodeContext,
    pub credentials: SharedCredentials,
}

impl Authorize {
    /// Who signed: root, an access key, or nobody.
    pub async fn principal(&self, access_key: Option<&str>) -> S3Result<Principal> {
        match access_key {
            None => Ok(Principal::Anonymous),
            Some(key) if self.credentials.is_root(key).await? => Ok(Principal::Root),
            Some(key) => Ok(Principal::Key(key.to_string())),
        }
    }
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
        let principal = self.principal(cx.credentials().map(|c| c.access_key.as_str())).await?;
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
        decide(&reader, &req)?;
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
            decide(&reader, &read)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation hoard answers, as s3s names them.
    pub(crate) const OPERATIONS: &[&str] = &[
        "ListBuckets",
        "CreateBucket",
        "HeadBucket",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "GetBucketLocation",
        "GetBucketVersioning",
        "GetObjectLockConfiguration",
        "GetObject",
        "HeadObject",
        "GetObjectAttributes",
        "GetObjectTagging",
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPartCopy",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "ListParts",
        "DeleteObject",
        "DeleteObjects",
        "PutObjectTagging",
        "DeleteObjectTagging",
        "GetObjectAcl",
        "PutObjectAcl",
        "GetBucketAcl",
        "PutBucketAcl",
        "GetBucketPolicy",
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "GetBucketPolicyStatus",
        "GetPublicAccessBlock",
        "PutPublicAccessBlock",
        "DeletePublicAccessBlock",
        "GetBucketCors",
        "PutBucketCors",
        "DeleteBucketCors",
        "PutBucketVersioning",
        "GetBucketEncryption",
        "PutBucketEncryption",
        "DeleteBucketEncryption",
        "GetBucketTagging",
        "PutBucketTagging",
        "DeleteBucketTagging",
        "DeleteBucket",
    ];

    /// The operations that change nothing.
    const READS: &[&str] = &[
        "HeadBucket",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "GetBucketLocation",
        "GetBucketVersioning",
        "GetObjectLockConfiguration",
        "GetObject",
        "HeadObject",
        "GetObjectAttributes",
        "GetObjectTagging",
    ];

    #[test]
    fn every_operation_has_a_rule_whose_action_a_policy_can_name() {
        for op in OPERATIONS {
            let rule = rule(op);
            assert_ne!(rule.need, Need::Root, "{op} is in the table");
            for versioned in [false, true] {
                let action = action_of(&rule, versioned);
                assert!(crate::policy::ACTIONS.contains(&action), "{op}: {action} is a known IAM action");
            }
        }
        assert_eq!(rule("SelectObjectContent").need, Need::Root, "what is not in the table is root's");
        assert_eq!(rule("").need, Need::Root);
    }

    #[test]
    fn read_grants_allow_only_operations_that_change_nothing() {
        for op in OPERATIONS {
            let need = rule(op).need;
            assert_eq!(need == Need::Read, READS.contains(op), "{op}");
        }
    }

    #[test]
    fn acls_grant_reads_and_writes_as_s3_does() {
        assert_eq!(rule("GetObject").acl, Some((AclOn::Object, AclPermission::Read)));
        assert_eq!(rule("ListObjectsV2").acl, Some((AclOn::Bucket, AclPermission::Read)));
        assert_eq!(rule("PutObject").acl, Some((AclOn::Bucket, AclPermission::Write)));
        assert_eq!(rule("DeleteObject").acl, Some((AclOn::Bucket, AclPermission::Write)));
        assert_eq!(rule("PutBucketAcl").acl, Some((AclOn::Bucket, AclPermission::WriteAcp)));
        for op in ["PutBucketPolicy", "DeleteBucket", "PutPublicAccessBlock", "PutBucketCors", "GetBucketPolicy"] {
            assert_eq!(rule(op).acl, None, "{op}: only grants and policies allow it");
        }
    }

    #[test]
    fn copy_sources_are_read_as_the_operation_reads_them() {
        assert_eq!(copy_source("/bkt/a%20b/c"), Some(("bkt".into(), "a b/c".into(), None)));
        assert_eq!(copy_source("bkt/k?versionId=v1"), Some(("bkt".into(), "k".into(), Some("v1".into()))));
        // An encoded leading slash names the bucket after it, as the copy itself reads it.
        assert_eq!(copy_source("%2Fvictim/secret.txt"), Some(("victim".into(), "secret.txt".into(), None)));
        assert_eq!(copy_source("nokey"), None);
    }

    #[test]
    fn only_non_private_acls_and_grants_ask_for_an_acl() {
        let mut h = http::HeaderMap::new();
        assert!(!asks_for_acl(&h));
        h.insert("x-amz-acl", http::HeaderValue::from_static("private"));
        assert!(!asks_for_acl(&h));
        h.insert("x-amz-acl", http::HeaderValue::from_static("bucket-owner-full-control"));
        assert!(!asks_for_acl(&h), "the bucket's owner owns the object anyway");
        h.insert("x-amz-acl", http::HeaderValue::from_static("public-read"));
        assert!(asks_for_acl(&h));
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-grant-read", http::HeaderValue::from_static("id=\"AK\""));
        assert!(asks_for_acl(&h));
    }
}
