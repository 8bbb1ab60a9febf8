//! Traces over OTLP: a real `hoard serve --otlp-endpoint` process exports its spans to an OTLP/gRPC receiver
//! that this test runs (the same protocol Jaeger and the OpenTelemetry Collector receive on port 4317).

use std::collections::HashMap;

use hoard_it::free_port;
use hoard_it::otlp::attr;
use hoard_it::otlp::traced_put;
use hoard_it::otlp::Exported;
use hoard_it::otlp::Received;
use hoard_it::pattern;
use hoard_it::HoardProcess;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;

/// The caller's trace, as a client would send it in `traceparent`.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn in_trace(spans: &[Exported], name: &str) -> bool {
    spans.iter().any(|(_, s)| s.name == name && hex::encode(&s.trace_id) == TRACE_ID)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_continuing_the_callers() {
    let port = free_port();
    let received = Received::default();
    let receiver = received.serve(port);

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let node = HoardProcess::start(&dir.path().join("data"), &["--otlp-endpoint", &endpoint]).unwrap();
    let c = node.client();
    c.create_bucket().bucket("traced").send().await.unwrap();
    let data = pattern(11, 3 << 20);
    traced_put(&c, "traced", "obj", data.clone(), TRACE_ID, CALLER_SPAN).await;

    received
        .until("the PUT's spans", |s| {
            in_trace(s, "PutObject") && in_trace(s, "write_segment") && in_trace(s, "meta.write")
        })
        .await;
    let spans = received.spans();
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|(_, s)| (s.span_id.clone(), s)).collect();
    let find =
        |name: &str| spans.iter().find(|(_, s)| s.name == name && hex::encode(&s.trace_id) == TRACE_ID).expect(name);

    // The request's span: named after the operation, a server span, the child of the caller's span.
    let (resource, request) = find("PutObject");
    assert_eq!(hex::encode(&request.parent_span_id), CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(attr(&request.attributes, "http.response.status_code"), Some(&Value::IntValue(200)));
    assert_eq!(attr(resource, "service.name"), Some(&Value::StringValue("hoard".into())));

    // The stages below it, on other tasks and actors, are its descendants.
    let descends = |span: &Span| {
        let mut at = span;
        for _ in 0..16 {
            if at.span_id == request.span_id {
                return true;
            }
            match by_id.get(&at.parent_span_id) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    };
    for stage in ["put_object", "write_segment", "meta.write"] {
        let (_, span) = find(stage);
        assert!(descends(span), "{stage} descends from the request's span");
    }

    // A request without traceparent starts a trace of its own.
    assert_eq!(hoard_it::get(&c, "traced", "obj").await, data);
    received.until("the GET's span", |s| s.iter().any(|(_, s)| s.name == "GetObject")).await;
    let spans = received.spans();
    let (_, get) = spans.iter().find(|(_, s)| s.name == "GetObject").unwrap();
    assert_ne!(hex::encode(&get.trace_id), TRACE_ID);
    assert!(get.parent_span_id.is_empty(), "a root span");

    // No span carries a credential.
    for (_, span) in &spans {
        let printed = format!("{span:?}");
        assert!(!printed.contains(hoard_it::SECRET_KEY), "the secret key is in span {}", span.name);
    }
    drop(node);
    receiver.abort();
}
