//! A value of Node's `handles` map: a [`RoundRobinHandle`] or a [`SharedHandle`]. Node's
//! primary calls `add`, `has`, `remove` and reads `data` on either without asking which it
//! is (the two files give both the same methods); here the enum says it.

use std::rc::Rc;

use serde_json::Value;

use super::round_robin_handle::{Handoff, RoundRobinHandle};
use super::shared_handle::SharedHandle;
use crate::framing::HandleType;
use crate::sys::Errno;

/// A value of the `handles` map: the socket every worker with that key shares.
pub(super) enum Handle {
    RoundRobin(Box<RoundRobinHandle>),
    Shared(SharedHandle),
}

/// What adding a worker to a handle gave.
pub(super) enum Added {
    /// Round robin: the primary's address (none for a pipe), and a connection for the
    /// worker if one waits.
    RoundRobin {
        sockname: Option<std::net::SocketAddr>,
        next: Option<Handoff>,
    },
    /// Shared: the bound socket to send.
    Shared(Rc<std::os::fd::OwnedFd>, HandleType),
    /// The bind failed.
    Failed(Errno),
}

impl Handle {
    /// `handle.has(worker)` (v22+) / the assert in `add` (v20).
    pub(super) fn contains(&self, worker: u32) -> bool {
        match self {
            Handle::RoundRobin(h) => h.contains(worker),
            Handle::Shared(h) => h.contains(worker),
        }
    }

    /// `handle.add(worker, ...)`.
    pub(super) fn add(&mut self, worker: u32) -> Added {
        match self {
            Handle::RoundRobin(h) => {
                let sockname = h.sockname();
                let next = h.add(worker);
                Added::RoundRobin { sockname, next }
            }
            Handle::Shared(h) => match h.add(worker) {
                (None, Some((fd, ty))) => Added::Shared(fd, ty),
                (errno, _) => Added::Failed(errno.unwrap_or(Errno::EINVAL)),
            },
        }
    }

    /// `handle.data ||= message.data`: the first worker's `data` (TLS ticket keys, say)
    /// stays the key's; every worker is sent it. Returns what the handle keeps.
    pub(super) fn keep_data(&mut self, data: Value) -> Value {
        let kept = match self {
            Handle::RoundRobin(h) => &mut h.data,
            Handle::Shared(h) => &mut h.data,
        };
        if is_falsy(kept) {
            *kept = data;
        }
        kept.clone()
    }

    /// `handle.remove(worker)`: true when it was the last worker (the key goes then).
    pub(super) fn remove(&mut self, worker: u32) -> bool {
        match self {
            Handle::RoundRobin(h) => h.remove(worker),
            Handle::Shared(h) => h.remove(worker),
        }
    }
}

/// JavaScript's falsy values, as JSON has them.
pub(super) fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}
