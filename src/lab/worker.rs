//! The lab's worker: what every program in this project becomes when `cluster.fork()` starts
//! it. It listens K times (through the primary, or by itself when `exclusive`), answers HTTP
//! (or UDP) naming itself, and reports to the primary with ordinary user messages.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::sys::Errno;
use serde_json::json;

use super::WORKER_ENV;
use crate::cluster;
use crate::cluster::child::{self, GotHandle, Runtime, WorkerEvent};
use crate::cluster::version::NodeLine;
use crate::errors::NetError;
use crate::http;
use crate::net::{
    self, AddressType, ListenOptions, ListenStep, PipeOptions, Port, Server, ServerHandle,
};
use crate::pipe_wrap::PipeHandle;
use crate::sys::{self, Transport};
use crate::tcp_wrap::TcpHandle;
use crate::trace;

mod kinds;
mod watched;

use watched::{CHANNEL, SLOT, Watched, conn_token};

/// The worker's part of the configuration, handed over in [`WORKER_ENV`] as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct WorkerPlan {
    pub(super) host: IpAddr,
    pub(super) port: u16,
    pub(super) servers: u32,
    pub(super) exclusive: bool,
    /// `listen({ reusePort: true })` (ignored when following Node 20, which has no such option).
    /// Absent means false, so a plan written by hand (`tests/node/primary.js`) still reads.
    #[serde(default)]
    pub(super) reuse_port: bool,
    pub(super) udp: bool,
    pub(super) handle_errors: bool,
    /// `listen({ path })` instead of a host and port: a unix socket path, or `\0name`.
    #[serde(default)]
    pub(super) path: Option<String>,
    /// With `path`: `readableAll: true`.
    #[serde(default)]
    pub(super) readable_all: bool,
    /// With `path`: `writableAll: true`.
    #[serde(default)]
    pub(super) writable_all: bool,
}

impl WorkerPlan {
    pub(super) fn to_env(&self) -> String {
        serde_json::to_string(self).expect("a plan always serializes")
    }

    fn from_env() -> Option<Self> {
        serde_json::from_str(&std::env::var(WORKER_ENV).ok()?).ok()
    }
}

// ANCHOR: worker_entry
/// Run first in every `main`: in a process started by `cluster.fork()`, be the worker and
/// return its exit code; anywhere else, return `None` and let the program go on.
pub fn worker_entry() -> Option<ExitCode> {
    let id = std::env::var(cluster::NODE_UNIQUE_ID).ok()?;
    trace::init_from_env();
    trace::set_label(&format!("worker {id}"));
    trace::set_role(trace::Role::Worker);
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
    Some(LabWorker::start(rt, plan))
}
// ANCHOR_END: worker_entry

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
    /// The primary's pid, as it was when we started.
    parent: u32,
    /// The answer, the same for every request: rendered once.
    response: Vec<u8>,
    /// What the worker waits on, registered once per fd (see [`Watched`]).
    watched: Watched,
}

/// The longest a worker waits before it looks around again.
const TURN: Duration = Duration::from_millis(500);

impl LabWorker {
    /// Make the worker's epoll set, then run the worker until it is done.
    fn start(rt: Runtime, plan: WorkerPlan) -> ExitCode {
        match Watched::new() {
            Ok(watched) => Self::new(rt, plan, watched).run(),
            Err(e) => {
                eprintln!("error: epoll_create1: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn new(rt: Runtime, plan: WorkerPlan, watched: Watched) -> Self {
        let pid = std::process::id();
        Self {
            response: http::response(rt.id, pid),
            rt: Some(rt),
            plan,
            slots: Vec::new(),
            pending: 0,
            conns: Vec::new(),
            pid,
            parent: sys::parent_pid(),
            watched,
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
        e.trace();
        if let Some(rt) = self.rt.as_mut() {
            rt.send_user(json!({"lab": "error", "error": e.to_json()}));
        }
    }

    /// An unhandled `'error'` event: print it, tell the primary, exit with 1.
    fn fail(&mut self, e: &NetError) -> ExitCode {
        e.trace();
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
            let paths: Vec<&str> = self
                .slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Tcp(server) => server.pipe_name(),
                    Slot::Udp(_) => None,
                })
                .collect();
            let mut ready = json!({"lab": "ready", "ports": ports});
            if !paths.is_empty() {
                ready["paths"] = json!(paths);
            }
            rt.send_user(ready);
        }
    }

    // ANCHOR: worker_listen
    /// `server.listen({ port, host, exclusive })` in the worker: either done here
    /// (`exclusive`), or a question for the primary.
    fn listen(&mut self, i: usize) -> Result<(), NetError> {
        if self.plan.udp {
            return self.bind_udp(i);
        }
        if let Some(path) = self.plan.path.clone() {
            return self.listen_pipe(i, &path);
        }
        let mut server = Server::new(&format!("server {}", i + 1));
        let mut opts = ListenOptions::new(self.plan.host, self.plan.port);
        opts.exclusive = self.plan.exclusive;
        opts.reuse_port = self.plan.reuse_port && NodeLine::from_env().has_reuse_port();
        net::trace_listen_call(&server, &opts);
        let step = server.listen(&opts);
        self.take_step(i, server, step)
    }

    /// What `listen` said: listening already (on its own), failed, or to ask the primary
    /// (`queryServer`), whose answer comes later as a [`WorkerEvent::Server`].
    fn take_step(&mut self, i: usize, server: Server, step: ListenStep) -> Result<(), NetError> {
        let result = match step {
            ListenStep::Listening(addr) => {
                trace::ok(&format!("{} listening on {addr}", server.name));
                Ok(())
            }
            ListenStep::Failed(e) => Err(e),
            ListenStep::AskPrimary(q) => {
                self.pending += 1;
                if let Some(rt) = self.rt.as_mut() {
                    rt.get_server(i, &q);
                }
                Ok(())
            }
        };
        self.slots.push(Slot::Tcp(server));
        result
    }
    // ANCHOR_END: worker_listen

    /// One turn of the worker's loop. `Ok(false)`: time to exit 0.
    fn turn(&mut self) -> Result<bool, NetError> {
        if !self.watch() {
            return Ok(false);
        }
        self.watched.wait(TURN);
        // Connections first: they were accepted before anything in this turn. (Last to
        // first, so that removing one leaves the others' places as they were.)
        for i in (0..self.conns.len()).rev() {
            if self.watched.readable(conn_token(&self.conns[i])) && self.conns[i].on_readable() {
                self.serve_at(i);
            }
        }
        for s in 0..self.slots.len() {
            if self.watched.readable(SLOT + s as u64) {
                self.on_listener_ready(s);
            }
        }
        let channel = self.watched.get(CHANNEL);
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

    /// Bring the epoll set up to date before a wait: the channel's interest, and any
    /// listening socket that appeared since the last turn. False once the channel is gone.
    fn watch(&mut self) -> bool {
        match self.rt.as_ref() {
            Some(rt) => self.watched.channel(rt.channel_fd(), rt.wants_write()),
            None if self.serves_alone() => {} // after disconnect: exclusive servers only
            None => return false,
        }
        for (s, slot) in self.slots.iter().enumerate() {
            let fd = match slot {
                Slot::Tcp(server) => server.listening_fd(),
                Slot::Udp(fd) => fd.as_ref().map(|f| f.as_fd()),
            };
            if let Some(fd) = fd {
                self.watched.slot(s, fd);
            }
        }
        true
    }

    /// Keep a connection whose request is not complete yet, and watch it.
    fn keep(&mut self, conn: http::Conn) {
        self.watched.conn(&conn);
        self.conns.push(conn);
    }

    /// The request on connection `i` is complete: stop watching it and answer.
    fn serve_at(&mut self, i: usize) {
        let conn = self.conns.remove(i);
        self.watched.forget(&conn);
        self.serve(conn);
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
            false => self.keep(conn),
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
                WorkerEvent::Connection { fd } => self.take(http::Conn::new(fd)),
                WorkerEvent::Disconnect => return Ok(self.on_disconnect()),
                WorkerEvent::PrimaryGone => return Ok(false),
                WorkerEvent::Message(m) => trace::step(&format!("a message from the primary: {m}")),
            }
        }
        Ok(true)
    }

    // ANCHOR: worker_disconnect
    /// `disconnect` from the primary: the runtime closed the cluster-managed servers (and
    /// told the primary); we drop them, and close the channel (`process.disconnect()`).
    /// Servers the cluster does not manage (`exclusive`, `reusePort`) stay open and keep the
    /// worker alive, serving, as in Node, until something kills it. Returns whether it
    /// serves on.
    fn on_disconnect(&mut self) -> bool {
        let own = self.plan.exclusive || self.plan.reuse_port;
        if !own {
            self.slots.clear();
        }
        for slot in &self.slots {
            if let Slot::Tcp(server) = slot
                && server.listening_fd().is_some()
            {
                let name = &server.name;
                trace::step(&format!(
                    "{name} is not the cluster's: it stays open, and so does this worker"
                ));
            }
        }
        // Our EOF must reach the primary before our exit does.
        if let Some(rt) = self.rt.take() {
            rt.close_channel();
        }
        let alone = self.serves_alone();
        if alone {
            // Not Node: without a channel, no end of file would ever tell us the primary
            // died, and a Node worker in this state outlives it. Ours asks the kernel to end
            // it with the primary instead (and ends now if the primary is gone already).
            sys::die_with_parent(self.parent);
        }
        alone
    }
    // ANCHOR_END: worker_disconnect

    /// Whether a server of ours still listens without the primary.
    fn serves_alone(&self) -> bool {
        self.slots.iter().any(|s| match s {
            Slot::Tcp(server) => server.listening_fd().is_some(),
            Slot::Udp(fd) => fd.is_some(),
        })
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
        if let Some(path) = self.plan.path.clone() {
            return self.on_pipe_server(slot, key, &path, result);
        }
        let (host, port) = (self.plan.host, self.plan.port);
        let (errno, handle) = match result {
            // dgram's `bindServerHandle` callback: `ExceptionWithHostPort(err, 'bind', ...)`.
            Err(e) if self.plan.udp => {
                return Err(NetError::plain("bind", e, Some(&host.to_string()), port));
            }
            Err(e) => (Some(e), None),
            Ok(GotHandle::RoundRobin { key, sockname }) => {
                trace::step(&format!(
                    "rr(): a fake handle for {key} (no socket in this process)"
                ));
                let fake = net::FakeHandle { key, sockname };
                (None, Some(ServerHandle::RoundRobin(fake)))
            }
            Ok(GotHandle::Shared(fd)) if self.plan.udp => {
                return self.on_udp_socket(slot, key, fd);
            }
            Ok(GotHandle::Shared(fd)) => {
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
            rt.send_listening(key, Port::Number(addr.port()));
        }
        self.listen_next()
    }
    // ANCHOR_END: on_server

    /// A listening socket of ours is readable: accept (TCP) or answer a datagram (UDP).
    fn on_listener_ready(&mut self, s: usize) {
        match &self.slots[s] {
            Slot::Tcp(server) => {
                let Some(fd) = server.listening_fd() else {
                    return;
                };
                // One accept per wake-up, as libuv 1.46 does; a worker that loses the race for
                // a shared socket gets EAGAIN here.
                let Ok(Some(conn)) = sys::accept4(fd, true) else {
                    return;
                };
                if trace::enabled() {
                    trace::step(&format!(
                        "{}: accepted a connection itself (fd {})",
                        server.name,
                        conn.as_raw_fd()
                    ));
                }
                // As with a connection from the primary: the request is usually there.
                self.take(http::Conn::new(conn));
            }
            Slot::Udp(Some(fd)) => {
                let mut buf = [0u8; 512];
                while let Ok((_, Some(from))) = sys::recv_from(fd.as_fd(), &mut buf) {
                    trace::step("datagram from the client: answering with sendmsg");
                    // Tell the primary first: once the client has its answer, it moves on
                    // (as for TCP, in `serve`).
                    if let Some(rt) = self.rt.as_mut() {
                        rt.send_user(json!({"lab": "served"}));
                        rt.flush();
                    }
                    let _ =
                        sys::send_to(fd.as_fd(), http::body(self.id(), self.pid).as_bytes(), from);
                }
            }
            Slot::Udp(None) => {}
        }
    }
}
