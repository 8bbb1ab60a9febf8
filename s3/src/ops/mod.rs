//! The S3 operations hoard serves, on top of s3s (routing, XML, SigV4, aws-chunked bodies).
//!
//! Invariants:
//! - Every request runs in its own session actor (see `session.rs`).
//! - Bad input is refused with the S3 error code and status a client expects, before anything is stored
//!   where it can be checked before the body is read (bucket, headers, part number), and before the
//!   commit where it can only be checked after (Content-MD5, `x-amz-checksum-*`).
//! - A metadata command is the last step of every write; an error before it leaves nothing visible.
//!
//! Parts: this file (the operations themselves, and what several of them share), `conditions`,
//! `checksums`, `read` (GET/HEAD and the byte streams), `listing`.

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
use hoard_protocol::WriteCondition;
use hoard_storage::meta::ListQuery;
use hoard_storage::meta::UploadQuery;
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

use crate::error::name_error;
use crate::error::OrS3;
use crate::session;
use crate::sse;
use crate::sse::sse_c_headers;
use crate::sse::GivenKey;
use crate::sse::Secure;
use crate::sse::Target;

mod checksums;
mod conditions;
mod listing;
mod read;

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
        user_metadata: metadata.map(|m| m.into_iter().collect::<BTreeMap<_, _>>()).unwrap_or_default(),
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

fn parse_expires(s: &Option<String>) -> Option<Timestamp> {
    s.as_deref().and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

fn metadata_of(h: &ObjectHeaders) -> Option<Metadata> {
    if h.user_metadata.is_empty() {
        None
    } else {
        Some(h.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

async fn ensure_bucket(ctx: &NodeContext, bucket: &str) -> S3Result<BucketRecord> {
    let b = bucket.to_string();
    ctx.meta.read(move |r| r.bucket(&b)).await.or_s3()?.ok_or_else(no_such_bucket)
}

fn no_such_bucket() -> S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

/// How a new object in `bucket` is stored, from the request's SSE headers, the bucket's default and the
/// node's encrypt-all setting; the bucket and the setting come from one linearizable read.
async fn write_target<'a>(
    ctx: &NodeContext,
    bucket: &str,
    sse: Option<&ServerSideEncryption>,
    customer: Option<&'a GivenKey>,
) -> S3Result<Target<'a>> {
    let b = bucket.to_string();
    let (record, settings) = ctx.meta.read(move |r| Ok((r.bucket(&b)?, r.encryption_settings()?))).await.or_s3()?;
    let record = record.ok_or_else(no_such_bucket)?;
    sse::target(sse, customer, record.encryption, &settings)
}

async fn get_record(ctx: &NodeContext, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
    let (b, k) = (bucket.to_string(), key.to_string());
    match ctx.meta.read(move |r| r.object(&b, &k)).await.or_s3()? {
        Some(rec) => Ok(rec),
        None => {
            ensure_bucket(ctx, bucket).await?;
            Err(s3_error!(NoSuchKey, "The specified key does not exist."))
        }
    }
}

async fn get_upload(ctx: &NodeContext, bucket: &str, key: &str, upload_id: &str) -> S3Result<UploadRecord> {
    check_key(key)?;
    names::check_upload_id(upload_id).map_err(name_error)?;
    let (b, k, u) = (bucket.to_string(), key.to_string(), upload_id.to_string());
    match ctx.meta.read(move |r| r.upload(&b, &k, &u)).await.or_s3()? {
        Some(u) => Ok(u),
        None => {
            ensure_bucket(ctx, bucket).await?;
            Err(s3_error!(NoSuchUpload, "The specified multipart upload does not exist"))
        }
    }
}

/// Proposes `cmd`. Every name in it is checked first, whatever route it came by (URL, XML body, header):
/// nothing the state machine would refuse is ever proposed.
async fn write(ctx: &NodeContext, cmd: MetaCommand) -> S3Result<MetaResponse> {
    cmd.check().map_err(name_error)?;
    match ctx.meta.write(cmd).await.or_s3()? {
        r @ (MetaResponse::Ok | MetaResponse::Replaced { .. } | MetaResponse::Credential(_)) => Ok(r),
        refused => Err(crate::error::to_s3(ActorError::Refused(refused))),
    }
}

/// Object keys are 1 to 1024 bytes of UTF-8 without U+0000, which hoard's metadata uses as a separator.
fn check_key(key: &str) -> S3Result<()> {
    names::check_key(key).map_err(name_error)
}

/// The bucket and key of a copy source, checked as the target's are.
fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => {
            names::check_bucket(bucket).map_err(name_error)?;
            check_key(key)?;
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(NotImplemented, "Only bucket/key copy sources are supported")),
    }
}

fn new_version_id(ctx: &NodeContext) -> String {
    format!("{:032x}", ctx.env.random_u128())
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
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let name = req.input.bucket;
            let cmd = MetaCommand::CreateBucket(BucketRecord {
                name: name.clone(),
                created_ms: ctx.env.now_ms(),
                encryption: None,
            });
            write(&ctx, cmd).await?;
            Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            // As S3: a bucket holding only unfinished multipart uploads is deleted, and the uploads with it.
            let cmd = MetaCommand::DeleteBucketAndUploads { name: req.input.bucket, now_ms: ctx.env.now_ms() };
            write(&ctx, cmd).await?;
            Ok(S3Response::new(DeleteBucketOutput {}))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            ensure_bucket(&ctx, &req.input.bucket).await?;
            Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(REGION.into()), ..Default::default() }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            ensure_bucket(&ctx, &req.input.bucket).await?;
            // us-east-1 is reported as an empty location constraint, as S3 does.
            Ok(S3Response::new(GetBucketLocationOutput { location_constraint: None }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let rules = &i.server_side_encryption_configuration.rules;
            let default = match rules.as_slice() {
                [rule] => rule.apply_server_side_encryption_by_default.as_ref(),
                _ => return Err(s3_error!(MalformedXML, "The encryption configuration must hold exactly one rule")),
            };
            match default.map(|d| d.sse_algorithm.as_str()) {
                Some(ServerSideEncryption::AES256) => {}
                Some(other) => return Err(sse::unsupported(other)),
                None => return Err(s3_error!(MalformedXML, "The rule must name ApplyServerSideEncryptionByDefault")),
            }
            if !ctx.key_keeper.has_key().await.or_s3()? {
                return Err(crate::error::to_s3(ActorError::NoMasterKey));
            }
            let cmd = MetaCommand::SetBucketEncryption { bucket: i.bucket, encryption: Some(BucketEncryption::SseS3) };
            write(&ctx, cmd).await?;
            Ok(S3Response::new(PutBucketEncryptionOutput {}))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let bucket = ensure_bucket(&ctx, &req.input.bucket).await?;
            match bucket.encryption {
                None => {
                    let mut e = s3_error!(
                        ServerSideEncryptionConfigurationNotFoundError,
                        "The server side encryption configuration was not found"
                    );
                    // S3 answers 404 here; s3s's table says 400.
                    e.set_status_code(http::StatusCode::NOT_FOUND);
                    Err(e)
                }
                Some(BucketEncryption::SseS3) => {
                    let rule = ServerSideEncryptionRule {
                        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                            kms_master_key_id: None,
                            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
                        }),
                        bucket_key_enabled: Some(false),
                    };
                    let config = ServerSideEncryptionConfiguration { rules: vec![rule] };
                    Ok(S3Response::new(GetBucketEncryptionOutput {
                        server_side_encryption_configuration: Some(config),
                    }))
                }
            }
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            write(&ctx, MetaCommand::SetBucketEncryption { bucket: req.input.bucket, encryption: None }).await?;
            Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_buckets(&self, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let buckets = ctx.meta.read(|r| r.buckets()).await.or_s3()?;
            let buckets = buckets
                .into_iter()
                .map(|b| Bucket { name: Some(b.name), creation_date: Some(ts(b.created_ms)), bucket_region: None })
                .collect();
            Ok(S3Response::new(ListBucketsOutput {
                buckets: Some(buckets),
                owner: Some(owner()),
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let this = self.clone();
        session::run(&self.sessions, async move {
            let ctx = &this.ctx;
            let i = req.input;
            check_key(&i.key)?;
            let customer = sse::customer_key(sse_c_headers!(i), secure_of(&req.extensions))?;
            let content_md5 = parse_content_md5(i.content_md5.as_ref())?;
            let expected = expected_checksums(
                &req.headers,
                i.checksum_algorithm.as_ref(),
                i.checksum_crc32,
                i.checksum_crc32c,
                i.checksum_sha1,
                i.checksum_sha256,
                i.checksum_crc64nvme,
            )?;
            let target = write_target(ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
            // Checked when the commit applies, atomically; refused early too when it already fails now.
            let condition = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
            if let Some(c) = &condition {
                let (b, k) = (i.bucket.clone(), i.key.clone());
                let current = ctx.meta.read(move |r| r.object(&b, &k)).await.or_s3()?;
                if !c.holds_for(current.as_ref()) {
                    return Err(s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    ));
                }
            }
            let seal = sse::seal_new(ctx, &target).await?;
            let seal_key = seal.as_ref().map(|s| &s.key);
            let (stored, checksums) = this
                .put_body(0, (i.body, i.content_length), expected, content_md5, req.trailing_headers, seal_key)
                .await?;
            let etag_hex = write_etag(&stored.digests().md5, seal.as_ref().map(|s| (&s.encryption, &s.key)));
            let (segments, inline) = match &stored {
                Stored::Inline { data, .. } => (Vec::new(), Some(data.to_vec())),
                Stored::Segment(w) => (vec![w.segment.clone()], None),
            };
            let record = ObjectRecord {
                bucket: i.bucket,
                key: i.key,
                version_id: new_version_id(ctx),
                size: stored.size(),
                etag: etag_hex.clone(),
                last_modified_ms: ctx.env.now_ms(),
                headers: headers_from(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                    i.metadata,
                ),
                checksums: checksums.clone(),
                segments,
                encryption: seal.map(|s| s.encryption).unwrap_or_default(),
                inline,
            };
            let described = sse::headers(&record.encryption, customer.as_ref());
            faults::hit(ctx.faults.as_ref(), "put.before_commit").await.or_s3()?;
            let now_ms = ctx.env.now_ms();
            let cmd = match condition {
                None => MetaCommand::CommitObject { record, now_ms },
                Some(condition) => MetaCommand::CommitObjectIf { record, now_ms, condition },
            };
            write(ctx, cmd).await?;
            this.after_commit(stored.written());
            Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(etag(&etag_hex)),
                checksum_crc32: checksums.crc32,
                checksum_crc32c: checksums.crc32c,
                checksum_sha1: checksums.sha1,
                checksum_sha256: checksums.sha256,
                server_side_encryption: described.server_side_encryption,
                sse_customer_algorithm: described.sse_customer_algorithm,
                sse_customer_key_md5: described.sse_customer_key_md5,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let ctx = self.ctx.clone();
        let secure = secure_of(&req.extensions);
        session::run(&self.sessions, async move { read_object(&ctx, req.input, secure, true).await }).await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let ctx = self.ctx.clone();
        let secure = secure_of(&req.extensions);
        session::run(&self.sessions, async move {
            let i = req.input;
            let as_get = GetObjectInput {
                bucket: i.bucket,
                key: i.key,
                checksum_mode: i.checksum_mode,
                if_match: i.if_match,
                if_modified_since: i.if_modified_since,
                if_none_match: i.if_none_match,
                if_unmodified_since: i.if_unmodified_since,
                part_number: i.part_number,
                range: i.range,
                response_cache_control: i.response_cache_control,
                response_content_disposition: i.response_content_disposition,
                response_content_encoding: i.response_content_encoding,
                response_content_language: i.response_content_language,
                response_content_type: i.response_content_type,
                response_expires: i.response_expires,
                sse_customer_algorithm: i.sse_customer_algorithm,
                sse_customer_key: i.sse_customer_key,
                sse_customer_key_md5: i.sse_customer_key_md5,
                ..Default::default()
            };
            let got = read_object(&ctx, as_get, secure, false).await?;
            let o = got.output;
            let out = HeadObjectOutput {
                accept_ranges: o.accept_ranges,
                cache_control: o.cache_control,
                checksum_crc32: o.checksum_crc32,
                checksum_crc32c: o.checksum_crc32c,
                checksum_sha1: o.checksum_sha1,
                checksum_sha256: o.checksum_sha256,
                content_disposition: o.content_disposition,
                content_encoding: o.content_encoding,
                content_language: o.content_language,
                content_length: o.content_length,
                content_range: o.content_range,
                content_type: o.content_type,
                e_tag: o.e_tag,
                expires: o.expires,
                last_modified: o.last_modified,
                metadata: o.metadata,
                parts_count: o.parts_count,
                server_side_encryption: o.server_side_encryption,
                sse_customer_algorithm: o.sse_customer_algorithm,
                sse_customer_key_md5: o.sse_customer_key_md5,
                ..Default::default()
            };
            let mut resp = S3Response::new(out);
            resp.status = got.status;
            Ok(resp)
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            write(&ctx, MetaCommand::DeleteObject { bucket: i.bucket, key: i.key, now_ms: ctx.env.now_ms() }).await?;
            Ok(S3Response::new(DeleteObjectOutput::default()))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            if i.delete.objects.len() > MAX_DELETE_KEYS {
                return Err(s3_error!(MalformedXML, "A DeleteObjects request may name at most 1000 keys"));
            }
            // Every key is checked before any is proposed: one bad key deletes nothing.
            for obj in &i.delete.objects {
                check_key(&obj.key)?;
            }
            ensure_bucket(&ctx, &i.bucket).await?;
            let quiet = i.delete.quiet.unwrap_or(false);
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            // Proposed together, so Raft commits them in a few batched log appends.
            let results = futures::future::join_all(i.delete.objects.iter().map(|obj| {
                let cmd = MetaCommand::DeleteObject {
                    bucket: i.bucket.clone(),
                    key: obj.key.clone(),
                    now_ms: ctx.env.now_ms(),
                };
                write(&ctx, cmd)
            }))
            .await;
            for (obj, result) in i.delete.objects.into_iter().zip(results) {
                match result {
                    Ok(_) => {
                        if !quiet {
                            deleted.push(DeletedObject { key: Some(obj.key), ..Default::default() });
                        }
                    }
                    Err(e) => errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        key: Some(obj.key),
                        message: e.message().map(str::to_string),
                        version_id: None,
                    }),
                }
            }
            Ok(S3Response::new(DeleteObjectsOutput {
                deleted: Some(deleted),
                errors: (!errors.is_empty()).then_some(errors),
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let this = self.clone();
        session::run(&self.sessions, async move {
            let ctx = this.ctx.clone();
            let i = req.input;
            check_key(&i.key)?;
            let secure = secure_of(&req.extensions);
            let customer = sse::customer_key(sse_c_headers!(i), secure)?;
            let source_customer = sse::customer_key(sse_c_headers!(i, copy_source), secure)?;
            let (src_bucket, src_key) = copy_source(&i.copy_source)?;
            let src = get_record(&ctx, &src_bucket, &src_key).await?;
            check_copy_conditions(
                &src,
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            )?;
            let replace = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
            let changes_encryption = i.server_side_encryption.is_some() || customer.is_some();
            if src_bucket == i.bucket && src_key == i.key && !replace && !changes_encryption {
                return Err(s3_error!(
                    InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
                ));
            }
            let target = write_target(&ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
            let source_key = sse::for_read(&ctx, &src.encryption, source_customer.as_ref()).await?;
            let headers = if replace {
                headers_from(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                    i.metadata,
                )
            } else {
                src.headers.clone()
            };
            let (mut record, written) = match (&source_key, &target) {
                // Plain to plain, or encrypted to encrypted: the copy shares the source's ciphertext (or
                // bytes), with the data key wrapped for the destination. Metadata only, no bytes move.
                (None, Target::Plain) | (Some(_), Target::SseS3(_) | Target::SseC(_)) => {
                    let encryption = match &source_key {
                        Some(key) => sse::wrap_for(&ctx, key, &target).await?.unwrap_or_default(),
                        None => Encryption::None,
                    };
                    let etag = match (&source_key, &target) {
                        // An SSE-C copy of an object whose ETag is its plaintext's MD5 must not keep it.
                        (Some(key), Target::SseC(_)) if !matches!(src.encryption, Encryption::SseC { .. }) => {
                            hex::encode(opaque_etag(&key.key, src.etag.as_bytes()))
                        }
                        _ => src.etag.clone(),
                    };
                    let record = ObjectRecord {
                        segments: src.segments.clone(),
                        inline: src.inline.clone(),
                        encryption,
                        etag,
                        ..src.clone()
                    };
                    (record, None)
                }
                // Plaintext to encrypted or back: the bytes are read and written again.
                (None, Target::SseS3(_) | Target::SseC(_)) | (Some(_), Target::Plain) => {
                    let seal = sse::seal_new(&ctx, &target).await?;
                    let want = checksum_set_of(&src.checksums);
                    let body = object_bytes(&ctx, &src, 0, src.size, source_key.clone());
                    let stored = write_object(&ctx, body, want, seal.as_ref().map(|s| &s.key)).await.or_s3()?;
                    let etag = write_etag(&stored.digests().md5, seal.as_ref().map(|s| (&s.encryption, &s.key)));
                    let (segments, inline) = match &stored {
                        Stored::Inline { data, .. } => (Vec::new(), Some(data.to_vec())),
                        Stored::Segment(w) => (vec![w.segment.clone()], None),
                    };
                    let record = ObjectRecord {
                        size: stored.size(),
                        etag,
                        checksums: stored_checksums(want, &stored.digests().checksums),
                        segments,
                        inline,
                        encryption: seal.map(|s| s.encryption).unwrap_or_default(),
                        ..src.clone()
                    };
                    (record, Some(stored))
                }
            };
            let now = ctx.env.now_ms();
            record.bucket = i.bucket;
            record.key = i.key;
            record.version_id = new_version_id(&ctx);
            record.last_modified_ms = now;
            record.headers = headers;
            faults::hit(ctx.faults.as_ref(), "put.before_commit").await.or_s3()?;
            let described = sse::headers(&record.encryption, customer.as_ref());
            let (etag_hex, checksums) = (record.etag.clone(), record.checksums.clone());
            let cmd = match &written {
                // The bytes were copied into a segment of the copy's own: the source may change meanwhile.
                Some(_) => MetaCommand::CommitObject { record, now_ms: now },
                // The copy shares the source's segments: they must still be the source's when it commits.
                None => MetaCommand::CommitCopy {
                    record,
                    now_ms: now,
                    source_bucket: src.bucket.clone(),
                    source_key: src.key.clone(),
                    source_version_id: src.version_id.clone(),
                },
            };
            write(&ctx, cmd).await?;
            this.after_commit(written.as_ref().and_then(Stored::written));
            Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(etag(&etag_hex)),
                    last_modified: Some(ts(now)),
                    checksum_crc32: checksums.crc32,
                    checksum_crc32c: checksums.crc32c,
                    checksum_sha1: checksums.sha1,
                    checksum_sha256: checksums.sha256,
                    ..Default::default()
                }),
                server_side_encryption: described.server_side_encryption,
                sse_customer_algorithm: described.sse_customer_algorithm,
                sse_customer_key_md5: described.sse_customer_key_md5,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let url = encoding_is_url(i.encoding_type.as_ref())?;
            let max_keys = clamp_max_keys(i.max_keys)?;
            let prefix = i.prefix.clone().unwrap_or_default();
            let page = list(&ctx, &i.bucket, &prefix, i.delimiter.clone(), i.marker.clone(), max_keys, url).await?;
            let enc = |s: String| if url { url_encode(&s) } else { s };
            Ok(S3Response::new(ListObjectsOutput {
                name: Some(i.bucket),
                prefix: Some(enc(prefix)),
                marker: i.marker.map(enc),
                max_keys: Some(max_keys as i32),
                is_truncated: Some(page.is_truncated),
                contents: Some(page.contents),
                common_prefixes: Some(page.common_prefixes),
                delimiter: i.delimiter.map(enc),
                next_marker: page.last.map(enc),
                encoding_type: i.encoding_type,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let url = encoding_is_url(i.encoding_type.as_ref())?;
            let max_keys = clamp_max_keys(i.max_keys)?;
            let prefix = i.prefix.clone().unwrap_or_default();
            let after = match &i.continuation_token {
                Some(t) => Some(decode_token(t)?),
                None => i.start_after.clone(),
            };
            let page = list(&ctx, &i.bucket, &prefix, i.delimiter.clone(), after, max_keys, url).await?;
            let enc = |s: String| if url { url_encode(&s) } else { s };
            Ok(S3Response::new(ListObjectsV2Output {
                name: Some(i.bucket),
                prefix: Some(enc(prefix)),
                max_keys: Some(max_keys as i32),
                key_count: Some((page.contents.len() + page.common_prefixes.len()) as i32),
                continuation_token: i.continuation_token,
                is_truncated: Some(page.is_truncated),
                next_continuation_token: page.last.as_deref().map(encode_token),
                contents: Some(page.contents),
                common_prefixes: Some(page.common_prefixes),
                delimiter: i.delimiter.map(enc),
                encoding_type: i.encoding_type,
                start_after: i.start_after.map(enc),
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            check_key(&i.key)?;
            let customer = sse::customer_key(sse_c_headers!(i), secure_of(&req.extensions))?;
            if let Some(alg) = &i.checksum_algorithm {
                algorithm_set(alg.as_str(), &mut ChecksumSet::default())?;
            }
            let target = write_target(&ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
            // The upload's data key is drawn now and kept wrapped in the upload record: every part seals under it.
            let encryption = sse::seal_new(&ctx, &target).await?.map(|s| s.encryption).unwrap_or_default();
            let described = sse::headers(&encryption, customer.as_ref());
            let upload_id = format!("{:032x}", ctx.env.random_u128());
            let upload = UploadRecord {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                upload_id: upload_id.clone(),
                initiated_ms: ctx.env.now_ms(),
                headers: headers_from(
                    i.content_type,
                    i.content_encoding,
                    i.content_disposition,
                    i.content_language,
                    i.cache_control,
                    i.expires,
                    i.metadata,
                ),
                checksum_algorithm: i.checksum_algorithm.as_ref().map(|a| a.as_str().to_ascii_uppercase()),
                encryption,
            };
            write(&ctx, MetaCommand::CreateUpload(upload)).await?;
            Ok(S3Response::new(CreateMultipartUploadOutput {
                bucket: Some(i.bucket),
                key: Some(i.key),
                upload_id: Some(upload_id),
                checksum_algorithm: i.checksum_algorithm,
                server_side_encryption: described.server_side_encryption,
                sse_customer_algorithm: described.sse_customer_algorithm,
                sse_customer_key_md5: described.sse_customer_key_md5,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let this = self.clone();
        session::run(&self.sessions, async move {
            let ctx = &this.ctx;
            let i = req.input;
            let part_number = check_part_number(i.part_number)?;
            let customer = sse::customer_key(sse_c_headers!(i), secure_of(&req.extensions))?;
            let content_md5 = parse_content_md5(i.content_md5.as_ref())?;
            let upload = get_upload(ctx, &i.bucket, &i.key, &i.upload_id).await?;
            let key = sse::for_read(ctx, &upload.encryption, customer.as_ref()).await?;
            let mut expected = expected_checksums(
                &req.headers,
                i.checksum_algorithm.as_ref(),
                i.checksum_crc32,
                i.checksum_crc32c,
                i.checksum_sha1,
                i.checksum_sha256,
                i.checksum_crc64nvme,
            )?;
            if let Some(alg) = &upload.checksum_algorithm {
                algorithm_set(alg, &mut expected.want)?;
            }
            let (stored, checksums) = this
                .put_body(
                    part_number,
                    (i.body, i.content_length),
                    expected,
                    content_md5,
                    req.trailing_headers,
                    key.as_ref(),
                )
                .await?;
            let Stored::Segment(written) = &stored else {
                return Err(s3_error!(InternalError, "a part was stored inline"));
            };
            let etag_hex = write_etag(&written.digests.md5, key.as_ref().map(|k| (&upload.encryption, k)));
            let described = sse::headers(&upload.encryption, customer.as_ref());
            let part = PartRecord {
                part_number,
                etag: etag_hex.clone(),
                size: written.segment.plain_size(),
                last_modified_ms: ctx.env.now_ms(),
                checksums: checksums.clone(),
                segment: written.segment.clone(),
            };
            faults::hit(ctx.faults.as_ref(), "put.before_commit").await.or_s3()?;
            let cmd = MetaCommand::CommitPart {
                bucket: i.bucket,
                key: i.key,
                upload_id: i.upload_id,
                part,
                now_ms: ctx.env.now_ms(),
            };
            write(ctx, cmd).await?;
            this.after_commit(Some(written));
            Ok(S3Response::new(UploadPartOutput {
                e_tag: Some(etag(&etag_hex)),
                checksum_crc32: checksums.crc32,
                checksum_crc32c: checksums.crc32c,
                checksum_sha1: checksums.sha1,
                checksum_sha256: checksums.sha256,
                server_side_encryption: described.server_side_encryption,
                sse_customer_algorithm: described.sse_customer_algorithm,
                sse_customer_key_md5: described.sse_customer_key_md5,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key, part = req.input.part_number))]
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let this = self.clone();
        session::run(&self.sessions, async move {
            let ctx = &this.ctx;
            let i = req.input;
            let part_number = check_part_number(i.part_number)?;
            let secure = secure_of(&req.extensions);
            let customer = sse::customer_key(sse_c_headers!(i), secure)?;
            let source_customer = sse::customer_key(sse_c_headers!(i, copy_source), secure)?;
            let (src_bucket, src_key) = copy_source(&i.copy_source)?;
            let upload = get_upload(ctx, &i.bucket, &i.key, &i.upload_id).await?;
            let src = get_record(ctx, &src_bucket, &src_key).await?;
            check_copy_conditions(
                &src,
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            )?;
            let (start, end) = match &i.copy_source_range {
                Some(r) => parse_copy_range(r, src.size)?,
                None => (0, src.size),
            };
            if end - start > MAX_PUT_SIZE as u64 {
                return Err(s3_error!(EntityTooLarge, "A part may be at most 5 GiB"));
            }
            let mut want = ChecksumSet::default();
            if let Some(alg) = &upload.checksum_algorithm {
                algorithm_set(alg, &mut want)?;
            }
            let key = sse::for_read(ctx, &upload.encryption, customer.as_ref()).await?;
            let source_key = sse::for_read(ctx, &src.encryption, source_customer.as_ref()).await?;
            let body = object_bytes(ctx, &src, start, end, source_key);
            let written = write_segment(ctx, part_number, body, want, key.as_ref()).await.or_s3()?;
            let checksums = stored_checksums(want, &written.digests.checksums);
            let etag_hex = write_etag(&written.digests.md5, key.as_ref().map(|k| (&upload.encryption, k)));
            let described = sse::headers(&upload.encryption, customer.as_ref());
            let now = ctx.env.now_ms();
            let part = PartRecord {
                part_number,
                etag: etag_hex.clone(),
                size: written.segment.plain_size(),
                last_modified_ms: now,
                checksums: checksums.clone(),
                segment: written.segment.clone(),
            };
            let cmd =
                MetaCommand::CommitPart { bucket: i.bucket, key: i.key, upload_id: i.upload_id, part, now_ms: now };
            write(ctx, cmd).await?;
            this.after_commit(Some(&written));
            Ok(S3Response::new(UploadPartCopyOutput {
                copy_part_result: Some(CopyPartResult {
                    e_tag: Some(etag(&etag_hex)),
                    last_modified: Some(ts(now)),
                    checksum_crc32: checksums.crc32,
                    checksum_crc32c: checksums.crc32c,
                    checksum_sha1: checksums.sha1,
                    checksum_sha256: checksums.sha256,
                    ..Default::default()
                }),
                server_side_encryption: described.server_side_encryption,
                sse_customer_algorithm: described.sse_customer_algorithm,
                sse_customer_key_md5: described.sse_customer_key_md5,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let upload = get_upload(&ctx, &i.bucket, &i.key, &i.upload_id).await?;
            // Checked when the completion applies, atomically; a failed condition leaves the upload open.
            let condition = write_condition(i.if_match.as_ref(), i.if_none_match.as_ref())?;
            let wanted = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
            if wanted.is_empty() {
                return Err(s3_error!(MalformedXML, "You must specify at least one part"));
            }
            let upload_id = i.upload_id.clone();
            let stored = ctx.meta.read(move |r| r.all_parts(&upload_id)).await.or_s3()?;
            let mut prev = 0;
            let mut chosen: Vec<PartRecord> = Vec::with_capacity(wanted.len());
            for (n, w) in wanted.iter().enumerate() {
                let number = w.part_number.unwrap_or(0);
                if number <= prev {
                    return Err(s3_error!(InvalidPartOrder, "The list of parts was not in ascending order. Parts must be ordered by part number."));
                }
                prev = number;
                let Some(part) = stored.iter().find(|p| p.part_number as i32 == number) else {
                    return Err(s3_error!(InvalidPart, "Part {number} has not been uploaded"));
                };
                if let Some(e) = &w.e_tag {
                    if e.value().trim_matches('"') != part.etag {
                        return Err(s3_error!(InvalidPart, "The ETag given for part {number} does not match the uploaded part"));
                    }
                }
                let given = Checksums {
                    crc32: w.checksum_crc32.clone(),
                    crc32c: w.checksum_crc32c.clone(),
                    sha1: w.checksum_sha1.clone(),
                    sha256: w.checksum_sha256.clone(),
                    crc64nvme: None,
                    checksum_type: None,
                };
                if given.crc32.as_ref().is_some_and(|g| part.checksums.crc32.as_ref() != Some(g))
                    || given.crc32c.as_ref().is_some_and(|g| part.checksums.crc32c.as_ref() != Some(g))
                    || given.sha1.as_ref().is_some_and(|g| part.checksums.sha1.as_ref() != Some(g))
                    || given.sha256.as_ref().is_some_and(|g| part.checksums.sha256.as_ref() != Some(g))
                {
                    return Err(s3_error!(InvalidPart, "The checksum given for part {number} does not match the uploaded part"));
                }
                if n + 1 < wanted.len() && part.size < MIN_PART_SIZE {
                    return Err(s3_error!(EntityTooSmall, "Your proposed upload is smaller than the minimum allowed object size. Part {number} is {} bytes; every part but the last must be at least 5 MiB.", part.size));
                }
                chosen.push(part.clone());
            }
            let mut md5s = md5::Md5::new();
            for p in &chosen {
                let raw = hex::decode(&p.etag).map_err(|_| s3_error!(InternalError, "stored part ETag is not hex"))?;
                md5s.update(&raw);
            }
            let etag_str = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
            let checksums = composite_checksums(upload.checksum_algorithm.as_deref(), &chosen);
            let size = chosen.iter().map(|p| p.size).sum();
            let now = ctx.env.now_ms();
            let record = ObjectRecord {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                version_id: new_version_id(&ctx),
                size,
                etag: etag_str.clone(),
                last_modified_ms: now,
                headers: upload.headers,
                checksums: checksums.clone(),
                segments: chosen.into_iter().map(|p| p.segment).collect(),
                encryption: upload.encryption,
                inline: None,
            };
            let described = sse::headers(&record.encryption, None);
            faults::hit(ctx.faults.as_ref(), "put.before_commit").await.or_s3()?;
            let upload_id = i.upload_id;
            let cmd = match condition {
                None => MetaCommand::CompleteUpload { upload_id, record, now_ms: now },
                Some(condition) => MetaCommand::CompleteUploadIf { upload_id, record, now_ms: now, condition },
            };
            write(&ctx, cmd).await?;
            Ok(S3Response::new(CompleteMultipartUploadOutput {
                bucket: Some(i.bucket.clone()),
                key: Some(i.key.clone()),
                e_tag: Some(etag(&etag_str)),
                location: Some(format!("/{}/{}", i.bucket, i.key)),
                checksum_crc32: checksums.crc32,
                checksum_crc32c: checksums.crc32c,
                checksum_sha1: checksums.sha1,
                checksum_sha256: checksums.sha256,
                checksum_type: checksums.checksum_type.map(ChecksumType::from),
                server_side_encryption: described.server_side_encryption,
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let cmd = MetaCommand::AbortUpload {
                bucket: i.bucket,
                key: i.key,
                upload_id: i.upload_id,
                now_ms: ctx.env.now_ms(),
            };
            write(&ctx, cmd).await?;
            Ok(S3Response::new(AbortMultipartUploadOutput::default()))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let upload = get_upload(&ctx, &i.bucket, &i.key, &i.upload_id).await?;
            let max = match i.max_parts {
                Some(m) if m < 0 => return Err(s3_error!(InvalidArgument, "max-parts must be a non-negative integer")),
                Some(m) => (m as usize).min(MAX_KEYS),
                None => MAX_KEYS,
            };
            let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
            let upload_id = i.upload_id.clone();
            let (parts, truncated) = ctx.meta.read(move |r| r.parts(&upload_id, marker, max)).await.or_s3()?;
            let next = parts.last().map(|p| p.part_number as i32);
            let parts = parts
                .into_iter()
                .map(|p| Part {
                    part_number: Some(p.part_number as i32),
                    e_tag: Some(etag(&p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(ts(p.last_modified_ms)),
                    checksum_crc32: p.checksums.crc32,
                    checksum_crc32c: p.checksums.crc32c,
                    checksum_sha1: p.checksums.sha1,
                    checksum_sha256: p.checksums.sha256,
                    ..Default::default()
                })
                .collect();
            Ok(S3Response::new(ListPartsOutput {
                bucket: Some(i.bucket),
                key: Some(i.key),
                upload_id: Some(i.upload_id),
                max_parts: Some(max as i32),
                part_number_marker: i.part_number_marker,
                next_part_number_marker: if truncated { next } else { None },
                is_truncated: Some(truncated),
                parts: Some(parts),
                initiator: Some(Initiator { display_name: Some("hoard".into()), id: Some("hoard".into()) }),
                owner: Some(owner()),
                checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
                ..Default::default()
            }))
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(bucket = %req.input.bucket))]
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let ctx = self.ctx.clone();
        session::run(&self.sessions, async move {
            let i = req.input;
            let url = encoding_is_url(i.encoding_type.as_ref())?;
            ensure_bucket(&ctx, &i.bucket).await?;
            let max = clamp_max_keys(i.max_uploads)?;
            let q = UploadQuery {
                prefix: i.prefix.clone().unwrap_or_default(),
                delimiter: i.delimiter.clone(),
                key_marker: i.key_marker.clone(),
                upload_id_marker: i.upload_id_marker.clone(),
                max_uploads: max,
            };
            let bucket = i.bucket.clone();
            let page = ctx.meta.read(move |r| r.list_uploads(&bucket, &q)).await.or_s3()?;
            let enc = |s: String| if url { url_encode(&s) } else { s };
            let uploads = page
                .uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(enc(u.key)),
                    upload_id: Some(u.upload_id),
                    initiated: Some(ts(u.initiated_ms)),
                    initiator: Some(Initiator { display_name: Some("hoard".into()), id: Some("hoard".into()) }),
                    owner: Some(owner()),
                    checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
                    ..Default::default()
                })
                .collect();
            Ok(S3Response::new(ListMultipartUploadsOutput {
                bucket: Some(i.bucket),
                prefix: i.prefix.map(enc),
                delimiter: i.delimiter.map(enc),
                key_marker: i.key_marker.map(enc),
                upload_id_marker: i.upload_id_marker,
                max_uploads: Some(max as i32),
                is_truncated: Some(page.is_truncated),
                next_key_marker: page.next_key_marker.map(enc),
                next_upload_id_marker: page.next_upload_id_marker,
                uploads: Some(uploads),
                common_prefixes: Some(
                    page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
                ),
                encoding_type: i.encoding_type,
                ..Default::default()
            }))
        })
        .await
    }
}

fn check_part_number(n: i32) -> S3Result<u32> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
    }
    Ok(n as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges_parse_and_refuse_bad_input() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_copy_range("bytes=10-99", 100).unwrap(), (10, 100));
        assert!(parse_copy_range("bytes=10-100", 100).is_err());
        assert!(parse_copy_range("bytes=9-3", 100).is_err());
        assert!(parse_copy_range("0-3", 100).is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(url_encode("a b/c+d%"), "a%20b/c%2Bd%25");
        assert_eq!(url_encode("plain/key-1_2.3~"), "plain/key-1_2.3~");
    }

    #[test]
    fn continuation_tokens_round_trip() {
        let t = encode_token("photos/2024/ü.jpg");
        assert_eq!(decode_token(&t).unwrap(), "photos/2024/ü.jpg");
        assert!(decode_token("!!!").is_err());
    }

    #[test]
    fn aws_chunked_is_not_stored_as_the_objects_content_encoding() {
        assert_eq!(object_content_encoding(Some("aws-chunked".into())), None);
        assert_eq!(object_content_encoding(Some("gzip,aws-chunked".into())), Some("gzip".into()));
        assert_eq!(object_content_encoding(Some("aws-chunked, gzip, br".into())), Some("gzip,br".into()));
        assert_eq!(object_content_encoding(Some("gzip, br".into())), Some("gzip, br".into()), "left as sent");
        assert_eq!(object_content_encoding(None), None);
    }

    #[test]
    fn content_md5_must_be_base64_of_16_bytes() {
        assert!(parse_content_md5(Some(&"XUFAKrxLKna5cZ2REBfFkg==".to_string())).unwrap().is_some());
        assert!(parse_content_md5(Some(&"nope".to_string())).is_err());
        assert!(parse_content_md5(Some(&"aGVsbG8=".to_string())).is_err());
    }
}
