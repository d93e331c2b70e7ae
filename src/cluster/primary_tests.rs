//! The key's spelling, checked against what JavaScript's template string gives.

use super::*;
use crate::cluster::handle::is_falsy;
use serde_json::json;

fn query(msg: Value) -> ServerMessage {
    serde_json::from_value(msg).expect("a valid query")
}

#[test]
fn key_spells_null_and_undefined_as_javascript_does() {
    let q = query(
        json!({"address": "127.0.0.1", "port": 8000, "addressType": 4, "index": 0, "seq": 1}),
    );
    assert_eq!(key(&q, NodeLine::V20), "127.0.0.1:8000:4:undefined:0");
    let q = query(json!({"address": null, "port": 8000, "addressType": 4, "index": 0, "seq": 1}));
    assert_eq!(key(&q, NodeLine::V20), "null:8000:4:undefined:0");
    let q = query(json!({"address": "127.0.0.1", "port": 0, "addressType": 4, "seq": 1}));
    assert_eq!(key(&q, NodeLine::V20), "127.0.0.1:0:4:undefined:undefined");
    let q = query(
        json!({"address": "127.0.0.1", "port": 8000, "addressType": "udp4", "fd": -1, "index": 0, "seq": 1}),
    );
    assert_eq!(key(&q, NodeLine::V20), "127.0.0.1:8000:udp4:-1:0");
}

#[test]
fn a_query_without_port_or_type_is_refused() {
    let bad = [
        json!({"address": "127.0.0.1", "addressType": 4, "seq": 1}),
        json!({"port": 80, "addressType": "tcp9", "seq": 1}),
        json!({"port": 70000, "addressType": 4, "seq": 1}),
    ];
    for msg in bad {
        assert!(serde_json::from_value::<ServerMessage>(msg).is_err());
    }
}

#[test]
fn from_v22_the_index_is_in_the_key_only_for_port_0() {
    let fixed = query(json!({"address": "127.0.0.1", "port": 8000, "addressType": 4, "index": 1}));
    assert_eq!(key(&fixed, NodeLine::V24), "127.0.0.1:8000:4:undefined");
    assert_eq!(key(&fixed, NodeLine::V20), "127.0.0.1:8000:4:undefined:1");
    let any = query(json!({"address": "127.0.0.1", "port": 0, "addressType": 4, "index": 1}));
    assert_eq!(key(&any, NodeLine::V22), "127.0.0.1:0:4:undefined:1");
}

#[test]
fn the_first_workers_data_stays_with_the_key() {
    assert!(is_falsy(&json!(null)) && is_falsy(&json!(false)) && is_falsy(&json!("")));
    assert!(!is_falsy(&json!({"ticketKeys": "abc"})) && !is_falsy(&json!(1)));
}

#[test]
fn a_pipe_key_has_port_and_type_minus_1_and_the_index_only_in_v20() {
    // As Node 20 and 24 spell it (strace of their primaries, `listen('/tmp/d/app.sock')`).
    let pipe = query(
        json!({"index": 0, "data": null, "address": "/tmp/d/app.sock", "port": -1,
                            "addressType": -1, "backlog": 0, "seq": 1}),
    );
    assert_eq!(
        key(&pipe, NodeLine::V20),
        "/tmp/d/app.sock:-1:-1:undefined:0"
    );
    assert_eq!(key(&pipe, NodeLine::V24), "/tmp/d/app.sock:-1:-1:undefined");
}
