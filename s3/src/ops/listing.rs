//! Listings: ListObjects (v1 and v2) pages, continuation tokens, URL encoding, and the entries they hold.
//!
//! Invariants (as AWS answers; MinIO and Ceph differ on some):
//! - With `encoding-type=url` every name a listing returns (keys, prefixes, the delimiter, markers, start-after)
//!   is URL-encoded; without it none is. A continuation token is opaque and echoed as given.
//! - An empty delimiter is no delimiter: it groups nothing and is not echoed.
//! - ListObjects (v1) always echoes its marker (empty when none was given) and names each entry's owner;
//!   ListObjectsV2 names owners only when asked to (`fetch-owner=true`).

use super::*;

pub(super) async fn list_objects(
    s3: &HoardS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let url = encoding_is_url(i.encoding_type.as_ref())?;
        let max_keys = clamp_max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let delimiter = i.delimiter.filter(|d| !d.is_empty());
        let entries = Entries { url, owner: true };
        let page = list(&ctx, &i.bucket, &prefix, delimiter.clone(), i.marker.clone(), max_keys, entries).await?;
        let enc = |s: String| if url { url_encode(&s) } else { s };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(i.marker.unwrap_or_default())),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.is_truncated),
            contents: Some(page.contents),
            common_prefixes: Some(page.common_prefixes),
            delimiter: delimiter.map(enc),
            next_marker: page.last.map(enc),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    })
    .await
}

pub(super) async fn list_objects_v2(
    s3: &HoardS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let ctx = s3.ctx.clone();
    session::run(&s3.sessions, async move {
        let i = req.input;
        let url = encoding_is_url(i.encoding_type.as_ref())?;
        let max_keys = clamp_max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone(),
        };
        let delimiter = i.delimiter.filter(|d| !d.is_empty());
        let entries = Entries { url, owner: i.fetch_owner == Some(true) };
        let page = list(&ctx, &i.bucket, &prefix, delimiter.clone(), after, max_keys, entries).await?;
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
            delimiter: delimiter.map(enc),
            encoding_type: i.encoding_type,
            start_after: i.start_after.map(enc),
            ..Default::default()
        }))
    })
    .await
}

pub(super) fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

pub(super) fn owner() -> Owner {
    Owner { display_name: Some("hoard".into()), id: Some("hoard".into()) }
}

pub(super) fn encoding_is_url(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(|e| e.as_str()) {
        None => Ok(false),
        Some(s) if s.eq_ignore_ascii_case("url") => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request")),
    }
}

pub(super) fn clamp_max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        Some(m) if m < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(m) => Ok((m as usize).min(MAX_KEYS)),
        None => Ok(MAX_KEYS),
    }
}

pub(super) fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub(super) fn decode_token(t: &str) -> S3Result<String> {
    let bad = || s3_error!(InvalidArgument, "The continuation token provided is incorrect");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// One page of a listing, its keys and prefixes already encoded as the request asked.
pub(super) struct Listing {
    pub(super) contents: Vec<Object>,
    pub(super) common_prefixes: Vec<CommonPrefix>,
    pub(super) is_truncated: bool,
    /// The last key or prefix returned (unencoded), when more follow: where the next page starts.
    pub(super) last: Option<String>,
}

/// How a listing writes its entries.
#[derive(Clone, Copy)]
pub(super) struct Entries {
    /// Keys and prefixes URL-encoded (`encoding-type=url`).
    pub(super) url: bool,
    /// Each object's owner named.
    pub(super) owner: bool,
}

/// One page of `bucket` under `prefix`, grouped by `delimiter` (which is not empty).
pub(super) async fn list(
    ctx: &NodeContext,
    bucket: &str,
    prefix: &str,
    delimiter: Option<String>,
    start_after: Option<String>,
    max_keys: usize,
    entries: Entries,
) -> S3Result<Listing> {
    ensure_bucket(ctx, bucket).await?;
    let q = ListQuery { prefix: prefix.to_string(), delimiter, start_after, max_keys };
    let b = bucket.to_string();
    let page = ctx.meta.read(move |r| r.list_objects(&b, &q)).await.or_s3()?;
    let url = entries.url;
    let enc = |s: String| if url { url_encode(&s) } else { s };
    Ok(Listing {
        contents: page.objects.into_iter().map(|o| object_entry(o, entries)).collect(),
        common_prefixes: page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
        is_truncated: page.is_truncated,
        last: if page.is_truncated { page.next_marker } else { None },
    })
}

pub(super) fn object_entry(o: ObjectRecord, entries: Entries) -> Object {
    Object {
        key: Some(if entries.url { url_encode(&o.key) } else { o.key }),
        e_tag: Some(etag(&o.etag)),
        size: Some(o.size as i64),
        last_modified: Some(ts(o.last_modified_ms)),
        owner: entries.owner.then(owner),
        storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
