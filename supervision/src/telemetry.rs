//! Logs and traces of `hoard serve`.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info,openraft=warn`). With `--otlp-endpoint`, the same
//! spans (one per S3 request, named after its operation, with the stages below it: the operation, segment
//! writes and reads, metadata commits) are also exported over OTLP/gRPC, in batches, to a collector or
//! straight to Jaeger (which ingests OTLP on port 4317). The exporter speaks plain gRPC: put a collector beside
//! the node to reach a TLS endpoint. `OTEL_BSP_*` variables tune the batching, as in every OpenTelemetry SDK.
//!
//! Spans carry the operation, bucket and key, never a credential or a key (SSE-C key headers are marked
//! sensitive before any span or log can see a request).
//!
//! The S3 library's own debug and trace events are never logged, whatever `RUST_LOG` says: they print whole
//! requests and, on a signature mismatch, the signature the request should have carried, from which anyone
//! reading the log could forge that request. Its errors and warnings still pass.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

/// The S3 library's targets: its debug events carry secret-derived values (see the module's docs).
const S3_LIBRARY: &str = "s3s";

/// False for what may never be logged: the S3 library's debug and trace events and spans.
fn no_secret_derived(meta: &tracing::Metadata<'_>) -> bool {
    let library = meta.target() == S3_LIBRARY || meta.target().starts_with("s3s::");
    !(library && matches!(*meta.level(), tracing::Level::DEBUG | tracing::Level::TRACE))
}

/// What must be flushed before the process exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process's subscriber: logs, and OTLP export when `otlp_endpoint` is given. `instance` names
/// this node in the exported resource (`service.instance.id`). Must run inside the Tokio runtime (the gRPC
/// channel is driven by it).
pub fn init(otlp_endpoint: Option<&str>, instance: &str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colours only on a terminal: a log file or the journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer().with_ansi(ansi).with_filter(filter.and(filter_fn(no_secret_derived)));
    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry().with(logs).try_init().context("installing the log subscriber")?;
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("hoard")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance.to_string()),
        ])
        .build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    // hoard's own spans only (every `hoard*` crate), whatever RUST_LOG says: the libraries' spans (an actor
    // framework's per-message spans, the S3 library's signature checks) would bury a request's stages.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("hoard"))
        .with_filter(Targets::new().with_target("hoard", tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log and trace subscriber")?;
    tracing::info!(endpoint, "exporting traces over OTLP");
    Ok(Telemetry { provider: Some(provider) })
}

impl Telemetry {
    /// Sends the spans still waiting in the batch. Blocks (the exporter's own thread does the sending), so it
    /// runs on the blocking pool.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            tracing::info!("flushing the trace export");
            // Not through `exec::blocking`: it waits on the exporter's own thread, which inline mode cannot stand in
            // for, and only `hoard serve` exports traces, never a simulated node.
            #[allow(clippy::disallowed_methods)]
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("hoard: traces not all exported at shutdown: {e}");
            }
        }
    }
}

/// Checks an `--otlp-endpoint` value: an `http://host:port` URL (the exporter speaks plain gRPC).
pub fn check_endpoint(endpoint: &str) -> anyhow::Result<()> {
    let uri: http::Uri = endpoint.parse().with_context(|| format!("--otlp-endpoint {endpoint} is not a URL"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some("https"), _) => anyhow::bail!(
            "--otlp-endpoint {endpoint}: hoard exports over plain gRPC; point it at a collector beside the node \
             (http://127.0.0.1:4317) and let the collector speak TLS"
        ),
        _ => anyhow::bail!("--otlp-endpoint must look like http://127.0.0.1:4317, not {endpoint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_endpoints_must_be_plain_http_urls() {
        check_endpoint("http://127.0.0.1:4317").unwrap();
        check_endpoint("http://jaeger:4317").unwrap();
        for bad in ["127.0.0.1:4317", "https://collector:4317", "ftp://x", "http://"] {
            assert!(check_endpoint(bad).is_err(), "{bad} must be refused");
        }
    }
}
