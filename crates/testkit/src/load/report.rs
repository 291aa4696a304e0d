//! What a run measured, and the tables that show it.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stdio::nanos;
use super::{Options, Schedule};

/// The highest latency the histograms hold (an hour, in nanoseconds); higher values are clamped.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// A histogram of nanoseconds with three significant digits (0.1% resolution).
#[expect(
    clippy::expect_used,
    reason = "constant bounds that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low, sigfig <= 5)"
)]
pub(super) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Highest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of a histogram of nanoseconds; `None` when it is empty.
    pub(super) fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| round1(ns as f64 / 1_000.0);
        Some(Percentiles {
            p50: us(histogram.value_at_quantile(0.50)),
            p90: us(histogram.value_at_quantile(0.90)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
            mean: round1(histogram.mean() / 1_000.0),
        })
    }
}

fn stdio() -> String {
    "stdio".to_owned()
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The outcome of one run (`--json` prints this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run's name.
    pub label: String,
    /// `stdio` or `http` (reports written before HTTP existed read as `stdio`).
    #[serde(default = "stdio")]
    pub transport: String,
    /// `closed` or `open`.
    pub schedule: String,
    /// Calls in flight (closed loop).
    pub concurrency: Option<u32>,
    /// Calls per second asked for (open loop).
    pub rate: Option<f64>,
    /// Calls asked for, warm-up included.
    pub calls: u64,
    /// Calls not measured at the start.
    pub warmup: u64,
    /// Measured calls sent.
    pub sent: u64,
    /// Measured calls answered with a result that is not a tool error.
    pub ok: u64,
    /// Measured calls answered with a JSON-RPC error or `isError: true` (not in the latencies).
    pub errors: u64,
    /// Calls sent (warm-up included) and never answered.
    pub lost: u64,
    /// Lines from the server that answer none of our calls.
    pub unexpected: u64,
    /// Sending stopped at the time limit before all calls were sent.
    pub time_limited: bool,
    /// The server was killed because calls were still unanswered after the drain grace.
    pub killed: bool,
    /// From the first measured call's (scheduled) send to the last answer, in seconds.
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub throughput: f64,
    /// Latency of the measured successful calls: from send (closed loop) or scheduled send
    /// (open loop) to the answer being read.
    pub latency_us: Option<Percentiles>,
    /// Open loop: how late the driver wrote each call after its scheduled time (its own
    /// contribution to the latencies above).
    pub send_lag_us: Option<Percentiles>,
}

impl Report {
    pub(super) fn new(options: &Options, tally: Tally, killed: bool) -> Self {
        let (schedule, concurrency, rate) = match options.schedule {
            Schedule::Closed { concurrency } => ("closed", Some(concurrency), None),
            Schedule::Open { rate } => ("open", None, Some(rate)),
        };
        let elapsed = match (tally.first_measured_send, tally.last_answer) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        let elapsed_s = elapsed.as_secs_f64();
        Report {
            label: options.label.clone(),
            transport: if options.url.is_some() {
                "http"
            } else {
                "stdio"
            }
            .to_owned(),
            schedule: schedule.to_owned(),
            concurrency,
            rate,
            calls: options.calls,
            warmup: options.warmup,
            sent: tally.sent.saturating_sub(options.warmup),
            ok: tally.ok,
            errors: tally.errors,
            lost: tally.lost,
            unexpected: tally.unexpected,
            time_limited: tally.time_limited,
            killed,
            elapsed_s: round1(elapsed_s * 1_000.0) / 1_000.0,
            throughput: if elapsed_s > 0.0 {
                round1(tally.ok as f64 / elapsed_s)
            } else {
                0.0
            },
            latency_us: Percentiles::of(&tally.latency),
            send_lag_us: tally.lag.as_ref().and_then(Percentiles::of),
        }
    }

    /// A short name for the load: `c=8` or `2000/s`.
    #[must_use]
    pub fn load(&self) -> String {
        match (self.concurrency, self.rate) {
            (Some(c), _) => format!("c={c}"),
            (None, Some(rate)) => format!("{rate}/s"),
            (None, None) => self.schedule.clone(),
        }
    }

    /// Whether every measured call was sent and answered successfully.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.errors == 0
            && self.lost == 0
            && !self.time_limited
            && !self.killed
            && self.ok == self.sent
    }
}

/// What the loops count while they run.
pub(super) struct Tally {
    warmup: u64,
    pub(super) latency: Histogram<u64>,
    pub(super) lag: Option<Histogram<u64>>,
    pub(super) first_measured_send: Option<Instant>,
    last_answer: Option<Instant>,
    ok: u64,
    errors: u64,
    pub(super) unexpected: u64,
    sent: u64,
    lost: u64,
    pub(super) time_limited: bool,
}

impl Tally {
    pub(super) fn new(warmup: u64) -> Self {
        Tally {
            warmup,
            latency: histogram(),
            lag: None,
            first_measured_send: None,
            last_answer: None,
            ok: 0,
            errors: 0,
            unexpected: 0,
            sent: 0,
            lost: 0,
            time_limited: false,
        }
    }

    /// Call `id` was written at `now`.
    pub(super) fn sent(&mut self, id: u64, now: Instant) {
        if id == self.warmup {
            self.first_measured_send = Some(now);
        }
    }

    /// Call `id` was answered at `now`, `latency` after it was (or was due to be) sent.
    pub(super) fn answered(&mut self, id: u64, ok: bool, now: Instant, latency: Duration) {
        if id < self.warmup {
            return;
        }
        self.last_answer = Some(self.last_answer.map_or(now, |last| last.max(now)));
        if ok {
            self.ok += 1;
            self.latency.saturating_record(nanos(latency).max(1));
        } else {
            self.errors += 1;
        }
    }

    /// Adds the counts and histograms of another thread's tally (HTTP connections each keep
    /// their own).
    pub(super) fn merge(&mut self, other: Tally) {
        self.latency.add(&other.latency).ok();
        if let Some(other_lag) = other.lag {
            match &mut self.lag {
                Some(lag) => {
                    lag.add(&other_lag).ok();
                }
                None => self.lag = Some(other_lag),
            }
        }
        self.first_measured_send = self.first_measured_send.or(other.first_measured_send);
        self.last_answer = match (self.last_answer, other.last_answer) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.ok += other.ok;
        self.errors += other.errors;
        self.unexpected += other.unexpected;
        self.sent += other.sent;
        self.lost += other.lost;
        self.time_limited |= other.time_limited;
    }

    /// Calls sent so far (after [`Tally::finish`] or [`Tally::merge`]).
    pub(super) fn sent_count(&self) -> u64 {
        self.sent
    }

    /// Counts `n` more calls as lost.
    pub(super) fn add_lost(&mut self, n: u64) {
        self.lost += n;
    }

    pub(super) fn finish(&mut self, sent: u64, lost: u64, time_limited: bool) {
        self.sent = sent;
        self.lost = lost;
        self.time_limited = time_limited;
    }
}

/// One row per run: counts, throughput and latency percentiles (µs). `markdown` renders a
/// Markdown table, otherwise aligned text.
#[must_use]
pub fn runs_table(reports: &[Report], markdown: bool) -> String {
    let header = [
        "run", "load", "calls", "errors", "lost", "calls/s", "p50", "p90", "p99", "p99.9", "max",
    ];
    let rows = reports
        .iter()
        .map(|r| {
            let p = r.latency_us.as_ref();
            let mut row = vec![
                r.label.clone(),
                r.load(),
                r.ok.to_string(),
                r.errors.to_string(),
                r.lost.to_string(),
                format!("{:.0}", r.throughput),
            ];
            for value in [
                p.map(|p| p.p50),
                p.map(|p| p.p90),
                p.map(|p| p.p99),
                p.map(|p| p.p999),
                p.map(|p| p.max),
            ] {
                row.push(value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")));
            }
            row
        })
        .collect();
    render(&header, rows, markdown)
}

/// One row per (direct, gateway) pair: the latencies side by side, the added latency (gateway
/// percentile minus direct percentile, in µs) and the ratios.
#[must_use]
pub fn compare_table(pairs: &[(Report, Report)], markdown: bool) -> String {
    let header = [
        "gateway run",
        "load",
        "direct p50",
        "gateway p50",
        "added p50",
        "direct p99",
        "gateway p99",
        "added p99",
        "p50 ratio",
        "direct calls/s",
        "gateway calls/s",
        "throughput ratio",
    ];
    let rows = pairs
        .iter()
        .map(|(direct, gateway)| {
            let (d, g) = (direct.latency_us.as_ref(), gateway.latency_us.as_ref());
            let both = |f: fn(&Percentiles) -> f64| d.map(f).zip(g.map(f));
            let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let ratio = |v: Option<f64>| match v {
                None => "-".to_owned(),
                Some(v) if v < 0.1 => format!("{v:.3}×"),
                Some(v) => format!("{v:.2}×"),
            };
            let p50 = both(|p| p.p50);
            let p99 = both(|p| p.p99);
            vec![
                gateway.label.clone(),
                direct.load(),
                us(d.map(|p| p.p50)),
                us(g.map(|p| p.p50)),
                us(p50.map(|(d, g)| g - d)),
                us(d.map(|p| p.p99)),
                us(g.map(|p| p.p99)),
                us(p99.map(|(d, g)| g - d)),
                ratio(p50.and_then(|(d, g)| (d > 0.0).then(|| g / d))),
                format!("{:.0}", direct.throughput),
                format!("{:.0}", gateway.throughput),
                ratio((direct.throughput > 0.0).then(|| gateway.throughput / direct.throughput)),
            ]
        })
        .collect();
    render(&header, rows, markdown)
}

fn render(header: &[&str], rows: Vec<Vec<String>>, markdown: bool) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for (cell, width) in cells.zip(&widths) {
            let pad = width.saturating_sub(cell.chars().count());
            match (markdown, first) {
                (true, _) => {
                    let _ = write!(out, "| {cell}{} ", " ".repeat(pad));
                }
                (false, true) => {
                    let _ = write!(out, "{cell}{}", " ".repeat(pad));
                }
                (false, false) => {
                    let _ = write!(out, "  {}{cell}", " ".repeat(pad));
                }
            }
            first = false;
        }
        out.push_str(if markdown { "|\n" } else { "\n" });
    };
    line(&mut out, &mut header.iter().copied());
    if markdown {
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    "-".repeat(*w)
                } else {
                    format!("{}:", "-".repeat(w.saturating_sub(1)))
                }
            })
            .collect();
        line(&mut out, &mut rule.iter().map(String::as_str));
    }
    for row in &rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}
