//! Load-generator child processes: the bench re-executes itself as `tether-bench worker
//! --spec JSON`, so that no process holds more than the 20000 open files allowed here.
//!
//! A worker opens its connections, prints one JSON line `{"ready": …}`, and then:
//! - `hold`: keeps them open until its stdin closes;
//! - `storm`: waits for its server to die, resumes every session on the other nodes
//!   (`hello.resume` with the resume token and `last_seq`), prints `{"storm": …}`, and
//!   keeps the resumed connections until its stdin closes.
//!
//! Times that cross processes are wall-clock milliseconds since the Unix epoch (one machine,
//! one clock).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::tokens::Alg;
use crate::ws::{self, Endpoint, ResumeRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Hold,
    Storm,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub mode: Mode,
    /// Client `i` connects to `urls[i % len]`.
    pub urls: Vec<String>,
    /// Storm: where sessions resume, tried in turn from `i % len`.
    pub resume_urls: Vec<String>,
    pub count: usize,
    /// Users are `{user_prefix}{first_index + i}`.
    pub user_prefix: String,
    pub first_index: usize,
    pub alg: Alg,
    /// PEM of the `wss` certificate to trust.
    pub tls_cert: Option<PathBuf>,
    pub src_base: u8,
    pub per_ip: usize,
    pub concurrency: usize,
    /// `false` for the bare baseline server (it never sends `welcome`).
    pub expect_welcome: bool,
    /// Storm: each client waits a random 0..jitter_ms before its first resume attempt.
    pub jitter_ms: u64,
    /// Storm: give up resuming this long after the connection was lost.
    pub deadline_secs: u64,
}

/// The worker's first line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ready {
    pub ok: usize,
    pub errors: BTreeMap<String, usize>,
    pub seconds: f64,
}

/// The storm result of one worker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StormResult {
    /// Wall time (ms since epoch) each client saw its socket die.
    pub lost_at_ms: Vec<f64>,
    /// Wall time of each successful resume's `welcome`.
    pub resumed_at_ms: Vec<f64>,
    /// Resumes answered `resumed:true, recovered:false`.
    pub not_recovered: usize,
    /// Reconnects that got a fresh session (`resumed:false`) instead.
    pub fresh_sessions: usize,
    /// Clients that never got back within the deadline.
    pub gave_up: usize,
    /// Failed attempts by kind.
    pub errors: BTreeMap<String, usize>,
    pub attempts: usize,
}

pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn print_line(v: &Value) {
    println!("{v}");
}

/// The `worker` subcommand.
pub async fn run(spec: WorkerSpec) -> anyhow::Result<()> {
    let tls = match &spec.tls_cert {
        Some(p) => Some(crate::tls::client_config(p)?),
        None => None,
    };
    let eps: Vec<Endpoint> = spec
        .urls
        .iter()
        .map(|u| Endpoint::new(u, tls.clone()))
        .collect::<anyhow::Result<_>>()?;
    let resume_eps: Vec<Endpoint> = spec
        .resume_urls
        .iter()
        .map(|u| Endpoint::new(u, tls.clone()))
        .collect::<anyhow::Result<_>>()?;
    if eps.is_empty() {
        bail!("no urls");
    }
    let stop = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let ready = Arc::new(Mutex::new(Ready::default()));
    let storm = Arc::new(Mutex::new(StormResult::default()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(spec.count.max(1));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(spec.count.max(1));
    let t0 = tokio::time::Instant::now();
    for i in 0..spec.count {
        let ep = eps[i % eps.len()].clone();
        let user = format!("{}{}", spec.user_prefix, spec.first_index + i);
        let token = spec.alg.token(&user, &["sub:feed.*"]);
        let src = ws::source_ip(spec.src_base, i, spec.per_ip);
        let (sem, stop, ready, storm) = (sem.clone(), stop.clone(), ready.clone(), storm.clone());
        let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
        let resume_eps = resume_eps.clone();
        let spec = spec.clone();
        tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let r = ws::open_as(
                &ep,
                src,
                &token,
                None,
                spec.expect_welcome,
                crate::pool::CONNECT_TIMEOUT,
            )
            .await;
            drop(permit);
            let (sock, welcome) = match r {
                Ok(x) => {
                    lock(&ready).ok += 1;
                    let _ = ready_tx.send(()).await;
                    x
                }
                Err(e) => {
                    *lock(&ready).errors.entry(e.0).or_default() += 1;
                    let _ = ready_tx.send(()).await;
                    return;
                }
            };
            let end = ws::hold(sock, None, stop.clone()).await;
            if spec.mode != Mode::Storm || end == ws::End::Stopped {
                return;
            }
            lock(&storm).lost_at_ms.push(wall_ms());
            let resume = ResumeRequest {
                session_id: welcome.session_id,
                resume_token: welcome.resume_token,
                last_seq: welcome.seq,
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(spec.deadline_secs);
            if spec.jitter_ms > 0 {
                let d = rand::random_range(0..spec.jitter_ms);
                tokio::time::sleep(Duration::from_millis(d)).await;
            }
            let mut attempt = 0usize;
            loop {
                let ep = &resume_eps[(i + attempt) % resume_eps.len()];
                attempt += 1;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let r = ws::open(
                    ep,
                    src,
                    &token,
                    Some(&resume),
                    left.min(crate::pool::CONNECT_TIMEOUT),
                )
                .await;
                match r {
                    Ok((sock, w)) => {
                        {
                            let mut s = lock(&storm);
                            s.attempts += attempt;
                            if w.resumed {
                                s.resumed_at_ms.push(wall_ms());
                                if !w.recovered {
                                    s.not_recovered += 1;
                                }
                            } else {
                                s.fresh_sessions += 1;
                            }
                        }
                        let _ = done_tx.send(()).await;
                        ws::hold(sock, None, stop).await;
                        return;
                    }
                    Err(e) => {
                        *lock(&storm).errors.entry(e.0).or_default() += 1;
                        if tokio::time::Instant::now() >= deadline {
                            {
                                let mut s = lock(&storm);
                                s.gave_up += 1;
                                s.attempts += attempt;
                            }
                            let _ = done_tx.send(()).await;
                            return;
                        }
                        // Backoff with full jitter, capped at 2 s (the SDK's policy shape).
                        let cap = 100u64.saturating_mul(1 << attempt.min(5)).min(2000);
                        let d = rand::random_range(0..=cap);
                        tokio::time::sleep(Duration::from_millis(d)).await;
                    }
                }
            }
        });
    }
    drop(ready_tx);
    drop(done_tx);
    for _ in 0..spec.count {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let r = {
        let mut r = lock(&ready).clone();
        r.seconds = t0.elapsed().as_secs_f64();
        r
    };
    let connected = r.ok;
    print_line(&serde_json::json!({ "ready": r }));
    let stdin_closed = async {
        let mut buf = String::new();
        let mut input = BufReader::new(tokio::io::stdin());
        let _ = input.read_line(&mut buf).await;
    };
    tokio::pin!(stdin_closed);
    if spec.mode == Mode::Storm {
        let mut done = 0usize;
        while done < connected {
            tokio::select! {
                _ = &mut stdin_closed => { stop.cancel(); return Ok(()); }
                d = done_rx.recv() => match d {
                    Some(()) => done += 1,
                    None => break,
                },
            }
        }
        let s = lock(&storm).clone();
        print_line(&serde_json::json!({ "storm": s }));
    }
    stdin_closed.await;
    stop.cancel();
    // Let the tasks send their close frames.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// The parent's handle on a worker process (killed on drop).
pub struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub pid: u32,
}

impl Worker {
    pub fn spawn(spec: &WorkerSpec) -> anyhow::Result<Worker> {
        let exe = std::env::current_exe().context("current exe")?;
        let mut child = Command::new(exe)
            .arg("worker")
            .arg("--spec")
            .arg(serde_json::to_string(spec)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a worker")?;
        let pid = child.id().context("worker pid")?;
        let out = child.stdout.take().context("worker stdout")?;
        Ok(Worker {
            child,
            lines: BufReader::new(out).lines(),
            pid,
        })
    }

    /// The next JSON line that has `key`, within `within`.
    pub async fn next(&mut self, key: &str, within: Duration) -> anyhow::Result<Value> {
        let end = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(end, self.lines.next_line())
                .await
                .with_context(|| format!("worker {}: no {key} within {within:?}", self.pid))??
                .with_context(|| format!("worker {} exited before {key}", self.pid))?;
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && let Some(x) = v.get(key)
            {
                return Ok(x.clone());
            }
        }
    }

    /// Closes stdin (the worker closes its sockets and exits); kills it after `grace`.
    pub async fn finish(mut self, grace: Duration) {
        if let Some(mut i) = self.child.stdin.take() {
            let _ = i.write_all(b"stop\n").await;
            drop(i);
        }
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}
