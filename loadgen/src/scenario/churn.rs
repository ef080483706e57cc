//! `churn`: the steady fan-out of `fanout` with abusive clients coming and going during its
//! measurement window (see [`crate::churn`]); judged by the fan-out's criteria (a stable
//! subscriber loses nothing) and the churn's (the server closed every abusive client it had
//! to within its deadline).

use std::time::Duration;

use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadRun, Result, RunError, emit, watchdog};
use crate::churn::{self, ChurnCfg, Kind};
use crate::cli::ChurnCmd;

/// The churn's settings from the flags.
fn churn_cfg(ctx: &Ctx, cmd: &ChurnCmd) -> ChurnCfg {
    let f = &cmd.churn;
    let p = &cmd.common.topic_prefix;
    let rates = Kind::ALL
        .iter()
        .map(|&k| {
            let r = match k {
                Kind::Rst => f.rst_rate,
                Kind::HalfDead => f.half_dead_rate,
                Kind::Abandoned => f.abandon_rate,
                Kind::GarbageWs => f.garbage_ws_rate,
                Kind::GarbageHttp => f.garbage_http_rate,
                Kind::HugeHeader => f.huge_header_rate,
                Kind::SlowReader => f.slow_reader_rate,
                Kind::PingFlood => f.ping_flood_rate,
            };
            (k, r)
        })
        .collect();
    ChurnCfg {
        target: ctx.target.clone(),
        rates,
        connect_timeout: cmd.common.connect_timeout.0,
        idle_timeout: f.server_idle_timeout.0,
        handshake_timeout: f.server_handshake_timeout.0,
        max_buffered: f.server_max_buffered,
        slack: f.deadline_slack.map(|d| d.0),
        slow_stall: f.slow_stall.map(|d| d.0),
        quiet_path: ctx.sub_path_for(&format!("{p}churn-quiet")),
        busy_sub_path: ctx.sub_path_for(&format!("{p}churn-busy")),
        busy_pub_path: ctx.pub_path_for(&format!("{p}churn-busy")),
        busy_rate: f.busy_rate,
        busy_size: f.busy_size.max(crate::payload::HEADER_LEN),
        rst_path: ctx.sub_path_for(&ctx.topic(0)),
        huge_header_bytes: f.huge_header_bytes,
        ping_flood_pings: f.ping_flood_pings,
        max_in_flight: f.churn_max_in_flight.max(1),
    }
}

pub fn run(cmd: &ChurnCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    if ctx.target.tls {
        return Err(RunError(
            "churn clients write raw bytes and need ws:// (wss:// is supported by fanout)".into(),
        ));
    }
    let l = &cmd.load;
    if l.publishers == 0 || l.subscribers == 0 || l.rate <= 0.0 {
        return Err(RunError(
            "churn runs a steady fan-out: it needs --publishers ≥ 1, --subscribers ≥ 1 and \
             --rate > 0"
                .into(),
        ));
    }
    let cfg = churn_cfg(&ctx, cmd);
    let settle = {
        let idle = cfg.deadline(cfg.idle_timeout);
        let hs = cfg.deadline(cfg.handshake_timeout);
        Duration::from_nanos(idle.max(hs).max(cfg.slow_stall_ns()))
    };
    watchdog(cmd.common.timeout.map(|d| d.0).unwrap_or(
        l.warmup.0
            + l.duration.0
            + settle
            + l.drain.0
            + cmd.common.connect_timeout.0 * 3
            + cmd.common.close_timeout.0
            + Duration::from_secs(60),
    ));
    let mut run = LoadRun::spawn(&ctx, l, Vec::new())?;
    let asked = run.engine.total as u64;
    let d = run.connect_deadline(l.connect_rate);
    run.wait_connected(d);
    run.begin(l.warmup.0, l.duration.0);
    let (ws, we) = run.window;
    let churner = churn::spawn(cfg, ws, we)?;
    run.measure();
    run.progress.phase("churn: last clients", 1);
    let section = churner
        .join()
        .map_err(|_| RunError("churn thread panicked".into()))??;
    run.drain(l.drain.0);
    let out = run.finish()?;
    let mut r = ctx.report(
        "churn",
        json!({ "load": l, "churn": &cmd.churn, "common": &cmd.common }),
    );
    out.fill(&mut r);
    Criteria::new(&cmd.common, 0.0).fanout(&mut r, asked, &out, l);
    churn::checks(&mut r, &section);
    r.churn = Some(section);
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok(emit(&r, Some(out.hist()), &cmd.common))
}
