//! Mirror of [`lib/internal/cluster/primary.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/primary.js#L161):
//! forking workers, answering their `queryServer`, and the map of handles by key — in the
//! order `primary.js` has them: setup, `createWorkerProcess`, `removeWorker`,
//! `removeHandlesForWorker`, `fork`, `disconnect`, `onmessage` and its methods, `send`.
//!
//! What Node gets from libuv and does not write in `primary.js` — waiting on every channel
//! and listening socket, accepting, reaping exited children — is ours, in
//! [`super::event_loop`]. It turns what happens into [`Event`]s for the program that drives
//! the primary (the lab), as Node emits `'online'`, `'listening'`, `'exit'`.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::sys::Errno;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use super::event_loop::EventLoop;
use super::guard::{self, BindPolicy, Target};
use super::handle::{Added, Handle};
use super::message::{Accepted, Ack, Act, QueryReply, ServerMessage};
use super::round_robin_handle::{NewConnCallback, RoundRobinHandle};
use super::shared_handle::SharedHandle;
use super::utils::{self, Callbacks, Internal};
use super::version::{self, NodeLine};
pub(crate) use super::worker::{Event, ForkError, Worker};
use super::{NODE_UNIQUE_ID, SchedulingPolicy};
use crate::channel::{Channel, Incoming, WireLog};
use crate::sys;
use crate::trace;
use std::rc::Rc;

/// `cluster.settings`: what to run as a worker. Node runs `process.execPath` with the script
/// (`exec`) and `args`; we run `exec` with `args`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub exec: PathBuf,
    pub args: Vec<OsString>,
    /// Extra environment for every worker (`cluster.fork(env)`).
    pub env: Vec<(String, String)>,
}

impl Settings {
    /// Re-run this very program with the same arguments, as Node re-runs the script.
    pub(crate) fn this_program() -> std::io::Result<Self> {
        Ok(Self {
            exec: std::env::current_exe()?,
            args: std::env::args_os().skip(1).collect(),
            env: Vec::new(),
        })
    }
}

/// How many `newconn` replies may be outstanding at once, over all workers. Round robin
/// gives a worker one connection at a time, so this is far above what honest workers reach.
pub(super) const MAX_CALLBACKS: usize = 65_536;

/// The cluster primary.
pub(crate) struct Primary {
    settings: Settings,
    /// Frozen at creation, as `setupPrimary` freezes `cluster.schedulingPolicy`.
    policy: SchedulingPolicy,
    /// `ids`: worker ids start at 1 and are never reused.
    next_id: u32,
    pub(super) workers: BTreeMap<u32, Worker>,
    /// `handles`: key → the socket every worker with that key shares.
    pub(super) handles: BTreeMap<String, Handle>,
    /// `callbacks` of `utils.js`: each `newconn` waiting for its `{accepted}`.
    pub(super) callbacks: Callbacks<NewConnCallback>,
    pub(super) events: VecDeque<Event>,
    /// Every message the primary sent or received, when asked to keep them.
    wire_log: Option<WireLog>,
    pub(super) event_loop: EventLoop,
    /// What workers may bind (see [`guard`]).
    bind_policy: BindPolicy,
    /// Which Node's `primary.js` this one follows (see [`NodeLine`]).
    node: NodeLine,
}

impl Primary {
    /// `cluster.setupPrimary(settings)` with a policy.
    pub(crate) fn new(settings: Settings, policy: SchedulingPolicy) -> Self {
        Self {
            settings,
            policy,
            next_id: 1,
            workers: BTreeMap::new(),
            handles: BTreeMap::new(),
            callbacks: Callbacks::new(MAX_CALLBACKS),
            events: VecDeque::new(),
            wire_log: None,
            event_loop: EventLoop::default(),
            bind_policy: BindPolicy::default(),
            node: NodeLine::default(),
        }
    }

    /// Follow another Node's `primary.js` (and tell the workers, so ours follow its
    /// `child.js`). Call before forking.
    pub(crate) fn set_node(&mut self, node: NodeLine) {
        self.node = node;
    }

    /// The Node this primary follows.
    pub(crate) fn node(&self) -> NodeLine {
        self.node
    }

    /// What workers may bind: beyond loopback ports from 1024 up (if the user asked for it),
    /// and socket files in which directories.
    pub(crate) fn set_bind_policy(&mut self, policy: BindPolicy) {
        self.bind_policy = policy;
    }

    /// Keep every message on every channel forked from now on, in the order the primary
    /// saw them (the source of chapter 8's sequence diagram).
    pub(crate) fn record_wire(&mut self) -> WireLog {
        let log = self.wire_log.get_or_insert_with(WireLog::default);
        log.clone()
    }

    // ANCHOR: fork
    /// `createWorkerProcess`: a fresh process running `settings.exec`, with
    /// `NODE_UNIQUE_ID`, and an `AF_UNIX` socketpair as its channel on fd 3
    /// (`NODE_CHANNEL_FD`). Nothing else is inherited — in particular no listening socket:
    /// none exists yet.
    fn create_worker_process(&self, id: u32, settings: &Settings) -> Result<Worker, ForkError> {
        let (ours, theirs) = sys::socketpair().map_err(ForkError::Socketpair)?;
        let mut cmd = Command::new(&settings.exec);
        cmd.args(&settings.args)
            .envs(settings.env.iter().cloned())
            .env(NODE_UNIQUE_ID, id.to_string())
            .env("NODE_CHANNEL_FD", "3")
            .env("NODE_CHANNEL_SERIALIZATION_MODE", "json")
            .env(trace::ENV, trace::to_env())
            .env(version::ENV, self.node.major().to_string())
            .stdin(Stdio::null());
        let channel_fd = theirs.as_raw_fd();
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // calls (dup2, fcntl, close_range); see sys::prepare_worker_child.
        unsafe {
            cmd.pre_exec(move || sys::prepare_worker_child(channel_fd, 3));
        }
        let child = cmd.spawn().map_err(|source| ForkError::Spawn {
            exec: settings.exec.display().to_string(),
            source,
        })?;
        drop(theirs); // or a dead worker would never show as EOF
        let mut channel = Channel::new(ours, &format!("worker {id}")).ok();
        if let (Some(ch), Some(log)) = (channel.as_mut(), &self.wire_log) {
            ch.record_into(log.clone(), "primary");
        }
        let pid = child.id();
        let (exited_after_disconnect, exited) = (false, false);
        Ok(Worker {
            id,
            pid,
            child,
            channel,
            exited_after_disconnect,
            exited,
        })
    }
    // ANCHOR_END: fork

    /// `removeWorker`: the worker exited and its channel is closed; forget it.
    pub(super) fn remove_worker(&mut self, id: u32, code: Option<i32>, signal: Option<i32>) {
        if self.workers.remove(&id).is_some() {
            self.events.push_back(Event::Exit { id, code, signal });
        }
    }

    // ANCHOR: remove_handles_for_worker
    /// `removeHandlesForWorker`: take the worker out of every handle; a handle whose last
    /// worker it was closes its socket and its key goes.
    pub(super) fn remove_handles_for_worker(&mut self, id: u32) {
        self.handles.retain(|_, h| !h.remove(id));
    }
    // ANCHOR_END: remove_handles_for_worker

    /// `cluster.fork()`: the next id, a worker process for it.
    pub(crate) fn fork(&mut self) -> Result<u32, ForkError> {
        let settings = self.settings.clone();
        self.fork_with(&settings)
    }

    /// `fork()` running another program as the worker (a real `node worker.js`, say) with the
    /// same environment and channel Node would give it.
    pub(crate) fn fork_with(&mut self, settings: &Settings) -> Result<u32, ForkError> {
        let id = self.next_id;
        self.next_id += 1;
        trace::step(&format!(
            "fork worker {id}: NODE_UNIQUE_ID={id}, channel on fd 3"
        ));
        let worker = self.create_worker_process(id, settings)?;
        self.workers.insert(id, worker);
        Ok(id)
    }

    // ANCHOR: disconnect
    /// `Worker.prototype.disconnect`: tell the worker to close its servers and go; forget its
    /// handles at once.
    pub(crate) fn disconnect(&mut self, id: u32) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.exited_after_disconnect = true;
        self.send(id, &Act::Disconnect);
        self.remove_handles_for_worker(id);
    }
    // ANCHOR_END: disconnect

    // ANCHOR: onmessage
    /// `onmessage` and `methodMessageMapping`, behind `internal()`: replies go to their
    /// callback (matched by `ack`); requests are dispatched by `act`; acts the primary has no
    /// method for are ignored, as in Node.
    pub(super) fn on_message(&mut self, id: u32, m: Incoming) {
        match utils::internal(&mut self.callbacks, &m.msg) {
            Internal::User => self.events.push_back(Event::Message { id, msg: m.msg }),
            Internal::Reply { ack, cb } => match Accepted::deserialize(&m.msg) {
                Ok(reply) => self.on_newconn_reply(id, ack, cb, reply.accepted),
                Err(e) => self.drop_worker(id, &format!("sent a malformed reply: {e}")),
            },
            Internal::StrayReply(ack) => self.report(
                id,
                &format!("sent a reply (ack {ack}) that matches no request"),
            ),
            Internal::OtherCmd(cmd) => self.report(id, &format!("sent an unknown cmd {cmd:?}")),
            Internal::Request { act: Err(e), .. } => self.report(id, &format!("sent {e}")),
            Internal::Request { act: Ok(act), seq } => match act {
                Act::Online => self.online(id),
                Act::QueryServer(msg) => self.query_server(id, msg, seq),
                Act::Listening(msg) => self.listening(id, msg),
                Act::Close { key } => self.close(id, &key),
                Act::ExitedAfterDisconnect => self.exited_after_disconnect(id, seq),
                other => self.report(id, &format!("sent {other:?}, a primary's message")),
            },
        }
    }

    // ANCHOR_END: onmessage

    fn online(&mut self, id: u32) {
        self.events.push_back(Event::Online { id });
    }

    fn exited_after_disconnect(&mut self, id: u32, seq: Option<u64>) {
        if let Some(w) = self.workers.get_mut(&id) {
            w.exited_after_disconnect = true;
        }
        if let Some(ack) = seq {
            self.send(id, &Ack { ack });
        }
    }

    // ANCHOR: query_server
    /// `queryServer`: build the key, find or create the handle (the policy decides which
    /// kind; UDP is always shared), add the worker, and answer with `ack` = its `seq`.
    fn query_server(&mut self, id: u32, msg: ServerMessage, seq: Option<u64>) {
        let gone = self
            .workers
            .get(&id)
            .is_none_or(|w| w.exited_after_disconnect);
        let Some(seq) = seq.filter(|_| !gone) else {
            return;
        };
        let key = key(&msg, self.node);
        let shown = utils::printable(&key);
        trace::step(&format!("queryServer from worker {id}: key {shown}"));
        let held = self.handles.values().filter(|h| h.contains(id)).count();
        let target = match guard::target(&msg.query, &self.bind_policy, held) {
            Ok(target) => target,
            Err(r) => {
                self.problem(id, format!("worker {id} refused: {}", r.why));
                return self.reply_error(id, &key, seq, r.errno, Value::Null);
            }
        };
        let holds = self.handles.get(&key).map(|h| h.contains(id));
        let mut fresh = None;
        match holds {
            Some(holds) if self.node.reuses_handle(holds) => {
                trace::note("the key is known: no new socket")
            }
            _ => {
                if holds.is_some() {
                    trace::note("this worker holds the key's handle already: a fresh handle");
                }
                match self.create_handle(&key, &msg, &target) {
                    Ok(h) if holds.is_some() => fresh = Some(h),
                    Ok(h) => drop(self.handles.insert(key.clone(), h)),
                    Err(errno) => return self.reply_error(id, &key, seq, errno, Value::Null),
                }
            }
        }
        self.add(id, &key, seq, msg.data, fresh);
    }
    // ANCHOR_END: query_server

    // ANCHOR: create_handle
    /// The decision (`primary.js` L293): round robin only for TCP and pipes under `SCHED_RR`.
    fn create_handle(
        &mut self,
        key: &str,
        msg: &ServerMessage,
        target: &Target,
    ) -> Result<Handle, Errno> {
        let q = &msg.query;
        let port = q.port.number().unwrap_or(0);
        if self.policy != SchedulingPolicy::RoundRobin || q.address_type.is_udp() {
            trace::note("new SharedHandle: the primary binds, each worker will listen");
            let h = match target {
                Target::Ip(ip) => {
                    SharedHandle::new(key, guard::host(q, *ip), port, q.address_type.is_udp())
                }
                Target::Pipe(name) => SharedHandle::new_pipe(key, name, self.node.libuv()),
            };
            return Ok(Handle::Shared(h));
        }
        trace::note("new RoundRobinHandle: the primary binds and listens, then accepts");
        let backlog = q.backlog.unwrap_or(0);
        let h = match target {
            Target::Ip(ip) => RoundRobinHandle::new(key, guard::host(q, *ip), port, backlog),
            Target::Pipe(name) => RoundRobinHandle::new_pipe(key, name, q, self.node.libuv()),
        };
        h.map(|h| Handle::RoundRobin(Box::new(h)))
    }
    // ANCHOR_END: create_handle

    /// `handle.add(worker, cb)` and the callback's `send(worker, {errno, key, ack, data, ...reply}, handle)`.
    /// `fresh` is v22+'s new handle for a worker that held the cached one: it takes the
    /// key's place only if it works (`handles.set(key, handle)`, "in case it was replaced").
    fn add(&mut self, id: u32, key: &str, ack: u64, data: Value, mut fresh: Option<Handle>) {
        let replacing = fresh.is_some();
        let Some(handle) = fresh.as_mut().or_else(|| self.handles.get_mut(key)) else {
            return;
        };
        if handle.contains(id) {
            // Node asserts here and the primary dies; we drop the one worker instead.
            let what = format!("asked twice for the same key {key}");
            return self.drop_worker(id, &what);
        }
        let data = handle.keep_data(data);
        let added = handle.add(id);
        if let (Some(h), false) = (fresh, matches!(added, Added::Failed(_))) {
            // Node keeps the old handle alive, unreachable; dropping it closes only the
            // primary's copy: the workers that hold it keep theirs.
            self.handles.insert(key.to_string(), h);
        }
        let mut reply = QueryReply::new(None, key, ack, None);
        reply.data = data.clone();
        match added {
            Added::RoundRobin { sockname, next } => {
                trace::step(&match sockname {
                    Some(s) => format!("reply to worker {id}: errno null, sockname {s}"),
                    None => format!("reply to worker {id}: errno null (a pipe: no sockname)"),
                });
                reply.sockname = sockname.map(Into::into);
                self.send(id, &reply);
                if let Some(h) = next {
                    self.do_handoff(&Rc::from(key), h);
                }
            }
            Added::Shared(fd, ty) => {
                let raw = fd.as_raw_fd();
                trace::step(&format!(
                    "reply to worker {id}: errno 0, with the bound socket (fd {raw})"
                ));
                reply.errno = Some(0);
                let (msg, _) = utils::envelope(&reply);
                if let Some(ch) = self.channel(id) {
                    ch.send_handle(msg, fd, ty);
                }
            }
            Added::Failed(errno) => {
                if !replacing {
                    self.handles.remove(key);
                }
                self.reply_error(id, key, ack, errno, data);
            }
        }
    }

    /// The failed-bind answer: the errno and no socket. The key is dropped, so the next
    /// worker's query tries the bind again (Node: "Gives other workers a chance to retry").
    fn reply_error(&mut self, id: u32, key: &str, ack: u64, errno: Errno, data: Value) {
        let code = -(errno as i32);
        let kept = match self.handles.contains_key(key) {
            true => "the key keeps its handle",
            false => "key dropped",
        };
        trace::step(&format!(
            "reply to worker {id}: errno {code} ({errno:?}), no socket; {kept}"
        ));
        let mut reply = QueryReply::new(Some(code), key, ack, None);
        reply.data = data;
        self.send(id, &reply);
    }

    fn listening(&mut self, id: u32, msg: ServerMessage) {
        let address = serde_json::to_value(&msg.query.address).unwrap_or(Value::Null);
        let port = msg.query.port;
        self.events
            .push_back(Event::Listening { id, address, port });
    }

    fn close(&mut self, id: u32, key: &str) {
        if self.handles.get_mut(key).is_some_and(|h| h.remove(id)) {
            self.handles.remove(key);
        }
    }

    /// `send` (`sendHelper` to `worker.process`): wrap in the `NODE_CLUSTER` envelope and
    /// send. Nothing happens when the worker is no longer connected (Node returns `false`).
    pub(super) fn send<T: Serialize>(&mut self, id: u32, message: &T) {
        if let Some(ch) = self.channel(id) {
            ch.send(utils::envelope(message).0);
        }
    }

    /// The worker's channel, while it is connected.
    pub(super) fn channel(&mut self, id: u32) -> Option<&mut Channel> {
        self.workers.get_mut(&id)?.channel.as_mut()
    }
}

// ANCHOR: key
/// The key `queryServer` builds: `${address}:${port}:${addressType}:${fd}`, then `:${index}`
/// (v20: always; v22+: only for port 0 — see [`NodeLine::key_has_index`]), with
/// JavaScript's spelling of a missing value: `null` for no host, `undefined` for no fd.
fn key(msg: &ServerMessage, node: NodeLine) -> String {
    let q = &msg.query;
    let address = q.address.as_deref().unwrap_or("null");
    let fd = q.fd.map_or("undefined".to_string(), |f| f.to_string());
    let key = format!("{address}:{}:{}:{fd}", q.port, q.address_type);
    if !node.key_has_index(q.port) {
        return key;
    }
    let index = msg.index.map_or("undefined".to_string(), |i| i.to_string());
    format!("{key}:{index}")
}
// ANCHOR_END: key

#[cfg(test)]
#[path = "primary_tests.rs"]
mod tests;
