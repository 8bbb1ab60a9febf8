//! What is refused before the S3 layer reads anything: requests hoard does not speak, and requests whose
//! headers already show they cannot be served. Each answer is an S3 error with its code and status; the
//! body is never read.
//!
//! Invariants:
//! - Signature Version 2 (`Authorization: AWS …`, or `AWSAccessKeyId`/`Signature` in the query) is refused:
//!   it has no date check a server can enforce, so a captured request could be replayed forever.
//! - A presigned URL lives at most [`MAX_PRESIGNED_SECS`] (a week, as in AWS); a malformed `X-Amz-Expires`
//!   is refused.
//! - The dates a SigV4 signature names (`x-amz-date`, `X-Amz-Date`, and the date of the credential scope)
//!   are digits where digits belong, checked here before any parser does arithmetic on them.
//! - A request that carries no signature at all may carry a body (a PUT to a bucket whose ACL or policy lets
//!   anyone write), but nothing of it is read before the request is authorised: the S3 layer decides it
//!   ([`crate::access`]) before it reads a body, and refuses it there by default.
//! - Browser form uploads (`POST /bucket` of `multipart/form-data`) carry their signature in the form, not in
//!   the headers: they pass on to [`crate::post`], which checks it before the file is read. A form posted
//!   anywhere else is refused.
//! - A request whose body the S3 layer buffers whole (an XML document) declares its length, at most
//!   [`MAX_XML_BODY`] bytes.

use http::header;
use http::HeaderMap;
use http::Method;
use http::Request;
use s3s::s3_error;
use s3s::S3Error;

/// The longest a presigned URL may stay valid (AWS: 7 days).
pub const MAX_PRESIGNED_SECS: u64 = 604_800;
/// The largest XML request body (DeleteObjects of 1000 long keys, CompleteMultipartUpload of 10 000 parts,
/// with room for escaping); the S3 layer is told the same bound.
pub const MAX_XML_BODY: usize = 8 << 20;

/// Object subresources whose PUT carries an XML document rather than object data.
const XML_OBJECT_SUBRESOURCES: [&str; 5] = ["tagging", "acl", "retention", "legal-hold", "restore"];

/// The error to answer at once, or `None` when the request goes on to the S3 layer.
pub fn refuse<B>(req: &Request<B>) -> Option<S3Error> {
    let headers = req.headers();
    let query = req.uri().query().unwrap_or("");
    let params: Vec<(String, String)> = form_urlencoded(query);
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if authorization.is_some_and(|a| a.starts_with(b"AWS ")) || param("AWSAccessKeyId").is_some() {
        return Some(s3_error!(
            InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
        ));
    }
    if let Some(expires) = param("X-Amz-Expires") {
        match expires.parse::<u64>() {
            Ok(secs) if secs <= MAX_PRESIGNED_SECS => {}
            Ok(_) => {
                return Some(s3_error!(
                    AuthorizationQueryParametersError,
                    "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds"
                ))
            }
            Err(_) => {
                return Some(s3_error!(
                    AuthorizationQueryParametersError,
                    "X-Amz-Expires should be a number of seconds from 0 to 604800"
                ))
            }
        }
    }
    if headers.get_all("x-amz-date").iter().any(|date| !is_amz_date(date.as_bytes())) {
        return Some(s3_error!(AccessDenied, "AWS authentication requires a valid Date or x-amz-date header"));
    }
    if let Some(date) = param("X-Amz-Date") {
        if !is_amz_date(date.as_bytes()) {
            return Some(s3_error!(
                AuthorizationQueryParametersError,
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
            ));
        }
    }
    let malformed_scope = headers.get_all(header::AUTHORIZATION).iter().any(|a| {
        let (a, v4) = (a.as_bytes(), a.as_bytes().starts_with(b"AWS4-"));
        let scope = credential_of(a).unwrap_or(b"");
        (v4 || !scope.is_empty()) && !scope_date_ok(scope)
    });
    if malformed_scope {
        return Some(s3_error!(
            AuthorizationHeaderMalformed,
            "The authorization header is malformed; the Credential must be KEY/yyyyMMdd/REGION/SERVICE/aws4_request"
        ));
    }
    if param("X-Amz-Credential").is_some_and(|scope| !scope_date_ok(scope.as_bytes())) {
        return Some(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Credential must be KEY/yyyyMMdd/REGION/SERVICE/aws4_request"
        ));
    }
    if req.method() == Method::POST && is_form(headers) {
        if crate::post::is_form_upload(req) {
            return None;
        }
        return Some(s3_error!(MethodNotAllowed, "A browser form upload is posted to its bucket's URL (POST /bucket)"));
    }
    if buffers_whole_body(req.method(), req.uri().path(), &params) {
        match content_length(headers) {
            Some(len) if len > MAX_XML_BODY as u64 => {
                return Some(s3_error!(
                    MaxMessageLengthExceeded,
                    "Your request was too big: an XML body may be at most 8 MiB"
                ))
            }
            None if headers.contains_key(header::TRANSFER_ENCODING) => {
                return Some(s3_error!(MissingContentLength, "You must provide the Content-Length HTTP header."))
            }
            _ => {}
        }
    }
    None
}

/// `yyyyMMdd'T'HHmmss'Z'`, digits where digits belong.
fn is_amz_date(date: &[u8]) -> bool {
    date.len() == 16
        && date.iter().enumerate().all(|(i, b)| match i {
            8 => *b == b'T',
            15 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// The `Credential=` value of a SigV4 `Authorization` header (up to its comma), if it has one.
fn credential_of(authorization: &[u8]) -> Option<&[u8]> {
    let at = authorization.windows(11).position(|w| w == b"Credential=")? + 11;
    let rest = &authorization[at..];
    Some(rest.split(|b| *b == b',').next().unwrap_or(rest))
}

/// Whether a credential scope's second field (the date) is eight digits.
fn scope_date_ok(scope: &[u8]) -> bool {
    scope.split(|b| *b == b'/').nth(1).is_some_and(|date| date.len() == 8 && date.iter().all(u8::is_ascii_digit))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Whether the S3 layer reads this request's body whole into memory to parse it: every POST (DeleteObjects,
/// CompleteMultipartUpload, ...), every bucket-level PUT (configurations), and object PUTs of a subresource.
/// Object data (PUT of a key, UploadPart) streams and is not counted.
fn buffers_whole_body(method: &Method, path: &str, params: &[(String, String)]) -> bool {
    let path = path.trim_start_matches('/');
    let has_key = path.split_once('/').is_some_and(|(_, key)| !key.is_empty());
    match *method {
        Method::POST => true,
        Method::PUT if !has_key => true,
        Method::PUT => params.iter().any(|(k, _)| XML_OBJECT_SUBRESOURCES.contains(&k.as_str())),
        _ => false,
    }
}

/// The query's pairs, percent-decoded; a pair that does not decode is kept as sent.
/// A query's parameters, names and values decoded as s3s decodes them (`+` is a space).
pub(crate) fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn code(r: Option<S3Error>) -> Option<String> {
        r.map(|e| e.code().as_str().to_string())
    }

    const SIGNED: (&str, &str) = ("authorization", "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/s3/aws4_request");

    #[test]
    fn signature_version_2_is_refused_in_headers_and_queries() {
        let v2 = req("GET", "/b/k", &[("authorization", "AWS AKID:c2lnbmF0dXJl")]);
        assert_eq!(code(refuse(&v2)).as_deref(), Some("InvalidRequest"));
        let presigned_v2 = req("GET", "/b/k?AWSAccessKeyId=AKID&Expires=9999999999&Signature=abc", &[]);
        assert_eq!(code(refuse(&presigned_v2)).as_deref(), Some("InvalidRequest"));
        assert_eq!(refuse(&req("GET", "/b/k", &[SIGNED])).map(|e| e.code().clone()), None);
    }

    #[test]
    fn signature_dates_must_be_digits_before_anything_parses_them() {
        let auth = |cred: &str| format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature=00");
        let good = auth("AK/20260101/us-east-1/s3/aws4_request");
        let ok = req("GET", "/b/k", &[("authorization", &good), ("x-amz-date", "20260101T000000Z")]);
        assert_eq!(code(refuse(&ok)), None);
        let bad_date = req("GET", "/b/k", &[("authorization", &good), ("x-amz-date", "2025 101T000000Z")]);
        assert_eq!(code(refuse(&bad_date)).as_deref(), Some("AccessDenied"));
        for cred in ["AK/202501(1/us-east-1/s3/aws4_request", "AK", "AK/2026/x"] {
            let bad = req("GET", "/b/k", &[("authorization", &auth(cred)), ("x-amz-date", "20260101T000000Z")]);
            assert_eq!(code(refuse(&bad)).as_deref(), Some("AuthorizationHeaderMalformed"), "{cred}");
        }
        let odd_scheme = req("GET", "/b/k", &[("authorization", "6 Credential=/202501(1/")]);
        assert_eq!(code(refuse(&odd_scheme)).as_deref(), Some("AuthorizationHeaderMalformed"));
        let presigned = |date: &str, cred: &str| {
            refuse(&req("GET", &format!("/b/k?X-Amz-Date={date}&X-Amz-Credential={cred}&X-Amz-Signature=00"), &[]))
        };
        assert_eq!(code(presigned("20260101T000000Z", "AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request")), None);
        let bad = presigned("2026-101T000000Z", "AK%2F20260101%2Fus-east-1%2Fs3%2Faws4_request");
        assert_eq!(code(bad).as_deref(), Some("AuthorizationQueryParametersError"));
        let bad = presigned("20260101T000000Z", "AK%2F2026%2F01%2Fus-east-1%2Fs3%2Faws4_request");
        assert_eq!(code(bad).as_deref(), Some("AuthorizationQueryParametersError"));
    }

    #[test]
    fn presigned_urls_live_at_most_a_week() {
        let at = |expires: &str| refuse(&req("GET", &format!("/b/k?X-Amz-Signature=ab&X-Amz-Expires={expires}"), &[]));
        assert_eq!(code(at("604800")), None);
        assert_eq!(code(at("0")), None);
        for bad in ["604801", "10000000", "-1", "abc", "", "1e3"] {
            assert_eq!(code(at(bad)).as_deref(), Some("AuthorizationQueryParametersError"), "X-Amz-Expires={bad}");
        }
    }

    #[test]
    fn anonymous_bodies_go_on_to_be_authorised_and_forms_go_to_their_bucket() {
        let anon_put = req("PUT", "/b/k", &[("content-length", "10")]);
        assert_eq!(code(refuse(&anon_put)), None, "authorised before its body is read");
        let anon_chunked = req("POST", "/b?delete", &[("transfer-encoding", "chunked")]);
        assert_eq!(code(refuse(&anon_chunked)).as_deref(), Some("MissingContentLength"), "XML bodies have a length");
        assert_eq!(code(refuse(&req("GET", "/b/k", &[("content-length", "0")]))), None);
        let form = req("POST", "/b", &[("content-type", "multipart/form-data; boundary=x"), ("content-length", "9")]);
        assert_eq!(code(refuse(&form)), None, "a form upload is signed in its form, checked by the post module");
        let elsewhere =
            req("POST", "/b/k", &[("content-type", "multipart/form-data; boundary=x"), ("content-length", "9")]);
        assert_eq!(code(refuse(&elsewhere)).as_deref(), Some("MethodNotAllowed"));
    }

    #[test]
    fn xml_bodies_over_the_limit_are_refused_by_their_declared_length() {
        let big = (MAX_XML_BODY + 1).to_string();
        let delete = req("POST", "/b?delete", &[SIGNED, ("content-length", &big)]);
        assert_eq!(code(refuse(&delete)).as_deref(), Some("MaxMessageLengthExceeded"));
        let tagging = req("PUT", "/b/k?tagging", &[SIGNED, ("content-length", &big)]);
        assert_eq!(code(refuse(&tagging)).as_deref(), Some("MaxMessageLengthExceeded"));
        let config = req("PUT", "/b?encryption", &[SIGNED, ("content-length", &big)]);
        assert_eq!(code(refuse(&config)).as_deref(), Some("MaxMessageLengthExceeded"));
        // Object data streams: any length goes on.
        assert_eq!(code(refuse(&req("PUT", "/b/k", &[SIGNED, ("content-length", &big)]))), None);
        let part = req("PUT", "/b/k?partNumber=1&uploadId=u", &[SIGNED, ("content-length", &big)]);
        assert_eq!(code(refuse(&part)), None);
        let chunked = req("POST", "/b/k?uploadId=u", &[SIGNED, ("transfer-encoding", "chunked")]);
        assert_eq!(code(refuse(&chunked)).as_deref(), Some("MissingContentLength"));
    }
}
