//! Tests of the operation table, copy sources and which writes ask for an ACL.

use super::rules::action_of;
use super::*;
use crate::acl::AclPermission;

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

#[test]
fn a_read_let_in_by_one_versions_acl_is_refused_another_version() {
    use super::decide::ObjectAclCheck;
    let access = std::sync::Arc::new(BucketAccess {
        bucket: "b".into(),
        owner: ROOT_ID.into(),
        acl: None,
        policy: None,
        block: PublicAccessBlock::default(),
    });
    let record = |acl: Option<String>| {
        let mut headers = hoard_protocol::ObjectHeaders::default();
        headers.set_acl(acl);
        hoard_protocol::ObjectRecord {
            bucket: "b".into(),
            key: "k".into(),
            version_id: "v".into(),
            size: 0,
            etag: String::new(),
            last_modified_ms: 0,
            headers,
            checksums: Default::default(),
            segments: Vec::new(),
            encryption: Default::default(),
            inline: Some(Vec::new()),
        }
    };
    let public = crate::acl::Acl::canned("public-read", ROOT_ID, ROOT_ID).expect("canned");
    let check = ObjectAclCheck { caller: None, access, perm: AclPermission::Read };
    assert!(check.verify(&record(Some(public.to_json()))).is_ok(), "the public version is served");
    let refused = check.verify(&record(None)).expect_err("a private version replaced it meanwhile");
    assert_eq!(refused.code(), &s3s::S3ErrorCode::AccessDenied);
}
