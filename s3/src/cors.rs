//! Bucket CORS: the PutBucketCors document, validated as AWS does and stored as JSON, and the headers its
//! rules give a preflight (`OPTIONS`) or an actual cross-origin request.
//!
//! Invariants:
//! - A stored configuration has 1..=[`MAX_RULES`] rules, each with at least one origin and one method, only
//!   the methods S3 allows, at most one `*` per origin and per allowed header, no `*` in an expose header,
//!   and a stored form of at most [`MAX_STORED_BYTES`].
//! - The first rule that matches answers; no later rule is ever merged into its answer.
//! - Every header value produced is a valid HTTP header value, whatever the request sent: an Origin that
//!   would be echoed but cannot be a header value, or a requested header that is not a header name, matches
//!   no rule (no panic, no header injection).
//! - Matching costs at most linear time in the request's values, which are bounded ([`MAX_REQUEST_VALUE`]
//!   bytes, [`MAX_REQUESTED_HEADERS`] names); a longer request matches no rule.
//! - The stored form is versioned JSON (`{"v":"1",...}`): a form this code does not know is an error.
//! - A preflight is answered as S3 answers it, checked in this order: no `Origin` is 400 BadRequest; a bucket
//!   that does not exist, or has no rules, is 403 AccessForbidden; an `Access-Control-Request-Method` that is
//!   missing or not one of the five methods is 400 BadRequest; no matching rule is 403 AccessForbidden.
//! - An actual request is matched as S3 matches it: by its `Access-Control-Request-Method` when it carries one
//!   (its own method otherwise), and by its `Access-Control-Request-Headers` when it carries them.
//! - Pure: nothing here reads metadata; the caller hands in the request's headers and the bucket's stored form.

use hoard_protocol::names;
use http::header;
use http::HeaderMap;
use http::HeaderName;
use http::HeaderValue;
use s3s::dto;
use s3s::dto::CORSConfiguration;
use s3s::s3_error;
use s3s::S3Error;
use s3s::S3ErrorCode;
use serde::Deserialize;
use serde::Serialize;

/// The most rules a configuration may hold (AWS's limit).
pub const MAX_RULES: usize = 100;
/// The largest stored form (AWS limits the document to 64 KB).
pub const MAX_STORED_BYTES: usize = 64 << 10;
/// The longest Origin or Access-Control-Request-Headers value evaluated; a longer one matches no rule.
pub const MAX_REQUEST_VALUE: usize = 8 << 10;
/// The most names an Access-Control-Request-Headers value may list to match a rule.
pub const MAX_REQUESTED_HEADERS: usize = 100;

const MAX_ID_CHARS: usize = 255;
const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// A bucket's CORS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRules {
    /// In the order they were given: the first match answers.
    pub rules: Vec<CorsRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// The stored form, versioned so it can change without breaking a running cluster.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum StoredCors {
    #[serde(rename = "1")]
    V1(CorsRules),
}

impl CorsRules {
    /// Validates a PutBucketCors document as AWS does. No rule, or a rule without an origin or a method, is
    /// MalformedXML; more than [`MAX_RULES`] rules, a stored form past [`MAX_STORED_BYTES`], a method other
    /// than GET, PUT, HEAD, POST, DELETE, two `*` in an origin or allowed header, a `*` in an expose header or
    /// an expose header that cannot be sent as a header value is InvalidRequest; an ID past 255 characters
    /// InvalidArgument.
    pub fn from_dto(c: &CORSConfiguration) -> Result<CorsRules, S3Error> {
        if c.cors_rules.is_empty() {
            return Err(malformed_xml());
        }
        if c.cors_rules.len() > MAX_RULES {
            return Err(s3_error!(InvalidRequest, "A CORS configuration may hold at most {MAX_RULES} rules."));
        }
        let rules = CorsRules {
            rules: c
                .cors_rules
                .iter()
                .map(|r| CorsRule {
                    id: r.id.clone(),
                    allowed_origins: r.allowed_origins.clone(),
                    allowed_methods: r.allowed_methods.clone(),
                    allowed_headers: r.allowed_headers.clone().unwrap_or_default(),
                    expose_headers: r.expose_headers.clone().unwrap_or_default(),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        };
        if rules.to_json().len() > MAX_STORED_BYTES {
            return Err(s3_error!(InvalidRequest, "The CORS configuration must be at most 64 KB."));
        }
        rules.rules.iter().try_for_each(validate)?;
        Ok(rules)
    }

    /// The configuration as GetBucketCors answers it: only the members that were set.
    pub fn to_dto(&self) -> CORSConfiguration {
        let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        CORSConfiguration {
            cors_rules: self
                .rules
                .iter()
                .map(|r| dto::CORSRule {
                    allowed_headers: some(&r.allowed_headers),
                    allowed_methods: r.allowed_methods.clone(),
                    allowed_origins: r.allowed_origins.clone(),
                    expose_headers: some(&r.expose_headers),
                    id: r.id.clone(),
                    max_age_seconds: r.max_age_seconds,
                })
                .collect(),
        }
    }

    /// The stored form. Store this string, not the serde form of [`CorsRules`]: only this one carries its
    /// version.
    pub fn to_json(&self) -> String {
        // Strings, integers and vectors always serialize; were that ever to fail, the empty string stored
        // would fail `from_json` loudly rather than read as some other configuration.
        serde_json::to_string(&StoredCors::V1(self.clone())).unwrap_or_default()
    }

    /// Reads the stored form. A form that does not parse is InternalError: it was written by `to_json`.
    pub fn from_json(s: &str) -> Result<CorsRules, S3Error> {
        match serde_json::from_str(s) {
            Ok(StoredCors::V1(rules)) => Ok(rules),
            Err(e) => Err(s3_error!(InternalError, "a stored CORS configuration cannot be read: {e}")),
        }
    }

    /// The answer to a preflight (`OPTIONS` with `Origin`, `Access-Control-Request-Method` and maybe
    /// `Access-Control-Request-Headers`, whose raw value is `request_headers`, "" when absent): the headers of
    /// the first rule whose origin pattern matches (case-sensitive, `*` matching any run of characters, the
    /// empty one too), whose methods include `method`, and whose allowed headers match every requested one
    /// (case-insensitive). `None` when no rule does; the caller then answers 403 AccessForbidden.
    pub fn preflight(&self, origin: &str, method: &str, request_headers: &str) -> Option<HeaderMap> {
        let requested = requested_headers(request_headers)?;
        let (rule, wildcard) = self.rules.iter().find_map(|rule| {
            let wildcard = rule.matches(origin, method)?;
            let allowed = requested.iter().all(|name| {
                rule.allowed_headers.iter().any(|pattern| wildcard_match(pattern, name, <[u8]>::eq_ignore_ascii_case))
            });
            allowed.then_some((rule, wildcard))
        })?;
        let mut headers = rule.headers(origin, wildcard)?;
        if !requested.is_empty() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_str(&requested.join(", ")).ok()?);
        }
        Some(headers)
    }

    /// The headers to add to an actual (non-`OPTIONS`) response to a request with an `Origin`: those of the
    /// first rule matching `origin` and `method`; `None` when no rule does (no CORS headers are added then).
    /// As S3 does, pass the request's `Access-Control-Request-Method` as `method` when it carries one, and its
    /// own method otherwise; the request's headers are not checked.
    pub fn response_headers(&self, origin: &str, method: &str) -> Option<HeaderMap> {
        let (rule, wildcard) =
            self.rules.iter().find_map(|rule| rule.matches(origin, method).map(|wildcard| (rule, wildcard)))?;
        rule.headers(origin, wildcard)
    }
}

impl CorsRule {
    /// `Some(true)` when the rule matches through an origin of exactly `*`, `Some(false)` when through
    /// another pattern, `None` when it does not match. The first matching origin pattern decides.
    fn matches(&self, origin: &str, method: &str) -> Option<bool> {
        if origin.len() > MAX_REQUEST_VALUE || !self.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let pattern = self.allowed_origins.iter().find(|p| wildcard_match(p, origin, <[u8]>::eq))?;
        Some(pattern == "*")
    }

    /// The headers every matched request gets: the echoed origin (with credentials allowed) or `*`, the
    /// rule's methods, expose headers and max age, and `Vary`.
    fn headers(&self, origin: &str, wildcard: bool) -> Option<HeaderMap> {
        let mut h = HeaderMap::new();
        if wildcard {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_str(origin).ok()?);
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_str(&self.allowed_methods.join(", ")).ok()?);
        if !self.expose_headers.is_empty() {
            let value = HeaderValue::from_str(&self.expose_headers.join(", ")).ok()?;
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, value);
        }
        // A negative max age is no delta-seconds; without the header a browser uses its default, as it
        // would on reading a negative one.
        if let Some(secs) = self.max_age_seconds.filter(|s| *s >= 0) {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(secs));
        }
        h.insert(header::VARY, HeaderValue::from_static(VARY));
        Some(h)
    }
}

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

fn malformed_xml() -> S3Error {
    s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
}

fn validate(rule: &CorsRule) -> Result<(), S3Error> {
    if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
        return Err(malformed_xml());
    }
    if let Some(m) = rule.allowed_methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
        return Err(s3_error!(
            InvalidRequest,
            "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
        ));
    }
    let two_wildcards = |v: &&String| v.matches('*').nth(1).is_some();
    if let Some(o) = rule.allowed_origins.iter().find(two_wildcards) {
        return Err(s3_error!(InvalidRequest, "AllowedOrigin \"{o}\" can not have more than one wildcard."));
    }
    if let Some(h) = rule.allowed_headers.iter().find(two_wildcards) {
        return Err(s3_error!(InvalidRequest, "AllowedHeader \"{h}\" can not have more than one wildcard."));
    }
    if let Some(h) = rule.expose_headers.iter().find(|h| h.contains('*')) {
        return Err(s3_error!(
            InvalidRequest,
            "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
        ));
    }
    // S3 does not check expose headers as header names; hoard only refuses what cannot be sent at all.
    if rule.expose_headers.iter().any(|h| HeaderValue::from_str(h).is_err()) {
        return Err(s3_error!(InvalidRequest, "An ExposeHeader holds a character that cannot be sent in a header."));
    }
    if rule.id.as_ref().is_some_and(|id| id.chars().count() > MAX_ID_CHARS) {
        return Err(s3_error!(InvalidArgument, "The ID of a CORS rule must be at most {MAX_ID_CHARS} characters."));
    }
    Ok(())
}

/// Whether `value` matches `pattern`, whose first `*` stands for any run of bytes (the empty one too),
/// comparing the rest with `eq`. Linear in the lengths.
fn wildcard_match(pattern: &str, value: &str, eq: fn(&[u8], &[u8]) -> bool) -> bool {
    let (pattern, value) = (pattern.as_bytes(), value.as_bytes());
    match pattern.iter().position(|b| *b == b'*') {
        None => eq(pattern, value),
        Some(star) => {
            let (prefix, suffix) = (&pattern[..star], &pattern[star + 1..]);
            value.len() >= prefix.len() + suffix.len()
                && eq(prefix, &value[..prefix.len()])
                && eq(suffix, &value[value.len() - suffix.len()..])
        }
    }
}

/// The names an Access-Control-Request-Headers value lists, lowercased, in order; `None` when the value is
/// too long, lists too many, or holds something that is not a header name.
fn requested_headers(raw: &str) -> Option<Vec<String>> {
    if raw.len() > MAX_REQUEST_VALUE {
        return None;
    }
    let mut names = Vec::new();
    for name in raw.split(',').map(|n| n.trim_matches([' ', '\t'])).filter(|n| !n.is_empty()) {
        if names.len() == MAX_REQUESTED_HEADERS {
            return None;
        }
        names.push(HeaderName::from_bytes(name.as_bytes()).ok()?.as_str().to_owned());
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use s3s::S3ErrorCode;

    use super::*;

    fn rule(origins: &[&str], methods: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: vec![],
            expose_headers: vec![],
            max_age_seconds: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn put(rules: Vec<CorsRule>) -> Result<CorsRules, S3Error> {
        CorsRules::from_dto(&CorsRules { rules }.to_dto())
    }

    fn refusal(rules: Vec<CorsRule>) -> (S3ErrorCode, String) {
        match put(rules) {
            Ok(r) => panic!("accepted {r:?}"),
            Err(e) => (e.code().clone(), e.message().unwrap_or_default().to_owned()),
        }
    }

    fn get(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_valid_configuration_round_trips_through_the_dto_and_json() {
        let mut r = rule(&["https://*.example.com", "*"], &["GET", "PUT", "HEAD", "POST", "DELETE"]);
        r.id = Some("web".to_owned());
        r.allowed_headers = strings(&["x-amz-*", "Content-Type"]);
        r.expose_headers = strings(&["ETag", "x-amz-version-id"]);
        r.max_age_seconds = Some(3000);
        let rules = CorsRules { rules: vec![r, rule(&[""], &["GET"])] };
        assert_eq!(CorsRules::from_dto(&rules.to_dto()).ok(), Some(rules.clone()));
        assert_eq!(CorsRules::from_json(&rules.to_json()).ok(), Some(rules.clone()));
        let dto = rules.to_dto();
        assert_eq!(dto.cors_rules[1].allowed_headers, None, "unset members stay unset");
        assert_eq!(dto.cors_rules[1].expose_headers, None);
    }

    #[test]
    fn the_stored_form_is_versioned_json() {
        let rules = CorsRules { rules: vec![rule(&["*"], &["GET"])] };
        // Pinned: a change here breaks configurations already stored in a running cluster.
        assert_eq!(
            rules.to_json(),
            r#"{"v":"1","rules":[{"id":null,"allowed_origins":["*"],"allowed_methods":["GET"],"allowed_headers":[],"expose_headers":[],"max_age_seconds":null}]}"#
        );
        for bad in [r#"{"v":"2","rules":[]}"#, r#"{"rules":[]}"#, ""] {
            assert_eq!(CorsRules::from_json(bad).err().map(|e| e.code().clone()), Some(S3ErrorCode::InternalError));
        }
    }

    #[test]
    fn missing_rules_origins_or_methods_are_malformed_xml() {
        assert_eq!(refusal(vec![]).0, S3ErrorCode::MalformedXML);
        assert_eq!(refusal(vec![rule(&[], &["GET"])]).0, S3ErrorCode::MalformedXML);
        assert_eq!(refusal(vec![rule(&["*"], &[])]).0, S3ErrorCode::MalformedXML);
    }

    #[test]
    fn more_than_max_rules_or_too_large_a_document_is_refused() {
        assert!(put(vec![rule(&["*"], &["GET"]); MAX_RULES]).is_ok());
        assert_eq!(refusal(vec![rule(&["*"], &["GET"]); MAX_RULES + 1]).0, S3ErrorCode::InvalidRequest);
        let huge = "o".repeat(MAX_STORED_BYTES);
        assert_eq!(refusal(vec![rule(&[&huge], &["GET"])]).0, S3ErrorCode::InvalidRequest);
    }

    #[test]
    fn unsupported_methods_are_refused_naming_them() {
        for m in ["OPTIONS", "get", "PATCH", ""] {
            let (code, message) = refusal(vec![rule(&["*"], &["GET", m])]);
            assert_eq!(code, S3ErrorCode::InvalidRequest);
            assert_eq!(message, format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"));
        }
    }

    #[test]
    fn two_wildcards_in_an_origin_or_allowed_header_are_refused() {
        let (code, message) = refusal(vec![rule(&["*example*.com"], &["GET"])]);
        assert_eq!(code, S3ErrorCode::InvalidRequest);
        assert_eq!(message, "AllowedOrigin \"*example*.com\" can not have more than one wildcard.");
        let mut r = rule(&["*"], &["GET"]);
        r.allowed_headers = strings(&["x-*-*"]);
        assert_eq!(refusal(vec![r]).1, "AllowedHeader \"x-*-*\" can not have more than one wildcard.");
    }

    #[test]
    fn expose_headers_with_a_wildcard_or_unsendable_bytes_are_refused() {
        for bad in ["*", "x-amz-*", "a\r\nSet-Cookie: x", "a\u{7f}b"] {
            let mut r = rule(&["*"], &["GET"]);
            r.expose_headers = strings(&["ETag", bad]);
            assert_eq!(refusal(vec![r]).0, S3ErrorCode::InvalidRequest, "{bad:?}");
        }
        let mut r = rule(&["*"], &["GET"]);
        r.expose_headers = strings(&["GET", "PUT"]);
        assert!(put(vec![r]).is_ok(), "S3 does not check expose headers as header names");
    }

    #[test]
    fn an_id_longer_than_255_characters_is_refused() {
        let mut r = rule(&["*"], &["GET"]);
        r.id = Some("é".repeat(255));
        assert!(put(vec![r.clone()]).is_ok());
        r.id = Some("é".repeat(256));
        assert_eq!(refusal(vec![r]).0, S3ErrorCode::InvalidArgument);
    }

    #[test]
    fn one_wildcard_matches_any_run_including_the_empty_one() {
        let rules =
            CorsRules { rules: vec![rule(&["https://*.example.com", "start*end", "prefix*", "*suffix"], &["GET"])] };
        for origin in
            ["https://a.example.com", "https://a.b.example.com", "startend", "start12end", "prefix", "x.suffix"]
        {
            assert!(rules.preflight(origin, "GET", "").is_some(), "{origin}");
        }
        for origin in [
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com/",
            "https://a.example.com.evil",
            "0startend",
            "bla.prefix",
            "x.suffix.get",
            "HTTPS://A.EXAMPLE.COM",
        ] {
            assert!(rules.preflight(origin, "GET", "").is_none(), "{origin}");
        }
    }

    #[test]
    fn an_exact_origin_matches_only_itself_case_sensitively() {
        let rules = CorsRules { rules: vec![rule(&["https://localhost:4200"], &["GET"])] };
        assert!(rules.preflight("https://localhost:4200", "GET", "").is_some());
        assert!(rules.preflight("http://localhost:4200", "GET", "").is_none());
        assert!(rules.preflight("https://Localhost:4200", "GET", "").is_none());
    }

    #[test]
    fn the_requested_method_must_be_allowed_exactly() {
        let rules = CorsRules { rules: vec![rule(&["*"], &["GET", "PUT"])] };
        assert!(rules.preflight("https://a.com", "PUT", "").is_some());
        assert!(rules.preflight("https://a.com", "DELETE", "").is_none());
        assert!(rules.preflight("https://a.com", "put", "").is_none());
        assert!(rules.response_headers("https://a.com", "DELETE").is_none());
    }

    #[test]
    fn requested_headers_match_case_insensitively_and_come_back_lowercase_in_order() {
        let mut r = rule(&["*"], &["PUT"]);
        r.allowed_headers = strings(&["x-amz-*", "Content-Type"]);
        let rules = CorsRules { rules: vec![r] };
        let h = rules.preflight("https://a.com", "PUT", "X-Amz-Meta-A,content-TYPE , x-amz-date");
        assert_eq!(
            h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_HEADERS)),
            Some("x-amz-meta-a, content-type, x-amz-date")
        );
        assert!(rules.preflight("https://a.com", "PUT", "x-amz-date, authorization").is_none());
        assert!(rules
            .preflight("https://a.com", "PUT", ", ,")
            .is_some_and(|h| !h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS)));
    }

    #[test]
    fn a_rule_without_allowed_headers_allows_no_requested_header() {
        let rules = CorsRules { rules: vec![rule(&["*"], &["GET"])] };
        assert!(rules.preflight("https://a.com", "GET", "").is_some());
        assert!(rules.preflight("https://a.com", "GET", "x-amz-meta-header2").is_none());
    }

    #[test]
    fn the_first_matching_rule_answers_alone() {
        let mut narrow = rule(&["https://app.example.com"], &["GET"]);
        narrow.max_age_seconds = Some(10);
        narrow.allowed_headers = strings(&["x-a"]);
        let mut broad = rule(&["*"], &["GET", "PUT"]);
        broad.allowed_headers = strings(&["*"]);
        broad.max_age_seconds = Some(99);
        let rules = CorsRules { rules: vec![narrow, broad] };

        let h = rules.preflight("https://app.example.com", "GET", "x-a");
        assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("10"));
        assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET"));
        // The narrow rule does not allow x-b, so the broad one answers.
        let h = rules.preflight("https://app.example.com", "GET", "x-b");
        assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("99"));
        assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("*"));
        let h = rules.response_headers("https://app.example.com", "PUT");
        assert_eq!(h.as_ref().and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET, PUT"));
    }

    #[test]
    fn an_echoed_origin_allows_credentials_and_a_star_origin_does_not() {
        let rules =
            CorsRules { rules: vec![rule(&["https://*.example.com"], &["GET", "PUT"]), rule(&["*"], &["GET"])] };
        let echoed = rules.preflight("https://a.example.com", "PUT", "");
        let echoed = echoed.as_ref();
        assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("https://a.example.com"));
        assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS)), Some("true"));
        assert_eq!(echoed.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_METHODS)), Some("GET, PUT"));
        assert_eq!(echoed.and_then(|h| get(h, header::VARY)), Some(VARY));
        assert_eq!(echoed.map(|h| h.contains_key(header::ACCESS_CONTROL_MAX_AGE)), Some(false));
        assert_eq!(echoed.map(|h| h.contains_key(header::ACCESS_CONTROL_EXPOSE_HEADERS)), Some(false));

        let star = rules.response_headers("http://random:1234", "GET");
        let star = star.as_ref();
        assert_eq!(star.and_then(|h| get(h, header::ACCESS_CONTROL_ALLOW_ORIGIN)), Some("*"));
        assert_eq!(star.map(|h| h.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)), Some(false));
        assert_eq!(star.and_then(|h| get(h, header::VARY)), Some(VARY));
    }

    #[test]
    fn the_first_matching_origin_pattern_decides_star_or_echo() {
        let rules = CorsRules { rules: vec![rule(&["https://a.com", "*"], &["GET"])] };
        let get_origin = |o: &str| {
            rules
                .response_headers(o, "GET")
                .and_then(|h| get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN).map(str::to_owned))
        };
        assert_eq!(get_origin("https://a.com").as_deref(), Some("https://a.com"));
        assert_eq!(get_origin("https://b.com").as_deref(), Some("*"));
    }

    #[test]
    fn expose_headers_and_max_age_are_sent_when_set() {
        let mut r = rule(&["*"], &["GET"]);
        r.expose_headers = strings(&["ETag", "x-amz-request-id"]);
        r.max_age_seconds = Some(3000);
        let rules = CorsRules { rules: vec![r] };
        for h in [rules.preflight("https://a.com", "GET", ""), rules.response_headers("https://a.com", "GET")] {
            let h = h.as_ref();
            assert_eq!(h.and_then(|h| get(h, header::ACCESS_CONTROL_EXPOSE_HEADERS)), Some("ETag, x-amz-request-id"));
            assert_eq!(h.and_then(|h| get(h, header::ACCESS_CONTROL_MAX_AGE)), Some("3000"));
        }
        let mut negative = rule(&["*"], &["GET"]);
        negative.max_age_seconds = Some(-1);
        let h = CorsRules { rules: vec![negative] }.response_headers("https://a.com", "GET");
        assert_eq!(h.map(|h| h.contains_key(header::ACCESS_CONTROL_MAX_AGE)), Some(false));
    }

    #[test]
    fn actual_responses_carry_no_allow_headers() {
        let mut r = rule(&["*"], &["GET"]);
        r.allowed_headers = strings(&["*"]);
        let h = CorsRules { rules: vec![r] }.response_headers("https://a.com", "GET");
        assert_eq!(h.map(|h| h.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS)), Some(false));
    }

    #[test]
    fn hostile_origins_and_header_lists_match_nothing_without_panicking() {
        let mut r = rule(&["*", "https://*"], &["GET"]);
        r.allowed_headers = strings(&["*"]);
        let rules = CorsRules { rules: vec![r] };
        let echoing = CorsRules { rules: vec![rule(&["https://*"], &["GET"])] };
        for origin in ["https://a.com\r\nSet-Cookie: x=1", "https://a\0.com", "https://a\u{7f}.com"] {
            assert!(echoing.preflight(origin, "GET", "").is_none(), "{origin:?}");
            assert!(echoing.response_headers(origin, "GET").is_none(), "{origin:?}");
        }
        // A `*` rule sends `*`, never the hostile origin.
        let star = rules.response_headers("https://a.com\r\nx: y", "GET");
        assert_eq!(
            star.and_then(|h| get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN).map(str::to_owned)).as_deref(),
            Some("*")
        );

        let long_origin = format!("https://{}.com", "a".repeat(MAX_REQUEST_VALUE));
        assert!(rules.preflight(&long_origin, "GET", "").is_none());
        assert!(rules.response_headers(&long_origin, "GET").is_none());
        let long_list = vec!["x-a"; MAX_REQUESTED_HEADERS + 1].join(",");
        assert!(rules.preflight("https://a.com", "GET", &long_list).is_none());
        let most = vec!["x-a"; MAX_REQUESTED_HEADERS].join(",");
        assert!(rules.preflight("https://a.com", "GET", &most).is_some());
        assert!(rules.preflight("https://a.com", "GET", &"x".repeat(MAX_REQUEST_VALUE + 1)).is_none());
        for bad in ["x-a\r\nSet-Cookie: y", "x a", "x-a;b", "ü"] {
            assert!(rules.preflight("https://a.com", "GET", bad).is_none(), "{bad:?}");
        }
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("a request")
    }

    fn answer(headers: &[(&str, &str)], exists: bool, stored: Option<&str>) -> Result<HeaderMap, (u16, String)> {
        let req = request("OPTIONS", "/b/k", headers);
        Preflight::of(req.headers()).and_then(|p| p.answer(exists, stored)).map_err(|e| {
            let status = e.status_code().map_or(0, |s| s.as_u16());
            (status, format!("{}: {}", e.code().as_str(), e.message().unwrap_or_default()))
        })
    }

    #[test]
    fn a_preflight_is_refused_in_the_order_s3_checks_it() {
        let mut r = rule(&["https://a.com"], &["PUT"]);
        r.allowed_headers = strings(&["content-type"]);
        let stored = CorsRules { rules: vec![r] }.to_json();
        let stored = Some(stored.as_str());
        let (origin, put) = (("origin", "https://a.com"), ("access-control-request-method", "PUT"));
        let refusal = |h: &[(&str, &str)], exists, stored| answer(h, exists, stored).expect_err("refused");

        let no_origin = refusal(&[put], false, None);
        assert_eq!(no_origin, (400, "BadRequest: Insufficient information. Origin request header needed.".into()));
        assert_eq!(
            refusal(&[origin, put], false, None),
            (403, "AccessForbidden: CORSResponse: Bucket not found".into())
        );
        let not_enabled = refusal(&[origin], true, None);
        assert_eq!(not_enabled, (403, "AccessForbidden: CORSResponse: CORS is not enabled for this bucket.".into()));
        let no_method = refusal(&[origin], true, stored);
        assert_eq!(no_method, (400, "BadRequest: Invalid Access-Control-Request-Method: null".into()));
        let (status, message) = refusal(&[origin, ("access-control-request-method", "PATCH")], true, stored);
        assert_eq!((status, message.as_str()), (400, "BadRequest: Invalid Access-Control-Request-Method: PATCH"));
        for asked in [
            [("origin", "https://b.com"), put, ("x", "")],
            [origin, ("access-control-request-method", "GET"), ("x", "")],
            [origin, put, ("access-control-request-headers", "x-amz-meta-a")],
        ] {
            let (status, message) = refusal(&asked, true, stored);
            assert_eq!(status, 403, "{asked:?}");
            assert!(
                message.starts_with("AccessForbidden: CORSResponse: This CORS request is not allowed."),
                "{message}"
            );
        }
        let h =
            answer(&[origin, put, ("access-control-request-headers", "Content-Type")], true, stored).expect("a match");
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://a.com"));
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_METHODS), Some("PUT"));
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_HEADERS), Some("content-type"));
    }

    #[test]
    fn a_long_invalid_method_is_echoed_cut_short() {
        let long = "X".repeat(1000);
        let stored = CorsRules { rules: vec![rule(&["*"], &["GET"])] }.to_json();
        let asked = [("origin", "https://a.com"), ("access-control-request-method", long.as_str())];
        let (_, message) = answer(&asked, true, Some(&stored)).expect_err("refused");
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn only_paths_naming_a_bucket_name_one() {
        assert_eq!(path_bucket("/b"), Some("b".to_owned()));
        assert_eq!(path_bucket("/b/"), Some("b".to_owned()));
        assert_eq!(path_bucket("/b/some/key"), Some("b".to_owned()));
        assert_eq!(path_bucket("/%62/k"), Some("b".to_owned()), "percent-decoded");
        for none in ["/", "", "b/k", "//k", "/%00/k", "/%FF/k"] {
            assert_eq!(path_bucket(none), None, "{none:?}");
        }
    }

    #[test]
    fn an_actual_request_is_matched_by_its_method_or_the_method_it_says_it_will_use() {
        let rules = CorsRules { rules: vec![rule(&["https://a.com"], &["GET"])] };
        let origin = ("origin", "https://a.com");
        let headers = |method, h: &[(&str, &str)]| {
            CrossOrigin::of(&request(method, "/b/k", h)).expect("a cross-origin request").headers(&rules)
        };
        let h = headers("GET", &[origin]).expect("a match");
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("https://a.com"));
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"));
        assert!(headers("PUT", &[origin]).is_none(), "PUT is not allowed");
        assert!(headers("GET", &[origin, ("access-control-request-method", "PUT")]).is_none(), "as S3: the asked one");
        assert!(headers("PUT", &[origin, ("access-control-request-method", "GET")]).is_some());
        assert!(headers("GET", &[origin, ("access-control-request-headers", "x-a")]).is_none(), "headers checked");
        assert!(headers("GET", &[("origin", "https://b.com")]).is_none());
    }

    #[test]
    fn a_request_without_an_origin_or_a_bucket_is_no_cross_origin_request() {
        assert!(CrossOrigin::of(&request("GET", "/b/k", &[])).is_none());
        assert!(CrossOrigin::of(&request("GET", "/b/k", &[("referer", "https://a.com/")])).is_none());
        assert!(CrossOrigin::of(&request("GET", "/", &[("origin", "https://a.com")])).is_none(), "ListBuckets");
        let asked = CrossOrigin::of(&request("POST", "/b", &[("origin", "https://a.com")]));
        assert_eq!(asked.map(|a| a.bucket), Some("b".to_owned()));
    }

    #[test]
    fn wildcard_matching_is_anchored_at_both_ends() {
        let eq: fn(&[u8], &[u8]) -> bool = <[u8]>::eq;
        assert!(wildcard_match("*", "", eq));
        assert!(wildcard_match("a*a", "aa", eq));
        assert!(!wildcard_match("a*a", "a", eq), "prefix and suffix may not overlap");
        assert!(!wildcard_match("abc", "abcd", eq));
        assert!(wildcard_match("X-AMZ-*", "x-amz-date", <[u8]>::eq_ignore_ascii_case));
    }
}
