//! `capacity`: step the offered load up until the SLO fails, then bisect.
//!
//! A step meets the SLO when every criterion of a fan-out run holds (connections
//! established, no duplicates, no connection closed early, something delivered) with the
//! SLO's p99 and loss ratio as limits.

use std::time::Duration;

use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadOutcome, LoadRun, Result, RunError, emit, watchdog};
use crate::cli::{CapacityCmd, Dur, Load};
use crate::report::{CapacitySection, CapacityStep, Report};

const MAX_STEP_UPS: usize = 20;

pub fn run(cmd: &CapacityCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    let by_rate = cmd.search == "rate";
    let l = &cmd.load;
    if l.publishers == 0 || l.subscribers == 0 {
        return Err(RunError(
            "capacity needs --publishers ≥ 1 and --subscribers ≥ 1".into(),
        ));
    }
    if cmd.factor <= 1.0 {
        return Err(RunError("--factor must be > 1".into()));
    }
    let start = cmd.start.unwrap_or(if by_rate {
        l.rate
    } else {
        l.subscribers as f64
    });
    if start <= 0.0 {
        return Err(RunError("--start must be > 0".into()));
    }
    let max = cmd.max.unwrap_or(f64::INFINITY);
    let per_step = l.warmup.0
        + cmd.step_duration.0
        + l.drain.0
        + cmd.common.connect_timeout.0
        + cmd.common.close_timeout.0
        + Duration::from_secs(5);
    watchdog(
        cmd.common
            .timeout
            .map(|d| d.0)
            .unwrap_or(per_step * (MAX_STEP_UPS as u32 + cmd.bisect + 1) + Duration::from_secs(60)),
    );
    let slo_p99_us = cmd.slo_p99.0.as_micros() as u64;
    let slo_loss = cmd.slo_loss.or(cmd.common.max_loss).unwrap_or(0.0);
    // The step criteria: the fan-out ones with the SLO as limits.
    let mut step_criteria = Criteria::new(&cmd.common, slo_loss);
    step_criteria.max_loss = slo_loss;
    step_criteria.max_p99_us = Some(slo_p99_us);
    let mut steps: Vec<CapacityStep> = Vec::new();
    let mut best: Option<(f64, LoadOutcome)> = None;
    let mut try_value = |v: f64, steps: &mut Vec<CapacityStep>| -> Result<bool> {
        let mut load: Load = l.clone();
        load.duration = Dur(cmd.step_duration.0);
        if by_rate {
            load.rate = v;
        } else {
            load.subscribers = v.round().max(1.0) as u32;
        }
        let (asked, out) = one_step(&ctx, &load)?;
        let (p50, p99, max_us) = (out.latency.p50, out.latency.p99, out.latency.max);
        let (loss, lost, delivered) = out
            .delivery
            .as_ref()
            .map(|d| (d.loss_ratio, d.lost, d.delivered))
            .unwrap_or((1.0, 0, 0));
        let mut judged = ctx.report("capacity-step", serde_json::Value::Null);
        out.fill(&mut judged);
        step_criteria.fanout(&mut judged, asked, &out, &load);
        let pass = judged.passed;
        let step = CapacityStep {
            value: v,
            offered_deliveries_per_s: load.rate * load.subscribers as f64
                / load.topics.max(1) as f64,
            p50_us: p50,
            p99_us: p99,
            max_us,
            loss_ratio: loss,
            lost,
            delivered,
            loadgen_saturated: out.cpu.as_ref().is_some_and(|c| c.loadgen_saturated),
            server_cpu_utilization: out
                .cpu
                .as_ref()
                .and_then(|c| c.server.as_ref())
                .map(|s| s.utilization),
            pass,
            why: judged.why,
        };
        eprintln!(
            "capacity: {} {:.0}: p50 {} p99 {} loss {:.6} → {}",
            cmd.search,
            v,
            crate::report::us(p50),
            crate::report::us(p99),
            loss,
            if pass { "pass" } else { "fail" }
        );
        steps.push(step);
        if pass && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, out));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(pass)
    };

    let mut v = start.min(max);
    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    for _ in 0..MAX_STEP_UPS {
        if try_value(v, &mut steps)? {
            lo = Some(v);
            if v >= max {
                break;
            }
            v = (v * cmd.factor).min(max);
        } else {
            hi = Some(v);
            break;
        }
    }
    if let Some(h) = hi {
        let mut low = lo.unwrap_or(0.0);
        let mut high = h;
        for _ in 0..cmd.bisect {
            let mut mid = (low + high) / 2.0;
            if !by_rate {
                mid = mid.round();
            }
            if mid <= low || mid >= high || mid <= 0.0 {
                break;
            }
            if try_value(mid, &mut steps)? {
                low = mid;
                lo = Some(mid);
            } else {
                high = mid;
            }
        }
    }
    let sec = CapacitySection {
        search: cmd.search.clone(),
        slo_p99_us,
        slo_loss,
        steps,
        answer: lo,
    };
    let mut r = ctx.report(
        "capacity",
        json!({
            "load": l,
            "search": cmd.search,
            "start": start,
            "max": cmd.max,
            "factor": cmd.factor,
            "bisect": cmd.bisect,
            "slo_p99_s": cmd.slo_p99.0.as_secs_f64(),
            "slo_loss": slo_loss,
            "step_duration_s": cmd.step_duration.0.as_secs_f64(),
            "common": &cmd.common,
        }),
    );
    let hist = best.as_ref().map(|(_, o)| o.hist().clone());
    if let Some((_, o)) = &best {
        o.fill(&mut r);
    }
    answer_check(&mut r, &sec);
    r.capacity = Some(sec);
    // An explicit --max-p99 also applies to the answer's step.
    Criteria::new(&cmd.common, slo_loss).latency(&mut r);
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok(emit(&r, hist.as_ref(), &cmd.common))
}

/// The run passes when some step met the SLO; otherwise it says why the first one failed.
fn answer_check(r: &mut Report, sec: &CapacitySection) {
    let observed = match (sec.answer, sec.steps.first()) {
        (Some(a), _) => format!("{a:.0}"),
        (None, Some(first)) => format!(
            "none; the first step ({:.0}) failed: {}",
            first.value,
            first.why.join("; ")
        ),
        (None, None) => "no step ran".into(),
    };
    r.check(
        "a step met the SLO",
        format!(
            "p99 ≤ {}, loss ≤ {}",
            crate::report::us(sec.slo_p99_us),
            sec.slo_loss
        ),
        observed,
        sec.answer.is_some(),
    );
}

fn one_step(ctx: &Ctx, load: &Load) -> Result<(u64, LoadOutcome)> {
    let mut run = LoadRun::spawn(ctx, load, Vec::new())?;
    let deadline = run.connect_deadline(load.connect_rate);
    run.wait_connected(deadline);
    let asked = run.engine.total as u64;
    if run
        .engine
        .run
        .connected
        .load(std::sync::atomic::Ordering::Acquire)
        > 0
    {
        run.begin(load.warmup.0, load.duration.0);
        run.measure();
        run.drain(load.drain.0);
    }
    Ok((asked, run.finish()?))
}
