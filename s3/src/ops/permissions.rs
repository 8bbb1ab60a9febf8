//! Who may reach a bucket, as its owner sets it: ACLs (bucket and object), the bucket policy and its status, and
//! Block Public Access. Each setting is validated here, before it is proposed, and kept as a bucket setting
//! (`MetaCommand::SetBucketSetting`) or with the object version it is for (`MetaCommand::SetObjectAcl`); the
//! authorisation ([`crate::access`]) reads them back.
//!
//! Invariants:
//! - A setting is stored only once it parses and names known keys: an ACL grant or a policy principal that is
//!   no key is refused, never kept to match nobody.
//! - With BlockPublicAcls, a public ACL (on the bucket, or on an object, by header or by PutObjectAcl) is refused
//!   403 and nothing changes; with BlockPublicPolicy, a public policy is.
//! - An object's ACL names its bucket's owner as owner, whoever wrote it; a write's ACL is the one it asks for
//!   (copying an object never copies its source's), and one no more open than private is not kept.

use hoard_actors::NodeContext;
use hoard_protocol::BucketSetting;
use hoard_protocol::MetaCommand;
use hoard_protocol::MAX_BUCKET_SETTING;
use s3s::dto::*;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3ErrorCode;
use s3s::S3Request;
use s3s::S3Response;
use s3s::S3Result;

use super::no_such_bucket;
use super::versions::get_version;
use super::write;
use super::HoardS3;
use crate::access::BucketAccess;
use crate::access::PublicAccessBlock;
use crate::acl::Acl;
use crate::acl::AclRequest;
use crate::acl::ROOT_ID;
use crate::error::OrS3;
use crate::policy::Policy;
use crate::policy::MAX_POLICY_BYTES;
use crate::session;

/// The bucket's access settings, read from the local state machine right after a linearizable barrier (so a
/// setting just written through any node is seen).
async fn bucket_access(ctx: &NodeContext, bucket: &str) -> S3Result<BucketAccess> {
    ctx.meta.read(|_| Ok(())).await.or_s3()?;
    let reader = ctx.meta.local().or_s3()?;
    BucketAccess::load(&reader, bucket)?.ok_or_else(no_such_bucket)
}

/// Whether `id` names an access key (root's canonical id included).
fn known_key(ctx: &NodeContext) -> S3Result<impl Fn(&str) -> bool> {
    let reader = ctx.meta.local().or_s3()?;
    Ok(move |id: &str| id == ROOT_ID || reader.access_key(id).ok().flatten().is_some())
}

fn blocked() -> S3Error {
    s3_error!(AccessDenied, "Access Denied: the bucket's Block Public Access settings refuse a public ACL or policy")
}

async fn set(ctx: &NodeContext, bucket: String, setting: BucketSetting, value: Option<String>) -> S3Result<()> {
    write(ctx, MetaCommand::SetBucketSetting { bucket, setting, value }).await.map(|_| ())
}

/// The ACL a write asks for (`x-amz-acl`, `x-amz-grant-*`), as the new version keeps it: `None` when it asks
/// for none (the object is then private to the bucket's owner and the writer's grants). Refused as S3 refuses
/// it when it names unknown keys, or is public where Block Public Access forbids.
pub(super) async fn write_acl(ctx: &NodeContext, bucket: &str, asked: AclRequest<'_>) -> S3Result<Option<String>> {
    if asked.canned.is_none()
        && asked.grant_read.is_none()
        && asked.grant_read_acp.is_none()
        && asked.grant_write_acp.is_none()
        && asked.grant_full_control.is_none()
    {
        return Ok(None);
    }
    let access = bucket_access(ctx, bucket).await?;
    // Objects are their bucket owner's, whoever wrote them (one account): a writer gains no rights over what
    // it wrote beyond its grant.
    let owner = access.owner.as_str();
    let Some(acl) = Acl::from_request(&asked, owner, owner, known_key(ctx)?)? else { return Ok(None) };
    if acl.is_public() && access.block.block_public_acls {
        return Err(blocked());
    }
    Ok((acl != Acl::private(owner)).then(|| acl.to_json()))
}

pub(super) async fn put_bucket_acl(
    s3: &HoardS3,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let bucket = req.input.bucket.clone();
        let access = bucket_access(&ctx, &bucket).await?;
        let acl = Acl::from_request(&AclRequest::from(&req.input), &access.owner, &access.owner, known_key(&ctx)?)?
            .ok_or_else(|| s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"))?;
        if acl.is_public() && access.block.block_public_acls {
            return Err(blocked());
        }
        set(&ctx, bucket, BucketSetting::Acl, Some(acl.to_json())).await?;
        Ok(S3Response::new(PutBucketAclOutput {}))
    })
    .await
}

pub(super) async fn get_bucket_acl(
    s3: &HoardS3,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let acl = bucket_access(&ctx, &req.input.bucket).await?.acl_or_private().to_dto();
        Ok(S3Response::new(GetBucketAclOutput { grants: acl.grants, owner: acl.owner }))
    })
    .await
}

/// The bucket's access settings and the object version a request names.
async fn object_version(
    ctx: &NodeContext,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(BucketAccess, hoard_protocol::ObjectRecord)> {
    super::check_key(key)?;
    let access = bucket_access(ctx, bucket).await?;
    Ok((access, get_version(ctx, bucket, key, version_id).await?))
}

pub(super) async fn put_object_acl(
    s3: &HoardS3,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = &req.input;
        let (access, record) = object_version(&ctx, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let owner = access.owner.as_str();
        let acl = Acl::from_request(&AclRequest::from(i), owner, owner, known_key(&ctx)?)?
            .ok_or_else(|| s3_error!(MissingSecurityHeader, "Your request was missing a required header: x-amz-acl"))?;
        if acl.is_public() && access.block.block_public_acls {
            return Err(blocked());
        }
        let cmd = MetaCommand::SetObjectAcl {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            version_id: record.version_id.clone(),
            acl: Some(acl.to_json()),
        };
        write(&ctx, cmd).await?;
        let version_id = i.version_id.is_some().then(|| record.public_version_id().to_string());
        Ok(S3Response::new(PutObjectAclOutput::default()).map_version(version_id))
    })
    .await
}

/// PutObjectAcl's answer has no version field in s3s; the version acted on is said in `x-amz-version-id`.
trait MapVersion {
    fn map_version(self, version_id: Option<String>) -> Self;
}

impl<T> MapVersion for S3Response<T> {
    fn map_version(mut self, version_id: Option<String>) -> Self {
        if let Some(v) = version_id.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            self.headers.insert("x-amz-version-id", v);
        }
        self
    }
}

pub(super) async fn get_object_acl(
    s3: &HoardS3,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = &req.input;
        let (access, record) = object_version(&ctx, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let dto = access.object_acl(&record)?.to_dto();
        Ok(S3Response::new(GetObjectAclOutput { grants: dto.grants, owner: dto.owner, request_charged: None }))
    })
    .await
}

pub(super) async fn put_bucket_policy(
    s3: &HoardS3,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let (bucket, text) = (req.input.bucket, req.input.policy);
        let access = bucket_access(&ctx, &bucket).await?;
        if text.len() > MAX_POLICY_BYTES.min(MAX_BUCKET_SETTING) {
            return Err(s3_error!(MalformedPolicy, "Policies must be 20 KB or smaller"));
        }
        let policy = Policy::parse(&text, &bucket, known_key(&ctx)?)?;
        if policy.is_public() && access.block.block_public_policy {
            return Err(blocked());
        }
        set(&ctx, bucket, BucketSetting::Policy, Some(text)).await?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    })
    .await
}

fn no_policy() -> S3Error {
    s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")
}

/// The bucket's policy text, as it was put.
async fn policy_text(ctx: &NodeContext, bucket: &str) -> S3Result<String> {
    bucket_access(ctx, bucket).await?;
    let b = bucket.to_string();
    ctx.meta.read(move |r| r.bucket_setting(&b, BucketSetting::Policy)).await.or_s3()?.ok_or_else(no_policy)
}

pub(super) async fn get_bucket_policy(
    s3: &HoardS3,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let policy = policy_text(&ctx, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
    })
    .await
}

pub(super) async fn delete_bucket_policy(
    s3: &HoardS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        bucket_access(&ctx, &req.input.bucket).await?;
        set(&ctx, req.input.bucket, BucketSetting::Policy, None).await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    })
    .await
}

pub(super) async fn get_bucket_policy_status(
    s3: &HoardS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let access = bucket_access(&ctx, &req.input.bucket).await?;
        let policy = access.policy.ok_or_else(no_policy)?;
        let status = PolicyStatus { is_public: Some(policy.is_public()) };
        Ok(S3Response::new(GetBucketPolicyStatusOutput { policy_status: Some(status) }))
    })
    .await
}

fn no_public_access_block() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

pub(super) async fn put_public_access_block(
    s3: &HoardS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let bucket = req.input.bucket;
        bucket_access(&ctx, &bucket).await?;
        let block = PublicAccessBlock::from_dto(&req.input.public_access_block_configuration);
        let text = serde_json::to_string(&block).map_err(|e| s3_error!(InternalError, "{e}"))?;
        set(&ctx, bucket, BucketSetting::PublicAccessBlock, Some(text)).await?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    })
    .await
}

pub(super) async fn get_public_access_block(
    s3: &HoardS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let bucket = req.input.bucket;
        bucket_access(&ctx, &bucket).await?;
        let b = bucket.clone();
        let stored = ctx.meta.read(move |r| r.bucket_setting(&b, BucketSetting::PublicAccessBlock)).await.or_s3()?;
        let text = stored.ok_or_else(no_public_access_block)?;
        let block: PublicAccessBlock = serde_json::from_str(&text)
            .map_err(|_| s3_error!(InternalError, "a stored bucket setting does not parse"))?;
        Ok(S3Response::new(GetPublicAccessBlockOutput { public_access_block_configuration: Some(block.to_dto()) }))
    })
    .await
}

pub(super) async fn delete_public_access_block(
    s3: &HoardS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        bucket_access(&ctx, &req.input.bucket).await?;
        set(&ctx, req.input.bucket, BucketSetting::PublicAccessBlock, None).await?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    })
    .await
}
