//! Mirror of [`lib/internal/cluster/primary.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/cluster/primary.js#L161):
//! forking workers, answering their `queryServer`, and the map of handles by key.
//!
//! Node's primary is an event loop; so is ours ([`Primary::poll`]): it reads every worker's
//! channel, accepts on every round-robin socket, and turns what happens into [`Event`]s for
//! the program that drives it (the lab), as Node emits `'online'`, `'listening'`, `'exit'`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::sys::Errno;
use serde_json::{Map, Value, json};

use super::round_robin_handle::{Handoff, RoundRobinHandle};
use super::shared_handle::SharedHandle;
use super::utils;
use super::{NODE_UNIQUE_ID, SchedulingPolicy};
use crate::channel::{Channel, ChannelError, HandleType, Incoming, WireLog};
use crate::net::AddressType;
use crate::sys::{self, PollReady};
use crate::trace;

/// `cluster.settings`: what to run as a worker. Node runs `process.execPath` with the script
/// (`exec`) and `args`; we run `exec` with `args`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub exec: PathBuf,
    pub args: Vec<OsString>,
    /// Extra environment for every worker (`cluster.fork(env)`).
    pub env: Vec<(String, String)>,
}

impl Settings {
    /// Re-run this very program with the same arguments, as Node re-runs the script.
    pub fn this_program() -> std::io::Result<Self> {
        Ok(Self {
            exec: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
            env: Vec::new(),
        })
    }
}

/// What happened in the cluster, in the order the primary saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Online {
        id: u32,
    },
    Listening {
        id: u32,
        address: Value,
        port: u16,
    },
    /// A user message (`process.send` in the worker).
    Message {
        id: u32,
        msg: Value,
    },
    Disconnect {
        id: u32,
    },
    Exit {
        id: u32,
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// The worker broke the protocol; it has been dropped.
    Problem {
        id: u32,
        what: String,
    },
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("socketpair failed: {0}")]
    Socketpair(Errno),
    #[error("cannot start {exec}: {source}")]
    Spawn {
        exec: String,
        #[source]
        source: std::io::Error,
    },
}

/// The primary's view of one worker (`Worker` in `lib/internal/cluster/worker.js`).
pub struct Worker {
    pub id: u32,
    pub pid: u32,
    child: Child,
    channel: Option<Channel>,
    exited_after_disconnect: bool,
    exited: bool,
}

/// What the primary waits for after a `newconn`: the worker's `{accepted}`.
struct NewConnCallback {
    worker: u32,
    /// The handle's key (shared, not copied: one callback per connection).
    key: Rc<str>,
    conn: Rc<OwnedFd>,
}

// ANCHOR: newconn_line
/// A round-robin key's `newconn` line, rendered once. Every connection sends the same bytes
/// but for its `seq`, so per connection only that number is written: no JSON is built.
/// (Node builds the object each time; the bytes on the wire are the same.)
struct NewConnLine {
    key: Rc<str>,
    /// `{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"K","seq":`
    head: Vec<u8>,
}

impl NewConnLine {
    fn new(key: &str) -> Self {
        // Rendered by serde_json itself, so the key is escaped exactly as a Value would be;
        // `seq` 0 marks where the number goes.
        let msg = json!({"cmd": "NODE_CLUSTER", "act": "newconn", "key": key, "seq": 0});
        let wrapped = json!({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": msg});
        let text = wrapped.to_string();
        let head = text
            .strip_suffix("0}}")
            .expect("seq is the last field")
            .as_bytes();
        Self {
            key: Rc::from(key),
            head: head.to_vec(),
        }
    }

    /// The whole line for one connection (without its `\n`).
    fn line(&self, seq: u64) -> Vec<u8> {
        use std::io::Write as _;
        let mut line = Vec::with_capacity(self.head.len() + 24);
        line.extend_from_slice(&self.head);
        let _ = write!(line, "{seq}}}}}");
        line
    }
}
// ANCHOR_END: newconn_line

enum Handle {
    RoundRobin(Box<RoundRobinHandle>, Rc<NewConnLine>),
    Shared(SharedHandle),
}

impl Handle {
    fn contains(&self, worker: u32) -> bool {
        match self {
            Handle::RoundRobin(h, _) => h.contains(worker),
            Handle::Shared(h) => h.contains(worker),
        }
    }

    fn remove(&mut self, worker: u32) -> bool {
        match self {
            Handle::RoundRobin(h, _) => h.remove(worker),
            Handle::Shared(h) => h.remove(worker),
        }
    }
}

/// The cluster primary.
pub struct Primary {
    settings: Settings,
    /// Frozen at creation, as `setupPrimary` freezes `cluster.schedulingPolicy`.
    policy: SchedulingPolicy,
    /// `ids`: worker ids start at 1 and are never reused.
    next_id: u32,
    workers: BTreeMap<u32, Worker>,
    /// `handles`: key → the socket every worker with that key shares.
    handles: BTreeMap<String, Handle>,
    callbacks: HashMap<u64, NewConnCallback>,
    events: VecDeque<Event>,
    /// Every message the primary sent or received, when asked to keep them.
    wire_log: Option<WireLog>,
    /// The poll set and who owns each entry, kept from turn to turn (no allocation per turn).
    pollset: sys::PollSet,
    owners: Vec<Owner>,
    /// When every worker was last checked for an exit (see [`Primary::reap`]).
    last_sweep: Instant,
}

impl Primary {
    /// `cluster.setupPrimary(settings)` with a policy.
    pub fn new(settings: Settings, policy: SchedulingPolicy) -> Self {
        Self {
            settings,
            policy,
            next_id: 1,
            workers: BTreeMap::new(),
            handles: BTreeMap::new(),
            callbacks: HashMap::new(),
            events: VecDeque::new(),
            wire_log: None,
            pollset: sys::PollSet::new(),
            owners: Vec::new(),
            last_sweep: Instant::now(),
        }
    }

    /// Keep every message on every channel forked from now on, in the order the primary
    /// saw them (the source of chapter 8's sequence diagram).
    pub fn record_wire(&mut self) -> WireLog {
        let log = self.wire_log.get_or_insert_with(WireLog::default);
        log.clone()
    }

    /// The policy in force.
    pub fn policy(&self) -> SchedulingPolicy {
        self.policy
    }

    // ANCHOR: fork
    /// `cluster.fork()`: a fresh process running the same program, with `NODE_UNIQUE_ID`,
    /// and an `AF_UNIX` socketpair as its channel on fd 3 (`NODE_CHANNEL_FD`). Nothing else
    /// is inherited — in particular no listening socket: none exists yet.
    pub fn fork(&mut self) -> Result<u32, ForkError> {
        let settings = self.settings.clone();
        self.fork_with(&settings)
    }

    /// `fork()` running another program as the worker (a real `node worker.js`, say) with the
    /// same environment and channel Node would give it.
    pub fn fork_with(&mut self, settings: &Settings) -> Result<u32, ForkError> {
        let id = self.next_id;
        self.next_id += 1;
        let (ours, theirs) = sys::socketpair().map_err(ForkError::Socketpair)?;
        let mut cmd = Command::new(&settings.exec);
        cmd.args(&settings.args)
            .envs(settings.env.iter().cloned())
            .env(NODE_UNIQUE_ID, id.to_string())
            .env("NODE_CHANNEL_FD", "3")
            .env("NODE_CHANNEL_SERIALIZATION_MODE", "json")
            .env(trace::ENV, trace::to_env())
            .stdin(Stdio::null());
        let channel_fd = theirs.as_raw_fd();
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // calls (dup2, fcntl, close_range, prctl, getppid); see sys::prepare_worker_child.
        unsafe {
            cmd.pre_exec(move || sys::prepare_worker_child(channel_fd, 3, parent));
        }
        trace::step(&format!(
            "fork worker {id}: NODE_UNIQUE_ID={id}, channel on fd 3"
        ));
        let child = cmd.spawn().map_err(|source| ForkError::Spawn {
            exec: settings.exec.display().to_string(),
            source,
        })?;
        drop(theirs); // or a dead worker would never show as EOF
        let pid = child.id();
        let mut channel = Channel::new(ours, &format!("worker {id}")).ok();
        if let (Some(ch), Some(log)) = (channel.as_mut(), &self.wire_log) {
            ch.record_into(log.clone(), "primary");
        }
        self.workers.insert(
            id,
            Worker {
                id,
                pid,
                child,
                channel,
                exited_after_disconnect: false,
                exited: false,
            },
        );
        Ok(id)
    }
    // ANCHOR_END: fork

    /// The pid of a worker, if it is still known.
    pub fn pid(&self, id: u32) -> Option<u32> {
        self.workers.get(&id).map(|w| w.pid)
    }

    /// The ids of the workers still known to the primary.
    pub fn worker_ids(&self) -> Vec<u32> {
        self.workers.keys().copied().collect()
    }

    /// Whether any worker is still running or connected.
    pub fn has_workers(&self) -> bool {
        !self.workers.is_empty()
    }

    /// The keys in the handles map (for the trace and the tests).
    pub fn handle_keys(&self) -> Vec<String> {
        self.handles.keys().cloned().collect()
    }

    /// The next thing that happened, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Send a signal to a worker (`worker.process.kill(signal)`).
    pub fn kill(&mut self, id: u32, signal: nix::sys::signal::Signal) {
        if let Some(w) = self.workers.get(&id) {
            trace::step(&format!("kill worker {id} (pid {}) with {signal:?}", w.pid));
            sys::kill(w.pid, signal);
        }
    }

    /// Send a user message to a worker (`worker.send(msg)`).
    pub fn send_user(&mut self, id: u32, msg: Value) {
        if let Some(ch) = self.workers.get_mut(&id).and_then(|w| w.channel.as_mut()) {
            ch.send(msg);
        }
    }

    // ANCHOR: disconnect
    /// `Worker.prototype.disconnect`: tell the worker to close its servers and go; forget its
    /// handles at once.
    pub fn disconnect(&mut self, id: u32) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.exited_after_disconnect = true;
        if w.channel.is_some() {
            self.send(id, utils::fields(&[("act", json!("disconnect"))]));
        }
        self.remove_handles_for_worker(id);
    }
    // ANCHOR_END: disconnect

    /// `sendHelper`: wrap in the `NODE_CLUSTER` envelope and send. Returns the seq, or `None`
    /// when the worker is no longer connected (Node returns `false` and does nothing).
    fn send(&mut self, id: u32, fields: Map<String, Value>) -> Option<u64> {
        let ch = self.workers.get_mut(&id)?.channel.as_mut()?;
        let (msg, seq) = utils::envelope(fields);
        ch.send(msg);
        Some(seq)
    }

    fn send_handle(
        &mut self,
        id: u32,
        fields: Map<String, Value>,
        fd: Rc<OwnedFd>,
        ty: HandleType,
    ) -> Option<u64> {
        let ch = self.workers.get_mut(&id)?.channel.as_mut()?;
        let (msg, seq) = utils::envelope(fields);
        ch.send_handle(msg, fd, ty);
        Some(seq)
    }

    // ANCHOR: poll
    /// One turn of the event loop: wait (at most `timeout`) for a channel, a listening socket
    /// or one of the caller's `extra` fds; handle channels first, then accepts. Returns how
    /// the `extra` fds are.
    pub fn poll(&mut self, extra: &[(RawFd, bool)], timeout: Duration) -> Vec<PollReady> {
        let mut set = std::mem::take(&mut self.pollset);
        let mut owners = std::mem::take(&mut self.owners);
        set.clear();
        owners.clear();
        for w in self.workers.values() {
            if let Some(ch) = &w.channel {
                set.push(ch.fd().as_raw_fd(), ch.wants_write());
                owners.push(Owner::Channel(w.id));
            }
        }
        for h in self.handles.values() {
            if let Handle::RoundRobin(rr, line) = h
                && let Some(fd) = rr.fd()
            {
                set.push(fd.as_raw_fd(), false);
                owners.push(Owner::Listener(line.clone()));
            }
        }
        let first_extra = set.len();
        for &(fd, write) in extra {
            set.push(fd, write);
        }
        let timeout = if self.workers.values().any(|w| w.channel.is_none()) {
            timeout.min(Duration::from_millis(5)) // someone to reap soon
        } else {
            timeout
        };
        let _ = set.wait(timeout); // an error reads as "nothing ready"
        for (i, owner) in owners.iter().enumerate() {
            if let Owner::Channel(id) = owner {
                self.on_channel(*id, set.ready(i));
            }
        }
        for (i, owner) in owners.iter().enumerate() {
            if let (Owner::Listener(line), true) = (owner, set.ready(i).readable) {
                self.accept_one(line);
            }
        }
        self.flush_all();
        self.reap();
        let ready = (first_extra..set.len()).map(|i| set.ready(i)).collect();
        self.pollset = set;
        self.owners = owners;
        ready
    }
    // ANCHOR_END: poll

    /// The end of a turn: whatever the channels hold back goes out now (see `channel.rs`:
    /// only when nothing is traced do plain messages wait for this).
    fn flush_all(&mut self) {
        for w in self.workers.values_mut() {
            if let Some(ch) = w.channel.as_mut().filter(|ch| ch.wants_write()) {
                ch.flush();
            }
        }
    }

    fn on_channel(&mut self, id: u32, r: PollReady) {
        let Some(ch) = self.workers.get_mut(&id).and_then(|w| w.channel.as_mut()) else {
            return;
        };
        if r.writable {
            ch.flush();
        }
        if !r.readable {
            return;
        }
        match ch.read() {
            Ok(Some(messages)) => {
                for what in ch.take_warnings() {
                    self.report(id, &format!("worker {id} {what}"));
                }
                for m in messages {
                    self.on_message(id, m);
                }
                if self
                    .workers
                    .get(&id)
                    .and_then(|w| w.channel.as_ref())
                    .is_some_and(Channel::is_closed)
                {
                    self.on_disconnect(id);
                }
            }
            Ok(None) => self.on_disconnect(id),
            Err(e) => self.on_protocol_error(id, &e),
        }
    }

    /// A worker broke the protocol: report which one and what, and drop it. (Node would
    /// throw in the primary; a teaching tool should keep serving the others.)
    fn on_protocol_error(&mut self, id: u32, e: &ChannelError) {
        self.drop_worker(id, &format!("worker {id} {e}; dropping it"));
    }

    /// Report, then kill the worker and forget it at once (its exit is reaped later).
    fn drop_worker(&mut self, id: u32, what: &str) {
        self.report(id, what);
        if let Some(w) = self.workers.get(&id) {
            sys::kill(w.pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.on_disconnect(id);
    }

    /// EOF on the channel: `'disconnect'`. The worker leaves every handle at once.
    fn on_disconnect(&mut self, id: u32) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.channel.take().is_none() {
            return;
        }
        self.remove_handles_for_worker(id);
        // Node's callbacks map would keep these forever (the client hangs); we close them.
        self.callbacks.retain(|_, cb| cb.worker != id);
        trace::step(&format!("worker {id} disconnected (EOF on its channel)"));
        self.events.push_back(Event::Disconnect { id });
    }

    // ANCHOR: reap
    /// SIGCHLD's job: collect the exit status of every worker that ended. A worker that
    /// exits closes its channel, so only workers whose channel is gone are asked
    /// (`waitpid`) on every turn; all of them only every 100 ms, in case one ended with its
    /// channel still open elsewhere. That keeps `waitpid` out of the per-connection path.
    fn reap(&mut self) {
        let sweep = self.last_sweep.elapsed() >= Duration::from_millis(100);
        if sweep {
            self.last_sweep = Instant::now();
        }
        let mut gone = Vec::new();
        for w in self.workers.values_mut() {
            if w.exited || (w.channel.is_some() && !sweep) {
                continue;
            }
            if let Ok(Some(status)) = w.child.try_wait() {
                w.exited = true;
                gone.push((w.id, status));
            }
        }
        for (id, status) in gone {
            // Read what the worker said before it died, and its EOF, first.
            for _ in 0..64 {
                if self.workers.get(&id).is_none_or(|w| w.channel.is_none()) {
                    break;
                }
                self.on_channel(
                    id,
                    PollReady {
                        readable: true,
                        writable: false,
                    },
                );
            }
            self.on_disconnect(id);
            if let Some(w) = self.workers.get(&id) {
                let (code, signal) = (status.code(), status.signal());
                let how = match (code, signal) {
                    (Some(c), _) => format!("code {c}"),
                    (None, Some(s)) => format!("signal {}", sys::signal_name(s)),
                    _ => "unknown status".to_string(),
                };
                trace::step(&format!("worker {} exited ({how})", w.id));
                self.events.push_back(Event::Exit {
                    id: w.id,
                    code,
                    signal,
                });
            }
            self.workers.remove(&id);
        }
    }
    // ANCHOR_END: reap

    // ANCHOR: onmessage
    /// `onmessage` and `methodMessageMapping`: replies go to their callback (matched by
    /// `ack`); requests are dispatched by `act`; unknown acts are ignored, as in Node.
    fn on_message(&mut self, id: u32, m: Incoming) {
        let msg = m.msg;
        if !utils::is_internal(&msg) {
            self.events.push_back(Event::Message { id, msg });
            return;
        }
        if !utils::is_cluster(&msg) {
            let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
            return self.report(
                id,
                &format!("worker {id} sent an unknown cmd {cmd:?}; ignored"),
            );
        }
        if let Some(ack) = utils::ack_of(&msg) {
            return self.on_reply(id, ack, &msg);
        }
        match utils::act_of(&msg) {
            Some("online") => self.online(id),
            Some("queryServer") => self.query_server(id, &msg),
            Some("listening") => self.listening(id, &msg),
            Some("close") => self.close(id, &msg),
            Some("exitedAfterDisconnect") => self.exited_after_disconnect(id, &msg),
            other => {
                let act = other.unwrap_or("(none)");
                self.report(
                    id,
                    &format!("worker {id} sent an unknown act {act:?}; ignored"),
                );
            }
        }
    }

    /// Something a worker did wrong that the primary survives: say so (trace and event).
    fn report(&mut self, id: u32, what: &str) {
        trace::problem(what);
        self.events.push_back(Event::Problem {
            id,
            what: what.to_string(),
        });
    }
    // ANCHOR_END: onmessage

    fn online(&mut self, id: u32) {
        self.events.push_back(Event::Online { id });
    }

    fn listening(&mut self, id: u32, msg: &Value) {
        let address = msg.get("address").cloned().unwrap_or(Value::Null);
        let port = msg.get("port").and_then(Value::as_u64).unwrap_or(0) as u16;
        self.events
            .push_back(Event::Listening { id, address, port });
    }

    fn close(&mut self, id: u32, msg: &Value) {
        let Some(key) = msg.get("key").and_then(Value::as_str) else {
            return;
        };
        if self.handles.get_mut(key).is_some_and(|h| h.remove(id)) {
            self.handles.remove(key);
        }
    }

    fn exited_after_disconnect(&mut self, id: u32, msg: &Value) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.exited_after_disconnect = true;
        }
        if let Some(seq) = msg.get("seq").cloned() {
            self.send(id, utils::fields(&[("ack", seq)]));
        }
    }

    // ANCHOR: query_server
    /// `queryServer`: build the key, find or create the handle (the policy decides which
    /// kind; UDP is always shared), add the worker, and answer with `ack` = its `seq`.
    fn query_server(&mut self, id: u32, msg: &Value) {
        if self
            .workers
            .get(&id)
            .is_none_or(|w| w.exited_after_disconnect)
        {
            return;
        }
        let Some(q) = Query::parse(msg) else {
            let what = "sent a queryServer without a valid port or addressType; ignored";
            return self.report(id, &format!("worker {id} {what}"));
        };
        let key = q.key();
        trace::step(&format!("queryServer from worker {id}: key {key}"));
        if !self.handles.contains_key(&key) {
            match self.create_handle(&key, &q) {
                Ok(handle) => self.handles.insert(key.clone(), handle),
                Err(errno) => return self.reply_error(id, &key, &q, errno),
            };
        } else {
            trace::note("the key is known: no new socket");
        }
        self.add(id, &key, &q);
    }
    // ANCHOR_END: query_server

    // ANCHOR: create_handle
    /// The decision (`primary.js` L293): round robin only for TCP under `SCHED_RR`.
    fn create_handle(&mut self, key: &str, q: &Query) -> Result<Handle, Errno> {
        let address = q.ip();
        if self.policy != SchedulingPolicy::RoundRobin || q.address_type.is_udp() {
            trace::note("new SharedHandle: the primary binds, each worker will listen");
            let h = SharedHandle::new(key, address, q.port, q.address_type.is_udp());
            return Ok(Handle::Shared(h));
        }
        trace::note("new RoundRobinHandle: the primary binds and listens, then accepts");
        RoundRobinHandle::new(key, address, q.port, q.backlog)
            .map(|h| Handle::RoundRobin(Box::new(h), Rc::new(NewConnLine::new(key))))
    }
    // ANCHOR_END: create_handle

    /// `handle.add(worker, cb)` and the callback's `send(worker, {errno, key, ack, data, ...reply}, handle)`.
    fn add(&mut self, id: u32, key: &str, q: &Query) {
        let Some(handle) = self.handles.get_mut(key) else {
            return;
        };
        if handle.contains(id) {
            // Node asserts here and the primary dies; we drop the one worker instead.
            let what = format!("worker {id} asked twice for the same key {key}; dropping it");
            return self.drop_worker(id, &what);
        }
        match handle {
            Handle::RoundRobin(rr, line) => {
                let sockname = rr.sockname();
                let next = rr.add(id);
                let line = line.clone();
                let reply = reply_fields(None, key, q.seq, Some(sockname));
                trace::step(&format!(
                    "reply to worker {id}: errno null, sockname {sockname}"
                ));
                self.send(id, reply);
                if let Some(h) = next {
                    self.do_handoff(&line, h);
                }
            }
            Handle::Shared(shared) => match shared.add(id) {
                (None, Some((fd, ty))) => {
                    let reply = reply_fields(Some(0), key, q.seq, None);
                    trace::step(&format!(
                        "reply to worker {id}: errno 0, with the bound socket (fd {})",
                        fd.as_raw_fd()
                    ));
                    self.send_handle(id, reply, fd, ty);
                }
                (errno, _) => {
                    let errno = errno.unwrap_or(Errno::EINVAL);
                    self.handles.remove(key);
                    self.reply_error(id, key, q, errno);
                }
            },
        }
    }

    /// The failed-bind answer: the errno and no socket. The key is dropped, so the next
    /// worker's query tries the bind again (Node: "Gives other workers a chance to retry").
    fn reply_error(&mut self, id: u32, key: &str, q: &Query, errno: Errno) {
        trace::step(&format!(
            "reply to worker {id}: errno {} ({errno:?}), no socket; key dropped",
            -(errno as i32)
        ));
        self.send(id, reply_fields(Some(-(errno as i32)), key, q.seq, None));
    }

    // ANCHOR: accept
    /// A round-robin socket is readable: accept one connection and give it to `distribute`.
    /// One per wake-up, as Node v20's libuv (1.46) does — under strace it never drains the
    /// queue to `EAGAIN`; `poll` reports the socket again while connections wait.
    fn accept_one(&mut self, line: &Rc<NewConnLine>) {
        let Some(Handle::RoundRobin(rr, _)) = self.handles.get_mut(&*line.key) else {
            return;
        };
        let Some(fd) = rr.fd() else { return };
        let conn = match sys::accept4(fd, trace::format() != trace::Format::Off) {
            Ok(Some(conn)) => conn,
            Ok(None) | Err(_) => return, // Node ignores accept errors in distribute()
        };
        if let Some(h) = rr.distribute(conn) {
            self.do_handoff(line, h);
        }
    }

    /// The sending half of `handoff`: `newconn` with the connection's fd, and a callback for
    /// the worker's `{accepted}`. The line is the handle's, rendered once (`NewConnLine`);
    /// the trace line is built only if someone reads it.
    fn do_handoff(&mut self, line: &Rc<NewConnLine>, h: Handoff) {
        let conn = Rc::new(h.conn);
        let raw = conn.as_raw_fd();
        if trace::enabled() {
            trace::step(&format!(
                "newconn -> worker {} (connection fd {raw})",
                h.worker
            ));
        }
        let channel = self.workers.get_mut(&h.worker);
        match channel.and_then(|w| w.channel.as_mut()) {
            Some(ch) => {
                // `sendHelper`'s seq, from the one counter every message takes its seq from.
                let seq = utils::next_seq();
                ch.send_handle_line(line.line(seq), conn.clone(), HandleType::NetNative);
                let cb = NewConnCallback {
                    worker: h.worker,
                    key: line.key.clone(),
                    conn,
                };
                self.callbacks.insert(seq, cb);
            }
            None => trace::problem(&format!(
                "worker {} is gone; connection fd {raw} closed",
                h.worker
            )),
        }
    }
    // ANCHOR_END: accept

    /// A reply: today only `newconn`'s `{accepted}` has a callback in the primary.
    fn on_reply(&mut self, id: u32, ack: u64, msg: &Value) {
        let Some(cb) = self.callbacks.remove(&ack) else {
            let what = format!("sent a reply (ack {ack}) that matches no request; ignored");
            return self.report(id, &format!("worker {id} {what}"));
        };
        if cb.worker != id {
            self.callbacks.insert(ack, cb);
            let what = format!("acknowledged another worker's message (ack {ack}); ignored");
            return self.report(id, &format!("worker {id} {what}"));
        }
        let accepted = msg
            .get("accepted")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let raw = cb.conn.as_raw_fd();
        let Some(Handle::RoundRobin(rr, line)) = self.handles.get_mut(&*cb.key) else {
            return;
        };
        let line = line.clone();
        let conn = match Rc::try_unwrap(cb.conn) {
            Ok(conn) => conn,
            Err(_still_queued) => {
                // Answered before it could have arrived: a broken peer. The channel still
                // holds the fd (it closes once sent); the worker is free again either way.
                trace::problem(&format!(
                    "worker {id} answered a newconn it had not received"
                ));
                if let Some(h) = rr.handoff(id) {
                    self.do_handoff(&line, h);
                }
                return;
            }
        };
        if !trace::enabled() {
            // Nobody reads the lines below: skip building them.
        } else if accepted {
            trace::step(&format!(
                "worker {id} accepted: close({raw}), the primary's copy"
            ));
        } else {
            trace::step(&format!(
                "worker {id} refused: connection fd {raw} goes to another worker"
            ));
        }
        for h in rr.on_reply(id, conn, accepted).into_iter().flatten() {
            self.do_handoff(&line, h);
        }
    }

    // ANCHOR: remove_handles_for_worker
    /// `removeHandlesForWorker`: take the worker out of every handle; a handle whose last
    /// worker it was closes its socket and its key goes.
    fn remove_handles_for_worker(&mut self, id: u32) {
        self.handles.retain(|_, h| !h.remove(id));
    }
    // ANCHOR_END: remove_handles_for_worker

    /// `cluster.disconnect()`, then wait (at most `grace`) for every worker to exit; kill the
    /// rest. Every worker is reaped when this returns.
    pub fn shutdown(&mut self, grace: Duration) {
        for id in self.worker_ids() {
            self.disconnect(id);
        }
        let deadline = std::time::Instant::now() + grace;
        while self.has_workers() && std::time::Instant::now() < deadline {
            self.poll(&[], Duration::from_millis(10));
        }
        self.kill_all();
    }

    /// SIGKILL and reap every worker still there (also what `Drop` does).
    pub fn kill_all(&mut self) {
        for w in self.workers.values_mut() {
            if !w.exited {
                let _ = w.child.kill();
                let _ = w.child.wait();
                w.exited = true;
            }
        }
        self.workers.clear();
    }
}

impl Drop for Primary {
    /// No orphans: whatever way the primary ends, its workers end with it.
    fn drop(&mut self) {
        self.kill_all();
    }
}

enum Owner {
    Channel(u32),
    /// A round-robin handle's listening socket (named by its `newconn` line, which knows the
    /// key: an `Rc`, so the poll set costs no allocation).
    Listener(Rc<NewConnLine>),
}

/// The fields of a `queryServer` the primary uses, as a worker sent them.
struct Query {
    /// `null` (no host given) or an address string.
    address: Option<String>,
    port: u16,
    address_type: AddressType,
    fd: Option<i64>,
    /// `undefined` in the key when a (non-Node) peer leaves it out.
    index: Option<i64>,
    backlog: i32,
    seq: u64,
}

impl Query {
    fn parse(msg: &Value) -> Option<Self> {
        Some(Self {
            address: msg
                .get("address")
                .and_then(Value::as_str)
                .map(str::to_string),
            port: u16::try_from(msg.get("port")?.as_u64()?).ok()?,
            address_type: AddressType::from_json(msg.get("addressType")?)?,
            fd: msg.get("fd").and_then(Value::as_i64),
            index: msg.get("index").and_then(Value::as_i64),
            backlog: msg.get("backlog").and_then(Value::as_i64).unwrap_or(0) as i32,
            seq: msg.get("seq")?.as_u64()?,
        })
    }

    // ANCHOR: key
    /// `${address}:${port}:${addressType}:${fd}:${index}` — with JavaScript's spelling of a
    /// missing value: `null` for no host, `undefined` for no fd.
    fn key(&self) -> String {
        let address = self.address.as_deref().unwrap_or("null");
        let fd = self.fd.map_or("undefined".to_string(), |f| f.to_string());
        let index = self
            .index
            .map_or("undefined".to_string(), |i| i.to_string());
        format!("{address}:{}:{}:{fd}:{index}", self.port, self.address_type)
    }
    // ANCHOR_END: key

    /// The address to bind: `null` means every interface (`::`), as Node's no-host listen.
    fn ip(&self) -> IpAddr {
        self.address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    }
}

/// `{errno, key, ack, data, ...reply}` in Node's order. `errno: None` is JSON `null` (round
/// robin's success); shared success sends `0`.
fn reply_fields(
    errno: Option<i32>,
    key: &str,
    ack: u64,
    sockname: Option<SocketAddr>,
) -> Map<String, Value> {
    let mut m = utils::fields(&[
        ("errno", json!(errno)),
        ("key", json!(key)),
        ("ack", json!(ack)),
        ("data", Value::Null),
    ]);
    if let Some(s) = sockname {
        let family = if s.is_ipv4() { "IPv4" } else { "IPv6" };
        m.insert(
            "sockname".into(),
            json!({"address": s.ip().to_string(), "family": family, "port": s.port()}),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(msg: Value) -> Query {
        Query::parse(&msg).expect("a valid query")
    }

    #[test]
    fn key_spells_null_and_undefined_as_javascript_does() {
        let q = query(
            json!({"address": "127.0.0.1", "port": 8000, "addressType": 4, "index": 0, "seq": 1}),
        );
        assert_eq!(q.key(), "127.0.0.1:8000:4:undefined:0");
        let q =
            query(json!({"address": null, "port": 8000, "addressType": 4, "index": 0, "seq": 1}));
        assert_eq!(q.key(), "null:8000:4:undefined:0");
        let q = query(
            json!({"address": "127.0.0.1", "port": 0, "addressType": 4, "index": 1, "seq": 1}),
        );
        assert_eq!(q.key(), "127.0.0.1:0:4:undefined:1");
        let q = query(
            json!({"address": "127.0.0.1", "port": 8000, "addressType": "udp4", "fd": -1, "index": 0, "seq": 1}),
        );
        assert_eq!(q.key(), "127.0.0.1:8000:udp4:-1:0");
    }

    #[test]
    fn a_query_without_port_or_type_is_refused() {
        assert!(
            Query::parse(&json!({"address": "127.0.0.1", "addressType": 4, "seq": 1})).is_none()
        );
        assert!(Query::parse(&json!({"port": 80, "addressType": "tcp9", "seq": 1})).is_none());
        assert!(Query::parse(&json!({"port": 70000, "addressType": 4, "seq": 1})).is_none());
    }

    #[test]
    fn a_prerendered_newconn_is_what_send_handle_would_write() {
        for key in [
            "127.0.0.1:0:4:undefined:0",
            "null:8000:6:undefined:1",
            "odd \"key\" \\ \u{1} é:1:4:undefined:0",
        ] {
            let fields = utils::fields(&[("act", json!("newconn")), ("key", json!(key))]);
            let (msg, seq) = utils::envelope(fields);
            let generic = json!({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": msg});
            let line = NewConnLine::new(key).line(seq);
            assert_eq!(String::from_utf8(line).expect("utf-8"), generic.to_string());
        }
    }

    #[test]
    fn replies_in_nodes_key_order() {
        let addr: SocketAddr = "127.0.0.1:8000".parse().expect("addr");
        let rr = Value::Object(reply_fields(None, "K", 3, Some(addr)));
        assert_eq!(
            rr.to_string(),
            r#"{"errno":null,"key":"K","ack":3,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":8000}}"#
        );
        let failed = Value::Object(reply_fields(Some(-98), "K", 3, None));
        assert_eq!(
            failed.to_string(),
            r#"{"errno":-98,"key":"K","ack":3,"data":null}"#
        );
        let shared = Value::Object(reply_fields(Some(0), "K", 3, None));
        assert_eq!(
            shared.to_string(),
            r#"{"errno":0,"key":"K","ack":3,"data":null}"#
        );
    }
}
