//! The in-process fault proxy used by the flaky-link reproducer
//! (`tests/examples/flaky_link.rs`).

use tether_tests::client::{WsClient, request};
use tether_tests::node::TestNode;
use tether_tests::proxy::Proxy;
use tether_tests::tokens::*;
use tether_tests::wait_for;

/// The proxy itself: it forwards a WebSocket session, `cut` ends the client's socket without
/// a close frame, and while refusing it closes new connections before the upgrade.
#[tokio::test]
async fn proxy_forwards_cuts_and_refuses() {
    let node = TestNode::start().await;
    let p = Proxy::start(&node.client_addr).await;
    let (mut ws, w) = WsClient::connect(&p.ws_url(), &token("px", &[])).await;
    assert_eq!(w["node"], "n1", "{w}");
    assert_eq!((p.open(), p.forwarded()), (1, 1));
    p.cut();
    let mut frames = Vec::new();
    let closed = ws
        .try_closed_within(tether_tests::DEADLINE, &mut frames)
        .await;
    assert_eq!(closed, None, "a cut must not deliver a close frame");
    wait_for("the cut connection to end", tether_tests::DEADLINE, || {
        let open = p.open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    p.set_refusing(true);
    let r = WsClient::upgrade(request(&p.ws_url(), Some(&token("px", &[])), None, None)).await;
    assert!(r.is_err(), "a refusing proxy must not complete an upgrade");
    assert_eq!(p.refused(), 1);
    p.set_refusing(false);
    let (_ws, w) = WsClient::connect(&p.ws_url(), &token("px", &[])).await;
    assert_eq!(w["type"], "welcome");
}
