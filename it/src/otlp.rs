//! An OTLP/gRPC trace receiver for tests: what Jaeger and the OpenTelemetry Collector receive on port 4317,
//! keeping every span it is sent.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use tokio::sync::Notify;

/// A span received, with the attributes of the resource that sent it.
pub type Exported = (Vec<KeyValue>, Span);

/// Every span received.
#[derive(Default, Clone)]
pub struct Received {
    spans: Arc<Mutex<Vec<Exported>>>,
    arrived: Arc<Notify>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for scope in rs.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (resource.clone(), s)));
            }
        }
        drop(spans);
        self.arrived.notify_waiters();
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Received {
    /// Waits until `done` holds over the spans received so far (they come in batches every few seconds).
    pub async fn until(&self, what: &str, done: impl Fn(&[Exported]) -> bool) {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                if done(&self.spans.lock().unwrap()) {
                    return;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("no OTLP export showed {what}; got {:?}", self.names()));
    }

    pub fn names(&self) -> Vec<String> {
        self.spans.lock().unwrap().iter().map(|(_, s)| s.name.clone()).collect()
    }

    pub fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }

    /// Serves OTLP/gRPC on 127.0.0.1:`port` until the returned task is aborted.
    pub fn serve(&self, port: u16) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(self.clone()))
            .serve(([127, 0, 0, 1], port).into());
        tokio::spawn(server)
    }
}

/// The value of attribute `key`, if set.
pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

/// PUTs `body` as `bucket/key` in the caller's trace `trace_id`, under the caller's span `span_id` (the W3C
/// `traceparent` header a traced client sends).
pub async fn traced_put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>, trace_id: &str, span_id: &str) {
    let traceparent = format!("00-{trace_id}-{span_id}-01");
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .customize()
        .mutate_request(move |r| {
            r.headers_mut().insert("traceparent", traceparent.clone());
        })
        .send()
        .await
        .unwrap_or_else(|e| panic!("traced PUT {bucket}/{key}: {e:?}"));
}
