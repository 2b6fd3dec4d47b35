//! In-process held clients: open many authenticated connections with bounded concurrency,
//! each read by its own task until the server closes it or the pool stops.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tokens::Alg;
use crate::ws::{self, End, Endpoint, OnText, Welcome};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One held connection.
pub struct Held {
    pub user: String,
    /// Index of the endpoint it was opened on.
    pub node: usize,
    pub welcome: Welcome,
    /// Tells how the connection ended (once).
    pub end: Option<oneshot::Receiver<End>>,
}

pub struct Pool {
    pub clients: Vec<Held>,
    pub stop: CancellationToken,
    /// Time each connect took (TCP connect to `welcome`), ms.
    pub connect_ms: Vec<f64>,
    pub seconds: f64,
}

/// How to open a pool.
pub struct PoolSpec<'a> {
    pub endpoints: &'a [Endpoint],
    pub count: usize,
    /// Users are `{prefix}{i}`, unless `users_per` > 1 (then `{prefix}{i / users_per}`).
    pub user_prefix: &'a str,
    pub users_per: usize,
    pub perms: &'a [&'a str],
    pub alg: Alg,
    pub concurrency: usize,
    /// Source addresses from 127.0.0.`src_base`, `per_ip` sockets each.
    pub src_base: u8,
    pub per_ip: usize,
    /// Every socket from this address instead (e.g. the host end of a network namespace
    /// bridge, which 127.0.0.x cannot reach).
    pub src_ip: Option<IpAddr>,
    pub on_text: Option<OnText>,
    /// Subscribe to this channel after the welcome (part of the connect).
    pub subscribe: Option<&'a str>,
}

impl Pool {
    /// Opens `count` connections, client `i` on endpoint `i % endpoints.len()`. Fails if any
    /// connect fails (with the first errors).
    pub async fn open(spec: PoolSpec<'_>) -> anyhow::Result<Pool> {
        let stop = CancellationToken::new();
        let sem = Arc::new(Semaphore::new(spec.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        // Tokens are signed before the clock starts: the client's signing cost is not the
        // server's.
        let creds: Vec<(String, String)> = (0..spec.count)
            .map(|i| {
                let user = format!("{}{}", spec.user_prefix, i / spec.users_per.max(1));
                let token = spec.alg.token(&user, spec.perms);
                (user, token)
            })
            .collect();
        let t0 = Instant::now();
        for (i, (user, token)) in creds.into_iter().enumerate() {
            let node = i % spec.endpoints.len();
            let ep = spec.endpoints[node].clone();
            let src = spec
                .src_ip
                .unwrap_or_else(|| ws::source_ip(spec.src_base, i, spec.per_ip));
            let sem = sem.clone();
            let stop = stop.clone();
            let on_text = spec.on_text.clone();
            let channel = spec.subscribe.map(str::to_owned);
            set.spawn(async move {
                let permit = sem.acquire_owned().await;
                let start = Instant::now();
                let mut r = ws::open(&ep, src, &token, None, CONNECT_TIMEOUT).await;
                if let (Ok((sock, _)), Some(ch)) = (&mut r, &channel)
                    && let Err(e) = ws::subscribe(sock, ch, CONNECT_TIMEOUT).await
                {
                    r = Err(e);
                }
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                drop(permit);
                match r {
                    Ok((sock, welcome)) => {
                        let (tx, rx) = oneshot::channel();
                        tokio::spawn(async move {
                            let _ = tx.send(ws::hold(sock, on_text, stop).await);
                        });
                        Ok((
                            i,
                            ms,
                            Held {
                                user,
                                node,
                                welcome,
                                end: Some(rx),
                            },
                        ))
                    }
                    Err(e) => Err(e),
                }
            });
        }
        let mut got = Vec::with_capacity(spec.count);
        let mut errors = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(x)) => got.push(x),
                Ok(Err(e)) => errors.push(e.0),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        if !errors.is_empty() {
            stop.cancel();
            errors.sort();
            errors.dedup();
            bail!(
                "{} of {} connects failed: {:?}",
                spec.count - got.len(),
                spec.count,
                &errors[..errors.len().min(5)]
            );
        }
        got.sort_by_key(|(i, _, _)| *i);
        let connect_ms = got.iter().map(|(_, ms, _)| *ms).collect();
        Ok(Pool {
            clients: got.into_iter().map(|(_, _, h)| h).collect(),
            stop,
            connect_ms,
            seconds,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
