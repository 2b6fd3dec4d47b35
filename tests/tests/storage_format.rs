//! Versioned storage on real processes: a data dir written by the previous storage format
//! (`tests/fixtures/data-v1`) is migrated on start and keeps every revocation and logout it
//! holds, in its snapshot and in its log; a data dir of a newer format stops the node with
//! exit code 2 and is left untouched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tether_cluster::format;
use tether_cluster::log_store::LogStore;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::node::{NodeSpec, TestNode, tether_bin};
use tether_tests::tokens::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/data-v1");

/// A node whose data dir is a copy of the format-1 fixture (not started).
fn node_on_fixture() -> TestNode {
    let node = TestNode::create(&NodeSpec::default());
    let data = data_dir(&node);
    std::fs::create_dir_all(&data).expect("data dir");
    for file in ["raft-log.redb", "snapshot.bin"] {
        std::fs::copy(Path::new(FIXTURE).join(file), data.join(file)).expect("copy fixture");
    }
    node
}

fn data_dir(node: &TestNode) -> std::path::PathBuf {
    node.dir.path().join("data")
}

/// A token of the test tenant with these claims changed.
fn token_with(sub: &str, changes: Value) -> String {
    let mut c = claims(sub, 600, &[]);
    for (k, v) in changes.as_object().expect("object") {
        c[k] = v.clone();
    }
    sign_hs(TENANT_KID, TENANT_SECRET, &c)
}

/// Every revocation and logout of the fixture holds: the deny-listed jtis close 4004, the
/// logged-out users' older tokens 4005; a fresh token is admitted.
async fn fixture_revocations_hold(node: &TestNode) {
    for jti in [
        "v1-jti-snap-a",
        "v1-jti-snap-b",
        "v1-jti-snap-c",
        "v1-jti-log",
    ] {
        let t = token_with("holder", json!({ "jti": jti }));
        let mut c = WsClient::connect_with(&node.ws_url(), &t, Carrier::Header).await;
        assert_eq!(c.closed().await.code, 4004, "revoked jti {jti}");
    }
    let before_logout = json!({ "iat": 1_700_000_000u64 });
    for user in [
        "v1-user-snap-a",
        "v1-user-snap-b",
        "v1-user-snap-c",
        "v1-user-log",
    ] {
        let t = token_with(user, before_logout.clone());
        let mut c = WsClient::connect_with(&node.ws_url(), &t, Carrier::Header).await;
        assert_eq!(c.closed().await.code, 4005, "logged-out user {user}");
    }
    let (_ok, welcome) = WsClient::connect(&node.ws_url(), &token("fresh", &[])).await;
    assert_eq!(welcome["type"], "welcome");
}

/// The format-1 fixture is migrated to the current format on start (snapshot file and log
/// stamped) and every revocation in it holds, before and after a restart on the migrated
/// files.
#[tokio::test]
async fn previous_format_is_migrated_and_keeps_every_revocation() {
    let mut node = node_on_fixture();
    assert_eq!(
        LogStore::stored_format(&data_dir(&node)),
        Ok(Some(format::UNVERSIONED))
    );
    node.spawn().await;
    fixture_revocations_hold(&node).await;
    let status = node
        .terminate(Duration::from_secs(20))
        .expect("drained exit");
    assert!(status.success(), "{status:?}");

    let data = data_dir(&node);
    let snapshot = std::fs::read(data.join("snapshot.bin")).expect("snapshot");
    let (version, _) = format::unwrap_snapshot(&snapshot);
    assert_eq!(version, format::CURRENT, "snapshot.bin migrated");
    assert_eq!(LogStore::stored_format(&data), Ok(Some(format::CURRENT)));

    node.spawn().await;
    fixture_revocations_hold(&node).await;
}

/// A snapshot of a newer format: `tether serve` exits 2 naming the file, and no file of the
/// data dir changed.
#[tokio::test]
async fn newer_format_exits_2_and_touches_nothing() {
    let node = node_on_fixture();
    let data = data_dir(&node);
    let snapshot = data.join("snapshot.bin");
    let mut newer = b"TTHRSNAP".to_vec();
    newer.extend_from_slice(&(format::CURRENT + 1).to_le_bytes());
    newer.extend(std::fs::read(&snapshot).expect("snapshot"));
    std::fs::write(&snapshot, &newer).expect("write");
    let before = contents(&data);

    let out = Command::new(tether_bin())
        .args(["serve", "--config"])
        .arg(&node.config_path)
        .output()
        .expect("run tether");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("newer than this build"), "{stderr}");
    assert!(stderr.contains("snapshot.bin"), "{stderr}");
    assert_eq!(contents(&data), before, "the data dir changed");
}

/// Every file of `dir` with its bytes, sorted by name.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let e = e.expect("entry");
            let bytes = std::fs::read(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    files
}
