//! Mirror of [`lib/internal/cluster/worker.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/cluster/worker.js#L15):
//! the primary's view of one worker, and what the cluster API does with workers by id
//! (`worker.process.pid`, `worker.send`, `worker.kill`, `cluster.workers`).

use std::process::Child;

use serde_json::Value;

use super::primary::Primary;
use crate::channel::Channel;
use crate::sys;
use crate::trace;

/// The primary's view of one worker (`Worker` in `lib/internal/cluster/worker.js`).
pub struct Worker {
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
    /// The worker broke the protocol; it was ignored or dropped, as `what` says.
    Problem {
        id: u32,
        what: String,
    },
}

impl Primary {
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

    /// The next thing that happened, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Send a signal to a worker (`worker.process.kill(signal)`).
    pub fn kill(&mut self, id: u32, signal: sys::Signal) {
        if let Some(w) = self.workers.get(&id) {
            trace::step(&format!("kill worker {id} (pid {}) with {signal:?}", w.pid));
            sys::kill(w.pid, signal);
        }
    }

    /// Send a user message to a worker (`worker.send(msg)`).
    pub fn send_user(&mut self, id: u32, msg: Value) {
        if let Some(ch) = self.channel(id) {
            ch.send(msg);
        }
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
