//! The S3 operations hoard serves, on top of s3s (routing, XML, SigV4, aws-chunked bodies).
//!
//! Invariants:
//! - Every request runs in its own session actor (see `session.rs`).
//! - Bad input is refused with the S3 error code and status a client expects, before anything is stored
//!   where it can be checked before the body is read (bucket, headers, part number), and before the
//!   commit where it can only be checked after (Content-MD5, `x-amz-checksum-*`).
//! - A metadata command is the last step of every write; an error before it leaves nothing visible.
//!
//! Parts: this file (the `S3` trait, each operation handed to its part, and what several parts share),
//! `bucket`, `object`, `multipart`, `listing`, `versions`, `read` (GET/HEAD and the byte streams),
//! `conditions`, `checksums`.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use hoard_actors::encryptor::BlockPlace;
use hoard_actors::encryptor::ChecksumSet;
use hoard_actors::error::ActorError;
use hoard_actors::faults;
use hoard_actors::get::read_ranges;
use hoard_actors::get::SegmentRange;
use hoard_actors::put::write_object;
use hoard_actors::put::write_segment;
use hoard_actors::put::SealKey;
use hoard_actors::put::Stored;
use hoard_actors::put::Written;
use hoard_actors::put::INLINE_SALT;
use hoard_actors::NodeContext;
use hoard_protocol::names;
use hoard_protocol::BucketEncryption;
use hoard_protocol::BucketRecord;
use hoard_protocol::Checksums;
use hoard_protocol::Encryption;
use hoard_protocol::MetaCommand;
use hoard_protocol::MetaResponse;
use hoard_protocol::ObjectHeaders;
use hoard_protocol::ObjectRecord;
use hoard_protocol::PartRecord;
use hoard_protocol::UploadRecord;
use hoard_protocol::VersionRecord;
use hoard_protocol::VersioningStatus;
use hoard_protocol::WriteCondition;
use hoard_storage::meta::ListQuery;
use hoard_storage::meta::UploadQuery;
use hoard_storage::meta::VersionQuery;
use hoard_storage::seal::opaque_etag;
use md5::Digest as _;
use ractor::ActorCell;
use s3s::dto::*;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Request;
use s3s::S3Response;
use s3s::S3Result;
use s3s::S3;

use crate::acl::AclRequest;
use crate::error::name_error;
use crate::error::OrS3;
use crate::session;
use crate::sse;
use crate::sse::sse_c_headers;
use crate::sse::GivenKey;
use crate::sse::Secure;
use crate::sse::Target;

mod bucket;
mod checksums;
mod conditions;
mod cors;
mod listing;
mod multipart;
mod object;
mod permissions;
mod read;
mod versions;

use checksums::*;
use conditions::*;
use listing::*;
use read::*;

/// The largest object a single PUT (or one part) may carry, as in S3.
pub const MAX_PUT_SIZE: i64 = 5 * 1024 * 1024 * 1024;
/// The smallest size of every part but the last, as in S3.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_NUMBER: i32 = 10_000;
/// Keys a listing returns at most per page, as in S3.
pub const MAX_KEYS: usize = 1000;
/// Keys one DeleteObjects request may name, as in S3.
pub const MAX_DELETE_KEYS: usize = 1000;
/// The region hoard reports and signs for when the client names none.
pub const REGION: &str = "us-east-1";

/// hoard's implementation of the S3 API.
#[derive(Clone)]
pub struct HoardS3 {
    pub ctx: NodeContext,
    /// The supervisor of session actors (`s3_sup`).
    pub sessions: ActorCell,
}

/// The ETag of a write (an object or a part): the MD5 of its plaintext, but for SSE-C, whose ETag must not
/// reveal it, a MAC of it under the object's data key.
fn write_etag(md5: &[u8; 16], sealed: Option<(&Encryption, &SealKey)>) -> String {
    match sealed {
        Some((Encryption::SseC { .. }, key)) => hex::encode(opaque_etag(&key.key, md5)),
        _ => hex::encode(md5),
    }
}

/// Whether the request came over TLS (or a trusted TLS-terminating proxy).
fn secure_of(extensions: &http::Extensions) -> Secure {
    extensions.get::<Secure>().copied().unwrap_or(Secure(false))
}

fn headers_from(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectHeaders {
    let expires = expires.and_then(|t| {
        let mut buf = Vec::new();
        t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
        String::from_utf8(buf).ok()
    });
    ObjectHeaders {
        content_type,
        content_encoding: object_content_encoding(content_encoding),
        content_disposition,
        content_language,
        cache_control,
        expires,
        // The name a version's ACL is kept under is no client's to set.
        user_metadata: metadata
            .map(|m| m.into_iter().filter(|(k, _)| k != hoard_protocol::ACL_METADATA).collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
    }
}

/// Headers with the ACL a write asked for (none: the source's, when copied, is dropped).
trait WithAcl {
    fn with_acl(self, acl: Option<String>) -> Self;
}

impl WithAcl for ObjectHeaders {
    fn with_acl(mut self, acl: Option<String>) -> Self {
        self.set_acl(acl);
        self
    }
}

/// `aws-chunked` says how the request body travelled (s3s has already decoded it), not how the object is
/// encoded: as S3 does, it is dropped from the stored Content-Encoding, and nothing is stored if it was alone.
fn object_content_encoding(v: Option<String>) -> Option<String> {
    let v = v?;
    if !v.split(',').any(|t| t.trim().eq_ignore_ascii_case("aws-chunked")) {
        return Some(v);
    }
    let kept: Vec<&str> =
        v.split(',').map(str::trim).filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked")).collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

async fn ensure_bucket(ctx: &NodeContext, bucket: &str) -> S3Result<BucketRecord> {
    let b = bucket.to_string();
    ctx.meta.read(move |r| r.bucket(&b)).await.or_s3()?.ok_or_else(no_such_bucket)
}

fn no_such_bucket() -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

/// How a new object in `bucket` is stored, from the request's SSE headers, the bucket's default and the
/// node's encrypt-all setting, and the bucket's versioning; all from one linearizable read.
async fn write_target<'a>(
    ctx: &NodeContext,
    bucket: &str,
    sse: Option<&ServerSideEncryption>,
    customer: Option<&'a GivenKey>,
) -> S3Result<(Target<'a>, Option<VersioningStatus>)> {
    let b = bucket.to_string();
    let (record, settings, versioning) =
        ctx.meta.read(move |r| Ok((r.bucket(&b)?, r.encryption_settings()?, r.versioning(&b)?))).await.or_s3()?;
    let record = record.ok_or_else(no_such_bucket)?;
    Ok((sse::target(sse, customer, record.encryption, &settings)?, versioning))
}

/// Proposes `cmd`. Every name in it is checked first, whatever route it came by (URL, XML body, header):
/// nothing the state machine would refuse is ever proposed.
async fn write(ctx: &NodeContext, cmd: MetaCommand) -> S3Result<MetaResponse> {
    cmd.check().map_err(name_error)?;
    match ctx.meta.write(cmd).await.or_s3()? {
        r @ (MetaResponse::Ok
        | MetaResponse::Replaced { .. }
        | MetaResponse::Credential(_)
        | MetaResponse::VersionRemoved { .. }) => Ok(r),
        refused => Err(crate::error::to_s3(ActorError::Refused(refused))),
    }
}

/// A write asking for object lock retention or a legal hold: no bucket of hoard has object lock, so it is
/// refused as S3 refuses it on a bucket without (rather than stored without the lock it asked for).
fn refuse_object_lock(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<()> {
    if mode.is_some() || until.is_some() || hold.is_some() {
        return Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"));
    }
    Ok(())
}

/// Object keys are 1 to 1024 bytes of UTF-8 without U+0000, which hoard's metadata uses as a separator.
fn check_key(key: &str) -> S3Result<()> {
    names::check_key(key).map_err(name_error)
}

/// The bucket, key and version id (if one is named) of a copy source, checked as the target's are.
fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket { bucket, key, version_id } => {
            names::check_bucket(bucket).map_err(name_error)?;
            check_key(key)?;
            if let Some(id) = version_id {
                versions::check_version_id(id)?;
            }
            Ok((bucket.to_string(), key.to_string(), version_id.as_ref().map(|v| v.to_string())))
        }
        _ => Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported")),
    }
}

/// A new version id for a write to a bucket with this versioning: a versioned id where versioning is on, a
/// null version's otherwise.
fn new_version_id(ctx: &NodeContext, versioning: Option<VersioningStatus>) -> String {
    hoard_protocol::new_version_id(ctx.env.random_u128(), versioning == Some(VersioningStatus::Enabled))
}

/// The `x-amz-version-id` of a write's response: only for a bucket that has (or had) versioning on.
fn version_header(record: &ObjectRecord, versioning: Option<VersioningStatus>) -> Option<String> {
    versioning.map(|_| record.public_version_id().to_string())
}

impl HoardS3 {
    async fn put_body(
        &self,
        part_number: u32,
        (body, content_length): (Option<StreamingBlob>, Option<i64>),
        expected: ExpectedChecksums,
        content_md5: Option<[u8; 16]>,
        trailers: Option<s3s::TrailingHeaders>,
        seal: Option<&SealKey>,
    ) -> S3Result<(Stored, Checksums)> {
        if content_length.is_some_and(|l| l > MAX_PUT_SIZE) {
            return Err(s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size of 5 GiB"));
        }
        let body =
            body.unwrap_or_else(|| StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>()));
        // Parts are never inline: their segments are what CompleteMultipartUpload stitches together.
        let stored = if part_number == 0 {
            write_object(&self.ctx, body, expected.want, seal).await.or_s3()?
        } else {
            Stored::Segment(write_segment(&self.ctx, part_number, body, expected.want, seal).await.or_s3()?)
        };
        if let Some(md5) = content_md5 {
            if md5 != stored.digests().md5 {
                return Err(s3_error!(BadDigest, "The Content-MD5 you specified did not match what we received."));
            }
        }
        if let Some(len) = content_length {
            if len >= 0 && len as u64 != stored.size() {
                return Err(s3_error!(
                    IncompleteBody,
                    "You did not provide the number of bytes specified by the Content-Length HTTP header."
                ));
            }
        }
        let given = with_trailer(expected.given, trailers.as_ref());
        verify_checksums(&given, &stored.digests().checksums)?;
        let checksums = stored_checksums(expected.want, &stored.digests().checksums);
        Ok((stored, checksums))
    }

    /// Hands shard files that failed during the write to repair, now that the segment is committed.
    fn after_commit(&self, written: Option<&Written>) {
        if let Some(w) = written.filter(|w| !w.failed_shards.is_empty()) {
            self.ctx.repair.report(w.segment.clone(), w.failed_shards.clone());
        }
    }
}

#[async_trait::async_trait]
impl S3 for HoardS3 {
    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        bucket::put_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        bucket::get_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        bucket::delete_bucket_encryption(self, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        bucket::get_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        bucket::put_object_lock_configuration(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        bucket::get_object_retention(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        bucket::put_object_retention(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        bucket::get_object_legal_hold(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        bucket::put_object_legal_hold(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let ctx = self.ctx.clone();
        let secure = secure_of(&req.extensions);
        session::run(&self.sessions, async move { object_attributes(&ctx, req.input, secure).await }).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versions::put_bucket_versioning(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versions::get_bucket_versioning(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        versions::list_object_versions(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_objects(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        listing::list_objects(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        listing::list_objects_v2(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_acl(&self, req: S3Request<PutBucketAclInput>) -> S3Result<S3Response<PutBucketAclOutput>> {
        permissions::put_bucket_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_acl(&self, req: S3Request<GetBucketAclInput>) -> S3Result<S3Response<GetBucketAclOutput>> {
        permissions::get_bucket_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object_acl(&self, req: S3Request<PutObjectAclInput>) -> S3Result<S3Response<PutObjectAclOutput>> {
        permissions::put_object_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object_acl(&self, req: S3Request<GetObjectAclInput>) -> S3Result<S3Response<GetObjectAclOutput>> {
        permissions::get_object_acl(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        permissions::put_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        permissions::get_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        permissions::delete_bucket_policy(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_cors(&self, req: S3Request<PutBucketCorsInput>) -> S3Result<S3Response<PutBucketCorsOutput>> {
        cors::put_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_cors(&self, req: S3Request<GetBucketCorsInput>) -> S3Result<S3Response<GetBucketCorsOutput>> {
        cors::get_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete_bucket_cors(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        permissions::get_bucket_policy_status(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        permissions::put_public_access_block(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        permissions::get_public_access_block(self, req).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        permissions::delete_public_access_block(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_stored_as_the_objects_content_encoding() {
        assert_eq!(object_content_encoding(Some("aws-chunked".into())), None);
        assert_eq!(object_content_encoding(Some("gzip,aws-chunked".into())), Some("gzip".into()));
        assert_eq!(object_content_encoding(Some("aws-chunked, gzip, br".into())), Some("gzip,br".into()));
        assert_eq!(object_content_encoding(Some("gzip, br".into())), Some("gzip, br".into()), "left as sent");
        assert_eq!(object_content_encoding(None), None);
    }
}
