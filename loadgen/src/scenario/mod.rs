//! Scenarios and what they share: the resolved context, the fan-out load run (connect,
//! publish on schedule, measure, drain, close), the checks and the outputs.

pub mod capacity;
pub mod churn;
pub mod close;
pub mod connect;
pub mod criteria;
pub mod fanout;
pub mod shutdown;

use std::io::IsTerminal;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::accounting::Via;
use crate::accounting::{self, PubAccount};
use crate::cli::{Common, Load};
use crate::clock::now_ns;
use crate::engine::{Backoff, ConnKind, ConnSpec, Engine, EngineCfg, ThreadResult};
use crate::net::{Target, parse_url};
use crate::payload::Schedule;
use crate::report::{
    CloseSection, ConnectSection, CpuSection, DeflateSection, DeliverySection, IoSection,
    LatencySummary, LatencyTimelineSection, PublisherDelivery, ReceivedWire, ReconnectSection,
    Report, SentWire, ServerCpu, TimelineSection, WireFigures,
};
use crate::sys;

/// Why a run could not be carried out (exit 3).
#[derive(Debug)]
pub struct RunError(pub String);

impl<E: std::fmt::Display> From<E> for RunError {
    fn from(e: E) -> Self {
        RunError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, RunError>;

/// The resolved common flags.
pub struct Ctx {
    pub c: Common,
    /// The first `--url` (what the `close` probes use).
    pub target: Target,
    /// Every `--url`.
    pub targets: Vec<Target>,
    pub threads: usize,
    pub sources: Vec<IpAddr>,
    pub progress: bool,
}

impl Ctx {
    pub fn new(c: &Common) -> Result<Ctx> {
        let mut targets = Vec::new();
        let mut tls = None;
        for url in &c.url {
            let mut t = parse_url(url).map_err(RunError)?;
            if t.tls {
                if tls.is_none() {
                    tls = Some(
                        crate::tls::client_config(c.insecure, c.ca_file.as_deref())
                            .map_err(RunError)?,
                    );
                }
                t.tls_config = tls.clone();
            }
            targets.push(t);
        }
        let Some(target) = targets.first().cloned() else {
            return Err(RunError("--url: at least one URL is needed".into()));
        };
        let threads = c.threads.unwrap_or_else(sys::cores).max(1);
        let progress = match c.progress.as_str() {
            "always" => true,
            "never" => false,
            _ => std::io::stderr().is_terminal(),
        };
        Ok(Ctx {
            c: c.clone(),
            target,
            targets,
            threads,
            sources: c.source_ips.clone().map(|s| s.0).unwrap_or_default(),
            progress,
        })
    }

    pub fn topic(&self, t: u32) -> String {
        format!("{}{t}", self.c.topic_prefix)
    }

    pub fn sub_path_for(&self, topic: &str) -> String {
        fill(&self.c.sub_path, topic)
    }

    /// `n` idle subscribers on one topic of their own (the `connect` and `shutdown`
    /// scenarios' held connections).
    pub fn idle_holds(&self, n: u32) -> Vec<ConnSpec> {
        let path = self.sub_path_for(&format!("{}idle", self.c.topic_prefix));
        (0..n)
            .map(|i| ConnSpec {
                kind: ConnKind::Hold,
                url: i as usize % self.targets.len(),
                path: path.clone(),
                source: None,
                connect_at_ns: None,
            })
            .collect()
    }

    pub fn pub_path_for(&self, topic: &str) -> String {
        fill(&self.c.pub_path, topic)
    }

    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }

    pub fn engine_cfg(&self, load: &Load, total: usize) -> EngineCfg {
        let read_buf = self.c.read_buf.unwrap_or_else(|| {
            let per = (256usize << 20) / total.max(1);
            per.clamp(4096, 65536).next_power_of_two().min(65536)
        });
        EngineCfg {
            targets: self.targets.clone(),
            threads: self.threads,
            read_buf,
            max_message: self.c.max_message,
            connect_timeout: self.c.connect_timeout.0,
            close_timeout: self.c.close_timeout.0,
            size: load.msg_size(),
            topics: load.topics.max(1),
            publishers: load.publishers,
            pub_rate: if load.publishers > 0 {
                load.rate / load.publishers as f64
            } else {
                0.0
            },
            connect_concurrency: (self.c.connect_concurrency / self.threads).max(1),
            text: load.text,
            ring_recv: self.c.recv == "ring",
            busy_poll: self.c.busy_poll.0,
            v1: load.v1(),
            topic_prefix: self.c.topic_prefix.clone(),
            reconnect: load.reconnect,
            backoff: Backoff {
                min: load.backoff_min.0,
                max: load.backoff_max.0.max(load.backoff_min.0),
            },
            via: if load.publish_via == "post" {
                Via::Post
            } else {
                Via::Ws
            },
            payload: load.payload,
            deflate: load.deflate_offer(),
            deflate_subscribers: load.deflate_subscribers(),
        }
    }

    pub fn report(&self, scenario: &str, config: serde_json::Value) -> Report {
        let mut r = Report::new(scenario, &self.c.url.join(","), self.threads, config);
        r.targets = self.c.url.clone();
        r
    }
}

/// Substitute the topic into a path template.
pub fn fill(template: &str, topic: &str) -> String {
    if template.contains("{topics}") {
        template.replace("{topics}", topic)
    } else if template.contains("{topic}") {
        template.replace("{topic}", topic)
    } else {
        format!("{template}{topic}")
    }
}

/// A progress bar on stderr when enabled (indicatif), else nothing.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Progress(None);
        }
        let pb = indicatif::ProgressBar::new(0);
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg:<32} [{bar:30}] {pos}/{len} {elapsed}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        Progress(Some(pb))
    }
    pub fn phase(&self, msg: &str, len: u64) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg.to_string());
            pb.set_length(len);
            pb.set_position(0);
        }
    }
    pub fn set(&self, pos: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(pos);
        }
    }
    pub fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

/// Sleep in small steps until `cond` or the deadline (ns since epoch); true if `cond`.
pub fn wait_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        let now = now_ns();
        if now >= deadline_ns {
            return false;
        }
        std::thread::sleep(Duration::from_nanos((deadline_ns - now).min(2_000_000)));
    }
}

/// Kill the process if the run exceeds its bound (a scenario must stop by itself).
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!(
            "loadgen: run exceeded its time bound ({:?}, --timeout); giving up",
            limit
        );
        std::process::exit(3);
    });
}

/// A fan-out load (subscribers + publishers + extra connections) through its phases.
pub struct LoadRun<'a> {
    pub ctx: &'a Ctx,
    pub load: Load,
    pub engine: Engine,
    pub progress: Progress,
    pub attempt_start_ns: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub window: (u64, u64),
    cpu0: Option<(Duration, Option<sys::ProcSample>)>,
    pub cpu: Option<CpuSection>,
    server_rss: u64,
}

/// Everything a load run measured.
pub struct LoadOutcome {
    pub result: ThreadResult,
    pub connect: ConnectSection,
    pub delivery: Option<DeliverySection>,
    pub latency: LatencySummary,
    pub io: IoSection,
    pub cpu: Option<CpuSection>,
    pub close: CloseSection,
    pub reconnect: ReconnectSection,
    pub timeline: TimelineSection,
    pub deflate: Option<DeflateSection>,
    pub latency_timeline: LatencyTimelineSection,
}

impl LoadOutcome {
    pub fn hist(&self) -> &Histogram<u64> {
        &self.result.recv.hist
    }

    /// Fill the report's common sections.
    pub fn fill(&self, r: &mut Report) {
        r.connect = Some(self.connect.clone());
        if self.delivery.is_some() {
            r.latency_us = Some(self.latency.clone());
            r.delivery = self.delivery.clone();
            r.io = Some(self.io.clone());
        }
        r.cpu = self.cpu.clone();
        r.close = Some(self.close.clone());
        r.timeline = Some(self.timeline.clone());
        let rc = &self.reconnect;
        if rc.enabled || rc.protocol != "raw" || rc.reconnects > 0 {
            r.reconnect = Some(rc.clone());
        }
        r.deflate = self.deflate.clone();
        if self.delivery.is_some() {
            r.latency_timeline = Some(self.latency_timeline.clone());
        }
    }
}

impl<'a> LoadRun<'a> {
    /// Start connecting `load` (S subscribers, P publishers) plus `extra`.
    pub fn spawn(ctx: &'a Ctx, load: &Load, extra: Vec<ConnSpec>) -> Result<LoadRun<'a>> {
        let mut specs = Vec::new();
        let urls = ctx.targets.len();
        for i in 0..load.subscribers {
            let topic = i % load.topics.max(1);
            specs.push(ConnSpec {
                kind: ConnKind::Sub { topic, id: i },
                url: i as usize % urls,
                path: ctx.sub_path_for(&ctx.topic(topic)),
                source: None,
                connect_at_ns: None,
            });
        }
        for p in 0..load.publishers {
            let topic = p % load.topics.max(1);
            specs.push(ConnSpec {
                kind: ConnKind::Pub { id: p },
                url: p as usize % urls,
                path: ctx.pub_path_for(&ctx.topic(topic)),
                source: None,
                connect_at_ns: None,
            });
        }
        specs.extend(extra);
        Self::spawn_specs(ctx, load, specs, load.connect_rate)
    }

    pub fn spawn_specs(
        ctx: &'a Ctx,
        load: &Load,
        mut specs: Vec<ConnSpec>,
        connect_rate: Option<f64>,
    ) -> Result<LoadRun<'a>> {
        sys::check_fd_budget(specs.len(), ctx.sources.len()).map_err(RunError)?;
        let base = now_ns() + 5_000_000;
        for (i, s) in specs.iter_mut().enumerate() {
            if s.source.is_none() {
                s.source = ctx.source(i);
            }
            if let Some(r) = connect_rate.filter(|r| *r > 0.0) {
                s.connect_at_ns = Some(base + (i as f64 * 1e9 / r) as u64);
            }
        }
        let cfg = ctx.engine_cfg(load, specs.len());
        let total = specs.len() as u64;
        let engine = Engine::start(cfg, specs)?;
        let progress = Progress::new(ctx.progress);
        progress.phase("connecting", total);
        Ok(LoadRun {
            ctx,
            load: load.clone(),
            engine,
            progress,
            attempt_start_ns: now_ns(),
            start_ns: 0,
            end_ns: 0,
            window: (0, 0),
            cpu0: None,
            cpu: None,
            server_rss: 0,
        })
    }

    /// Wait until every connection is established or failed (or the deadline).
    pub fn wait_connected(&self, deadline_ns: u64) -> bool {
        let run = self.engine.run.clone();
        wait_until(deadline_ns, || {
            let n = run.connected.load(Ordering::Acquire) + run.failed.load(Ordering::Acquire);
            self.progress.set(n as u64);
            self.engine.all_attempted()
        })
    }

    /// A connect deadline generous enough for the pacing and the connect timeout.
    pub fn connect_deadline(&self, connect_rate: Option<f64>) -> u64 {
        let paced = connect_rate
            .filter(|r| *r > 0.0)
            .map(|r| self.engine.total as f64 / r)
            .unwrap_or(0.0);
        now_ns()
            + Duration::from_secs_f64(paced).as_nanos() as u64
            + self.ctx.c.connect_timeout.0.as_nanos() as u64 * 2
            + 2_000_000_000
    }

    /// Start publishing now: warmup, then the measurement window of `duration`.
    pub fn begin(&mut self, warmup: Duration, duration: Duration) {
        let start = now_ns() + 20_000_000;
        let ws = start + warmup.as_nanos() as u64;
        let we = ws + duration.as_nanos() as u64;
        self.start_ns = start;
        self.end_ns = we;
        self.window = (ws, we);
        self.engine.run.begin(start, we, ws, we);
    }

    /// Sleep through the window, sampling CPU at both ends.
    pub fn measure(&mut self) {
        let (ws, we) = self.window;
        self.progress.phase("warmup", 1);
        wait_until(ws, || false);
        self.sample_start();
        let len = (we - ws) / 1_000_000;
        self.progress.phase("measuring (ms)", len);
        wait_until(we, || {
            self.progress.set(now_ns().saturating_sub(ws) / 1_000_000);
            false
        });
        self.sample_end(None);
    }

    pub fn sample_start(&mut self) {
        self.cpu0 = Some((
            sys::self_cpu(),
            self.ctx.c.server_pid.and_then(|p| sys::sample(Some(p))),
        ));
    }

    /// CPU over [sample_start, now]; `delivered` defaults to the window's deliveries.
    pub fn sample_end(&mut self, wall: Option<Duration>) {
        let Some((c0, s0)) = self.cpu0 else { return };
        let wall = wall.unwrap_or(Duration::from_nanos(self.window.1 - self.window.0));
        let c1 = sys::self_cpu();
        let s1 = self.ctx.c.server_pid.and_then(|p| sys::sample(Some(p)));
        let own = c1.saturating_sub(c0).as_secs_f64();
        let threads = self.ctx.threads.min(sys::cores()).max(1);
        let util = own / (threads as f64 * wall.as_secs_f64()).max(1e-9);
        let server = match (self.ctx.c.server_pid, s0, s1) {
            (Some(pid), Some(a), Some(b)) => {
                // A process that has exited meanwhile reports no RSS any more.
                self.server_rss = b
                    .rss_bytes
                    .max(if b.rss_bytes == 0 { a.rss_bytes } else { 0 });
                let cpu = b.cpu.saturating_sub(a.cpu).as_secs_f64();
                Some(ServerCpu {
                    pid,
                    cpu_s: cpu,
                    utilization: cpu / wall.as_secs_f64().max(1e-9),
                    ns_per_delivery: None,
                    rss_bytes: self.server_rss,
                })
            }
            _ => None,
        };
        self.cpu = Some(CpuSection {
            wall_s: wall.as_secs_f64(),
            loadgen_cpu_s: own,
            loadgen_threads: threads,
            loadgen_utilization: util,
            loadgen_ns_per_delivery: None,
            loadgen_saturated: util >= 0.85,
            server,
        });
    }

    fn schedules(&self) -> Vec<Schedule> {
        let p = self.load.publishers.max(1);
        let rate = self.load.rate / p as f64;
        (0..self.load.publishers)
            .map(|id| {
                let interval = 1e9 / rate.max(1e-9);
                let off = (interval * id as f64 / p as f64) as u64;
                Schedule::new(self.start_ns + off, rate, self.end_ns)
            })
            .collect()
    }

    /// Deliveries the window should produce if every planned connection is up.
    pub fn planned_expected(&self) -> u64 {
        let t = self.load.topics.max(1);
        let subs_on = |topic: u32| -> u64 {
            (0..self.load.subscribers)
                .filter(|i| i % t == topic)
                .count() as u64
        };
        self.schedules()
            .iter()
            .enumerate()
            .map(|(id, s)| s.count_in(self.window.0, self.window.1) * subs_on(id as u32 % t))
            .sum()
    }

    /// After the window: wait for the deliveries still in flight (at most `drain`).
    pub fn drain(&self, drain: Duration) {
        let want = self.planned_expected();
        let run = self.engine.run.clone();
        self.progress.phase("draining", want);
        wait_until(now_ns() + drain.as_nanos() as u64, || {
            let d = run.delivered.load(Ordering::Relaxed);
            self.progress.set(d);
            d >= want
        });
    }

    /// Close everything (1000), wait for the engine, compute the sections.
    pub fn finish(self) -> Result<LoadOutcome> {
        self.engine.run.stop();
        let total = self.engine.total as u64;
        self.progress.phase("closing", total);
        let run = self.engine.run.clone();
        let bound = now_ns()
            + (self.ctx.c.close_timeout.0 + self.ctx.c.connect_timeout.0).as_nanos() as u64
            + 5_000_000_000;
        wait_until(bound, || {
            self.progress
                .set(run.finished.load(Ordering::Acquire) as u64);
            self.engine.all_finished()
        });
        self.progress.done();
        let attempt_start = self.attempt_start_ns;
        let measured = self.start_ns != 0;
        let window = self.window;
        let load = self.load.clone();
        let windows: Vec<(u64, u64)> = if measured {
            self.schedules()
                .iter()
                .map(|s| s.seq_range(window.0, window.1))
                .collect()
        } else {
            Vec::new()
        };
        let mut cpu = self.cpu.clone();
        let t0 = run.t0_ns.load(Ordering::Relaxed);
        let result = self.engine.join()?;

        // Connection phase: the first connection of every task.
        let established = result.established;
        let failed: u64 = result.connect_failures.values().sum();
        let last_est = result
            .closes
            .iter()
            .filter(|c| !c.reconnect)
            .map(|c| c.established_ns)
            .max()
            .unwrap_or(attempt_start);
        let connect = ConnectSection {
            attempted: established + failed,
            established,
            failed,
            failures: result.connect_failures.clone(),
            latency_us: LatencySummary::from_hist(&result.connect_us),
            rate_per_s: (established > 0 && last_est > attempt_start)
                .then(|| established as f64 / ((last_est - attempt_start) as f64 / 1e9)),
        };

        let window_s = (window.1 - window.0) as f64 / 1e9;
        let delivery =
            (measured && load.publishers > 0).then(|| delivery(&load, &result, &windows, window_s));
        let wire = WireFigures::of(&result.recv.wire.total());
        let io = IoSection {
            reads: result.recv.reads,
            frames: result.recv.frames,
            frames_per_read: result.recv.frames as f64 / result.recv.reads.max(1) as f64,
            max_frames_per_read: result.recv.max_frames_per_read,
            bytes_in: result.recv.bytes,
            pings: result.recv.pings,
            data_messages: wire.messages,
            wire_bytes_per_delivery: wire.wire_bytes_per_delivery,
            payload_bytes_per_delivery: wire.payload_bytes_per_delivery,
        };
        let deflate = load.deflate_offer().map(|offer| {
            let (mut sent, mut compressed, mut payload_bytes, mut wire_bytes) = (0, 0, 0, 0);
            for p in result.pubs.iter().filter(|p| p.via == Via::Ws) {
                sent += p.sent;
                compressed += p.compressed;
                payload_bytes += p.payload_bytes;
                wire_bytes += p.wire_bytes;
            }
            DeflateSection {
                offer: offer.header_value(),
                payload: load.payload.label(),
                subscribers: result.deflate_subs.clone(),
                publishers: result.deflate_pubs.clone(),
                received: ReceivedWire {
                    plain: WireFigures::of(&result.recv.wire.plain),
                    deflate: WireFigures::of(&result.recv.wire.deflate),
                },
                sent: SentWire {
                    messages: sent,
                    compressed,
                    payload_bytes,
                    wire_bytes,
                    wire_bytes_per_message: (sent > 0).then(|| wire_bytes as f64 / sent as f64),
                    wire_over_payload: (payload_bytes > 0)
                        .then(|| wire_bytes as f64 / payload_bytes as f64),
                },
            }
        });
        let latency_timeline = LatencyTimelineSection::of(
            &result.recv.timeline,
            run.t0_unix_ms.load(Ordering::Relaxed),
        );
        if let (Some(c), Some(d)) = (cpu.as_mut(), delivery.as_ref())
            && d.delivered > 0
        {
            c.loadgen_ns_per_delivery = Some(c.loadgen_cpu_s * 1e9 / d.delivered as f64);
            if let Some(s) = c.server.as_mut() {
                s.ns_per_delivery = Some(s.cpu_s * 1e9 / d.delivered as f64);
            }
        }
        let close = CloseSection::from_records(&result.closes);
        let latency = LatencySummary::from_hist(&result.recv.hist);
        let rs = &result.reconnect;
        let reconnect = ReconnectSection {
            protocol: load.protocol.clone(),
            enabled: load.reconnect,
            backoff_min_s: load.backoff_min.0.as_secs_f64(),
            backoff_max_s: load.backoff_max.0.as_secs_f64(),
            reconnects: rs.reconnects,
            after_close: rs.after_close.clone(),
            failed_attempts: rs.failed_attempts.clone(),
            resumed_with_since: rs.resumed_with_since,
            reconnect_us: LatencySummary::from_hist(&rs.reconnect_us),
            resume_us: LatencySummary::from_hist(&rs.resume_us),
            events: result.recv.v1,
        };
        let ms = |ns: u64| (ns != 0).then(|| ns.saturating_sub(t0) as f64 / 1e6);
        let timeline = TimelineSection {
            bucket_ms: crate::engine::TIMELINE_BUCKET_NS / 1_000_000,
            window_start_ms: ms(window.0),
            window_end_ms: ms(window.1),
            connects: result.timeline.connects.clone(),
            closes: result.timeline.closes.clone(),
        };
        Ok(LoadOutcome {
            result,
            connect,
            delivery,
            latency,
            io,
            cpu,
            close,
            reconnect,
            timeline,
            deflate,
            latency_timeline,
        })
    }
}

/// The delivery section: every publisher's account against every subscriber's ledger
/// (see [`crate::accounting`] for what counts as published, lost and announced).
fn delivery(
    load: &Load,
    result: &ThreadResult,
    windows: &[(u64, u64)],
    window_s: f64,
) -> DeliverySection {
    let t = load.topics.max(1);
    let mut pubs = result.pubs.clone();
    pubs.sort_by_key(|p| p.id);
    let accounts: Vec<PubAccount> = pubs
        .iter()
        .map(|p| PubAccount {
            id: p.id,
            topic: p.id % t,
            via: p.via,
            handed_out: p.handed_out,
            window: windows.get(p.id as usize).copied().unwrap_or((0, 0)),
            segments: p.segments.clone(),
            acked: p.acked.clone(),
            refused: p.refused.clone(),
        })
        .collect();
    let holes = &result.recv.holes;
    let tally = accounting::tally(&accounts, &result.subs, &holes.holes, holes.unrecorded, t);
    let exact = pubs.iter().all(|p| p.via == Via::Post);
    let mut tot = DeliverySection {
        window_s,
        publishers: pubs.len() as u64,
        subscribers: result.subs_by_topic.values().sum(),
        topics: t,
        rate: load.rate,
        size: load.msg_size(),
        foreign: result.recv.foreign,
        accounting: if exact { "exact" } else { "inferred" },
        lost_unrecorded: tally.unrecorded_lost,
        subscriber_mean_latency_us: crate::report::SubscriberLatency::from_means(
            result
                .subs
                .iter()
                .filter_map(|s| s.mean_latency_us)
                .collect(),
        ),
        ..Default::default()
    };
    for (p, a) in pubs.iter().zip(&tally.per_publisher) {
        let c = result
            .recv
            .pubs
            .get(p.id as usize)
            .copied()
            .unwrap_or_default();
        let d = PublisherDelivery {
            id: p.id,
            topic: p.id % t,
            via: p.via.label(),
            connections: p.connections,
            sent: p.sent,
            sent_in_window: p.sent_in_window,
            published: a.published,
            unconfirmed: a.unconfirmed,
            refused: a.refused,
            expected: a.expected,
            delivered: a.delivered,
            lost: a.lost,
            announced: a.announced_gap + a.announced_reset,
            duplicates: c.duplicates,
            reordered: c.reordered,
            replayed: c.replayed,
            unsent: p.unsent,
            acked: p.acked.len(),
            acked_with_position: p.positions,
            unanswered: p.unanswered,
            refused_by_status: p
                .refused_by_status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        };
        tot.sent_in_window += d.sent_in_window;
        tot.published += d.published;
        tot.unconfirmed += d.unconfirmed;
        tot.refused += d.refused;
        tot.expected += d.expected;
        tot.delivered += d.delivered;
        tot.lost += d.lost;
        tot.announced += d.announced;
        tot.announced_gap += a.announced_gap;
        tot.announced_reset += a.announced_reset;
        tot.duplicates += d.duplicates;
        tot.reordered += d.reordered;
        tot.replayed += d.replayed;
        tot.unsent += d.unsent;
        tot.per_publisher.push(d);
    }
    tot.lost += tally.unrecorded_lost;
    tot.loss_ratio = if tot.expected > 0 {
        tot.lost as f64 / tot.expected as f64
    } else {
        0.0
    };
    tot.deliveries_per_s = tot.delivered as f64 / window_s.max(1e-9);
    tot
}

/// Print the summary, write the files; the exit code (0 pass, 1 a check failed).
pub fn emit(r: &Report, hist: Option<&Histogram<u64>>, c: &Common) -> i32 {
    emit_runs(r, hist, &hist.into_iter().collect::<Vec<_>>(), c)
}

/// [`emit`] for several runs: `hist` (all runs together) goes to `--hgrm`, `runs` are
/// plotted one curve each.
pub fn emit_runs(
    r: &Report,
    hist: Option<&Histogram<u64>>,
    runs: &[&Histogram<u64>],
    c: &Common,
) -> i32 {
    print!("{}", r.human());
    let mut code = if r.passed { 0 } else { 1 };
    if let Some(p) = &c.json
        && let Err(e) = r.write_json(p)
    {
        eprintln!("loadgen: --json {}: {e}", p.display());
        code = 3;
    }
    if let (Some(p), Some(h)) = (&c.hgrm, hist)
        && let Err(e) = std::fs::write(p, crate::report::hgrm(h))
    {
        eprintln!("loadgen: --hgrm {}: {e}", p.display());
        code = 3;
    }
    if let Some(p) = &c.plot {
        let title = format!("{} — {}", r.scenario, r.target);
        let res = match (&r.capacity, runs) {
            (Some(cap), _) => crate::report::plot_capacity(cap, &title, p),
            (None, _) if !runs.is_empty() => {
                // A run with reconnects also shows them over time.
                let storm = r
                    .reconnect
                    .as_ref()
                    .is_some_and(|rc| rc.enabled || rc.reconnects > 0);
                let tl = r.timeline.as_ref().filter(|_| storm);
                crate::report::plot_run(runs, tl, &title, p)
            }
            (None, _) => Err("no latency to plot in this scenario".into()),
        };
        if let Err(e) = res {
            eprintln!("loadgen: --plot {}: {e}", p.display());
        }
    }
    code
}
