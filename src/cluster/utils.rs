//! Mirror of [`lib/internal/cluster/utils.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/cluster/utils.js#L16):
//! the `NODE_CLUSTER` envelope and the sequence numbers that pair replies with requests.
//!
//! Every cluster message is `{"cmd":"NODE_CLUSTER", ...fields, "seq":N}`: `cmd` first, `seq`
//! last, because Node builds it with an object spread. There is **one** counter per process:
//! in the primary it is shared by all workers. A reply carries `"ack": <the request's seq>`
//! and has a `seq` of its own, since every message sent advances the counter.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

static SEQ: AtomicU64 = AtomicU64::new(0);

// ANCHOR: envelope
/// `sendHelper`'s message: `{cmd: 'NODE_CLUSTER', ...message, seq}`. Returns the message and
/// the seq it took (a reply to it will carry that number in `ack`).
pub fn envelope(fields: Map<String, Value>) -> (Value, u64) {
    let seq = next_seq();
    let mut m = Map::new();
    m.insert("cmd".into(), json!("NODE_CLUSTER"));
    for (k, v) in fields {
        if k != "cmd" && k != "seq" {
            m.insert(k, v);
        }
    }
    m.insert("seq".into(), json!(seq));
    (Value::Object(m), seq)
}
// ANCHOR_END: envelope

/// Take the next `seq` of this process (for a message rendered without [`envelope`]).
pub fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Build the fields of a message in order: `fields(&[("act", json!("online"))])`.
pub fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `isInternal`: a `cmd` that starts with `NODE_` (and is longer than it) is the runtime's,
/// not the user's.
pub fn is_internal(msg: &Value) -> bool {
    msg.get("cmd")
        .and_then(Value::as_str)
        .is_some_and(|c| c.len() > 5 && c.starts_with("NODE_"))
}

/// Whether this is a cluster message (`internal()` ignores every other `cmd`).
pub fn is_cluster(msg: &Value) -> bool {
    msg.get("cmd").and_then(Value::as_str) == Some("NODE_CLUSTER")
}

/// The `ack` of a reply, if it is one.
pub fn ack_of(msg: &Value) -> Option<u64> {
    msg.get("ack").and_then(Value::as_u64)
}

/// The `act` of a request.
pub fn act_of(msg: &Value) -> Option<&str> {
    msg.get("act").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_first_seq_last_and_counting() {
        let (a, s1) = envelope(fields(&[("act", json!("online"))]));
        let (b, s2) = envelope(fields(&[("ack", json!(s1)), ("accepted", json!(true))]));
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
    fn internal_messages() {
        assert!(is_internal(&json!({"cmd": "NODE_CLUSTER"})));
        assert!(is_internal(&json!({"cmd": "NODE_HANDLE_ACK"})));
        assert!(!is_internal(&json!({"cmd": "NODE_"})));
        assert!(!is_internal(&json!({"lab": "ready"})));
        assert!(!is_internal(&json!("NODE_CLUSTER")));
    }
}
