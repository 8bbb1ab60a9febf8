//! Multipart uploads: create, upload a part (or copy one), complete, abort, and list parts and uploads.

use super::*;

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

pub(super) async fn create_multipart_upload(
    s3: &HoardS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        check_key(&i.key)?;
        refuse_object_lock(
            i.object_lock_mode.as_ref(),
            i.object_lock_retain_until_date.as_ref(),
            i.object_lock_legal_hold_status.as_ref(),
        )?;
        let acl = permissions::write_acl(&ctx, &i.bucket, AclRequest::from(&i)).await?;
        let customer = sse::customer_key(sse_c_headers!(i), secure_of(&req.extensions))?;
        let checksum = upload_checksum_of(i.checksum_algorithm.as_ref(), i.checksum_type.as_ref())?;
        let (target, _) = write_target(&ctx, &i.bucket, i.server_side_encryption.as_ref(), customer.as_ref()).await?;
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
            )
            .with_acl(acl),
            checksum_algorithm: checksum.clone(),
            encryption,
        };
        write(&ctx, MetaCommand::CreateUpload(upload)).await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload_id),
            checksum_algorithm: i.checksum_algorithm,
            checksum_type: upload_checksum(checksum.as_deref()).map(|(_, full)| {
                ChecksumType::from_static(if full { ChecksumType::FULL_OBJECT } else { ChecksumType::COMPOSITE })
            }),
            server_side_encryption: described.server_side_encryption,
            sse_customer_algorithm: described.sse_customer_algorithm,
            sse_customer_key_md5: described.sse_customer_key_md5,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn upload_part(
    s3: &HoardS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let this = s3.clone();
    session::run(&s3.sessions, async move {
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
        if let Some((alg, _)) = upload_checksum(upload.checksum_algorithm.as_deref()) {
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
            checksum_crc64nvme: checksums.crc64nvme,
            server_side_encryption: described.server_side_encryption,
            sse_customer_algorithm: described.sse_customer_algorithm,
            sse_customer_key_md5: described.sse_customer_key_md5,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn upload_part_copy(
    s3: &HoardS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let this = s3.clone();
    session::run(&s3.sessions, async move {
        let ctx = &this.ctx;
        let i = req.input;
        let part_number = check_part_number(i.part_number)?;
        let secure = secure_of(&req.extensions);
        let customer = sse::customer_key(sse_c_headers!(i), secure)?;
        let source_customer = sse::customer_key(sse_c_headers!(i, copy_source), secure)?;
        let (src_bucket, src_key, src_version) = copy_source(&i.copy_source)?;
        let upload = get_upload(ctx, &i.bucket, &i.key, &i.upload_id).await?;
        let src = versions::get_copy_source(ctx, &src_bucket, &src_key, src_version.as_deref()).await?;
        if let Some(check) = req.extensions.get::<crate::access::SourceAclCheck>() {
            check.0.verify(&src)?;
        }
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
        if let Some((alg, _)) = upload_checksum(upload.checksum_algorithm.as_deref()) {
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
        let cmd = MetaCommand::CommitPart { bucket: i.bucket, key: i.key, upload_id: i.upload_id, part, now_ms: now };
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
                checksum_crc64nvme: checksums.crc64nvme,
            }),
            server_side_encryption: described.server_side_encryption,
            sse_customer_algorithm: described.sse_customer_algorithm,
            sse_customer_key_md5: described.sse_customer_key_md5,
            copy_source_version_id: (src_version.is_some() || !src.is_null_version())
                .then(|| src.public_version_id().to_string()),
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn complete_multipart_upload(
    s3: &HoardS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
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
                crc64nvme: w.checksum_crc64nvme.clone(),
                checksum_type: None,
            };
            if given.crc32.as_ref().is_some_and(|g| part.checksums.crc32.as_ref() != Some(g))
                || given.crc32c.as_ref().is_some_and(|g| part.checksums.crc32c.as_ref() != Some(g))
                || given.sha1.as_ref().is_some_and(|g| part.checksums.sha1.as_ref() != Some(g))
                || given.sha256.as_ref().is_some_and(|g| part.checksums.sha256.as_ref() != Some(g))
                || given.crc64nvme.as_ref().is_some_and(|g| part.checksums.crc64nvme.as_ref() != Some(g))
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
        let (alg, full) = upload_checksum(upload.checksum_algorithm.as_deref()).unzip();
        let checksums = multipart_checksums(alg, full.unwrap_or(false), &chosen);
        // A full-object checksum the client computed itself must match the parts' combined.
        if checksums.checksum_type.as_deref() == Some("FULL_OBJECT") {
            let given = Checksums {
                crc32: i.checksum_crc32.clone(),
                crc32c: i.checksum_crc32c.clone(),
                crc64nvme: i.checksum_crc64nvme.clone(),
                ..Checksums::default()
            };
            verify_checksums(&given, &checksums)?;
        }
        let size = chosen.iter().map(|p| p.size).sum();
        let now = ctx.env.now_ms();
        let versioning = versions::versioning_of(&ctx, &i.bucket).await?;
        let record = ObjectRecord {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            version_id: new_version_id(&ctx, versioning),
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
        let version_id = version_header(&record, versioning);
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
            checksum_crc64nvme: checksums.crc64nvme,
            checksum_type: checksums.checksum_type.map(ChecksumType::from),
            server_side_encryption: described.server_side_encryption,
            version_id,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn abort_multipart_upload(
    s3: &HoardS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let cmd =
            MetaCommand::AbortUpload { bucket: i.bucket, key: i.key, upload_id: i.upload_id, now_ms: ctx.env.now_ms() };
        write(&ctx, cmd).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    })
    .await
}

pub(super) async fn list_parts(s3: &HoardS3, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
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
                checksum_crc64nvme: p.checksums.crc64nvme,
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
            checksum_algorithm: upload_checksum(upload.checksum_algorithm.as_deref())
                .map(|(alg, _)| ChecksumAlgorithm::from(alg.to_string())),
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn list_multipart_uploads(
    s3: &HoardS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
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
                checksum_algorithm: upload_checksum(u.checksum_algorithm.as_deref())
                    .map(|(alg, _)| ChecksumAlgorithm::from(alg.to_string())),
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

fn check_part_number(n: i32) -> S3Result<u32> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
    }
    Ok(n as u32)
}
