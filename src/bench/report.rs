//! What the benchmark shows: a table for people, one JSON object for scripts, and an SVG
//! chart for the book. All three are made from the same [`Report`], so they cannot
//! disagree.
//!
//! Every figure of a strategy and worker count is the median over the rounds; its ratio
//! against our round robin is taken per round (both ran in the same round, minutes apart at
//! most) and then the median of those ratios is shown; how far the rounds' ratios were apart
//! is shown too, and the JSON has each.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::fingerprint::Fingerprint;
use super::servers::Strategy;
use super::stats;
use super::syscalls::SyscallCounts;
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
    pub server_cpu_us: Option<f64>,
    pub client_cpu_us: Option<f64>,
    pub errors: u64,
}

impl StrategySummary {
    /// How far apart the rounds' ratios were: the highest over the lowest (1: all alike).
    pub fn vs_rr_spread(&self) -> Option<f64> {
        let r: Vec<f64> = self.vs_rr_per_round.iter().flatten().copied().collect();
        let hi = r.iter().copied().reduce(f64::max)?;
        let lo = r.iter().copied().reduce(f64::min)?;
        stats::ratio(hi, lo)
    }

    /// The CPU time of one connection, the server's and the clients' together.
    pub fn cpu_us(&self) -> Option<f64> {
        Some(self.server_cpu_us? + self.client_cpu_us?)
    }
}

/// Everything one benchmark run produced.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    pub machine: Machine,
    pub runs: Vec<RunResult>,
    pub summary: Vec<StrategySummary>,
    /// The system calls per connection, of the strategies counted under strace.
    pub syscalls: Vec<SyscallCounts>,
    /// The code that was measured (`None`: unknown, or it changed during the run).
    pub code: Option<Fingerprint>,
}

/// The widest line of the table (and of the system call tables): what a phone shows of a
/// code block in the book without scrolling.
pub const WIDTH: usize = 35;

/// The width of a table's first column, and of each of the others.
const LABEL: usize = 10;
const CELL: usize = 6;

fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().collect();
    stats::median(&v)
}

/// One of the targets the bench checks: a ratio, per worker count, and its bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `our rr ≥ 2 × node-rr`.
    pub what: &'static str,
    /// The JSON's name for it.
    pub key: &'static str,
    pub at_least: Option<f64>,
    pub at_most: Option<f64>,
    /// Per worker count: the ratio measured (same run, same worker count).
    pub ratios: Vec<(u32, Option<f64>)>,
    /// Per worker count: the same ratio from the CPU time per connection alone (server and
    /// clients): what it would be if the CPUs were all that limited both strategies.
    pub cpu_ratios: Vec<(u32, Option<f64>)>,
}

impl Target {
    pub fn met(&self, ratio: f64) -> bool {
        self.at_least.is_none_or(|b| ratio >= b) && self.at_most.is_none_or(|b| ratio <= b)
    }
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
            syscalls: Vec::new(),
            code: None,
        }
    }

    fn find(&self, strategy: Strategy, workers: u32) -> Option<&StrategySummary> {
        self.summary
            .iter()
            .find(|s| s.strategy == strategy && s.workers == workers)
    }

    // ANCHOR: targets
    /// The project's two speed targets, per worker count, where the run has both strategies:
    /// our round robin at least twice as fast as Node's, and `SO_REUSEPORT` at most 1.5 times
    /// as fast as our round robin.
    pub fn targets(&self) -> Vec<Target> {
        let ratio = |a: Strategy, b: Strategy, of: &dyn Fn(&StrategySummary) -> Option<f64>| {
            let per_worker = self.plan.workers.iter().map(|&w| {
                let (a, b) = (self.find(a, w).and_then(of), self.find(b, w).and_then(of));
                (w, a.zip(b).and_then(|(a, b)| stats::ratio(a, b)))
            });
            per_worker.collect::<Vec<_>>()
        };
        // Speed against our round robin is taken round by round (`vs_rr`), as in the table.
        let speed = |s: &StrategySummary| s.vs_rr;
        // Twice as fast is half the CPU per connection: CPU ratios are the other way up.
        let cpu = |s: &StrategySummary| s.cpu_us().filter(|c| *c > 0.0).map(|c| 1.0 / c);
        let has = |s: Strategy| self.plan.strategies.contains(&s);
        let mut out = Vec::new();
        if has(Strategy::Rr) && has(Strategy::NodeRr) {
            out.push(Target {
                what: "our rr ≥ 2 × node-rr",
                key: "rr_over_node_rr",
                at_least: Some(2.0),
                at_most: None,
                ratios: ratio(Strategy::Rr, Strategy::NodeRr, &speed),
                cpu_ratios: ratio(Strategy::Rr, Strategy::NodeRr, &cpu),
            });
        }
        if has(Strategy::Rr) && has(Strategy::Reuseport) {
            out.push(Target {
                what: "reuseport ≤ 1.5 × our rr",
                key: "reuseport_over_rr",
                at_least: None,
                at_most: Some(1.5),
                ratios: ratio(Strategy::Reuseport, Strategy::Rr, &speed),
                cpu_ratios: ratio(Strategy::Reuseport, Strategy::Rr, &cpu),
            });
        }
        out
    }
    // ANCHOR_END: targets

    /// The table, as text, no line wider than [`WIDTH`]: one small table per figure, the
    /// strategies down and the worker counts across.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let p = &self.plan;
        let mut t = String::new();
        let node = m
            .node
            .as_deref()
            .map_or(String::new(), |v| format!(", node {v}"));
        let rounds = match p.rounds {
            1 => "1 round".to_string(),
            n => format!("{n} rounds"),
        };
        let header = [
            format!("{}, {} CPUs", m.cpu, m.cpus),
            format!("Linux {}", m.kernel),
            format!("{} build{node}", m.build),
            format!("measured on {}", m.date),
            format!(
                "{} clients on 127.0.0.1, a new connection per request; {rounds} of {:.1} s \
                 per strategy; medians over the rounds.",
                p.clients,
                p.duration.as_secs_f64()
            ),
        ];
        for line in header {
            for l in wrap(&line, WIDTH) {
                let _ = writeln!(t, "{l}");
            }
        }
        let _ = writeln!(t);
        for s in &p.strategies {
            let mut label = wrap(s.label(), WIDTH - LABEL).into_iter();
            let first = label.next().unwrap_or_default();
            let _ = writeln!(t, "{:<LABEL$}{first}", s.name());
            for more in label {
                let _ = writeln!(t, "{:<LABEL$}{more}", "");
            }
        }
        let cell = |f: &dyn Fn(&StrategySummary) -> String| {
            let rows = p.strategies.iter().map(|&s| {
                let cells = p
                    .workers
                    .iter()
                    .map(|&w| self.find(s, w).map_or("-".into(), f));
                (s.name().to_string(), cells.collect::<Vec<_>>())
            });
            rows.collect::<Vec<_>>()
        };
        let mut grid = |title: &str, rows: Vec<(String, Vec<String>)>| {
            let _ = writeln!(t);
            grid(&mut t, title, &p.workers, &rows);
        };
        grid(
            "Connections per second, thousands",
            cell(&|s| format!("{:.1}", s.conn_per_s / 1000.0)),
        );
        grid(
            "vs rr: over our round robin's",
            cell(&|s| fmt_ratio(s.vs_rr)),
        );
        if p.rounds > 1 {
            grid(
                "vs rr: highest round / lowest",
                cell(&|s| fmt_ratio(s.vs_rr_spread())),
            );
        }
        grid("p50 latency, µs", cell(&|s| fmt_us(s.p50_us)));
        grid("p99 latency, µs", cell(&|s| fmt_us(s.p99_us)));
        grid(
            "max/min: busiest / idlest worker",
            cell(&|s| match (s.strategy.has_workers(), s.max_min) {
                (false, _) => "-".to_string(),
                (true, None) => "∞".to_string(),
                (true, Some(f)) => format!("{f:.2}"),
            }),
        );
        grid(
            "Primary's CPU per connection, µs",
            cell(&|s| fmt_us(s.primary_cpu_us)),
        );
        grid(
            "Server's CPU per connection, µs",
            cell(&|s| fmt_us(s.server_cpu_us)),
        );
        let errors: u64 = self.summary.iter().map(|s| s.errors).sum();
        if errors > 0 {
            let _ = writeln!(t);
            let line = format!(
                "{errors} requests failed (refused, reset or timed out); they are not counted."
            );
            for l in wrap(&line, WIDTH) {
                let _ = writeln!(t, "{l}");
            }
        }
        for target in self.targets() {
            let _ = writeln!(t);
            let _ = writeln!(t, "Target: {}", target.what);
            let ratios: Vec<String> = target.ratios.iter().map(|(_, r)| fmt_ratio(*r)).collect();
            let met: Vec<String> = target
                .ratios
                .iter()
                .map(|(_, r)| r.map_or("-", |r| if target.met(r) { "yes" } else { "no" }))
                .map(String::from)
                .collect();
            let cpu: Vec<String> = target
                .cpu_ratios
                .iter()
                .map(|(_, r)| fmt_ratio(*r))
                .collect();
            let rows = vec![
                ("measured".to_string(), ratios),
                ("met".to_string(), met),
                ("CPU alone".to_string(), cpu),
            ];
            grid_rows(&mut t, &p.workers, &rows);
        }
        t
    }

    /// Every measurement, as one JSON object.
    pub fn to_json(&self) -> Value {
        let m = &self.machine;
        let p = &self.plan;
        let runs: Vec<Value> = self.runs.iter().map(run_json).collect();
        let summary: Vec<Value> = self.summary.iter().map(summary_json).collect();
        let mut targets = serde_json::Map::new();
        for target in self.targets() {
            let per_worker = |r: &[(u32, Option<f64>)]| {
                let r = r.iter().map(|(w, r)| (w.to_string(), json!(r.map(round4))));
                r.collect::<BTreeMap<_, _>>()
            };
            targets.insert(
                target.key.to_string(),
                json!({"what": target.what, "at_least": target.at_least, "at_most": target.at_most,
                       "measured": per_worker(&target.ratios),
                       "from_cpu_time": per_worker(&target.cpu_ratios)}),
            );
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
                     "strategies": p.strategies.iter().map(|s| s.name()).collect::<Vec<_>>(),
                     "syscalls": p.syscalls.iter().map(|s| s.name()).collect::<Vec<_>>()},
            "runs": runs,
            "summary": summary,
            "targets": targets,
            "syscalls": self.syscalls.iter().map(SyscallCounts::to_json).collect::<Vec<_>>(),
        })
    }
}

/// A titled table: `rows` (a label, then one cell per worker count) under a line of worker
/// counts.
fn grid(t: &mut String, title: &str, workers: &[u32], rows: &[(String, Vec<String>)]) {
    let _ = writeln!(t, "{title}");
    grid_rows(t, workers, rows);
}

/// The rows under a line of worker counts; when there are more worker counts than fit in
/// [`WIDTH`], the columns go on in another block below.
fn grid_rows(t: &mut String, workers: &[u32], rows: &[(String, Vec<String>)]) {
    let per_block = ((WIDTH - LABEL) / CELL).max(1);
    for (block, ws) in workers.chunks(per_block).enumerate() {
        if block > 0 {
            let _ = writeln!(t);
        }
        let from = block * per_block;
        let _ = write!(t, "{:<LABEL$}", "workers");
        for w in ws {
            let _ = write!(t, "{w:>CELL$}");
        }
        let _ = writeln!(t);
        for (label, cells) in rows {
            let _ = write!(t, "{label:<LABEL$}");
            for c in cells.iter().skip(from).take(ws.len()) {
                let _ = write!(t, "{c:>CELL$}");
            }
            let _ = writeln!(t);
        }
    }
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word stays
/// whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let wanted = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && wanted > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
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
        server_cpu_us: median_of(mine.iter().map(|r| r.server_cpu_us)),
        client_cpu_us: median_of(mine.iter().map(|r| r.client_cpu_us)),
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
        "server_cpu_us_per_conn": r.server_cpu_us.map(round2),
        "client_cpu_us_per_conn": r.client_cpu_us.map(round2),
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
        "server_cpu_us_per_conn": s.server_cpu_us.map(round2),
        "client_cpu_us_per_conn": s.client_cpu_us.map(round2),
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

/// Microseconds in at most five characters: `12.3`, `123`, `12345`, `123k`.
fn fmt_us(x: Option<f64>) -> String {
    match x {
        None => "-".to_string(),
        Some(x) if x < 100.0 => format!("{x:.1}"),
        Some(x) if x < 99_999.5 => format!("{x:.0}"),
        Some(x) => format!("{:.0}k", x / 1000.0),
    }
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
