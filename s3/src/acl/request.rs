//! The ACL a request asks for: the ACL fields of s3s's inputs ([`AclRequest`]), and their canned ACL,
//! `x-amz-grant-*` headers or `AccessControlPolicy` body checked and turned into an [`Acl`] ([`Acl::from_request`]).

use s3s::dto;
use s3s::dto::AccessControlPolicy;
use s3s::dto::CopyObjectInput;
use s3s::dto::CreateBucketInput;
use s3s::dto::CreateMultipartUploadInput;
use s3s::dto::PutBucketAclInput;
use s3s::dto::PutObjectAclInput;
use s3s::dto::PutObjectInput;
use s3s::s3_error;
use s3s::S3Error;

use super::grant;
use super::Acl;
use super::AclPermission;
use super::Grantee;
use super::ALL_USERS_URI;
use super::AUTHENTICATED_USERS_URI;
use super::LOG_DELIVERY_URI;
use super::MAX_GRANTS;
use super::ROOT_ID;

/// The ACL fields of a request, as s3s parsed them. Build it with `AclRequest::from(&input)` from any s3s
/// input that carries them (PutBucketAcl, PutObjectAcl, PutObject, CreateBucket, CopyObject,
/// CreateMultipartUpload), or field by field (e.g. from a POST form's `acl` field).
#[derive(Debug, Clone, Copy, Default)]
pub struct AclRequest<'a> {
    /// `x-amz-acl`.
    pub canned: Option<&'a str>,
    /// `x-amz-grant-read`, and so on: comma-separated grantee lists.
    pub grant_read: Option<&'a str>,
    pub grant_write: Option<&'a str>,
    pub grant_read_acp: Option<&'a str>,
    pub grant_write_acp: Option<&'a str>,
    pub grant_full_control: Option<&'a str>,
    /// The `AccessControlPolicy` body of PutBucketAcl / PutObjectAcl.
    pub body: Option<&'a AccessControlPolicy>,
}

impl<'a> AclRequest<'a> {
    fn header_grants(&self) -> [(&'static str, Option<&'a str>, AclPermission); 5] {
        [
            ("x-amz-grant-read", self.grant_read, AclPermission::Read),
            ("x-amz-grant-write", self.grant_write, AclPermission::Write),
            ("x-amz-grant-read-acp", self.grant_read_acp, AclPermission::ReadAcp),
            ("x-amz-grant-write-acp", self.grant_write_acp, AclPermission::WriteAcp),
            ("x-amz-grant-full-control", self.grant_full_control, AclPermission::FullControl),
        ]
    }
}

/// `From<&Input>` for an s3s input with ACL fields. Object writes have no `x-amz-grant-write` (S3 has none for
/// objects); only PutBucketAcl and PutObjectAcl have a body.
macro_rules! acl_request_from {
    ($input:ty, grant_write: $write:ident, body: $body:ident) => {
        impl<'a> From<&'a $input> for AclRequest<'a> {
            fn from(i: &'a $input) -> Self {
                AclRequest {
                    canned: i.acl.as_ref().map(|a| a.as_str()),
                    grant_read: i.grant_read.as_deref(),
                    grant_write: acl_request_from!(@grant_write i $write),
                    grant_read_acp: i.grant_read_acp.as_deref(),
                    grant_write_acp: i.grant_write_acp.as_deref(),
                    grant_full_control: i.grant_full_control.as_deref(),
                    body: acl_request_from!(@body i $body),
                }
            }
        }
    };
    (@grant_write $i:ident yes) => { $i.grant_write.as_deref() };
    (@grant_write $i:ident no) => { None };
    (@body $i:ident yes) => { $i.access_control_policy.as_ref() };
    (@body $i:ident no) => { None };
}

acl_request_from!(PutBucketAclInput, grant_write: yes, body: yes);
acl_request_from!(PutObjectAclInput, grant_write: yes, body: yes);
acl_request_from!(CreateBucketInput, grant_write: yes, body: no);
acl_request_from!(PutObjectInput, grant_write: no, body: no);
acl_request_from!(CopyObjectInput, grant_write: no, body: no);
acl_request_from!(CreateMultipartUploadInput, grant_write: no, body: no);

impl Acl {
    /// The ACL a request asks for: its canned ACL, its header grants, or its body; `Ok(None)` when it names
    /// none (the caller decides what that means: keep the current ACL, `private` for a new object, or
    /// MissingSecurityHeader for PutBucketAcl). `owner` is the owner of the bucket or object the ACL is for,
    /// `bucket_owner` the owner of its bucket (the same for a bucket). `known(id)` says whether an id names an
    /// existing key; [`ROOT_ID`] is always known.
    ///
    /// Refusals, as AWS: a canned ACL with header grants is InvalidRequest, a body with either is
    /// UnexpectedContent; an unknown id or group is InvalidArgument, a grant by e-mail
    /// UnresolvableGrantByEmailAddress; a body whose Owner is not the current owner AccessDenied; a malformed
    /// body or more than [`MAX_GRANTS`] grants MalformedACLError.
    pub fn from_request(
        req: &AclRequest<'_>,
        owner: &str,
        bucket_owner: &str,
        known: impl Fn(&str) -> bool,
    ) -> Result<Option<Acl>, S3Error> {
        let known = |id: &str| id == ROOT_ID || known(id);
        let headers = req.header_grants();
        let has_grants = headers.iter().any(|(_, value, _)| value.is_some());
        if req.body.is_some() && (req.canned.is_some() || has_grants) {
            return Err(s3_error!(UnexpectedContent, "This request does not support content"));
        }
        if req.canned.is_some() && has_grants {
            return Err(s3_error!(InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"));
        }
        if let Some(name) = req.canned {
            return Acl::canned(name, owner, bucket_owner).map(Some);
        }
        if let Some(body) = req.body {
            return from_body(body, owner, &known).map(Some);
        }
        if !has_grants {
            return Ok(None);
        }
        let mut grants = Vec::new();
        for (header, value, permission) in headers {
            let Some(value) = value else { continue };
            for item in split_grantees(header, value)? {
                if grants.len() == MAX_GRANTS {
                    return Err(too_many_grants());
                }
                grants.push(grant(header_grantee(header, item, &known)?, permission));
            }
        }
        Ok(Some(Acl { owner: owner.to_owned(), grants }))
    }
}

fn too_many_grants() -> S3Error {
    s3_error!(MalformedACLError, "An ACL may hold at most {MAX_GRANTS} grants.")
}

fn malformed_acl() -> S3Error {
    s3_error!(
        MalformedACLError,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn invalid_id() -> S3Error {
    s3_error!(InvalidArgument, "Invalid id")
}

fn by_email() -> S3Error {
    s3_error!(UnresolvableGrantByEmailAddress, "The e-mail address you provided does not match any account on record.")
}

fn group(uri: &str) -> Result<Grantee, S3Error> {
    match uri.trim() {
        ALL_USERS_URI => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
        LOG_DELIVERY_URI => {
            Err(s3_error!(InvalidArgument, "The LogDelivery group is not supported: hoard delivers no access logs."))
        }
        _ => Err(s3_error!(InvalidArgument, "Invalid group uri")),
    }
}

fn user(id: &str, known: &impl Fn(&str) -> bool) -> Result<Grantee, S3Error> {
    if known(id) {
        Ok(Grantee::User(id.to_owned()))
    } else {
        Err(invalid_id())
    }
}

/// Splits a grant header into its `key=value` items at the commas outside double quotes.
fn split_grantees<'v>(header: &str, value: &'v str) -> Result<Vec<&'v str>, S3Error> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(s3_error!(InvalidArgument, "{header} has an unterminated quote."));
    }
    items.push(&value[start..]);
    if items.iter().any(|item| item.trim().is_empty()) {
        return Err(s3_error!(InvalidArgument, "{header} has an empty grantee."));
    }
    Ok(items)
}

/// One header grantee: `id="..."`, `uri="..."` or `emailAddress="..."`, the quotes optional.
fn header_grantee(header: &str, item: &str, known: &impl Fn(&str) -> bool) -> Result<Grantee, S3Error> {
    let malformed = || s3_error!(InvalidArgument, "{header} holds a grantee that is not id=, uri= or emailAddress=.");
    let (key, value) = item.split_once('=').ok_or_else(malformed)?;
    let value = value.trim();
    let value = match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or_else(malformed)?,
        None => value,
    };
    if value.is_empty() || value.contains('"') {
        return Err(malformed());
    }
    match key.trim().to_ascii_lowercase().as_str() {
        "id" => user(value, known),
        "uri" => group(value),
        "emailaddress" => Err(by_email()),
        _ => Err(malformed()),
    }
}

fn from_body(body: &AccessControlPolicy, owner: &str, known: &impl Fn(&str) -> bool) -> Result<Acl, S3Error> {
    if let Some(id) = body.owner.as_ref().and_then(|o| o.id.as_deref()) {
        if id != owner {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
    }
    let given = body.grants.as_deref().unwrap_or_default();
    if given.len() > MAX_GRANTS {
        return Err(too_many_grants());
    }
    let mut grants = Vec::with_capacity(given.len());
    for g in given {
        let (Some(grantee), Some(permission)) = (&g.grantee, &g.permission) else {
            return Err(malformed_acl());
        };
        let permission = AclPermission::parse(permission.as_str()).ok_or_else(malformed_acl)?;
        let grantee = match grantee.type_.as_str() {
            dto::Type::CANONICAL_USER => user(grantee.id.as_deref().ok_or_else(malformed_acl)?, known)?,
            dto::Type::GROUP => group(grantee.uri.as_deref().ok_or_else(malformed_acl)?)?,
            dto::Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(by_email()),
            _ => return Err(malformed_acl()),
        };
        grants.push(grant(grantee, permission));
    }
    Ok(Acl { owner: owner.to_owned(), grants })
}
