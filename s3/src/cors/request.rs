//! CORS as the front door meets it: the bucket a path names, a preflight ([`Preflight`]) answered or refused
//! as S3 answers it, and what an actual cross-origin request ([`CrossOrigin`]) asks of its bucket's rules.

use hoard_protocol::names;
use http::header;
use http::HeaderMap;
use http::HeaderValue;
use s3s::S3Error;
use s3s::S3ErrorCode;

use super::CorsRules;
use super::METHODS;

/// The bucket a path-style request path (`/bucket`, `/bucket/key`) names, percent-decoded; `None` when it names
/// none (`/`, or what cannot be a bucket's name). hoard serves path-style requests only.
pub fn path_bucket(path: &str) -> Option<String> {
    let first = path.strip_prefix('/')?.split('/').next()?;
    let bucket = percent_encoding::percent_decode_str(first).decode_utf8().ok()?;
    names::check_bucket(&bucket).ok()?;
    Some(bucket.into_owned())
}

/// A preflight (`OPTIONS`) as it came: 400 BadRequest without `Origin`, as S3 answers before anything is read.
pub struct Preflight<'a> {
    origin: &'a HeaderValue,
    method: Option<&'a HeaderValue>,
    request_headers: Option<&'a HeaderValue>,
}

impl<'a> Preflight<'a> {
    pub fn of(headers: &'a HeaderMap) -> Result<Preflight<'a>, S3Error> {
        let origin = headers
            .get(header::ORIGIN)
            .ok_or_else(|| bad_request("Insufficient information. Origin request header needed.".into()))?;
        Ok(Preflight {
            origin,
            method: headers.get(header::ACCESS_CONTROL_REQUEST_METHOD),
            request_headers: headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS),
        })
    }

    /// The answer for a bucket that exists (`bucket_exists`) and holds `stored` (the stored form of its rules,
    /// if it has any): the headers of a 200, or the error to send.
    pub fn answer(&self, bucket_exists: bool, stored: Option<&str>) -> Result<HeaderMap, S3Error> {
        if !bucket_exists {
            return Err(forbidden("CORSResponse: Bucket not found"));
        }
        let stored = stored.ok_or_else(|| forbidden("CORSResponse: CORS is not enabled for this bucket."))?;
        let rules = CorsRules::from_json(stored)?;
        let method = self.method.and_then(|m| m.to_str().ok()).filter(|m| METHODS.contains(m)).ok_or_else(|| {
            let named = self.method.map_or("null".into(), |m| String::from_utf8_lossy(m.as_bytes()).into_owned());
            let named: String = named.chars().take(MAX_ECHOED_METHOD).collect();
            bad_request(format!("Invalid Access-Control-Request-Method: {named}"))
        })?;
        let not_allowed = || forbidden(NOT_ALLOWED);
        let origin = self.origin.to_str().map_err(|_| not_allowed())?;
        let requested = match self.request_headers {
            None => "",
            Some(h) => h.to_str().map_err(|_| not_allowed())?,
        };
        rules.preflight(origin, method, requested).ok_or_else(not_allowed)
    }
}

/// What an actual (non-`OPTIONS`) request with an `Origin` asks of its bucket's rules, kept while it is served.
pub struct CrossOrigin {
    pub bucket: String,
    method: String,
    origin: HeaderValue,
    request_method: Option<HeaderValue>,
    request_headers: Option<HeaderValue>,
}

impl CrossOrigin {
    /// `None` when the request has no `Origin` (it is then no cross-origin request, and nothing is read for it)
    /// or names no bucket.
    pub fn of<B>(req: &http::Request<B>) -> Option<CrossOrigin> {
        let headers = req.headers();
        let origin = headers.get(header::ORIGIN)?.clone();
        Some(CrossOrigin {
            bucket: path_bucket(req.uri().path())?,
            method: req.method().as_str().to_owned(),
            origin,
            request_method: headers.get(header::ACCESS_CONTROL_REQUEST_METHOD).cloned(),
            request_headers: headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned(),
        })
    }

    /// The headers its response gets from `rules` (whatever the response's status); `None` when no rule matches.
    pub fn headers(&self, rules: &CorsRules) -> Option<HeaderMap> {
        let origin = self.origin.to_str().ok()?;
        let method = match &self.request_method {
            Some(m) => m.to_str().ok()?,
            None => &self.method,
        };
        match &self.request_headers {
            Some(requested) => rules.preflight(origin, method, requested.to_str().ok()?),
            None => rules.response_headers(origin, method),
        }
    }
}

/// The longest `Access-Control-Request-Method` echoed in an error message.
const MAX_ECHOED_METHOD: usize = 64;
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
     Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted \
     by the resource's CORS spec.";

/// S3's codes for a refused preflight, which s3s does not know.
fn bad_request(message: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("BadRequest".into()), message);
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn forbidden(message: &'static str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("AccessForbidden".into()), message);
    e.set_status_code(http::StatusCode::FORBIDDEN);
    e
}
