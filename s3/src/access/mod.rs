//! Who may do what: the one authorisation function every S3 request passes, after its signature is checked
//! and before any of its work is done (s3s calls [`Authorize::check`](Authorize#method.check) before it reads a body).
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
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Result;
use serde::Deserialize;
use serde::Serialize;

use crate::acl::ROOT_ID;
use crate::error::OrS3;

mod authorize;
mod decide;
mod rules;
#[cfg(test)]
mod tests;

pub use authorize::asks_for_acl;
pub use authorize::canned_is_private;
pub use authorize::copy_source;
pub use authorize::Authorize;
pub use authorize::ReadAclCheck;
pub use authorize::SourceAclCheck;
pub use decide::decide;
pub use decide::decide_new_acl;
pub use decide::decide_read;
pub use decide::AccessRequest;
pub use decide::BucketAccess;
pub use decide::BucketDecider;
pub use decide::ObjectAclCheck;
pub use rules::rule;
pub use rules::AclOn;
pub use rules::Need;
pub use rules::Rule;

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
