//! What the listener serves: the health and metrics endpoints, then S3 through s3s.
//!
//! Unsigned `GET /health/live` answers 200 while the process runs. `/health/ready` answers 200 only when metadata
//! answers a linearizable read and no actor is down waiting for its restart; 503 with the reason otherwise. `/metrics` answers Prometheus text (see `hoard_actors::metrics`).
//! All three are unauthenticated and reveal nothing about what is stored.
//!
//! Every S3 request is metered: its body bytes in and out are counted as they pass, and when the response body
//! is done (or dropped, if the client went away) the request is counted under its operation and status.
//!
//! Every S3 request is also one `s3.request` span, named after its operation once known (what Jaeger shows),
//! closed when the response body is done. A W3C `traceparent` header makes it a child of the caller's span, so
//! a client's trace continues through hoard.
//!
//! A path that is not UTF-8 once percent-decoded is refused (400 `InvalidURI`) before anything else.
//!
//! CORS (rules in `cors`, hooks in `cross_origin`): an `OPTIONS` naming a bucket is a preflight, answered here
//! from the bucket's rules and metered as [`PREFLIGHT_OPERATION`]. A request with an `Origin` gets the CORS
//! headers its bucket's rules give it on whatever response it gets, errors included; a request without one costs
//! no metadata read.
//!
//! A PUT body with no declared length (`Transfer-Encoding: chunked`, or an HTTP/2 stream without
//! `Content-Length`) is taken as S3 takes it (see `body`).

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
use s3s::s3_error;
use s3s::service::S3Service;
use s3s::Body;
use tokio::time::Instant;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::cors;
use crate::ops::MAX_PUT_SIZE;
use crate::sse::Secure;

mod body;
mod cross_origin;
#[cfg(test)]
mod tests;

use body::decoded_too_large;
use body::is_unsigned_put_without_length;
use body::UndeclaredLength;
use cross_origin::preflight_bucket;

pub struct Frontend {
    pub ctx: NodeContext,
    pub s3: S3Service,
    /// Browser form uploads, taken before s3s (see `post`).
    pub post: crate::post::PostObject,
    /// Put into every request: whether SSE-C may be accepted on this connection.
    pub secure: Secure,
    /// Requests refused before they were authenticated, logged in summary.
    pub refusals: RefusalLog,
}

impl Frontend {
    pub async fn call(&self, req: Request<Incoming>) -> Result<Response<Metered<Body>>, Infallible> {
        let start = Instant::now();
        // Only unsigned requests: a signed GET of bucket `health`, key `live` is an S3 request (S3 itself
        // refuses unsigned ones, so nothing an S3 client does is shadowed).
        let unsigned = !req.headers().contains_key(http::header::AUTHORIZATION);
        if req.method() == http::Method::GET && req.uri().query().is_none() && unsigned {
            let own = match req.uri().path() {
                "/health/live" => Some(plain(StatusCode::OK, "live\n")),
                "/health/ready" => Some(match self.ctx.meta.read(|r| r.last_applied()).await {
                    Err(e) => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {e}\n")),
                    Ok(_) => match self.ctx.metrics.down() {
                        down if down.is_empty() => plain(StatusCode::OK, "ready\n"),
                        down => plain(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {}\n", down.join("; "))),
                    },
                }),
                "/metrics" => Some(text(
                    StatusCode::OK,
                    hoard_actors::metrics::CONTENT_TYPE,
                    self.ctx.metrics.render(&self.ctx).await,
                )),
                _ => None,
            };
            if let Some(resp) = own {
                return Ok(resp.map(Metered::unmetered));
            }
        }
        // CORS: an `OPTIONS` naming a bucket is a preflight, answered here (it is no S3 operation and is never
        // signed); another request with an `Origin` gets its bucket's CORS headers on whatever it is answered.
        let preflight = preflight_bucket(&req);
        let cross_origin = if preflight.is_none() { cors::CrossOrigin::of(&req) } else { None };
        let mut req = req;
        hide_customer_keys(req.headers_mut());
        join_repeated_content_encoding(req.headers_mut());
        req.extensions_mut().insert(self.secure);
        let operation = Operation::default();
        req.extensions_mut().insert(operation.clone());
        let span = request_span(&req);
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        let no_length = is_unsigned_put_without_length(&req);
        let req = req.map(move |inner| {
            let metered = Metered { inner, count, _meter: None };
            if no_length {
                Body::http_body(UndeclaredLength::new(metered, MAX_PUT_SIZE as u64))
            } else {
                Body::http_body(metered)
            }
        });
        // A preflight is no S3 request: what the gate checks (signatures, bodies) is not its concern.
        let refused = match preflight {
            Some(_) => None,
            None => undecodable_path(&req)
                .or_else(|| crate::gate::refuse(&req))
                .or_else(|| decoded_too_large(&req))
                .map(|e| e.to_http_response().unwrap_or_else(|_| plain(StatusCode::BAD_REQUEST, "bad request\n"))),
        };
        let mut resp = match (preflight, refused) {
            (Some(bucket), _) => {
                operation.set(PREFLIGHT_OPERATION);
                span.in_scope(|| self.preflight(&bucket, req.headers()))
            }
            (None, Some(resp)) => resp,
            (None, None) if crate::post::is_form_upload(&req) => self.post.handle(req).instrument(span.clone()).await,
            (None, None) => match self.s3.call(req).instrument(span.clone()).await {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::error!(parent: &span, error = ?e, "s3 service error");
                    plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
                }
            },
        };
        if let Some(asked) = cross_origin {
            self.add_cors_headers(&asked, resp.headers_mut());
        }
        let status = resp.status().as_u16();
        if resp.status().is_client_error() && operation.name() == UNKNOWN_OPERATION {
            self.refusals.note(status);
        }
        // The span's OpenTelemetry side exists by now (it was entered), so it is renamed there.
        span.context().span().update_name(operation.name().to_string());
        span.record("s3.operation", operation.name());
        span.record("http.response.status_code", i64::from(status));
        let sent = Arc::new(AtomicU64::new(0));
        let metrics = self.ctx.metrics.clone();
        let meter = Meter { metrics, operation, status, start, received, sent: sent.clone(), _span: span };
        Ok(resp.map(|inner| Metered { inner, count: sent, _meter: Some(meter) }))
    }
}

/// The operation a preflight is metered and traced as.
pub const PREFLIGHT_OPERATION: &str = "PreflightRequest";

/// How often at most a line about refused, unauthenticated requests is logged.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Counts the requests refused before authentication (bad signatures, unknown keys, what the gate refuses)
/// and logs them at INFO, one line per [`REFUSAL_LOG_EVERY`] at most: a client sending a flood of bad
/// requests cannot flood the log. Nothing of the request (its signature, its key) is logged.
pub struct RefusalLog {
    /// When the last line was logged (`None`: never), and how many refusals since.
    window: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog { window: std::sync::Mutex::new((None, 0)) }
    }
}

impl RefusalLog {
    fn note(&self, status: u16) {
        let Ok(mut window) = self.window.lock() else { return };
        window.1 += 1;
        if window.0.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            tracing::info!(
                refused = window.1,
                last_status = status,
                "requests refused before authentication (one line per 10 s at most)"
            );
            *window = (Some(Instant::now()), 0);
        }
    }
}

/// The name of the span of each S3 request.
pub const REQUEST_SPAN: &str = "s3.request";

/// The span of one S3 request, a child of the caller's span when the request carries a `traceparent`.
fn request_span(req: &Request<Incoming>) -> tracing::Span {
    let span = tracing::info_span!(
        REQUEST_SPAN,
        otel.name = REQUEST_SPAN,
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

/// The S3 operation of a request, set once it is known (see [`crate::access::Authorize`]).
#[derive(Clone, Default)]
pub struct Operation(Arc<OnceLock<String>>);

impl Operation {
    /// Notes the operation; the first name set stays.
    pub fn set(&self, name: impl Into<String>) {
        let _ = self.0.set(name.into());
    }

    /// The operation, or [`UNKNOWN_OPERATION`] if the request was refused before it was known.
    pub fn name(&self) -> &str {
        self.0.get().map(String::as_str).unwrap_or(UNKNOWN_OPERATION)
    }
}

/// What is known of a request until its response is done.
struct Meter {
    metrics: Arc<NodeMetrics>,
    operation: Operation,
    status: u16,
    start: Instant,
    /// The request body's and the response body's byte counts.
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    /// Held so the request's span closes with its response.
    _span: tracing::Span,
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.metrics.record_request(&FinishedRequest {
            operation: self.operation.name(),
            status: self.status,
            seconds: self.start.elapsed().as_secs_f64(),
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
        });
    }
}

/// A body that counts the data bytes passing through it: a request's as s3s reads it, a response's as hyper
/// sends it. A response's also carries its request's [`Meter`], which counts the request when the body is
/// done or dropped.
pub struct Metered<B> {
    inner: B,
    count: Arc<AtomicU64>,
    /// Held only to be dropped with the body.
    _meter: Option<Meter>,
}

impl<B> Metered<B> {
    /// A body counted for nobody (hoard's own endpoints are not S3 requests).
    fn unmetered(inner: B) -> Metered<B> {
        Metered { inner, count: Arc::new(AtomicU64::new(0)), _meter: None }
    }
}

impl<B: http_body::Body<Data = Bytes> + Unpin> http_body::Body for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
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

/// A path that is not UTF-8 once percent-decoded names no bucket or key: refused as S3 refuses it. (s3s
/// refuses it too, with the same code but no message.)
fn undecodable_path<B>(req: &Request<B>) -> Option<s3s::S3Error> {
    let decoded = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8();
    decoded.is_err().then(|| s3_error!(InvalidURI, "Couldn't parse the specified URI."))
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
    text(status, "text/plain", body.to_string())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}
