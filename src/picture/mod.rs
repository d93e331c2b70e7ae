//! Chapter 8's two pictures, drawn from real runs and never by hand: a sequence diagram of
//! one round-robin cluster, made from the messages its primary saw ([`WireRecord`]s), and a
//! table of every branch of Node's listen machinery, made from the `--json` events of one
//! lab run per branch.
//!
//! Both are pure functions of their input, so they can be tested on hand-built records and
//! events, and the chapter's output is as stable as the runs behind it. Neither mirrors a
//! Node file: they summarise what [`crate::cluster`] and [`crate::net`] did, using Node's
//! names (`act`, `cmd`) for what went over the channel.
//!
//! * `sequence.rs`: the diagram, from [`WireRecord`]s;
//! * `branches.rs`: the table, from `--json` events;
//! * here: what both need, naming a message ([`summarize`]), taking the ports out of it
//!   ([`redact_ports`]), and filling lines of text.
//!
//! Ports change on every run, so both pictures print them as `[PORT]` (in the diagram's
//! notes) or `P` (in the table's error texts). A requested port of 0 stays 0: it is what the
//! worker really asked for.
//!
//! [`WireRecord`]: crate::channel::WireRecord

mod branches;
mod sequence;

pub use branches::{BranchRow, branch_row, render_summary, render_table};
pub use sequence::sequence_diagram;

use serde_json::Value;

/// What one message was, in a few characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// What the diagram writes on the arrow: `queryServer`, `newconn [fd]`.
    pub label: String,
    /// The message's kind, the same for every message of that shape (footnotes and the
    /// table list each kind once): `queryServer`, `reply errno:null`, `user:ready`.
    pub kind: String,
}

impl MessageSummary {
    fn new(label: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            kind: kind.into(),
        }
    }
}

// ANCHOR: summarize
/// Name a message by what Node's code looks at: the `cmd`, then the `act`, or for a reply
/// its `errno` / `accepted`. A message carrying an fd gets `[fd]`. Lines that are not JSON
/// are the lab's own notes about the client (`connection 1`, `answer to connection 1`).
pub fn summarize(line: &str, fd: bool) -> MessageSummary {
    let Ok(msg) = serde_json::from_str::<Value>(line) else {
        return client_summary(line);
    };
    let with_fd = |s: MessageSummary| match fd {
        true => MessageSummary::new(format!("{} [fd]", s.label), format!("{} [fd]", s.kind)),
        false => s,
    };
    let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
    match cmd {
        "NODE_HANDLE" => with_fd(cluster_summary(msg.get("msg").unwrap_or(&Value::Null))),
        "NODE_CLUSTER" => with_fd(cluster_summary(&msg)),
        c if c.starts_with("NODE_") => with_fd(MessageSummary::new(c, c)),
        // Not internal: a user message (`process.send`). The lab's are `{"lab": what}`.
        _ => {
            let what = msg.get("lab").and_then(Value::as_str).unwrap_or("message");
            MessageSummary::new(format!("({what})"), format!("user:{what}"))
        }
    }
}

/// A `NODE_CLUSTER` message: a request has an `act`; a reply has an `ack` and what it says.
fn cluster_summary(msg: &Value) -> MessageSummary {
    if let Some(act) = msg.get("act").and_then(Value::as_str) {
        return MessageSummary::new(act, act);
    }
    if let Some(accepted) = msg.get("accepted").and_then(Value::as_bool) {
        let s = format!("accepted:{accepted}");
        return MessageSummary::new(s.clone(), s);
    }
    match msg.get("errno") {
        Some(Value::Null) if msg.get("sockname").is_some() => {
            MessageSummary::new("errno:null+sockname", "reply errno:null")
        }
        Some(e @ Value::Number(_)) => {
            MessageSummary::new(format!("errno:{e}"), format!("reply errno:{e}"))
        }
        _ => MessageSummary::new("reply", "reply"),
    }
}
// ANCHOR_END: summarize

fn client_summary(line: &str) -> MessageSummary {
    if let Some(n) = line.strip_prefix("answer to connection ") {
        return MessageSummary::new(format!("answer {n}"), "client:answer");
    }
    if line.starts_with("connection ") {
        return MessageSummary::new(line, "client:connection");
    }
    MessageSummary::new(line, line)
}

// ---------------------------------------------------------------------------------------
// Ports out
// ---------------------------------------------------------------------------------------

const PORT_MARK: &str = "@@PORT@@";

/// A channel line with every real port replaced by `[PORT]`: the `port` fields (sockname,
/// listening), the lab's `ports` list, and the port inside a `key`. A port of 0 stays.
pub fn redact_ports(line: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    redact_value(&mut v);
    v.to_string().replace(&format!("\"{PORT_MARK}\""), "[PORT]")
}

fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                match (k.as_str(), &*field) {
                    ("port", Value::Number(n)) if n.as_u64() != Some(0) => {
                        *field = Value::String(PORT_MARK.into())
                    }
                    ("ports", Value::Array(a)) => {
                        let n = a.len();
                        *field = Value::Array(vec![Value::String(PORT_MARK.into()); n]);
                    }
                    ("key", Value::String(key)) => *field = Value::String(redact_key(key)),
                    _ => redact_value(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// `address:port:addressType:fd:index`, read from the right (an IPv6 address has colons).
fn redact_key(key: &str) -> String {
    let parts: Vec<&str> = key.rsplitn(5, ':').collect();
    match parts.as_slice() {
        [index, fd, ty, port, address] if *port != "0" => {
            format!("{address}:[PORT]:{ty}:{fd}:{index}")
        }
        _ => key.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Lines of text
// ---------------------------------------------------------------------------------------

/// Greedy line filling: put pieces side by side (with `sep` between) up to `width`.
fn pack(pieces: Vec<String>, width: usize, sep: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for p in pieces {
        let extra = if line.is_empty() { 0 } else { sep.len() };
        if !line.is_empty() && line.len() + extra + p.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(sep);
        }
        line.push_str(&p);
        while line.chars().count() > width {
            let cut: String = line.chars().take(width).collect();
            line = line.chars().skip(width).collect();
            lines.push(cut);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_what_nodes_code_looks_at() {
        let s = |line: &str, fd| summarize(line, fd).label;
        assert_eq!(
            s(r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#, false),
            "online"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","errno":null,"key":"K","ack":1,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":8000},"seq":0}"#,
                false
            ),
            "errno:null+sockname"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","errno":-98,"key":"K","ack":1,"data":null,"seq":0}"#,
                false
            ),
            "errno:-98"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,"key":"K","ack":1,"data":null,"seq":0}}"#,
                true
            ),
            "errno:0 [fd]"
        );
        assert_eq!(
            s(
                r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","act":"newconn","key":"K","seq":2}}"#,
                true
            ),
            "newconn [fd]"
        );
        assert_eq!(s(r#"{"cmd":"NODE_HANDLE_ACK"}"#, false), "NODE_HANDLE_ACK");
        assert_eq!(
            s(
                r#"{"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3}"#,
                false
            ),
            "accepted:true"
        );
        assert_eq!(s(r#"{"lab":"ready","ports":[1]}"#, false), "(ready)");
        assert_eq!(s("connection 2", false), "connection 2");
        assert_eq!(s("answer to connection 2", false), "answer 2");
        // Every connection is the same kind, whatever its number.
        assert_eq!(
            summarize("answer to connection 1", false).kind,
            summarize("answer to connection 7", false).kind
        );
    }

    #[test]
    fn ports_become_placeholders_but_zero_stays() {
        let line = r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":41234,"addressType":4,"flags":0,"backlog":0,"seq":2}"#;
        assert_eq!(
            redact_ports(line),
            r#"{"cmd":"NODE_CLUSTER","act":"listening","index":0,"data":null,"address":"127.0.0.1","port":[PORT],"addressType":4,"flags":0,"backlog":0,"seq":2}"#
        );
        let query = r#"{"cmd":"NODE_CLUSTER","act":"queryServer","port":0,"seq":1}"#;
        assert_eq!(redact_ports(query), query);
        assert_eq!(
            redact_ports(r#"{"cmd":"NODE_CLUSTER","act":"close","key":"::1:8000:6:undefined:0"}"#),
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"::1:[PORT]:6:undefined:0"}"#
        );
        assert_eq!(
            redact_ports(r#"{"lab":"ready","ports":[1,2]}"#),
            r#"{"lab":"ready","ports":[[PORT],[PORT]]}"#
        );
        assert_eq!(redact_ports("connection 1"), "connection 1");
    }
}
