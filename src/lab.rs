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

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde_json::{Value, json};

use crate::channel::{WireLog, WireRecord};
use crate::cluster::child::{self, GotHandle, Runtime, WorkerEvent};
use crate::cluster::primary::{Event, Primary, Settings};
use crate::cluster::{self, SchedulingPolicy};
use crate::errors::NetError;
use crate::http;
use crate::net::{self, AddressType, ListenOptions, ListenStep, Server, ServerHandle};
use crate::sys::{self, Transport};
use crate::tcp_wrap::TcpHandle;
use crate::trace;

/// Parse lab flags from words (`["--workers", "2"]`), as `cluster-walkthrough lab` would.
pub fn parse_args<I, S>(words: I) -> Result<LabArgs, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: LabArgs,
    }
    let words =
        std::iter::once(std::ffi::OsString::from("lab")).chain(words.into_iter().map(Into::into));
    <Cli as clap::Parser>::try_parse_from(words).map(|c| c.args)
}

/// The environment variable that carries the worker's part of the configuration.
pub const WORKER_ENV: &str = "CLUSTER_WALKTHROUGH_WORKER";

/// The scheduling policy as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    Rr,
    None,
}

/// `cluster-walkthrough lab`: every knob.
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// Number of workers (1 to 64)
    #[arg(long, default_value_t = 4)]
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
    /// Servers each worker starts on the same address and port (shows the key's index; 0: none)
    #[arg(long, default_value_t = 1)]
    pub servers_per_worker: u32,
    /// listen({ exclusive: true }): every worker binds for itself
    #[arg(long)]
    pub exclusive: bool,
    /// UDP sockets (dgram) instead of TCP servers
    #[arg(long)]
    pub udp: bool,
    /// Workers handle 'error' (server.on('error')) and stay up, instead of crashing
    #[arg(long)]
    pub handle_errors: bool,
    /// Client connections to make, one after another, once all workers listen
    #[arg(long, default_value_t = 0)]
    pub connections: u32,
    /// SIGKILL this worker mid-run...
    #[arg(long, requires = "after")]
    pub kill_worker: Option<u32>,
    /// ...after this many connections
    #[arg(long)]
    pub after: Option<u32>,
    /// Print every channel message as it is sent, verbatim
    #[arg(long)]
    pub trace_wire: bool,
    /// Keep the cluster up (for SECONDS, or until Ctrl-C) and print its address
    #[arg(long, num_args = 0..=1, default_missing_value = "0", value_name = "SECONDS")]
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
    #[arg(long, value_delimiter = ',', requires = "exec")]
    pub exec_workers: Vec<u32>,
    /// Keep a log of every channel message the primary sees (for diagrams; not a flag).
    #[arg(skip)]
    pub record_wire: bool,
    /// Hide the syscall lines
    #[arg(long)]
    pub no_syscalls: bool,
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
    #[error("no worker is listening, so there is nothing to connect to")]
    NobodyListening,
    #[error("interrupted; every worker was stopped")]
    Interrupted,
}

/// The worker's part of the configuration, handed over in [`WORKER_ENV`].
#[derive(Debug, Clone)]
struct WorkerPlan {
    host: IpAddr,
    port: u16,
    servers: u32,
    exclusive: bool,
    udp: bool,
    handle_errors: bool,
}

impl WorkerPlan {
    fn to_env(&self) -> String {
        json!({"host": self.host.to_string(), "port": self.port, "servers": self.servers,
               "exclusive": self.exclusive, "udp": self.udp, "handle_errors": self.handle_errors})
        .to_string()
    }

    fn from_env() -> Option<Self> {
        let v: Value = serde_json::from_str(&std::env::var(WORKER_ENV).ok()?).ok()?;
        Some(Self {
            host: v.get("host")?.as_str()?.parse().ok()?,
            port: u16::try_from(v.get("port")?.as_u64()?).ok()?,
            servers: u32::try_from(v.get("servers")?.as_u64()?).ok()?,
            exclusive: v.get("exclusive")?.as_bool()?,
            udp: v.get("udp")?.as_bool()?,
            handle_errors: v.get("handle_errors")?.as_bool()?,
        })
    }
}

/// What the primary learned about one worker.
#[derive(Debug, Default, Clone)]
struct Record {
    pid: u32,
    ports: Vec<u16>,
    errors: Vec<Value>,
    settled: bool,
    /// Runs `--exec`: a program that speaks Node's protocol but not the lab's messages.
    foreign: bool,
    disconnected: bool,
    exit: Option<(Option<i32>, Option<i32>)>,
    served: u32,
}

/// Everything the lab run produced, for the summary.
#[derive(Debug, Default)]
pub struct Outcome {
    records: BTreeMap<u32, Record>,
    answered_by: Vec<Option<u32>>,
    problems: Vec<String>,
    policy: Option<SchedulingPolicy>,
    /// What `record_wire` kept: channel messages, plus the client's requests and answers as
    /// records from/to `client`.
    wire: Vec<WireRecord>,
}

impl Outcome {
    /// Who answered each connection, in order (`None`: nobody did).
    pub fn answered_by(&self) -> &[Option<u32>] {
        &self.answered_by
    }

    /// The recorded messages (empty unless `record_wire` was set).
    pub fn wire(&self) -> &[WireRecord] {
        &self.wire
    }

    /// The final summary as JSON.
    pub fn to_json(&self) -> Value {
        let workers: Vec<Value> = self
            .records
            .iter()
            .map(|(id, r)| {
                json!({"id": id, "pid": r.pid, "ports": r.ports, "errors": r.errors, "served": r.served,
                       "exit": r.exit.map(|(c, s)| json!({"code": c, "signal": s.map(sys::signal_name)}))})
            })
            .collect();
        let errors: Vec<Value> = self
            .records
            .values()
            .flat_map(|r| r.errors.clone())
            .collect();
        json!({"summary": {
            "policy": self.policy.map(SchedulingPolicy::name),
            "workers": workers,
            "answered_by": self.answered_by,
            "counts": self.counts(),
            "errors": errors,
            "problems": self.problems,
        }})
    }

    fn counts(&self) -> BTreeMap<String, u32> {
        let mut c = BTreeMap::new();
        for id in self.records.keys() {
            c.insert(id.to_string(), 0);
        }
        for id in self.answered_by.iter().flatten() {
            *c.entry(id.to_string()).or_insert(0) += 1;
        }
        c
    }
}

// ANCHOR: worker_entry
/// Run first in every `main`: in a process started by `cluster.fork()`, be the worker and
/// return its exit code; anywhere else, return `None` and let the program go on.
pub fn worker_entry() -> Option<ExitCode> {
    let id = std::env::var(cluster::NODE_UNIQUE_ID).ok()?;
    trace::init_from_env();
    trace::set_label(&format!("worker {id}"));
    let rt = match child::setup_worker()? {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let Some(plan) = WorkerPlan::from_env() else {
        eprintln!("error: started as a worker without a plan ({WORKER_ENV} is missing or bad)");
        return Some(ExitCode::FAILURE);
    };
    Some(LabWorker::new(rt, plan).run())
}
// ANCHOR_END: worker_entry

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

fn validate(args: &LabArgs) -> Result<IpAddr, LabError> {
    if !(1..=64).contains(&args.workers) {
        return Err(LabError::BadInput(format!(
            "--workers {} is out of range: choose 1 to 64",
            args.workers
        )));
    }
    if args.servers_per_worker > 8 {
        return Err(LabError::BadInput(
            "--servers-per-worker must be 0 to 8".into(),
        ));
    }
    if let Some(id) = args.kill_worker
        && (id == 0 || id > args.workers)
    {
        return Err(LabError::BadInput(format!(
            "--kill-worker {id}: there is no such worker"
        )));
    }
    if args.connections > 100_000 {
        return Err(LabError::BadInput(
            "--connections must be at most 100000".into(),
        ));
    }
    resolve_host(&args.host)
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
    let plan = WorkerPlan {
        host,
        port: args.port,
        servers: args.servers_per_worker,
        exclusive: args.exclusive,
        udp: args.udp,
        handle_errors: args.handle_errors,
    };
    let mut settings = Settings::this_program()
        .map_err(|e| LabError::BadInput(format!("cannot find this program's path: {e}")))?;
    settings.env.push((WORKER_ENV.into(), plan.to_env()));
    settings.env.push(("HOST".into(), host.to_string()));
    settings.env.push(("PORT".into(), args.port.to_string()));
    let foreign = args.exec.split_first().map(|(exec, rest)| Settings {
        exec: exec.into(),
        args: rest.iter().map(Into::into).collect(),
        env: settings.env.clone(),
    });
    let mut lab = Lab {
        foreign,
        primary: Primary::new(settings, policy),
        out: Outcome {
            policy: Some(policy),
            ..Outcome::default()
        },
        log: None,
    };
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
    lab.disconnect_one_by_one();
    if let Some(log) = lab.log.take() {
        lab.out.wire = log.borrow().clone();
    }
    Ok(lab.out)
}

struct Lab {
    /// `--exec`: how to start a worker that is not this program.
    foreign: Option<Settings>,
    primary: Primary,
    out: Outcome,
    log: Option<WireLog>,
}

impl Lab {
    /// Turn the primary's events into the records.
    fn drain(&mut self) {
        while let Some(ev) = self.primary.next_event() {
            self.record(ev);
        }
    }

    fn record(&mut self, ev: Event) {
        match ev {
            Event::Online { .. } => {}
            Event::Listening { id, port, .. } => {
                let r = self.out.records.entry(id).or_default();
                r.ports.push(port);
                if r.foreign {
                    trace::step(&format!("worker {id} is listening (port {port})"));
                }
            }
            Event::Message { id, msg } => self.on_user_message(id, &msg),
            Event::Disconnect { id } => self.out.records.entry(id).or_default().disconnected = true,
            Event::Exit { id, code, signal } => {
                let r = self.out.records.entry(id).or_default();
                r.exit = Some((code, signal));
                r.settled = true;
            }
            Event::Problem { what, .. } => self.out.problems.push(what),
        }
    }

    fn on_user_message(&mut self, id: u32, msg: &Value) {
        let r = self.out.records.entry(id).or_default();
        match msg.get("lab").and_then(Value::as_str) {
            Some("ready") => {
                r.settled = true;
                if r.ports.is_empty() {
                    let ports = msg.get("ports").and_then(Value::as_array);
                    let ports = ports.into_iter().flatten().filter_map(Value::as_u64);
                    r.ports = ports.map(|p| p as u16).collect();
                }
                // Printed once the worker is done, so its own lines cannot interleave.
                for port in &r.ports {
                    trace::step(&format!("worker {id} is listening (port {port})"));
                }
            }
            // The worker exits after an error; it is settled once the primary has seen that.
            Some("error") => r
                .errors
                .push(msg.get("error").cloned().unwrap_or(Value::Null)),
            Some("served") => r.served += 1,
            _ => {}
        }
    }

    /// Run the loop until `done` or the deadline; returns whether `done` became true.
    fn pump_until(&mut self, limit: Duration, done: impl Fn(&Outcome, &Primary) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.drain();
            if done(&self.out, &self.primary) {
                return true;
            }
            if Instant::now() >= deadline || sys::interrupted() {
                return false;
            }
            self.primary.poll(&[], Duration::from_millis(20));
        }
    }

    fn start_workers(&mut self, args: &LabArgs) -> Result<(), LabError> {
        let mut ids = Vec::new();
        let servers = args.servers_per_worker as usize;
        for n in 1..=args.workers {
            let foreign = self
                .foreign
                .clone()
                .filter(|_| args.exec_workers.is_empty() || args.exec_workers.contains(&n));
            let id = match &foreign {
                Some(settings) => self.primary.fork_with(settings)?,
                None => self.primary.fork()?,
            };
            let pid = self.primary.pid(id).unwrap_or(0);
            let r = self.out.records.entry(id).or_default();
            r.pid = pid;
            r.foreign = foreign.is_some();
            ids.push(id);
            if !args.parallel_start {
                self.wait_settled(id, servers)?;
            }
        }
        for id in ids {
            self.wait_settled(id, servers)?;
        }
        Ok(())
    }

    /// Wait until a worker said it is ready (ours), has listened `servers` times (a foreign
    /// worker, which does not speak the lab's messages), or has exited.
    fn wait_settled(&mut self, id: u32, servers: usize) -> Result<(), LabError> {
        interrupted()?;
        let ok = self.pump_until(Duration::from_secs(10), |o, _| {
            o.records.get(&id).is_some_and(|r| {
                r.settled || (r.foreign && r.ports.len() >= servers && servers > 0)
            })
        });
        ok.then_some(()).ok_or(LabError::StartTimeout(id))
    }

    /// The port to connect to: what the first listening worker reported.
    fn target(&self, host: IpAddr) -> Option<SocketAddr> {
        self.out
            .records
            .values()
            .find_map(|r| r.ports.first())
            .map(|p| SocketAddr::new(host, *p))
    }

    fn connect_all(&mut self, args: &LabArgs, host: IpAddr) -> Result<(), LabError> {
        if args.connections == 0 {
            return Ok(());
        }
        let target = self.target(host).ok_or(LabError::NobodyListening)?;
        trace::set_label("client");
        trace::step(&format!(
            "{} connections to {target}, one after another",
            args.connections
        ));
        for n in 1..=args.connections {
            interrupted()?;
            if let (Some(id), Some(after)) = (args.kill_worker, args.after)
                && after == n - 1
            {
                self.kill(id);
            }
            self.log_client("client", "primary", &format!("connection {n}"));
            let who = if args.udp {
                self.udp_request(target)
            } else {
                self.tcp_request(target)
            };
            trace::set_label("client");
            match who {
                Some(w) => trace::ok(&format!("connection {n} answered by worker {w}")),
                None => trace::problem(&format!("connection {n}: no answer")),
            }
            let from = who.map_or("nobody".to_string(), |w| format!("worker {w}"));
            self.log_client(&from, "client", &format!("answer to connection {n}"));
            self.out.answered_by.push(who);
        }
        trace::set_label("primary");
        Ok(())
    }

    /// `cluster.disconnect()`, one worker at a time so the trace reads the same on every run;
    /// anything still there after a grace period is killed. Every worker is reaped.
    fn disconnect_one_by_one(&mut self) {
        trace::set_label("primary");
        trace::step("cluster.disconnect()");
        for id in self.primary.worker_ids() {
            self.primary.disconnect(id);
            self.pump_until(Duration::from_secs(3), |o, _| {
                o.records.get(&id).is_some_and(|r| r.exit.is_some())
            });
        }
        self.primary.shutdown(Duration::from_secs(1));
        self.drain();
    }

    /// The client's side of the story, for the recorded log.
    fn log_client(&self, from: &str, to: &str, line: &str) {
        if let Some(log) = &self.log {
            log.borrow_mut().push(WireRecord {
                from: from.to_string(),
                to: to.to_string(),
                line: line.to_string(),
                fd: false,
            });
        }
    }

    fn kill(&mut self, id: u32) {
        trace::set_label("primary");
        self.primary.kill(id, nix::sys::signal::Signal::SIGKILL);
        self.pump_until(Duration::from_secs(5), |o, _| {
            o.records
                .get(&id)
                .is_some_and(|r| r.exit.is_some() && r.disconnected)
        });
    }

    /// One HTTP request; the primary's loop runs while we wait for the answer.
    fn tcp_request(&mut self, target: SocketAddr) -> Option<u32> {
        let limit = Duration::from_secs(5);
        let mut stream = http::start_get(target, limit).ok()?;
        let mut got = Vec::new();
        let deadline = Instant::now() + limit;
        trace::set_label("primary");
        while Instant::now() < deadline {
            let extra: [(RawFd, bool); 1] = [(stream.as_raw_fd(), false)];
            let ready = self.primary.poll(&extra, Duration::from_millis(50));
            self.drain();
            if !ready.first().is_some_and(|r| r.readable) {
                continue;
            }
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        http::answered_by(&String::from_utf8_lossy(&got))
    }

    /// One UDP datagram; the reply names the worker.
    fn udp_request(&mut self, target: SocketAddr) -> Option<u32> {
        let sock = std::net::UdpSocket::bind(SocketAddr::new(target.ip(), 0)).ok()?;
        sock.set_nonblocking(true).ok()?;
        sock.send_to(b"ping", target).ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        trace::set_label("primary");
        while Instant::now() < deadline {
            let extra: [(RawFd, bool); 1] = [(sock.as_raw_fd(), false)];
            let ready = self.primary.poll(&extra, Duration::from_millis(50));
            self.drain();
            if ready.first().is_some_and(|r| r.readable) {
                let mut buf = [0u8; 256];
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    return http::answered_by(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }
        None
    }

    /// `--serve`: keep the cluster up for a reader's own `curl`.
    fn serve(&mut self, host: IpAddr, secs: u64) {
        let Some(target) = self.target(host) else {
            return;
        };
        trace::set_label("primary");
        let how_long = if secs == 0 {
            "until Ctrl-C".to_string()
        } else {
            format!("for {secs} s")
        };
        trace::step(&format!(
            "serving on http://{target}/ {how_long}; try: curl http://{target}/"
        ));
        let limit = if secs == 0 {
            Duration::from_secs(24 * 3600)
        } else {
            Duration::from_secs(secs)
        };
        let deadline = Instant::now() + limit;
        // For the reliability tests only: prove that a primary that panics takes its
        // workers with it (Drop kills and reaps them; the kernel's parent-death signal backs
        // that up).
        if std::env::var_os("CLUSTER_WALKTHROUGH_TEST_PANIC").is_some() {
            panic!("CLUSTER_WALKTHROUGH_TEST_PANIC is set");
        }
        while Instant::now() < deadline && !sys::interrupted() && self.primary.has_workers() {
            self.primary.poll(&[], Duration::from_millis(100));
            self.drain();
        }
        if sys::interrupted() {
            trace::step("interrupted: stopping the workers");
        }
    }
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
    if !out.answered_by.is_empty() {
        let seq: Vec<String> = out
            .answered_by
            .iter()
            .map(|w| w.map_or("-".to_string(), |w| w.to_string()))
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
    let listening = out.records.values().filter(|r| !r.ports.is_empty()).count();
    trace::step(&format!(
        "{} workers: {listening} listening, {errors} failed to listen",
        out.records.len()
    ));
}

/// A lab whose workers were all meant to listen and none did has failed: say why in a few
/// words (the first error, or how the first worker ended).
fn nobody_listened(args: &LabArgs, out: &Outcome) -> Option<String> {
    if args.servers_per_worker == 0 || out.records.values().any(|r| !r.ports.is_empty()) {
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
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One server slot in a lab worker.
enum Slot {
    Tcp(Server),
    Udp(Option<OwnedFd>),
}

/// The lab's worker: K servers, HTTP (or UDP) answers naming itself.
struct LabWorker {
    rt: Option<Runtime>,
    plan: WorkerPlan,
    slots: Vec<Slot>,
    pending: usize,
    conns: Vec<http::Conn>,
    pid: u32,
    /// The answer, the same for every request: rendered once.
    response: Vec<u8>,
    /// The poll set, refilled every turn but kept (no allocation per turn).
    pollset: sys::PollSet,
}

impl LabWorker {
    fn new(rt: Runtime, plan: WorkerPlan) -> Self {
        let pid = std::process::id();
        Self {
            response: http::response(rt.id, pid),
            rt: Some(rt),
            plan,
            slots: Vec::new(),
            pending: 0,
            conns: Vec::new(),
            pid,
            pollset: sys::PollSet::new(),
        }
    }

    fn id(&self) -> u32 {
        self.rt.as_ref().map_or(0, |r| r.id)
    }

    fn run(mut self) -> ExitCode {
        let mut step = self.listen_next();
        loop {
            if let Err(e) = step {
                if !self.plan.handle_errors {
                    return self.fail(&e);
                }
                self.report(&e);
                step = self.listen_next();
                continue;
            }
            step = match self.turn() {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::SUCCESS,
                Err(e) => Err(e),
            };
        }
    }

    /// An `'error'` the program handles: print it and tell the primary; the worker stays.
    fn report(&mut self, e: &NetError) {
        trace::error(e);
        if let Some(rt) = self.rt.as_mut() {
            rt.send_user(json!({"lab": "error", "error": e.to_json()}));
        }
    }

    /// An unhandled `'error'` event: print it, tell the primary, exit with 1.
    fn fail(&mut self, e: &NetError) -> ExitCode {
        trace::error(e);
        if let Some(rt) = self.rt.as_mut() {
            rt.send_user(json!({"lab": "error", "error": e.to_json()}));
            let deadline = Instant::now() + Duration::from_secs(1);
            while rt.wants_write() && Instant::now() < deadline {
                rt.flush();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        ExitCode::FAILURE
    }

    /// Start the next listen once the previous one has its answer: the lab's choice (Node
    /// would send every `queryServer` at once), so that the trace reads the same on every run.
    fn listen_next(&mut self) -> Result<(), NetError> {
        while self.pending == 0 && self.slots.len() < self.plan.servers as usize {
            self.listen(self.slots.len())?;
        }
        self.check_ready();
        Ok(())
    }

    fn check_ready(&mut self) {
        if self.pending == 0
            && self.slots.len() == self.plan.servers as usize
            && let Some(rt) = self.rt.as_mut()
        {
            let ports: Vec<u16> = self
                .slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Tcp(server) => server.address().map(|a| a.port()),
                    Slot::Udp(fd) => fd
                        .as_ref()
                        .and_then(|f| sys::getsockname(f.as_fd()).ok())
                        .map(|a| a.port()),
                })
                .collect();
            rt.send_user(json!({"lab": "ready", "ports": ports}));
        }
    }

    // ANCHOR: worker_listen
    /// `server.listen({ port, host, exclusive })` in the worker: either done here
    /// (`exclusive`), or a question for the primary.
    fn listen(&mut self, i: usize) -> Result<(), NetError> {
        if self.plan.udp {
            return self.bind_udp(i);
        }
        let mut server = Server::new(&format!("server {}", i + 1));
        let mut opts = ListenOptions::new(self.plan.host, self.plan.port);
        opts.exclusive = self.plan.exclusive;
        net::trace_listen_call(&server, &opts);
        match server.listen(&opts) {
            ListenStep::Listening(addr) => {
                trace::ok(&format!("{} listening on {addr}", server.name))
            }
            ListenStep::Failed(e) => {
                self.slots.push(Slot::Tcp(server));
                return Err(e);
            }
            ListenStep::AskPrimary(q) => {
                self.pending += 1;
                if let Some(rt) = self.rt.as_mut() {
                    rt.get_server(i, &q);
                }
            }
        }
        self.slots.push(Slot::Tcp(server));
        Ok(())
    }
    // ANCHOR_END: worker_listen

    /// `dgram.createSocket('udp4').bind(port, host)`: UDP always goes through the primary
    /// (unless exclusive), and always gets the shared socket.
    fn bind_udp(&mut self, i: usize) -> Result<(), NetError> {
        let host = self.plan.host;
        let port = self.plan.port;
        trace::step(&format!(
            "socket {}: bind({{ port: {port}, address: '{host}', exclusive: {} }})",
            i + 1,
            self.plan.exclusive
        ));
        if self.plan.exclusive {
            let bound = sys::socket(host, Transport::Udp)
                .and_then(|fd| sys::bind(fd.as_fd(), SocketAddr::new(host, port)).map(|_| fd));
            let (slot, result) = match bound {
                Ok(fd) => (Slot::Udp(Some(fd)), Ok(())),
                Err(e) => (
                    Slot::Udp(None),
                    Err(NetError::plain("bind", e, Some(&host.to_string()), port)),
                ),
            };
            self.slots.push(slot);
            return result;
        }
        let q = net::ServerQuery {
            address: Some(host.to_string()),
            port,
            address_type: AddressType::udp_for(host),
            fd: Some(-1),
            flags: 0,
            backlog: None,
        };
        self.pending += 1;
        if let Some(rt) = self.rt.as_mut() {
            rt.get_server(i, &q);
        }
        self.slots.push(Slot::Udp(None));
        Ok(())
    }

    /// One turn of the worker's loop. `Ok(false)`: time to exit 0.
    fn turn(&mut self) -> Result<bool, NetError> {
        let Some(rt) = self.rt.as_ref() else {
            return Ok(false);
        };
        let mut set = std::mem::take(&mut self.pollset);
        set.clear();
        set.push(rt.channel_fd().as_raw_fd(), rt.wants_write());
        for s in &self.slots {
            let fd = match s {
                Slot::Tcp(server) => server.listening_fd(),
                Slot::Udp(fd) => fd.as_ref().map(|f| f.as_fd()),
            };
            if let Some(fd) = fd {
                set.push(fd.as_raw_fd(), false);
            }
        }
        let first_conn = set.len();
        for c in &self.conns {
            set.push(c.fd.as_raw_fd(), false);
        }
        let _ = set.wait(Duration::from_millis(500)); // an error reads as "nothing ready"
        // Connections first: they were accepted before anything in this turn. (Last to
        // first, so that removing one leaves the others' places as they were.)
        for i in (0..self.conns.len()).rev() {
            if set.ready(first_conn + i).readable && self.conns[i].on_readable() {
                let conn = self.conns.remove(i);
                self.serve(conn);
            }
        }
        let mut fd_i = 1;
        for s in 0..self.slots.len() {
            let has_fd = match &self.slots[s] {
                Slot::Tcp(server) => server.listening_fd().is_some(),
                Slot::Udp(fd) => fd.is_some(),
            };
            if has_fd {
                if set.ready(fd_i).readable {
                    self.on_listener_ready(s);
                }
                fd_i += 1;
            }
        }
        let channel = set.ready(0);
        self.pollset = set;
        if channel.writable
            && let Some(rt) = self.rt.as_mut()
        {
            rt.flush();
        }
        let go_on = match channel.readable {
            true => self.on_channel(),
            false => Ok(true),
        };
        // The end of the turn: what the channel held back goes out (see `channel.rs`).
        self.flush_channel();
        go_on
    }

    /// Write what the channel holds back (only when nothing is traced does it hold anything).
    fn flush_channel(&mut self) {
        if let Some(rt) = self.rt.as_mut()
            && rt.wants_write()
        {
            rt.flush();
        }
    }

    // ANCHOR: serve
    /// A request is complete: answer it and close. The primary hears first: once the client
    /// has its answer, it moves on. When nothing is traced, the channel holds plain messages
    /// back (see `channel.rs`), so this one flush sends the connection's `NODE_HANDLE_ACK`,
    /// its `{accepted}` and the lab's `served` note in one write, still before the answer.
    fn serve(&mut self, mut conn: http::Conn) {
        if let Some(rt) = self.rt.as_mut() {
            rt.send_user(json!({"lab": "served"}));
        }
        self.flush_channel();
        conn.respond_with(&self.response);
    }

    /// A connection just arrived (from the primary, or our own `accept`). Its request is
    /// almost always there already: read it now, instead of one more `poll` to learn that.
    fn take(&mut self, mut conn: http::Conn) {
        match conn.on_readable() {
            true => self.serve(conn),
            false => self.conns.push(conn),
        }
    }
    // ANCHOR_END: serve

    fn on_channel(&mut self) -> Result<bool, NetError> {
        let Some(rt) = self.rt.as_mut() else {
            return Ok(false);
        };
        let events = match rt.on_readable() {
            Ok(ev) => ev,
            Err(e) => {
                trace::problem(&format!("the primary {e}; exiting"));
                return Ok(false);
            }
        };
        for ev in events {
            match ev {
                WorkerEvent::Server { slot, key, result } => self.on_server(slot, &key, result)?,
                WorkerEvent::Connection { fd, .. } => self.take(http::Conn::new(fd)),
                WorkerEvent::Disconnect => {
                    // The lab's own choice: close exclusive servers too, then leave.
                    self.slots.clear();
                    self.rt = None;
                    return Ok(false);
                }
                WorkerEvent::PrimaryGone => return Ok(false),
                WorkerEvent::Message(_) => {}
            }
        }
        Ok(true)
    }

    // ANCHOR: on_server
    /// The primary's answer, through Node's `listenOnPrimaryHandle`.
    fn on_server(
        &mut self,
        slot: usize,
        key: &str,
        result: Result<GotHandle, Errno>,
    ) -> Result<(), NetError> {
        self.pending = self.pending.saturating_sub(1);
        let (host, port) = (self.plan.host, self.plan.port);
        let (errno, handle) = match result {
            Err(e) => (Some(e), None),
            Ok(GotHandle::RoundRobin(fake)) => {
                trace::step(&format!(
                    "rr(): a fake handle for {key} (no socket in this process)"
                ));
                (None, Some(ServerHandle::RoundRobin(fake)))
            }
            Ok(GotHandle::Shared(fd, _)) if self.plan.udp => {
                return self.on_udp_socket(slot, key, fd);
            }
            Ok(GotHandle::Shared(fd, _)) => {
                trace::step(&format!(
                    "shared(): the primary's socket arrived as fd {}",
                    fd.as_raw_fd()
                ));
                (None, Some(ServerHandle::Tcp(TcpHandle::open(fd))))
            }
        };
        let Some(Slot::Tcp(server)) = self.slots.get_mut(slot) else {
            return Ok(());
        };
        let backlog = 0;
        let addr = net::listen_on_primary_handle(server, errno, handle, host, port, backlog)?;
        trace::ok(&format!("{} listening on {addr}", server.name));
        if let Some(rt) = self.rt.as_mut() {
            rt.send_listening(key, addr.port());
        }
        self.listen_next()
    }
    // ANCHOR_END: on_server

    fn on_udp_socket(&mut self, slot: usize, key: &str, fd: OwnedFd) -> Result<(), NetError> {
        let host = self.plan.host;
        trace::step(&format!(
            "shared(): the primary's UDP socket arrived as fd {}",
            fd.as_raw_fd()
        ));
        let _ = sys::set_reuseaddr(fd.as_fd());
        let port = sys::getsockname(fd.as_fd()).map(|a| a.port()).unwrap_or(0);
        trace::ok(&format!(
            "socket {} bound to {}",
            slot + 1,
            SocketAddr::new(host, port)
        ));
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Slot::Udp(Some(fd));
        }
        if let Some(rt) = self.rt.as_mut() {
            rt.send_listening(key, port);
        }
        self.listen_next()
    }

    /// A listening socket of ours is readable: accept (TCP) or answer a datagram (UDP).
    fn on_listener_ready(&mut self, s: usize) {
        match &self.slots[s] {
            Slot::Tcp(server) => {
                let Some(fd) = server.listening_fd() else {
                    return;
                };
                let first_new = self.conns.len();
                // One accept per wake-up, as libuv 1.46 does; a worker that loses the race for
                // a shared socket gets EAGAIN here.
                if let Ok(Some(conn)) = sys::accept4(fd, true) {
                    if trace::enabled() {
                        trace::step(&format!(
                            "{}: accepted a connection itself (fd {})",
                            server.name,
                            conn.as_raw_fd()
                        ));
                    }
                    self.conns.push(http::Conn::new(conn));
                }
                // As with a connection from the primary: the request is usually there.
                for i in (first_new..self.conns.len()).rev() {
                    if self.conns[i].on_readable() {
                        let conn = self.conns.remove(i);
                        self.serve(conn);
                    }
                }
            }
            Slot::Udp(Some(fd)) => {
                let mut buf = [0u8; 512];
                while let Ok((_, Some(from))) = sys::recv_from(fd.as_fd(), &mut buf) {
                    trace::step("datagram from the client: answering with sendmsg");
                    let _ =
                        sys::send_to(fd.as_fd(), http::body(self.id(), self.pid).as_bytes(), from);
                    if let Some(rt) = self.rt.as_mut() {
                        rt.send_user(json!({"lab": "served"}));
                    }
                }
            }
            Slot::Udp(None) => {}
        }
    }
}

/// Used by chapter programs: `Err(errno)` as an `EADDRINUSE`-style description.
pub fn describe_errno(e: Errno) -> String {
    format!("{e:?}")
}
