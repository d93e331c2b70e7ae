//! `cluster-walkthrough bench`: what each way of sharing a port costs, measured on this
//! machine (chapter 11).
//!
//! For every worker count, round after round, every strategy in turn (A B C ... A B C ...,
//! so that whatever the machine does meanwhile hits them all alike): start the servers
//! ([`servers`]), warm them up until every worker has answered, read the primary's CPU time,
//! run the load ([`load`]) for a fixed time, read the CPU time again, stop the servers. The
//! arithmetic is in [`stats`]; the table, the JSON and the chart in [`report`]. The JSON
//! names the code that was measured ([`fingerprint`]).
//!
//! Build it with `--release`: a debug build measures the debug build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub mod fingerprint;
pub mod load;
pub mod report;
pub mod servers;
pub mod stats;

use fingerprint::Fingerprint;
use servers::{RunningServer, Strategy};

use crate::helper::ThisProgram;

/// `cluster-walkthrough bench` options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchArgs {
    /// A short run (under 20 seconds): 2 workers, 2 rounds of 0.5 s
    #[arg(long)]
    pub quick: bool,
    /// One JSON object with every measurement, on stdout (instead of the table)
    #[arg(long)]
    pub json: bool,
    /// Worker counts to measure, e.g. 1,2,4,8 (1 to 64) [default: 2,4; with --quick: 2]
    #[arg(long, value_delimiter = ',', value_name = "N,...",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: Vec<u32>,
    /// Concurrent clients, each opening a new connection per request (1 to 256) [default: 8]
    #[arg(long, value_name = "C",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub clients: Option<usize>,
    /// Seconds of load per run (0.05 to 600) [default: 2; with --quick: 0.5]
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    pub duration: Option<f64>,
    /// Rounds; each round runs every strategy once (1 to 100) [default: 3; with --quick: 2]
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// Only these strategies: rr, none, prefork, reuseport, fork, node-rr, node-none
    /// [default: all; Node's only when `node` runs]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub strategies: Vec<String>,
    /// Write the chart (connections/s of each strategy against workers) as SVG
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Also write the table to this file
    #[arg(long, value_name = "PATH")]
    pub table: Option<PathBuf>,
    /// Write everything into this folder: bench.json, bench.txt and bench.svg
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `--duration`: seconds, 0.05 to 600 (a shorter run measures nothing; a longer one is a
/// mistake).
fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.05..=600.0).contains(&s) => Ok(s),
        Ok(_) => Err("must be 0.05 to 600 seconds".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    BadInput(String),
    #[error("{strategy}: the server did not start: {why}")]
    Start { strategy: &'static str, why: String },
    #[error("{strategy} with {workers} workers: {why}")]
    Run {
        strategy: &'static str,
        workers: u32,
        why: String,
    },
    #[error("cannot write {path}: {why}")]
    Write { path: String, why: String },
    #[error("interrupted; every server was stopped")]
    Interrupted,
}

// ANCHOR: plan
/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: Vec<u32>,
    pub clients: usize,
    pub duration: Duration,
    pub rounds: u32,
    pub strategies: Vec<Strategy>,
    /// The port for every server (0: a free one each time).
    pub port: u16,
    /// `node --version`, when Node's strategies are in the plan.
    pub node: Option<String>,
}
// ANCHOR_END: plan

impl Plan {
    /// The plan the command line asks for, with the defaults filled in.
    pub fn from_args(args: &BenchArgs) -> Result<Plan, BenchError> {
        let q = args.quick;
        let workers = match args.workers.is_empty() {
            true if q => vec![2],
            true => vec![2, 4],
            false => args.workers.clone(),
        };
        if let Some(w) = workers.iter().find(|w| !(1..=64).contains(*w)) {
            return Err(BenchError::BadInput(format!(
                "--workers {w} is out of range: choose 1 to 64"
            )));
        }
        let clients = args.clients.unwrap_or(8);
        if !(1..=256).contains(&clients) {
            return Err(BenchError::BadInput("--clients must be 1 to 256".into()));
        }
        let secs = args.duration.unwrap_or(if q { 0.5 } else { 2.0 });
        if !(0.05..=600.0).contains(&secs) {
            return Err(BenchError::BadInput(
                "--duration must be 0.05 to 600 seconds".into(),
            ));
        }
        let rounds = args.rounds.unwrap_or(if q { 2 } else { 3 });
        if !(1..=100).contains(&rounds) {
            return Err(BenchError::BadInput("--rounds must be 1 to 100".into()));
        }
        let node = servers::node_version();
        let strategies = pick_strategies(&args.strategies, node.is_some())?;
        let node = node.filter(|_| strategies.iter().any(|s| s.is_node()));
        Ok(Plan {
            workers,
            clients,
            duration: Duration::from_secs_f64(secs),
            rounds,
            strategies,
            port: 0,
            node,
        })
    }

    /// How many server runs the plan makes.
    pub fn runs(&self) -> u64 {
        (self.workers.len() * self.strategies.len()) as u64 * u64::from(self.rounds)
    }
}

/// `--strategies`, or all of them (Node's only when `node` runs).
fn pick_strategies(names: &[String], have_node: bool) -> Result<Vec<Strategy>, BenchError> {
    if names.is_empty() {
        let all = Strategy::ALL.into_iter();
        return Ok(all.filter(|s| have_node || !s.is_node()).collect());
    }
    let mut out = Vec::new();
    for name in names {
        let s = Strategy::from_name(name).ok_or_else(|| {
            BenchError::BadInput(format!(
                "--strategies: no strategy {name:?} (rr, none, prefork, reuseport, fork, node-rr, node-none)"
            ))
        })?;
        if s.is_node() && !have_node {
            return Err(BenchError::BadInput(format!(
                "--strategies {name}: `node` does not run here (or tests/node/bench-cluster.js is missing)"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// How far the benchmark has come, for whoever shows it: a progress bar on a terminal
/// (`cluster-walkthrough bench`), or nobody (chapter 11). A callback, so that the library
/// knows nothing of terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Run `done + 1` of `total` starts.
    Starting {
        done: u64,
        total: u64,
        workers: u32,
        round: u32,
        rounds: u32,
        strategy: Strategy,
    },
    /// Every run is over, or one failed: nothing more will come.
    Finished,
}

/// One measured run: one strategy, one worker count, one round.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub strategy: Strategy,
    pub workers: u32,
    pub round: u32,
    pub connections: u64,
    pub errors: u64,
    pub conn_per_s: f64,
    pub latency: stats::Latency,
    /// `counts[i]`: connections answered by worker `i + 1` (empty for fork per connection).
    pub counts: Vec<u64>,
    pub fairness: Option<stats::Fairness>,
    /// The primary's CPU time per connection, in microseconds.
    pub primary_cpu_us: Option<f64>,
}

// ANCHOR: rounds
/// Run the plan: for each worker count, `rounds` rounds of every strategy in turn. Our
/// servers are `program` in the role `bench-server`. `progress` hears of each run as it
/// starts, and once that all are over (or that one failed).
pub fn run(
    plan: &Plan,
    program: &ThisProgram,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<RunResult>, BenchError> {
    let mut results = Vec::new();
    let total = plan.runs();
    let mut all = || {
        for &workers in &plan.workers {
            for round in 1..=plan.rounds {
                for &strategy in &plan.strategies {
                    let done = results.len() as u64;
                    let rounds = plan.rounds;
                    progress(Progress::Starting {
                        done,
                        total,
                        workers,
                        round,
                        rounds,
                        strategy,
                    });
                    results.push(run_one(plan, program, strategy, workers, round)?);
                }
            }
        }
        Ok(())
    };
    let outcome = all();
    progress(Progress::Finished);
    outcome.map(|()| results)
}
// ANCHOR_END: rounds

/// How long the warm-up may wait for every worker to answer.
const WARM_UP_LIMIT: Duration = Duration::from_secs(5);

// ANCHOR: run_one
/// Start, warm up, measure, stop: one strategy with `workers` workers.
fn run_one(
    plan: &Plan,
    program: &ThisProgram,
    strategy: Strategy,
    workers: u32,
    round: u32,
) -> Result<RunResult, BenchError> {
    let lifetime = plan.duration + WARM_UP_LIMIT + Duration::from_secs(30);
    let server = RunningServer::start(strategy, workers, plan.port, program, lifetime)?;
    let mut load = load::Load {
        addr: server.addr,
        clients: plan.clients,
        duration: Duration::from_millis(100),
        max_connections: 10_000_000,
        step_limit: Duration::from_secs(2),
    };
    warm_up(&load, strategy, workers).map_err(|why| BenchError::Run {
        strategy: strategy.name(),
        workers,
        why,
    })?;
    load.duration = plan.duration;
    let hz = crate::sys::clock_ticks_per_second();
    let before = server.primary_cpu_ticks();
    let mut tally = load::run(&load, crate::sys::interrupted);
    let after = server.primary_cpu_ticks();
    drop(server); // stopped and reaped before the next one starts
    if crate::sys::interrupted() {
        return Err(BenchError::Interrupted);
    }
    let counts = match strategy.has_workers() {
        true => tally.counts(workers as usize),
        false => Vec::new(),
    };
    Ok(RunResult {
        strategy,
        workers,
        round,
        connections: tally.completed,
        errors: tally.errors,
        conn_per_s: stats::per_second(tally.completed, plan.duration),
        latency: stats::latency(&mut tally.latencies_us),
        fairness: strategy.has_workers().then(|| stats::fairness(&counts)),
        counts,
        primary_cpu_us: before
            .zip(after)
            .and_then(|(b, a)| stats::cpu_us_per_connection(b, a, hz, tally.completed)),
    })
}
// ANCHOR_END: run_one

/// Short loads until every worker has answered at least once (one answer for fork per
/// connection): the servers are up, and no worker is still starting when the clock runs.
fn warm_up(load: &load::Load, strategy: Strategy, workers: u32) -> Result<(), String> {
    let want = if strategy.has_workers() {
        workers as usize
    } else {
        1
    };
    let deadline = std::time::Instant::now() + WARM_UP_LIMIT;
    let mut seen = load::Tally::default();
    loop {
        let t = load::run(load, crate::sys::interrupted);
        seen.answered
            .resize(seen.answered.len().max(t.answered.len()), 0);
        for (i, n) in t.answered.iter().enumerate() {
            seen.answered[i] += n;
        }
        if seen.workers_seen() >= want || crate::sys::interrupted() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "only {} of {want} workers answered within {WARM_UP_LIMIT:?}",
                seen.workers_seen()
            ));
        }
    }
}

/// The whole command; `progress` as for [`run`].
pub fn main(args: &BenchArgs, progress: &mut dyn FnMut(Progress)) -> ExitCode {
    crate::sys::install_interrupt_handler();
    let plan = Plan::from_args(args).and_then(|plan| check_outputs(args).map(|()| plan));
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build, which measures the debug build; use `cargo run --release -- bench`"
        );
    }
    let code = Fingerprint::of_this_crate();
    if let Err(e) = &code {
        eprintln!(
            "note: the sources are not where this program was built, so the JSON names no code: {e}"
        );
    }
    let started = std::time::SystemTime::now();
    let results = run(&plan, &ThisProgram::default(), progress);
    let results = match results {
        Ok(r) => r,
        Err(BenchError::Interrupted) => {
            eprintln!("interrupted; every server was stopped");
            return ExitCode::from(130);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = report::Report::new(&plan, results, report::Machine::this_one(&plan, started));
    report.code = match (code, Fingerprint::of_this_crate()) {
        (Ok(before), Ok(after)) if before == after => Some(before),
        (Ok(before), Ok(after)) => {
            let changed = after.differences(&before).join(", ");
            eprintln!(
                "warning: the code changed while the benchmark ran ({changed}); the JSON names no code"
            );
            None
        }
        _ => None,
    };
    match write_outputs(args, &report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The files `--out DIR` writes.
pub const OUT_JSON: &str = "bench.json";
pub const OUT_TABLE: &str = "bench.txt";
pub const OUT_SVG: &str = "bench.svg";

/// `--svg`, `--table` and `--out`'s files must be writable before the benchmark runs, not
/// after.
fn check_outputs(args: &BenchArgs) -> Result<(), BenchError> {
    let mut files: Vec<PathBuf> = [&args.svg, &args.table]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if let Some(dir) = &args.out {
        if !dir.is_dir() {
            return Err(BenchError::Write {
                path: dir.display().to_string(),
                why: "--out needs a folder that exists".to_string(),
            });
        }
        files.extend([OUT_JSON, OUT_TABLE, OUT_SVG].map(|n| dir.join(n)));
    }
    for path in &files {
        check_writable(path).map_err(|e| BenchError::Write {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// A file that exists must open for writing (it is not truncated yet); one that does not is
/// created and removed again.
fn check_writable(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)?;
            std::fs::remove_file(path)
        }
        Err(e) => Err(e),
    }
}

/// The table (or the JSON) on stdout, and the files asked for.
fn write_outputs(args: &BenchArgs, report: &report::Report) -> Result<(), BenchError> {
    let table = report.table();
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{table}");
    }
    if let Some(path) = &args.table {
        std::fs::write(path, &table).map_err(|e| BenchError::Write {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    let mut svgs: Vec<PathBuf> = args.svg.iter().cloned().collect();
    if let Some(dir) = &args.out {
        let json = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        let files = [(OUT_JSON, json + "\n"), (OUT_TABLE, table)];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| BenchError::Write {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        }
        svgs.push(dir.join(OUT_SVG));
    }
    for path in svgs {
        report.svg(&path).map_err(|why| BenchError::Write {
            path: path.display().to_string(),
            why,
        })?;
    }
    Ok(())
}
