//! A small AWS Signature Version 4 signer (header form), so that fuzzed requests can get past authentication
//! and reach what s3s parses after it: the aws-chunked decoder, operation inputs and XML bodies.
//!
//! It signs `host`, `x-amz-content-sha256` and `x-amz-date` with [`crate::ACCESS_KEY`]'s secret, canonicalizing
//! the path and query as s3s does. A request it cannot canonicalize (a path that is not UTF-8 once
//! percent-decoded, a header that is not text) is left as it is, and then fails authentication like any other.

use hmac::Mac as _;
use http::HeaderMap;
use http::HeaderValue;
use http::Method;
use http::Uri;
use sha2::Digest as _;
use time::OffsetDateTime;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const REGION: &str = "us-east-1";
const SERVICE: &str = "s3";
const SIGNED_HEADERS: [&str; 3] = ["host", "x-amz-content-sha256", "x-amz-date"];

/// Signs a request at `now` (s3s compares the signing time with its own clock): sets `x-amz-date`, `host` if
/// it is missing, and `authorization`. `x-amz-content-sha256` must already be set.
pub(crate) fn sign(method: &Method, uri: &Uri, headers: &mut HeaderMap, now: OffsetDateTime) {
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let date = &amz_date[..8];
    headers.remove(http::header::AUTHORIZATION);
    if let Ok(value) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", value);
    }
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_static("localhost"));
    }
    let Some(canonical) = canonical_request(method, uri, headers) else {
        return;
    };
    let scope = format!("{date}/{REGION}/{SERVICE}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(sha2::Sha256::digest(canonical.as_bytes())));
    let Some(signature) = signature(date, &string_to_sign) else {
        return;
    };
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        crate::ACCESS_KEY,
        SIGNED_HEADERS.join(";")
    );
    if let Ok(value) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, value);
    }
}

fn canonical_request(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8().ok()?;
    let mut query: Vec<(String, String)> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(&form_decode(name), true), uri_encode(&form_decode(value), true))
        })
        .collect();
    // Stable, by name only: repeated names keep their order, as in s3s.
    query.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = query.into_iter().map(|(name, value)| format!("{name}={value}")).collect();

    let mut canonical_headers = String::new();
    for name in SIGNED_HEADERS {
        let values: Vec<String> =
            headers.get_all(name).iter().map(|v| v.to_str().map(normalize)).collect::<Result<_, _>>().ok()?;
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    Some(format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload}",
        uri_encode(&path, false),
        query.join("&"),
        SIGNED_HEADERS.join(";")
    ))
}

/// The signature of `string_to_sign` with the signing key of [`crate::SECRET_KEY`] for `date`, in hex.
fn signature(date: &str, string_to_sign: &str) -> Option<String> {
    let mut key = mac(format!("AWS4{}", crate::SECRET_KEY).as_bytes(), date.as_bytes())?;
    for part in [REGION, SERVICE, "aws4_request"] {
        key = mac(&key, part.as_bytes())?;
    }
    mac(&key, string_to_sign.as_bytes()).map(hex::encode)
}

fn mac(key: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(key).ok()?;
    mac.update(message);
    Some(mac.finalize().into_bytes().to_vec())
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then percent-decoding, invalid UTF-8 replaced.
fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// SigV4's URI encoding: every byte but the unreserved ones as `%XX` (upper case); `/` kept unless `slash`.
fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'~' | b'.' => out.push(char::from(b)),
            b'/' if !slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A header value as SigV4 canonicalizes it: trimmed, inner runs of whitespace as one space.
fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}
