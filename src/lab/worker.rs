//! The lab's worker: what every program in this project becomes when `cluster.fork()` starts
//! it. It listens K times (through the primary, or by itself when `exclusive`), answers HTTP
//! (or UDP) naming itself, and reports to the primary with ordinary user messages.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde_json::{Value, json};

use super::WORKER_ENV;
use crate::cluster;
use crate::cluster::child::{self, GotHandle, Runtime, WorkerEvent};
use crate::errors::NetError;
use crate::http;
use crate::net::{self, AddressType, ListenOptions, ListenStep, Server, ServerHandle};
use crate::sys::{self, Transport};
use crate::tcp_wrap::TcpHandle;
use crate::trace;

/// The worker's part of the configuration, handed over in [`WORKER_ENV`].
#[derive(Debug, Clone)]
pub(super) struct WorkerPlan {
    pub(super) host: IpAddr,
    pub(super) port: u16,
    pub(super) servers: u32,
    pub(super) exclusive: bool,
    pub(super) udp: bool,
    pub(super) handle_errors: bool,
}

impl WorkerPlan {
    pub(super) fn to_env(&self) -> String {
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
            Ok(GotHandle::RoundRobin { key, sockname }) => {
                trace::step(&format!(
                    "rr(): a fake handle for {key} (no socket in this process)"
                ));
                let fake = net::FakeHandle { key, sockname };
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
