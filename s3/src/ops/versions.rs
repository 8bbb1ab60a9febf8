//! Versioning: Put/GetBucketVersioning, ListObjectVersions, reading a version by id (or learning that the
//! key's current version is a delete marker), and deletes on versioned buckets.
//!
//! Invariants:
//! - Whether a write is a new version or the null version is decided from the bucket's versioning status read
//!   linearizably before the write is proposed (as S3, hoard does not promise that a write racing a change of
//!   the status sees the new one); the state machine applies either kind the same way whatever the status.
//! - A version id from a client is checked before anything is read: `null` or one hoard issues.

use super::*;

/// S3's answer to a version id hoard cannot have issued.
fn invalid_version() -> S3Error {
    s3_error!(InvalidArgument, "Invalid version id specified")
}

/// A version id a client named: `null`, or one hoard issues (`v` and 32 hex digits).
pub(super) fn check_version_id(id: &str) -> S3Result<()> {
    if id == hoard_protocol::NULL_VERSION_ID || !hoard_protocol::is_null_version_id(id) {
        Ok(())
    } else {
        Err(invalid_version())
    }
}

/// An error carrying `x-amz-delete-marker: true` (and the marker's version id), as S3 answers a read that
/// meets a delete marker.
fn with_marker_headers(mut e: S3Error, marker: &hoard_protocol::DeleteMarker) -> S3Error {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-amz-delete-marker", http::HeaderValue::from_static("true"));
    if let Ok(v) = http::HeaderValue::from_str(hoard_protocol::public_version_id(&marker.version_id)) {
        headers.insert("x-amz-version-id", v);
    }
    let mut when = Vec::new();
    if ts(marker.last_modified_ms).format(TimestampFormat::HttpDate, &mut when).is_ok() {
        if let Ok(v) = http::HeaderValue::from_bytes(&when) {
            headers.insert(http::header::LAST_MODIFIED, v);
        }
    }
    e.set_headers(headers);
    e
}

/// The object version a copy names as its source: as [`get_version`], but a delete marker is 400
/// `InvalidRequest` when named by id and a plain 404 `NoSuchKey` when current (the marker headers would describe
/// the source as if it were the answer's object).
pub(super) async fn get_copy_source(
    ctx: &NodeContext,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectRecord> {
    match get_version(ctx, bucket, key, version_id).await {
        Err(e) if *e.code() == s3s::S3ErrorCode::MethodNotAllowed => Err(s3_error!(
            InvalidRequest,
            "The source of a copy request may not specifically refer to a delete marker by version id."
        )),
        Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchKey => {
            Err(s3_error!(NoSuchKey, "The specified key does not exist."))
        }
        other => other,
    }
}

/// The object version a request names: with a version id that version (`405 MethodNotAllowed` when it is a
/// delete marker, `404 NoSuchVersion` when there is none), without one the current object (`404 NoSuchKey`,
/// with `x-amz-delete-marker: true` when the current version is a delete marker).
pub(super) async fn get_version(
    ctx: &NodeContext,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<ObjectRecord> {
    let (b, k) = (bucket.to_string(), key.to_string());
    let found = match version_id {
        Some(id) => {
            check_version_id(id)?;
            let id = id.to_string();
            ctx.meta.read(move |r| r.version(&b, &k, &id)).await.or_s3()?
        }
        None => ctx.meta.read(move |r| r.latest(&b, &k)).await.or_s3()?,
    };
    match found {
        Some(VersionRecord::Object(record)) => Ok(record),
        Some(VersionRecord::DeleteMarker(marker)) if version_id.is_some() => Err(with_marker_headers(
            s3_error!(MethodNotAllowed, "The specified method is not allowed against this resource."),
            &marker,
        )),
        Some(VersionRecord::DeleteMarker(marker)) => {
            Err(with_marker_headers(s3_error!(NoSuchKey, "The specified key does not exist."), &marker))
        }
        None => {
            ensure_bucket(ctx, bucket).await?;
            Err(match version_id {
                Some(_) => s3_error!(NoSuchVersion, "The specified version does not exist."),
                None => s3_error!(NoSuchKey, "The specified key does not exist."),
            })
        }
    }
}

/// What one delete did, for its response.
pub(super) struct Deleted {
    /// Whether a delete marker was made, or the version removed was one.
    pub(super) delete_marker: bool,
    /// The version removed, or the delete marker made.
    pub(super) version_id: Option<String>,
}

/// The bucket's versioning, read linearizably (for deletes, which make a delete marker where it is on).
pub(super) async fn versioning_of(ctx: &NodeContext, bucket: &str) -> S3Result<Option<VersioningStatus>> {
    let b = bucket.to_string();
    ctx.meta.read(move |r| r.versioning(&b)).await.or_s3()
}

/// Deletes one key of a bucket with this versioning: with a version id that version goes for good; without
/// one, on a bucket with versioning a delete marker is made (the null version's on a suspended bucket), and on
/// a bucket that never had it the object goes. Names are checked first.
pub(super) async fn delete_one(
    ctx: &NodeContext,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    versioning: Option<VersioningStatus>,
) -> S3Result<Deleted> {
    check_key(key)?;
    let now_ms = ctx.env.now_ms();
    let (bucket, key) = (bucket.to_string(), key.to_string());
    if let Some(id) = version_id {
        check_version_id(id)?;
        let cmd = MetaCommand::DeleteVersion { bucket, key, version_id: id.to_string(), now_ms };
        let removed = match write(ctx, cmd).await? {
            MetaResponse::VersionRemoved { removed } => removed,
            _ => None,
        };
        let delete_marker = removed.is_some_and(|v| v.is_delete_marker());
        return Ok(Deleted { delete_marker, version_id: Some(id.to_string()) });
    }
    match versioning {
        None => {
            let cmd = MetaCommand::DeleteObject { bucket: bucket.clone(), key: key.clone(), now_ms };
            cmd.check().map_err(name_error)?;
            match ctx.meta.write(cmd).await {
                // Versioning was turned on and a version written since the status was read: delete as the
                // bucket is now.
                Ok(MetaResponse::PreconditionFailed) => {
                    let now = versioning_of(ctx, &bucket).await?;
                    if now.is_none() {
                        return Err(s3_error!(InternalError, "a versioned object in an unversioned bucket"));
                    }
                    Box::pin(delete_one(ctx, &bucket, &key, None, now)).await
                }
                Ok(MetaResponse::Replaced { .. }) => Ok(Deleted { delete_marker: false, version_id: None }),
                Ok(other) => Err(crate::error::to_s3(ActorError::Refused(other))),
                Err(e) => Err(crate::error::to_s3(e)),
            }
        }
        Some(status) => {
            let version_id = new_version_id(ctx, Some(status));
            let public = hoard_protocol::public_version_id(&version_id).to_string();
            let marker = hoard_protocol::DeleteMarker { bucket, key, version_id, last_modified_ms: now_ms };
            write(ctx, MetaCommand::PutDeleteMarker { marker, now_ms }).await?;
            Ok(Deleted { delete_marker: true, version_id: Some(public) })
        }
    }
}

pub(super) async fn put_bucket_versioning(
    s3: &HoardS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let config = i.versioning_configuration;
        if config.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let status = match config.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => VersioningStatus::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => VersioningStatus::Suspended,
            _ => return Err(s3_error!(MalformedXML, "The versioning Status must be Enabled or Suspended")),
        };
        write(&ctx, MetaCommand::SetBucketVersioning { bucket: i.bucket, status }).await?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    })
    .await
}

pub(super) async fn get_bucket_versioning(
    s3: &HoardS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let b = req.input.bucket;
        let (record, versioning) = ctx.meta.read(move |r| Ok((r.bucket(&b)?, r.versioning(&b)?))).await.or_s3()?;
        record.ok_or_else(no_such_bucket)?;
        let status = versioning.map(|v| match v {
            VersioningStatus::Enabled => BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED),
            VersioningStatus::Suspended => BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED),
        });
        Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
    })
    .await
}

pub(super) async fn list_object_versions(
    s3: &HoardS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let url = encoding_is_url(i.encoding_type.as_ref())?;
        let max_keys = clamp_max_keys(i.max_keys)?;
        let key_marker = i.key_marker.filter(|k| !k.is_empty());
        let version_id_marker = i.version_id_marker.filter(|v| !v.is_empty());
        if let Some(v) = &version_id_marker {
            if key_marker.is_none() {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ));
            }
            check_version_id(v)?;
        }
        ensure_bucket(&ctx, &i.bucket).await?;
        let q = VersionQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone().filter(|d| !d.is_empty()),
            key_marker: key_marker.clone(),
            version_id_marker: version_id_marker.clone(),
            max_keys,
        };
        let b = i.bucket.clone();
        let page = ctx.meta.read(move |r| r.list_versions(&b, &q)).await.or_s3()?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for entry in page.versions {
            let id = hoard_protocol::public_version_id(entry.version.version_id()).to_string();
            match entry.version {
                VersionRecord::Object(o) => versions.push(ObjectVersion {
                    e_tag: Some(etag(&o.etag)),
                    is_latest: Some(entry.is_latest),
                    key: Some(enc(o.key)),
                    last_modified: Some(ts(o.last_modified_ms)),
                    owner: Some(owner()),
                    size: Some(o.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    version_id: Some(id),
                    ..Default::default()
                }),
                VersionRecord::DeleteMarker(m) => markers.push(DeleteMarkerEntry {
                    is_latest: Some(entry.is_latest),
                    key: Some(enc(m.key)),
                    last_modified: Some(ts(m.last_modified_ms)),
                    owner: Some(owner()),
                    version_id: Some(id),
                }),
            }
        }
        let prefixes: Vec<CommonPrefix> =
            page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(i.prefix.unwrap_or_default())),
            delimiter: i.delimiter.filter(|d| !d.is_empty()).map(enc),
            encoding_type: i.encoding_type,
            key_marker: Some(enc(key_marker.unwrap_or_default())),
            version_id_marker: Some(version_id_marker.unwrap_or_default()),
            next_key_marker: page.next_key_marker.map(enc),
            next_version_id_marker: page.next_version_id_marker,
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.is_truncated),
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            ..Default::default()
        }))
    })
    .await
}
