//! The primary's event loop: what libuv's `uv_run` does for Node's primary, which
//! `primary.js` never has to write. One `epoll` set (libuv's `uv__io_poll` waits in
//! `epoll_pwait` too) watches every worker's channel and every round-robin listening socket;
//! each turn reads the channels, accepts one connection per ready socket, sends what waits,
//! and collects the exit status of workers that ended (Node's `'exit'` comes from SIGCHLD).
//!
//! The round-robin hand-off is wired here as well: `RoundRobinHandle` decides who gets a
//! connection, this module sends the `newconn` and runs its callback when `{accepted}` comes
//! back — the parts of `round_robin_handle.js` that call `sendHelper`.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::handle::Handle;
use super::primary::Primary;
use super::round_robin_handle::{Handoff, MAX_UNDELIVERED, NewConnCallback, RoundRobinHandle};
use super::utils;
use super::worker::{Event, EventBound, ProblemLog};
use crate::channel::{Channel, ChannelError, HandleType};
use crate::sys::{self, Epoll, Ready};
use crate::trace;

/// How long a round-robin socket rests after `accept4` found no free fd (`EMFILE`).
const ACCEPT_REST: Duration = Duration::from_millis(100);

/// Tokens tell whose fd woke us: a worker's channel is its id; the rest are tagged.
const LISTENER: u64 = 1 << 40;
const EXTRA: u64 = 2 << 40;

/// What the loop keeps from turn to turn.
#[derive(Default)]
pub(crate) struct EventLoop {
    /// Created on the first turn (so [`Primary::new`] cannot fail).
    epoll: Option<Epoll>,
    /// Registered tokens, with the fd and whether it is watched for writing.
    registered: HashMap<u64, (RawFd, bool)>,
    /// Round-robin listening sockets by token: the key of their handle.
    listeners: HashMap<u64, Rc<str>>,
    /// Round-robin sockets left unwatched because their queue is full (see
    /// [`MAX_UNDELIVERED`]).
    full: HashSet<u64>,
    /// Round-robin sockets resting after `accept4` found no free fd (`EMFILE`, `ENFILE`):
    /// until when. A socket still watched would wake every wait and spin.
    stalled: HashMap<u64, Instant>,
    /// The last wait's answer (kept to reuse its memory).
    ready: Vec<Ready>,
    /// When every worker was last checked for an exit (see [`Primary::reap`]).
    last_sweep: Option<Instant>,
    /// The bound on the events nobody has read yet (checked after every read and turn).
    pub(super) events: EventBound,
    /// What each worker did wrong: counted, the first few told.
    pub(super) problems: ProblemLog,
}

impl EventLoop {
    /// Watch `fd` under `token` (or update what it is watched for); errors are reported by
    /// the wait that never wakes for it, so they are ignored here.
    fn watch(&mut self, token: u64, fd: BorrowedFd<'_>, writable: bool) {
        let Some(ep) = &self.epoll else { return };
        let want = (fd.as_raw_fd(), writable);
        match self.registered.get(&token) {
            Some(&have) if have == want => {}
            Some(&(raw, _)) if raw == want.0 => {
                let _ = ep.modify(fd, token, writable);
            }
            _ => {
                if ep.add(fd, token, writable).is_err() {
                    let _ = ep.modify(fd, token, writable);
                }
            }
        }
        self.registered.insert(token, want);
    }

    // ANCHOR: watch_listener
    /// Watch a round-robin socket while its queue has room; while [`MAX_UNDELIVERED`]
    /// connections wait for a worker, leave it unwatched, so that the next ones wait in the
    /// kernel's backlog instead of in our memory. (libuv's own `uv__server_io` stops watching
    /// a socket the same way while an accepted fd waits for `uv_accept`.) It is watched again
    /// once half of them are taken, so a queue at the bound does not flip every connection.
    /// Said once per time it fills, and once when it accepts again. A socket resting after
    /// `EMFILE` stays unwatched until its time is up.
    fn watch_listener(&mut self, token: u64, fd: BorrowedFd<'_>, rr: &RoundRobinHandle) {
        self.listeners.insert(token, rr.key.clone());
        let was_full = self.full.contains(&token);
        let full = match was_full {
            true => rr.waiting() > MAX_UNDELIVERED / 2,
            false => rr.is_full(),
        };
        let resting = self
            .stalled
            .get(&token)
            .is_some_and(|&t| Instant::now() < t);
        if !resting {
            self.stalled.remove(&token);
        }
        match full || resting {
            true => self.unwatch(token, fd),
            false => self.watch(token, fd, false),
        }
        match (full, was_full) {
            (true, false) => {
                self.full.insert(token);
                trace::note(&format!(
                    "{MAX_UNDELIVERED} connections accepted on {} wait for a free worker: the primary \
                     stops accepting there until a worker takes one (the next ones wait in \
                     the kernel's backlog)",
                    rr.key
                ));
            }
            (false, true) => {
                self.full.remove(&token);
                trace::note(&format!(
                    "workers took half of them: accepting on {} again",
                    rr.key
                ));
            }
            _ => {}
        }
    }
    // ANCHOR_END: watch_listener

    /// Stop watching `fd` for now (`EPOLL_CTL_DEL`); [`EventLoop::watch`] adds it again.
    fn unwatch(&mut self, token: u64, fd: BorrowedFd<'_>) {
        if self.registered.remove(&token).is_some()
            && let Some(ep) = &self.epoll
        {
            let _ = ep.delete(fd);
        }
    }

    /// Forget tokens whose owner is gone. Their fds are closed, and the kernel dropped them
    /// from the set when they closed (a channel or listening socket has no other copy in
    /// this process), so no syscall is needed — nor safe, as the number may be reused.
    fn forget_all_but(&mut self, alive: impl Fn(u64) -> bool) {
        self.registered.retain(|&t, _| alive(t));
        self.listeners.retain(|&t, _| alive(t));
        self.full.retain(|&t| alive(t));
        self.stalled.retain(|&t, _| alive(t));
    }
}

impl Primary {
    /// `cluster.disconnect()`, then wait (at most `grace`) for every worker to exit; kill the
    /// rest, and tell their exits. Every worker is reaped when this returns.
    ///
    /// Not Node: Node's primary would wait for them for ever. A worker whose server the
    /// cluster does not manage (`exclusive`, `reusePort`) keeps serving after `disconnect`,
    /// as Node's does, and only a kill ends it.
    pub(crate) fn shutdown(&mut self, grace: Duration) {
        for id in self.worker_ids() {
            self.disconnect(id);
        }
        self.wait_for_exits(grace);
        for id in self.worker_ids() {
            trace::step(&format!(
                "worker {id} still runs {grace:?} after disconnect: killing it"
            ));
            self.kill(id, sys::Signal::SIGKILL);
        }
        self.wait_for_exits(Duration::from_secs(1));
        self.kill_all();
    }

    /// Run the loop until every worker has exited and been reaped, at most `limit`.
    fn wait_for_exits(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.has_workers() && Instant::now() < deadline {
            self.poll(&[], Duration::from_millis(10));
        }
    }

    // ANCHOR: poll
    /// One turn of the event loop: wait (at most `timeout`) for a channel, a listening socket
    /// or one of the caller's `extra` fds; handle channels first, then accepts. Returns how
    /// the `extra` fds are, in their order.
    pub(crate) fn poll(
        &mut self,
        extra: &[(BorrowedFd<'_>, bool)],
        timeout: Duration,
    ) -> Vec<Ready> {
        self.watch_owners();
        let mut ready = std::mem::take(&mut self.event_loop.ready);
        self.wait(extra, self.turn_timeout(timeout), &mut ready);
        for r in ready.iter().filter(|r| r.token < LISTENER) {
            self.on_channel(r.token as u32, *r);
        }
        for r in ready
            .iter()
            .filter(|r| r.readable && (LISTENER..EXTRA).contains(&r.token))
        {
            if let Some(key) = self.event_loop.listeners.get(&r.token).cloned() {
                self.accept_one(&key);
            }
        }
        self.flush_all();
        self.drop_overflowed();
        self.reap();
        self.event_loop.events.check(&mut self.events);
        let mut out = vec![Ready::default(); extra.len()];
        for r in ready.iter().filter(|r| r.token >= EXTRA) {
            out[(r.token - EXTRA) as usize] = *r;
        }
        self.event_loop.ready = ready;
        out
    }
    // ANCHOR_END: poll

    /// Bring the epoll set up to date with the workers' channels and the round-robin sockets.
    fn watch_owners(&mut self) {
        let lp = &mut self.event_loop;
        if lp.epoll.is_none() {
            lp.epoll = Epoll::new().ok();
        }
        for w in self.workers.values() {
            if let Some(ch) = &w.channel {
                lp.watch(u64::from(w.id), ch.fd(), ch.wants_write());
            }
        }
        for h in self.handles.values() {
            if let Handle::RoundRobin(rr) = h
                && let Some(fd) = rr.fd()
            {
                let token = LISTENER | rr.serial();
                lp.watch_listener(token, fd, rr);
            }
        }
        let channels: Vec<u64> = self
            .workers
            .values()
            .filter(|w| w.channel.is_some())
            .map(|w| u64::from(w.id))
            .collect();
        let listeners: Vec<u64> = self
            .handles
            .values()
            .filter_map(|h| match h {
                Handle::RoundRobin(rr) if rr.fd().is_some() => Some(LISTENER | rr.serial()),
                _ => None,
            })
            .collect();
        lp.forget_all_but(|t| channels.contains(&t) || listeners.contains(&t));
    }

    /// Wait, with the caller's fds in the set for this one wait only.
    fn wait(&mut self, extra: &[(BorrowedFd<'_>, bool)], timeout: Duration, out: &mut Vec<Ready>) {
        let Some(ep) = self.event_loop.epoll.as_mut() else {
            out.clear();
            std::thread::sleep(timeout.min(Duration::from_millis(10)));
            return;
        };
        for (i, (fd, writable)) in extra.iter().enumerate() {
            let _ = ep.add(fd.as_fd(), EXTRA + i as u64, *writable);
        }
        if ep.wait(timeout, out).is_err() {
            out.clear(); // an error reads as "nothing ready"
        }
        for (fd, _) in extra {
            let _ = ep.delete(fd.as_fd());
        }
    }

    /// A worker that exited but is not reaped yet makes the turn short.
    fn turn_timeout(&self, timeout: Duration) -> Duration {
        let timeout = match self.workers.values().any(|w| w.channel.is_none()) {
            true => timeout.min(Duration::from_millis(5)),
            false => timeout,
        };
        let now = Instant::now();
        let rest = self
            .event_loop
            .stalled
            .values()
            .map(|&t| t.saturating_duration_since(now));
        rest.fold(timeout, Duration::min)
    }

    /// The end of a turn: whatever the channels hold back goes out now (see `channel.rs`:
    /// only when nothing is traced do plain messages wait for this).
    fn flush_all(&mut self) {
        for w in self.workers.values_mut() {
            if let Some(ch) = w.channel.as_mut().filter(|ch| ch.wants_write()) {
                ch.flush();
            }
        }
    }

    /// A worker that stopped reading while replies piled up for it (see
    /// [`crate::channel::MAX_QUEUED`]) is dropped, once: its channel stopped queueing when it
    /// overflowed, and dropping the worker frees what it holds.
    fn drop_overflowed(&mut self) {
        let overflowed: Vec<(u32, ChannelError)> = self
            .workers
            .values()
            .filter_map(|w| Some((w.id, w.channel.as_ref()?.overflow()?)))
            .collect();
        for (id, e) in overflowed {
            self.on_protocol_error(id, &e);
        }
    }

    fn on_channel(&mut self, id: u32, r: Ready) {
        let Some(ch) = self.channel(id) else {
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
                let warnings = ch.take_warnings();
                for what in warnings {
                    self.problem(id, format!("worker {id} {what}"));
                }
                for m in messages {
                    self.on_message(id, m);
                }
                // One read's worth of events at most, before the bound is checked.
                self.event_loop.events.check(&mut self.events);
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
        self.drop_worker(id, &e.to_string());
    }

    /// Report, then kill the worker and forget it at once (its exit is reaped later).
    pub(super) fn drop_worker(&mut self, id: u32, what: &str) {
        self.problem(id, format!("worker {id} {what}; dropping it"));
        if let Some(w) = self.workers.get(&id) {
            sys::kill(w.pid, sys::Signal::SIGKILL);
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
        self.callbacks.retain(|cb| cb.worker != id);
        // How many problems there were in all, where more came than were told.
        for what in self.event_loop.problems.close(id) {
            trace::problem(&what);
            self.events.push_back(Event::Problem { id, what });
        }
        trace::step(&format!("worker {id} disconnected (EOF on its channel)"));
        self.events.push_back(Event::Disconnect { id });
    }

    // ANCHOR: reap
    /// SIGCHLD's job: collect the exit status of every worker that ended. A worker that
    /// exits closes its channel, so only workers whose channel is gone are asked
    /// (`waitpid`) on every turn; all of them only every 100 ms, in case one ended with its
    /// channel still open elsewhere. That keeps `waitpid` out of the per-connection path.
    fn reap(&mut self) {
        let now = Instant::now();
        let last = *self.event_loop.last_sweep.get_or_insert(now);
        let sweep = now.duration_since(last) >= Duration::from_millis(100);
        if sweep {
            self.event_loop.last_sweep = Some(now);
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
            self.drain_before_exit(id);
            let (code, signal) = (status.code(), status.signal());
            let how = match (code, signal) {
                (Some(c), _) => format!("code {c}"),
                (None, Some(s)) => format!("signal {}", sys::signal_name(s)),
                _ => "unknown status".to_string(),
            };
            trace::step(&format!("worker {id} exited ({how})"));
            self.remove_worker(id, code, signal);
        }
    }
    // ANCHOR_END: reap

    /// Read what a worker said before it died, and its EOF, before its exit is told.
    fn drain_before_exit(&mut self, id: u32) {
        let readable = Ready {
            readable: true,
            ..Ready::default()
        };
        for _ in 0..64 {
            if self.workers.get(&id).is_none_or(|w| w.channel.is_none()) {
                break;
            }
            self.on_channel(id, readable);
        }
        self.on_disconnect(id);
    }

    // ANCHOR: accept
    /// A round-robin socket is readable: accept one connection and give it to `distribute`.
    /// One per wake-up, as Node v20's libuv (1.46) does — under strace it never drains the
    /// queue to `EAGAIN`; epoll reports the socket again while connections wait.
    fn accept_one(&mut self, key: &Rc<str>) {
        let Some(Handle::RoundRobin(rr)) = self.handles.get_mut(&**key) else {
            return;
        };
        let Some(fd) = rr.fd().filter(|_| !rr.is_full()) else {
            return;
        };
        let conn = match sys::accept4(fd, trace::format() != trace::Format::Off) {
            Ok(Some(conn)) => conn,
            Err(e @ (sys::Errno::EMFILE | sys::Errno::ENFILE)) => {
                // The connection stays in the backlog, and the socket stays readable: rest it
                // a moment instead of waking on it in a loop.
                let token = LISTENER | rr.serial();
                let until = Instant::now() + ACCEPT_REST;
                self.event_loop.stalled.insert(token, until);
                let rest = ACCEPT_REST.as_millis();
                return trace::note(&format!("accept4 {e:?} on {key}: resting it {rest} ms"));
            }
            Ok(None) | Err(_) => return, // Node ignores accept errors in distribute()
        };
        if let Some(h) = rr.distribute(conn) {
            self.do_handoff(key, h);
        }
    }

    /// The sending half of `handoff`: `newconn` with the connection's fd, and a callback for
    /// the worker's `{accepted}`. The line is the handle's, rendered once (`NewConnLine`);
    /// the trace line is built only if someone reads it.
    pub(super) fn do_handoff(&mut self, key: &Rc<str>, h: Handoff) {
        let conn = Rc::new(h.conn);
        let raw = conn.as_raw_fd();
        if trace::enabled() {
            trace::step(&format!(
                "newconn -> worker {} (connection fd {raw})",
                h.worker
            ));
        }
        let Some(Handle::RoundRobin(rr)) = self.handles.get(&**key) else {
            return;
        };
        // `sendHelper`'s seq, from the one counter every message takes its seq from.
        let seq = utils::next_seq();
        let line = rr.newconn.line(seq);
        let Some(ch) = self.channel(h.worker) else {
            let what = format!("worker {} is gone; connection fd {raw} closed", h.worker);
            return trace::problem(&what);
        };
        ch.send_handle_line(line, conn.clone(), HandleType::NetNative);
        let cb = NewConnCallback {
            worker: h.worker,
            key: key.clone(),
            conn,
        };
        if self.callbacks.insert(seq, cb).is_err() {
            self.drop_worker(h.worker, "left too many connections unanswered");
        }
    }
    // ANCHOR_END: accept

    // ANCHOR: on_newconn_reply
    /// `handoff`'s callback: the worker's `{accepted}` for one `newconn`.
    pub(super) fn on_newconn_reply(
        &mut self,
        id: u32,
        ack: u64,
        cb: NewConnCallback,
        accepted: bool,
    ) {
        if cb.worker != id {
            let what = format!("acknowledged another worker's message (ack {ack})");
            self.problem(id, format!("worker {id} {what}; ignored"));
            let _ = self.callbacks.insert(ack, cb);
            return;
        }
        let raw = cb.conn.as_raw_fd();
        let Some(Handle::RoundRobin(rr)) = self.handles.get_mut(&*cb.key) else {
            return;
        };
        let conn = match Rc::try_unwrap(cb.conn) {
            Ok(conn) => conn,
            Err(_still_queued) => {
                // Answered before it could have arrived: a broken peer. The channel still
                // holds the fd (it closes once sent); the worker is free again either way.
                trace::problem(&format!(
                    "worker {id} answered a newconn it had not received"
                ));
                if let Some(h) = rr.handoff(id) {
                    self.do_handoff(&cb.key, h);
                }
                return;
            }
        };
        if trace::enabled() {
            trace::step(&match accepted {
                true => format!("worker {id} accepted: close({raw}), the primary's copy"),
                false => format!("worker {id} refused: connection fd {raw} goes to another worker"),
            });
        }
        for h in rr.on_reply(id, conn, accepted).into_iter().flatten() {
            self.do_handoff(&cb.key, h);
        }
    }
    // ANCHOR_END: on_newconn_reply
}
