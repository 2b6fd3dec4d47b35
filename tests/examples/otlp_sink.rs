//! A standalone OTLP/HTTP trace receiver for measurements with export on: point nodes at it
//! with `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318` and it prints the span count
//! every 5 s until killed.
//!
//! `cargo run -p tether-tests --example otlp_sink -- [127.0.0.1:4318]`

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".into());
    let sink = tether_tests::otlp::Receiver::start_on(&addr).await;
    println!("otlp sink on http://{}", sink.addr);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        println!("spans received: {}", sink.count());
    }
}
