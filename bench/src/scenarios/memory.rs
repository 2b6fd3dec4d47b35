//! memory (being built).

use crate::Ctx;
use crate::report::ScenarioReport;

pub async fn run(_ctx: &Ctx) -> anyhow::Result<ScenarioReport> {
    anyhow::bail!("not built yet")
}
