//! Whole objects: PutObject, GetObject and HeadObject (read back by `read`), DeleteObject(s), CopyObject.

use super::*;
use crate::access::AccessRequest;
use crate::access::BucketDecider;
use crate::access::ClientAddr;
use crate::access::ReadAclCheck;
use crate::access::SourceAclCheck;

pub(super) async fn put_object(s3: &HoardS3, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let this = s3.clone();
    session::run(&s3.sessions, async move {
        let ctx = &this.ctx;
        let i = req.input;
        check_key(&i.key)?;
        refuse_object_lock(
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let acl = permissions::write_acl(ctx, &i.bucket, AclRequest::from(&i)).await?;
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
        let (target, versioning) =
            write_target(ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
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
        let (stored, checksums) =
            this.put_body(0, (i.body, i.content_length), expected, content_md5, req.trailing_headers, seal_key).await?;
        let etag_hex = write_etag(&stored.digests().md5, seal.as_ref().map(|s| (&s.encryption, &s.key)));
        let (segments, inline) = match &stored {
            Stored::Inline { data, .. } => (Vec::new(), Some(data.to_vec())),
            Stored::Segment(w) => (vec![w.segment.clone()], None),
        };
        let record = ObjectRecord {
            bucket: i.bucket,
            key: i.key,
            version_id: new_version_id(ctx, versioning),
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
            )
            .with_acl(acl),
            checksums: checksums.clone(),
            segments,
            encryption: seal.map(|s| s.encryption).unwrap_or_default(),
            inline,
        };
        let described = sse::headers(&record.encryption, customer.as_ref());
        let version_id = version_header(&record, versioning);
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
            checksum_crc64nvme: checksums.crc64nvme,
            server_side_encryption: described.server_side_encryption,
            sse_customer_algorithm: described.sse_customer_algorithm,
            sse_customer_key_md5: described.sse_customer_key_md5,
            version_id,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn get_object(s3: &HoardS3, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let ctx = s3.ctx.clone();
    let secure = secure_of(&req.extensions);
    let check = req.extensions.get::<ReadAclCheck>().cloned();
    session::run(&s3.sessions, async move { read_object(&ctx, req.input, secure, true, check).await }).await
}

pub(super) async fn head_object(
    s3: &HoardS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let ctx = s3.ctx.clone();
    let secure = secure_of(&req.extensions);
    let check = req.extensions.get::<ReadAclCheck>().cloned();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let as_get = GetObjectInput {
            bucket: i.bucket,
            key: i.key,
            version_id: i.version_id,
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
        let got = read_object(&ctx, as_get, secure, false, check).await?;
        let o = got.output;
        let out = HeadObjectOutput {
            accept_ranges: o.accept_ranges,
            cache_control: o.cache_control,
            checksum_crc32: o.checksum_crc32,
            checksum_crc32c: o.checksum_crc32c,
            checksum_sha1: o.checksum_sha1,
            checksum_sha256: o.checksum_sha256,
            checksum_crc64nvme: o.checksum_crc64nvme,
            checksum_type: o.checksum_type,
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
            version_id: o.version_id,
            ..Default::default()
        };
        let mut resp = S3Response::new(out);
        resp.status = got.status;
        Ok(resp)
    })
    .await
}

pub(super) async fn delete_object(
    s3: &HoardS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let versioning = versions::versioning_of(&ctx, &i.bucket).await?;
        let done = versions::delete_one(&ctx, &i.bucket, &i.key, i.version_id.as_deref(), versioning).await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: done.delete_marker.then_some(true),
            version_id: done.version_id,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn delete_objects(
    s3: &HoardS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        if i.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(MalformedXML, "A DeleteObjects request may name at most 1000 keys"));
        }
        // Every key and version id is checked before any is proposed: one bad name deletes nothing.
        for obj in &i.delete.objects {
            check_key(&obj.key)?;
            if let Some(id) = &obj.version_id {
                versions::check_version_id(id)?;
            }
        }
        ensure_bucket(&ctx, &i.bucket).await?;
        let versioning = versions::versioning_of(&ctx, &i.bucket).await?;
        let quiet = i.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        // Each key is authorised as its own DeleteObject would be (a policy may deny some keys and not others),
        // the bucket's settings read once, off the async workers (a policy's patterns may cost time per key;
        // inline in the simulation).
        let allowed = {
            let principal = crate::access::Caller::of(&req.extensions);
            let (secure, source_ip) = (secure_of(&req.extensions).0, req.extensions.get::<ClientAddr>().map(|a| a.0));
            let reader = ctx.meta.local().or_s3()?;
            let bucket = i.bucket.clone();
            let keys: Vec<(String, Option<String>)> =
                i.delete.objects.iter().map(|o| (o.key.clone(), o.version_id.clone())).collect();
            hoard_storage::exec::blocking(move || {
                let decider = BucketDecider::load(&reader, &principal, &bucket)?.ok_or_else(no_such_bucket)?;
                let decide = |(key, version_id): &(String, Option<String>)| {
                    decider.decide(&AccessRequest {
                        principal: &principal,
                        op: "DeleteObject",
                        bucket: Some(&bucket),
                        key: Some(key),
                        version_id: version_id.as_deref(),
                        secure,
                        source_ip,
                        prefix: None,
                    })
                };
                Ok::<_, S3Error>(keys.iter().map(decide).collect::<Vec<_>>())
            })
            .await
            .map_err(|e| s3_error!(InternalError, "{e}"))??
        };
        // Proposed together, so Raft commits them in a few batched log appends.
        let results = futures::future::join_all(i.delete.objects.iter().zip(allowed).map(|(obj, allowed)| async {
            allowed?;
            versions::delete_one(&ctx, &i.bucket, &obj.key, obj.version_id.as_deref(), versioning).await
        }))
        .await;
        for (obj, result) in i.delete.objects.into_iter().zip(results) {
            match result {
                Ok(done) => {
                    if !quiet {
                        // A marker made, or one deleted by its id: either way S3 names its version.
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            delete_marker: done.delete_marker.then_some(true),
                            delete_marker_version_id: done.version_id.clone().filter(|_| done.delete_marker),
                            version_id: obj.version_id,
                        });
                    }
                }
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_string),
                    version_id: obj.version_id,
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

pub(super) async fn copy_object(
    s3: &HoardS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let this = s3.clone();
    session::run(&s3.sessions, async move {
        let ctx = this.ctx.clone();
        let i = req.input;
        check_key(&i.key)?;
        refuse_object_lock(
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let secure = secure_of(&req.extensions);
        let customer = sse::customer_key(sse_c_headers!(i), secure)?;
        let source_customer = sse::customer_key(sse_c_headers!(i, copy_source), secure)?;
        let (src_bucket, src_key, src_version) = copy_source(&i.copy_source)?;
        let src = versions::get_copy_source(&ctx, &src_bucket, &src_key, src_version.as_deref()).await?;
        if let Some(check) = req.extensions.get::<SourceAclCheck>() {
            check.0.verify(&src)?;
        }
        check_copy_conditions(
            &src,
            i.copy_source_if_match.as_ref(),
            i.copy_source_if_none_match.as_ref(),
            i.copy_source_if_modified_since.as_ref(),
            i.copy_source_if_unmodified_since.as_ref(),
        )?;
        let replace = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let acl = permissions::write_acl(&ctx, &i.bucket, AclRequest::from(&i)).await?;
        let changes_encryption = i.server_side_encryption.is_some() || customer.is_some();
        // A copy of an older version onto its own key restores it: only the current one is a copy onto itself.
        let onto_itself = src_bucket == i.bucket && src_key == i.key && !replace && !changes_encryption && {
            let (b, k) = (src_bucket.clone(), src_key.clone());
            let current = ctx.meta.read(move |r| r.object(&b, &k)).await.or_s3()?;
            current.is_some_and(|c| c.version_id == src.version_id)
        };
        if onto_itself {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let (target, versioning) =
            write_target(&ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
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
        }
        .with_acl(acl);
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
        record.version_id = new_version_id(&ctx, versioning);
        record.last_modified_ms = now;
        record.headers = headers;
        faults::hit(ctx.faults.as_ref(), "put.before_commit").await.or_s3()?;
        let described = sse::headers(&record.encryption, customer.as_ref());
        let (etag_hex, checksums) = (record.etag.clone(), record.checksums.clone());
        let version_id = version_header(&record, versioning);
        let copy_source_version_id = (src_version.is_some() || !src.is_null_version())
            .then(|| src.public_version_id().to_string());
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
                checksum_crc64nvme: checksums.crc64nvme,
                ..Default::default()
            }),
            server_side_encryption: described.server_side_encryption,
            sse_customer_algorithm: described.sse_customer_algorithm,
            sse_customer_key_md5: described.sse_customer_key_md5,
            version_id,
            copy_source_version_id,
            ..Default::default()
        }))
    })
    .await
}
