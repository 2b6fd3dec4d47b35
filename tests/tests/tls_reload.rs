//! Certificate rotation on a running node: the client (`wss`) and admin (`https`) listeners
//! serve new certificates to new handshakes without a restart, keep the connections made
//! before, keep the previous certificate when a new file is bad, and reload on SIGHUP. The
//! admin listener with a client CA opens only the probes to clients without a certificate.
//! The peer certificate is reloaded the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tether_client::{Client, ClientConfig, StaticToken};
use tether_tests::admin::{call, metric};
use tether_tests::client::WsClient;
use tether_tests::cluster::{TestCluster, issue_cert, make_certs};
use tether_tests::node::{NodeSpec, TestNode};
use tether_tests::tokens::{TENANT, admin_token, token};
use tether_tests::{DEADLINE, wait_for};

/// Puts `from`'s node certificate and key where the node reads them.
fn install(from: &Path, live: &Path) {
    for (src, dst) in [("n1.pem", "cert.pem"), ("n1-key.pem", "key.pem")] {
        let tmp = live.join(format!("{dst}.tmp"));
        std::fs::copy(from.join(src), &tmp).expect("copy");
        std::fs::rename(&tmp, live.join(dst)).expect("rename");
    }
}

/// An HTTPS client trusting only the CA in `trust`, presenting the node certificate in
/// `identity` if given.
fn https(trust: &Path, identity: Option<&Path>) -> reqwest::Client {
    let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).expect("read pem");
    let ca = reqwest::Certificate::from_pem(&read(trust, "ca.pem")).expect("ca");
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5));
    if let Some(dir) = identity {
        let mut pem = read(dir, "n1.pem");
        pem.extend(read(dir, "n1-key.pem"));
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("https client")
}

/// Whether a TLS handshake with the client listener succeeds trusting only `ca_dir`'s CA.
async fn client_listener_trusts(node: &TestNode, ca_dir: &Path) -> bool {
    let Ok(tcp) = tokio::net::TcpStream::connect(&node.client_addr).await else {
        return false;
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let connector = tokio_rustls::TlsConnector::from(trusting(ca_dir));
    let handshake = connector.connect(name, tcp);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), handshake).await,
        Ok(Ok(_))
    )
}

/// A rustls client config trusting only the CA in `ca_dir`.
fn trusting(ca_dir: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem");
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("ca cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(tls)
}

/// The value of a counter on `/metrics`, read over HTTPS (the server's certificate is from
/// `new`) with a client certificate from `old` (the admin client CA stays the old one).
async fn counter(node: &TestNode, (new, old): (&Path, &Path), series: &str) -> f64 {
    let text = https(new, Some(old))
        .get(format!("https://{}/metrics", node.admin_addr))
        .bearer_auth(admin_token("tether:admin"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics"))
}

fn sdk_config(node: &TestNode, ca_dir: &Path) -> ClientConfig {
    let mut cfg = ClientConfig::new([format!("wss://{}/v1/connect", node.client_addr)]);
    cfg.tls = Some(trusting(ca_dir));
    cfg
}

/// Rotation of the client and admin certificates while a `wss` client stays connected.
#[tokio::test]
async fn rotated_certificates_reach_new_handshakes_without_a_restart() {
    let (old, new, live) = (dir(), dir(), dir());
    make_certs(old.path(), 1);
    make_certs(new.path(), 1);
    install(old.path(), live.path());
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    let spec = NodeSpec {
        tls: format!(
            "client_cert = {cert:?}\nclient_key = {key:?}\nadmin_cert = {cert:?}\n\
             admin_key = {key:?}\nadmin_client_ca = {:?}",
            old.path().join("ca.pem")
        ),
        ..Default::default()
    };
    let mut node = TestNode::create(&spec);
    node.spawn_no_wait().await;
    let admin = node.admin_addr.clone();
    // Probes need no client certificate; the rest of the admin API does.
    wait_for("https /readyz", DEADLINE, || {
        let req = https(old.path(), None)
            .get(format!("https://{admin}/readyz"))
            .send();
        async move { req.await.ok().filter(|r| r.status() == 200) }
    })
    .await;
    let cluster = format!("https://{admin}/v1/cluster");
    let bearer = admin_token("tether:admin");
    let anonymous = https(old.path(), None)
        .get(&cluster)
        .bearer_auth(&bearer)
        .send();
    assert_eq!(anonymous.await.expect("anonymous").status(), 401);
    let certified = https(old.path(), Some(old.path()))
        .get(&cluster)
        .bearer_auth(&bearer)
        .send();
    assert_eq!(certified.await.expect("certified").status(), 200);

    // A wss client that trusts only the old CA: it could not reconnect after the rotation.
    let tok = StaticToken(token("rosa", &["sub:room.*"]));
    let before = Client::connect(sdk_config(&node, old.path()), tok).await;
    let before = before.expect("wss connect");
    let session = before.session_id();

    install(new.path(), live.path());
    wait_for(
        "the client listener to serve the new certificate",
        DEADLINE,
        || async {
            client_listener_trusts(&node, new.path())
                .await
                .then_some(())
        },
    )
    .await;
    assert!(!client_listener_trusts(&node, old.path()).await);
    let readyz = https(new.path(), None).get(format!("https://{admin}/readyz"));
    assert_eq!(readyz.send().await.expect("new admin cert").status(), 200);
    before
        .subscribe("room.1")
        .await
        .expect("the old connection still works");
    assert_eq!(before.session_id(), session, "no reconnect happened");

    // A bad file keeps the previous certificate and is counted.
    let dirs = (new.path(), old.path());
    let failed = "tether_tls_reloads_total{listener=\"client\",outcome=\"failed\"}";
    let failures = counter(&node, dirs, failed).await;
    std::fs::write(&cert, "not a certificate").expect("write garbage");
    wait_for("the failed reload to be counted", DEADLINE, || async {
        (counter(&node, dirs, failed).await > failures).then_some(())
    })
    .await;
    assert!(client_listener_trusts(&node, new.path()).await);

    // SIGHUP reloads even when the files did not change (here: back to good files).
    install(new.path(), live.path());
    let ok = "tether_tls_reloads_total{listener=\"admin\",outcome=\"ok\"}";
    wait_for("the repaired files to load", DEADLINE, || async {
        let n = counter(&node, dirs, ok).await;
        (n >= 2.0).then_some(n)
    })
    .await;
    let reloads = counter(&node, dirs, ok).await;
    assert!(node.signal("HUP"), "kill -HUP");
    wait_for("a reload on SIGHUP", DEADLINE, || async {
        (counter(&node, dirs, ok).await > reloads).then_some(())
    })
    .await;
    assert!(node.try_exit().is_none(), "SIGHUP must not end the node");
    before.close().await;
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The watcher reloads the peer certificate too: node 2's certificate, re-issued in place
/// by the same CA, is picked up (counted as a peer reload), and after node 1 restarts, its
/// new handshakes with node 2 carry a revocation across.
#[tokio::test]
async fn rotated_peer_certificate_is_reloaded() {
    let mut c = TestCluster::start(2, 0, "").await;
    issue_cert(c.certs.path(), 2);
    let ok = "tether_tls_reloads_total{listener=\"peer\",outcome=\"ok\"}";
    wait_for(
        "node 2 to reload its peer certificate",
        DEADLINE,
        || async { metric(c.node(2), ok).await.filter(|n| *n >= 1.0) },
    )
    .await;

    let n1 = c.node_mut(1);
    n1.terminate(Duration::from_secs(20));
    n1.spawn().await;
    let (mut ws, _) = WsClient::connect(&c.node(2).ws_url(), &token("pia", &[])).await;
    let logout = format!("/v1/tenants/{TENANT}/users/pia/logout");
    let r = call(c.node(1), "POST", &logout, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ws.closed().await.code, 4005);
}
