//! What the listener serves: the health endpoints, then S3 through s3s.
//!
//! Unsigned `GET /health/live` answers 200 while the process runs. `/health/ready` answers 200 only when metadata
//! answers a linearizable read, 503 otherwise. Both are unauthenticated and reveal nothing else.

use std::convert::Infallible;

use hoard_actors::NodeContext;
use http::Request;
use http::Response;
use http::StatusCode;
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::Body;

use crate::sse::Secure;

pub struct Frontend {
    pub ctx: NodeContext,
    pub s3: S3Service,
    /// Put into every request: whether SSE-C may be accepted on this connection.
    pub secure: Secure,
}

impl Frontend {
    pub async fn call(&self, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        // Only unsigned requests: a signed GET of bucket `health`, key `live` is an S3 request (S3 itself
        // refuses unsigned ones, so nothing an S3 client does is shadowed).
        let unsigned = !req.headers().contains_key(http::header::AUTHORIZATION);
        if req.method() == http::Method::GET && req.uri().query().is_none() && unsigned {
            match req.uri().path() {
                "/health/live" => return Ok(plain(StatusCode::OK, "live\n")),
                "/health/ready" => {
                    return Ok(match self.ctx.meta.read(|r| r.last_applied()).await {
                        Ok(_) => plain(StatusCode::OK, "ready\n"),
                        Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {e}\n")),
                    })
                }
                _ => {}
            }
        }
        let mut req = req;
        hide_customer_keys(req.headers_mut());
        join_repeated_content_encoding(req.headers_mut());
        req.extensions_mut().insert(self.secure);
        match self.s3.call(req.map(Body::from)).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                tracing::error!(error = ?e, "s3 service error");
                Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
            }
        }
    }
}

/// The request headers that carry a customer's key (SSE-C).
const CUSTOMER_KEY_HEADERS: [&str; 2] =
    ["x-amz-server-side-encryption-customer-key", "x-amz-copy-source-server-side-encryption-customer-key"];

/// Marks the customer-key headers sensitive, so every `Debug` of the request (s3s logs whole requests at
/// debug level) prints `Sensitive` in place of the key.
fn hide_customer_keys(headers: &mut http::HeaderMap) {
    for name in CUSTOMER_KEY_HEADERS {
        if let http::header::Entry::Occupied(mut entry) = headers.entry(name) {
            entry.iter_mut().for_each(|value| value.set_sensitive(true));
        }
    }
}

/// SDKs send a streaming body's own Content-Encoding and `aws-chunked` as two header lines; s3s wants
/// one. Joined with a comma they mean the same (RFC 9110 §5.3), and SigV4 canonicalises repeated headers
/// the same way, so signatures still match.
fn join_repeated_content_encoding(headers: &mut http::HeaderMap) {
    let values: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .collect();
    if values.len() > 1 {
        if let Ok(v) = http::HeaderValue::from_str(&values.join(",")) {
            headers.insert(http::header::CONTENT_ENCODING, v);
        }
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_keys_are_never_printed_with_a_request() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-server-side-encryption-customer-key", http::HeaderValue::from_static("S2V5S2V5S2V5"));
        h.insert("x-amz-copy-source-server-side-encryption-customer-key", http::HeaderValue::from_static("T2xkT2xk"));
        h.insert("x-amz-server-side-encryption-customer-algorithm", http::HeaderValue::from_static("AES256"));
        hide_customer_keys(&mut h);
        let printed = format!("{h:?}");
        assert!(!printed.contains("S2V5S2V5S2V5") && !printed.contains("T2xkT2xk"), "{printed}");
        assert!(printed.contains("AES256"), "other headers print as before: {printed}");
        assert_eq!(h["x-amz-server-side-encryption-customer-key"], "S2V5S2V5S2V5", "the value itself is kept");
    }

    #[test]
    fn repeated_content_encodings_become_one_comma_separated_header() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
        h.append(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("aws-chunked"));
        join_repeated_content_encoding(&mut h);
        let all: Vec<_> = h.get_all(http::header::CONTENT_ENCODING).iter().collect();
        assert_eq!(all, vec!["gzip,aws-chunked"]);
    }
}
