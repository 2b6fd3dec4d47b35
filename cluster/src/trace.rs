//! W3C trace context across nodes: the `traceparent` of the span that proposes an entry
//! travels inside the entry ([`crate::command::Envelope`], and per proposal in a group
//! commit) and in the peer RPCs, so the admin node, the leader, every node that applies the
//! entry and the owning actor's close are one trace.
//!
//! Both functions go through the globally installed propagator. The node installs the W3C
//! one only when it exports traces; otherwise the global one is a no-op, `current` returns
//! `None` and `follow` does nothing, so a node without export pays nothing here.

use std::collections::HashMap;

use opentelemetry::global;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, if it is part of a sampled or exported trace.
pub fn current() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span `traceparent` (a no-op for `None` or a value
/// that does not parse).
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), tp.to_owned())]);
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    if opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
    {
        let _ = span.set_parent(cx);
    }
}
