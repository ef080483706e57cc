//! `fanout`: S subscribers over T topics, P publishers at a fixed total rate; with
//! `--repeat N`, N such runs back to back and the spread of their figures.

use std::time::Duration;

use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadOutcome, LoadRun, Result, RunError, emit_runs, watchdog};
use crate::cli::FanoutCmd;
use crate::report::{RepeatRun, RepeatSection, Report};

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
    let one = l.warmup.0
        + l.duration.0
        + l.drain.0
        + cmd.common.connect_timeout.0 * 2
        + cmd.common.close_timeout.0
        + Duration::from_secs(10);
    let bound = cmd
        .common
        .timeout
        .map(|d| d.0)
        .unwrap_or((one + cmd.repeat_pause.0) * cmd.repeat + Duration::from_secs(50));
    watchdog(bound);
    if cmd.repeat <= 1 {
        let (r, out) = one_run(&ctx, cmd)?;
        return Ok(emit_runs(&r, Some(out.hist()), &[out.hist()], &cmd.common));
    }
    let mut reports = Vec::new();
    let mut hists = Vec::new();
    for i in 0..cmd.repeat {
        if i > 0 {
            std::thread::sleep(cmd.repeat_pause.0);
        }
        let (r, out) = one_run(&ctx, cmd)?;
        eprintln!(
            "run {}/{}: p50 {} p99 {} lost {} → {}",
            i + 1,
            cmd.repeat,
            crate::report::us(out.latency.p50),
            crate::report::us(out.latency.p99),
            out.delivery.as_ref().map_or(0, |d| d.lost),
            if r.passed { "pass" } else { "FAIL" }
        );
        hists.push(out.result.recv.hist.clone());
        reports.push(r);
    }
    let mut all = crate::recv::latency_histogram();
    for h in &hists {
        // Same bounds: adding cannot fail.
        let _ = all.add(h);
    }
    let r = combine(reports, cmd.repeat_pause.0.as_secs_f64());
    let runs: Vec<_> = hists.iter().collect();
    Ok(emit_runs(&r, Some(&all), &runs, &cmd.common))
}

/// One fan-out run, judged.
fn one_run(ctx: &Ctx, cmd: &FanoutCmd) -> Result<(Report, LoadOutcome)> {
    let l = &cmd.load;
    let mut run = LoadRun::spawn(ctx, l, Vec::new())?;
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
    let mut r = ctx.report(
        "fanout",
        json!({ "load": l, "repeat": cmd.repeat, "common": &cmd.common }),
    );
    out.fill(&mut r);
    Criteria::new(&cmd.common, 0.0).fanout(&mut r, asked, &out, l);
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok((r, out))
}

/// The report of a `--repeat` series: the last run's sections, every run's figures and
/// their spread, and the checks of every run (a run's failed criteria prefixed with it).
fn combine(reports: Vec<Report>, pause_s: f64) -> Report {
    let per_run: Vec<RepeatRun> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let lat = r.latency_us.clone().unwrap_or_default();
            let d = r.delivery.as_ref();
            let cpu = r.cpu.as_ref();
            RepeatRun {
                run: i as u32 + 1,
                passed: r.passed,
                why: r.why.clone(),
                p50_us: lat.p50,
                p99_us: lat.p99,
                max_us: lat.max,
                deliveries_per_s: d.map_or(0.0, |d| d.deliveries_per_s),
                lost: d.map_or(0, |d| d.lost),
                loss_ratio: d.map_or(0.0, |d| d.loss_ratio),
                loadgen_ns_per_delivery: cpu.and_then(|c| c.loadgen_ns_per_delivery),
                server_ns_per_delivery: cpu
                    .and_then(|c| c.server.as_ref())
                    .and_then(|s| s.ns_per_delivery),
                server_cpu_utilization: cpu.and_then(|c| c.server.as_ref()).map(|s| s.utilization),
            }
        })
        .collect();
    let runs = reports.len() as u32;
    let mut checks = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        if r.passed {
            checks.push((
                format!("run {}", i + 1),
                "every criterion".to_string(),
                "passed".to_string(),
                true,
            ));
        } else {
            for c in r.slo.checks.iter().filter(|c| !c.pass) {
                checks.push((
                    format!("run {}: {}", i + 1, c.name),
                    c.limit.clone(),
                    c.observed.clone(),
                    false,
                ));
            }
        }
    }
    let mut last = reports.into_iter().last().expect("--repeat is at least 1");
    last.slo.checks.clear();
    last.why.clear();
    last.passed = true;
    for (name, limit, observed, pass) in checks {
        last.check(&name, limit, observed, pass);
    }
    last.repeat = Some(RepeatSection::new(runs, pause_s, per_run));
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p99: u64, lost: u64) -> Report {
        let mut r = Report::new("fanout", "ws://x", 1, serde_json::Value::Null);
        r.latency_us = Some(crate::report::LatencySummary {
            p50: p99 / 2,
            p99,
            count: 10,
            ..Default::default()
        });
        r.check("loss", "0 lost".into(), format!("{lost} lost"), lost == 0);
        r
    }

    #[test]
    fn a_series_passes_only_if_every_run_passed() {
        let r = combine(vec![report(100, 0), report(300, 0), report(200, 0)], 1.0);
        assert!(r.passed, "{:?}", r.why);
        let rp = r.repeat.as_ref().expect("repeat section");
        assert_eq!(rp.runs, 3);
        assert_eq!(
            rp.p99_us.map(|s| (s.min, s.median, s.max)),
            Some((100.0, 200.0, 300.0))
        );
        assert_eq!(rp.p50_us.map(|s| s.median), Some(100.0));

        let r = combine(vec![report(100, 0), report(100, 7)], 1.0);
        assert!(!r.passed);
        assert_eq!(
            r.why,
            vec!["run 2: loss: 7 lost (required: 0 lost)".to_string()]
        );
        assert_eq!(r.repeat.as_ref().map(|rp| rp.passed_runs), Some(1));
    }
}
