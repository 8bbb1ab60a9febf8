//! Bucket policies: the subset of the AWS policy language hoard evaluates, parsed from the client's JSON at
//! PutBucketPolicy (with [`Policy::parse`]) and again from the stored text at every request
//! (with [`Policy::parse_stored`]), then [`Policy::evaluate`]d against the request.
//!
//! Invariants:
//! - Nothing is silently ignored: a policy that uses an element, action, principal type, condition operator or
//!   condition key hoard does not evaluate — or a duplicated JSON key, or a policy variable (`${…}`), which
//!   AWS would substitute and hoard would not (whatever the Version) — is refused with `MalformedPolicy` naming
//!   it. So what hoard enforces is what the policy says.
//! - An explicit Deny beats any Allow; a request no statement applies to gets [`Decision::Default`].
//! - Wildcard matching costs at most O(pattern × text) (no backtracking blow-up): a hostile policy or key
//!   cannot hang a request. Policies are at most [`MAX_POLICY_BYTES`] long, at most [`MAX_STATEMENTS`] statements.
//! - An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is compared as the IPv4 address it is, so
//!   an IPv4 condition cannot be sidestepped by the address family.
//!
//! Choices where AWS leaves room:
//! - A condition on a key the request has no value for (`s3:prefix` outside a listing, `aws:SourceIp` when
//!   the address is unknown) is false for `StringEquals`, `StringLike` and `IpAddress`, and true for the
//!   negated `StringNotEquals`, `StringNotLike` and `NotIpAddress` (as IAM does). Values of one condition are
//!   ORed (a negated operator matches when no value does); operators and keys are ANDed.
//! - Each action of a statement must apply to one of its resources (object actions to `…:::bucket/key`
//!   patterns, bucket actions to `…:::bucket`), else "Action does not apply to any resource(s) in statement".
//!   `s3:ListAllMyBuckets` is service-level: it applies to no resource here, and a bucket policy never decides
//!   it (`evaluate` answers `Default`), even through `s3:*`.
//! - Principals are `*` or access key ids, under `AWS` or `CanonicalUser` (hoard's canonical user id is the
//!   key id); an IAM ARN is not a key id, so `parse` refuses it. A resource may use wildcards in its bucket
//!   part as long as it can name this bucket or its objects (`arn:aws:s3:::*` can; `arn:aws:s3:::other*` cannot).
//! - A policy is public ([`Policy::is_public`]) when an Allow statement grants to `*` without an `IpAddress`
//!   condition on `aws:SourceIp` whose ranges are all no wider than /8 (IPv4) or /32 (IPv6).

use std::net::IpAddr;

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use eval::Net;

/// The longest policy accepted (AWS's limit for bucket policies).
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// The most statements a policy may hold; with [`MAX_POLICY_BYTES`] it bounds the work of every evaluation.
pub const MAX_STATEMENTS: usize = 100;

/// All IAM action names hoard evaluates, as AWS spells them: what action patterns are checked against. An
/// operation hoard leaves to root alone (object lock's retention and legal hold) has no action here, so a
/// policy naming one is refused rather than granting nothing in silence.
#[rustfmt::skip]
pub const ACTIONS: &[&str] = &[
    // Object actions: they apply to `arn:aws:s3:::bucket/key` resources.
    "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    "s3:GetObjectAcl", "s3:PutObjectAcl", "s3:GetObjectVersionAcl", "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging", "s3:PutObjectTagging", "s3:DeleteObjectTagging",
    "s3:GetObjectVersionTagging", "s3:PutObjectVersionTagging", "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAttributes", "s3:GetObjectVersionAttributes",
    // Bucket actions: they apply to `arn:aws:s3:::bucket`.
    "s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation",
    "s3:GetBucketVersioning", "s3:PutBucketVersioning", "s3:GetBucketAcl", "s3:PutBucketAcl",
    "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "s3:GetBucketCORS", "s3:PutBucketCORS",
    "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration", "s3:GetBucketTagging", "s3:PutBucketTagging",
    "s3:GetBucketObjectLockConfiguration", "s3:DeleteBucket", "s3:CreateBucket",
    // Service actions: no bucket policy decides them.
    "s3:ListAllMyBuckets",
];

/// Actions on no bucket or object: never decided by a bucket policy.
const SERVICE_ACTIONS: [&str; 1] = ["s3:ListAllMyBuckets"];
const ARN_PREFIX: &str = "arn:aws:s3:::";

/// The resource of a bucket operation.
pub fn bucket_arn(bucket: &str) -> String {
    format!("{ARN_PREFIX}{bucket}")
}

/// The resource of an object operation.
pub fn object_arn(bucket: &str, key: &str) -> String {
    format!("{ARN_PREFIX}{bucket}/{key}")
}

/// A parsed, validated bucket policy.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What a request looks like to a policy.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The caller's access key id; None for an anonymous request.
    pub principal: Option<&'a str>,
    /// IAM action name, e.g. "s3:GetObject", "s3:ListBucket", "s3:PutObject".
    pub action: &'a str,
    /// "arn:aws:s3:::bucket" for bucket operations, "arn:aws:s3:::bucket/key" for object operations.
    pub resource: &'a str,
    /// Request arrived over TLS.
    pub secure: bool,
    /// The client's IP address, when known.
    pub source_ip: Option<IpAddr>,
    /// The `prefix` query parameter of a listing (for `s3:prefix`), when the request is a listing; a listing
    /// without one passes `Some("")`, so that AWS's idiom `"s3:prefix": ["", "home/"]` allows the root listing.
    pub prefix: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// No statement applies.
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
enum Principals {
    Everyone,
    /// Access key ids (or canonical user ids, which in hoard are the same).
    Keys(Vec<String>),
}

#[derive(Debug, Clone)]
struct Statement {
    effect: Effect,
    principals: Principals,
    /// Lowercased: actions match case-insensitively.
    actions: Vec<Vec<char>>,
    resources: Vec<Vec<char>>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
enum Condition {
    /// `Bool` on `aws:SecureTransport`.
    SecureTransport(Vec<bool>),
    /// `IpAddress` / `NotIpAddress` on `aws:SourceIp`.
    SourceIp { negated: bool, nets: Vec<Net> },
    /// `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike` on `s3:prefix`.
    Prefix { negated: bool, like: bool, values: Vec<Vec<char>> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bucket,
    Object,
    Service,
}
