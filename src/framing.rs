//! Turning the bytes of a channel into messages: the `json` framing of
//! [`lib/internal/child_process/serialization.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/child_process/serialization.js#L142)
//! (`parseChannelMessages`), plus the rule of `setupChannel` that an fd received from the
//! kernel waits for the next complete `NODE_HANDLE` line.
//!
//! Kept apart from the socket so it can be tested and fuzzed with plain bytes: a peer
//! process is the one input the primary cannot trust.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest line we accept (1 MiB). Node has no limit; a peer that never sends `\n` would
/// grow its buffer forever.
pub const MAX_LINE: usize = 1 << 20;

/// `type` of a `NODE_HANDLE` message: what kind of handle the fd is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandleType {
    /// A raw TCP socket: a listening socket or an accepted connection.
    #[serde(rename = "net.Native")]
    NetNative,
    /// A raw UDP socket.
    #[serde(rename = "dgram.Native")]
    DgramNative,
    /// Node 24+'s `net.BoundSocket`: bound, not listening, owned by whoever adopts it. Only a
    /// user message carries one (`process.send(msg, bound)`); the cluster never sends it.
    #[serde(rename = "net.BoundSocket")]
    BoundSocket,
}

/// The channel layer's own messages (`setupChannel`'s `NODE_HANDLE*` commands); every other
/// line is a message for the layer above.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd")]
pub enum Control {
    /// A message with a handle: the fd rides on this line's first byte.
    #[serde(rename = "NODE_HANDLE")]
    Handle {
        #[serde(rename = "type")]
        ty: HandleType,
        #[serde(default)]
        msg: Value,
    },
    /// "I have the fd": the sender may send what it held back.
    #[serde(rename = "NODE_HANDLE_ACK")]
    HandleAck,
    /// "No fd came with that line."
    #[serde(rename = "NODE_HANDLE_NACK")]
    HandleNack,
}

impl Control {
    /// The line, without its `\n`.
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a control message always serializes")
    }
}

/// What a peer did wrong, as far as the bytes show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("sent a line that is not JSON: {excerpt}")]
    NotJson { excerpt: String },
    #[error("sent a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("sent a NODE_HANDLE of unknown type {0:?}")]
    UnknownHandleType(String),
    #[error("sent file descriptors without NODE_HANDLE lines for them")]
    StrayFds,
    #[error("closed the channel in the middle of a line")]
    ClosedMidLine,
}

/// At most this many fds may wait for their `NODE_HANDLE` line; more is a broken peer.
pub const MAX_PENDING_FDS: usize = 4;

/// One complete line, understood.
#[derive(Debug)]
pub enum Frame {
    /// Anything that is not the channel layer's own business.
    Message(Value),
    /// `{"cmd":"NODE_HANDLE","type":...,"msg":{...}}` with the fd that came for it — or none
    /// (Node answers that with `NODE_HANDLE_NACK`).
    Handle {
        ty: HandleType,
        msg: Value,
        fd: Option<OwnedFd>,
    },
    /// `NODE_HANDLE_ACK` or `NODE_HANDLE_NACK`: the peer has dealt with our last handle.
    HandleAnswered,
}

/// The receiving half of a channel's framing.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    // ANCHOR: push
    /// Take what one read brought (bytes, and fds from `SCM_RIGHTS`) and return every line it
    /// completed, in order, each with its raw text. A line may span reads and a read may hold
    /// many lines; what is left waits for the next read.
    pub fn push(
        &mut self,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<Vec<(String, Frame)>, FrameError> {
        self.fds.extend(fds);
        if self.fds.len() > MAX_PENDING_FDS {
            return Err(FrameError::StrayFds);
        }
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            if nl > MAX_LINE {
                return Err(FrameError::LineTooLong);
            }
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = &line[..nl];
            let text = String::from_utf8_lossy(line).into_owned();
            let msg: Value = serde_json::from_slice(line).map_err(|_| FrameError::NotJson {
                excerpt: excerpt(line),
            })?;
            frames.push((text, self.frame(msg)?));
        }
        if self.buf.len() > MAX_LINE {
            return Err(FrameError::LineTooLong);
        }
        Ok(frames)
    }
    // ANCHOR_END: push

    fn frame(&mut self, msg: Value) -> Result<Frame, FrameError> {
        let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
        if !cmd.starts_with("NODE_HANDLE") {
            return Ok(Frame::Message(msg));
        }
        match Control::deserialize(&msg) {
            Ok(Control::HandleAck | Control::HandleNack) => Ok(Frame::HandleAnswered),
            Ok(Control::Handle { ty, msg }) => Ok(Frame::Handle {
                ty,
                msg,
                fd: self.fds.pop_front(),
            }),
            Err(_) if cmd == "NODE_HANDLE" => {
                let name = msg.get("type").and_then(Value::as_str).unwrap_or("");
                Err(FrameError::UnknownHandleType(name.to_string()))
            }
            Err(_) => Ok(Frame::Message(msg)),
        }
    }

    /// Whether an fd is waiting for its line.
    pub fn has_pending_fd(&self) -> bool {
        !self.fds.is_empty()
    }

    /// The peer closed the channel: fine on a line boundary, an error in the middle of one.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(FrameError::ClosedMidLine),
        }
    }
}

/// The first 60 characters of a bad line, for an error message.
fn excerpt(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let mut e: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        e.push_str("...");
    }
    format!("{e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(d: &mut Decoder, bytes: &[u8]) -> Vec<String> {
        d.push(bytes, Vec::new())
            .expect("valid input")
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    #[test]
    fn lines_split_and_merged_across_reads() {
        let mut d = Decoder::new();
        assert!(messages(&mut d, b"{\"a\":1}\n{\"b\"").len() == 1);
        assert_eq!(
            messages(&mut d, b":2}\n{\"c\":3}\n"),
            vec!["{\"b\":2}", "{\"c\":3}"]
        );
        assert!(d.finish().is_ok());
    }

    #[test]
    fn an_fd_waits_for_its_handle_line() {
        let mut d = Decoder::new();
        let (a, _b) = crate::sys::socketpair().expect("socketpair");
        let frames = d
            .push(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Na", vec![a])
            .expect("ok");
        assert!(frames.is_empty() && d.has_pending_fd());
        let frames = d
            .push(b"tive\",\"msg\":{\"act\":\"newconn\"}}\n", Vec::new())
            .expect("ok");
        match &frames[0].1 {
            Frame::Handle { fd, msg, .. } => {
                assert!(fd.is_some());
                assert_eq!(msg["act"], "newconn");
            }
            other => panic!("not a handle: {other:?}"),
        }
    }

    #[test]
    fn a_handle_line_without_fd_has_none() {
        let mut d = Decoder::new();
        let frames = d
            .push(
                b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{}}\n",
                Vec::new(),
            )
            .expect("ok");
        assert!(matches!(frames[0].1, Frame::Handle { fd: None, .. }));
    }

    #[test]
    fn a_bound_socket_is_a_handle_type_node_24_sends() {
        let line = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.BoundSocket\",\"msg\":{\"a\":1}}\n";
        let frames = Decoder::new().push(line, Vec::new()).expect("a known type");
        assert!(matches!(
            frames[0].1,
            Frame::Handle {
                ty: HandleType::BoundSocket,
                ..
            }
        ));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            Decoder::new().push(b"\xff\xfe\n", Vec::new()),
            Err(FrameError::NotJson { .. })
        ));
        assert!(matches!(
            Decoder::new().push(
                b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"x\",\"msg\":{}}\n",
                Vec::new()
            ),
            Err(FrameError::UnknownHandleType(_))
        ));
        let mut d = Decoder::new();
        d.push(b"{\"cmd\"", Vec::new()).expect("partial is fine");
        assert_eq!(d.finish(), Err(FrameError::ClosedMidLine));
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(
            Decoder::new().push(&long, Vec::new()).err(),
            Some(FrameError::LineTooLong)
        );
    }
}
