//! Reconnect storm: `storm_clients` clients (in `workers` child processes) hold sessions on
//! one follower of a 3-node cluster; that node is SIGKILLed. Every client resumes its session
//! on one of the two other nodes (`hello.resume` with its resume token and `last_seq`, after
//! a random 0..`storm_jitter_ms` wait, then backoff with full jitter capped at 2 s). Reports
//! the time from the kill until 50/90/99/100% have resumed, the peak accept rate and the
//! failed attempts by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::Ctx;
use crate::node::BenchCluster;
use crate::report::{Row, ScenarioReport, Target};
use crate::stats::{peak_rate, time_to_fraction};
use crate::tokens::Alg;
use crate::worker::{Mode, Ready, StormResult, Worker, WorkerSpec, wall_ms};

const DEADLINE_SECS: u64 = 60;

pub async fn run(ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    let o = &ctx.opts;
    let mut rep = ScenarioReport::new(
        "storm",
        json!({"nodes": 3, "clients": o.storm_clients, "workers": o.workers,
               "first_attempt_jitter_ms": o.storm_jitter_ms, "backoff": "full jitter, 100 ms doubling, cap 2 s",
               "killed": "a follower, SIGKILL", "resume_deadline_secs": DEADLINE_SECS}),
    );
    let mut cluster = BenchCluster::start(&ctx.bin, 3, None, &ctx.log_dir("storm")).await?;
    let leader = cluster.leader().await.unwrap_or(1);
    // Kill a follower: a dead leader would add an election to the resume time.
    let victim = if leader == 3 { 2 } else { 3 };
    let victim_ix = cluster
        .nodes
        .iter()
        .position(|n| n.id == victim)
        .unwrap_or(2);
    let victim_url = cluster.nodes[victim_ix].ws_url();
    let others: Vec<String> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim_ix)
        .map(|(_, n)| n.ws_url())
        .collect();
    rep.params["killed_node"] = json!(cluster.nodes[victim_ix].id);
    rep.params["leader"] = json!(leader);
    let w = o.workers.max(1);
    let per = o.storm_clients.div_ceil(w);
    let mut workers = Vec::new();
    let mut first = 0usize;
    let mut ip = 2u8;
    while first < o.storm_clients {
        let n = per.min(o.storm_clients - first);
        let spec = WorkerSpec {
            mode: Mode::Storm,
            urls: vec![victim_url.clone()],
            resume_urls: others.clone(),
            count: n,
            user_prefix: "st".into(),
            first_index: first,
            alg: Alg::Hs256,
            tls_cert: None,
            src_base: ip,
            per_ip: 1000,
            concurrency: 32,
            expect_welcome: true,
            jitter_ms: o.storm_jitter_ms,
            deadline_secs: DEADLINE_SECS,
        };
        ip = ip.saturating_add(n.div_ceil(1000) as u8);
        workers.push(Worker::spawn(&spec)?);
        first += n;
    }
    let mut held = 0usize;
    for wk in &mut workers {
        let r: Ready = serde_json::from_value(wk.next("ready", Duration::from_secs(600)).await?)?;
        if !r.errors.is_empty() {
            rep.partial(format!("setup connect errors: {:?}", r.errors));
        }
        held += r.ok;
    }
    eprintln!(
        "  {held} clients on node {}; killing it",
        cluster.nodes[victim_ix].id
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill_at = wall_ms();
    cluster.nodes[victim_ix].kill().await;
    let mut all = StormResult::default();
    let within = Duration::from_secs(DEADLINE_SECS + 60);
    for wk in &mut workers {
        let s: StormResult = serde_json::from_value(wk.next("storm", within).await?)?;
        all.lost_at_ms.extend(s.lost_at_ms);
        all.resumed_at_ms.extend(s.resumed_at_ms);
        all.not_recovered += s.not_recovered;
        all.fresh_sessions += s.fresh_sessions;
        all.gave_up += s.gave_up;
        all.attempts += s.attempts;
        for (k, v) in s.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    for wk in workers {
        wk.finish(Duration::from_secs(10)).await;
    }
    let resumed: Vec<f64> = all.resumed_at_ms.iter().map(|t| t - kill_at).collect();
    let lost: Vec<f64> = all.lost_at_ms.iter().map(|t| t - kill_at).collect();
    rep.row(Row::new(
        "clients on the killed node",
        held as f64,
        "clients",
    ));
    for (label, f) in [
        ("first", 1e-9),
        ("50%", 0.5),
        ("90%", 0.9),
        ("99%", 0.99),
        ("100%", 1.0),
    ] {
        match time_to_fraction(&resumed, held, f) {
            Some(ms) => {
                let mut row = Row::new(format!("kill → {label} resumed"), ms / 1000.0, "s");
                if f == 0.99 {
                    row = row.with_target(Target::at_most(10.0));
                }
                rep.row(row);
            }
            None => rep.partial(format!("{label} of the clients never resumed")),
        }
    }
    rep.row(Row::new(
        "peak resumes/s (1 s window)",
        peak_rate(&resumed, 1000.0),
        "1/s",
    ));
    rep.row(Row::new(
        "peak resumes/s (100 ms window)",
        peak_rate(&resumed, 100.0),
        "1/s",
    ));
    rep.row(Row::new("resumed", resumed.len() as f64, "clients"));
    rep.row(Row::new(
        "resumed with recovered:false",
        all.not_recovered as f64,
        "clients",
    ));
    rep.row(Row::new(
        "fresh session instead of resume",
        all.fresh_sessions as f64,
        "clients",
    ));
    rep.row(Row::new("gave up (60 s)", all.gave_up as f64, "clients"));
    let failed: usize = all.errors.values().sum();
    rep.row(Row::new("failed attempts", failed as f64, "attempts"));
    rep.row(Row::new("attempts", all.attempts as f64, "attempts"));
    rep.latency("kill → socket loss seen", &lost, None);
    let errors: BTreeMap<String, usize> = all.errors;
    rep.params["errors"] = json!(errors);
    let svg = ctx.out.join("storm_cdf.svg");
    crate::plot::cdf(
        &svg,
        &format!("Reconnect storm: {held} sessions resumed after SIGKILL of their node"),
        "seconds since kill",
        &[(
            "resumed (fraction of all)".into(),
            resumed.iter().map(|ms| ms / 1000.0).collect(),
        )],
        false,
    )?;
    rep.plots.push(svg.display().to_string());
    Ok(rep)
}
