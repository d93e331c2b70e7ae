//! Mirror of Node's [`lib/cluster.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/cluster.js#L28)
//! and the files under [`lib/internal/cluster/`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/primary.js#L62).
//!
//! Node decides *once*, when `cluster` is first loaded, whether this process is a primary or a
//! worker: a worker is a process whose environment has `NODE_UNIQUE_ID`. Nothing else. A plain
//! `node server.js` is a "primary" that simply never forks — which is why chapter 1's servers
//! bind for themselves.

pub(crate) mod child;

// ANCHOR: is_primary
/// `cluster.isPrimary`: true unless `NODE_UNIQUE_ID` is in the environment
/// ([`lib/cluster.js` L28](https://github.com/nodejs/node/blob/v24.22.3/lib/cluster.js#L28)).
pub fn is_primary() -> bool {
    std::env::var_os(NODE_UNIQUE_ID).is_none() && !child::is_set_up()
}
// ANCHOR_END: is_primary

/// The variable `cluster.fork()` sets to the worker's id.
pub const NODE_UNIQUE_ID: &str = "NODE_UNIQUE_ID";

mod event_loop;
pub(crate) mod guard;
mod handle;
pub(crate) mod message;
pub(crate) mod path;
pub(crate) mod primary;
pub(crate) mod round_robin_handle;
pub(crate) mod shared_handle;
pub(crate) mod utils;
pub(crate) mod version;
mod worker;

/// `cluster.SCHED_NONE` (1) and `cluster.SCHED_RR` (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingPolicy {
    /// The primary binds, every worker listens and accepts on the shared socket.
    None = 1,
    /// The primary accepts and hands each connection to a worker.
    RoundRobin = 2,
}

impl SchedulingPolicy {
    /// How Node names it in the docs and in `NODE_CLUSTER_SCHED_POLICY`.
    pub fn name(self) -> &'static str {
        match self {
            SchedulingPolicy::None => "none",
            SchedulingPolicy::RoundRobin => "rr",
        }
    }
}

// ANCHOR: policy
/// The policy as `primary.js` reads it when it loads (L48–L58): `rr` or `none` from
/// `NODE_CLUSTER_SCHED_POLICY`; anything else falls back, silently, to the platform's
/// default — round robin everywhere but Windows.
pub fn scheduling_policy_from_env() -> SchedulingPolicy {
    match std::env::var("NODE_CLUSTER_SCHED_POLICY").as_deref() {
        Ok("rr") => SchedulingPolicy::RoundRobin,
        Ok("none") => SchedulingPolicy::None,
        _ if cfg!(windows) => SchedulingPolicy::None,
        _ => SchedulingPolicy::RoundRobin,
    }
}
// ANCHOR_END: policy
