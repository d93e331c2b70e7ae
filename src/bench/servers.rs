//! The servers under test: one per strategy, each a separate process (tree) that the
//! benchmark starts, measures and stops.
//!
//! Ours are this very program in a helper role (`--role rr:2:PORT:SECS`): the lab's primary
//! and workers with tracing off, or one of chapter 9's models in serving mode. They run in a
//! process of their own for two reasons: the models fork without exec, which is only safe in
//! a process with one thread (the benchmark has many); and the primary's CPU time must be
//! its own, not mixed with the load generator's. Node's are `node tests/node/bench-cluster.js`.
//!
//! Every server is a [`RunningServer`], and dropping one stops its whole tree: `SIGTERM`
//! (each helper then stops its workers or children), then `SIGKILL` if it does not go within
//! a few seconds, and always `waitpid`. Helpers we start die with the benchmark
//! (`PR_SET_PDEATHSIG`), and each also ends by itself after a lifetime it is given.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sys::Signal;

use super::BenchError;
use super::stats;
use crate::chapter::{LOOPBACK, ROLE_ENV};
use crate::lab::{self, LabArgs, PolicyArg};
use crate::os_models::serve::{self, Until};
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

/// How to start this program in a helper role, which depends on which program we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `cluster-walkthrough bench`: run `cluster-walkthrough bench --role SPEC`.
    Subcommand,
    /// A chapter program: run it again with the same arguments and
    /// `CLUSTER_WALKTHROUGH_ROLE=bench:SPEC` (see [`chapter_role`]).
    ChapterRole,
}

/// What a helper is to do: `rr:2:41234:40` is our round robin, 2 workers, port 41234, for at
/// most 40 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    pub strategy: Strategy,
    pub workers: u32,
    pub port: u16,
    pub lifetime_secs: u64,
}

impl Role {
    pub fn to_spec(self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.strategy.name(),
            self.workers,
            self.port,
            self.lifetime_secs
        )
    }

    pub fn parse(spec: &str) -> Option<Role> {
        let mut parts = spec.split(':');
        let role = Role {
            strategy: Strategy::from_name(parts.next()?)?,
            workers: parts.next()?.parse().ok()?,
            port: parts.next()?.parse().ok()?,
            lifetime_secs: parts.next()?.parse().ok()?,
        };
        (parts.next().is_none() && !role.strategy.is_node()).then_some(role)
    }
}

/// The line a helper prints once it is ready to be measured.
const READY: &str = "ready";

// ANCHOR: serve_role
/// The helper's whole life: serve as `spec` says, silently, until `SIGTERM` (or its
/// lifetime is up), then stop every worker or child it started.
pub fn serve_role(spec: &str) -> ExitCode {
    let Some(role) = Role::parse(spec) else {
        eprintln!("error: bad bench role {spec:?}");
        return ExitCode::from(2);
    };
    trace::init(trace::Format::Off, false, false);
    sys::install_interrupt_handler();
    let addr = SocketAddr::new(LOOPBACK, role.port);
    let until = Until::lifetime(Duration::from_secs(role.lifetime_secs));
    let workers = role.workers as usize;
    let ready = || println!("{READY}");
    let result = match role.strategy {
        Strategy::Rr | Strategy::None => return lab_role(role),
        Strategy::Prefork => serve::prefork(addr, workers, until, ready),
        Strategy::Reuseport => serve::reuseport(addr, workers, until, ready),
        Strategy::Fork => serve::fork_per_connection(addr, until, ready),
        Strategy::NodeRr | Strategy::NodeNone => unreachable!("Role::parse refuses them"),
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
fn lab_role(role: Role) -> ExitCode {
    let args = LabArgs {
        workers: role.workers,
        policy: Some(match role.strategy {
            Strategy::Rr => PolicyArg::Rr,
            _ => PolicyArg::None,
        }),
        port: role.port,
        serve: Some(role.lifetime_secs),
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

/// For a chapter program's `role`: `bench:SPEC` is a benchmark helper.
pub fn chapter_role(role: &str) -> Option<ExitCode> {
    role.strip_prefix("bench:").map(serve_role)
}

/// The Node script: a primary and `W` workers serving the same answer as ours.
pub fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/bench-cluster.js")
}

/// `node --version`, if `node` runs (and the script is there).
pub fn node_version() -> Option<String> {
    if !node_script().is_file() {
        return None;
    }
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A server under test. Dropping it stops and reaps it (see the module's doc).
pub struct RunningServer {
    child: Child,
    pub strategy: Strategy,
    pub addr: SocketAddr,
    /// The pid whose CPU time is "the primary's".
    pub primary: Option<u32>,
    /// What the server said on stderr, for an error message.
    stderr: Arc<Mutex<String>>,
}

impl RunningServer {
    /// Start `strategy` with `workers` workers on `port` (0: a free one), and wait until it
    /// says it is ready (at most 15 s). It ends by itself after `lifetime`.
    pub fn start(
        strategy: Strategy,
        workers: u32,
        port: u16,
        launcher: Launcher,
        lifetime: Duration,
    ) -> Result<RunningServer, BenchError> {
        let lifetime_secs = lifetime.as_secs().max(1);
        // Node's script binds port 0 itself and says which port it got; ours are told one.
        let port = match port {
            0 if !strategy.is_node() => {
                crate::chapter::free_port().map_err(|e| BenchError::Start {
                    strategy: strategy.name(),
                    why: e.to_string(),
                })?
            }
            p => p,
        };
        let mut cmd = match strategy {
            Strategy::NodeRr | Strategy::NodeNone => {
                let mut cmd = Command::new("node");
                let policy = if strategy == Strategy::NodeRr {
                    "rr"
                } else {
                    "none"
                };
                cmd.arg(node_script()).args([
                    workers.to_string(),
                    policy.to_string(),
                    port.to_string(),
                    lifetime_secs.to_string(),
                ]);
                cmd
            }
            _ => {
                let role = Role {
                    strategy,
                    workers,
                    port,
                    lifetime_secs,
                };
                helper_command(launcher, &role.to_spec())?
            }
        };
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only calls prctl and getppid
        // (sys::die_with_parent), which are async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                sys::die_with_parent(parent);
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove(crate::cluster::NODE_UNIQUE_ID)
            .env_remove("NODE_CHANNEL_FD");
        let mut child = cmd.spawn().map_err(|e| BenchError::Start {
            strategy: strategy.name(),
            why: e.to_string(),
        })?;
        let stderr = collect(child.stderr.take());
        let lines = lines_of(child.stdout.take());
        let pid = child.id();
        let mut server = RunningServer {
            child,
            strategy,
            addr: SocketAddr::new(LOOPBACK, port),
            primary: strategy.has_primary().then_some(pid),
            stderr,
        };
        server.wait_ready(&lines)?;
        Ok(server)
    }

    /// The first line of a helper's output says it is ready (and Node's says on which port);
    /// our lab says nothing, and the warm-up does the waiting.
    fn wait_ready(&mut self, lines: &mpsc::Receiver<String>) -> Result<(), BenchError> {
        let says_ready = !matches!(self.strategy, Strategy::Rr | Strategy::None);
        if self.strategy.is_node() {
            let line = self.first_line(lines)?;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let port = v.get("port").and_then(serde_json::Value::as_u64);
            let port = port.and_then(|p| u16::try_from(p).ok());
            let port = port.ok_or_else(|| self.failed(&line))?;
            self.addr.set_port(port);
        } else if says_ready {
            let line = self.first_line(lines)?;
            if line != READY {
                return Err(self.failed(&line));
            }
        }
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(self.failed(&format!("exited at once ({status})")));
        }
        Ok(())
    }

    fn first_line(&mut self, lines: &mpsc::Receiver<String>) -> Result<String, BenchError> {
        match lines.recv_timeout(Duration::from_secs(15)) {
            Ok(line) => Ok(line),
            Err(_) => Err(self.failed("did not say it was ready within 15 s")),
        }
    }

    fn failed(&mut self, what: &str) -> BenchError {
        self.stop();
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let stderr = stderr.trim();
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

    /// `SIGTERM`, up to 5 s for the tree to stop itself, then `SIGKILL`; always reaped.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        sys::kill(self.child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// This program in the helper role `spec`.
fn helper_command(launcher: Launcher, spec: &str) -> Result<Command, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Start {
        strategy: "helper",
        why: format!("cannot find this program's path: {e}"),
    })?;
    let mut cmd = Command::new(exe);
    match launcher {
        Launcher::Subcommand => {
            cmd.args(["bench", "--role", spec]);
        }
        Launcher::ChapterRole => {
            cmd.args(std::env::args_os().skip(1))
                .env(ROLE_ENV, format!("bench:{spec}"));
        }
    }
    Ok(cmd)
}

/// Read a pipe's lines in a thread, as they come; the thread ends at end of file.
fn lines_of(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = pipe {
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line); // nobody listens after the first: fine
            }
        });
    }
    rx
}

/// Keep (the first 4 KiB of) what a pipe says, in a thread.
fn collect(pipe: Option<impl Read + Send + 'static>) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    if let Some(pipe) = pipe {
        let keep = text.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if let Ok(mut t) = keep.lock()
                    && t.len() < 4096
                {
                    t.push_str(&line);
                    t.push('\n');
                }
            }
        });
    }
    text
}
