//! Fuzz the channel decoder with what a peer can send, frame by frame: valid messages,
//! `NODE_HANDLE` lines (of known and unknown types), ACK/NACK, garbage, lines just under and
//! just past `MAX_LINE` — each cut into reads anywhere, with real fds attached to any read.
//! The decoder must never panic, and every fd it was given must be closed once it and the
//! frames it returned are dropped: it owns or returns every one.
#![no_main]

use std::os::fd::OwnedFd;

use arbitrary::Arbitrary;
use cluster_walkthrough::framing::{Decoder, MAX_LINE};
use cluster_walkthrough::sys;
use libfuzzer_sys::fuzz_target;

/// One thing a peer sends.
#[derive(Arbitrary, Debug)]
enum Piece {
    /// A message for the layer above (`NODE_CLUSTER` or a user message).
    Message {
        cluster: bool,
        act: String,
        seq: Option<u64>,
    },
    /// `{"cmd":"NODE_HANDLE","type":...,"msg":{...}}`; `ty` 0 and 1 are the known types.
    Handle {
        ty: u8,
        act: String,
    },
    Ack,
    Nack,
    /// Any bytes at all (newlines included).
    Garbage(Vec<u8>),
    /// A JSON line `MAX_LINE - 8 + delta` bytes long (`delta` up to 16): just under, at and
    /// just past the limit; without its newline when `open`.
    Long {
        delta: u8,
        open: bool,
    },
}

impl Piece {
    fn bytes(&self) -> Vec<u8> {
        let mut line = match self {
            Piece::Message { cluster, act, seq } => {
                let cmd = if *cluster { "NODE_CLUSTER" } else { "user" };
                serde_json::json!({"cmd": cmd, "act": act, "seq": seq}).to_string()
            }
            Piece::Handle { ty, act } => {
                let ty = match ty % 3 {
                    0 => "net.Native",
                    1 => "dgram.Native",
                    _ => "net.Socket",
                };
                let msg = serde_json::json!({"cmd": "NODE_CLUSTER", "act": act});
                serde_json::json!({"cmd": "NODE_HANDLE", "type": ty, "msg": msg}).to_string()
            }
            Piece::Ack => r#"{"cmd":"NODE_HANDLE_ACK"}"#.to_string(),
            Piece::Nack => r#"{"cmd":"NODE_HANDLE_NACK"}"#.to_string(),
            Piece::Garbage(bytes) => return bytes.clone(),
            Piece::Long { delta, open } => {
                let len = MAX_LINE - 8 + usize::from(delta % 17);
                let mut line = String::from("{\"pad\":\"");
                line.push_str(&"x".repeat(len - line.len() - 2));
                line.push_str("\"}");
                if *open {
                    return line.into_bytes();
                }
                line
            }
        };
        line.push('\n');
        line.into_bytes()
    }
}

/// One piece, as the kernel might deliver it: cut into two reads at `cut` (if inside), with
/// `fds` (0 to 5) attached to the first read.
#[derive(Arbitrary, Debug)]
struct Send {
    piece: Piece,
    cut: Option<u32>,
    fds: u8,
}

/// How many fds this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// `n` real fds: one end of fresh socketpairs (the other end is closed at once).
fn fds(n: u8) -> Vec<OwnedFd> {
    (0..n % 6)
        .filter_map(|_| sys::socketpair().ok().map(|(a, _b)| a))
        .collect()
}

/// Feed every send to a decoder; stop at the first error, as the channel does.
fn feed(sends: &[Send]) {
    let mut d = Decoder::new();
    let mut frames = Vec::new();
    for s in sends {
        let bytes = s.piece.bytes();
        let cut = s
            .cut
            .map_or(bytes.len(), |c| c as usize % (bytes.len() + 1));
        let (first, second) = bytes.split_at(cut);
        match d.push(first, fds(s.fds)) {
            Ok(f) => frames.extend(f),
            Err(_) => return,
        }
        match d.push(second, Vec::new()) {
            Ok(f) => frames.extend(f),
            Err(_) => return,
        }
    }
    let _ = d.finish();
}

fuzz_target!(|sends: Vec<Send>| {
    let before = open_fds();
    feed(&sends);
    assert_eq!(
        open_fds(),
        before,
        "an fd outlived the decoder and its frames"
    );
});
