//! Matching a request against a bucket's rules: the headers of the first rule that matches a preflight
//! ([`CorsRules::preflight`]) or an actual request ([`CorsRules::response_headers`]).

use http::header;
use http::HeaderMap;
use http::HeaderName;
use http::HeaderValue;

use super::CorsRule;
use super::CorsRules;
use super::MAX_REQUESTED_HEADERS;
use super::MAX_REQUEST_VALUE;
use super::VARY;

impl CorsRules {
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

/// Whether `value` matches `pattern`, whose first `*` stands for any run of bytes (the empty one too),
/// comparing the rest with `eq`. Linear in the lengths.
pub(super) fn wildcard_match(pattern: &str, value: &str, eq: fn(&[u8], &[u8]) -> bool) -> bool {
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
