//! A bucket's CORS configuration: PutBucketCors, GetBucketCors, DeleteBucketCors. The rules are validated
//! ([`CorsRules::from_dto`]) and kept as a bucket setting (`MetaCommand::SetBucketSetting`, `BucketSetting::Cors`);
//! the frontend reads them back to answer preflights and to add CORS headers to responses.
//!
//! Invariants:
//! - Only a configuration that validates is stored: a refused PutBucketCors leaves the bucket's rules as they were.
//! - What is stored is [`CorsRules::to_json`], the versioned form, and nothing else.
//! - GetBucketCors reads through a linearizable barrier, so rules just put through any node are seen.

use hoard_protocol::BucketSetting;
use hoard_protocol::MetaCommand;
use s3s::dto::*;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3Request;
use s3s::S3Response;
use s3s::S3Result;

use super::ensure_bucket;
use super::no_such_bucket;
use super::write;
use super::HoardS3;
use crate::cors::CorsRules;
use crate::error::OrS3;
use crate::session;

fn no_cors() -> S3Error {
    s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist")
}

pub(super) async fn put_bucket_cors(
    s3: &HoardS3,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let bucket = req.input.bucket;
        ensure_bucket(&ctx, &bucket).await?;
        let rules = CorsRules::from_dto(&req.input.cors_configuration)?;
        let cmd = MetaCommand::SetBucketSetting { bucket, setting: BucketSetting::Cors, value: Some(rules.to_json()) };
        write(&ctx, cmd).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    })
    .await
}

pub(super) async fn get_bucket_cors(
    s3: &HoardS3,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let b = req.input.bucket;
        let (record, stored) =
            ctx.meta.read(move |r| Ok((r.bucket(&b)?, r.bucket_setting(&b, BucketSetting::Cors)?))).await.or_s3()?;
        record.ok_or_else(no_such_bucket)?;
        let rules = CorsRules::from_json(&stored.ok_or_else(no_cors)?)?;
        Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules.to_dto().cors_rules) }))
    })
    .await
}

pub(super) async fn delete_bucket_cors(
    s3: &HoardS3,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let bucket = req.input.bucket;
        ensure_bucket(&ctx, &bucket).await?;
        write(&ctx, MetaCommand::SetBucketSetting { bucket, setting: BucketSetting::Cors, value: None }).await?;
        Ok(S3Response::new(DeleteBucketCorsOutput {}))
    })
    .await
}
