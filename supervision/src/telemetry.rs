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
//! A log line names the spans it was logged in: the actors around it and, inside an S3 request, the request's
//! span (its method) and its operation's (bucket and key). The spans below those (the session actor, the S3
//! library's signature checks, segment writes, commits) are left out of the log: the log layer would format
//! their fields for every request, though few requests ever log a line, and with `--otlp-endpoint` the traces
//! carry them. A `RUST_LOG` that names spans (`[write_segment]=debug`) keeps them all, so that it still works.
//!
//! The S3 library's own debug and trace events are never logged, whatever `RUST_LOG` says: they print whole
//! requests and, on a signature mismatch, the signature the request should have carried, from which anyone
//! reading the log could forge that request. Its errors and warnings still pass.

use anyhow::Context as _;
use hoard_s3::frontend::REQUEST_SPAN;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::subscriber::Interest;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::fmt::format::Format;
use tracing_subscriber::layer::Context;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
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

/// False for a span the log leaves out (see the module's docs): one opened beneath a request's operation span,
/// or one opened right under a request's span by a library (the S3 library's signature checks). Those it
/// leaves out are not the current span of anything it keeps, so the current span it sees inside a request is
/// the request's or the operation's.
fn logged_span<S>(meta: &tracing::Metadata<'_>, cx: &Context<'_, S>) -> bool
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if !meta.is_span() {
        return true;
    }
    let Some(current) = cx.lookup_current() else { return true };
    if current.name() == REQUEST_SPAN {
        return meta.target().starts_with("hoard");
    }
    current.parent().is_none_or(|parent| parent.name() != REQUEST_SPAN)
}

/// Whether a log filter names spans (`[name]`, `[{field=value}]`): then every span is kept, so that it matches.
fn names_spans(filter: &str) -> bool {
    filter.contains('[')
}

/// A filter of spans by their context.
type SpanFilter<S> = DynFilterFn<
    S,
    fn(&tracing::Metadata<'_>, &Context<'_, S>) -> bool,
    fn(&'static tracing::Metadata<'static>) -> Interest,
>;

/// The spans the log leaves out refused, events let through without a look; `None` (every span kept) when
/// the log filter names spans.
fn logged_spans<S>(filter: &str) -> Option<SpanFilter<S>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let span: fn(&tracing::Metadata<'_>, &Context<'_, S>) -> bool = logged_span::<S>;
    let callsite: fn(&'static tracing::Metadata<'static>) -> Interest =
        |meta| if meta.is_span() { Interest::sometimes() } else { Interest::always() };
    (!names_spans(filter)).then(|| DynFilterFn::new(span).with_callsite_filter(callsite))
}

fn fmt_layer<S, W>(ansi: bool, writer: W) -> tracing_subscriber::fmt::Layer<S, DefaultFields, Format, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer)
}

/// The subscriber of a node that exports no traces: the log's filters apply to the whole process, so what the
/// log leaves out (spans below a request's, what `filter` refuses) is not made at all. As filters of the log layer
/// alone they would not be enough: a span its only layer refuses is still made, its fields recorded.
fn log_subscriber<W>(filter: EnvFilter, ansi: bool, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let spans = logged_spans(&filter.to_string());
    tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(no_secret_derived))
        .with(spans)
        .with(fmt_layer(ansi, writer))
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
    let Some(endpoint) = otlp_endpoint else {
        log_subscriber(filter, ansi, std::io::stderr).try_init().context("installing the log subscriber")?;
        return Ok(Telemetry { provider: None });
    };
    // The same filters, for the log layer alone: the traces take what they take.
    let spans = logged_spans(&filter.to_string());
    let logs = fmt_layer(ansi, std::io::stderr).with_filter(filter.and(filter_fn(no_secret_derived)).and(spans));
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
    use std::sync::Arc;
    use std::sync::Mutex;

    use super::*;

    /// The log lines written so far.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    /// Logs, through the subscriber of a node without trace export, a line inside a request's operation and a
    /// line outside any request; returns what was logged and whether the spans below the operation were made.
    fn log_a_request(filter: &str) -> (String, bool) {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = log_subscriber(EnvFilter::new(filter), false, move || writer.clone());
        let made_below = tracing::subscriber::with_default(subscriber, || {
            let actor = tracing::info_span!("Actor", name = "s3_sup");
            let _actor = actor.enter();
            let made_below = {
                let request = tracing::info_span!(REQUEST_SPAN, http.request.method = "PUT");
                let _request = request.enter();
                let check = tracing::info_span!(target: "s3s::ops", "v4_check");
                drop(check.enter());
                let operation = tracing::info_span!("put_object", bucket = "photos", key = "cat.jpg");
                let _operation = operation.enter();
                let session = tracing::info_span!(target: "ractor::actor", "Actor", name = "session");
                let _session = session.enter();
                let segment = tracing::info_span!("write_segment", part = 1);
                let _segment = segment.enter();
                tracing::warn!("inside a request");
                tracing::debug!("debug inside a segment write");
                assert!(!request.is_disabled() && !operation.is_disabled());
                !(check.is_disabled() && session.is_disabled() && segment.is_disabled())
            };
            let sup = tracing::info_span!("Actor", name = "child");
            let _sup = sup.enter();
            tracing::warn!("outside a request");
            made_below
        });
        (lines.take(), made_below)
    }

    fn line<'a>(logged: &'a str, with: &str) -> &'a str {
        logged.lines().find(|l| l.contains(with)).unwrap_or_else(|| panic!("no line with {with:?} in {logged}"))
    }

    #[test]
    fn a_line_logged_in_a_request_names_the_request_and_its_operation_and_no_span_below() {
        let (logged, made_below) = log_a_request("info");
        assert!(!made_below, "no span below a request's operation is made, nor a library's under the request");
        let inside = line(&logged, "inside a request");
        let context =
            r#"Actor{name="s3_sup"}:s3.request{http.request.method="PUT"}:put_object{bucket="photos" key="cat.jpg"}:"#;
        assert!(inside.contains(context), "{inside}");
        assert!(!inside.contains("session") && !inside.contains("write_segment"), "{inside}");
        assert!(!logged.contains("debug inside"), "{logged}");
        let outside = line(&logged, "outside a request");
        assert!(
            outside.contains(r#"Actor{name="s3_sup"}:Actor{name="child"}:"#),
            "spans outside requests stay: {outside}"
        );
    }

    #[test]
    fn a_log_filter_that_names_a_span_keeps_every_span() {
        let (logged, made_below) = log_a_request("info,[write_segment]=debug");
        assert!(made_below);
        let debug = line(&logged, "debug inside a segment write");
        assert!(debug.contains("write_segment{part=1}"), "{debug}");
        assert!(line(&logged, "inside a request").contains(r#"Actor{name="session"}"#));
    }

    #[test]
    fn otlp_endpoints_must_be_plain_http_urls() {
        check_endpoint("http://127.0.0.1:4317").unwrap();
        check_endpoint("http://jaeger:4317").unwrap();
        for bad in ["127.0.0.1:4317", "https://collector:4317", "ftp://x", "http://"] {
            assert!(check_endpoint(bad).is_err(), "{bad} must be refused");
        }
    }
}
