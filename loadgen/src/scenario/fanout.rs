//! `fanout`: S subscribers over T topics, P publishers at a fixed total rate.

use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadRun, Result, RunError, emit, watchdog};
use crate::cli::FanoutCmd;

pub fn run(cmd: &FanoutCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    let l = &cmd.load;
    if l.publishers == 0 || l.subscribers == 0 {
        return Err(RunError(
            "fanout needs --publishers ≥ 1 and --subscribers ≥ 1".into(),
        ));
    }
    if l.rate <= 0.0 {
        return Err(RunError("--rate must be > 0 for fanout".into()));
    }
    let bound = cmd.common.timeout.map(|d| d.0).unwrap_or(
        l.warmup.0
            + l.duration.0
            + l.drain.0
            + cmd.common.connect_timeout.0 * 2
            + cmd.common.close_timeout.0
            + std::time::Duration::from_secs(60),
    );
    watchdog(bound);
    let mut run = LoadRun::spawn(&ctx, l, Vec::new())?;
    let deadline = run.connect_deadline(l.connect_rate);
    run.wait_connected(deadline);
    let connected = run
        .engine
        .run
        .connected
        .load(std::sync::atomic::Ordering::Acquire);
    // Nothing connected: nothing to measure, but still a report that says why.
    if connected > 0 {
        run.begin(l.warmup.0, l.duration.0);
        run.measure();
        run.drain(l.drain.0);
    }
    let asked = run.engine.total as u64;
    let out = run.finish()?;
    let mut r = ctx.report("fanout", json!({ "load": l, "common": &cmd.common }));
    out.fill(&mut r);
    let k = Criteria::new(&cmd.common, 0.0);
    k.connections(&mut r, asked, &out.connect);
    k.delivery(&mut r, out.delivery.as_ref());
    k.kept_open(&mut r, &out.close);
    k.latency(&mut r);
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok(emit(&r, Some(out.hist()), &cmd.common))
}
