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

use http::HeaderValue;
use s3s::dto;
use s3s::dto::CORSConfiguration;
use s3s::s3_error;
use s3s::S3Error;
use serde::Deserialize;
use serde::Serialize;

mod matching;
mod request;
#[cfg(test)]
mod tests;

pub use request::path_bucket;
pub use request::CrossOrigin;
pub use request::Preflight;

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
