//! `tether-bench <scenario|all> [options]`; `tether-bench worker --spec JSON` is the
//! load-generator child process.

use clap::Parser;
use tether_bench::report::Report;
use tether_bench::{Ctx, Opts, machine, node, scenarios, tls, worker};

#[derive(Parser)]
#[command(
    about = "Tether benchmarks on loopback: revocation, idp, memory, connect-rate, storm, failover, fanout, sizes, all; revocation-rtt (root tier)"
)]
struct Cli {
    /// revocation | idp | memory | connect-rate | storm | failover | fanout | sizes | all | worker;
    /// revocation-rtt (80 ms RTT, root, TETHER_CHAOS_NETNS=1, not in `all`)
    scenario: String,
    /// Worker spec (JSON), for `worker` only.
    #[arg(long, hide = true)]
    spec: Option<String>,
    #[command(flatten)]
    opts: Opts,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.scenario == "worker" {
        let spec = cli
            .spec
            .ok_or_else(|| anyhow::anyhow!("worker needs --spec"))?;
        return worker::run(serde_json::from_str(&spec)?).await;
    }
    let names: Vec<&str> = if cli.scenario == "all" {
        scenarios::ALL.to_vec()
    } else {
        cli.scenario.split(',').collect()
    };
    let out = cli
        .opts
        .out
        .clone()
        .unwrap_or_else(|| node::workspace_root().join("target").join("bench"));
    std::fs::create_dir_all(&out)?;
    let ctx = Ctx {
        bin: node::tether_bin()?,
        wss: tls::make_server_cert(&out)?,
        out: out.clone(),
        opts: cli.opts,
    };
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        tree: tree_state(),
        started_unix: tether_tests::tokens::now(),
        machine: machine::Machine::detect(),
        scenarios: Vec::new(),
    };
    for name in names {
        let r = scenarios::run(name, &ctx).await;
        report.scenarios.push(r);
        std::fs::write(
            out.join("report.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(out.join("table.md"), report.table())?;
    }
    println!("{}", report.table());
    println!("report: {}", out.join("report.json").display());
    Ok(())
}

/// HEAD and whether node/ or cluster/ had uncommitted changes when the run started.
fn tree_state() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(node::workspace_root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "node", "cluster"]);
    if dirty.is_empty() {
        head
    } else {
        format!("{head} + uncommitted changes in node/ or cluster/")
    }
}
