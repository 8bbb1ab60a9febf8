//! The forms an ACL takes outside hoard: the `AccessControlPolicy` GetBucketAcl and GetObjectAcl answer
//! ([`Acl::to_dto`]), and the versioned JSON it is stored as ([`Acl::to_json`], [`Acl::from_json`]).

use s3s::dto;
use s3s::dto::AccessControlPolicy;
use s3s::s3_error;
use s3s::S3Error;
use serde::Deserialize;
use serde::Serialize;

use super::Acl;
use super::Grantee;
use super::ALL_USERS_URI;
use super::AUTHENTICATED_USERS_URI;

/// The stored form, versioned so it can change without breaking a running cluster.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredAcl {
    #[serde(rename = "1")]
    V1(Acl),
}

impl Acl {
    /// The ACL as GetBucketAcl / GetObjectAcl answer it: users as CanonicalUser with their id as display
    /// name, groups as Group with AWS's URIs.
    pub fn to_dto(&self) -> AccessControlPolicy {
        let grants = self.grants.iter().map(|g| dto::Grant {
            grantee: Some(match &g.grantee {
                Grantee::User(id) => dto::Grantee {
                    display_name: Some(id.clone()),
                    email_address: None,
                    id: Some(id.clone()),
                    type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                    uri: None,
                },
                Grantee::AllUsers => group_dto(ALL_USERS_URI),
                Grantee::AuthenticatedUsers => group_dto(AUTHENTICATED_USERS_URI),
            }),
            permission: Some(dto::Permission::from_static(g.permission.as_str())),
        });
        AccessControlPolicy {
            grants: Some(grants.collect()),
            owner: Some(dto::Owner { display_name: Some(self.owner.clone()), id: Some(self.owner.clone()) }),
        }
    }

    /// The stored form. Store this string, not the serde form of [`Acl`]: only this one carries its version.
    pub fn to_json(&self) -> String {
        // Strings, unit variants and vectors always serialize; were that ever to fail, the empty string
        // stored would fail `from_json` loudly rather than read as some other ACL.
        serde_json::to_string(&StoredAcl::V1(self.clone())).unwrap_or_default()
    }

    /// Reads the stored form. A form that does not parse is InternalError: it was written by `to_json`.
    pub fn from_json(s: &str) -> Result<Acl, S3Error> {
        match serde_json::from_str(s) {
            Ok(StoredAcl::V1(acl)) => Ok(acl),
            Err(e) => Err(s3_error!(InternalError, "a stored ACL cannot be read: {e}")),
        }
    }
}

fn group_dto(uri: &str) -> dto::Grantee {
    dto::Grantee {
        display_name: None,
        email_address: None,
        id: None,
        type_: dto::Type::from_static(dto::Type::GROUP),
        uri: Some(uri.to_owned()),
    }
}
