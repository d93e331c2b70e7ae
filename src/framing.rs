//! Turning the bytes of a channel into messages: the `json` framing of
//! [`lib/internal/child_process/serialization.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process/serialization.js#L100)
//! (`parseChannelMessages`), and which line an fd belongs to: the line the last byte of its
//! read falls in (the kernel ends a read after the bytes that carried fds, and a sender puts
//! the fd on its `NODE_HANDLE` line's first byte). An fd that came with any other line is
//! closed and reported; Node's `setupChannel` keeps it for the next `NODE_HANDLE` line.
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

/// Something a peer did wrong that the decoder dealt with itself: reported, and the peer
/// is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameWarning {
    /// An fd came with a line that is not a `NODE_HANDLE` (a plain message, an ACK): no one
    /// asked for it, so it was closed at once.
    #[error("sent {} with a message that is not NODE_HANDLE; closed {}", fds_text(*.fds), it(*.fds))]
    FdOnMessage { fds: usize },
    /// A `NODE_HANDLE` line came with more than the one fd it carries; the rest were closed.
    #[error("sent {} more than its NODE_HANDLE carries; closed {}", fds_text(*.extra), it(*.extra))]
    ExtraFds { extra: usize },
}

/// `a file descriptor`, `2 file descriptors`.
fn fds_text(n: usize) -> String {
    match n {
        1 => "a file descriptor".to_string(),
        n => format!("{n} file descriptors"),
    }
}

/// `it` or `them`.
fn it(n: usize) -> &'static str {
    if n == 1 { "it" } else { "them" }
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
///
/// Which line an fd belongs to: a sender puts the fd on the first byte of its `NODE_HANDLE`
/// line (libuv's `uv_write2` sends that line alone, with `sendmsg`), and the kernel ends a
/// read after the bytes that carry fds. So the fds of a read belong to the line its last
/// byte is part of, which may end in a later read. Node keeps such an fd as
/// [`pendingHandle`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L680-L707)
/// until the next `NODE_HANDLE` line, however many lines later, and a newer fd replaces it
/// (the older one stays open, unowned). We differ on purpose: an fd whose line turns out not
/// to be a `NODE_HANDLE` is closed at once and reported ([`FrameWarning`]), so it can
/// neither leak nor ride on a later handle that came with its own.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// The fds that came with reads, each with where in `buf` the line it rides on starts.
    fds: VecDeque<(usize, OwnedFd)>,
    /// What the peer did wrong that was dealt with here (since [`Decoder::take_warnings`]).
    warnings: Vec<FrameWarning>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    // ANCHOR: push
    /// Take what one read brought (bytes, and fds from `SCM_RIGHTS`) and return every line it
    /// completed, in order, each with its raw text. A line may span reads and a read may hold
    /// many lines; what is left waits for the next read. The read's fds go with the line
    /// its last byte belongs to (see [`Decoder`]).
    pub fn push(
        &mut self,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<Vec<(String, Frame)>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let owner = line_of_last_byte(&self.buf);
        self.fds.extend(fds.into_iter().map(|fd| (owner, fd)));
        if self.fds.len() > MAX_PENDING_FDS {
            return Err(FrameError::StrayFds);
        }
        let mut frames = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            if nl > MAX_LINE {
                return Err(FrameError::LineTooLong);
            }
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = &line[..nl];
            let fds = self.take_fds(nl + 1);
            let text = String::from_utf8_lossy(line).into_owned();
            let msg: Value = serde_json::from_slice(line).map_err(|_| FrameError::NotJson {
                excerpt: excerpt(line),
            })?;
            frames.push((text, self.frame(msg, fds)?));
        }
        if self.buf.len() > MAX_LINE {
            return Err(FrameError::LineTooLong);
        }
        Ok(frames)
    }
    // ANCHOR_END: push

    /// The fds of the line that starts `buf` (just taken, `len` bytes with its `\n`); the
    /// others move up with the bytes.
    fn take_fds(&mut self, len: usize) -> Vec<OwnedFd> {
        let mut mine = Vec::new();
        while self.fds.front().is_some_and(|(at, _)| *at < len) {
            mine.extend(self.fds.pop_front().map(|(_, fd)| fd));
        }
        for (at, _) in &mut self.fds {
            *at -= len;
        }
        mine
    }

    fn frame(&mut self, msg: Value, fds: Vec<OwnedFd>) -> Result<Frame, FrameError> {
        let cmd = msg.get("cmd").and_then(Value::as_str).unwrap_or("");
        let control = match cmd.starts_with("NODE_HANDLE") {
            true => Some(Control::deserialize(&msg)),
            false => None,
        };
        match control {
            Some(Ok(Control::Handle { ty, msg })) => {
                let mut fds = fds.into_iter();
                let fd = fds.next();
                let extra = fds.len(); // closed as `fds` drops
                if extra > 0 {
                    self.warnings.push(FrameWarning::ExtraFds { extra });
                }
                return Ok(Frame::Handle { ty, msg, fd });
            }
            Some(Err(_)) if cmd == "NODE_HANDLE" => {
                let name = msg.get("type").and_then(Value::as_str).unwrap_or("");
                return Err(FrameError::UnknownHandleType(name.to_string()));
            }
            _ => {}
        }
        if !fds.is_empty() {
            self.warnings
                .push(FrameWarning::FdOnMessage { fds: fds.len() });
            drop(fds); // close(2), each one
        }
        Ok(match control {
            Some(Ok(Control::HandleAck | Control::HandleNack)) => Frame::HandleAnswered,
            _ => Frame::Message(msg),
        })
    }

    /// What the peer did wrong that was dealt with here, since the last call.
    pub fn take_warnings(&mut self) -> Vec<FrameWarning> {
        std::mem::take(&mut self.warnings)
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

/// Where the line that holds `buf`'s last byte starts (0 for an empty `buf`): after the last
/// `\n` before that byte.
fn line_of_last_byte(buf: &[u8]) -> usize {
    let before_last = &buf[..buf.len().saturating_sub(1)];
    before_last
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1)
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

    /// An fd to give the decoder, and a way to tell whether it was closed: the other end of
    /// its socketpair reads end of file once it is.
    fn watched_fd() -> (OwnedFd, std::os::unix::net::UnixStream) {
        let (a, b) = crate::sys::socketpair().expect("socketpair");
        let b = std::os::unix::net::UnixStream::from(b);
        b.set_nonblocking(true).expect("non-blocking");
        (a, b)
    }

    fn is_closed(other_end: &std::os::unix::net::UnixStream) -> bool {
        use std::io::Read as _;
        matches!((&*other_end).read(&mut [0u8; 1]), Ok(0))
    }

    const HANDLE: &[u8] = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{}}\n";

    #[test]
    fn an_fd_on_a_plain_message_is_closed_and_reported() {
        let mut d = Decoder::new();
        let (fd, other_end) = watched_fd();
        let frames = d.push(b"{\"hello\":1}\n", vec![fd]).expect("ok");
        assert!(matches!(frames[0].1, Frame::Message(_)));
        assert_eq!(d.take_warnings(), [FrameWarning::FdOnMessage { fds: 1 }]);
        assert_eq!(
            FrameWarning::FdOnMessage { fds: 1 }.to_string(),
            "sent a file descriptor with a message that is not NODE_HANDLE; closed it"
        );
        assert!(is_closed(&other_end), "closed at once");
        assert!(!d.has_pending_fd());
        // The next handle line does not get it: it came without one, so it has none.
        let frames = d.push(HANDLE, Vec::new()).expect("ok");
        assert!(matches!(frames[0].1, Frame::Handle { fd: None, .. }));
    }

    #[test]
    fn an_fd_on_an_ack_is_closed_too() {
        let mut d = Decoder::new();
        let (fd, other_end) = watched_fd();
        let frames = d
            .push(b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n", vec![fd])
            .expect("ok");
        assert!(matches!(frames[0].1, Frame::HandleAnswered));
        assert_eq!(d.take_warnings(), [FrameWarning::FdOnMessage { fds: 1 }]);
        assert!(is_closed(&other_end));
    }

    #[test]
    fn the_fd_of_a_read_belongs_to_the_line_its_last_byte_is_in() {
        // A plain line, then the handle line the fd came with, in one read.
        let mut d = Decoder::new();
        let (fd, other_end) = watched_fd();
        let mut read = b"{\"first\":1}\n".to_vec();
        read.extend_from_slice(HANDLE);
        let frames = d.push(&read, vec![fd]).expect("ok");
        assert!(matches!(frames[0].1, Frame::Message(_)));
        assert!(matches!(frames[1].1, Frame::Handle { fd: Some(_), .. }));
        assert!(d.take_warnings().is_empty());
        drop(frames);
        assert!(is_closed(&other_end), "the frame owned it");
        // A plain line, then the start of the handle line: the fd waits for the rest.
        let (fd, _other_end) = watched_fd();
        let (head, tail) = HANDLE.split_at(20);
        let mut read = b"{\"first\":1}\n".to_vec();
        read.extend_from_slice(head);
        let frames = d.push(&read, vec![fd]).expect("ok");
        assert!(matches!(frames[..], [(_, Frame::Message(_))]));
        assert!(d.has_pending_fd());
        let frames = d.push(tail, Vec::new()).expect("ok");
        assert!(matches!(frames[0].1, Frame::Handle { fd: Some(_), .. }));
        assert!(d.take_warnings().is_empty());
    }

    #[test]
    fn more_fds_than_a_handle_carries_are_closed() {
        let mut d = Decoder::new();
        let (first, _keep) = watched_fd();
        let (second, other_end) = watched_fd();
        let frames = d.push(HANDLE, vec![first, second]).expect("ok");
        assert!(matches!(frames[0].1, Frame::Handle { fd: Some(_), .. }));
        assert_eq!(d.take_warnings(), [FrameWarning::ExtraFds { extra: 1 }]);
        assert!(is_closed(&other_end));
    }

    #[test]
    fn fds_piling_up_on_an_unfinished_line_are_an_error() {
        let mut d = Decoder::new();
        for _ in 0..MAX_PENDING_FDS {
            let (fd, _) = watched_fd();
            d.push(b"{", vec![fd]).expect("still within the bound");
        }
        let (fd, _) = watched_fd();
        assert_eq!(d.push(b"{", vec![fd]).err(), Some(FrameError::StrayFds));
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
