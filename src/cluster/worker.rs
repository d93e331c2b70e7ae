//! Mirror of [`lib/internal/cluster/worker.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/worker.js#L16):
//! the primary's view of one worker, and what the cluster API does with workers by id
//! (`worker.process.pid`, `worker.send`, `worker.kill`, `cluster.workers`).
//!
//! Not in Node: what the primary keeps about its workers is bounded, since a worker is
//! untrusted input here. A Node primary emits its events as they happen; ours queues them
//! for the program that drives it, so the queue has a bound ([`EventBound`]), and so has the
//! record of what each worker did wrong ([`ProblemLog`]).

use std::collections::{HashMap, VecDeque};
use std::process::Child;

use serde_json::Value;

use super::message::Port;
use super::primary::Primary;
use crate::channel::Channel;
use crate::sys::{self, Errno};
use crate::trace;

/// The primary's view of one worker (`Worker` in `lib/internal/cluster/worker.js`).
pub(crate) struct Worker {
    pub id: u32,
    pub pid: u32,
    pub(crate) child: Child,
    /// `None` once the channel closed (`'disconnect'`).
    pub(crate) channel: Option<Channel>,
    pub(crate) exited_after_disconnect: bool,
    /// Reaped: its exit status was collected.
    pub(crate) exited: bool,
}

/// What a worker did, as the primary saw it, in that order: the events Node emits on
/// `cluster` and on the worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    Online {
        id: u32,
    },
    Listening {
        id: u32,
        address: Value,
        /// `-1` for a pipe.
        port: Port,
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
    /// The worker broke the protocol; it was ignored or dropped, as `what` says.
    Problem {
        id: u32,
        what: String,
    },
}

impl Primary {
    /// The pid of a worker, if it is still known.
    pub(crate) fn pid(&self, id: u32) -> Option<u32> {
        self.workers.get(&id).map(|w| w.pid)
    }

    /// The ids of the workers still known to the primary.
    pub(crate) fn worker_ids(&self) -> Vec<u32> {
        self.workers.keys().copied().collect()
    }

    /// Whether any worker is still running or connected.
    pub(crate) fn has_workers(&self) -> bool {
        !self.workers.is_empty()
    }

    /// The next thing that happened, if any.
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        let ev = self.events.pop_front()?;
        self.event_loop.events.taken();
        Some(ev)
    }

    /// Send a signal to a worker (`worker.process.kill(signal)`).
    pub(crate) fn kill(&mut self, id: u32, signal: sys::Signal) {
        if let Some(w) = self.workers.get(&id) {
            trace::step(&format!("kill worker {id} (pid {}) with {signal:?}", w.pid));
            sys::kill(w.pid, signal);
        }
    }

    /// SIGKILL and reap every worker still there (also what `Drop` does).
    pub(crate) fn kill_all(&mut self) {
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

/// How long a primary that goes away gives its workers to leave on their own, after closing
impl Primary {
    /// Something a worker did wrong that the primary ignores: say so.
    pub(super) fn report(&mut self, id: u32, what: &str) {
        self.problem(id, format!("worker {id} {what}; ignored"));
    }

    /// Say what went wrong, in the trace and as an event: the first few of each kind from
    /// each worker; the rest are counted (see `ProblemLog`).
    pub(super) fn problem(&mut self, id: u32, what: String) {
        if let Some(what) = self.event_loop.problems.admit(id, what) {
            trace::problem(&what);
            self.events.push_back(Event::Problem { id, what });
        }
    }
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

/// their channels, before it kills them.
pub(super) const LEAVE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Primary {
    /// What the end of the primary means to its workers, done before it ends: every channel
    /// closes (the end of file a Node worker leaves on: `'disconnect'`, then `exit(0)` with
    /// its `'exit'` handlers), then at most `grace` for them to exit; the rest are killed.
    /// Every worker is reaped.
    pub(crate) fn leave(&mut self, grace: std::time::Duration) {
        for w in self.workers.values_mut() {
            w.channel = None; // close(2): the worker's EOF
        }
        let deadline = std::time::Instant::now() + grace;
        loop {
            let running = self.workers.values_mut().filter(|w| !w.exited).any(|w| {
                w.exited = matches!(w.child.try_wait(), Ok(Some(_)));
                !w.exited
            });
            if !running || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.kill_all();
    }
}

impl Drop for Primary {
    /// No orphans: whatever way the primary ends (a panic, an early return), its workers end
    /// with it. They are told the way a dying Node primary tells them, by the end of their
    /// channels, and killed only if they are still there [`LEAVE_GRACE`] later. (A primary
    /// killed with `SIGKILL` runs none of this: its workers see the same end of file, from
    /// the kernel, and leave on it.)
    fn drop(&mut self) {
        self.leave(LEAVE_GRACE);
    }
}

// ANCHOR: problem_log
/// How many problems of one kind from one worker are shown; the rest are only counted.
pub(super) const PROBLEMS_SHOWN: u64 = 5;
/// How many kinds of problem are told apart per worker; further kinds share one count.
pub(super) const PROBLEM_KINDS: usize = 16;
/// The longest problem text kept, in bytes (a peer's line may be 1 MiB); longer ones are cut.
const PROBLEM_TEXT: usize = 512;

/// What each worker did wrong, bounded: per worker and per kind of problem, a count and the
/// first text. The first [`PROBLEMS_SHOWN`] of a kind are told, the next one with a note
/// that the rest are counted, not shown; when the worker goes, how many there were in all.
#[derive(Debug, Default)]
pub(crate) struct ProblemLog {
    by_worker: HashMap<u32, Vec<Tally>>,
}

/// One kind of problem from one worker.
#[derive(Debug)]
struct Tally {
    /// The text's shape (see [`kind_of`]).
    kind: String,
    count: u64,
    /// The first text of this kind, for the final count.
    first: String,
}

impl ProblemLog {
    /// Count one problem of worker `id`; returns the text to tell, if it is still told.
    pub(crate) fn admit(&mut self, id: u32, what: String) -> Option<String> {
        let what = cut(what, PROBLEM_TEXT);
        let tallies = self.by_worker.entry(id).or_default();
        let mut kind = kind_of(&what);
        if tallies.len() >= PROBLEM_KINDS && !tallies.iter().any(|t| t.kind == kind) {
            kind = String::from("(any further kind)");
        }
        let tally = match tallies.iter().position(|t| t.kind == kind) {
            Some(i) => &mut tallies[i],
            None => {
                let first = what.clone();
                tallies.push(Tally {
                    kind,
                    count: 0,
                    first,
                });
                tallies.last_mut().expect("just pushed")
            }
        };
        tally.count += 1;
        match tally.count {
            n if n <= PROBLEMS_SHOWN => Some(what),
            n if n == PROBLEMS_SHOWN + 1 => Some(format!(
                "{what} (further problems of this kind from worker {id} are counted, not shown)"
            )),
            _ => None,
        }
    }

    /// Worker `id` is gone: for each kind with more problems than were shown, how many
    /// there were in all. Its record goes.
    pub(crate) fn close(&mut self, id: u32) -> Vec<String> {
        let tallies = self.by_worker.remove(&id).unwrap_or_default();
        tallies
            .into_iter()
            .filter(|t| t.count > PROBLEMS_SHOWN + 1)
            .map(|t| {
                let (count, shown) = (t.count, PROBLEMS_SHOWN + 1);
                format!(
                    "worker {id}: {count} problems of this kind in all, {shown} shown; the first: {}",
                    t.first
                )
            })
            .collect()
    }
}
// ANCHOR_END: problem_log

/// A problem's kind: its text with every number made `#` and every quoted part `"…"`, so
/// that `unknown act "a"` and `unknown act "b"` are one kind, and `ack 7` and `ack 8` too.
fn kind_of(text: &str) -> String {
    let mut kind = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' if kind.ends_with('#') => {}
            '0'..='9' => kind.push('#'),
            '"' | '`' => {
                kind.push(c);
                kind.push('…');
                kind.push(c);
                let mut escaped = false;
                for q in chars.by_ref() {
                    match q {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        _ if q == c => break,
                        _ => {}
                    }
                }
            }
            _ => kind.push(c),
        }
    }
    kind
}

/// `text`, at most `max` bytes of it (on a character boundary), with `…` if it was cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

// ANCHOR: event_bound
/// The most events the primary keeps for a program that does not read them
/// ([`Primary::next_event`]), ...
pub(super) const MAX_EVENTS: usize = 10_000;
/// ... and the most bytes they may take, a message counted by its size as text.
pub(super) const MAX_EVENT_BYTES: usize = 16 << 20;

/// The bound on the event queue. A program that reads its events as they come (the lab does,
/// after every turn) never meets it. When the queue is full, new messages, problems,
/// `online`s and `listening`s are dropped, and counted, with one problem saying so; a
/// `disconnect` and an `exit` are always kept (one each per worker: the program waits for
/// them).
#[derive(Debug, Default)]
pub(crate) struct EventBound {
    /// The sizes of the events at the front of the queue that were checked already.
    sizes: VecDeque<usize>,
    bytes: usize,
    /// Whether the last check dropped something (the note is given once per time it fills).
    full: bool,
    /// Events dropped since the primary began.
    pub(crate) dropped: u64,
}

impl EventBound {
    /// The program took the event at the front.
    pub(crate) fn taken(&mut self) {
        if let Some(size) = self.sizes.pop_front() {
            self.bytes -= size;
        }
    }

    /// Check the events pushed since the last check: keep what fits, drop the rest.
    pub(crate) fn check(&mut self, events: &mut VecDeque<Event>) {
        if events.len() == self.sizes.len() {
            return;
        }
        let new = events.split_off(self.sizes.len());
        let mut dropped = 0;
        for ev in new {
            let size = size_of(&ev);
            let fits = events.len() < MAX_EVENTS && self.bytes + size <= MAX_EVENT_BYTES;
            if fits || matches!(ev, Event::Disconnect { .. } | Event::Exit { .. }) {
                self.keep(events, ev, size);
            } else {
                dropped += 1;
            }
        }
        self.dropped += dropped;
        if dropped > 0 && !self.full {
            let what = format!(
                "the primary's events were not read: past {MAX_EVENTS} events or {} MiB, \
                 messages, problems, onlines and listenings are dropped (exits and \
                 disconnects are kept)",
                MAX_EVENT_BYTES >> 20
            );
            let ev = Event::Problem { id: 0, what };
            let size = size_of(&ev);
            self.keep(events, ev, size);
        }
        self.full = dropped > 0;
    }

    fn keep(&mut self, events: &mut VecDeque<Event>, ev: Event, size: usize) {
        events.push_back(ev);
        self.sizes.push_back(size);
        self.bytes += size;
    }
}
// ANCHOR_END: event_bound

/// About how many bytes an event takes.
fn size_of(ev: &Event) -> usize {
    std::mem::size_of::<Event>()
        + match ev {
            Event::Message { msg, .. } => value_size(msg),
            Event::Listening { address, .. } => value_size(address),
            Event::Problem { what, .. } => what.len(),
            _ => 0,
        }
}

/// About how many bytes a JSON value takes: its text's length, near enough. (Its depth is
/// bounded: `serde_json` refuses to parse more than 128 levels.)
fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, v)| k.len() + 4 + value_size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_of_a_kind_are_shown_then_one_note_then_a_count() {
        let mut log = ProblemLog::default();
        let told: Vec<String> = (0..100_000)
            .filter_map(|n| log.admit(2, format!("worker 2 sent an unknown act \"x{n}\"; ignored")))
            .collect();
        assert_eq!(told.len(), 6, "{told:?}");
        assert!(
            told[5]
                .ends_with("(further problems of this kind from worker 2 are counted, not shown)")
        );
        assert!(
            log.admit(3, "worker 3 sent an unknown act \"x\"; ignored".into())
                .is_some()
        );
        let end = log.close(2);
        assert_eq!(
            end,
            [
                "worker 2: 100000 problems of this kind in all, 6 shown; the first: \
              worker 2 sent an unknown act \"x0\"; ignored"
            ]
        );
        assert!(log.close(2).is_empty(), "the record went with the worker");
    }

    #[test]
    fn kinds_are_bounded_per_worker_and_texts_are_cut() {
        let mut log = ProblemLog::default();
        let mut told = 0;
        for k in 0..1000 {
            let what = format!("worker 1 did thing-{} wrong", "x".repeat(k % 100));
            told += log.admit(1, what).map_or(0, |_| 1);
        }
        // 16 kinds, and one shared by all the rest: 6 told of each at most.
        assert!(told <= (PROBLEM_KINDS + 1) * 6, "{told}");
        let long = log.admit(7, "y".repeat(10 * PROBLEM_TEXT)).expect("told");
        assert!(long.len() <= PROBLEM_TEXT + '…'.len_utf8());
    }

    #[test]
    fn a_kind_ignores_numbers_and_quoted_parts() {
        assert_eq!(
            kind_of(r#"worker 12 sent "a \" b" (ack 99) `x`"#),
            r#"worker # sent "…" (ack #) `…`"#
        );
    }

    #[test]
    fn the_queue_keeps_exits_and_drops_the_rest_once_full() {
        let mut events = VecDeque::new();
        let mut bound = EventBound::default();
        for n in 0..3 * MAX_EVENTS {
            events.push_back(Event::Message {
                id: 1,
                msg: serde_json::json!({ "n": n }),
            });
            if n % 1000 == 0 {
                bound.check(&mut events);
            }
        }
        events.push_back(Event::Exit {
            id: 1,
            code: Some(0),
            signal: None,
        });
        bound.check(&mut events);
        assert!(events.len() <= MAX_EVENTS + 2, "{}", events.len());
        assert!(matches!(events.back(), Some(Event::Exit { .. })));
        let notes = events
            .iter()
            .filter(|e| matches!(e, Event::Problem { .. }))
            .count();
        assert_eq!(notes, 1, "one note while it stays full");
        assert_eq!(bound.dropped as usize, 3 * MAX_EVENTS - MAX_EVENTS);
        // Read everything: the bound is all free again.
        while events.pop_front().is_some() {
            bound.taken();
        }
        assert_eq!(bound.bytes, 0);
    }

    #[test]
    fn big_messages_fill_the_bytes_first() {
        let mut events = VecDeque::new();
        let mut bound = EventBound::default();
        let big = "z".repeat(1 << 20);
        for _ in 0..40 {
            events.push_back(Event::Message {
                id: 1,
                msg: Value::String(big.clone()),
            });
            bound.check(&mut events);
        }
        assert!(bound.bytes <= MAX_EVENT_BYTES + 4096);
        assert!(events.len() < 20);
    }
}
