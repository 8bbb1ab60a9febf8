//! What the listener serves: the health and metrics endpoints, then S3 through s3s.
//!
//! Unsigned `GET /health/live` answers 200 while the process runs. `/health/ready` answers 200 only when metadata
//! answers a linearizable read, 503 otherwise. `/metrics` answers Prometheus text (see `hoard_actors::metrics`).
//! All three are unauthenticated and reveal nothing about what is stored.
//!
//! Every S3 request is metered: its body bytes in and out are counted as they pass, and when the response body
//! is done (or dropped, if the client went away) the request is counted under its operation and status.
//!
//! Every S3 request is also one `s3.request` span, named after its operation once known (what Jaeger shows),
//! closed when the response body is done. A W3C `traceparent` header makes it a child of the caller's span, so
//! a client's trace continues through hoard.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::Context;
use std::task::Poll;

use bytes::Bytes;
use hoard_actors::metrics::FinishedRequest;
use hoard_actors::metrics::NodeMetrics;
use hoard_actors::metrics::UNKNOWN_OPERATION;
use hoard_actors::NodeContext;
use http::Request;
use http::Response;
use http::StatusCode;
use http_body::Frame;
use http_body::SizeHint;
use hyper::body::Incoming;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use s3s::access::S3Access;
use s3s::access::S3AccessContext;
use s3s::s3_error;
use s3s::service::S3Service;
use s3s::Body;
use s3s::S3Result;
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::sse::Secure;

pub struct Frontend {
    pub ctx: NodeContext,
    pub s3: S3Service,
    /// Put into every request: whether SSE-C may be accepted on this connection.
    pub secure: Secure,
}

impl Frontend {
    pub async fn call(&self, req: Request<Incoming>) -> Result<Response<Metered>, Infallible> {
        let start = Instant::now();
        // Only unsigned requests: a signed GET of bucket `health`, key `live` is an S3 request (S3 itself
        // refuses unsigned ones, so nothing an S3 client does is shadowed).
        let unsigned = !req.headers().contains_key(http::header::AUTHORIZATION);
        if req.method() == http::Method::GET && req.uri().query().is_none() && unsigned {
            let own = match req.uri().path() {
                "/health/live" => Some(plain(StatusCode::OK, "live\n")),
                "/health/ready" => Some(match self.ctx.meta.read(|r| r.last_applied()).await {
                    Ok(_) => plain(StatusCode::OK, "ready\n"),
                    Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {e}\n")),
                }),
                "/metrics" => {
                    let text = self.ctx.metrics.render(&self.ctx).await;
                    let mut r = Response::new(Body::from(text));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static(hoard_actors::metrics::CONTENT_TYPE),
                    );
                    Some(r)
                }
                _ => None,
            };
            if let Some(resp) = own {
                return Ok(resp.map(|inner| Metered { inner, meter: None }));
            }
        }
        let mut req = req;
        hide_customer_keys(req.headers_mut());
        join_repeated_content_encoding(req.headers_mut());
        req.extensions_mut().insert(self.secure);
        let operation = Operation::default();
        req.extensions_mut().insert(operation.clone());
        let span = request_span(&req);
        let received = Arc::new(AtomicU64::new(0));
        let counted = received.clone();
        let req = req.map(move |inner| Body::http_body(Counted { inner, count: counted }));
        let resp = match self.s3.call(req).instrument(span.clone()).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::error!(parent: &span, error = ?e, "s3 service error");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            }
        };
        let name = operation.0.get().map(String::as_str).unwrap_or(UNKNOWN_OPERATION);
        // The span's OpenTelemetry side exists by now (it was entered), so it is renamed there.
        span.context().span().update_name(name.to_string());
        span.record("s3.operation", name);
        span.record("http.response.status_code", i64::from(resp.status().as_u16()));
        let meter = Meter {
            metrics: self.ctx.metrics.clone(),
            operation,
            status: resp.status().as_u16(),
            start,
            received,
            sent: 0,
            _span: span,
        };
        Ok(resp.map(|inner| Metered { inner, meter: Some(meter) }))
    }
}

/// The span of one S3 request, a child of the caller's span when the request carries a `traceparent`.
fn request_span(req: &Request<Incoming>) -> tracing::Span {
    let span = tracing::info_span!(
        "s3.request",
        otel.name = "s3.request",
        otel.kind = "server",
        http.request.method = %req.method(),
        s3.operation = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    let caller = TraceContextPropagator::new().extract(&HeaderExtractor(req.headers()));
    if caller.has_active_span() {
        // Fails only when no OpenTelemetry layer is installed, and then there is nothing to link.
        let _ = span.set_parent(caller);
    }
    span
}

/// The S3 operation of a request, set once it is known (see [`RecordOperation`]).
#[derive(Clone, Default)]
pub struct Operation(Arc<OnceLock<String>>);

impl Operation {
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_string());
    }
}

/// s3s's access check, which runs once a request is authenticated and its operation resolved: it notes the
/// operation for the metrics, then refuses anonymous requests as s3s's own default check does.
pub struct RecordOperation;

#[async_trait::async_trait]
impl S3Access for RecordOperation {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = cx.s3_op().name().to_string();
        if let Some(op) = cx.extensions_mut().get::<Operation>() {
            op.set(&name);
        }
        match cx.credentials() {
            Some(_) => Ok(()),
            None => Err(s3_error!(AccessDenied, "Signature is required")),
        }
    }
}

/// A request body that counts the bytes read from it.
struct Counted {
    inner: Incoming,
    count: Arc<AtomicU64>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is known of a request until its response is done.
struct Meter {
    metrics: Arc<NodeMetrics>,
    operation: Operation,
    status: u16,
    start: Instant,
    received: Arc<AtomicU64>,
    sent: u64,
    /// Held so the request's span closes with its response.
    _span: tracing::Span,
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.metrics.record_request(&FinishedRequest {
            operation: self.operation.0.get().map(String::as_str).unwrap_or(UNKNOWN_OPERATION),
            status: self.status,
            seconds: self.start.elapsed().as_secs_f64(),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent,
        });
    }
}

/// A response body that counts the bytes sent and, dropped, counts its request.
pub struct Metered {
    inner: Body,
    meter: Option<Meter>,
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(meter)) = (&polled, this.meter.as_mut()) {
            if let Some(data) = frame.data_ref() {
                meter.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
