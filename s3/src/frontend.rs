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
//! CORS (rules in `cors`): an `OPTIONS` naming a bucket is a preflight, answered here from the bucket's rules
//! and metered as [`PREFLIGHT_OPERATION`]. A request with an `Origin` gets the CORS headers its bucket's rules
//! give it on whatever response it gets, errors included; a request without one costs no metadata read.
//!
//! A PUT body with no declared length (`Transfer-Encoding: chunked`, or an HTTP/2 stream without
//! `Content-Length`) is taken as S3 takes it: signed `UNSIGNED-PAYLOAD`, or `aws-chunked` with
//! `x-amz-decoded-content-length`. It streams like any body and may carry at most [`MAX_PUT_SIZE`] bytes, the
//! most one PUT (or part) may. Only a body signed whole (its SHA-256 in `x-amz-content-sha256`) needs its length
//! up front, and s3s answers 411 `MissingContentLength` for it. Nothing in hoard reads a request body's size
//! hint (see [`UndeclaredLength`]).

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
use hoard_protocol::BucketSetting;
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

use crate::access::meta;
use crate::cors;
use crate::error::OrS3;
use crate::error::BODY_TOO_LARGE;
use crate::ops::MAX_PUT_SIZE;
use crate::sse::Secure;

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

impl Frontend {
    /// The answer to a preflight naming `bucket`, from the rules in the local state machine (a preflight is a
    /// browser asking before each cross-origin request: no Raft round trip for it).
    fn preflight(&self, bucket: &str, headers: &http::HeaderMap) -> Response<Body> {
        let answer = cors::Preflight::of(headers).and_then(|preflight| {
            let reader = self.ctx.meta.local().or_s3()?;
            let exists = meta(reader.bucket(bucket))?.is_some();
            let stored = if exists { meta(reader.bucket_setting(bucket, BucketSetting::Cors))? } else { None };
            preflight.answer(exists, stored.as_deref())
        });
        match answer {
            Ok(cors_headers) => {
                let mut r = Response::new(Body::empty());
                r.headers_mut().extend(cors_headers);
                r
            }
            Err(e) => e.to_http_response().unwrap_or_else(|_| plain(StatusCode::FORBIDDEN, "forbidden\n")),
        }
    }

    /// Adds to a response the CORS headers its bucket's rules give the request, if any match. Nothing is added
    /// when the rules cannot be read: a browser then refuses the response, which is the safe side.
    fn add_cors_headers(&self, asked: &cors::CrossOrigin, response: &mut http::HeaderMap) {
        let stored =
            self.ctx.meta.local().or_s3().and_then(|r| meta(r.bucket_setting(&asked.bucket, BucketSetting::Cors)));
        let rules = match stored {
            Ok(None) => return,
            Ok(Some(text)) => cors::CorsRules::from_json(&text),
            Err(e) => Err(e),
        };
        match rules {
            Ok(rules) => response.extend(asked.headers(&rules).unwrap_or_default()),
            Err(e) => tracing::error!(bucket = %asked.bucket, error = %e, "the bucket's CORS rules cannot be read"),
        }
    }
}

/// The bucket a preflight names: an `OPTIONS` of `/bucket` or `/bucket/key`. `None` for any other request
/// (an `OPTIONS /` goes on to s3s, which knows no such operation).
fn preflight_bucket<B>(req: &Request<B>) -> Option<String> {
    (req.method() == http::Method::OPTIONS).then(|| cors::path_bucket(req.uri().path())).flatten()
}

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

/// Whether `req` is a PUT whose body has no declared length and is signed `UNSIGNED-PAYLOAD`: the body
/// [`UndeclaredLength`] is for.
fn is_unsigned_put_without_length<B: http_body::Body>(req: &Request<B>) -> bool {
    req.method() == http::Method::PUT
        && !req.headers().contains_key(http::header::CONTENT_LENGTH)
        && http_body::Body::size_hint(req.body()).exact().is_none()
        && req.headers().get("x-amz-content-sha256").is_some_and(|v| v.as_bytes() == b"UNSIGNED-PAYLOAD")
}

/// An `aws-chunked` PUT that says it will carry more than one PUT may: refused before anything is read. (With a
/// `Content-Length` the object layer would refuse it too; without one, this is the only bound.)
fn decoded_too_large<B>(req: &Request<B>) -> Option<s3s::S3Error> {
    let decoded = req.headers().get("x-amz-decoded-content-length")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    (req.method() == http::Method::PUT && decoded > MAX_PUT_SIZE as u64)
        .then(|| s3_error!(EntityTooLarge, "Your proposed upload exceeds the maximum allowed size of 5 GiB"))
}

/// The body of a PUT signed `UNSIGNED-PAYLOAD` that declares no length, as S3 takes it: streamed, and failed
/// (with [`BODY_TOO_LARGE`], which the object layer answers as `EntityTooLarge`) once more than `limit` bytes
/// have come.
///
/// s3s refuses such a body as MinIO does (411 `MissingContentLength`), knowing it by a size hint that is not
/// exact. So until it is first read, which s3s's check always comes before, this body's size hint says
/// `limit` bytes exactly; from then on it is the connection's own.
struct UndeclaredLength<B> {
    inner: B,
    limit: u64,
    /// Data bytes passed so far.
    read: u64,
    /// Whether a frame was asked for yet.
    polled: bool,
}

impl<B> UndeclaredLength<B> {
    fn new(inner: B, limit: u64) -> UndeclaredLength<B> {
        UndeclaredLength { inner, limit, read: 0, polled: false }
    }
}

/// What an [`UndeclaredLength`] body fails with past its limit.
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(BODY_TOO_LARGE)
    }
}

impl std::error::Error for BodyTooLarge {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> http_body::Body for UndeclaredLength<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.polled = true;
        let frame = match std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        self.read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if self.read > self.limit {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.polled {
            self.inner.size_hint()
        } else {
            SizeHint::with_exact(self.limit)
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
    text(status, "text/plain", body.to_string())
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
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

    /// A body of `chunks` whose length nobody declared, as hyper gives a chunked one.
    struct Chunked(std::collections::VecDeque<Bytes>);

    impl http_body::Body for Chunked {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunked(chunks: &[&'static [u8]]) -> Chunked {
        Chunked(chunks.iter().map(|c| Bytes::from_static(c)).collect())
    }

    async fn next<B: http_body::Body + Unpin>(b: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        futures::future::poll_fn(|cx| Pin::new(&mut *b).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_body_without_a_length_streams_up_to_its_limit_and_fails_past_it() {
        let mut body = UndeclaredLength::new(chunked(&[b"abcd", b"efgh"]), 8);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(8), "until read: what s3s's check asks");
        let first = next(&mut body).await.expect("a frame").expect("data");
        assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"abcd")));
        assert_eq!(http_body::Body::size_hint(&body).exact(), None, "once read: the connection's own hint");
        assert!(next(&mut body).await.expect("a frame").is_ok(), "exactly the limit is allowed");
        assert!(next(&mut body).await.is_none());

        let mut body = UndeclaredLength::new(chunked(&[b"abcd", b"efgh", b"ijkl"]), 7);
        assert!(next(&mut body).await.expect("a frame").is_ok());
        let err = next(&mut body).await.expect("a frame").expect_err("past the limit");
        let s3 = crate::error::to_s3(hoard_actors::error::ActorError::Body(err.to_string()));
        assert_eq!(s3.code(), &s3s::S3ErrorCode::EntityTooLarge, "answered as S3 answers a body too large");
    }

    #[test]
    fn only_unsigned_puts_that_declare_no_length_get_an_undeclared_length_body() {
        let put = |headers: &[(&str, &str)], method: &str| {
            let mut b = Request::builder().method(method).uri("/b/k");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(chunked(&[b"x"])).expect("a request")
        };
        let unsigned = ("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
        assert!(is_unsigned_put_without_length(&put(&[unsigned], "PUT")));
        assert!(!is_unsigned_put_without_length(&put(&[unsigned, ("content-length", "1")], "PUT")));
        assert!(!is_unsigned_put_without_length(&put(&[unsigned], "POST")));
        let whole = ("x-amz-content-sha256", "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
        assert!(!is_unsigned_put_without_length(&put(&[whole], "PUT")), "a body signed whole needs its length");
        let streamed = ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
        assert!(!is_unsigned_put_without_length(&put(&[streamed], "PUT")), "aws-chunked has its decoded length");
        let empty = Request::builder().method("PUT").uri("/b/k").header(unsigned.0, unsigned.1).body(Body::empty());
        assert!(!is_unsigned_put_without_length(&empty.expect("a request")), "a body known to be empty has a length");
    }

    #[test]
    fn a_path_that_is_not_utf8_once_decoded_is_an_invalid_uri() {
        let at = |path: &str| {
            let req = Request::builder().uri(path).body(()).expect("a request");
            undecodable_path(&req).map(|e| e.code().clone())
        };
        for bad in ["/b/%FF", "/b/a%C3%28", "/%E9/k", "/b/%ED%A0%80"] {
            assert_eq!(at(bad), Some(s3s::S3ErrorCode::InvalidURI), "{bad}");
        }
        for good in ["/b/%C3%A9", "/b/plain", "/", "/b/%25FF", "/b/%F0%9F%A6%80"] {
            assert_eq!(at(good), None, "{good}");
        }
    }

    #[test]
    fn an_aws_chunked_put_may_declare_at_most_5_gib() {
        let put = |decoded: u64, method: &str| {
            let b = Request::builder().method(method).uri("/b/k").header("x-amz-decoded-content-length", decoded);
            decoded_too_large(&b.body(()).expect("a request")).map(|e| e.code().clone())
        };
        let max = MAX_PUT_SIZE as u64;
        assert_eq!(put(max + 1, "PUT"), Some(s3s::S3ErrorCode::EntityTooLarge));
        assert_eq!(put(max, "PUT"), None);
        assert_eq!(put(max + 1, "GET"), None);
    }

    #[test]
    fn only_an_options_naming_a_bucket_is_a_preflight() {
        let at = |method: &str, uri: &str| {
            preflight_bucket(&Request::builder().method(method).uri(uri).body(()).expect("a request"))
        };
        assert_eq!(at("OPTIONS", "/bkt/some/key?X-Amz-Signature=0"), Some("bkt".to_owned()));
        assert_eq!(at("OPTIONS", "/bkt"), Some("bkt".to_owned()));
        assert_eq!(at("OPTIONS", "/"), None, "no bucket: not a preflight hoard answers");
        assert_eq!(at("GET", "/bkt/k"), None);
        assert_eq!(at("PUT", "/bkt/k"), None);
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
