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
use s3s::dto::AccessControlPolicy;
use s3s::dto::CopyObjectInput;
use s3s::dto::CreateBucketInput;
use s3s::dto::CreateMultipartUploadInput;
use s3s::dto::PutBucketAclInput;
use s3s::dto::PutObjectAclInput;
use s3s::dto::PutObjectInput;
use s3s::s3_error;
use s3s::S3Error;
use serde::Deserialize;
use serde::Serialize;

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

/// The stored form, versioned so it can change without breaking a running cluster.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredAcl {
    #[serde(rename = "1")]
    V1(Acl),
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

fn group_dto(uri: &str) -> dto::Grantee {
    dto::Grantee {
        display_name: None,
        email_address: None,
        id: None,
        type_: dto::Type::from_static(dto::Type::GROUP),
        uri: Some(uri.to_owned()),
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

#[cfg(test)]
mod tests {
    use s3s::S3ErrorCode;

    use super::*;

    const OWNER: &str = "HKOWNER0000000000000";
    const OTHER: &str = "HKOTHER0000000000000";
    const BUCKET_OWNER: &str = "HKBUCKET000000000000";

    fn known(id: &str) -> bool {
        [OWNER, OTHER, BUCKET_OWNER].contains(&id)
    }

    fn user(id: &str, p: AclPermission) -> AclGrant {
        grant(Grantee::User(id.to_owned()), p)
    }

    fn request(req: AclRequest<'_>) -> Result<Option<Acl>, S3Error> {
        Acl::from_request(&req, OWNER, BUCKET_OWNER, known)
    }

    fn code<T: std::fmt::Debug>(r: Result<T, S3Error>) -> S3ErrorCode {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.code().clone(),
        }
    }

    fn canned(name: &str) -> Vec<AclGrant> {
        match Acl::canned(name, OWNER, BUCKET_OWNER) {
            Ok(acl) => acl.grants,
            Err(e) => panic!("{name}: {e:?}"),
        }
    }

    fn grants(req: AclRequest<'_>) -> Vec<AclGrant> {
        match request(req) {
            Ok(Some(acl)) => acl.grants,
            other => panic!("expected an ACL, got {other:?}"),
        }
    }

    #[test]
    fn canned_acls_grant_what_aws_documents() {
        use AclPermission::*;
        let owner = user(OWNER, FullControl);
        assert_eq!(canned("private"), vec![owner.clone()]);
        assert_eq!(canned("public-read"), vec![owner.clone(), grant(Grantee::AllUsers, Read)]);
        assert_eq!(
            canned("public-read-write"),
            vec![owner.clone(), grant(Grantee::AllUsers, Read), grant(Grantee::AllUsers, Write)]
        );
        assert_eq!(canned("authenticated-read"), vec![owner.clone(), grant(Grantee::AuthenticatedUsers, Read)]);
        assert_eq!(canned("bucket-owner-read"), vec![owner.clone(), user(BUCKET_OWNER, Read)]);
        assert_eq!(canned("bucket-owner-full-control"), vec![owner, user(BUCKET_OWNER, FullControl)]);
    }

    #[test]
    fn bucket_owner_canned_acls_on_a_bucket_are_private() {
        for name in ["bucket-owner-read", "bucket-owner-full-control"] {
            assert_eq!(Acl::canned(name, OWNER, OWNER).ok(), Some(Acl::private(OWNER)));
        }
    }

    #[test]
    fn canned_acls_for_aws_principals_and_unknown_names_are_invalid_argument() {
        for name in ["aws-exec-read", "log-delivery-write", "Private", "", "public"] {
            assert_eq!(code(Acl::canned(name, OWNER, OWNER)), S3ErrorCode::InvalidArgument, "{name}");
        }
        let refusal = Acl::canned("aws-exec-read", OWNER, OWNER).err().and_then(|e| e.message().map(str::to_owned));
        assert!(refusal.is_some_and(|m| m.contains("aws-exec-read")));
    }

    #[test]
    fn a_request_naming_no_acl_gives_none() {
        assert_eq!(request(AclRequest::default()).ok(), Some(None));
    }

    #[test]
    fn a_canned_request_uses_the_bucket_owner() {
        let req = AclRequest { canned: Some("bucket-owner-read"), ..Default::default() };
        assert_eq!(grants(req), canned("bucket-owner-read"));
    }

    #[test]
    fn header_grants_parse_several_grantees_quoted_or_not() {
        use AclPermission::*;
        let req = AclRequest {
            grant_read: Some(&format!(r#"id="{OTHER}", uri="{ALL_USERS_URI}" ,ID={BUCKET_OWNER}"#)),
            grant_full_control: Some(&format!(r#"  id = "{OWNER}"  "#)),
            grant_write_acp: Some(&format!("uri={AUTHENTICATED_USERS_URI}")),
            ..Default::default()
        };
        assert_eq!(
            grants(req),
            vec![
                user(OTHER, Read),
                grant(Grantee::AllUsers, Read),
                user(BUCKET_OWNER, Read),
                grant(Grantee::AuthenticatedUsers, WriteAcp),
                user(OWNER, FullControl),
            ]
        );
    }

    #[test]
    fn header_grants_give_the_owner_nothing_implicit() {
        let req = AclRequest { grant_read: Some(&format!("id={OTHER}")), ..Default::default() };
        assert_eq!(grants(req), vec![user(OTHER, AclPermission::Read)]);
    }

    #[test]
    fn root_id_is_always_known() {
        let req = AclRequest { grant_write: Some(r#"id="hoard""#), ..Default::default() };
        assert_eq!(grants(req), vec![user(ROOT_ID, AclPermission::Write)]);
    }

    #[test]
    fn header_grant_to_an_unknown_id_is_invalid_argument() {
        let req =
            AclRequest { grant_read: Some(&format!("id={OTHER}, id=HKNOSUCHKEY000000000")), ..Default::default() };
        let err = request(req).err();
        assert_eq!(err.as_ref().map(|e| e.code().clone()), Some(S3ErrorCode::InvalidArgument));
        assert_eq!(err.as_ref().and_then(|e| e.message()), Some("Invalid id"));
    }

    #[test]
    fn header_grant_by_email_is_unresolvable() {
        let req = AclRequest { grant_read: Some(r#"emailAddress="someone@example.com""#), ..Default::default() };
        assert_eq!(code(request(req)), S3ErrorCode::UnresolvableGrantByEmailAddress);
    }

    #[test]
    fn header_grant_to_log_delivery_or_an_unknown_group_is_invalid_argument() {
        for uri in [LOG_DELIVERY_URI, "http://acs.amazonaws.com/groups/global/Nobody", "AllUsers"] {
            let value = format!("uri=\"{uri}\"");
            let req = AclRequest { grant_read: Some(&value), ..Default::default() };
            assert_eq!(code(request(req)), S3ErrorCode::InvalidArgument, "{uri}");
        }
    }

    #[test]
    fn malformed_header_grants_are_invalid_argument() {
        let bad = [
            "",
            " ",
            "id",
            "id=",
            r#"id="""#,
            &format!("id={OTHER},"),
            &format!(r#"id="{OTHER}"#),
            &format!(r#"id={OTHER}""#),
            &format!("name={OTHER}"),
            &format!(r#"id="{OTHER}", , id="{OWNER}""#),
        ];
        for value in bad {
            let req = AclRequest { grant_read_acp: Some(value), ..Default::default() };
            assert_eq!(code(request(req)), S3ErrorCode::InvalidArgument, "{value:?}");
        }
    }

    #[test]
    fn canned_acl_with_header_grants_is_invalid_request() {
        let req =
            AclRequest { canned: Some("private"), grant_read: Some(&format!("id={OTHER}")), ..Default::default() };
        let err = request(req).err();
        assert_eq!(err.as_ref().map(|e| e.code().clone()), Some(S3ErrorCode::InvalidRequest));
        assert_eq!(
            err.as_ref().and_then(|e| e.message()),
            Some("Specifying both Canned ACLs and Header Grants is not allowed")
        );
    }

    #[test]
    fn a_body_with_a_canned_acl_or_header_grants_is_unexpected_content() {
        let body = Acl::private(OWNER).to_dto();
        let with_canned = AclRequest { canned: Some("private"), body: Some(&body), ..Default::default() };
        assert_eq!(code(request(with_canned)), S3ErrorCode::UnexpectedContent);
        let with_grant =
            AclRequest { grant_write: Some(&format!("id={OTHER}")), body: Some(&body), ..Default::default() };
        assert_eq!(code(request(with_grant)), S3ErrorCode::UnexpectedContent);
    }

    #[test]
    fn more_than_max_grants_is_malformed_acl() {
        let ids = vec![format!("id={OTHER}"); MAX_GRANTS / 2];
        let half = ids.join(",");
        let full = AclRequest { grant_read: Some(&half), grant_write: Some(&half), ..Default::default() };
        assert_eq!(grants(full).len(), MAX_GRANTS);
        let over = AclRequest {
            grant_read: Some(&half),
            grant_write: Some(&half),
            grant_read_acp: Some(&ids[0]),
            ..Default::default()
        };
        assert_eq!(code(request(over)), S3ErrorCode::MalformedACLError);

        let mut acl = Acl::private(OWNER);
        acl.grants = vec![user(OTHER, AclPermission::Read); MAX_GRANTS + 1];
        let body = acl.to_dto();
        assert_eq!(
            code(request(AclRequest { body: Some(&body), ..Default::default() })),
            S3ErrorCode::MalformedACLError
        );
    }

    #[test]
    fn a_body_round_trips_through_the_dto() {
        let acl = Acl {
            owner: OWNER.to_owned(),
            grants: vec![
                user(OWNER, AclPermission::FullControl),
                user(OTHER, AclPermission::ReadAcp),
                grant(Grantee::AllUsers, AclPermission::Read),
                grant(Grantee::AuthenticatedUsers, AclPermission::Write),
                user(ROOT_ID, AclPermission::WriteAcp),
            ],
        };
        let body = acl.to_dto();
        assert_eq!(request(AclRequest { body: Some(&body), ..Default::default() }).ok(), Some(Some(acl)));
    }

    #[test]
    fn the_dto_is_written_as_aws_writes_it() {
        let mut acl = Acl::canned("public-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
        acl.grants.push(grant(Grantee::AuthenticatedUsers, AclPermission::ReadAcp));
        let dto = acl.to_dto();
        let owner = dto.owner.unwrap_or_default();
        assert_eq!((owner.id.as_deref(), owner.display_name.as_deref()), (Some(OWNER), Some(OWNER)));
        let grants = dto.grants.unwrap_or_default();
        let shown: Vec<_> = grants
            .iter()
            .map(|g| {
                let grantee = g.grantee.as_ref();
                (
                    grantee.map(|e| e.type_.as_str().to_owned()),
                    grantee.and_then(|e| e.id.clone()),
                    grantee.and_then(|e| e.uri.clone()),
                    g.permission.as_ref().map(|p| p.as_str().to_owned()),
                )
            })
            .collect();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            shown,
            vec![
                (s("CanonicalUser"), s(OWNER), None, s("FULL_CONTROL")),
                (s("Group"), None, s("http://acs.amazonaws.com/groups/global/AllUsers"), s("READ")),
                (s("Group"), None, s("http://acs.amazonaws.com/groups/global/AuthenticatedUsers"), s("READ_ACP")),
            ]
        );
    }

    #[test]
    fn a_body_owner_other_than_the_current_owner_is_access_denied() {
        let mut body = Acl::private(OWNER).to_dto();
        body.owner = Some(dto::Owner { display_name: None, id: Some(OTHER.to_owned()) });
        assert_eq!(code(request(AclRequest { body: Some(&body), ..Default::default() })), S3ErrorCode::AccessDenied);
        body.owner = None;
        assert!(request(AclRequest { body: Some(&body), ..Default::default() }).is_ok());
    }

    #[test]
    fn body_grantees_are_checked_like_header_grantees() {
        let with = |grantee: dto::Grantee, permission: &str| AccessControlPolicy {
            grants: Some(vec![dto::Grant {
                grantee: Some(grantee),
                permission: Some(dto::Permission::from(permission.to_owned())),
            }]),
            owner: None,
        };
        let blank = |t: &'static str| dto::Grantee {
            display_name: None,
            email_address: None,
            id: None,
            type_: dto::Type::from_static(t),
            uri: None,
        };
        let id = |id: &str| dto::Grantee { id: Some(id.to_owned()), ..blank(dto::Type::CANONICAL_USER) };
        let uri = |uri: &str| dto::Grantee { uri: Some(uri.to_owned()), ..blank(dto::Type::GROUP) };
        let email = dto::Grantee {
            email_address: Some("a@example.com".to_owned()),
            ..blank(dto::Type::AMAZON_CUSTOMER_BY_EMAIL)
        };
        let cases = [
            (with(id("HKNOSUCHKEY000000000"), "READ"), S3ErrorCode::InvalidArgument),
            (with(uri(LOG_DELIVERY_URI), "WRITE"), S3ErrorCode::InvalidArgument),
            (with(email, "READ"), S3ErrorCode::UnresolvableGrantByEmailAddress),
            (with(id(OTHER), "read"), S3ErrorCode::MalformedACLError),
            (with(id(OTHER), "DELETE"), S3ErrorCode::MalformedACLError),
            (with(blank(dto::Type::CANONICAL_USER), "READ"), S3ErrorCode::MalformedACLError),
            (with(blank(dto::Type::GROUP), "READ"), S3ErrorCode::MalformedACLError),
        ];
        for (body, expected) in cases {
            assert_eq!(code(request(AclRequest { body: Some(&body), ..Default::default() })), expected, "{body:?}");
        }
        let no_permission = AccessControlPolicy {
            grants: Some(vec![dto::Grant { grantee: Some(id(OTHER)), permission: None }]),
            owner: None,
        };
        assert_eq!(
            code(request(AclRequest { body: Some(&no_permission), ..Default::default() })),
            S3ErrorCode::MalformedACLError
        );
        let odd_type = with(dto::Grantee { id: Some(OTHER.to_owned()), ..blank("Robot") }, "READ");
        assert_eq!(
            code(request(AclRequest { body: Some(&odd_type), ..Default::default() })),
            S3ErrorCode::MalformedACLError
        );
    }

    #[test]
    fn an_empty_body_removes_every_grant() {
        let body = AccessControlPolicy::default();
        let acl = request(AclRequest { body: Some(&body), ..Default::default() }).ok().flatten();
        assert_eq!(acl, Some(Acl { owner: OWNER.to_owned(), grants: vec![] }));
    }

    #[test]
    fn acl_requests_come_from_s3s_inputs() {
        let input = PutBucketAclInput {
            acl: Some(dto::BucketCannedACL::from_static(dto::BucketCannedACL::PUBLIC_READ)),
            grant_write: Some("id=x".to_owned()),
            ..Default::default()
        };
        let req = AclRequest::from(&input);
        assert_eq!((req.canned, req.grant_write, req.body.is_none()), (Some("public-read"), Some("id=x"), true));
        let input = PutObjectInput { grant_full_control: Some("id=y".to_owned()), ..Default::default() };
        let req = AclRequest::from(&input);
        assert_eq!((req.canned, req.grant_full_control), (None, Some("id=y")));
        let input =
            PutObjectAclInput { access_control_policy: Some(Acl::private(OWNER).to_dto()), ..Default::default() };
        assert_eq!(request(AclRequest::from(&input)).ok(), Some(Some(Acl::private(OWNER))));
    }

    #[test]
    fn the_stored_form_is_versioned_json_that_round_trips() {
        let mut acl = Acl::canned("public-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
        acl.grants.push(grant(Grantee::AuthenticatedUsers, AclPermission::WriteAcp));
        let json = acl.to_json();
        // Pinned: a change here breaks ACLs already stored in a running cluster.
        assert_eq!(
            json,
            format!(
                r#"{{"v":"1","owner":"{OWNER}","grants":[{{"grantee":{{"User":"{OWNER}"}},"permission":"FULL_CONTROL"}},{{"grantee":"AllUsers","permission":"READ"}},{{"grantee":"AuthenticatedUsers","permission":"WRITE_ACP"}}]}}"#
            )
        );
        assert_eq!(Acl::from_json(&json).ok(), Some(acl));
    }

    #[test]
    fn a_stored_form_of_unknown_version_or_shape_is_an_internal_error() {
        for bad in [r#"{"v":"2","owner":"hoard","grants":[]}"#, r#"{"owner":"hoard","grants":[]}"#, "", "[]"] {
            assert_eq!(code(Acl::from_json(bad)), S3ErrorCode::InternalError, "{bad}");
        }
    }

    #[test]
    fn allows_follows_grants_and_full_control_implies_all() {
        use AclPermission::*;
        let acl = Acl {
            owner: OWNER.to_owned(),
            grants: vec![user(OTHER, Read), user(BUCKET_OWNER, FullControl), grant(Grantee::AuthenticatedUsers, Write)],
        };
        for perm in AclPermission::ALL {
            assert!(acl.allows(Some(BUCKET_OWNER), perm, false), "{perm:?}");
        }
        assert!(acl.allows(Some(OTHER), Read, false));
        assert!(acl.allows(Some(OTHER), Write, false), "OTHER is an authenticated user");
        assert!(!acl.allows(Some(OTHER), ReadAcp, false));
        assert!(!acl.allows(Some(OTHER), FullControl, false));
        assert!(acl.allows(Some("HKSTRANGER0000000000"), Write, false));
        assert!(!acl.allows(Some("HKSTRANGER0000000000"), Read, false));
        for perm in AclPermission::ALL {
            assert!(!acl.allows(None, perm, false), "anonymous is no authenticated user: {perm:?}");
        }
    }

    #[test]
    fn the_owner_always_holds_read_acp_and_write_acp() {
        use AclPermission::*;
        let acl = Acl { owner: OWNER.to_owned(), grants: vec![] };
        assert!(acl.allows(Some(OWNER), ReadAcp, true));
        assert!(acl.allows(Some(OWNER), WriteAcp, true));
        assert!(!acl.allows(Some(OWNER), Read, false));
        assert!(!acl.allows(Some(OWNER), Write, false));
        assert!(!acl.allows(Some(OTHER), ReadAcp, false));
    }

    #[test]
    fn all_users_match_anonymous_and_ignore_public_discards_group_grants() {
        use AclPermission::*;
        let acl = Acl::canned("public-read-write", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(acl.allows(None, Read, false));
        assert!(acl.allows(None, Write, false));
        assert!(acl.allows(Some(OTHER), Read, false));
        assert!(!acl.allows(None, Read, true));
        assert!(!acl.allows(Some(OTHER), Read, true));
        assert!(acl.allows(Some(OWNER), Read, true), "the owner's own grant is not public");
        let authenticated = Acl::canned("authenticated-read", OWNER, OWNER).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(authenticated.allows(Some(OTHER), Read, false));
        assert!(!authenticated.allows(Some(OTHER), Read, true));
    }

    #[test]
    fn is_public_means_a_grant_to_a_group() {
        let public = |name: &str| Acl::canned(name, OWNER, BUCKET_OWNER).map(|a| a.is_public()).ok();
        assert_eq!(public("private"), Some(false));
        assert_eq!(public("bucket-owner-full-control"), Some(false));
        assert_eq!(public("public-read"), Some(true));
        assert_eq!(public("public-read-write"), Some(true));
        assert_eq!(public("authenticated-read"), Some(true));
    }

    #[test]
    fn permissions_parse_their_s3_names_only() {
        for p in AclPermission::ALL {
            assert_eq!(AclPermission::parse(p.as_str()), Some(p));
        }
        assert_eq!(AclPermission::parse("full_control"), None);
    }
}
