//! The lab: a primary with N workers, every knob Node has, and a client that shows who
//! answers. Chapters 2–7 are lab runs with different settings; `cluster-walkthrough lab`
//! lets a reader turn the knobs by hand.
//!
//! Like a Node cluster script, the same program is both sides: [`worker_entry`] runs first in
//! `main` and, in a process started by `cluster.fork()`, becomes the worker.
//!
//! One choice is ours, not Node's: the primary forks the next worker only once the previous
//! one has finished its listens (`--parallel-start` turns that off). Node's usual loop forks
//! them all at once; the mechanism is the same, but the trace would interleave differently
//! on every run.

mod driver;
mod outcome;
mod worker;

use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;

use crate::cluster::guard::BindPolicy;
use crate::cluster::primary::{Primary, Settings};
use crate::cluster::version::NodeLine;
use crate::cluster::{self, SchedulingPolicy};
use crate::sys;
use crate::trace;

use driver::Lab;
pub use outcome::Outcome;
use worker::WorkerPlan;
pub use worker::worker_entry;

/// The environment variable that carries the worker's part of the configuration.
pub const WORKER_ENV: &str = "CLUSTER_WALKTHROUGH_WORKER";

/// Limits of the lab's knobs: clap checks them on the command line, [`run`] again for
/// callers that build a [`LabArgs`] themselves.
pub const MAX_WORKERS: u32 = 64;
pub const MAX_SERVERS_PER_WORKER: u32 = 8;
pub const MAX_CONNECTIONS: u32 = 100_000;
/// A day: `--serve` longer than that is a mistake (and a huge one would overflow the clock).
pub const MAX_SERVE_SECS: u64 = 86_400;

/// The scheduling policy as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    Rr,
    None,
}

/// `cluster-walkthrough lab`: every knob. `--help` ends with the bounds on what a worker
/// can make the primary keep.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Limits a worker cannot pass: see --help.",
    after_long_help = crate::cluster::guard::limits_help()
)]
pub struct LabArgs {
    /// Number of workers (1 to 64)
    #[arg(long, default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u32,
    /// Scheduling policy (default: NODE_CLUSTER_SCHED_POLICY as Node reads it, else rr)
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// Address every server binds
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: the kernel picks one, shared by all workers)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Servers each worker starts on the same address and port (shows the key's index; 0 to 8)
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_SERVERS_PER_WORKER)))]
    pub servers_per_worker: u32,
    /// listen({ exclusive: true }): every worker binds for itself
    #[arg(long)]
    pub exclusive: bool,
    /// listen({ reusePort: true }) (Node 22+; Node 20 ignores it): every worker binds its own
    /// socket with SO_REUSEPORT and the kernel balances connections
    #[arg(long, conflicts_with = "udp")]
    pub reuse_port: bool,
    /// UDP sockets (dgram) instead of TCP servers
    #[arg(long)]
    pub udp: bool,
    /// Workers handle 'error' (server.on('error')) and stay up, instead of crashing
    #[arg(long)]
    pub handle_errors: bool,
    /// Client connections to make, one after another, once all workers listen (at most 100000)
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_CONNECTIONS)))]
    pub connections: u32,
    /// SIGKILL this worker mid-run...
    #[arg(long, requires = "after",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub kill_worker: Option<u32>,
    /// ...after this many connections (fewer than --connections)
    #[arg(long, requires = "kill_worker",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_CONNECTIONS)))]
    pub after: Option<u32>,
    /// Print every channel message as it is sent, verbatim
    #[arg(long)]
    pub trace_wire: bool,
    /// Keep the cluster up (for SECONDS, at most a day; or until Ctrl-C) and print its address
    #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_SERVE_SECS))]
    pub serve: Option<u64>,
    /// One JSON object per event, and a summary
    #[arg(long)]
    pub json: bool,
    /// Fork all workers at once, as Node's usual loop does (the trace order then varies)
    #[arg(long)]
    pub parallel_start: bool,
    /// Run this program as the worker instead of this one (e.g. `--exec node worker.js`);
    /// everything after it is the command, so put it last
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "PROGRAM [ARGS]")]
    pub exec: Vec<String>,
    /// With --exec: only these worker ids run it, the others are ours (e.g. 2,4)
    #[arg(long, value_delimiter = ',', requires = "exec",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub exec_workers: Vec<u32>,
    /// Keep a log of every channel message the primary sees (for diagrams; not a flag).
    #[arg(skip)]
    pub record_wire: bool,
    /// Hide the syscall lines
    #[arg(long)]
    pub no_syscalls: bool,
    /// Let workers bind any address and any port. Without it the primary binds only
    /// loopback ports from 1024 up, plus the --host and --port given here.
    #[arg(long)]
    pub bind_any: bool,
    /// Which Node's cluster code the mirror follows: 20 (the article's), 22, 24 or 26
    #[arg(long = "node", default_value_t = 24, value_parser = parse_node_major)]
    pub node: u32,
    /// Listen on a unix socket (Node's "pipe") instead of a host and port: PATH, or @NAME
    /// for an abstract name (Linux). Without a value: app.sock in a private temporary
    /// directory, removed at the end. The primary makes socket files in PATH's directory
    /// only; the workers find the path in SOCKET_PATH.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "PATH",
          conflicts_with_all = ["udp", "reuse_port", "port", "host"])]
    pub path: Option<String>,
    /// With --path: listen({ path, readableAll: true }), the socket file readable by all
    #[arg(long, requires = "path")]
    pub readable_all: bool,
    /// With --path: listen({ path, writableAll: true }), the socket file writable by all
    #[arg(long, requires = "path")]
    pub writable_all: bool,
}

/// `--node`: a major version the mirror knows.
pub fn parse_node_major(s: &str) -> Result<u32, String> {
    let major: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a Node major version"))?;
    NodeLine::from_major(major)
        .map(NodeLine::major)
        .ok_or_else(|| format!("Node {major}: the mirror follows 20, 22, 24 or 26"))
}

impl Default for LabArgs {
    fn default() -> Self {
        Self {
            workers: 4,
            policy: None,
            host: "127.0.0.1".into(),
            port: 0,
            servers_per_worker: 1,
            exclusive: false,
            reuse_port: false,
            udp: false,
            handle_errors: false,
            connections: 0,
            kill_worker: None,
            after: None,
            trace_wire: false,
            serve: None,
            json: false,
            parallel_start: false,
            record_wire: false,
            exec: Vec::new(),
            exec_workers: Vec::new(),
            no_syscalls: false,
            bind_any: false,
            node: 24,
            path: None,
            readable_all: false,
            writable_all: false,
        }
    }
}

/// Why the lab could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    BadInput(String),
    #[error("cannot start a worker: {0}")]
    Fork(#[from] cluster::primary::ForkError),
    #[error("worker {0} did not finish starting within 10 s")]
    StartTimeout(u32),
    /// With the first error a worker reported, if any: the reason, not only the outcome.
    #[error("no worker is listening, so there is nothing to connect to{}", .0.as_deref().map(|w| format!(" (first error: {w})")).unwrap_or_default())]
    NobodyListening(Option<String>),
    #[error("interrupted; every worker was stopped")]
    Interrupted,
}

/// Parse `--host`: an IP literal, or a name that resolves (first address).
fn resolve_host(host: &str) -> Result<IpAddr, LabError> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .ok_or_else(|| {
            LabError::BadInput(format!("--host {host:?} does not resolve to an address"))
        })
}

/// Check what clap checks on the command line (for callers that build [`LabArgs`]
/// themselves), then the flags that only make sense together; the host last.
fn validate(args: &LabArgs) -> Result<IpAddr, LabError> {
    let bad = |why: String| Err(LabError::BadInput(why));
    if !(1..=MAX_WORKERS).contains(&args.workers) {
        return bad(format!(
            "--workers {} is not in 1..={MAX_WORKERS}",
            args.workers
        ));
    }
    if args.servers_per_worker > MAX_SERVERS_PER_WORKER {
        return bad(format!(
            "--servers-per-worker must be 0 to {MAX_SERVERS_PER_WORKER}"
        ));
    }
    if args.connections > MAX_CONNECTIONS {
        return bad(format!("--connections must be at most {MAX_CONNECTIONS}"));
    }
    if args.serve.is_some_and(|secs| secs > MAX_SERVE_SECS) {
        return bad(format!("--serve must be at most {MAX_SERVE_SECS} seconds"));
    }
    if let Some(id) = args
        .exec_workers
        .iter()
        .find(|id| **id == 0 || **id > args.workers)
    {
        return bad(format!(
            "--exec-workers {id}: there is no such worker (--workers {})",
            args.workers
        ));
    }
    validate_kill(args)?;
    if args.path.as_deref().is_some_and(|p| p.starts_with('@'))
        && (args.readable_all || args.writable_all)
    {
        // Node's own words (`ERR_INVALID_ARG_VALUE` from `listen`), typo included.
        let msg =
            "can not set readableAll or writableAllt to true when path is abstract unix socket";
        return bad(format!(
            "--readable-all/--writable-all with {:?}: {msg}",
            args.path
        ));
    }
    resolve_host(&args.host)
}

/// Where `--path` puts the socket: Node's spelling of it (`\0name` for `@name`), the
/// directory the primary may make socket files in, and the private temporary directory the
/// lab made for it, if it did (removed when the lab ends).
struct PipePlace {
    path: String,
    dir: Option<std::path::PathBuf>,
    own: Option<OwnDir>,
}

/// A directory the lab made, removed with what is left in it when the lab ends.
struct OwnDir(std::path::PathBuf);

impl Drop for OwnDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pipe_place(given: &str) -> Result<PipePlace, LabError> {
    if let Some(name) = given.strip_prefix('@') {
        let (path, dir, own) = (format!("\0{name}"), None, None);
        return Ok(PipePlace { path, dir, own });
    }
    if given.is_empty() {
        let dir = sys::private_temp_dir("cluster-walkthrough-lab-")
            .map_err(|e| LabError::BadInput(format!("cannot make a temporary directory: {e}")))?;
        let path = dir.join("app.sock").display().to_string();
        let own = Some(OwnDir(dir.clone()));
        return Ok(PipePlace {
            path,
            dir: Some(dir),
            own,
        });
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let absolute = cwd.join(given);
    let dir = absolute.parent().map(std::path::Path::to_path_buf);
    if !dir.as_ref().is_some_and(|d| d.is_dir()) {
        return Err(LabError::BadInput(format!(
            "--path {given}: no such directory"
        )));
    }
    Ok(PipePlace {
        path: given.to_string(),
        dir,
        own: None,
    })
}

/// `--kill-worker N --after K`: both or neither, a worker that exists, and a kill that
/// happens (before connection K + 1, so K must be less than `--connections`).
fn validate_kill(args: &LabArgs) -> Result<(), LabError> {
    let why = match (args.kill_worker, args.after) {
        (None, None) => return Ok(()),
        (Some(_), None) => "--kill-worker needs --after".to_string(),
        (None, Some(_)) => "--after needs --kill-worker".to_string(),
        (Some(id), _) if id == 0 || id > args.workers => {
            format!("--kill-worker {id}: there is no such worker")
        }
        (Some(_), Some(after)) if after >= args.connections => format!(
            "--after {after} must be less than --connections {}, or the worker is never killed",
            args.connections
        ),
        (Some(_), Some(_)) => return Ok(()),
    };
    Err(LabError::BadInput(why))
}

/// The lab's primary: fork, wait for the listens, connect, kill if asked, disconnect.
pub fn run(args: &LabArgs) -> Result<Outcome, LabError> {
    let host = validate(args)?;
    trace::set_label("primary");
    // `cluster.schedulingPolicy = ...` before the first fork, else what the env says.
    let policy = match args.policy {
        Some(PolicyArg::Rr) => SchedulingPolicy::RoundRobin,
        Some(PolicyArg::None) => SchedulingPolicy::None,
        None => cluster::scheduling_policy_from_env(),
    };
    // reusePort on port 0 would give every worker a port of its own (each binds port 0 by
    // itself): the lab picks one free port for all of them, as a user would.
    let port = match (args.reuse_port, args.port) {
        (true, 0) => crate::loopback::free_port()
            .map_err(|e| LabError::BadInput(format!("no free port for --reuse-port: {e}")))?,
        (_, port) => port,
    };
    let pipe = args.path.as_deref().map(pipe_place).transpose()?;
    let plan = WorkerPlan {
        host,
        port,
        servers: args.servers_per_worker,
        exclusive: args.exclusive,
        reuse_port: args.reuse_port,
        udp: args.udp,
        handle_errors: args.handle_errors,
        path: pipe.as_ref().map(|p| p.path.clone()),
        readable_all: args.readable_all,
        writable_all: args.writable_all,
    };
    let mut settings = Settings::this_program()
        .map_err(|e| LabError::BadInput(format!("cannot find this program's path: {e}")))?;
    settings.env.push((WORKER_ENV.into(), plan.to_env()));
    settings.env.push(("HOST".into(), host.to_string()));
    settings.env.push(("PORT".into(), args.port.to_string()));
    if let Some(p) = &pipe {
        let shown = p.path.replacen('\0', "@", 1);
        settings.env.push(("SOCKET_PATH".into(), shown));
        for (flag, var) in [
            (args.readable_all, "SOCKET_READABLE_ALL"),
            (args.writable_all, "SOCKET_WRITABLE_ALL"),
        ] {
            if flag {
                settings.env.push((var.into(), "1".into()));
            }
        }
    }
    let foreign = args.exec.split_first().map(|(exec, rest)| Settings {
        exec: exec.into(),
        args: rest.iter().map(Into::into).collect(),
        env: settings.env.clone(),
    });
    let mut lab = Lab {
        foreign,
        pipe: None,
        primary: Primary::new(settings, policy),
        out: Outcome {
            policy: Some(policy),
            ..Outcome::default()
        },
        log: None,
    };
    let any = args.bind_any || !host.is_loopback() || (1..1024).contains(&args.port);
    let pipe_dirs = pipe.iter().filter_map(|p| p.dir.clone()).collect();
    lab.primary.set_bind_policy(BindPolicy { any, pipe_dirs });
    lab.pipe = pipe.as_ref().map(|p| p.path.clone());
    lab.primary
        .set_node(NodeLine::from_major(args.node).unwrap_or_default());
    if args.record_wire {
        lab.log = Some(lab.primary.record_wire());
    }
    trace::step(&format!(
        "scheduling policy: {} ({})",
        policy.name(),
        policy as u8
    ));
    lab.start_workers(args)?;
    lab.connect_all(args, host)?;
    if let Some(secs) = args.serve {
        lab.serve(host, secs);
    }
    lab.disconnect_one_by_one(args.exclusive || args.reuse_port);
    if let Some(log) = lab.log.take() {
        lab.out.wire = log.borrow().clone();
    }
    drop(pipe.and_then(|p| p.own)); // after every worker is gone
    Ok(lab.out)
}

/// Ctrl-C or SIGTERM arrived (only once the handler is installed: `lab::main`).
fn interrupted() -> Result<(), LabError> {
    match sys::interrupted() {
        true => Err(LabError::Interrupted),
        false => Ok(()),
    }
}

/// Print the lab's summary: a few lines of text, or one JSON object.
pub fn print_summary(out: &Outcome) {
    if trace::format() == trace::Format::Json {
        trace::json_line(&out.to_json());
        return;
    }
    trace::set_label("summary");
    if !out.answers.is_empty() {
        let seq: Vec<String> = out
            .answers
            .iter()
            .map(|a| match a {
                Some(crate::http::Answer::Worker(id)) => id.to_string(),
                Some(other) => other.to_string(),
                None => "-".to_string(),
            })
            .collect();
        trace::step(&format!("answered by: {}", seq.join(" ")));
        let counts: Vec<String> = out
            .counts()
            .iter()
            .map(|(id, n)| format!("worker {id}: {n}"))
            .collect();
        trace::step(&format!("counts: {}", counts.join(", ")));
    }
    let errors = out
        .records
        .values()
        .filter(|r| !r.errors.is_empty())
        .count();
    let listening = out.records.values().filter(|r| r.listens() > 0).count();
    trace::step(&format!(
        "{} workers: {listening} listening, {errors} failed to listen",
        out.records.len()
    ));
}

/// A lab whose workers were all meant to listen and none did has failed: say why in a few
/// words (the first error, or how the first worker ended).
fn nobody_listened(args: &LabArgs, out: &Outcome) -> Option<String> {
    if args.servers_per_worker == 0 || out.records.values().any(|r| r.listens() > 0) {
        return None;
    }
    let first = out.records.iter().next();
    let why = first.map(|(id, r)| match (r.errors.first(), r.exit) {
        (Some(e), _) => e["message"].as_str().unwrap_or("an error").to_string(),
        (None, Some((Some(code), _))) => {
            format!("worker {id} exited with code {code} before listening")
        }
        (None, Some((None, Some(sig)))) => {
            format!("worker {id} was killed by {}", sys::signal_name(sig))
        }
        _ => format!("worker {id} never listened"),
    });
    Some(why.unwrap_or_else(|| "no worker started".to_string()))
}

/// `cluster-walkthrough lab`: the whole command.
pub fn main(args: &LabArgs) -> ExitCode {
    let format = if args.json {
        trace::Format::Json
    } else {
        trace::Format::Text
    };
    trace::init(format, !args.no_syscalls, args.trace_wire);
    sys::install_interrupt_handler();
    match run(args) {
        Ok(out) => {
            print_summary(&out);
            match nobody_listened(args, &out) {
                Some(why) => {
                    eprintln!("error: no worker could listen ({why})");
                    ExitCode::FAILURE
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(LabError::Interrupted) => {
            eprintln!("interrupted; every worker was stopped");
            ExitCode::from(130)
        }
        Err(e @ LabError::BadInput(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lab-events <flags>`, the chapters' helper: runs the lab with those flags and prints its
/// JSON events and summary. (Not [`main`], which also says on stderr when no worker could
/// listen: for the chapters that is an expected outcome, and the summary says it anyway.)
pub fn events_main(args: &LabArgs) -> ExitCode {
    trace::init(trace::Format::Json, !args.no_syscalls, args.trace_wire);
    match run(args) {
        Ok(out) => {
            print_summary(&out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
