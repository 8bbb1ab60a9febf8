//! The table of what each operation needs: of the caller's grant, in a bucket policy (its IAM action), and in
//! an ACL. What is not in it is root's alone.

use crate::acl::AclPermission;

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
pub(super) fn action_of(rule: &Rule, versioned: bool) -> &'static str {
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
