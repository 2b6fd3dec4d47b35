//! Memory per idle authenticated connection: one node holds `mem_steps` connections (5k,
//! then 18k), plaintext and TLS; RSS growth over the idle node, divided by the connections.
//! The same connections are then held by the bare tokio-tungstenite server (`bare_ws`, 4 KiB
//! read buffer) as the baseline, and the ratio is reported.
//!
//! Clients live in `workers` child processes (each under the 20000 open-files limit) with
//! source addresses 127.0.0.x; the servers are measured one after another, never at once.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Ctx;
use crate::machine::{Rss, rss};
use crate::node::{BenchNode, NodeSpec};
use crate::report::{Row, ScenarioReport, Target};
use crate::tokens::Alg;
use crate::worker::{Mode, Ready, Worker, WorkerSpec};

/// The bare server: `bare_ws` next to this executable.
fn bare_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.with_file_name("bare_ws"))
}

struct Bare {
    child: Child,
    pid: u32,
    url: String,
}

async fn start_bare(tls: Option<(&Path, &Path)>) -> anyhow::Result<Bare> {
    let mut cmd = Command::new(bare_bin()?);
    if let Some((c, k)) = tls {
        cmd.arg("--tls").arg(c).arg(k);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning bare_ws (cargo build --release -p tether-bench builds it)")?;
    let pid = child.id().context("bare pid")?;
    let out = child.stdout.take().context("bare stdout")?;
    let mut lines = BufReader::new(out).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("bare_ws did not start")??
        .context("bare_ws exited")?;
    let addr = line
        .strip_prefix("listening ")
        .context("bare_ws listening line")?
        .to_owned();
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    Ok(Bare {
        child,
        pid,
        url: format!("{scheme}://{addr}/v1/connect"),
    })
}

/// Reads RSS until two reads 1 s apart differ by less than 0.5% (at most 10 s).
async fn settled_rss(pid: u32) -> Rss {
    let mut last = rss(pid).unwrap_or_default();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss(pid).unwrap_or_default();
        let diff = now.rss_kib.abs_diff(last.rss_kib) as f64;
        last = now;
        if diff < 0.005 * now.rss_kib as f64 {
            break;
        }
    }
    last
}

/// One measured series: RSS at 0 and at each step.
struct Series {
    base: Rss,
    at: Vec<(usize, Rss, usize)>,
}

/// Fills the server at `url` (pid `pid`) to each step with worker processes.
async fn fill(
    ctx: &Ctx,
    pid: u32,
    url: &str,
    tls: bool,
    authenticated: bool,
    src_base: u8,
) -> anyhow::Result<(Series, Vec<Worker>)> {
    let o = &ctx.opts;
    let base = settled_rss(pid).await;
    let mut workers = Vec::new();
    let mut at = Vec::new();
    let mut held = 0usize;
    let mut next_ip = src_base;
    for &step in &o.mem_steps {
        let delta = step.saturating_sub(held);
        let per = delta.div_ceil(o.workers.max(1));
        let mut spawned = Vec::new();
        let mut left = delta;
        while left > 0 {
            let n = per.min(left);
            let spec = WorkerSpec {
                mode: Mode::Hold,
                urls: vec![url.to_owned()],
                resume_urls: Vec::new(),
                count: n,
                user_prefix: format!("m{pid}-"),
                first_index: held + (delta - left),
                alg: Alg::Hs256,
                tls_cert: tls.then(|| ctx.wss.cert.clone()),
                src_base: next_ip,
                per_ip: 1000,
                concurrency: 64,
                expect_welcome: authenticated,
                jitter_ms: 0,
                deadline_secs: 0,
            };
            next_ip = next_ip.wrapping_add(n.div_ceil(1000) as u8);
            if next_ip < 2 {
                next_ip = 2;
            }
            spawned.push(Worker::spawn(&spec)?);
            left -= n;
        }
        let mut ok = 0usize;
        for w in &mut spawned {
            let r: Ready =
                serde_json::from_value(w.next("ready", Duration::from_secs(600)).await?)?;
            if !r.errors.is_empty() {
                eprintln!("  worker {} errors: {:?}", w.pid, r.errors);
            }
            ok += r.ok;
        }
        workers.extend(spawned);
        held += delta;
        let r = settled_rss(pid).await;
        eprintln!(
            "  pid {pid}: {ok}/{delta} more connections ({held} total): RSS {} KiB (base {} KiB)",
            r.rss_kib, base.rss_kib
        );
        at.push((step, r, held - (delta - ok)));
    }
    Ok((Series { base, at }, workers))
}

fn per_conn_kib(s: &Series, i: usize) -> f64 {
    let (_, r, n) = s.at[i];
    (r.rss_kib as f64 - s.base.rss_kib as f64) / n.max(1) as f64
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let mut rep = ScenarioReport::new(
        "memory",
        json!({"steps": o.mem_steps, "workers": o.workers, "idle": "authenticated, no subscriptions",
               "baseline": "bare tokio-tungstenite, 4 KiB read buffer"}),
    );
    let mut detail = Vec::new();
    for tls in [false, true] {
        let mode = if tls { "TLS" } else { "plaintext" };
        let spec = NodeSpec {
            id: 1,
            wss: tls.then(|| ctx.wss.clone()),
            ..Default::default()
        };
        let mut node = BenchNode::start(
            &ctx.bin,
            &spec,
            &ctx.log_dir("memory"),
            Duration::from_secs(60),
        )
        .await?;
        let (ts, workers) = fill(ctx, node.pid, &node.ws_url(), tls, true, 2).await?;
        for w in workers {
            w.finish(Duration::from_secs(10)).await;
        }
        node.kill().await;
        let cert = (ctx.wss.cert.as_path(), ctx.wss.key.as_path());
        let mut bare = start_bare(tls.then_some(cert)).await?;
        let (bs, workers) = fill(ctx, bare.pid, &bare.url, tls, false, 120).await?;
        for w in workers {
            w.finish(Duration::from_secs(10)).await;
        }
        let _ = bare.child.start_kill();
        let _ = bare.child.wait().await;
        for (i, (step, r, n)) in ts.at.iter().enumerate() {
            let t = per_conn_kib(&ts, i);
            let b = per_conn_kib(&bs, i);
            let mut row = Row::new(format!("tether {mode} KiB/conn @ {step}"), t, "KiB");
            if !tls {
                // The performance issue's target: at most 14 KiB per idle plaintext connection.
                row = row.with_target(Target::at_most(14.0));
            }
            rep.row(row);
            rep.row(Row::new(format!("bare {mode} KiB/conn @ {step}"), b, "KiB"));
            rep.row(Row::new(
                format!("ratio tether/bare {mode} @ {step}"),
                t / b,
                "x",
            ));
            if *n != *step {
                rep.partial(format!("tether {mode}: {n} of {step} connections held"));
            }
            detail.push(json!({"mode": mode, "step": step, "tether_conns": n,
                "tether_base_kib": ts.base.rss_kib, "tether_rss_kib": r.rss_kib, "tether_hwm_kib": r.hwm_kib,
                "bare_conns": bs.at[i].2, "bare_base_kib": bs.base.rss_kib,
                "bare_rss_kib": bs.at[i].1.rss_kib, "bare_hwm_kib": bs.at[i].1.hwm_kib}));
        }
        if ts.at.len() >= 2 {
            let (s0, r0, n0) = ts.at[0];
            let (s1, r1, n1) = ts.at[ts.at.len() - 1];
            let slope = (r1.rss_kib as f64 - r0.rss_kib as f64) / (n1 as f64 - n0 as f64).max(1.0);
            rep.row(Row::new(
                format!("tether {mode} KiB/conn marginal {s0}→{s1}"),
                slope,
                "KiB",
            ));
        }
    }
    rep.params["rss"] = json!(detail);
    Ok(rep)
}
