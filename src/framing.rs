//! Turning the bytes of a channel into messages: the `json` framing of
//! [`lib/internal/child_process/serialization.js`](https://github.com/nodejs/node/blob/v20.20.2/lib/internal/child_process/serialization.js#L142)
//! (`parseChannelMessages`), plus the rule of `setupChannel` that an fd received from the
//! kernel waits for the next complete `NODE_HANDLE` line.
//!
//! Kept apart from the socket so it can be tested and fuzzed with plain bytes: a peer
//! process is the one input the primary cannot trust.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use serde_json::Value;

use crate::channel::{ChannelError, HandleType, MAX_LINE};

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
    ) -> Result<Vec<(String, Frame)>, ChannelError> {
        self.fds.extend(fds);
        if self.fds.len() > MAX_PENDING_FDS {
            return Err(ChannelError::StrayFds);
        }
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            if nl > MAX_LINE {
                return Err(ChannelError::LineTooLong);
            }
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = &line[..nl];
            let text = String::from_utf8_lossy(line).into_owned();
            let msg: Value = serde_json::from_slice(line).map_err(|_| ChannelError::NotJson {
                excerpt: excerpt(line),
            })?;
            frames.push((text, self.frame(msg)?));
        }
        if self.buf.len() > MAX_LINE {
            return Err(ChannelError::LineTooLong);
        }
        Ok(frames)
    }
    // ANCHOR_END: push

    fn frame(&mut self, msg: Value) -> Result<Frame, ChannelError> {
        match msg.get("cmd").and_then(Value::as_str) {
            Some("NODE_HANDLE_ACK") | Some("NODE_HANDLE_NACK") => Ok(Frame::HandleAnswered),
            Some("NODE_HANDLE") => {
                let name = msg.get("type").and_then(Value::as_str).unwrap_or("");
                let ty = HandleType::parse(name)
                    .ok_or_else(|| ChannelError::UnknownHandleType(name.to_string()))?;
                let inner = msg.get("msg").cloned().unwrap_or(Value::Null);
                Ok(Frame::Handle {
                    ty,
                    msg: inner,
                    fd: self.fds.pop_front(),
                })
            }
            _ => Ok(Frame::Message(msg)),
        }
    }

    /// Whether an fd is waiting for its line.
    pub fn has_pending_fd(&self) -> bool {
        !self.fds.is_empty()
    }

    /// The peer closed the channel: fine on a line boundary, an error in the middle of one.
    pub fn finish(&self) -> Result<(), ChannelError> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(ChannelError::ClosedMidLine),
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
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            Decoder::new().push(b"\xff\xfe\n", Vec::new()),
            Err(ChannelError::NotJson { .. })
        ));
        assert!(matches!(
            Decoder::new().push(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"x\"}\n", Vec::new()),
            Err(ChannelError::UnknownHandleType(_))
        ));
        let mut d = Decoder::new();
        d.push(b"{\"cmd\"", Vec::new()).expect("partial is fine");
        assert_eq!(d.finish(), Err(ChannelError::ClosedMidLine));
        let long = vec![b' '; MAX_LINE + 1];
        assert_eq!(
            Decoder::new().push(&long, Vec::new()).err(),
            Some(ChannelError::LineTooLong)
        );
    }
}
