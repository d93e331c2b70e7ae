//! The IPC channel between a primary and one worker: newline-delimited JSON over an
//! `AF_UNIX` stream socket, with file descriptors riding along via `SCM_RIGHTS`.
//!
//! Mirrors `setupChannel` in
//! [`lib/internal/child_process.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L652)
//! and the `json` framing in
//! [`lib/internal/child_process/serialization.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process/serialization.js#L100),
//! plus what libuv does underneath (`uv_write2` → `sendmsg`, `uv__read` → `recvmsg`):
//!
//! * one JSON document per line; plain lines go out with a plain write;
//! * a message carrying an fd is wrapped as `{"cmd":"NODE_HANDLE","type":...,"msg":{...}}` and
//!   goes out with `sendmsg` and exactly one fd, attached to that line's first byte;
//! * the receiver answers `{"cmd":"NODE_HANDLE_ACK"}` as soon as it has the fd (or
//!   `NODE_HANDLE_NACK` if none came), and the sender holds *every* later message until then;
//! * several lines may arrive in one read, one line may span reads, and an fd that arrives
//!   before its line is complete waits for it; an fd that came with a line that is not a
//!   `NODE_HANDLE` is closed at once and reported (Node keeps it for the next handle line;
//!   see [`Decoder`]).
//!
//! Where we are stricter than Node on purpose: a line has a length limit ([`MAX_LINE`](crate::framing::MAX_LINE)), a
//! line that is not JSON is an error we report instead of an exception that kills the process,
//! and what waits to go out has a limit too ([`MAX_QUEUED`]): a peer that stops reading
//! cannot make us hold its replies forever. Past the limit the channel stops queueing and
//! says so ([`ChannelError::Overflowed`]); its owner then lets the peer go.
//!
//! Where we are faster than Node on purpose, and only while nothing is traced (see
//! [`trace::enabled`]): plain messages queued in one turn of the event loop go out together,
//! in one `send`, when the turn ends (the owner's [`Channel::flush`], or `POLLOUT`), instead
//! of one `send` each. A worker's `NODE_HANDLE_ACK` and its `{accepted}` then reach the
//! primary as one read. A message with an fd always flushes at once, everything before it
//! first, so the order on the wire is the same either way. With tracing on, every message
//! goes out when it is sent, so the lines of two processes interleave as the protocol
//! orders them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::sys::Errno;
use serde_json::Value;

use crate::framing::{Control, Decoder, Frame};
pub use crate::framing::{FrameError, HandleType};
use crate::sys;
use crate::trace;

/// A message that arrived, with the fd that came with it, if any.
#[derive(Debug)]
pub struct Incoming {
    pub msg: Value,
    pub fd: Option<OwnedFd>,
    pub handle_type: Option<HandleType>,
}

/// What a peer did wrong, or what happened to the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The bytes themselves were wrong (see [`FrameError`]).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The kernel cut the fds short (`MSG_CTRUNC`): the peer sent more in one message
    /// than a read has room for. The ones that arrived were closed.
    #[error(
        "sent more file descriptors in one message than a read has room for (MSG_CTRUNC); the ones that arrived were closed"
    )]
    TruncatedFds,
    /// The peer stopped reading: more than [`MAX_QUEUED`] bytes wait for it. What was sent
    /// after that was dropped.
    #[error("stopped reading its channel: {queued} bytes queued")]
    Overflowed { queued: usize },
    #[error("channel {syscall} failed: {errno}")]
    Sys { syscall: &'static str, errno: Errno },
}

/// One message as one end of a channel saw it go by (for diagrams drawn from a real run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    pub from: String,
    pub to: String,
    /// The line, verbatim, without its `\n`.
    pub line: String,
    /// Whether an fd rode on it.
    pub fd: bool,
}

/// A shared log of [`WireRecord`]s, in the order one process saw them.
pub type WireLog = Rc<RefCell<Vec<WireRecord>>>;

/// One queued outgoing line, and the fd that must ride on its first byte.
struct Outgoing {
    bytes: Vec<u8>,
    sent: usize,
    fd: Option<Rc<OwnedFd>>,
}

/// A message waiting for the peer's `NODE_HANDLE_ACK` before it may go out, rendered
/// already (so that what it costs is known while it waits).
struct Held {
    /// The line, without its `\n`.
    line: Vec<u8>,
    fd: Option<(Rc<OwnedFd>, HandleType)>,
}

/// How big a read may be: what one `recvmsg` asks for (libuv reads 64 KiB too).
const READ_SIZE: usize = 64 * 1024;

/// The most bytes one channel holds for its peer, counting what waits for the socket and
/// what waits behind an unacknowledged handle: 8 MiB. Node has no limit (a peer that never
/// reads makes the sender's memory grow until it dies). An honest peer reads as it goes: the
/// lab's busiest run keeps a few KiB queued, and the kernel's own buffer takes the first
/// ~200 KiB before anything queues here at all. Past the limit the channel drops what is
/// sent and reports [`ChannelError::Overflowed`] (see [`Channel::overflow`]).
pub const MAX_QUEUED: usize = 8 << 20;

/// One end of the channel.
pub struct Channel {
    fd: OwnedFd,
    /// Who is at the other end, for the wire trace (`worker 1`, `primary`).
    peer: String,
    /// Bytes and fds waiting to become complete lines.
    decoder: Decoder,
    out: VecDeque<Outgoing>,
    /// `_handleQueue`: everything sent after a handle, until the peer ACKs it.
    held: VecDeque<Held>,
    /// Bytes in `out` not sent yet plus bytes in `held`, each line with its `\n`: what
    /// [`MAX_QUEUED`] bounds.
    queued: usize,
    /// The peer let more than [`MAX_QUEUED`] bytes pile up; nothing is queued any more.
    overflowed: bool,
    awaiting_ack: bool,
    closed: bool,
    /// Things the peer did that the channel dealt with but someone should hear about.
    warnings: Vec<String>,
    /// Where to record what goes by, if anyone asked (`me` is this end's name).
    recorder: Option<(WireLog, String)>,
    /// Where `recvmsg` puts the bytes: allocated once, not zeroed on every read.
    rbuf: Box<[u8]>,
}

impl Channel {
    /// Wrap our end of the socketpair. It is made non-blocking: a slow peer must never stall
    /// the event loop.
    pub fn new(fd: OwnedFd, peer: &str) -> Result<Self, ChannelError> {
        sys::set_nonblocking(fd.as_fd(), true).map_err(|errno| ChannelError::Sys {
            syscall: "fcntl",
            errno,
        })?;
        Ok(Self {
            fd,
            peer: peer.to_string(),
            decoder: Decoder::new(),
            out: VecDeque::new(),
            held: VecDeque::new(),
            queued: 0,
            overflowed: false,
            awaiting_ack: false,
            closed: false,
            recorder: None,
            warnings: Vec::new(),
            rbuf: vec![0u8; READ_SIZE].into_boxed_slice(),
        })
    }

    /// Record every message sent and received on this channel into `log`, naming this end `me`.
    pub fn record_into(&mut self, log: WireLog, me: &str) {
        self.recorder = Some((log, me.to_string()));
    }

    fn record(&self, outgoing: bool, line: &str, fd: bool) {
        if let Some((log, me)) = &self.recorder {
            let (from, to) = match outgoing {
                true => (me.clone(), self.peer.clone()),
                false => (self.peer.clone(), me.clone()),
            };
            let line = line.to_string();
            log.borrow_mut().push(WireRecord { from, to, line, fd });
        }
    }

    /// The socket, for polling.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the peer is gone (EOF or a failed write).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// What the peer did wrong that the channel handled itself (since the last call).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Whether there are bytes waiting for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many bytes wait for the peer (to be written, or behind a handle it has not
    /// acknowledged).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// [`ChannelError::Overflowed`] once the peer let more than [`MAX_QUEUED`] bytes pile
    /// up: from then on what is sent is dropped, and the owner should let the peer go.
    pub fn overflow(&self) -> Option<ChannelError> {
        self.overflowed.then_some(ChannelError::Overflowed {
            queued: self.queued,
        })
    }

    /// Whether `len` more bytes may be queued. The first time they may not, the channel
    /// marks itself overflowed; it stays so.
    fn admit(&mut self, len: usize) -> bool {
        if !self.overflowed && self.queued + len > MAX_QUEUED {
            self.overflowed = true;
        }
        !self.overflowed
    }

    /// Hold a rendered line until the peer acknowledges the handle we wait on.
    fn hold(&mut self, line: Vec<u8>, fd: Option<(Rc<OwnedFd>, HandleType)>) {
        if self.admit(line.len() + 1) {
            self.queued += line.len() + 1;
            self.held.push_back(Held { line, fd });
        }
    }

    // ANCHOR: send
    /// `process.send(message)` / `target._send`: queue a plain message. It waits behind an
    /// unacknowledged handle, as Node's `_handleQueue` makes it.
    pub fn send(&mut self, msg: Value) {
        let line = msg.to_string().into_bytes();
        if self.awaiting_ack {
            return self.hold(line, None);
        }
        self.write_bytes(line, None);
    }

    /// An ACK or NACK goes out at once, even past a handle we wait on ourselves: the peer
    /// may be holding its messages for it.
    fn send_control(&mut self, c: &Control) {
        self.write_bytes(c.to_line(), None);
    }

    /// Send a message with a handle: it is wrapped in `NODE_HANDLE` and the fd rides on it.
    pub fn send_handle(&mut self, msg: Value, fd: Rc<OwnedFd>, ty: HandleType) {
        let wrapped = Control::Handle { ty, msg };
        self.send_handle_line(wrapped.to_line(), fd, ty);
    }
    // ANCHOR_END: send

    /// [`Channel::send_handle`] for a line the caller rendered itself (without its `\n`): the
    /// whole `{"cmd":"NODE_HANDLE",...}` text, byte for byte what `send_handle` would write.
    /// The primary's `newconn` goes this way, so a connection costs no JSON building.
    pub fn send_handle_line(&mut self, line: Vec<u8>, fd: Rc<OwnedFd>, ty: HandleType) {
        if self.awaiting_ack {
            return self.hold(line, Some((fd, ty)));
        }
        if self.admit(line.len() + 1) {
            self.awaiting_ack = true;
            self.enqueue(line, Some(fd));
        }
    }

    /// Queue one line (given without its `\n`), if the bound allows it.
    fn write_bytes(&mut self, line: Vec<u8>, fd: Option<Rc<OwnedFd>>) {
        if self.admit(line.len() + 1) {
            self.enqueue(line, fd);
        }
    }

    /// Queue one line (given without its `\n`) and, unless it may wait for the end of the
    /// turn (see the module's doc), write what the socket takes now.
    fn enqueue(&mut self, mut line: Vec<u8>, fd: Option<Rc<OwnedFd>>) {
        if self.recorder.is_some() || trace::wire_enabled() {
            let text = String::from_utf8_lossy(&line).into_owned();
            self.record(true, &text, fd.is_some());
            if trace::wire_enabled() {
                let arrow = match &fd {
                    Some(f) => format!("-> {} [fd {}]", self.peer, f.as_raw_fd()),
                    None => format!("-> {}", self.peer),
                };
                trace::wire(&arrow, &text);
            }
        }
        line.push(b'\n');
        self.queued += line.len();
        let batch = fd.is_none() && !trace::enabled();
        match self.out.back_mut() {
            // A plain line joins the plain bytes already waiting: one send for both.
            Some(last) if batch && last.fd.is_none() => last.bytes.extend_from_slice(&line),
            _ => self.out.push_back(Outgoing {
                bytes: line,
                sent: 0,
                fd,
            }),
        }
        if !batch {
            self.flush();
        }
    }

    /// Write what the socket takes now; the rest waits for `POLLOUT`.
    pub fn flush(&mut self) {
        while let Some(head) = self.out.front_mut() {
            if self.closed {
                return self.discard_out();
            }
            let rest = &head.bytes[head.sent..];
            let res = match (&head.fd, head.sent) {
                (Some(fd), 0) => sys::sendmsg_with_fd(self.fd.as_fd(), rest, fd.as_raw_fd()),
                _ => sys::send(self.fd.as_fd(), rest),
            };
            match res {
                Ok(n) => {
                    head.sent += n;
                    self.queued -= n;
                    head.fd = None; // the kernel holds its own reference now
                    if head.sent == head.bytes.len() {
                        self.out.pop_front();
                    }
                }
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.closed = true;
                    return self.discard_out();
                }
            }
        }
    }

    /// The peer is gone: what waits for the socket never goes.
    fn discard_out(&mut self) {
        let unsent: usize = self.out.iter().map(|o| o.bytes.len() - o.sent).sum();
        self.queued -= unsent;
        self.out.clear();
    }

    /// The peer acknowledged (or refused) the handle: let the held messages go, up to and
    /// including the next one that carries a handle.
    fn release_held(&mut self) {
        self.awaiting_ack = false;
        while !self.awaiting_ack {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            // Counted already: it moves from one queue to the other.
            self.queued -= h.line.len() + 1;
            if let Some((fd, _)) = h.fd {
                self.awaiting_ack = true;
                self.enqueue(h.line, Some(fd));
            } else {
                self.enqueue(h.line, None);
            }
        }
    }

    // ANCHOR: read
    /// Read what is there and return the complete messages, in order. `Ok(None)` means the
    /// peer closed the channel cleanly (EOF on a line boundary). The channel layer's own
    /// messages are handled here: a `NODE_HANDLE` is ACKed (or NACKed when no fd came) before
    /// anyone sees it, and an ACK/NACK releases what we held back.
    pub fn read(&mut self) -> Result<Option<Vec<Incoming>>, ChannelError> {
        if let Some(e) = self.overflow() {
            return Err(e);
        }
        let got = match sys::recvmsg(self.fd.as_fd(), &mut self.rbuf) {
            Ok(r) => r,
            Err(Errno::EAGAIN) => return Ok(Some(Vec::new())),
            Err(Errno::ECONNRESET) => {
                self.closed = true;
                return Ok(None);
            }
            Err(errno) => {
                return Err(ChannelError::Sys {
                    syscall: "recvmsg",
                    errno,
                });
            }
        };
        if got.truncated {
            // Which line each fd belongs to is lost with the ones that did not fit: the
            // ones that arrived close here (`got` is dropped), and the peer is broken.
            return Err(ChannelError::TruncatedFds);
        }
        if got.len == 0 {
            self.closed = true;
            return Ok(self.decoder.finish().map(|()| None)?);
        }
        let frames = self.decoder.push(&self.rbuf[..got.len], got.fds)?;
        let closed = self.decoder.take_warnings();
        self.warnings.extend(closed.iter().map(ToString::to_string));
        let mut messages = Vec::new();
        for (line, frame) in frames {
            let fd = matches!(frame, Frame::Handle { fd: Some(_), .. });
            self.record(false, &line, fd);
            messages.extend(self.on_frame(frame));
        }
        Ok(Some(messages))
    }
    // ANCHOR_END: read

    // ANCHOR: on_frame
    /// What the channel layer does with each frame. A `NODE_HANDLE_NACK` counts as an ACK:
    /// it releases what was held behind our last handle, and the handle is not sent again.
    /// So does Node for the handles the cluster sends (`net.Native`, `dgram.Native`). Node
    /// re-sends a NACKed handle (three times, then `SentHandleNotReceivedWarning`) only if it
    /// kept a `_pendingMessage` for it, which only a type with
    /// [`closeHandleAfterAck`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L97-L110)
    /// as `postSend` does: `net.Socket`
    /// ([L214](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L214))
    /// and, from 24, `net.BoundSocket`
    /// ([L156](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L156));
    /// the NACK branch is
    /// [L724–L747](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/child_process.js#L724-L747).
    /// `tests/nack.rs` runs a worker that NACKs a `newconn` under ours and Node's primaries.
    fn on_frame(&mut self, frame: Frame) -> Option<Incoming> {
        match frame {
            Frame::HandleAnswered => {
                self.release_held();
                None
            }
            Frame::Handle { fd: None, .. } => {
                self.warnings
                    .push("sent a NODE_HANDLE without a file descriptor; answered NACK".into());
                self.send_control(&Control::HandleNack);
                None
            }
            Frame::Handle { ty, msg, fd } => {
                self.send_control(&Control::HandleAck);
                Some(Incoming {
                    msg,
                    fd,
                    handle_type: Some(ty),
                })
            }
            Frame::Message(msg) => Some(Incoming {
                msg,
                fd: None,
                handle_type: None,
            }),
        }
    }
    // ANCHOR_END: on_frame
}

impl Channel {
    /// A worker's last act on its channel, when the primary asked it to go: everything queued
    /// goes out, then our end of file (`shutdown(SHUT_WR)`), then we wait — at most `limit` —
    /// for the primary to close its end, discarding whatever still arrives (an fd that rides
    /// along is closed). A Node primary closes its end while it handles our EOF
    /// (`channel.onread` → `target.disconnect()` → `channel.close()`), so when we see its close
    /// it has already marked us disconnected, and our exit cannot reach it first. Closing and
    /// exiting at once leaves that order to luck: with libuv >= 1.5x the EOF takes one more
    /// loop turn, and if our SIGCHLD is in the same turn a Node primary whose channels are
    /// unref'd exits before it reads the EOF (`cluster.disconnect(cb)` never calls back).
    pub fn close_after_peer(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let left = || deadline.saturating_duration_since(Instant::now());
        while self.wants_write() && !self.closed {
            self.flush();
            if !self.wants_write() || self.closed || left().is_zero() {
                break;
            }
            let _ = sys::wait_one(self.fd.as_fd(), true, left());
        }
        if self.closed || sys::shutdown_write(self.fd.as_fd()).is_err() {
            return;
        }
        while !left().is_zero() {
            match sys::wait_one(self.fd.as_fd(), false, left()) {
                Ok(r) if r.readable => {}
                Ok(_) => continue,
                Err(_) => return,
            }
            match sys::recvmsg(self.fd.as_fd(), &mut self.rbuf) {
                Ok(got) if got.len == 0 => return, // the primary closed its end
                Ok(_) | Err(Errno::EAGAIN) => {}   // late bytes (and fds): dropped
                Err(_) => return,
            }
        }
    }
}

impl Drop for Channel {
    /// What is still queued goes out now, as far as the socket takes it: a message sent just
    /// before the channel is dropped (a worker's last `close`) must not stay behind.
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests;
