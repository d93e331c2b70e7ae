//! What the benchmark shows: a table for people, one JSON object for scripts, and an SVG
//! chart for the book. All three are made from the same [`Report`], so they cannot
//! disagree.
//!
//! Every figure of a strategy and worker count is the median over the rounds; its ratio
//! against our round robin is taken per round (both ran in the same round, minutes apart at
//! most) and then the median of those ratios is shown, next to each round's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::fingerprint::Fingerprint;
use super::servers::Strategy;
use super::stats;
use super::{Plan, RunResult};

/// Where and when the numbers were measured.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub build: &'static str,
    pub node: Option<String>,
    /// `2026-11-26` (UTC).
    pub date: String,
}

impl Machine {
    /// This machine, now.
    pub fn this_one(plan: &Plan, started: SystemTime) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("an unknown CPU".to_string(), |(_, m)| m.trim().to_string());
        let secs = started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or("?".to_string(), |k| k.trim().to_string()),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            node: plan.node.clone(),
            date: stats::utc_date(secs),
        }
    }
}

/// One strategy at one worker count, over all rounds.
#[derive(Debug, Clone)]
pub struct StrategySummary {
    pub strategy: Strategy,
    pub workers: u32,
    pub conn_per_s: f64,
    /// This strategy's connections/s over our round robin's, round by round.
    pub vs_rr_per_round: Vec<Option<f64>>,
    pub vs_rr: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Median over rounds; infinite when a worker answered nothing in most rounds.
    pub max_min: Option<f64>,
    pub primary_cpu_us: Option<f64>,
    pub errors: u64,
}

/// Everything one benchmark run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    pub machine: Machine,
    pub runs: Vec<RunResult>,
    pub summary: Vec<StrategySummary>,
    /// The code that was measured (`None`: unknown, or it changed during the run).
    pub code: Option<Fingerprint>,
}

fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    stats::median(&v)
}

impl Report {
    pub fn new(plan: &Plan, runs: Vec<RunResult>, machine: Machine) -> Report {
        let mut summary = Vec::new();
        for &workers in &plan.workers {
            for &strategy in &plan.strategies {
                summary.push(summarise(&runs, strategy, workers, plan.rounds));
            }
        }
        Report {
            plan: plan.clone(),
            machine,
            runs,
            summary,
            code: None,
        }
    }

    fn find(&self, strategy: Strategy, workers: u32) -> Option<&StrategySummary> {
        self.summary
            .iter()
            .find(|s| s.strategy == strategy && s.workers == workers)
    }

    // ANCHOR: targets
    /// The two targets of chapter 11, per worker count: our round robin over Node's
    /// (wanted: at least 2), and `SO_REUSEPORT` over our round robin (wanted: at most 1.5).
    pub fn targets(&self) -> Vec<(u32, Option<f64>, Option<f64>)> {
        self.plan
            .workers
            .iter()
            .map(|&w| {
                let node = self.find(Strategy::NodeRr, w).and_then(|s| s.vs_rr);
                let reuseport = self.find(Strategy::Reuseport, w).and_then(|s| s.vs_rr);
                (w, node.and_then(|n| stats::ratio(1.0, n)), reuseport)
            })
            .collect()
    }
    // ANCHOR_END: targets

    /// The table, as text.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let p = &self.plan;
        let mut t = String::new();
        let node = m
            .node
            .as_deref()
            .map_or(String::new(), |v| format!(", node {v}"));
        let _ = writeln!(
            t,
            "{}, {} CPUs, Linux {}, {} build{node}, {}",
            m.cpu, m.cpus, m.kernel, m.build, m.date
        );
        let _ = writeln!(
            t,
            "{} clients on 127.0.0.1, a new connection per request; {} round{} of {:.1} s per strategy; medians over the rounds",
            p.clients,
            p.rounds,
            if p.rounds == 1 { "" } else { "s" },
            p.duration.as_secs_f64()
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:>7}  {:<26} {:>8}  {:>6}  {:<18} {:>7} {:>7} {:>7}  {:>10}",
            "workers",
            "strategy",
            "conn/s",
            "vs rr",
            "(each round)",
            "p50 µs",
            "p99 µs",
            "max/min",
            "primary µs"
        );
        for s in &self.summary {
            let rounds: Vec<String> = s.vs_rr_per_round.iter().map(|r| fmt_ratio(*r)).collect();
            let _ = writeln!(
                t,
                "{:>7}  {:<26} {:>8}  {:>6}  {:<18} {:>7} {:>7} {:>7}  {:>10}",
                s.workers,
                s.strategy.label(),
                thousands(s.conn_per_s),
                fmt_ratio(s.vs_rr),
                if p.rounds > 1 {
                    rounds.join(" ")
                } else {
                    String::new()
                },
                fmt_opt(s.p50_us, 0),
                fmt_opt(s.p99_us, 0),
                match (s.strategy.has_workers(), s.max_min) {
                    (false, _) => "-".to_string(),
                    (true, None) => "∞".to_string(),
                    (true, Some(f)) => format!("{f:.2}"),
                },
                fmt_opt(s.primary_cpu_us, 1),
            );
        }
        let errors: u64 = self.summary.iter().map(|s| s.errors).sum();
        if errors > 0 {
            let _ = writeln!(
                t,
                "\n{errors} requests failed (refused, reset or timed out); they are not counted"
            );
        }
        let targets = self.targets();
        if targets.iter().any(|(_, a, b)| a.is_some() || b.is_some()) {
            let _ = writeln!(t, "\ntargets, same run and same worker count:");
            for (w, node, reuseport) in targets {
                let mut parts = Vec::new();
                if let Some(r) = node {
                    parts.push(format!("our rr / Node rr = {r:.2} (want >= 2)"));
                }
                if let Some(r) = reuseport {
                    parts.push(format!("SO_REUSEPORT / our rr = {r:.2} (want <= 1.5)"));
                }
                let _ = writeln!(t, "  {w} workers: {}", parts.join("; "));
            }
        }
        t
    }

    /// Every measurement, as one JSON object.
    pub fn to_json(&self) -> Value {
        let m = &self.machine;
        let p = &self.plan;
        let runs: Vec<Value> = self.runs.iter().map(run_json).collect();
        let summary: Vec<Value> = self.summary.iter().map(summary_json).collect();
        let mut node_t = BTreeMap::new();
        let mut reuse_t = BTreeMap::new();
        for (w, node, reuseport) in self.targets() {
            node_t.insert(w.to_string(), json!(node));
            reuse_t.insert(w.to_string(), json!(reuseport));
        }
        let code = self.code.as_ref().map(|c| {
            json!({"measured": super::fingerprint::MEASURED, "fingerprint": c.all,
                   "files": c.files})
        });
        json!({
            "machine": {"cpu": m.cpu, "cpus": m.cpus, "kernel": m.kernel, "build": m.build,
                        "node": m.node, "date": m.date},
            "code": code,
            "plan": {"workers": p.workers, "clients": p.clients,
                     "duration_s": p.duration.as_secs_f64(), "rounds": p.rounds,
                     "strategies": p.strategies.iter().map(|s| s.name()).collect::<Vec<_>>()},
            "runs": runs,
            "summary": summary,
            "targets": {"rr_over_node_rr": node_t, "reuseport_over_rr": reuse_t},
        })
    }

    // ANCHOR: svg
    /// The chart: connections/s (median over rounds) of each strategy against the number of
    /// workers, one line per strategy, and the legend on the right.
    pub fn svg(&self, path: &Path) -> Result<(), String> {
        use plotters::prelude::*;
        let e = |e: DrawingAreaErrorKind<_>| e.to_string();
        let workers = self.plan.workers.clone();
        let max_w = workers.iter().copied().max().unwrap_or(1);
        let top = self
            .summary
            .iter()
            .map(|s| s.conn_per_s)
            .fold(0.0, f64::max);
        let root = SVGBackend::new(path, (860, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let (plot, legend) = root.split_horizontally(640);
        let m = &self.machine;
        let caption = format!(
            "New connections per second, 127.0.0.1, {} clients ({} CPUs, {})",
            self.plan.clients, m.cpus, m.date
        );
        let mut chart = ChartBuilder::on(&plot)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0u32..max_w + 1, 0f64..(top * 1.1).max(1.0))
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("workers")
            .y_desc("connections/s")
            .x_labels(max_w as usize + 2)
            .x_label_formatter(&|x| match workers.contains(x) {
                true => x.to_string(),
                false => String::new(),
            })
            .y_label_formatter(&|y| thousands(*y))
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        for (i, &strategy) in self.plan.strategies.iter().enumerate() {
            let style = ShapeStyle::from(colour(strategy)).stroke_width(2);
            let points: Vec<(u32, f64)> = self
                .summary
                .iter()
                .filter(|s| s.strategy == strategy)
                .map(|s| (s.workers, s.conn_per_s))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(e)?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, style.filled())))
                .map_err(e)?;
            let y = 60 + 26 * i as i32;
            legend
                .draw(&PathElement::new(vec![(4, y), (30, y)], style))
                .map_err(e)?;
            legend
                .draw(&Text::new(
                    strategy.label(),
                    (38, y - 7),
                    ("sans-serif", 14),
                ))
                .map_err(e)?;
        }
        root.present().map_err(e)
    }
    // ANCHOR_END: svg
}

/// Each strategy's colour in the chart: ours warm, the kernel's models cool, Node's violet.
fn colour(strategy: Strategy) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match strategy {
        Strategy::Rr => RGBColor(214, 39, 40),
        Strategy::None => RGBColor(255, 127, 14),
        Strategy::Prefork => RGBColor(44, 160, 44),
        Strategy::Reuseport => RGBColor(31, 119, 180),
        Strategy::Fork => RGBColor(127, 127, 127),
        Strategy::NodeRr => RGBColor(148, 103, 189),
        Strategy::NodeNone => RGBColor(227, 119, 194),
    }
}

/// One strategy at one worker count, from its runs.
fn summarise(runs: &[RunResult], strategy: Strategy, workers: u32, rounds: u32) -> StrategySummary {
    let mine: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.strategy == strategy && r.workers == workers)
        .collect();
    let rr_of = |round: u32| {
        runs.iter()
            .find(|r| r.strategy == Strategy::Rr && r.workers == workers && r.round == round)
    };
    let vs_rr_per_round: Vec<Option<f64>> = (1..=rounds)
        .map(|round| {
            let me = mine.iter().find(|r| r.round == round)?;
            stats::ratio(me.conn_per_s, rr_of(round)?.conn_per_s)
        })
        .collect();
    let cps: Vec<f64> = mine.iter().map(|r| r.conn_per_s).collect();
    // A worker that answered nothing makes max/min infinite; it still counts in the median.
    let max_min = median_of(mine.iter().map(|r| {
        r.fairness
            .as_ref()
            .map(|f| f.max_min.unwrap_or(f64::INFINITY))
    }))
    .filter(|f| f.is_finite());
    StrategySummary {
        strategy,
        workers,
        conn_per_s: stats::median(&cps).unwrap_or(0.0),
        vs_rr: median_of(vs_rr_per_round.iter().copied()),
        vs_rr_per_round,
        p50_us: median_of(mine.iter().map(|r| r.latency.p50_us.map(f64::from))),
        p99_us: median_of(mine.iter().map(|r| r.latency.p99_us.map(f64::from))),
        max_min,
        primary_cpu_us: median_of(mine.iter().map(|r| r.primary_cpu_us)),
        errors: mine.iter().map(|r| r.errors).sum(),
    }
}

fn run_json(r: &RunResult) -> Value {
    json!({
        "strategy": r.strategy.name(),
        "workers": r.workers,
        "round": r.round,
        "connections": r.connections,
        "errors": r.errors,
        "conn_per_s": round2(r.conn_per_s),
        "latency_us": {"p50": r.latency.p50_us, "p99": r.latency.p99_us},
        "per_worker": r.counts,
        "shares": r.fairness.as_ref().map(|f| f.shares.iter().map(|s| round4(*s)).collect::<Vec<_>>()),
        "max_min": r.fairness.as_ref().and_then(|f| f.max_min).map(round2),
        "primary_cpu_us_per_conn": r.primary_cpu_us.map(round2),
    })
}

fn summary_json(s: &StrategySummary) -> Value {
    json!({
        "strategy": s.strategy.name(),
        "label": s.strategy.label(),
        "workers": s.workers,
        "conn_per_s": round2(s.conn_per_s),
        "vs_rr": s.vs_rr.map(round4),
        "vs_rr_per_round": s.vs_rr_per_round.iter().map(|r| r.map(round4)).collect::<Vec<_>>(),
        "latency_us": {"p50": s.p50_us, "p99": s.p99_us},
        "max_min": s.max_min.map(round2),
        "primary_cpu_us_per_conn": s.primary_cpu_us.map(round2),
        "errors": s.errors,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".to_string(), |r| format!("{r:.2}"))
}

fn fmt_opt(x: Option<f64>, decimals: usize) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.decimals$}"))
}

/// `12345.6` → `12,346`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}
