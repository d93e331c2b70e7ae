//! `cluster-walkthrough bench`: what each way of sharing a port costs, measured on this
//! machine (chapter 11).
//!
//! For every worker count, round after round, every strategy in turn (A B C ... A B C ...,
//! so that whatever the machine does meanwhile hits them all alike): start the servers
//! ([`servers`]), warm them up until every worker has answered, read the primary's CPU time,
//! run the load (`load`) for a fixed time, read the CPU time again, stop the servers. The
//! arithmetic is in [`stats`]; the table, the JSON and the chart in [`report`]. Then, with
//! `--syscalls`, some strategies once more under strace, to count their system calls per
//! connection (`syscalls`). The JSON names the code that was measured ([`fingerprint`]).
//!
//! Build it with `--release`: a debug build measures the debug build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod chart;
pub mod fingerprint;
pub(crate) mod load;
pub mod report;
pub mod servers;
pub mod stats;
pub(crate) mod syscalls;

use fingerprint::Fingerprint;
use servers::{RunningServer, Strategy};
use syscalls::SyscallCounts;

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
    /// [default: all; Node's only when Node 24 is found: $CLUSTER_WALKTHROUGH_NODE_24, `node` on PATH if it is a 24, or .node-versions/24]
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub strategies: Vec<String>,
    /// Write the chart (connections/s of each strategy against workers) as SVG
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Also write the table to this file
    #[arg(long, value_name = "PATH")]
    pub table: Option<PathBuf>,
    /// Then run these strategies once more under `strace -f` and count their system calls per
    /// connection (untimed; needs strace)
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub syscalls: Vec<String>,
    /// Write everything into this folder: bench.json, bench.txt, bench.svg and, with
    /// --syscalls, bench-syscalls.txt
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
    /// The strategies whose system calls are counted afterwards, under strace.
    pub syscalls: Vec<Strategy>,
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
        let syscalls = match args.syscalls.is_empty() {
            true => Vec::new(),
            false => pick_strategies(&args.syscalls, node.is_some())?,
        };
        let node = node.filter(|_| strategies.iter().chain(&syscalls).any(|s| s.is_node()));
        Ok(Plan {
            workers,
            clients,
            duration: Duration::from_secs_f64(secs),
            rounds,
            strategies,
            port: 0,
            node,
            syscalls,
        })
    }

    /// How many server runs the plan makes.
    pub fn runs(&self) -> u64 {
        (self.workers.len() * self.strategies.len()) as u64 * u64::from(self.rounds)
    }
}

/// `--strategies`, or all of them (Node's only when Node 24 is found).
fn pick_strategies(names: &[String], have_node: bool) -> Result<Vec<Strategy>, BenchError> {
    if names.is_empty() {
        let all = Strategy::ALL.into_iter();
        return Ok(all.filter(|s| have_node || !s.is_node()).collect());
    }
    let mut out = Vec::new();
    for name in names {
        let s = Strategy::from_name(name).ok_or_else(|| {
            BenchError::BadInput(format!(
                "no strategy {name:?} (rr, none, prefork, reuseport, fork, node-rr, node-none)"
            ))
        })?;
        if s.is_node() && !have_node {
            return Err(BenchError::BadInput(format!(
                "{name}: `node` does not run here (or tests/node/bench-cluster.js is missing)"
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
    /// Counting the system calls of `strategy`, the `done + 1`-th of `total`, under strace.
    Tracing {
        done: u64,
        total: u64,
        workers: u32,
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
    /// The CPU time of all the server's processes per connection, in microseconds.
    pub server_cpu_us: Option<f64>,
    /// The CPU time of the load generator (the clients) per connection, in microseconds.
    pub client_cpu_us: Option<f64>,
}

// ANCHOR: rounds
/// Run the plan: for each worker count, `rounds` rounds of every strategy in turn. Our
/// servers are `program` in the role `bench-server`. `progress` hears of each run as it
/// starts, and once that all are over (or that one failed). The system calls are counted
/// apart, by [`count_syscalls`].
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

/// The same under strace, which slows the start of every process down.
const WARM_UP_LIMIT_TRACED: Duration = Duration::from_secs(60);

/// The plan's `syscalls` strategies under strace, one after another, each with
/// `syscalls::workers_for` workers: their system calls per connection.
pub fn count_syscalls(
    plan: &Plan,
    program: &ThisProgram,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<SyscallCounts>, BenchError> {
    let workers = syscalls::workers_for(plan);
    let total = plan.syscalls.len() as u64;
    let mut out = Vec::new();
    for (done, &strategy) in plan.syscalls.iter().enumerate() {
        let done = done as u64;
        progress(Progress::Tracing {
            done,
            total,
            workers,
            strategy,
        });
        match syscalls::count(plan, program, strategy, workers) {
            Ok(c) => out.push(c),
            Err(e) => {
                progress(Progress::Finished);
                return Err(e);
            }
        }
    }
    progress(Progress::Finished);
    Ok(out)
}

/// The load of a warm-up: short steps, as many as it takes.
fn short_load(addr: std::net::SocketAddr, clients: usize) -> load::Load {
    load::Load {
        addr,
        clients,
        duration: Duration::from_millis(100),
        max_connections: 10_000_000,
        step_limit: Duration::from_secs(2),
    }
}

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
    let mut load = short_load(server.addr, plan.clients);
    warm_up(&load, strategy, workers, WARM_UP_LIMIT).map_err(|why| BenchError::Run {
        strategy: strategy.name(),
        workers,
        why,
    })?;
    load.duration = plan.duration;
    let hz = crate::sys::clock_ticks_per_second();
    let before = server.primary_cpu_ticks();
    let server_before = server.server_cpu_ticks();
    let client_before = client_cpu_ticks();
    let mut tally = load::run(&load, crate::sys::interrupted);
    let after = server.primary_cpu_ticks();
    let server_after = server.server_cpu_ticks();
    let client_after = client_cpu_ticks();
    drop(server); // stopped and reaped before the next one starts
    let per_connection = |b: Option<u64>, a: Option<u64>| {
        b.zip(a)
            .and_then(|(b, a)| stats::cpu_us_per_connection(b, a, hz, tally.completed))
    };
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
        primary_cpu_us: per_connection(before, after),
        server_cpu_us: per_connection(server_before, server_after),
        client_cpu_us: per_connection(client_before, client_after),
    })
}
// ANCHOR_END: run_one

/// This process's CPU time so far (the load generator's threads; the rest of it sleeps).
fn client_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stats::cpu_ticks_from_stat(&stat)
}

/// Short loads until every worker has answered at least once (one answer for fork per
/// connection): the servers are up, and no worker is still starting when the clock runs.
fn warm_up(
    load: &load::Load,
    strategy: Strategy,
    workers: u32,
    limit: Duration,
) -> Result<(), String> {
    let want = if strategy.has_workers() {
        workers as usize
    } else {
        1
    };
    let deadline = std::time::Instant::now() + limit;
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
                "only {} of {want} workers answered within {limit:?}",
                seen.workers_seen()
            ));
        }
    }
}

/// The whole command; `progress` as for [`run`].
pub fn main(args: &BenchArgs, progress: &mut dyn FnMut(Progress)) -> ExitCode {
    crate::sys::install_interrupt_handler();
    let plan = Plan::from_args(args).and_then(|plan| check_outputs(args, &plan).map(|()| plan));
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
    let program = ThisProgram::default();
    let measured = run(&plan, &program, progress)
        .and_then(|runs| Ok((runs, count_syscalls(&plan, &program, progress)?)));
    let (results, syscalls) = match measured {
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
    report.syscalls = syscalls;
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
pub const OUT_SYSCALLS: &str = "bench-syscalls.txt";

/// `--svg`, `--table` and `--out`'s files must be writable before the benchmark runs, not
/// after; and strace must run if `--syscalls` needs it.
fn check_outputs(args: &BenchArgs, plan: &Plan) -> Result<(), BenchError> {
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
        let mut names = vec![OUT_JSON, OUT_TABLE, OUT_SVG];
        if !plan.syscalls.is_empty() {
            names.push(OUT_SYSCALLS);
        }
        files.extend(names.into_iter().map(|n| dir.join(n)));
    }
    for path in &files {
        check_writable(path).map_err(|e| BenchError::Write {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    if !plan.syscalls.is_empty()
        && let Some(why) = syscalls::missing_strace()
    {
        return Err(BenchError::BadInput(format!("--syscalls: {why}")));
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
    let syscalls = syscalls::table(&report.syscalls);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{table}");
        if !syscalls.is_empty() {
            print!("\n{syscalls}");
        }
    }
    let svg = report.svg().map_err(|why| BenchError::Write {
        path: "the chart".to_string(),
        why,
    })?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if let Some(path) = &args.table {
        files.push((path.clone(), table.clone()));
    }
    if let Some(path) = &args.svg {
        files.push((path.clone(), svg.clone()));
    }
    if let Some(dir) = &args.out {
        let json = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        files.push((dir.join(OUT_JSON), json + "\n"));
        files.push((dir.join(OUT_TABLE), table));
        files.push((dir.join(OUT_SVG), svg));
        if !report.syscalls.is_empty() {
            files.push((dir.join(OUT_SYSCALLS), syscalls));
        }
    }
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| BenchError::Write {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}
