//! W3C trace context across the transport: a call made inside a traced request carries `traceparent` (and
//! `tracestate`) in its gRPC metadata, and the receiving node continues that trace, so one S3 request is
//! one trace whatever nodes it touches.
//!
//! Invariant: a call made outside any trace (Raft heartbeats, health checks) carries no context and the
//! receiver makes no span for it, so background traffic never floods the trace store.

use opentelemetry::propagation::Extractor;
use opentelemetry::propagation::Injector;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::KeyRef;
use tonic::metadata::MetadataKey;
use tonic::metadata::MetadataMap;
use tonic::metadata::MetadataValue;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Inject<'a>(&'a mut MetadataMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value.as_str()))
        {
            self.0.insert(key, value);
        }
    }
}

struct Extract<'a>(&'a MetadataMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes `context` into `metadata`, if it is part of a trace.
fn inject_context(context: &opentelemetry::Context, metadata: &mut MetadataMap) {
    if context.has_active_span() {
        TraceContextPropagator::new().inject_context(context, &mut Inject(metadata));
    }
}

/// Puts the current span's trace context into an outgoing call's metadata.
pub fn inject(metadata: &mut MetadataMap) {
    inject_context(&tracing::Span::current().context(), metadata);
}

/// The span under which a node answers a call: a child of the caller's span when the call carries a trace
/// context, and no span at all otherwise.
pub fn server_span(metadata: &MetadataMap, name: &'static str) -> tracing::Span {
    let caller = TraceContextPropagator::new().extract(&Extract(metadata));
    if !caller.has_active_span() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("peer.rpc", otel.name = name, otel.kind = "server");
    // Fails only when no OpenTelemetry layer is installed, and then there is nothing to continue.
    let _ = span.set_parent(caller);
    span
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanContext;
    use opentelemetry::trace::SpanId;
    use opentelemetry::trace::TraceFlags;
    use opentelemetry::trace::TraceId;
    use opentelemetry::trace::TraceState;

    use super::*;

    #[test]
    fn a_trace_context_crosses_the_metadata_and_none_is_sent_outside_a_trace() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        let sampled = SpanContext::new(trace, span, TraceFlags::SAMPLED, true, TraceState::default());
        let context = opentelemetry::Context::new().with_remote_span_context(sampled);
        let mut metadata = MetadataMap::new();
        inject_context(&context, &mut metadata);
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let back = TraceContextPropagator::new().extract(&Extract(&metadata));
        assert_eq!(back.span().span_context().trace_id(), trace);

        let mut untraced = MetadataMap::new();
        inject_context(&opentelemetry::Context::new(), &mut untraced);
        assert!(untraced.is_empty());
        assert!(server_span(&untraced, "x").is_none());
    }
}
