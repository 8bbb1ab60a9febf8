//! S3 access control lists: a canned ACL (`x-amz-acl`), the `x-amz-grant-*` headers or an
//! `AccessControlPolicy` body, turned into one [`Acl`] that is stored as JSON and asked [`Acl::allows`].
//!
//! Invariants:
//! - Every grantee of an ACL made here names a principal hoard has: an access key id the caller's `known`
//!   vouched for when the ACL was put, [`ROOT_ID`], or one of the groups AllUsers and AuthenticatedUsers.
//!   Grants by e-mail, to LogDelivery or to AWS's EC2 principal are refused when put, never stored.
//! - An ACL made here holds at most [`MAX_GRANTS`] grants; a request asking for more is refused before its
//!   later grantees are looked up.
//! - A request names its ACL one way at most: a canned ACL, header grants, or a body.
//! - Explicit grants are kept as given, as AWS does: the owner gets no FULL_CONTROL it was not granted. The
//!   owner still always holds READ_ACP and WRITE_ACP, so no ACL can lock its owner out of changing it.
//! - The stored form is versioned JSON (`{"v":"1",...}`): a form this code does not know is an error, never
//!   read as some default ACL (private or public).
//! - Pure: nothing here reads metadata. Whether an id names a key is the caller's `known`.

use s3s::dto;
use s3s::s3_error;
use s3s::S3Error;
use serde::Deserialize;
use serde::Serialize;

mod forms;
mod request;
#[cfg(test)]
mod tests;

pub use request::AclRequest;

/// The canonical id of the root user (what ListBuckets answers as the owner). Every other canonical id is
/// an access key id.
pub const ROOT_ID: &str = "hoard";
/// The most grants one ACL may hold (AWS's limit).
pub const MAX_GRANTS: usize = 100;

const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// The ACL of a bucket or an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The owner's canonical id.
    pub owner: String,
    /// In the order they were given.
    pub grants: Vec<AclGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGrant {
    pub grantee: Grantee,
    pub permission: AclPermission,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// A canonical id: an access key id, or [`ROOT_ID`].
    User(String),
    /// Everyone, anonymous requests included.
    AllUsers,
    /// Any request signed by a valid hoard key.
    AuthenticatedUsers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPermission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

impl AclPermission {
    pub const ALL: [AclPermission; 5] = [
        AclPermission::Read,
        AclPermission::Write,
        AclPermission::ReadAcp,
        AclPermission::WriteAcp,
        AclPermission::FullControl,
    ];

    /// The name S3 writes (`READ`, `WRITE`, `READ_ACP`, `WRITE_ACP`, `FULL_CONTROL`).
    pub fn as_str(self) -> &'static str {
        match self {
            AclPermission::Read => dto::Permission::READ,
            AclPermission::Write => dto::Permission::WRITE,
            AclPermission::ReadAcp => dto::Permission::READ_ACP,
            AclPermission::WriteAcp => dto::Permission::WRITE_ACP,
            AclPermission::FullControl => dto::Permission::FULL_CONTROL,
        }
    }

    /// The permission S3 names `s` (case-sensitive, as AWS).
    pub fn parse(s: &str) -> Option<AclPermission> {
        AclPermission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl Grantee {
    fn matches(&self, caller: Option<&str>, ignore_public: bool) -> bool {
        match self {
            Grantee::User(id) => caller == Some(id.as_str()),
            Grantee::AllUsers => !ignore_public,
            Grantee::AuthenticatedUsers => !ignore_public && caller.is_some(),
        }
    }
}

impl Acl {
    /// Owner FULL_CONTROL only (what a bucket or object without an ACL has).
    pub fn private(owner: &str) -> Acl {
        Acl {
            owner: owner.to_owned(),
            grants: vec![grant(Grantee::User(owner.to_owned()), AclPermission::FullControl)],
        }
    }

    /// A canned ACL by its `x-amz-acl` value. `bucket_owner` matters only to `bucket-owner-read` and
    /// `bucket-owner-full-control`, which grant the bucket owner READ / FULL_CONTROL besides the object owner's
    /// FULL_CONTROL; for a bucket pass `bucket_owner == owner`, and they mean `private` (AWS accepts them there).
    pub fn canned(name: &str, owner: &str, bucket_owner: &str) -> Result<Acl, S3Error> {
        use AclPermission::*;
        use Grantee::*;
        let mut acl = Acl::private(owner);
        let extra = match name {
            "private" => vec![],
            "public-read" => vec![(AllUsers, Read)],
            "public-read-write" => vec![(AllUsers, Read), (AllUsers, Write)],
            "authenticated-read" => vec![(AuthenticatedUsers, Read)],
            "bucket-owner-read" | "bucket-owner-full-control" if bucket_owner == owner => vec![],
            "bucket-owner-read" => vec![(User(bucket_owner.to_owned()), Read)],
            "bucket-owner-full-control" => vec![(User(bucket_owner.to_owned()), FullControl)],
            "aws-exec-read" | "log-delivery-write" => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The canned ACL {name} is not supported: it grants an AWS principal hoard does not have."
                ))
            }
            _ => return Err(s3_error!(InvalidArgument, "The canned ACL given in x-amz-acl is not valid.")),
        };
        acl.grants.extend(extra.into_iter().map(|(g, p)| grant(g, p)));
        Ok(acl)
    }

    /// Whether the ACL grants anything to AllUsers or AuthenticatedUsers (what Block Public Access calls
    /// public).
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
    }

    /// Whether `caller` (a canonical id; `None` = anonymous) holds `perm` through this ACL. FULL_CONTROL
    /// implies every permission; the owner always holds READ_ACP and WRITE_ACP; AllUsers matches everyone,
    /// anonymous included, AuthenticatedUsers any signed caller. With `ignore_public` (Block Public Access's
    /// IgnorePublicAcls), grants to those two groups count for nothing.
    pub fn allows(&self, caller: Option<&str>, perm: AclPermission, ignore_public: bool) -> bool {
        if caller == Some(self.owner.as_str()) && matches!(perm, AclPermission::ReadAcp | AclPermission::WriteAcp) {
            return true;
        }
        self.grants.iter().any(|g| {
            (g.permission == perm || g.permission == AclPermission::FullControl)
                && g.grantee.matches(caller, ignore_public)
        })
    }
}

fn grant(grantee: Grantee, permission: AclPermission) -> AclGrant {
    AclGrant { grantee, permission }
}
