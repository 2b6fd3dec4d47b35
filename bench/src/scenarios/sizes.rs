//! Type sizes behind the per-connection cost: the connection actor's mailbox message, the
//! shared delivery, the auth context, and the socket stream the node holds per connection.

use serde_json::json;

use crate::Ctx;
use crate::report::ScenarioReport;

/// Needs `--features node-sizes` (it links tether-node's library).
#[cfg(not(feature = "node-sizes"))]
pub async fn run(_ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let mut r = ScenarioReport::new("sizes", json!({}));
    r.status = crate::report::Status::Skipped;
    r.note("built without --features node-sizes");
    Ok(r)
}

#[cfg(feature = "node-sizes")]
pub async fn run(_ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    use crate::report::Row;
    use std::mem::size_of;
    use tether_node::conn::{AuthContext, ConnMsg, Delivery, HandoverState, ResumeAttach};
    use tokio::net::TcpStream;
    use tokio_tungstenite::WebSocketStream;

    let mut r = ScenarioReport::new("sizes", json!({}));
    for (name, size) in [
        ("size_of ConnMsg (actor message)", size_of::<ConnMsg>()),
        ("size_of AuthContext", size_of::<AuthContext>()),
        ("size_of Delivery", size_of::<Delivery>()),
        ("size_of HandoverState", size_of::<HandoverState>()),
        (
            "size_of ResumeAttach (boxed in ConnMsg)",
            size_of::<ResumeAttach>(),
        ),
        (
            "size_of WebSocketStream<TcpStream>",
            size_of::<WebSocketStream<TcpStream>>(),
        ),
    ] {
        r.row(Row::new(name, size as f64, "bytes"));
    }
    Ok(r)
}
