//! The lab's primary side: fork the workers one after another, wait for their listens, make
//! the client connections, kill a worker if asked, and disconnect them one by one — turning
//! the cluster primary's events into the [`Outcome`].

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::outcome::Outcome;
use super::{LabArgs, LabError, interrupted};
use crate::channel::{WireLog, WireRecord};
use crate::cluster::primary::{Event, Primary, Settings};
use crate::http::{self, Answer};
use crate::net::{Address, Port};
use crate::pipe_wrap::Libuv;
use crate::sys;
use crate::trace;

/// Where the lab's client connects: the workers' address and port, or their pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Tcp(SocketAddr),
    /// Node's spelling: a path, or `\0name`.
    Pipe(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Pipe(p) => write!(f, "{}", Address::Pipe(p.clone())),
        }
    }
}

pub(super) struct Lab {
    /// `--exec`: how to start a worker that is not this program.
    pub(super) foreign: Option<Settings>,
    /// `--path`: the pipe every worker listens on (Node's spelling).
    pub(super) pipe: Option<String>,
    pub(super) primary: Primary,
    pub(super) out: Outcome,
    pub(super) log: Option<WireLog>,
}

impl Lab {
    /// Turn the primary's events into the records.
    pub(super) fn drain(&mut self) {
        while let Some(ev) = self.primary.next_event() {
            self.record(ev);
        }
    }

    pub(super) fn record(&mut self, ev: Event) {
        match ev {
            Event::Online { .. } => {}
            Event::Listening { id, port, address } => {
                let r = self.out.records.entry(id).or_default();
                let shown = match port {
                    Port::Number(port) => {
                        r.ports.push(port);
                        format!("port {port}")
                    }
                    Port::Pipe => {
                        let path = address.as_str().unwrap_or_default().to_string();
                        r.paths.push(path.clone());
                        format!("path {}", Address::Pipe(path))
                    }
                };
                if r.foreign {
                    trace::step(&format!("worker {id} is listening ({shown})"));
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

    pub(super) fn on_user_message(&mut self, id: u32, msg: &Value) {
        let r = self.out.records.entry(id).or_default();
        match msg.get("lab").and_then(Value::as_str) {
            Some("ready") => {
                r.settled = true;
                if r.listens() == 0 {
                    let ports = msg.get("ports").and_then(Value::as_array);
                    let ports = ports.into_iter().flatten().filter_map(Value::as_u64);
                    r.ports = ports.map(|p| p as u16).collect();
                    let paths = msg.get("paths").and_then(Value::as_array);
                    let paths = paths.into_iter().flatten().filter_map(Value::as_str);
                    r.paths = paths.map(str::to_string).collect();
                }
                // Printed once the worker is done, so its own lines cannot interleave.
                for port in &r.ports {
                    trace::step(&format!("worker {id} is listening (port {port})"));
                }
                for path in &r.paths {
                    let path = Address::Pipe(path.clone());
                    trace::step(&format!("worker {id} is listening (path {path})"));
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
    pub(super) fn pump_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&Outcome, &Primary) -> bool,
    ) -> bool {
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

    pub(super) fn start_workers(&mut self, args: &LabArgs) -> Result<(), LabError> {
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
    pub(super) fn wait_settled(&mut self, id: u32, servers: usize) -> Result<(), LabError> {
        interrupted()?;
        let ok = self.pump_until(Duration::from_secs(10), |o, _| {
            o.records
                .get(&id)
                .is_some_and(|r| r.settled || (r.foreign && r.listens() >= servers && servers > 0))
        });
        ok.then_some(()).ok_or(LabError::StartTimeout(id))
    }

    /// Where to connect: the pipe, once a worker listens on it; else the port the first
    /// listening worker reported.
    pub(super) fn target(&self, host: IpAddr) -> Option<Target> {
        let records = || self.out.records.values();
        if let Some(path) = &self.pipe {
            let listening = records().any(|r| !r.paths.is_empty());
            return listening.then(|| Target::Pipe(path.clone()));
        }
        records()
            .find_map(|r| r.ports.first())
            .map(|p| Target::Tcp(SocketAddr::new(host, *p)))
    }

    pub(super) fn connect_all(&mut self, args: &LabArgs, host: IpAddr) -> Result<(), LabError> {
        if args.connections == 0 {
            return Ok(());
        }
        let Some(target) = self.target(host) else {
            let first = self
                .out
                .records
                .values()
                .flat_map(|r| r.errors.first())
                .next();
            let why = first
                .and_then(|e| e["message"].as_str())
                .map(str::to_string);
            return Err(LabError::NobodyListening(why));
        };
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
            let who = match &target {
                Target::Tcp(addr) if args.udp => self.udp_request(*addr),
                _ => self.http_request(&target),
            };
            let who = who.map(|a| self.by_pid(a));
            trace::set_label("client");
            match &who {
                Some(a) => trace::ok(&format!("connection {n} answered by {a}")),
                None => trace::problem(&format!("connection {n}: no answer")),
            }
            let from = who.as_ref().map_or("nobody".to_string(), Answer::to_string);
            self.log_client(&from, "client", &format!("answer to connection {n}"));
            self.out
                .answered_by
                .push(who.as_ref().and_then(Answer::worker));
            self.out.answers.push(who);
        }
        trace::set_label("primary");
        Ok(())
    }

    /// An answer that names a pid names the worker with that pid, if it is one of ours.
    fn by_pid(&self, answer: Answer) -> Answer {
        let Answer::Pid(pid) = answer else {
            return answer;
        };
        let id = self.out.records.iter().find(|(_, r)| r.pid == pid);
        id.map_or(answer, |(id, _)| Answer::Worker(*id))
    }

    /// `cluster.disconnect()`, one worker at a time so the trace reads the same on every run;
    /// anything still there after a grace period is killed. Every worker is reaped.
    ///
    /// A worker whose servers the cluster does not manage (`--exclusive`, `--reuse-port`)
    /// closes its channel and serves on, as Node's does: the lab moves on once it has
    /// disconnected, and the grace period's kill ends it.
    pub(super) fn disconnect_one_by_one(&mut self, serves_on: bool) {
        trace::set_label("primary");
        trace::step("cluster.disconnect()");
        for id in self.primary.worker_ids() {
            self.primary.disconnect(id);
            self.pump_until(Duration::from_secs(3), |o, _| {
                o.records
                    .get(&id)
                    .is_some_and(|r| r.exit.is_some() || (serves_on && r.disconnected))
            });
        }
        self.primary.shutdown(Duration::from_secs(1));
        self.drain();
    }

    /// The client's side of the story, for the recorded log.
    pub(super) fn log_client(&self, from: &str, to: &str, line: &str) {
        if let Some(log) = &self.log {
            log.borrow_mut().push(WireRecord {
                from: from.to_string(),
                to: to.to_string(),
                line: line.to_string(),
                fd: false,
            });
        }
    }

    pub(super) fn kill(&mut self, id: u32) {
        trace::set_label("primary");
        self.primary.kill(id, sys::Signal::SIGKILL);
        self.pump_until(Duration::from_secs(5), |o, _| {
            o.records
                .get(&id)
                .is_some_and(|r| r.exit.is_some() && r.disconnected)
        });
    }

    /// One HTTP request, over TCP or the pipe; the primary's loop runs while we wait for
    /// the answer.
    pub(super) fn http_request(&mut self, target: &Target) -> Option<Answer> {
        let limit = Duration::from_secs(5);
        match target {
            Target::Tcp(addr) => self.answer(http::start_get(*addr, limit).ok()?, limit),
            Target::Pipe(path) => {
                // Node 20's libuv pads an abstract name; a client must too, to reach it.
                let pad = self.primary.node().libuv() == Libuv::V1_46;
                self.answer(http::start_get_unix(path, pad, limit).ok()?, limit)
            }
        }
    }

    /// Read the answer to a request sent on `stream`, running the primary's loop meanwhile.
    fn answer<S: Read + AsFd>(&mut self, mut stream: S, limit: Duration) -> Option<Answer> {
        let mut got = Vec::new();
        let deadline = Instant::now() + limit;
        trace::set_label("primary");
        while Instant::now() < deadline {
            let extra = [(stream.as_fd(), false)];
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
        http::who_answered(&String::from_utf8_lossy(&got))
    }

    /// One UDP datagram; the reply names the worker.
    pub(super) fn udp_request(&mut self, target: SocketAddr) -> Option<Answer> {
        let sock = std::net::UdpSocket::bind(SocketAddr::new(target.ip(), 0)).ok()?;
        sock.set_nonblocking(true).ok()?;
        sock.send_to(b"ping", target).ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        trace::set_label("primary");
        while Instant::now() < deadline {
            let extra = [(sock.as_fd(), false)];
            let ready = self.primary.poll(&extra, Duration::from_millis(50));
            self.drain();
            if ready.first().is_some_and(|r| r.readable) {
                let mut buf = [0u8; 256];
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    return http::who_answered(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }
        None
    }

    /// `--serve`: keep the cluster up for a reader's own `curl`.
    pub(super) fn serve(&mut self, host: IpAddr, secs: u64) {
        let try_it = match self.target(host) {
            Some(Target::Tcp(target)) => {
                format!("serving on http://{target}/ {{}}; try: curl http://{target}/")
            }
            Some(Target::Pipe(path)) => match path.strip_prefix('\0') {
                Some(name) => format!(
                    "serving on the abstract unix socket @{name} {{}}; try: curl --abstract-unix-socket {name} http://localhost/"
                ),
                None => format!(
                    "serving on the unix socket {path} {{}}; try: curl --unix-socket {path} http://localhost/"
                ),
            },
            None => return,
        };
        self.serve_for(secs, &try_it);
    }

    /// `--serve`'s loop, after saying where (`try_it`, with `{}` for how long).
    fn serve_for(&mut self, secs: u64, try_it: &str) {
        trace::set_label("primary");
        let how_long = if secs == 0 {
            "until Ctrl-C".to_string()
        } else {
            format!("for {secs} s")
        };
        trace::step(&try_it.replacen("{}", &how_long, 1));
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
