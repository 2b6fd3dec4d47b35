//! The scenarios, each a function from the context to its report.

pub mod connect_rate;
pub mod failover;
pub mod fanout;
pub mod idp;
pub mod memory;
pub mod revocation;
pub mod revocation_rtt;
pub mod sizes;
pub mod storm;

use crate::Ctx;
use crate::report::{ScenarioReport, Status};

/// Names accepted on the command line, in the order `all` runs them. `revocation-rtt` (root
/// tier, `TETHER_CHAOS_NETNS=1`) is not part of `all`: name it.
pub const ALL: [&str; 8] = [
    "sizes",
    "revocation",
    "idp",
    "fanout",
    "connect-rate",
    "storm",
    "failover",
    "memory",
];

/// Runs scenario `name`; a failure becomes a `failed` report with the error as a note.
pub async fn run(name: &str, ctx: &Ctx) -> ScenarioReport {
    eprintln!("== {name} (load {:?})", crate::machine::loadavg());
    let t0 = tokio::time::Instant::now();
    let r = match name {
        "sizes" => sizes::run(ctx).await,
        "revocation" => revocation::run(ctx).await,
        "revocation-rtt" => revocation_rtt::run(ctx).await,
        "memory" => memory::run(ctx).await,
        "connect-rate" => connect_rate::run(ctx).await,
        "storm" => storm::run(ctx).await,
        "failover" => failover::run(ctx).await,
        "fanout" => fanout::run(ctx).await,
        "idp" => idp::run(ctx).await,
        other => Err(anyhow::anyhow!("unknown scenario {other}")),
    };
    let mut rep = r.unwrap_or_else(|e| {
        let mut s = ScenarioReport::new(name, serde_json::Value::Null);
        s.status = Status::Failed;
        s.note(format!("failed: {e:#}"));
        s
    });
    rep.seconds = t0.elapsed().as_secs_f64();
    rep.load_end = crate::machine::loadavg();
    rep
}
