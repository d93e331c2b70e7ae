//! Which Node the mirror follows. Node's cluster files changed between the article's Node
//! (v20) and the Nodes people run today (22, 24 and 26); every place the mirror behaves
//! differently by version asks this module, so a reader finds all of them by grepping for
//! [`NodeLine`].
//!
//! The cluster files of 22.23.5, 24.22.3 and 26.12.1 are the same in what matters here; the
//! links point at 24.22.3, the newest LTS, and at v20.20.2 for the history.

use std::fmt;

use super::message::Port;
use crate::pipe_wrap::Libuv;

/// A Node release line the mirror can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) enum NodeLine {
    /// v20 (end of life April 2026): the article's Node.
    V20,
    /// v22 "Jod" (LTS).
    V22,
    /// v24 "Krypton", the newest LTS: the default.
    #[default]
    V24,
    /// v26 (Current).
    V26,
}

/// The variable the primary sets for its workers, so our worker follows the same Node as
/// our primary. (Not Node's: a Node worker is simply the Node it is.)
pub(crate) const ENV: &str = "CLUSTER_WALKTHROUGH_NODE";

impl NodeLine {
    /// From a major version number: 20, 22, 24 or 26.
    pub(crate) fn from_major(major: u32) -> Option<Self> {
        match major {
            20 => Some(NodeLine::V20),
            22 => Some(NodeLine::V22),
            24 => Some(NodeLine::V24),
            26 => Some(NodeLine::V26),
            _ => None,
        }
    }

    /// The major version number.
    pub(crate) fn major(self) -> u32 {
        match self {
            NodeLine::V20 => 20,
            NodeLine::V22 => 22,
            NodeLine::V24 => 24,
            NodeLine::V26 => 26,
        }
    }

    /// The line this process follows: what our primary wrote in [`ENV`], else the default.
    pub(crate) fn from_env() -> Self {
        std::env::var(ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .and_then(Self::from_major)
            .unwrap_or_default()
    }

    // ANCHOR: key_index
    /// Does the `queryServer` key end in `:index` for this port? v20 always appends it
    /// ([primary.js L273 at v20.20.2](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/cluster/primary.js#L273));
    /// v22+ only for port 0
    /// ([L273–274 at v24.22.3](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/primary.js#L273-L274)).
    pub(crate) fn key_has_index(self, port: Port) -> bool {
        self == NodeLine::V20 || port == Port::Number(0)
    }
    // ANCHOR_END: key_index

    // ANCHOR: reuse_handle
    /// May a worker that already holds the key's handle get that handle again? v20 reuses
    /// any cached handle (its key has the index, so an honest worker never asks twice);
    /// v22+ reuses it only for a worker it does not hold yet, and otherwise builds a fresh
    /// one ([L275–279 at v24.22.3](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/primary.js#L275-L279)).
    pub(crate) fn reuses_handle(self, worker_holds_it: bool) -> bool {
        self == NodeLine::V20 || !worker_holds_it
    }
    // ANCHOR_END: reuse_handle

    /// The libuv this line ships, as far as pipes go: 1.46 in v20, 1.51 in 22.23.5, 1.52 in
    /// 24.22.3 and 26.12.1 (`process.versions.uv`). See [`Libuv`] for what differs.
    pub(crate) fn libuv(self) -> Libuv {
        match self {
            NodeLine::V20 => Libuv::V1_46,
            _ => Libuv::V1_51,
        }
    }

    /// Whether `listen({ reusePort: true })` exists (22.23.5 and later lines; not v20).
    pub(crate) fn has_reuse_port(self) -> bool {
        self != NodeLine::V20
    }
}

impl fmt::Display for NodeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.major())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_is_in_every_v20_key_and_only_port_0_keys_later() {
        assert!(NodeLine::V20.key_has_index(Port::Number(8000)));
        assert!(NodeLine::V24.key_has_index(Port::Number(0)));
        assert!(!NodeLine::V24.key_has_index(Port::Number(8000)));
        assert!(!NodeLine::V22.key_has_index(Port::Number(8000)));
        assert!(NodeLine::V20.key_has_index(Port::Pipe), "v20: every key");
        assert!(
            !NodeLine::V24.key_has_index(Port::Pipe),
            "a pipe's port is -1, not 0"
        );
    }

    #[test]
    fn majors_round_trip() {
        for m in [20, 22, 24, 26] {
            assert_eq!(NodeLine::from_major(m).map(NodeLine::major), Some(m));
        }
        assert_eq!(NodeLine::from_major(18), None);
        assert_eq!(NodeLine::default(), NodeLine::V24);
    }
}
