//! The decision on one request, in the order the invariants of `access` state, from what is read for it: the
//! bucket's owner, ACL, policy and Block Public Access, the caller's grant, and the object's ACL.

use std::net::IpAddr;

use hoard_protocol::BucketSetting;
use hoard_protocol::Grant;
use hoard_protocol::ObjectRecord;
use hoard_protocol::VersionRecord;
use hoard_storage::meta::MetaReader;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Result;

use super::denied;
use super::meta;
use super::rules::action_of;
use super::rules::rule;
use super::rules::AclOn;
use super::rules::Need;
use super::rules::Rule;
use super::Principal;
use super::PublicAccessBlock;
use crate::acl::Acl;
use crate::acl::AclPermission;
use crate::acl::ROOT_ID;
use crate::policy::Decision;
use crate::policy::Policy;
use crate::policy::PolicyRequest;

/// A stored setting that no longer parses: refused (fail closed) and logged, never taken as "none".
fn unreadable(what: &str, bucket: &str) -> S3Error {
    tracing::error!(bucket, setting = what, "a stored bucket setting does not parse; refusing access through it");
    s3_error!(InternalError, "a stored bucket setting does not parse")
}

/// What the authorisation of requests to one bucket reads of it.
#[derive(Debug)]
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
    decide_by(reader, req, &rule(req.op)).map(|_| ())
}

/// Decides a read of an object: `Ok(Some(check))` when only the ACL of the version read here lets the caller
/// in, so the version the operation then reads must pass `check` too (it may be a newer one).
pub fn decide_read(reader: &MetaReader, req: &AccessRequest<'_>) -> S3Result<Option<ObjectAclCheck>> {
    decide_by(reader, req, &rule(req.op))
}

/// What let a caller read an object through its ACL, checked again on the version the read serves.
#[derive(Debug, Clone)]
pub struct ObjectAclCheck {
    pub(super) caller: Option<String>,
    pub(super) access: std::sync::Arc<BucketAccess>,
    pub(super) perm: AclPermission,
}

impl ObjectAclCheck {
    /// `Ok` when the version about to be served lets the caller in as the one decided on did.
    pub fn verify(&self, record: &ObjectRecord) -> S3Result<()> {
        let ignore_public = self.access.block.ignore_public_acls;
        match self.access.object_acl(record)?.allows(self.caller.as_deref(), self.perm, ignore_public) {
            true => Ok(()),
            false => Err(denied()),
        }
    }
}

/// Decides whether a write may give the new object an ACL of its own: the owner's grant or a policy's `Allow` of
/// `s3:PutObjectAcl`, never an ACL (the object has none yet) nor the 404 a missing key gets on a read.
pub fn decide_new_acl(reader: &MetaReader, req: &AccessRequest<'_>) -> S3Result<()> {
    decide_by(reader, req, &Rule { need: Need::Owner, action: "s3:PutObjectAcl", acl: None }).map(|_| ())
}

fn decide_by(reader: &MetaReader, req: &AccessRequest<'_>, rule: &Rule) -> S3Result<Option<ObjectAclCheck>> {
    if *req.principal == Principal::Root {
        return Ok(None);
    }
    let Some(bucket) = req.bucket else {
        return match (rule.need, req.principal) {
            (Need::Signed, Principal::Key(_)) => Ok(None),
            _ => Err(denied()),
        };
    };
    if rule.need == Need::Root {
        return Err(denied());
    }
    if rule.need == Need::CreateBucket {
        let Principal::Key(id) = req.principal else { return Err(denied()) };
        let may = meta(reader.access_key(id))?.is_some_and(|k| k.may_create_buckets);
        return if may { Ok(None) } else { Err(denied()) };
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
    access: std::sync::Arc<BucketAccess>,
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
        Ok(Some(BucketDecider { reader: reader.clone(), access: std::sync::Arc::new(access), grant }))
    }

    /// Decides a request to this decider's bucket, by the caller it was loaded for.
    pub fn decide(&self, req: &AccessRequest<'_>) -> S3Result<()> {
        self.decide_by(req, &rule(req.op)).map(|_| ())
    }

    fn decide_by(&self, req: &AccessRequest<'_>, rule: &Rule) -> S3Result<Option<ObjectAclCheck>> {
        if *req.principal == Principal::Root {
            return Ok(None);
        }
        match self.allowed(req, rule)? {
            Verdict::Allowed => Ok(None),
            Verdict::ByObjectAcl(perm) => Ok(Some(ObjectAclCheck {
                caller: req.principal.canonical_id().map(str::to_string),
                access: self.access.clone(),
                perm,
            })),
            Verdict::Denied => Err(denied()),
            Verdict::Missing => {
                // A read of a key that is not there: 404 only to those who may list the bucket.
                let list =
                    AccessRequest { op: "ListObjects", key: None, version_id: None, prefix: None, ..req.clone() };
                match self.allowed(&list, &self::rule("ListObjects"))? {
                    Verdict::Allowed => Ok(None),
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
                Ok(if allows { Verdict::ByObjectAcl(perm) } else { Verdict::Denied })
            }
            _ => Ok(Verdict::Denied),
        }
    }
}

enum Verdict {
    Allowed,
    /// Allowed by the ACL of the object version read here, with this permission.
    ByObjectAcl(AclPermission),
    Denied,
    /// Nothing allowed it but the object it names is not there.
    Missing,
}
