//! One `admin.request` span per admin call (method, route, status), a child of the caller's
//! W3C `traceparent`/`tracestate` headers when it sends them: a revocation's trace starts
//! at the operator's own system and crosses every node from here. Its duration also goes to
//! `tether_admin_request_seconds{route,status}`.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::Extractor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::{AdminRequest, Metrics};

pub async fn span(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "admin.request",
        method = %req.method(),
        route = %route,
        status = tracing::field::Empty
    );
    let parent =
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
    if opentelemetry::trace::TraceContextExt::span(&parent)
        .span_context()
        .is_valid()
    {
        let _ = span.set_parent(parent);
    }
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    metrics
        .admin_request_seconds
        .get_or_create(&AdminRequest { route, status })
        .observe(started.elapsed().as_secs_f64());
    response
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
