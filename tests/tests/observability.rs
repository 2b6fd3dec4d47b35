//! Tracing across the cluster: three real nodes export spans over OTLP/HTTP to a real
//! receiver, and one revocation is one trace from the caller's `traceparent` through the
//! admin node, the leader, every node that applies the entry and the owner's close.

use std::collections::BTreeSet;
use std::time::Duration;

use tether_tests::client::{WsClient, request};
use tether_tests::cluster::TestCluster;
use tether_tests::otlp::{ReceivedSpan, Receiver};
use tether_tests::tokens::*;

/// A revocation sent with a W3C `traceparent` to a follower, for a session owned by the
/// other follower: the receiver gets one trace holding the admin request (a child of the
/// caller's span), the leader's propose, an apply on each of the three nodes and the
/// owner's `session.close`, with each node's `service.instance.id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_revocation_is_one_trace_across_three_nodes() {
    let otlp = Receiver::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), otlp.endpoint()),
        // Export quickly; the default waits 5 s between batches.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ];
    let started = tokio::time::Instant::now();
    let c = TestCluster::start_with_env(3, 0, "", &env).await;
    eprintln!("cluster up after {:?}", started.elapsed());
    let leader = c.leader(1).await;
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let (owner, admin_node) = (followers[0], followers[1]);
    let (mut client, welcome) =
        WsClient::connect(&c.node(owner).ws_url(), &token("alice", &[])).await;
    let sid = welcome["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();

    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let caller_span = format!("{:016x}", rand::random::<u64>() | 1);
    let url = format!(
        "http://{}/v1/sessions/{sid}/revoke?wait=closed",
        c.node(admin_node).admin_addr
    );
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(admin_token("tether:admin"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .timeout(tether_tests::DEADLINE)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status().as_u16(), 200);
    let closed = client.closed_within(tether_tests::DEADLINE).await.0;
    assert_eq!(closed.code, 4004);

    let ours = |spans: Vec<ReceivedSpan>| -> Vec<ReceivedSpan> {
        spans
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    };
    let on = |spans: &[ReceivedSpan], name: &str| -> BTreeSet<String> {
        spans
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.instance.clone())
            .collect()
    };
    let n = |id: u64| format!("n{id}");
    let want_apply: BTreeSet<String> = [1, 2, 3].map(n).into_iter().collect();
    let revoked = tokio::time::Instant::now();
    let end = revoked + tether_tests::DEADLINE;
    let spans = loop {
        let spans = ours(otlp.spans());
        let complete = on(&spans, "registry.apply") == want_apply
            && on(&spans, "session.close").contains(&n(owner))
            && on(&spans, "registry.leader_propose").contains(&n(leader))
            && on(&spans, "admin.request").contains(&n(admin_node))
            && on(&spans, "node.rpc.answer").contains(&n(owner));
        if complete || tokio::time::Instant::now() >= end {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "trace complete {:?} after the revocation: {} spans",
        revoked.elapsed(),
        spans.len()
    );
    let summary: Vec<(String, String)> = spans
        .iter()
        .map(|s| (s.instance.clone(), s.name.clone()))
        .collect();
    assert_eq!(on(&spans, "registry.apply"), want_apply, "{summary:?}");
    assert!(
        on(&spans, "session.close").contains(&n(owner)),
        "{summary:?}"
    );
    assert!(
        on(&spans, "registry.leader_propose").contains(&n(leader)),
        "{summary:?}"
    );
    let request = spans
        .iter()
        .find(|s| s.name == "admin.request")
        .unwrap_or_else(|| panic!("no admin.request span: {summary:?}"));
    assert_eq!(request.instance, n(admin_node));
    assert_eq!(
        request.parent_span_id, caller_span,
        "parent is the caller's span"
    );
    assert_eq!(request.service, "tether");
    assert!(
        request
            .attributes
            .iter()
            .any(|(k, v)| k == "route" && v == "/v1/sessions/{sid}/revoke"),
        "{:?}",
        request.attributes
    );
    // The admin node timed the propagation and its call to the owner.
    let metrics = tether_tests::admin::call(c.node(admin_node), "GET", "/metrics", None)
        .await
        .body;
    let metrics = metrics.as_str().unwrap_or_default();
    for series in [
        r#"tether_revocation_propagation_seconds_count{kind="session"} 1"#,
        r#"tether_revocations_total{kind="session"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series}:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"tether_peer_rpc_seconds_count{rpc="wait_closed"}"#),
        "{metrics}"
    );
    // `?wait=closed` asked the owner over a node RPC, in the same trace, and the owner's
    // answer is in it too.
    assert!(
        on(&spans, "node.rpc").contains(&n(admin_node)),
        "{summary:?}"
    );
    assert!(
        on(&spans, "node.rpc.answer").contains(&n(owner)),
        "{summary:?}"
    );
    // The client's own connect was traced too: a handshake span with who it was and how it
    // ended, and the admission's propose inside it.
    let all = otlp.spans();
    let handshake = all
        .iter()
        .find(|s| {
            s.name == "gateway.handshake"
                && s.attributes
                    .iter()
                    .any(|(k, v)| k == "session_id" && *v == sid)
        })
        .unwrap_or_else(|| panic!("no handshake span for {sid}"));
    let attr = |k: &str| {
        handshake
            .attributes
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        (attr("tenant"), attr("user"), attr("outcome")),
        (Some(TENANT), Some("alice"), Some("ok"))
    );
    assert_eq!(handshake.instance, n(owner));
    assert!(
        all.iter().any(|s| s.name == "registry.propose"
            && s.trace_id == handshake.trace_id
            && s.parent_span_id == handshake.span_id),
        "the admission's propose is not inside the handshake"
    );
    // Every span but the request has its parent inside the trace: one connected tree.
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for s in spans.iter().filter(|s| s.name != "admin.request") {
        assert!(
            ids.contains(s.parent_span_id.as_str()),
            "{} on {} has a parent outside the trace: {summary:?}",
            s.name,
            s.instance
        );
    }
}

/// Spans named `name` in `otlp` by the time they all arrived, or by the deadline.
async fn wait_for_spans(otlp: &Receiver, names: &[&str]) -> Vec<ReceivedSpan> {
    let end = tokio::time::Instant::now() + tether_tests::DEADLINE;
    loop {
        let spans = otlp.spans();
        let all = names.iter().all(|n| spans.iter().any(|s| s.name == *n));
        if all || tokio::time::Instant::now() >= end {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects `user` to node 1 and revokes the session there (the client sees 4004).
async fn connect_and_revoke(c: &TestCluster, user: &str) {
    let (mut client, welcome) = WsClient::connect(&c.node(1).ws_url(), &token(user, &[])).await;
    let sid = welcome["session_id"].as_str().expect("session id");
    let path = format!("/v1/sessions/{sid}/revoke");
    let r = tether_tests::admin::call(c.node(1), "POST", &path, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let closed = client.closed_within(tether_tests::DEADLINE).await.0;
    assert_eq!(closed.code, 4004);
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` exports the same spans to a gRPC collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_grpc_collector() {
    let otlp = Receiver::start_grpc().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), otlp.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), "grpc".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ];
    let c = TestCluster::start_with_env(1, 0, "", &env).await;
    connect_and_revoke(&c, "alice").await;
    let spans = wait_for_spans(
        &otlp,
        &["gateway.handshake", "admin.request", "session.close"],
    )
    .await;
    let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for want in ["gateway.handshake", "admin.request", "session.close"] {
        assert!(names.contains(want), "no {want} span: {names:?}");
    }
    assert!(
        spans
            .iter()
            .all(|s| s.instance == "n1" && s.service == "tether")
    );
}

/// A collector that is not there costs nothing but the dropped spans: the node admits and
/// revokes as usual, and `/metrics` counts what could not be exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_drops_and_counts() {
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://{dead}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT".to_owned(), "500".to_owned()),
    ];
    let c = TestCluster::start_with_env(1, 0, "", &env).await;
    for user in ["alice", "bob", "carol"] {
        connect_and_revoke(&c, user).await;
    }
    let end = tokio::time::Instant::now() + tether_tests::DEADLINE;
    let dropped = loop {
        let metrics = tether_tests::admin::call(c.node(1), "GET", "/metrics", None)
            .await
            .body;
        let dropped = metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("tether_trace_spans_dropped_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if dropped > 0.0 || tokio::time::Instant::now() >= end {
            break dropped;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(dropped > 0.0, "no dropped spans counted");
}

/// A resume on another node is one trace too: the new node's handshake and `session.resume`,
/// its handover call, and on the previous owner the call's answer and the actor's
/// `session.handover`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_node_resume_is_one_trace() {
    let otlp = Receiver::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), otlp.endpoint()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ];
    let c = TestCluster::start_with_env(3, 0, "", &env).await;
    let t = token("erin", &[]);
    let (mut old, w) = WsClient::connect(&c.node(1).ws_url(), &t).await;
    let sid = w["session_id"].as_str().expect("session id").to_owned();
    let mut moved = WsClient::upgrade(request(&c.node(2).ws_url(), Some(&t), None, None))
        .await
        .expect("upgrade");
    moved
        .send_json(&serde_json::json!({"type": "hello", "resume": {
            "session_id": sid,
            "resume_token": w["resume_token"],
            "last_seq": 0,
        }}))
        .await;
    let welcome = moved.next_json().await;
    assert_eq!(
        (welcome["resumed"].as_bool(), welcome["recovered"].as_bool()),
        (Some(true), Some(true)),
        "{welcome}"
    );
    assert_eq!(old.closed_within(tether_tests::DEADLINE).await.0.code, 4009);

    let spans = wait_for_spans(&otlp, &["session.resume", "session.handover"]).await;
    let summary: Vec<(&str, &str)> = spans
        .iter()
        .map(|s| (s.instance.as_str(), s.name.as_str()))
        .collect();
    let handshake = spans
        .iter()
        .find(|s| {
            s.name == "gateway.handshake"
                && s.instance == "n2"
                && s.attributes
                    .iter()
                    .any(|(k, v)| k == "session_id" && *v == sid)
        })
        .unwrap_or_else(|| panic!("no resume handshake on n2: {summary:?}"));
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == handshake.trace_id)
        .collect();
    let has = |instance: &str, name: &str| {
        trace
            .iter()
            .any(|s| s.instance == instance && s.name == name)
    };
    for (instance, name) in [
        ("n2", "session.resume"),
        ("n2", "node.rpc"),
        ("n1", "node.rpc.answer"),
        ("n1", "session.handover"),
    ] {
        assert!(has(instance, name), "no {name} on {instance}: {summary:?}");
    }
    let ids: BTreeSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for s in trace.iter().filter(|s| s.span_id != handshake.span_id) {
        assert!(
            ids.contains(s.parent_span_id.as_str()),
            "{} on {} has a parent outside the trace",
            s.name,
            s.instance
        );
    }
}
