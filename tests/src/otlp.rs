//! A real OTLP trace receiver, over HTTP (`POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`) or over gRPC (the `TraceService/Export` call), decoded with
//! `opentelemetry-proto` (what a collector runs), keeping every span with the
//! `service.instance.id` of the process that sent it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// One received span.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// Hex, as in a `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// The sender's `service.instance.id` (`n<node id>`).
    pub instance: String,
    pub service: String,
    /// The span's own string attributes.
    pub attributes: Vec<(String, String)>,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

pub struct Receiver {
    pub addr: SocketAddr,
    spans: Spans,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0").await
    }

    /// Serves OTLP/gRPC instead (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`).
    pub async fn start_grpc() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP/gRPC receiver");
        let addr = listener.local_addr().expect("addr");
        let spans = Spans::default();
        let service = TraceServiceServer::new(Grpc(spans.clone()));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Receiver { addr, spans, task }
    }

    /// Listens on `addr` (e.g. `127.0.0.1:4318`).
    pub async fn start_on(addr: &str) -> Receiver {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("addr");
        let spans = Spans::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, spans, task }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the nodes (the HTTP exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many spans arrived so far.
    pub fn count(&self) -> usize {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(spans): State<Spans>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    keep(&spans, req);
    StatusCode::OK
}

struct Grpc(Spans);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn keep(spans: &Spans, req: ExportTraceServiceRequest) {
    let mut got = Vec::new();
    for rs in req.resource_spans {
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        let instance = string_attr(&attrs, "service.instance.id");
        let service = string_attr(&attrs, "service.name");
        for ss in rs.scope_spans {
            for s in ss.spans {
                got.push(ReceivedSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    instance: instance.clone(),
                    service: service.clone(),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
                        .collect(),
                });
            }
        }
    }
    spans.lock().unwrap_or_else(|p| p.into_inner()).extend(got);
}

fn string_attr(attrs: &[KeyValue], key: &str) -> String {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| value_text(kv.value.as_ref()))
        .unwrap_or_default()
}

fn value_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
