//! Load for drain tests and measurements: tether-client sessions that record what they saw,
//! and a steady publisher.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::tokens::*;

/// The channel every drain client subscribes to.
pub const CHANNEL: &str = "feed.drain";
pub const PUBLISH_EVERY: Duration = Duration::from_millis(25);

#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<(u64, u64)>,
    /// `(node, resumed, recovered, session_id, when)` of every welcome.
    pub welcomes: Vec<(String, bool, bool, String, Instant)>,
    pub terminal: Option<(u16, String)>,
    pub last_n: u64,
}

pub struct Tracked {
    pub client: Client,
    pub seen: Arc<Mutex<Seen>>,
}

pub fn lock(m: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `cond` every 10 ms until it holds (`true`) or `within` passes (`false`).
pub async fn until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn connect(i: usize, urls: [String; 3]) -> Tracked {
    let [n1, n2, n3] = urls;
    let endpoints = if i.is_multiple_of(2) {
        [n3, n1, n2]
    } else {
        [n3, n2, n1]
    };
    let mut cfg = ClientConfig::new(endpoints);
    cfg.backoff_min = Duration::from_millis(100);
    cfg.backoff_max = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(20);
    cfg.request_timeout = Duration::from_secs(30);
    let t = token(&format!("drain{i}"), &["sub:feed.*"]);
    let client = Client::connect(cfg, StaticToken(t))
        .await
        .unwrap_or_else(|e| panic!("client {i}: {e}"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut events = client.events().expect("first call");
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let now = Instant::now();
            let mut s = lock(&out);
            match ev {
                ClientEvent::Event { seq, data, .. } => {
                    let n = data["n"].as_u64().unwrap_or(0);
                    s.events.push((seq, n));
                    s.last_n = s.last_n.max(n);
                }
                ClientEvent::Connected {
                    session_id,
                    resumed,
                    recovered,
                    node,
                } => s.welcomes.push((node, resumed, recovered, session_id, now)),
                ClientEvent::Closed {
                    code,
                    reason,
                    terminal: true,
                } => s.terminal = Some((code, reason)),
                _ => {}
            }
        }
    });
    Tracked { client, seen }
}

/// Publishes `{"n": 1}`, `{"n": 2}`, ... to `CHANNEL`, one every 25 ms, until `stop`; `last`
/// holds the highest `n` answered. Returns the answers that did not report `clients`
/// deliveries.
pub async fn publisher(
    admin_addr: String,
    clients: u64,
    last: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut odd = Vec::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return odd,
            _ = tick.tick() => {}
        }
        if *stop.borrow() {
            return odd;
        }
        n += 1;
        let body = json!({"tenant": TENANT, "channel": CHANNEL, "data": {"n": n}});
        let r = http
            .post(format!("http://{admin_addr}/v1/publish"))
            .bearer_auth(admin_token("tether:admin"))
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("publish request");
        assert_eq!(r.status().as_u16(), 200, "publish {n}");
        let v: Value = r.json().await.expect("publish body");
        if v["delivered"] != clients {
            odd.push(format!("n={n}: {v}"));
        }
        last.store(n, Ordering::SeqCst);
    }
}
