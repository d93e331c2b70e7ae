//! The cluster protocol's messages, as types. Node writes them as object literals at each
//! `sendHelper` call in
//! [`child.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/child.js#L93)
//! and [`primary.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/cluster/primary.js#L268);
//! here each one is a type, so both sides agree on the fields and their order.
//!
//! Field order is part of the wire format: `serde_json`'s `preserve_order` writes fields in
//! declaration order, which is the order of Node's object spread. The envelope around every
//! message (`cmd` first, `seq` last) is [`super::utils`].
//!
//! A worker is untrusted input. Every number it sends is read as a plain JSON integer first
//! and then narrowed with `try_from`, so a port of 70000 or a backlog of 2^40 is an error
//! that names the field, never a silent wrap-around.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `addressType` of a server query: `4`/`6` for TCP, `"udp4"`/`"udp6"` for UDP sockets,
/// `-1` for a pipe (`listen(path)`: a unix socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum AddressType {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
    Pipe,
}

impl AddressType {
    /// For a bound IP: 4 or 6.
    pub fn tcp_for(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            AddressType::Tcp4
        } else {
            AddressType::Tcp6
        }
    }

    /// For a UDP socket: udp4 or udp6.
    pub fn udp_for(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            AddressType::Udp4
        } else {
            AddressType::Udp6
        }
    }

    /// Whether this is a UDP type (always a shared handle in the primary).
    pub fn is_udp(self) -> bool {
        matches!(self, AddressType::Udp4 | AddressType::Udp6)
    }
}

/// A query's `port`: a number for TCP and UDP, `-1` for a pipe
/// (`listenInCluster(this, pipeName, -1, -1, ...)` in `lib/net.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum Port {
    Number(u16),
    Pipe,
}

impl Port {
    /// The port number; none for a pipe.
    pub fn number(self) -> Option<u16> {
        match self {
            Port::Number(n) => Some(n),
            Port::Pipe => None,
        }
    }
}

impl From<Port> for i64 {
    fn from(p: Port) -> i64 {
        p.number().map_or(-1, i64::from)
    }
}

impl TryFrom<i64> for Port {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            -1 => Ok(Port::Pipe),
            _ => narrow("port", v).map(Port::Number),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", i64::from(*self))
    }
}

/// As Node sends it: the number `4` or the string `"udp4"`.
impl From<AddressType> for Value {
    fn from(t: AddressType) -> Value {
        match t {
            AddressType::Tcp4 => Value::from(4),
            AddressType::Tcp6 => Value::from(6),
            AddressType::Udp4 => Value::from("udp4"),
            AddressType::Udp6 => Value::from("udp6"),
            AddressType::Pipe => Value::from(-1),
        }
    }
}

impl TryFrom<Value> for AddressType {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match &v {
            Value::Number(n) if n.as_i64() == Some(4) => Ok(AddressType::Tcp4),
            Value::Number(n) if n.as_i64() == Some(6) => Ok(AddressType::Tcp6),
            Value::String(s) if s == "udp4" => Ok(AddressType::Udp4),
            Value::String(s) if s == "udp6" => Ok(AddressType::Udp6),
            Value::Number(n) if n.as_i64() == Some(-1) => Ok(AddressType::Pipe),
            _ => Err(format!(
                "addressType {v} is not 4, 6, -1, \"udp4\" or \"udp6\""
            )),
        }
    }
}

impl fmt::Display for AddressType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressType::Tcp4 => "4",
            AddressType::Tcp6 => "6",
            AddressType::Udp4 => "udp4",
            AddressType::Udp6 => "udp6",
            AddressType::Pipe => "-1",
        })
    }
}

// ANCHOR: server_query
/// The `serverQuery` object `listenInCluster` builds for `cluster._getServer`: what a worker
/// sends in `queryServer`, after `index` and `data`, in Node's order
/// (`{address, port, addressType, fd, flags, backlog, ...options}`; JSON leaves out what is
/// `undefined`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawQuery")]
pub struct ServerQuery {
    /// `null` when no host was given; otherwise the address string, or a pipe's path.
    pub address: Option<String>,
    pub port: Port,
    pub address_type: AddressType,
    /// `undefined` for TCP and pipes (left out of the JSON), `-1` for UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd: Option<i32>,
    /// `undefined` for a pipe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    /// Absent for UDP queries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i32>,
    /// A pipe's `readableAll`, when the program gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readable_all: Option<bool>,
    /// A pipe's `writableAll`, when the program gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable_all: Option<bool>,
}

impl ServerQuery {
    /// A TCP or UDP query as our programs send it: `flags` 0, no pipe options.
    pub fn ip(
        address: Option<String>,
        port: u16,
        address_type: AddressType,
        fd: Option<i32>,
        backlog: Option<i32>,
    ) -> Self {
        Self {
            address,
            port: Port::Number(port),
            address_type,
            fd,
            flags: Some(0),
            backlog,
            readable_all: None,
            writable_all: None,
        }
    }
}
// ANCHOR_END: server_query

/// A `queryServer` or `listening` message's body: `{index, data, ...serverQuery}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerMessage {
    /// Which listen on this address it is (child.js's `indexes`). `None` only from a peer
    /// that left it out: the key then spells it `undefined`, as JavaScript would.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "index")]
    #[serde(default)]
    pub index: Option<u64>,
    /// Node's `data` (TLS ticket keys, say); `null` for plain TCP.
    #[serde(default)]
    pub data: Value,
    #[serde(flatten)]
    pub query: ServerQuery,
}

/// A `NODE_CLUSTER` request: the `act` and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "act", rename_all = "camelCase")]
pub(crate) enum Act {
    /// Worker → primary, first thing: the worker is up.
    Online,
    /// Worker → primary: give me a server for this address.
    QueryServer(ServerMessage),
    /// Worker → primary: the server listens (the query again, with the real port).
    Listening(ServerMessage),
    /// Worker → primary: a cluster-managed server closed.
    Close { key: String },
    /// Worker → primary: `worker.disconnect()` was called in the worker.
    ExitedAfterDisconnect,
    /// Primary → worker: close your servers and go.
    Disconnect,
    /// Primary → worker, riding on a `NODE_HANDLE` with the connection's fd.
    Newconn { key: String },
}

/// The primary's answer to `queryServer`: `{errno, key, ack, data, ...reply}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueryReply {
    /// `null` for round robin's success, `0` for a shared handle, `-errno` for a failure.
    pub errno: Option<i32>,
    pub key: String,
    pub ack: u64,
    pub data: Value,
    /// Round robin only: the primary's listening address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sockname: Option<Sockname>,
}

impl QueryReply {
    /// A reply without `data` (Node's primary sends `null` unless the first worker gave some).
    pub(crate) fn new(errno: Option<i32>, key: &str, ack: u64, sockname: Option<Sockname>) -> Self {
        let (key, data) = (key.to_string(), Value::Null);
        Self {
            errno,
            key,
            ack,
            data,
            sockname,
        }
    }
}

/// `getsockname`'s answer, as Node's `sockname` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sockname {
    pub address: String,
    pub family: String,
    pub port: u16,
}

impl From<SocketAddr> for Sockname {
    fn from(s: SocketAddr) -> Self {
        let family = if s.is_ipv4() { "IPv4" } else { "IPv6" };
        Self {
            address: s.ip().to_string(),
            family: family.to_string(),
            port: s.port(),
        }
    }
}

impl Sockname {
    /// Back to an address, if it is one.
    pub(crate) fn to_addr(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.address.parse().ok()?, self.port))
    }
}

/// The worker's answer to `newconn`: `{ack, accepted}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Accepted {
    pub ack: u64,
    pub accepted: bool,
}

/// A bare acknowledgement: the primary's answer to `exitedAfterDisconnect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ack {
    pub ack: u64,
}

/// What a peer may send for a query, before the numbers are narrowed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQuery {
    #[serde(default)]
    address: Option<String>,
    port: Option<i64>,
    address_type: AddressType,
    #[serde(default)]
    fd: Option<i64>,
    #[serde(default)]
    flags: Option<i64>,
    /// Node passes what `listen()` was given, which can be `false` (`listen(0, host)`):
    /// anything that is not an integer means "the default", as `backlog || 511` does.
    #[serde(default)]
    backlog: Value,
    #[serde(default)]
    readable_all: Option<bool>,
    #[serde(default)]
    writable_all: Option<bool>,
}

impl TryFrom<RawQuery> for ServerQuery {
    type Error = String;
    fn try_from(r: RawQuery) -> Result<Self, String> {
        let port = Port::try_from(r.port.ok_or("queryServer without a port")?)?;
        if (port == Port::Pipe) != (r.address_type == AddressType::Pipe) {
            let t = r.address_type;
            return Err(format!(
                "port {port} with addressType {t}: -1 goes with -1 (a pipe)"
            ));
        }
        Ok(Self {
            address: r.address,
            port,
            address_type: r.address_type,
            fd: r.fd.map(|v| narrow("fd", v)).transpose()?,
            flags: r.flags.map(|v| narrow("flags", v)).transpose()?,
            backlog: r
                .backlog
                .as_i64()
                .map(|v| narrow("backlog", v))
                .transpose()?,
            readable_all: r.readable_all,
            writable_all: r.writable_all,
        })
    }
}

/// A peer's integer, narrowed to the type we keep it in, or an error naming the field.
pub(crate) fn narrow<T: TryFrom<i64>>(field: &str, v: i64) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("{field} {v} is out of range"))
}

fn index<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v: Option<i64> = Option::deserialize(d)?;
    v.map(|i| narrow("index", i).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_query_is_written_in_nodes_order() {
        let m = Act::QueryServer(ServerMessage {
            index: Some(0),
            data: Value::Null,
            query: ServerQuery::ip(
                Some("127.0.0.1".into()),
                0,
                AddressType::Tcp4,
                None,
                Some(0),
            ),
        });
        assert_eq!(
            serde_json::to_string(&m).expect("serializes"),
            r#"{"act":"queryServer","index":0,"data":null,"address":"127.0.0.1","port":0,"addressType":4,"flags":0,"backlog":0}"#
        );
    }

    #[test]
    fn a_pipe_query_has_port_and_address_type_minus_1_and_no_flags() {
        // As Node 20 and 24 write it (strace of `listen({ path, readableAll: true })`).
        let line = r#"{"act":"queryServer","index":0,"data":null,"address":"/tmp/d/app.sock","port":-1,"addressType":-1,"backlog":0,"readableAll":true}"#;
        let m: Act = serde_json::from_str(line).expect("a pipe query");
        let Act::QueryServer(q) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (q.query.port, q.query.address_type),
            (Port::Pipe, AddressType::Pipe)
        );
        assert_eq!(q.query.flags, None);
        assert_eq!(serde_json::to_string(&m).expect("serializes"), line);
        for bad in [
            json!({"act": "queryServer", "port": -1, "addressType": 4}),
            json!({"act": "queryServer", "port": 80, "addressType": -1}),
            json!({"act": "queryServer", "port": -2, "addressType": -1}),
        ] {
            assert!(serde_json::from_value::<Act>(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn udp_types_are_strings_and_tcp_types_numbers() {
        assert_eq!(json!(AddressType::Udp6), json!("udp6"));
        assert_eq!(json!(AddressType::Tcp6), json!(6));
        let t: AddressType = serde_json::from_value(json!("udp4")).expect("udp4");
        assert_eq!(t, AddressType::Udp4);
        assert!(serde_json::from_value::<AddressType>(json!(5)).is_err());
        assert!(serde_json::from_value::<AddressType>(json!("tcp9")).is_err());
    }

    #[test]
    fn numbers_from_a_peer_are_range_checked() {
        let bad = json!({"act": "queryServer", "index": 0, "data": null, "address": null,
                         "port": 70000, "addressType": 4, "seq": 1});
        let err = serde_json::from_value::<Act>(bad).expect_err("port out of range");
        assert!(
            err.to_string().contains("port 70000 is out of range"),
            "{err}"
        );
        let bad = json!({"act": "queryServer", "index": -1, "port": 80, "addressType": 4});
        let err = serde_json::from_value::<Act>(bad).expect_err("index out of range");
        assert!(err.to_string().contains("index -1"), "{err}");
        let bad =
            json!({"act": "queryServer", "port": 80, "addressType": 4, "backlog": 1u64 << 40});
        assert!(serde_json::from_value::<Act>(bad).is_err());
    }

    #[test]
    fn replies_are_written_in_nodes_order() {
        let addr: SocketAddr = "127.0.0.1:8000".parse().expect("addr");
        let rr = QueryReply {
            errno: None,
            key: "K".into(),
            ack: 3,
            data: Value::Null,
            sockname: Some(addr.into()),
        };
        assert_eq!(
            serde_json::to_string(&rr).expect("serializes"),
            r#"{"errno":null,"key":"K","ack":3,"data":null,"sockname":{"address":"127.0.0.1","family":"IPv4","port":8000}}"#
        );
        let failed = QueryReply {
            errno: Some(-98),
            key: "K".into(),
            ack: 3,
            data: Value::Null,
            sockname: None,
        };
        assert_eq!(
            serde_json::to_string(&failed).expect("serializes"),
            r#"{"errno":-98,"key":"K","ack":3,"data":null}"#
        );
    }
}
