//! The S3 operations hoard serves, on top of s3s (routing, XML, SigV4, aws-chunked bodies).
//!
//! Invariants:
//! - Every request runs in its own session actor (see `session.rs`).
//! - Bad input is refused with the S3 error code and status a client expects, before anything is stored
//!   where it can be checked before the body is read (bucket, headers, part number), and before the
//!   commit where it can only be checked after (Content-MD5, `x-amz-checksum-*`).
//! - A metadata command is the last step of every write; an error before it leaves nothing visible.
//!
//! Parts: this file (what several parts share), `dispatch` (the `S3` trait, each operation handed to its part),
//! `bucket`, `object`, `multipart`, `listing`, `versions`, `read` (GET/HEAD and the byte streams),
//! `permissions`, `cors`, `conditions`, `checksums`.

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
mod dispatch;
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
