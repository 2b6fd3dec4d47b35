//! The pieces between the SDK's batch processor and the wire: a gate that bounds what is
//! queued and counts what it turns away, the exporter that counts failed batches, and the
//! small runtime the gRPC exporter runs on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

use super::SPANS_DROPPED;

/// The SDK's own default for `OTEL_BSP_MAX_QUEUE_SIZE`.
pub const DEFAULT_QUEUE: usize = 2048;

/// Spans handed to the batch processor and not yet given to the exporter. Shared by the
/// gate (adds) and the exporter (removes).
#[derive(Debug, Clone, Default)]
pub struct Pending(Arc<AtomicUsize>);

/// Fronts the batch processor. The SDK drops a span silently when its queue is full (and
/// says so once in its own log); this gate refuses it first, at the same bound, and counts
/// it in `tether_trace_spans_dropped_total`, so a slow or dead collector shows up on the
/// dashboard instead of as missing traces.
#[derive(Debug)]
pub struct Gate {
    inner: BatchSpanProcessor,
    pending: Pending,
    cap: usize,
}

impl Gate {
    pub fn new(inner: BatchSpanProcessor, pending: Pending, cap: usize) -> Self {
        Self {
            inner,
            pending,
            cap,
        }
    }
}

impl SpanProcessor for Gate {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .pending
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            SPANS_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, releasing the gate for every batch it is given and counting the spans
/// of every failed export. With `runtime`, the export runs on that runtime: the gRPC client
/// needs a Tokio reactor, and the batch processor calls from its own plain thread.
#[derive(Debug)]
pub struct Counting<E> {
    inner: E,
    pending: Pending,
    runtime: Option<tokio::runtime::Handle>,
}

impl<E> Counting<E> {
    pub fn new(inner: E, pending: Pending, runtime: Option<tokio::runtime::Handle>) -> Self {
        Self {
            inner,
            pending,
            runtime,
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        // Saturating: spans ended before the gate existed are never counted in.
        let _ = self
            .pending
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
        let r = match &self.runtime {
            Some(rt) => rt.block_on(self.inner.export(batch)),
            None => self.inner.export(batch).await,
        };
        if r.is_err() {
            SPANS_DROPPED.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracerProvider};

    #[derive(Debug)]
    struct Sink;

    impl SpanExporter for Sink {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Ok(())
        }
    }

    /// Past the bound, spans are refused at once and counted; nothing blocks the caller.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let pending = Pending::default();
        let cap = 8;
        // The processor would hold far more and never exports during the test (its batch
        // never fills, its timer is an hour): the collector is as good as dead.
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(1024)
            .with_max_export_batch_size(512)
            .with_scheduled_delay(Duration::from_secs(3600))
            .build();
        let bsp = BatchSpanProcessor::builder(Counting::new(Sink, pending.clone(), None))
            .with_batch_config(config)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Gate::new(bsp, pending.clone(), cap))
            .build();
        let tracer = provider.tracer("t");
        let before = SPANS_DROPPED.load(Ordering::Relaxed);
        for _ in 0..cap + 5 {
            tracer.in_span("s", |_| {});
        }
        // Other tests in this process may drop spans too: at least ours are counted.
        let dropped = SPANS_DROPPED.load(Ordering::Relaxed) - before;
        assert!(dropped >= 5, "dropped {dropped}");
        assert_eq!(pending.0.load(Ordering::Acquire), cap);
        // Export hands the gate its room back.
        provider.force_flush().ok();
        assert_eq!(pending.0.load(Ordering::Acquire), 0);
    }
}
