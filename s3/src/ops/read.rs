//! Reading objects back: GetObject and HeadObject, ranges and part numbers on the plaintext, and the byte
//! streams of inline and coded objects.

use super::*;
use crate::access::ReadAclCheck;

/// GetObject, and HeadObject without the body: conditions, range or part, headers, checksums.
pub(super) async fn read_object(
    ctx: &NodeContext,
    i: GetObjectInput,
    secure: Secure,
    with_body: bool,
    acl_check: Option<ReadAclCheck>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let customer = sse::customer_key(sse_c_headers!(i), secure)?;
    let rec = versions::get_version(ctx, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    if let Some(check) = acl_check {
        check.0.verify(&rec)?;
    }
    check_read_conditions(
        &rec,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let (start, end, partial) = read_window(&rec, i.range.as_ref(), i.part_number)?;
    // HEAD of an SSE-S3 object needs no key; an SSE-C key is checked by HEAD as by GET.
    let key = if with_body || customer.is_some() || !matches!(rec.encryption, Encryption::SseS3 { .. }) {
        sse::for_read(ctx, &rec.encryption, customer.as_ref()).await?
    } else {
        None
    };
    let described = sse::headers(&rec.encryption, customer.as_ref());
    let h = &rec.headers;
    let want_checksums = !partial && i.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    let out = GetObjectOutput {
        body: with_body.then(|| StreamingBlob::wrap(object_bytes(ctx, &rec, start, end, key))),
        content_length: Some((end - start) as i64),
        content_range: partial.then(|| format!("bytes {}-{}/{}", start, end.saturating_sub(1), rec.size)),
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(&rec.etag)),
        last_modified: Some(ts(rec.last_modified_ms)),
        content_type: i.response_content_type.or_else(|| h.content_type.clone()),
        content_encoding: i.response_content_encoding.or_else(|| h.content_encoding.clone()),
        content_disposition: i.response_content_disposition.or_else(|| h.content_disposition.clone()),
        content_language: i.response_content_language.or_else(|| h.content_language.clone()),
        cache_control: i.response_cache_control.or_else(|| h.cache_control.clone()),
        expires: i.response_expires.or_else(|| parse_expires(&h.expires)),
        metadata: metadata_of(h),
        parts_count: (rec.segments.len() > 1 || rec.segments.first().is_some_and(|s| s.part_number > 0))
            .then_some(rec.segments.len() as i32),
        checksum_crc32: rec.checksums.crc32.clone().filter(|_| want_checksums),
        checksum_crc32c: rec.checksums.crc32c.clone().filter(|_| want_checksums),
        checksum_sha1: rec.checksums.sha1.clone().filter(|_| want_checksums),
        checksum_sha256: rec.checksums.sha256.clone().filter(|_| want_checksums),
        checksum_crc64nvme: rec.checksums.crc64nvme.clone().filter(|_| want_checksums),
        checksum_type: rec.checksums.checksum_type.clone().filter(|_| want_checksums).map(ChecksumType::from),
        server_side_encryption: described.server_side_encryption,
        sse_customer_algorithm: described.sse_customer_algorithm,
        sse_customer_key_md5: described.sse_customer_key_md5,
        version_id: (i.version_id.is_some() || !rec.is_null_version()).then(|| rec.public_version_id().to_string()),
        ..Default::default()
    };
    let mut resp = S3Response::new(out);
    if partial {
        resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(resp)
}

/// The byte ranges of the segments that make up `[start, end)` of an object.
pub(super) fn segment_ranges(rec: &ObjectRecord, start: u64, end: u64) -> Vec<SegmentRange> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for seg in &rec.segments {
        let (s, e) = (offset, offset + seg.plain_size());
        offset = e;
        if e <= start || s >= end {
            continue;
        }
        out.push(SegmentRange { segment: seg.clone(), start: start.max(s) - s, end: end.min(e) - s });
    }
    out
}

/// The bytes `[start, end)` of an object, from its record when inline, from its segments otherwise.
pub(super) fn object_bytes(
    ctx: &NodeContext,
    rec: &ObjectRecord,
    start: u64,
    end: u64,
    key: Option<SealKey>,
) -> impl futures::Stream<Item = Result<Bytes, ActorError>> + Send + Sync + 'static {
    use futures::future::Either;
    match &rec.inline {
        Some(data) => {
            let (ctx, data) = (ctx.clone(), Bytes::from(data.clone()));
            let slice = async move {
                let plain = match key {
                    None => data,
                    Some(key) => {
                        let place = BlockPlace { index: 0, last: true };
                        ctx.encryptor.open(key.sealer(0, INLINE_SALT), place, vec![data]).await?
                    }
                };
                Ok(plain.slice((start as usize).min(plain.len())..(end as usize).min(plain.len())))
            };
            Either::Left(futures::stream::once(Box::pin(slice)))
        }
        None => Either::Right(read_ranges(ctx.clone(), segment_ranges(rec, start, end), key)),
    }
}

/// The `bytes=a-b` of UploadPartCopy's `x-amz-copy-source-range`.
pub(super) fn parse_copy_range(s: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.trim().parse().map_err(|_| bad())?;
    let last: u64 = b.trim().parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable for a source object of size {size}"
        ));
    }
    Ok((first, last + 1))
}

/// The bytes `[start, end)` a GET or HEAD returns, and whether that is a partial response.
pub(super) fn read_window(
    rec: &ObjectRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(u64, u64, bool)> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        let mut offset = 0;
        for (idx, seg) in rec.segments.iter().enumerate() {
            let number = if seg.part_number == 0 { idx as i32 + 1 } else { seg.part_number as i32 };
            if number == n {
                // Any part of a multipart object is a partial response (206), as in S3. The window is
                // on the plaintext: a sealed segment's stored size includes its tags.
                return Ok((offset, offset + seg.plain_size(), seg.part_number > 0));
            }
            offset += seg.plain_size();
        }
        if n == 1 && rec.segments.is_empty() {
            return Ok((0, rec.size, false));
        }
        let mut e = S3Error::with_message(
            s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(e);
    }
    match range {
        None => Ok((0, rec.size, false)),
        // No byte of an empty object can be satisfied, whatever the range (S3 answers 416).
        Some(_) if rec.size == 0 => {
            Err(s3_error!(InvalidRange, "The requested range is not satisfiable for an empty object"))
        }
        Some(r) => match r.check(rec.size) {
            Ok(w) => Ok((w.start, w.end, true)),
            Err(_) => Err(s3_error!(
                InvalidRange,
                "The requested range is not satisfiable for an object of size {}",
                rec.size
            )),
        },
    }
}

fn parse_expires(s: &Option<String>) -> Option<Timestamp> {
    s.as_deref().and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

fn metadata_of(h: &ObjectHeaders) -> Option<Metadata> {
    let metadata: Metadata = h.client_metadata().map(|(k, v)| (k.clone(), v.clone())).collect();
    (!metadata.is_empty()).then_some(metadata)
}

/// GetObjectAttributes: what S3 asks for of the object (or of the version named), without its bytes. An SSE-C
/// object needs its key, as for HEAD. Parts are listed for a multipart object only (with their sizes; part
/// checksums are not kept once an upload completes).
pub(super) async fn object_attributes(
    ctx: &NodeContext,
    i: GetObjectAttributesInput,
    secure: Secure,
    acl_check: Option<ReadAclCheck>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let customer = sse::customer_key(sse_c_headers!(i), secure)?;
    let rec = versions::get_version(ctx, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    if let Some(check) = acl_check {
        check.0.verify(&rec)?;
    }
    if customer.is_some() || matches!(rec.encryption, Encryption::SseC { .. }) {
        sse::for_read(ctx, &rec.encryption, customer.as_ref()).await?;
    }
    // One header value may list several names, comma-separated (as boto3 sends them).
    let wanted: Vec<&str> = i
        .object_attributes
        .iter()
        .flat_map(|a| a.as_str().split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(s3_error!(InvalidArgument, "x-amz-object-attributes must name at least one attribute"));
    }
    if let Some(unknown) = wanted.iter().find(|a| {
        ![
            ObjectAttributes::CHECKSUM,
            ObjectAttributes::ETAG,
            ObjectAttributes::OBJECT_PARTS,
            ObjectAttributes::OBJECT_SIZE,
            ObjectAttributes::STORAGE_CLASS,
        ]
        .contains(a)
    }) {
        return Err(s3_error!(InvalidArgument, "Invalid attribute name specified: {unknown}"));
    }
    let asked = |name: &str| wanted.contains(&name);
    let c = &rec.checksums;
    let has_checksum =
        c.crc32.is_some() || c.crc32c.is_some() || c.sha1.is_some() || c.sha256.is_some() || c.crc64nvme.is_some();
    let multipart = rec.segments.iter().any(|s| s.part_number > 0);
    let object_parts = (asked(ObjectAttributes::OBJECT_PARTS) && multipart).then(|| {
        let max = i.max_parts.map(|m| m.clamp(0, 1000) as usize).unwrap_or(1000);
        let after = i.part_number_marker.map(|m| m.max(0) as u32).unwrap_or(0);
        let mut rest = rec.segments.iter().filter(|s| s.part_number > after);
        let parts: Vec<ObjectPart> = rest
            .by_ref()
            .take(max)
            .map(|s| ObjectPart {
                part_number: Some(s.part_number as i32),
                size: Some(s.plain_size() as i64),
                ..Default::default()
            })
            .collect();
        let truncated = rest.next().is_some();
        GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            next_part_number_marker: parts.last().filter(|_| truncated).and_then(|p| p.part_number),
            part_number_marker: Some(after as i32),
            total_parts_count: Some(rec.segments.len() as i32),
            parts: Some(parts),
        }
    });
    let out = GetObjectAttributesOutput {
        e_tag: asked(ObjectAttributes::ETAG).then(|| etag(&rec.etag)),
        checksum: (asked(ObjectAttributes::CHECKSUM) && has_checksum).then(|| Checksum {
            checksum_crc32: c.crc32.clone(),
            checksum_crc32c: c.crc32c.clone(),
            checksum_crc64nvme: c.crc64nvme.clone(),
            checksum_sha1: c.sha1.clone(),
            checksum_sha256: c.sha256.clone(),
            checksum_type: Some(ChecksumType::from(
                c.checksum_type.clone().unwrap_or_else(|| ChecksumType::FULL_OBJECT.to_string()),
            )),
        }),
        object_parts,
        object_size: asked(ObjectAttributes::OBJECT_SIZE).then_some(rec.size as i64),
        storage_class: asked(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        last_modified: Some(ts(rec.last_modified_ms)),
        version_id: (i.version_id.is_some() || !rec.is_null_version()).then(|| rec.public_version_id().to_string()),
        ..Default::default()
    };
    Ok(S3Response::new(out))
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
}
