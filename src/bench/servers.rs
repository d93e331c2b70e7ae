//! The servers under test: one per strategy, each a separate process (tree) that the
//! benchmark starts, measures and stops.
//!
//! Ours are this very program in a helper role (`bench-server --strategy rr --workers 2
//! --port P --lifetime S`, a hidden subcommand; see [`ServerSpec`]): the lab's primary
//! and workers with tracing off, or one of chapter 9's models in serving mode. They run in a
//! process of their own for two reasons: the models fork without exec, which is only safe in
//! a process with one thread (the benchmark has many); and the primary's CPU time must be
//! its own, not mixed with the load generator's. Node's are `node tests/node/bench-cluster.js`.
//!
//! Every server is a [`RunningServer`], and dropping one stops its whole tree: `SIGTERM`
//! (each helper then stops its workers or children), then `SIGKILL` if it does not go within
//! a few seconds, and always `waitpid`. Helpers we start die with the benchmark
//! (`PR_SET_PDEATHSIG`, see [`crate::helper`]), and each also ends by itself after a lifetime
//! it is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use super::BenchError;
use super::stats;
use crate::cluster::version::NodeLine;
use crate::helper::{self, Capture, Running, ThisProgram};
use crate::lab::{self, LabArgs, PolicyArg};
use crate::loopback::{LOOPBACK, free_port};
use crate::node_source::{self, Want};
use crate::os_models::serve::{self, Until};
use crate::strace;
use crate::sys;
use crate::trace;

/// One way of serving a port from several processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Our primary accepts and hands each connection to a worker (chapter 5).
    Rr,
    /// Our workers accept on one shared socket (chapter 6).
    None,
    /// Children inherit one listening socket and block in `accept` (chapter 9b).
    Prefork,
    /// A socket per child, one port (chapter 9c).
    Reuseport,
    /// A fresh child per connection (chapter 9a).
    Fork,
    /// Node's cluster, `SCHED_RR`.
    NodeRr,
    /// Node's cluster, `SCHED_NONE`.
    NodeNone,
}

impl Strategy {
    /// Every strategy, in the order of the table.
    pub const ALL: [Strategy; 7] = [
        Strategy::Rr,
        Strategy::None,
        Strategy::Prefork,
        Strategy::Reuseport,
        Strategy::Fork,
        Strategy::NodeRr,
        Strategy::NodeNone,
    ];

    /// The short name (`--strategies`, the JSON).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Rr => "rr",
            Strategy::None => "none",
            Strategy::Prefork => "prefork",
            Strategy::Reuseport => "reuseport",
            Strategy::Fork => "fork",
            Strategy::NodeRr => "node-rr",
            Strategy::NodeNone => "node-none",
        }
    }

    /// The name in the table and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Rr => "our round robin",
            Strategy::None => "our SCHED_NONE",
            Strategy::Prefork => "pre-fork, inherited socket",
            Strategy::Reuseport => "SO_REUSEPORT",
            Strategy::Fork => "fork per connection",
            Strategy::NodeRr => "Node round robin",
            Strategy::NodeNone => "Node SCHED_NONE",
        }
    }

    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn is_node(self) -> bool {
        matches!(self, Strategy::NodeRr | Strategy::NodeNone)
    }

    /// Whether a primary (or parent) does work per connection that we measure: the cluster
    /// primaries (even under `SCHED_NONE`, where the answer is "almost none") and the parent
    /// that forks per connection. Pre-fork's and `SO_REUSEPORT`'s parents only wait.
    pub fn has_primary(self) -> bool {
        !matches!(self, Strategy::Prefork | Strategy::Reuseport)
    }

    /// Whether "each worker's share" means anything: fork per connection has no workers,
    /// only a child per connection.
    pub fn has_workers(self) -> bool {
        self != Strategy::Fork
    }
}

/// What a helper server is to do, as the hidden subcommand `bench-server` takes it:
/// `bench-server --strategy rr --workers 2 --port 41234 --lifetime 40` is our round robin,
/// 2 workers, port 41234, for at most 40 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct ServerSpec {
    /// One of ours: rr, none, prefork, reuseport, fork (Node's run as `node`, not as helpers)
    #[arg(long, value_parser = our_strategy)]
    pub strategy: Strategy,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// The port to serve (ours are told one; only Node's script picks its own)
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Seconds after which it stops by itself, should nobody stop it
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lifetime: u64,
}

impl ServerSpec {
    /// The subcommand and its arguments, for [`ThisProgram::command`].
    pub fn to_args(self) -> Vec<String> {
        let words = [
            "bench-server",
            "--strategy",
            self.strategy.name(),
            "--workers",
            &self.workers.to_string(),
            "--port",
            &self.port.to_string(),
            "--lifetime",
            &self.lifetime.to_string(),
        ];
        words.map(String::from).to_vec()
    }
}

/// `--strategy` of `bench-server`: a strategy of ours.
fn our_strategy(name: &str) -> Result<Strategy, String> {
    match Strategy::from_name(name) {
        Some(s) if !s.is_node() => Ok(s),
        _ => Err("choose rr, none, prefork, reuseport or fork".to_string()),
    }
}

/// The line a helper prints once it is ready to be measured.
const READY: &str = "ready";

// ANCHOR: serve_role
/// The helper's whole life: serve as `spec` says, silently, until `SIGTERM` (or its
/// lifetime is up), then stop every worker or child it started.
pub fn serve_role(spec: &ServerSpec) -> ExitCode {
    trace::init(trace::Format::Off, false, false);
    sys::install_interrupt_handler();
    let addr = SocketAddr::new(LOOPBACK, spec.port);
    let until = Until::lifetime(Duration::from_secs(spec.lifetime));
    let workers = spec.workers as usize;
    let ready = || println!("{READY}");
    let result = match spec.strategy {
        Strategy::Rr | Strategy::None => return lab_role(spec),
        Strategy::Prefork => serve::prefork(addr, workers, until, ready),
        Strategy::Reuseport => serve::reuseport(addr, workers, until, ready),
        Strategy::Fork => serve::fork_per_connection(addr, until, ready),
        Strategy::NodeRr | Strategy::NodeNone => {
            eprintln!(
                "error: {} is Node's, not a helper of ours",
                spec.strategy.name()
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Our cluster: the lab, as `cluster-walkthrough lab --serve` runs it, with tracing off. The
/// lab has no "ready" line of its own; the benchmark's warm-up waits until every worker has
/// answered instead.
fn lab_role(spec: &ServerSpec) -> ExitCode {
    let args = LabArgs {
        workers: spec.workers,
        policy: Some(match spec.strategy {
            Strategy::Rr => PolicyArg::Rr,
            _ => PolicyArg::None,
        }),
        port: spec.port,
        serve: Some(spec.lifetime),
        no_syscalls: true,
        ..LabArgs::default()
    };
    match lab::run(&args) {
        Ok(_) | Err(lab::LabError::Interrupted) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
// ANCHOR_END: serve_role

/// The Node script: a primary and `W` workers serving the same answer as ours.
pub fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/bench-cluster.js")
}

/// The Node the benchmark runs: the line our mirror follows by default (24, the newest LTS),
/// found as every other Node of this project is (`$CLUSTER_WALKTHROUGH_NODE_24`, `node` on
/// `PATH` if it is a 24, else `.node-versions/24/`). Not simply `node` on `PATH`: on Debian
/// that is Node 20, which is past its end of life.
fn node_binary() -> Option<PathBuf> {
    let want = Want::Major(NodeLine::default().major());
    node_source::find_node(want).ok().map(|n| n.path)
}

/// The benchmarked Node's `--version`, if it runs (and the script is there).
pub fn node_version() -> Option<String> {
    if !node_script().is_file() {
        return None;
    }
    let mut cmd = Command::new(node_binary()?);
    cmd.arg("--version");
    let out = helper::run(&mut cmd, Capture::Both, Duration::from_secs(10)).ok()?;
    out.status.success().then(|| out.stdout.trim().to_string())
}

/// A server under test. Dropping it stops and reaps it (see the module's doc).
pub struct RunningServer {
    /// The server's first process, or `strace` when it runs under strace.
    helper: Running,
    /// Whether `helper` is `strace`, with the server as its child.
    traced: bool,
    pub strategy: Strategy,
    pub addr: SocketAddr,
    /// The server's first process: its primary, or the parent of chapter 9's children.
    pub root: u32,
    /// The pid whose CPU time is "the primary's".
    pub primary: Option<u32>,
}

impl RunningServer {
    /// Start `strategy` with `workers` workers on `port` (0: a free one), and wait until it
    /// says it is ready (at most 15 s). It ends by itself after `lifetime`.
    pub fn start(
        strategy: Strategy,
        workers: u32,
        port: u16,
        program: &ThisProgram,
        lifetime: Duration,
    ) -> Result<RunningServer, BenchError> {
        RunningServer::start_maybe_traced(strategy, workers, port, program, lifetime, None)
    }

    /// [`RunningServer::start`], under `strace -f -ttt`, which writes every system call of
    /// every process of the server, with the time it was made, to `trace` (see
    /// `super::syscalls`).
    pub fn start_traced(
        strategy: Strategy,
        workers: u32,
        port: u16,
        program: &ThisProgram,
        lifetime: Duration,
        trace: &Path,
    ) -> Result<RunningServer, BenchError> {
        RunningServer::start_maybe_traced(strategy, workers, port, program, lifetime, Some(trace))
    }

    fn start_maybe_traced(
        strategy: Strategy,
        workers: u32,
        port: u16,
        program: &ThisProgram,
        lifetime: Duration,
        trace: Option<&Path>,
    ) -> Result<RunningServer, BenchError> {
        let start_error = |why: String| BenchError::Start {
            strategy: strategy.name(),
            why,
        };
        let lifetime_secs = lifetime.as_secs().max(1);
        // Node's script binds port 0 itself and says which port it got; ours are told one.
        let port = match port {
            0 if !strategy.is_node() => {
                free_port().map_err(|e| start_error(format!("no free port: {e}")))?
            }
            p => p,
        };
        let mut cmd = match strategy {
            Strategy::NodeRr | Strategy::NodeNone => {
                node_command(strategy, workers, port, lifetime_secs)
            }
            _ => {
                let spec = ServerSpec {
                    strategy,
                    workers,
                    port,
                    lifetime: lifetime_secs,
                };
                program
                    .command(spec.to_args())
                    .map_err(|e| start_error(e.to_string()))?
            }
        };
        if let Some(out) = trace {
            cmd = under_strace(&cmd, out);
        }
        let helper =
            helper::spawn(&mut cmd, Capture::Both).map_err(|e| start_error(e.to_string()))?;
        let pid = helper.pid();
        let mut server = RunningServer {
            helper,
            traced: trace.is_some(),
            strategy,
            addr: SocketAddr::new(LOOPBACK, port),
            root: pid,
            primary: strategy.has_primary().then_some(pid),
        };
        server.wait_ready()?;
        if server.traced {
            // strace's one child is the server (our lab says nothing when it is ready, so it
            // may take strace a moment to start it).
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            let root = loop {
                match children(&parents(), pid).first() {
                    Some(&root) => break Some(root),
                    None if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    None => break None,
                }
            };
            let root = root.ok_or_else(|| server.failed("strace started no server"))?;
            server.root = root;
            server.primary = strategy.has_primary().then_some(root);
        }
        Ok(server)
    }

    /// The first line of a helper's output says it is ready (and Node's says on which port);
    /// our lab says nothing, and the warm-up does the waiting.
    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let says_ready = !matches!(self.strategy, Strategy::Rr | Strategy::None);
        if self.strategy.is_node() {
            let line = self.first_line()?;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let port = v.get("port").and_then(serde_json::Value::as_u64);
            let port = port.and_then(|p| u16::try_from(p).ok());
            let port = port.ok_or_else(|| self.failed(&line))?;
            self.addr.set_port(port);
        } else if says_ready {
            let line = self.first_line()?;
            if line != READY {
                return Err(self.failed(&line));
            }
        }
        if let Ok(Some(status)) = self.helper.wait(Duration::ZERO) {
            return Err(self.failed(&format!("exited at once ({status})")));
        }
        Ok(())
    }

    fn first_line(&mut self) -> Result<String, BenchError> {
        match self.helper.first_line(Duration::from_secs(15)) {
            Some(line) => Ok(line),
            None => Err(self.failed("did not say it was ready within 15 s")),
        }
    }

    fn failed(&mut self, what: &str) -> BenchError {
        self.stop();
        let stderr = self.helper.stderr_so_far();
        let stderr = stderr.trim();
        // A few lines are enough to say why; a server that talks on is cut short.
        let stderr = match stderr.char_indices().nth(4096) {
            Some((cut, _)) => &stderr[..cut],
            None => stderr,
        };
        BenchError::Start {
            strategy: self.strategy.name(),
            why: match stderr.is_empty() {
                true => what.to_string(),
                false => format!("{what}; it said: {stderr}"),
            },
        }
    }

    /// The primary's CPU time so far, in clock ticks (`utime + stime`).
    pub fn primary_cpu_ticks(&self) -> Option<u64> {
        let pid = self.primary?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stats::cpu_ticks_from_stat(&stat)
    }

    /// The CPU time so far of every process of the server, in clock ticks: each one's
    /// `utime + stime`, and the children each has reaped (`cutime + cstime`: fork per
    /// connection's children).
    pub fn server_cpu_ticks(&self) -> Option<u64> {
        let tree = tree(&parents(), self.root);
        let stats = tree
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok());
        let ticks: Vec<u64> = stats
            .filter_map(|s| stats::cpu_ticks_with_children_from_stat(&s))
            .collect();
        (!ticks.is_empty()).then(|| ticks.iter().sum())
    }

    /// `SIGTERM`, up to 5 s for the tree to stop itself, then `SIGKILL`; always reaped.
    /// Under strace the server gets the `SIGTERM`, so that strace sees it stop and writes
    /// every call before it ends; a killed strace would leave the trace cut short.
    pub fn stop(&mut self) {
        if self.traced && matches!(self.helper.wait(Duration::ZERO), Ok(None)) {
            sys::kill(self.root, sys::Signal::SIGTERM);
            let _ = self.helper.wait(Duration::from_secs(10));
        }
        self.helper.stop(Duration::from_secs(5));
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `node tests/node/bench-cluster.js W POLICY PORT SECONDS`.
fn node_command(strategy: Strategy, workers: u32, port: u16, lifetime_secs: u64) -> Command {
    let policy = match strategy {
        Strategy::NodeRr => "rr",
        _ => "none",
    };
    let mut cmd = Command::new(node_binary().unwrap_or_else(|| PathBuf::from("node")));
    cmd.arg(node_script()).args([
        workers.to_string(),
        policy.to_string(),
        port.to_string(),
        lifetime_secs.to_string(),
    ]);
    cmd
}

/// `strace -f -qq -ttt -o OUT -- [setpriv --pdeathsig KILL --] <cmd>`: every system call of
/// every process and thread, each line with its process or thread id and the time it was made,
/// and the server killed if strace dies (a killed strace would only detach it). `cmd`'s
/// environment goes along.
fn under_strace(cmd: &Command, out: &Path) -> Command {
    strace::wrap(&["-f", "-qq", "-ttt", "-s", "0"], out, cmd)
}

/// Every process's parent, from `/proc/*/stat`.
fn parents() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    pids.filter_map(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some((pid, stats::ppid_from_stat(&stat)?))
    })
    .collect()
}

/// The children of `pid`, in pid order.
fn children(parents: &[(u32, u32)], pid: u32) -> Vec<u32> {
    let mut kids: Vec<u32> = parents
        .iter()
        .filter(|(_, ppid)| *ppid == pid)
        .map(|(p, _)| *p)
        .collect();
    kids.sort_unstable();
    kids
}

/// `pid` and every process below it.
fn tree(parents: &[(u32, u32)], pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        all.extend(children(parents, p));
        i += 1;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_processes() {
        let parents = [(10, 1), (11, 10), (12, 10), (13, 11), (20, 1)];
        assert_eq!(children(&parents, 10), [11, 12]);
        assert_eq!(tree(&parents, 10), [10, 11, 12, 13]);
        assert_eq!(tree(&parents, 13), [13]);
    }
}
