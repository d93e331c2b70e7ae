//! Mirror of Node's [`lib/cluster.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/cluster.js#L28)
//! and [`lib/internal/cluster/`](https://github.com/nodejs/node/tree/v20.20.2/lib/internal/cluster).
//!
//! Node decides *once*, when `cluster` is first loaded, whether this process is a primary or a
//! worker: a worker is a process whose environment has `NODE_UNIQUE_ID`. Nothing else. A plain
//! `node server.js` is a "primary" that simply never forks — which is why chapter 1's servers
//! bind for themselves.

pub mod child;

// ANCHOR: is_primary
/// `cluster.isPrimary`: true unless `NODE_UNIQUE_ID` is in the environment
/// ([`lib/cluster.js` L28](https://github.com/nodejs/node/blob/v20.20.2/lib/cluster.js#L28)).
pub fn is_primary() -> bool {
    std::env::var_os(NODE_UNIQUE_ID).is_none() && !child::is_set_up()
}
// ANCHOR_END: is_primary

/// The variable `cluster.fork()` sets to the worker's id.
pub const NODE_UNIQUE_ID: &str = "NODE_UNIQUE_ID";
