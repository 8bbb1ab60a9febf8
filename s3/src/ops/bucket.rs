//! Buckets: create, delete, head, location, the default encryption, the list of all buckets, and the object
//! lock APIs.
//!
//! Invariants:
//! - hoard has no object lock. No bucket is created with it (asking for it is refused and creates nothing) and
//!   none can be given it later, so every bucket answers the object lock APIs as an AWS bucket created without
//!   it does; a missing bucket is `NoSuchBucket` first.
//! - A bucket made by an access key is that key's: it gets a full grant, in the same entry that makes the
//!   bucket. A key lists only the buckets it holds a grant in.

use hoard_protocol::BucketSetting;
use s3s::S3ErrorCode;

use super::*;
use crate::access::Caller;
use crate::access::Principal;
use crate::acl::Acl;
use crate::acl::ROOT_ID;

pub(super) async fn create_bucket(
    s3: &HoardS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        if req.input.object_lock_enabled_for_bucket == Some(true) {
            // A bucket made without the lock asked for would let the client believe its objects are locked.
            return Err(s3_error!(
                NotImplemented,
                "Object Lock is not supported by hoard; the bucket was not created (create it without \
                 x-amz-bucket-object-lock-enabled)"
            ));
        }
        let creator = Caller::of(&req.extensions);
        let owner_id = creator.canonical_id().unwrap_or(ROOT_ID).to_string();
        let known =
            |id: &str| id == ROOT_ID || ctx.meta.local().ok().and_then(|r| r.access_key(id).ok().flatten()).is_some();
        let acl = Acl::from_request(&AclRequest::from(&req.input), &owner_id, &owner_id, known)?;
        let name = req.input.bucket;
        let record = BucketRecord { name: name.clone(), created_ms: ctx.env.now_ms(), encryption: None };
        let owner = match creator {
            Principal::Key(id) => Some(id),
            _ => None,
        };
        let cmd = match (owner, acl) {
            (None, None) => MetaCommand::CreateBucket(record),
            (owner, acl) => {
                let settings = acl.map(|a| (BucketSetting::Acl, a.to_json())).into_iter().collect();
                MetaCommand::CreateOwnedBucket { record, owner, settings }
            }
        };
        match write(&ctx, cmd).await {
            // Another key's bucket: the name is taken, not this caller's.
            Err(e) if *e.code() == S3ErrorCode::BucketAlreadyOwnedByYou => {
                let b = name.clone();
                let owner = ctx.meta.read(move |r| r.bucket_owner(&b)).await.or_s3()?;
                if owner.as_deref().unwrap_or(ROOT_ID) != owner_id {
                    return Err(s3_error!(
                        BucketAlreadyExists,
                        "The requested bucket name is not available. Please select a different name and try again."
                    ));
                }
                return Err(e);
            }
            other => other?,
        };
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }))
    })
    .await
}

pub(super) async fn delete_bucket(
    s3: &HoardS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        // As S3: a bucket holding only unfinished multipart uploads is deleted, and the uploads with it.
        let cmd = MetaCommand::DeleteBucketAndUploads { name: req.input.bucket, now_ms: ctx.env.now_ms() };
        write(&ctx, cmd).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    })
    .await
}

pub(super) async fn head_bucket(
    s3: &HoardS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        ensure_bucket(&ctx, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(REGION.into()), ..Default::default() }))
    })
    .await
}

pub(super) async fn get_bucket_location(
    s3: &HoardS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        ensure_bucket(&ctx, &req.input.bucket).await?;
        // us-east-1 is reported as an empty location constraint, as S3 does.
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: None }))
    })
    .await
}

pub(super) async fn put_bucket_encryption(
    s3: &HoardS3,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
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

pub(super) async fn get_bucket_encryption(
    s3: &HoardS3,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
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
                Ok(S3Response::new(GetBucketEncryptionOutput { server_side_encryption_configuration: Some(config) }))
            }
        }
    })
    .await
}

pub(super) async fn delete_bucket_encryption(
    s3: &HoardS3,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        write(&ctx, MetaCommand::SetBucketEncryption { bucket: req.input.bucket, encryption: None }).await?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
    })
    .await
}

pub(super) async fn list_buckets(
    s3: &HoardS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let buckets = ctx.meta.read(|r| r.buckets()).await.or_s3()?;
        // A key sees the buckets it holds a grant in, and no others.
        let visible = match Caller::of(&req.extensions) {
            Principal::Key(id) => Some(ctx.meta.read(move |r| r.grants_of(&id)).await.or_s3()?),
            _ => None,
        };
        let buckets = buckets
            .into_iter()
            .filter(|b| visible.as_ref().is_none_or(|v| v.contains_key(&b.name)))
            .map(|b| Bucket { name: Some(b.name), creation_date: Some(ts(b.created_ms)), bucket_region: None })
            .collect();
        Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), owner: Some(owner()), ..Default::default() }))
    })
    .await
}

/// The answer to every object lock API on an object (retention, legal hold): its key is checked as any, then its
/// bucket must exist, and then, as AWS answers for a bucket without object lock whether or not the key exists,
/// the bucket has no object lock configuration.
async fn object_without_lock<T: Send + 'static>(s3: &HoardS3, bucket: BucketName, key: ObjectKey) -> S3Result<T> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        check_key(&key)?;
        ensure_bucket(&ctx, &bucket).await?;
        Err(s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration"))
    })
    .await
}

pub(super) async fn get_object_lock_configuration(
    s3: &HoardS3,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        ensure_bucket(&ctx, &req.input.bucket).await?;
        Err(s3_error!(ObjectLockConfigurationNotFoundError, "Object Lock configuration does not exist for this bucket"))
    })
    .await
}

pub(super) async fn put_object_lock_configuration(
    s3: &HoardS3,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let b = req.input.bucket;
        let (record, versioning) = ctx.meta.read(move |r| Ok((r.bucket(&b)?, r.versioning(&b)?))).await.or_s3()?;
        record.ok_or_else(no_such_bucket)?;
        // AWS asks for versioning first; with it on, it answers as it did before object lock could be added
        // to an existing bucket, which is all hoard can do.
        Err(match versioning {
            Some(VersioningStatus::Enabled) => s3_error!(
                InvalidBucketState,
                "Object Lock configuration cannot be enabled on existing buckets (hoard does not support Object Lock)"
            ),
            _ => s3_error!(
                InvalidBucketState,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            ),
        })
    })
    .await
}

pub(super) async fn get_object_retention(
    s3: &HoardS3,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    object_without_lock(s3, req.input.bucket, req.input.key).await
}

pub(super) async fn put_object_retention(
    s3: &HoardS3,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    object_without_lock(s3, req.input.bucket, req.input.key).await
}

pub(super) async fn get_object_legal_hold(
    s3: &HoardS3,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    object_without_lock(s3, req.input.bucket, req.input.key).await
}

pub(super) async fn put_object_legal_hold(
    s3: &HoardS3,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    object_without_lock(s3, req.input.bucket, req.input.key).await
}
