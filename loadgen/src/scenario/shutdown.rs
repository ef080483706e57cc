//! `shutdown`: hold N connections, SIGTERM the server (or wait for someone to), and time
//! every close frame, the last TCP close and the server's exit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::criteria::Criteria;
use super::{Ctx, LoadRun, Result, RunError, emit, wait_until, watchdog};
use crate::cli::{Dur, Load, ShutdownCmd};
use crate::clock::now_ns;
use crate::report::{LatencySummary, ShutdownSection};
use crate::sys;

pub fn run(cmd: &ShutdownCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    if cmd.common.server_pid.is_none() && !cmd.external {
        return Err(RunError(
            "shutdown needs --server-pid (to send SIGTERM) or --external".into(),
        ));
    }
    // How long the shutdown itself may take before we give up on it.
    let budget = cmd
        .common
        .timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(30));
    watchdog(
        budget
            + cmd.hold.0
            + cmd.common.connect_timeout.0 * 2
            + cmd.common.close_timeout.0
            + Duration::from_secs(30),
    );
    let holds = ctx.idle_holds(cmd.connections);
    let load = if cmd.load {
        cmd.load_shape.clone()
    } else {
        Load {
            subscribers: 0,
            publishers: 0,
            rate: 0.0,
            warmup: Dur(Duration::ZERO),
            ..cmd.load_shape.clone()
        }
    };
    let mut run = LoadRun::spawn(&ctx, &load, holds)?;
    let deadline = run.connect_deadline(load.connect_rate);
    run.wait_connected(deadline);
    let connected = run.engine.run.connected.load(Ordering::Acquire);
    let asked = run.engine.total as u64;
    let k = Criteria::new(&cmd.common, 0.0);
    if connected == 0 {
        // Nothing to shut down: say why instead of signalling the server.
        let out = run.finish()?;
        let mut r = ctx.report(
            "shutdown",
            json!({ "connections": cmd.connections, "common": &cmd.common }),
        );
        out.fill(&mut r);
        r.delivery = None;
        k.connections(&mut r, asked, &out.connect);
        return Ok(emit(&r, None, &cmd.common));
    }
    if cmd.load {
        run.begin(Duration::ZERO, cmd.hold.0 + budget);
    }
    run.progress.phase("holding", 1);
    wait_until(now_ns() + cmd.hold.0.as_nanos() as u64, || false);

    let shared = run.engine.run.clone();
    let pid = cmd.common.server_pid;
    let mut sig_ns = None;
    // CPU over the shutdown phase: a saturated loadgen would timestamp close frames late.
    run.sample_start();
    let phase_start = now_ns();
    if !cmd.external
        && let Some(pid) = pid
    {
        sig_ns = Some(now_ns());
        sys::kill(pid, libc::SIGTERM)
            .map_err(|e| RunError(format!("--server-pid {pid}: cannot send SIGTERM: {e}")))?;
    } else {
        run.progress.phase("waiting for an external shutdown", 1);
    }
    let deadline = now_ns() + budget.as_nanos() as u64;
    let mut exit_ns: Option<u64> = None;
    run.progress.phase("closing", connected as u64);
    wait_until(deadline, || {
        let closed = shared.closed.load(Ordering::Acquire);
        run.progress.set(closed as u64);
        if exit_ns.is_none()
            && let Some(p) = pid
            && !sys::alive(p)
        {
            exit_ns = Some(now_ns());
        }
        closed >= connected && (exit_ns.is_some() || pid.is_none())
    });
    run.sample_end(Some(Duration::from_nanos(now_ns() - phase_start)));
    let out = run.finish()?;

    let recs: Vec<_> = out.result.closes.iter().collect();
    let frames: Vec<u64> = recs.iter().filter_map(|r| r.close_frame_ns).collect();
    // External shutdown: the first close frame stands in for the signal.
    let t0 = sig_ns.or_else(|| frames.iter().copied().min()).unwrap_or(0);
    let mut h = crate::recv::latency_histogram();
    for f in &frames {
        h.saturating_record(f.saturating_sub(t0) / 1000);
    }
    let ms = |ns: u64| ns.saturating_sub(t0) as f64 / 1e6;
    let mut codes = std::collections::BTreeMap::new();
    for r in &recs {
        *codes.entry(r.code.to_string()).or_insert(0u64) += 1;
    }
    let sec = ShutdownSection {
        signal: if sig_ns.is_some() {
            "sigterm".into()
        } else {
            "external".into()
        },
        connections: recs.len() as u64,
        close_frames: frames.len() as u64,
        codes,
        abnormal: recs.iter().filter(|r| !r.clean).count() as u64,
        signal_to_close_frame_us: LatencySummary::from_hist(&h),
        to_first_close_frame_ms: frames.iter().min().map(|&f| ms(f)),
        to_last_close_frame_ms: frames.iter().max().map(|&f| ms(f)),
        to_last_closed_ms: recs.iter().map(|r| r.closed_ns).max().map(ms),
        server_exit_ms: exit_ns.map(ms),
    };
    let mut r = ctx.report(
        "shutdown",
        json!({
            "connections": cmd.connections,
            "load": if cmd.load { Some(&cmd.load_shape) } else { None },
            "hold_s": cmd.hold.0.as_secs_f64(),
            "external": cmd.external,
            "common": &cmd.common,
        }),
    );
    out.fill(&mut r);
    r.delivery = None;
    k.connections(&mut r, asked, &out.connect);
    let expect = cmd.common.expect_close.unwrap_or(1001);
    let wrong: u64 = sec
        .codes
        .iter()
        .filter(|(k, _)| **k != expect.to_string())
        .map(|(_, v)| *v)
        .sum();
    r.check(
        "close code on every connection",
        expect.to_string(),
        sec.codes
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" "),
        wrong == 0 && sec.connections > 0,
    );
    r.check(
        "abnormal closes",
        "0".into(),
        sec.abnormal.to_string(),
        sec.abnormal == 0,
    );
    if pid.is_some() {
        r.check(
            "server exited",
            format!("within {budget:?}"),
            sec.server_exit_ms
                .map(|v| format!("{v:.1}ms"))
                .unwrap_or_else(|| "still running".into()),
            sec.server_exit_ms.is_some(),
        );
    }
    r.shutdown = Some(sec);
    k.latency(&mut r);
    let hist = if cmd.load { Some(out.hist()) } else { None };
    Ok(emit(&r, hist, &cmd.common))
}
