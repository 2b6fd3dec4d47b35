//! Logs and traces. Logs always go to stderr (`TETHER_LOG` filter). Spans are exported over
//! OTLP (`OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`, the default, or `grpc`) when the
//! standard OpenTelemetry environment asks for it:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, and neither
//! `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`. The SDK itself reads the rest:
//! `OTEL_EXPORTER_OTLP_HEADERS` and `_TIMEOUT`, `OTEL_TRACES_SAMPLER`/`_ARG` (default
//! parent-based always-on), `OTEL_BSP_*` (the bounded batch queue) and
//! `OTEL_RESOURCE_ATTRIBUTES`. `OTEL_SERVICE_NAME` defaults to `tether`.
//!
//! Export runs on the SDK's own thread with a bounded queue, so a dead collector never
//! blocks the node: spans past the queue and spans whose export failed are dropped and
//! counted in `tether_trace_spans_dropped_total`. Without export, no exporter, no
//! propagator: `tether_cluster::trace` then does nothing.

mod export;

use std::io::IsTerminal;
use std::sync::atomic::AtomicU64;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Spans dropped: queue full or export failed (rendered by `/metrics`).
pub static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// What the node reports itself as, on every exported span.
pub struct Identity<'a> {
    pub node_id: u64,
    pub region: &'a str,
}

/// Keeps the exporter alive; `shutdown` flushes what is queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// The gRPC exporter's own runtime: it outlives the node's, so the last flush at
    /// shutdown still has a reactor.
    grpc: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> Option<&'static str> {
        self.provider.as_ref().map(|_| {
            if self.grpc.is_some() {
                "OTLP/gRPC"
            } else {
                "OTLP/HTTP"
            }
        })
    }

    /// Flushes queued spans (bounded by the SDK's export timeout) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "trace exporter shutdown");
        }
        if let Some(rt) = self.grpc {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// Why export was not switched on although asked for.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0}: use http/protobuf or grpc")]
    Protocol(String),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Installs the log subscriber and, when the environment asks for it, the trace exporter.
/// `env` is read through `var` so tests need not touch the process environment.
pub fn init(
    who: &Identity<'_>,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let (provider, grpc) = if export_wanted(&var) {
        let (p, rt) = provider(who, &var)?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        (Some(p), rt)
    } else {
        (None, None)
    };
    let _ = subscriber(filter, provider.as_ref()).try_init();
    Ok(Telemetry { provider, grpc })
}

/// The log layer (`filter`) and, with a provider, the trace layer; nothing else. Without
/// export there is no trace layer at all: an absent (`None`) layer counts as one that wants
/// every span and event, so each was built and filtered per call (a few percent of a
/// connect's CPU; docs/performance.md, run AG). The filter's level hint lets call sites the
/// filter rules out be ruled out once, and dependencies' `log` records (tungstenite's trace
/// lines) at a static level check.
fn subscriber(
    filter: EnvFilter,
    provider: Option<&SdkTracerProvider>,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    let spans_in_logs = spans_in_logs(&filter);
    let most = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let events = filter_fn(move |m| spans_in_logs || m.is_event()).with_max_level_hint(most);
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter.and(events));
    let logged = tracing_subscriber::registry().with(logs);
    match provider {
        // Spans only: events stay in the log.
        Some(p) => Box::new(
            logged.with(
                tracing_opentelemetry::layer()
                    .with_tracer(p.tracer("tether"))
                    .with_filter(EnvFilter::new("info,openraft=off")),
            ),
        ),
        None => Box::new(logged),
    }
}

/// Span context in log lines only when debugging: the log layer formats every span's fields
/// as it opens, whether or not a line is ever written inside it, and for the spans of each
/// connect that was about a tenth of the node's CPU per connect (docs/performance.md). Lines
/// at the default level carry their own fields; the spans go to the exporter.
fn spans_in_logs(filter: &EnvFilter) -> bool {
    filter
        .max_level_hint()
        .is_none_or(|most| most >= LevelFilter::DEBUG)
}

fn export_wanted(var: &impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let no_exporter =
        var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !disabled
        && !no_exporter
}

fn provider(
    who: &Identity<'_>,
    var: &impl Fn(&str) -> Option<String>,
) -> Result<(SdkTracerProvider, Option<tokio::runtime::Runtime>), TelemetryError> {
    let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    let exporter_error = |e: &dyn std::fmt::Display| TelemetryError::Exporter(e.to_string());
    let pending = export::Pending::default();
    let (exporter, grpc) = match protocol.trim() {
        "http/protobuf" => {
            let e = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .map_err(|e| exporter_error(&e))?;
            (export::Counting::new(e, pending.clone(), None), None)
        }
        "grpc" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(|e| exporter_error(&e))?;
            // The channel is built lazily on this runtime and driven by it.
            let e = {
                let _in = rt.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .build()
                    .map_err(|e| exporter_error(&e))?
            };
            let handle = rt.handle().clone();
            (
                export::Counting::new(e, pending.clone(), Some(handle)),
                Some(rt),
            )
        }
        _ => return Err(TelemetryError::Protocol(protocol)),
    };
    // The same bound the SDK reads for its own queue.
    let cap = var("OTEL_BSP_MAX_QUEUE_SIZE")
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(export::DEFAULT_QUEUE);
    let processor = export::Gate::new(BatchSpanProcessor::builder(exporter).build(), pending, cap);
    let mut resource = Resource::builder();
    let named = var("OTEL_SERVICE_NAME").is_some()
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("tether");
    }
    let resource = resource
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", format!("n{}", who.node_id)),
            KeyValue::new("tether.region", who.region.to_owned()),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    Ok((provider, grpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| owned.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// At the default level and without export, a span is not even built, and the level
    /// hint reaches the dispatcher; with export, or when debugging, spans are built.
    #[test]
    fn spans_are_built_only_for_export_or_debugging() {
        let built = |sub: Box<dyn tracing::Subscriber + Send + Sync>| {
            let hint = sub.max_level_hint();
            let built = tracing::subscriber::with_default(sub, || {
                !tracing::info_span!("connect").is_disabled()
            });
            (built, hint)
        };
        let quiet = || EnvFilter::new("info,openraft=warn");
        assert_eq!(
            built(subscriber(quiet(), None)),
            (false, Some(LevelFilter::INFO))
        );
        assert!(built(subscriber(EnvFilter::new("debug"), None)).0);
        let exporting = SdkTracerProvider::builder().build();
        assert!(built(subscriber(quiet(), Some(&exporting))).0);
    }

    #[test]
    fn log_lines_show_their_spans_only_when_debugging() {
        let shows = |directives: &str| spans_in_logs(&EnvFilter::new(directives));
        assert!(!shows("info,openraft=warn"));
        assert!(!shows("warn"));
        assert!(shows("debug"));
        assert!(shows("info,tether_node=debug"));
        assert!(shows("trace"));
    }

    /// Export is on only with an endpoint, and off when disabled either standard way.
    #[test]
    fn export_follows_the_standard_variables() {
        assert!(!export_wanted(&env(&[])));
        assert!(!export_wanted(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(export_wanted(&env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://c:4318"
        )])));
        assert!(export_wanted(&env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
        assert!(!export_wanted(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(!export_wanted(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    /// A protocol this build cannot speak is refused by name, not silently ignored.
    #[test]
    fn unsupported_protocol_is_an_error() {
        let who = Identity {
            node_id: 1,
            region: "r",
        };
        let e = provider(
            &who,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ]),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"), "{e}");
    }
}
