//! `close`: close-behaviour probes under background fan-out load.
//!
//! Each probe opens its own connection, provokes a failure and observes the RFC 6455
//! §7.1.7 shape of the server's answer:
//!
//! 1. a close frame with the expected code (1009 oversize, 1007 invalid UTF-8, 1002 RSV
//!    bit / unmasked frame, 1008 slow consumer — or, for `slow`, `drop`: no close, and
//!    messages missing);
//! 2. the server's FIN after it, while we keep sending (we never answer the close frame:
//!    the server must stop reading frames and discard, not reset);
//! 3. the socket closed by the server within `--server-close-timeout` (+1 s slack) of its
//!    close frame: our next write after that fails (the server's kernel answers with RST).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use ringcast_proto::{OpCode, encode};
use serde_json::json;

use super::criteria::{Criteria, expect_close};
use super::{Ctx, LoadRun, Result, emit, watchdog};
use crate::cli::CloseCmd;
use crate::clock::now_ns;
use crate::net::{Target, connect_ws, connect_ws_opts};
use crate::payload::{HEADER_LEN, MsgHeader, write_header};
use crate::recv::{ConnRecv, ReadOutcome, RecvStats};
use crate::report::ProbeResult;

pub const DEFAULT_EXPECT: &[(&str, &str)] = &[
    ("oversize", "1009"),
    ("utf8", "1007"),
    ("rsv", "1002"),
    ("unmasked", "1002"),
    ("slow", "1008"),
];

#[derive(Clone)]
struct ProbeCfg {
    target: Target,
    connect_timeout: Duration,
    server_close_timeout: Duration,
    max_message: usize,
    max_payload: usize,
    max_buffered: usize,
    slow_wait: Duration,
    probe_path: String,
    slow_sub_path: String,
    slow_pub_path: String,
}

pub fn run(cmd: &CloseCmd) -> Result<i32> {
    let ctx = Ctx::new(&cmd.common)?;
    if ctx.target.tls {
        return Err(super::RunError(
            "the close probes write raw frames and need ws:// (wss:// is supported by the \
             other scenarios)"
                .into(),
        ));
    }
    let per_probe = cmd.common.connect_timeout.0
        + cmd.server_close_timeout.0 * 2
        + cmd.slow_wait.0
        + Duration::from_secs(10);
    watchdog(cmd.common.timeout.map(|d| d.0).unwrap_or(
        per_probe * cmd.probes.len() as u32
            + cmd.load.warmup.0
            + cmd.load.duration.0
            + cmd.load.drain.0
            + Duration::from_secs(60),
    ));
    for p in &cmd.probes {
        if !DEFAULT_EXPECT.iter().any(|(n, _)| n == p) {
            return Err(super::RunError(format!(
                "--probes: unknown probe {p:?} (oversize, utf8, rsv, unmasked, slow)"
            )));
        }
    }
    let expect = |name: &str| -> String {
        cmd.expect
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                DEFAULT_EXPECT
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap_or_default()
    };
    let pc = ProbeCfg {
        target: ctx.target.clone(),
        connect_timeout: cmd.common.connect_timeout.0,
        server_close_timeout: cmd.server_close_timeout.0,
        max_message: cmd.common.max_message,
        max_payload: cmd.max_payload,
        max_buffered: cmd.max_buffered,
        slow_wait: cmd.slow_wait.0,
        probe_path: ctx.pub_path_for(&format!("{}probe", cmd.common.topic_prefix)),
        slow_sub_path: ctx.sub_path_for(&format!("{}slow", cmd.common.topic_prefix)),
        slow_pub_path: ctx.pub_path_for(&format!("{}slow", cmd.common.topic_prefix)),
    };
    let list: Vec<(String, String)> = cmd.probes.iter().map(|p| (p.clone(), expect(p))).collect();

    // Background load first, then the probes while it runs.
    let background = cmd.load.subscribers > 0 && cmd.load.publishers > 0 && cmd.load.rate > 0.0;
    let mut asked = 0u64;
    let mut run = if background {
        let mut r = LoadRun::spawn(&ctx, &cmd.load, Vec::new())?;
        asked = r.engine.total as u64;
        let d = r.connect_deadline(cmd.load.connect_rate);
        r.wait_connected(d);
        r.begin(cmd.load.warmup.0, cmd.load.duration.0);
        Some(r)
    } else {
        None
    };
    let probes = std::thread::Builder::new()
        .name("loadgen-probes".into())
        .spawn(move || -> std::io::Result<Vec<ProbeResult>> {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(async move {
                let mut out = Vec::new();
                for (name, exp) in &list {
                    out.push(run_probe(&pc, name, exp).await);
                }
                out
            }))
        })?;
    if let Some(r) = run.as_mut() {
        r.measure();
    }
    let results = probes
        .join()
        .map_err(|_| super::RunError("probe thread panicked".into()))??;
    let out = match run {
        Some(r) => {
            r.drain(cmd.load.drain.0);
            Some(r.finish()?)
        }
        None => None,
    };
    let mut r = ctx.report(
        "close",
        json!({
            "load": if background { Some(&cmd.load) } else { None },
            "max_payload": cmd.max_payload,
            "max_buffered": cmd.max_buffered,
            "server_close_timeout_s": cmd.server_close_timeout.0.as_secs_f64(),
            "slow_wait_s": cmd.slow_wait.0.as_secs_f64(),
            "probes": &cmd.probes,
            "expect": cmd.expect.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "common": &cmd.common,
        }),
    );
    let k = Criteria::new(&cmd.common, 0.0);
    if let Some(o) = &out {
        o.fill(&mut r);
        // The background load is a fan-out run: the same criteria.
        k.fanout(&mut r, asked, o, &cmd.load);
    }
    for p in &results {
        r.check(
            &format!("probe {}", p.name),
            p.expected.clone(),
            p.observed_code
                .map(|c| c.to_string())
                .or_else(|| p.drops.map(|d| format!("no close, {d} drops")))
                .unwrap_or_else(|| "no close".into()),
            p.pass,
        );
    }
    r.probes = Some(results);
    if let Some(code) = cmd.common.expect_close {
        expect_close(&mut r, code);
    }
    Ok(emit(&r, out.as_ref().map(|o| o.hist()), &cmd.common))
}

fn failed(name: &str, expected: &str, detail: String) -> ProbeResult {
    ProbeResult {
        name: name.into(),
        expected: expected.into(),
        detail,
        ..Default::default()
    }
}

fn masked_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode::encode_client_frame(&mut v, true, opcode, payload, crate::rng::mask_key());
    v
}

async fn run_probe(pc: &ProbeCfg, name: &str, expected: &str) -> ProbeResult {
    // What we keep sending after the violation: small valid binary frames.
    let junk = masked_frame(OpCode::Binary, &[0x5a; 100]);
    let (first, junk) = match name {
        "oversize" => {
            // A header announcing max_payload + 1 bytes, then the payload bytes streamed.
            let mut hdr = [0u8; 14];
            let n = encode::write_header(
                &mut hdr,
                true,
                OpCode::Binary,
                Some(crate::rng::mask_key()),
                pc.max_payload + 1,
            );
            let mut first = hdr[..n].to_vec();
            first.extend_from_slice(&[0u8; 1024]);
            (first, vec![0u8; 4096])
        }
        "utf8" => (
            masked_frame(OpCode::Text, &[b'o', b'k', 0xC3, 0x28, 0xFF]),
            junk,
        ),
        "rsv" => {
            let mut f = masked_frame(OpCode::Binary, b"rsv1 set");
            f[0] |= 0x40;
            (f, junk)
        }
        "unmasked" => {
            let payload = b"not masked";
            let mut hdr = [0u8; 14];
            let n = encode::write_header(&mut hdr, true, OpCode::Binary, None, payload.len());
            let mut f = hdr[..n].to_vec();
            f.extend_from_slice(payload);
            (f, junk)
        }
        "slow" => return slow_probe(pc, expected).await,
        _ => return failed(name, expected, "unknown probe".into()),
    };
    let up = match connect_ws(&pc.target, None, &pc.probe_path, 65536, pc.connect_timeout).await {
        Ok(u) => u,
        Err(e) => return failed(name, expected, format!("connect failed: {}", e.key())),
    };
    let (rd, wr) = up.stream.into_split();
    let recv = ConnRecv::new(pc.max_message, 0, 1, 0);
    let obs = observe(rd, wr, up.buf, first, junk, false, recv, None, pc).await;
    evaluate(name, expected, &obs, pc, None)
}

/// Reader-side findings: code, reason, read error, protocol error, data after close.
#[derive(Default)]
struct ObsInfo(
    Option<u16>,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

/// What a probe saw.
struct Obs {
    start_ns: u64,
    code: Option<u16>,
    reason: Option<String>,
    close_frame_ns: Option<u64>,
    fin_ns: Option<u64>,
    read_error: Option<String>,
    protocol_error: Option<String>,
    write_fail_ns: Option<u64>,
    sent_after_close: u64,
    data_after_close: bool,
    stats: RecvStats,
}

/// Run the reader and the writer of a probe connection until the server has closed it
/// (or the deadlines pass). The writer sends `first`, then `junk` every 10 ms (only after
/// the close frame when `junk_after_close`). `idle` ends the read when nothing arrives
/// for that long before any close frame (slow consumer with a drop policy).
#[allow(clippy::too_many_arguments)]
async fn observe<R: AsyncReadRent, W: monoio::io::AsyncWriteRent>(
    mut rd: R,
    mut wr: W,
    mut buf: Vec<u8>,
    first: Vec<u8>,
    junk: Vec<u8>,
    junk_after_close: bool,
    mut recv: ConnRecv,
    idle: Option<Duration>,
    pc: &ProbeCfg,
) -> Obs {
    let start = now_ns();
    let sct = pc.server_close_timeout.as_nanos() as u64;
    let close_frame: Cell<Option<u64>> = Cell::new(None);
    let fin: Cell<Option<u64>> = Cell::new(None);
    let reader_done = Cell::new(false);
    let write_fail: Cell<Option<u64>> = Cell::new(None);
    let sent_after = Cell::new(0u64);
    let info: RefCell<ObsInfo> = RefCell::new(ObsInfo::default());
    let mut stats = RecvStats::new(1);
    stats.window = (0, u64::MAX);

    let reader = async {
        if buf.capacity() < 65536 {
            buf.reserve(65536 - buf.len());
        }
        let mut n = buf.len();
        let mut ctrl = Vec::new();
        let mut deadline = start + sct + 5_000_000_000;
        loop {
            if n > 0 {
                if close_frame.get().is_none() {
                    match recv.on_read(&mut buf[..n], now_ns(), &mut stats, &mut ctrl) {
                        Ok(ReadOutcome::Continue) => {}
                        Ok(ReadOutcome::Close { code, reason }) => {
                            let now = now_ns();
                            close_frame.set(Some(now));
                            deadline = now + sct + 2_000_000_000;
                            let mut i = info.borrow_mut();
                            i.0 = Some(code.unwrap_or(1005));
                            i.1 = Some(reason);
                        }
                        Err(pe) => {
                            info.borrow_mut().3 = Some(pe.to_string());
                            break;
                        }
                    }
                } else {
                    info.borrow_mut().4 = true;
                }
            }
            buf.clear();
            let now = now_ns();
            if now >= deadline {
                break;
            }
            let mut wait = Duration::from_nanos(deadline - now);
            if let (Some(i), None) = (idle, close_frame.get()) {
                wait = wait.min(i);
            }
            match monoio::time::timeout(wait, rd.read(buf)).await {
                Err(_) => break,
                Ok((res, b)) => {
                    buf = b;
                    match res {
                        Ok(0) => {
                            fin.set(Some(now_ns()));
                            break;
                        }
                        Ok(k) => n = k,
                        Err(e) => {
                            info.borrow_mut().2 = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
        }
        reader_done.set(true);
    };
    let writer = async {
        if !first.is_empty() {
            let (res, _) = wr.write_all(first).await;
            if res.is_err() {
                write_fail.set(Some(now_ns()));
                return;
            }
        }
        loop {
            let now = now_ns();
            match (reader_done.get(), fin.get()) {
                (true, None) => return,
                (_, Some(f)) if now > f + sct + 2_000_000_000 => return,
                _ => {}
            }
            if now > start + 2 * sct + 10_000_000_000 {
                return;
            }
            monoio::time::sleep(Duration::from_millis(10)).await;
            if junk_after_close && close_frame.get().is_none() {
                continue;
            }
            let (res, _) = wr.write_all(junk.clone()).await;
            if res.is_err() {
                write_fail.set(Some(now_ns()));
                return;
            }
            if close_frame.get().is_some() {
                sent_after.set(sent_after.get() + junk.len() as u64);
            }
        }
    };
    monoio::join!(reader, writer);
    let i = info.into_inner();
    Obs {
        start_ns: start,
        code: i.0,
        reason: i.1,
        close_frame_ns: close_frame.get(),
        fin_ns: fin.get(),
        read_error: i.2,
        protocol_error: i.3,
        write_fail_ns: write_fail.get(),
        sent_after_close: sent_after.get(),
        data_after_close: i.4,
        stats,
    }
}

fn evaluate(name: &str, expected: &str, o: &Obs, pc: &ProbeCfg, drops: Option<u64>) -> ProbeResult {
    let ms = |t: u64, from: u64| t.saturating_sub(from) as f64 / 1e6;
    let close_ms = o.close_frame_ns.map(|c| ms(c, o.start_ns));
    let fin_after_close = matches!((o.close_frame_ns, o.fin_ns), (Some(c), Some(f)) if f >= c);
    let closed_ms = match (o.close_frame_ns, o.write_fail_ns) {
        (Some(c), Some(w)) => Some(ms(w, c)),
        _ => None,
    };
    let limit_ms = pc.server_close_timeout.as_secs_f64() * 1e3 + 1000.0;
    let mut problems = Vec::new();
    let pass = if expected == "drop" {
        if let Some(c) = o.code {
            problems.push(format!("closed with {c} instead of dropping"));
        }
        if drops.unwrap_or(0) == 0 {
            problems.push("no message was dropped".into());
        }
        problems.is_empty()
    } else {
        let want: Option<u16> = expected.parse().ok();
        if o.code != want {
            problems.push(match o.code {
                Some(c) => format!("close code {c}"),
                None => "no close frame".into(),
            });
        }
        if o.code.is_some() && !fin_after_close {
            problems.push(match &o.read_error {
                Some(e) => format!("no FIN after the close frame ({e})"),
                None => "no FIN after the close frame".into(),
            });
        }
        if o.code.is_some() {
            match closed_ms {
                Some(ms) if ms <= limit_ms => {}
                Some(ms) => problems.push(format!(
                    "socket closed {ms:.0}ms after the close frame (limit {limit_ms:.0}ms)"
                )),
                None => problems.push(format!(
                    "socket still open {limit_ms:.0}ms after the close frame"
                )),
            }
        }
        if o.data_after_close {
            problems.push("data after the close frame".into());
        }
        problems.is_empty()
    };
    let mut detail = match (close_ms, o.fin_ns, closed_ms) {
        (Some(c), Some(f), Some(s)) => format!(
            "close frame +{c:.1}ms, FIN +{:.1}ms, closed +{s:.0}ms after it; {} B sent after close",
            ms(f, o.start_ns),
            o.sent_after_close
        ),
        (Some(c), _, _) => format!("close frame +{c:.1}ms"),
        _ => String::new(),
    };
    if let Some(pe) = &o.protocol_error {
        problems.push(format!("server sent a bad frame: {pe}"));
    }
    if !problems.is_empty() {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&problems.join("; "));
    }
    ProbeResult {
        name: name.into(),
        expected: expected.into(),
        observed_code: o.code,
        observed_reason: o.reason.clone(),
        close_frame_ms: close_ms,
        fin_after_close,
        sent_after_close_bytes: o.sent_after_close,
        socket_closed_ms: closed_ms,
        drops,
        pass: pass && o.protocol_error.is_none(),
        detail,
    }
}

/// Slow consumer: a subscriber with a tiny receive buffer stops reading while a publisher
/// floods its topic with several times `--max-buffered`; then it reads everything.
async fn slow_probe(pc: &ProbeCfg, expected: &str) -> ProbeResult {
    let name = "slow";
    let sub = match connect_ws_opts(
        &pc.target,
        None,
        &pc.slow_sub_path,
        65536,
        pc.connect_timeout,
        Some(4096),
        crate::net::Offers::default(),
    )
    .await
    {
        Ok(u) => u,
        Err(e) => {
            return failed(
                name,
                expected,
                format!("subscriber connect failed: {}", e.key()),
            );
        }
    };
    let publ = match connect_ws(
        &pc.target,
        None,
        &pc.slow_pub_path,
        4096,
        pc.connect_timeout,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => {
            return failed(
                name,
                expected,
                format!("publisher connect failed: {}", e.key()),
            );
        }
    };
    monoio::time::sleep(Duration::from_millis(50)).await;
    let size = (pc.max_payload / 2).clamp(HEADER_LEN, 64 * 1024);
    let target_bytes = (pc.max_buffered as u64) * 4 + (32 << 20);
    let mut payload = vec![b's'; size];
    let mut wstream = publ.stream;
    let flood_end = now_ns() + pc.slow_wait.as_nanos() as u64;
    let mut sent_bytes = 0u64;
    let mut seq = 0u64;
    let mut batch = Vec::with_capacity(17 * (size + 14));
    while sent_bytes < target_bytes {
        let now = now_ns();
        if now >= flood_end {
            break;
        }
        batch.clear();
        for _ in 0..16 {
            write_header(
                &mut payload,
                &MsgHeader {
                    publisher: 0,
                    seq,
                    sched_ns: now,
                },
            );
            seq += 1;
            encode::encode_client_frame(
                &mut batch,
                true,
                OpCode::Binary,
                &payload,
                crate::rng::mask_key(),
            );
        }
        let len = batch.len() as u64;
        match monoio::time::timeout(
            Duration::from_nanos(flood_end - now),
            wstream.write_all(std::mem::take(&mut batch)),
        )
        .await
        {
            Ok((Ok(_), b)) => {
                batch = b;
                sent_bytes += len;
            }
            Ok((Err(e), _)) => {
                return failed(name, expected, format!("publisher write failed: {e}"));
            }
            Err(_) => break,
        }
    }
    let sent_msgs = seq;
    let (rd, wr) = sub.stream.into_split();
    let recv = ConnRecv::new(pc.max_message, 0, 1, 1);
    let junk = masked_frame(OpCode::Binary, &[0x5a; 100]);
    let obs = observe(
        rd,
        wr,
        sub.buf,
        Vec::new(),
        junk,
        true,
        recv,
        Some(Duration::from_millis(1000)),
        pc,
    )
    .await;
    drop(wstream);
    let delivered = obs.stats.pubs.first().map(|p| p.delivered).unwrap_or(0);
    let drops = sent_msgs.saturating_sub(delivered);
    let mut r = evaluate(name, expected, &obs, pc, Some(drops));
    r.detail = format!(
        "flooded {} MiB ({} msgs of {} B), received {}; {}",
        sent_bytes >> 20,
        sent_msgs,
        size,
        delivered,
        r.detail
    );
    r
}
