//! Mirror of [`lib/internal/cluster/utils.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/utils.js#L16):
//! the `NODE_CLUSTER` envelope, the sequence numbers that pair replies with requests, the
//! table of callbacks waiting for those replies, and `internal`, which routes what arrives.
//! Both sides use it, as both `child.js` and `primary.js` require `utils.js`.
//!
//! Every cluster message is `{"cmd":"NODE_CLUSTER", ...fields, "seq":N}`: `cmd` first, `seq`
//! last, because Node builds it with an object spread. There is **one** counter per process:
//! in the primary it is shared by all workers. A reply carries `"ack": <the request's seq>`
//! and has a `seq` of its own, since every message sent advances the counter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use super::message::Act;
use super::message::narrow;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// `{cmd: 'NODE_CLUSTER', ...message, seq}`, field for field.
#[derive(Serialize)]
struct Envelope<'a, T> {
    cmd: &'static str,
    #[serde(flatten)]
    message: &'a T,
    seq: u64,
}

// ANCHOR: envelope
/// `sendHelper`'s message: the envelope around `message`, with the next `seq`. Returns the
/// message and the seq it took (a reply to it will carry that number in `ack`).
pub(crate) fn envelope<T: Serialize>(message: &T) -> (Value, u64) {
    let seq = next_seq();
    (with_seq(message, seq), seq)
}
// ANCHOR_END: envelope

/// The envelope with a given `seq` (for a line rendered once and reused).
pub(crate) fn with_seq<T: Serialize>(message: &T, seq: u64) -> Value {
    let cmd = "NODE_CLUSTER";
    serde_json::to_value(Envelope { cmd, message, seq })
        .expect("a message type always serializes to a JSON object")
}

/// A key (or a path) fit for a trace line: an abstract socket's leading NUL shown as `\0`.
pub(crate) fn printable(key: &str) -> String {
    key.replace('\0', "\\0")
}

/// Take the next `seq` of this process (for a message rendered without [`envelope`]).
pub(crate) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// `callbacks`: what waits for the reply to each message sent, by that message's `seq`.
/// Node keeps a bare `Map`; ours has a bound, because in the primary its entries are created
/// for workers, and a worker that never answers must not grow it forever.
#[derive(Debug)]
pub(crate) struct Callbacks<T> {
    map: HashMap<u64, T>,
    limit: usize,
}

impl<T> Callbacks<T> {
    /// A table that holds at most `limit` callbacks at once.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            map: HashMap::new(),
            limit,
        }
    }

    /// Remember `cb` for the reply to `seq`. `Err(cb)` when the table is full.
    pub(crate) fn insert(&mut self, seq: u64, cb: T) -> Result<(), T> {
        if self.map.len() >= self.limit {
            return Err(cb);
        }
        self.map.insert(seq, cb);
        Ok(())
    }

    /// The callback for `ack`, removed from the table (each reply is used once).
    pub(crate) fn take(&mut self, ack: u64) -> Option<T> {
        self.map.remove(&ack)
    }

    /// Keep only the callbacks `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.map.retain(|_, cb| keep(cb));
    }
}

/// What `internal()` found in a message.
#[derive(Debug)]
pub(crate) enum Internal<T> {
    /// Not a `NODE_` message: the user's (`process.send`), for the `'message'` event.
    User,
    /// A `NODE_` message other than `NODE_CLUSTER`: `internal()` ignores it.
    OtherCmd(String),
    /// A reply whose `ack` matched a callback: the callback, taken from the table.
    Reply { ack: u64, cb: T },
    /// A reply whose `ack` matches nothing. (Node hands it to `onmessage`, which finds no
    /// `act` and does nothing.)
    StrayReply(u64),
    /// A request: its `act` (or why it could not be read) and its `seq`.
    Request {
        act: Result<Act, RequestError>,
        seq: Option<u64>,
    },
}

/// Why a request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// `methodMessageMapping` has no such method: Node ignores it.
    #[error("an unknown act {0:?}")]
    UnknownAct(String),
    /// A known act whose fields are wrong (a port of 70000, a string for a number, ...).
    #[error("a malformed {act}: {why}")]
    Malformed { act: String, why: String },
}

/// Every `act` of [`Act`], as spelled on the wire.
const ACTS: [&str; 7] = [
    "online",
    "queryServer",
    "listening",
    "close",
    "exitedAfterDisconnect",
    "disconnect",
    "newconn",
];

/// Read a request's `act` and fields.
fn request(msg: &Value) -> Result<Act, RequestError> {
    Act::deserialize(msg).map_err(|e| {
        let act = msg.get("act").and_then(Value::as_str).unwrap_or("(none)");
        match ACTS.contains(&act) {
            true => RequestError::Malformed {
                act: act.to_string(),
                why: e.to_string(),
            },
            false => RequestError::UnknownAct(act.to_string()),
        }
    })
}

// ANCHOR: internal
/// `internal(worker, cb)`: a `NODE_CLUSTER` message with an `ack` goes to the callback that
/// waits for it; any other goes to `onmessage`, which dispatches on `act`.
pub(crate) fn internal<T>(callbacks: &mut Callbacks<T>, msg: &Value) -> Internal<T> {
    let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
    if !is_internal(cmd) {
        return Internal::User;
    }
    if cmd != "NODE_CLUSTER" {
        return Internal::OtherCmd(cmd.to_string());
    }
    if let Some(ack) = msg.get("ack").and_then(Value::as_u64) {
        return match callbacks.take(ack) {
            Some(cb) => Internal::Reply { ack, cb },
            None => Internal::StrayReply(ack),
        };
    }
    let seq = msg.get("seq").and_then(Value::as_i64);
    Internal::Request {
        act: request(msg),
        seq: seq.and_then(|s| narrow("seq", s).ok()),
    }
}
// ANCHOR_END: internal

/// `isInternal`: a `cmd` that starts with `NODE_` (and is longer than it) is the runtime's,
/// not the user's.
fn is_internal(cmd: &str) -> bool {
    cmd.len() > 5 && cmd.starts_with("NODE_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::message::Accepted;
    use serde_json::json;

    #[test]
    fn cmd_first_seq_last_and_counting() {
        let (a, s1) = envelope(&Act::Online);
        let (b, s2) = envelope(&Accepted {
            ack: s1,
            accepted: true,
        });
        assert_eq!(s2, s1 + 1);
        assert_eq!(
            a.to_string(),
            format!(r#"{{"cmd":"NODE_CLUSTER","act":"online","seq":{s1}}}"#)
        );
        assert_eq!(
            b.to_string(),
            format!(r#"{{"cmd":"NODE_CLUSTER","ack":{s1},"accepted":true,"seq":{s2}}}"#)
        );
    }

    #[test]
    fn internal_routes_by_cmd_ack_and_act() {
        let mut cbs = Callbacks::new(2);
        cbs.insert(7, "newconn 7").expect("room");
        assert!(matches!(
            internal(&mut cbs, &json!({"lab": "ready"})),
            Internal::User
        ));
        assert!(matches!(
            internal(&mut cbs, &json!({"cmd": "NODE_"})),
            Internal::User
        ));
        assert!(matches!(
            internal(&mut cbs, &json!({"cmd": "NODE_HANDLE_ACK"})),
            Internal::OtherCmd(_)
        ));
        let reply = json!({"cmd": "NODE_CLUSTER", "ack": 7, "accepted": true, "seq": 1});
        assert!(matches!(
            internal(&mut cbs, &reply),
            Internal::Reply {
                cb: "newconn 7",
                ..
            }
        ));
        assert!(matches!(
            internal(&mut cbs, &reply),
            Internal::StrayReply(7)
        ));
        let online = json!({"cmd": "NODE_CLUSTER", "act": "online", "seq": 0});
        assert!(matches!(
            internal(&mut cbs, &online),
            Internal::Request {
                act: Ok(Act::Online),
                seq: Some(0)
            }
        ));
        let unknown = json!({"cmd": "NODE_CLUSTER", "act": "fly", "seq": 0});
        assert!(matches!(
            internal(&mut cbs, &unknown),
            Internal::Request { act: Err(_), .. }
        ));
    }

    #[test]
    fn a_full_table_refuses() {
        let mut cbs = Callbacks::new(1);
        assert!(cbs.insert(1, ()).is_ok());
        assert!(cbs.insert(2, ()).is_err());
    }
}
