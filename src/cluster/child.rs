//! Mirror of [`lib/internal/cluster/child.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/cluster/child.js):
//! the worker's side of the cluster.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

static SET_UP: AtomicBool = AtomicBool::new(false);

/// Whether `_setupWorker` ran in this process (it removes `NODE_UNIQUE_ID` from the
/// environment, but the process stays a worker, as Node's `cluster` module stays the child one).
pub fn is_set_up() -> bool {
    SET_UP.load(Ordering::Relaxed)
}

/// The fake handle `rr()` gives a worker under round robin: no socket, only the key and the
/// primary's address. Connections arrive by IPC (`newconn`).
#[derive(Debug, Clone)]
pub struct FakeHandle {
    pub key: String,
    pub sockname: Option<SocketAddr>,
}

impl FakeHandle {
    /// `listen(backlog)`: does nothing and succeeds; the primary already listens.
    pub fn listen(&self, _backlog: i32) -> Result<(), Errno> {
        Ok(())
    }

    /// `getsockname(out)`: the primary's address, copied from the reply's `sockname`.
    pub fn getsockname(&self) -> Option<SocketAddr> {
        self.sockname
    }
}
