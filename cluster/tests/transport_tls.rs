//! Peer transport over mutual TLS on 127.0.0.1: round trips, foreign CAs, node ids bound to
//! certificates.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tether_cluster::certs::{CaSource, write_dev_pki};
use tether_cluster::transport::{PeerClient, PeerTls, TransportError};

mod common;

use common::*;

/// With mutual TLS from the dev PKI, a call round-trips; the client checks the server's
/// node id when told which node to expect.
#[tokio::test]
async fn mtls_echo_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    pki(dir.path());
    let server = Server::start(config(1, Some(tls(dir.path(), "a")))).await;
    let cfg = Arc::new(config(2, Some(tls(dir.path(), "b"))));
    let c: Client = PeerClient::new(cfg.clone(), server.addr.to_string(), Some(1));
    let resp = c.call(Req::Echo("secure".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("secure", 2));

    let wrong: Client = PeerClient::new(cfg, server.addr.to_string(), Some(9));
    let err = wrong.call(Req::Echo("x".into()), CALL).await;
    assert!(matches!(err, Err(TransportError::Unreachable(ref m)) if m.contains("node 1")));
    server.stop().await;
}

/// A second run in the same directory signs new nodes with the CA already there, so they
/// join the same cluster; `new_ca` replaces it; half a CA is refused.
#[tokio::test]
async fn a_later_certs_run_reuses_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    pki(dir.path());
    let ca = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem");
    let later = write_dev_pki(dir.path(), &[node_cert("c", Some(3))], false);
    assert_eq!(later.ok(), Some(CaSource::Reused));
    assert_eq!(
        std::fs::read(dir.path().join("ca.pem")).ok(),
        Some(ca.clone())
    );
    let server = Server::start(config(1, Some(tls(dir.path(), "a")))).await;
    let cfg = Arc::new(config(3, Some(tls(dir.path(), "c"))));
    let c: Client = PeerClient::new(cfg, server.addr.to_string(), Some(1));
    let resp = c.call(Req::Echo("later".into()), CALL).await;
    assert_eq!(resp.expect("call"), echo("later", 3));
    server.stop().await;

    let fresh = write_dev_pki(dir.path(), &[node_cert("d", Some(4))], true);
    assert_eq!(fresh.ok(), Some(CaSource::Created));
    assert_ne!(std::fs::read(dir.path().join("ca.pem")).ok(), Some(ca));
    std::fs::remove_file(dir.path().join("ca-key.pem")).expect("remove the CA key");
    assert!(write_dev_pki(dir.path(), &[node_cert("e", Some(5))], false).is_err());
}

/// A server whose certificate comes from another CA is refused by the client.
#[tokio::test]
async fn server_cert_from_another_ca_is_refused() {
    let (ours, theirs) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    pki(ours.path());
    pki(theirs.path());
    let server = Server::start(config(1, Some(tls(theirs.path(), "a")))).await;
    let c = client(config(2, Some(tls(ours.path(), "b"))), server.addr);
    let err = c.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(ref m)) if m.contains("TLS handshake failed")),
        "{err:?}"
    );
    assert_eq!(server.calls(), 0);
    server.stop().await;
}

/// A client whose certificate comes from another CA is refused by the server, whose
/// handler never runs.
#[tokio::test]
async fn client_cert_from_another_ca_is_refused() {
    let (ours, theirs) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    pki(ours.path());
    pki(theirs.path());
    let server = Server::start(config(1, Some(tls(ours.path(), "a")))).await;
    // Trusts the right CA (so the server looks fine) but presents a foreign certificate.
    let read = |p: &Path| std::fs::read(p).expect("read pem");
    let impostor = PeerTls::from_pem(
        &read(&ours.path().join("ca.pem")),
        &read(&theirs.path().join("b.pem")),
        &read(&theirs.path().join("b-key.pem")),
    )
    .expect("impostor tls");
    let c = client(config(2, Some(impostor)), server.addr);
    let err = c.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(
            err,
            Err(TransportError::Unreachable(_) | TransportError::Tls(_))
        ),
        "{err:?}"
    );
    assert_eq!(server.calls(), 0);
    server.stop().await;
}

/// A peer whose hello claims a node id its certificate does not name is refused, in both
/// directions, and counted; the honest pair still talks.
#[tokio::test]
async fn a_claimed_id_must_be_the_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    pki(dir.path());
    // Client: certificate of node 2, claiming node 5.
    let server_cfg = config(1, Some(tls(dir.path(), "a")));
    let server_refusals = server_cfg.identity_refusals.clone();
    let server = Server::start(server_cfg).await;
    let liar = client(config(5, Some(tls(dir.path(), "b"))), server.addr);
    let err = liar.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(_))),
        "{err:?}"
    );
    assert_eq!(server.calls(), 0);
    assert_eq!(server_refusals.load(Ordering::Relaxed), 1);
    let honest = client(config(2, Some(tls(dir.path(), "b"))), server.addr);
    let resp = honest.call(Req::Echo("ok".into()), CALL).await;
    assert_eq!(resp.expect("honest call"), echo("ok", 2));
    server.stop().await;

    // Server: certificate of node 1, claiming node 6; the client refuses it.
    let server = Server::start(config(6, Some(tls(dir.path(), "a")))).await;
    let cfg = config(2, Some(tls(dir.path(), "b")));
    let client_refusals = cfg.identity_refusals.clone();
    let c = client(cfg, server.addr);
    let err = c.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(ref m)) if m.contains("node 1's")),
        "{err:?}"
    );
    assert_eq!(client_refusals.load(Ordering::Relaxed), 1);
    assert_eq!(server.calls(), 0);
    server.stop().await;
}

/// Certificates made without a node id are refused by default and accepted with
/// `allow_missing_node_id` (the migration path).
#[tokio::test]
async fn certificates_without_an_id_need_the_migration_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = [node_cert("a", None), node_cert("b", None)];
    write_dev_pki(dir.path(), &nodes, false).expect("dev pki");
    let server = Server::start(config(1, Some(tls(dir.path(), "a")))).await;
    let mut cfg = config(2, Some(tls(dir.path(), "b")));
    let refused = client(cfg.clone(), server.addr);
    let err = refused.call(Req::Echo("x".into()), CALL).await;
    assert!(
        matches!(err, Err(TransportError::Unreachable(_))),
        "{err:?}"
    );
    server.stop().await;

    let mut server_cfg = config(1, Some(tls(dir.path(), "a")));
    server_cfg.allow_missing_node_id = true;
    let server = Server::start(server_cfg).await;
    cfg.allow_missing_node_id = true;
    let migrating = client(cfg, server.addr);
    let resp = migrating.call(Req::Echo("old".into()), CALL).await;
    assert_eq!(resp.expect("call during migration"), echo("old", 2));
    server.stop().await;
}

/// `PeerTls::reload` swaps in rotated files: new handshakes use the new certificate and CA,
/// a connection made before stays up, and a bad file keeps the previous configs.
#[tokio::test]
async fn reloaded_certificates_serve_new_handshakes() {
    let (old, new, live) = (dir(), dir(), dir());
    pki(old.path());
    pki(new.path());
    let install = |from: &Path| {
        for name in ["ca.pem", "a.pem", "a-key.pem"] {
            std::fs::copy(from.join(name), live.path().join(name)).expect("copy");
        }
    };
    install(old.path());
    let server_tls = tls(live.path(), "a");
    let server = Server::start(config(1, Some(server_tls.clone()))).await;
    let before = client(config(2, Some(tls(old.path(), "b"))), server.addr);
    let resp = before.call(Req::Echo("before".into()), CALL).await;
    assert_eq!(resp.expect("call before"), echo("before", 2));

    install(new.path());
    server_tls.reload().expect("reload");
    let fresh = client(config(2, Some(tls(new.path(), "b"))), server.addr);
    let resp = fresh.call(Req::Echo("new".into()), CALL).await;
    assert_eq!(resp.expect("a client of the new CA"), echo("new", 2));
    let stale = client(config(2, Some(tls(old.path(), "b"))), server.addr);
    assert!(stale.call(Req::Echo("x".into()), CALL).await.is_err());
    let resp = before.call(Req::Echo("still".into()), CALL).await;
    assert_eq!(resp.expect("the old connection"), echo("still", 2));

    std::fs::write(live.path().join("a.pem"), "garbage").expect("write");
    assert!(server_tls.reload().is_err());
    let again = client(config(2, Some(tls(new.path(), "b"))), server.addr);
    let resp = again.call(Req::Echo("kept".into()), CALL).await;
    assert_eq!(resp.expect("the previous config serves"), echo("kept", 2));
    server.stop().await;
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}
