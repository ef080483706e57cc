//! `connect`: a connection storm; connect+handshake latency and failures by cause.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadRun, Result, emit, wait_until, watchdog};
use crate::cli::{ConnectCmd, Load};
use crate::clock::now_ns;

pub fn run(cmd: &ConnectCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    let paced = cmd
        .connect_rate
        .filter(|r| *r > 0.0)
        .map(|r| cmd.connections as f64 / r)
        .unwrap_or(0.0);
    let bound = cmd.common.timeout.map(|d| d.0).unwrap_or(
        std::time::Duration::from_secs_f64(paced)
            + cmd.hold.0
            + cmd.common.connect_timeout.0 * 2
            + cmd.common.close_timeout.0
            + std::time::Duration::from_secs(60),
    );
    watchdog(bound);
    let specs = ctx.idle_holds(cmd.connections);
    let load = Load {
        subscribers: 0,
        topics: 1,
        publishers: 0,
        rate: 0.0,
        size: 64,
        warmup: crate::cli::Dur(Default::default()),
        duration: crate::cli::Dur(Default::default()),
        drain: crate::cli::Dur(Default::default()),
        connect_rate: cmd.connect_rate,
        text: false,
        protocol: "raw".into(),
        reconnect: false,
        backoff_min: crate::cli::Dur(Default::default()),
        backoff_max: crate::cli::Dur(Default::default()),
        publish_via: "ws".into(),
        payload: crate::payload::PayloadKind::Filler,
        deflate: cmd.deflate,
        deflate_subscribers: None,
        deflate_no_context_takeover: false,
        deflate_server_window_bits: None,
    };
    let mut run = LoadRun::spawn_specs(&ctx, &load, specs, cmd.connect_rate)?;
    run.sample_start();
    let t0 = now_ns();
    let deadline = run.connect_deadline(cmd.connect_rate);
    run.wait_connected(deadline);
    let attempted = now_ns();
    run.sample_end(Some(std::time::Duration::from_nanos(attempted - t0)));
    run.progress.phase("holding", 1);
    let connected = run.engine.run.connected.load(Ordering::Acquire);
    wait_until(attempted + cmd.hold.0.as_nanos() as u64, || false);
    let still_open = connected - run.engine.run.closed.load(Ordering::Acquire);
    let out = run.finish()?;
    let mut r = ctx.report(
        "connect",
        json!({
            "connections": cmd.connections,
            "connect_rate": cmd.connect_rate,
            "hold_s": cmd.hold.0.as_secs_f64(),
            "common": &cmd.common,
        }),
    );
    out.fill(&mut r);
    let k = Criteria::new(&cmd.common, 0.0);
    k.connections(&mut r, cmd.connections as u64, &out.connect);
    if let Some(d) = &out.deflate {
        k.deflate(&mut r, d);
    }
    r.check(
        "all held until the end",
        connected.to_string(),
        still_open.to_string(),
        still_open == connected,
    );
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok(emit(&r, None, &cmd.common))
}
