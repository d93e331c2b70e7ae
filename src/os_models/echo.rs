//! The little line protocol every model serves, and the client that speaks it.
//!
//! The client sends a line; the server answers with who it is and the line:
//! `child 2 (pid 4711): hello 1`. A line `:exit` ends the conversation from the client's
//! side, and so does end of file. This is the article's echo server with its framing made
//! explicit: the article's child compares and measures a buffer that `recv` never
//! terminated, so it works only while every message arrives whole and alone.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{ModelError, WAIT_LIMIT};
use crate::sys;
use crate::trace;

/// The longest line the server accepts.
const MAX_LINE: usize = 1024;

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `read` returned 0: the client shut down its side.
    Eof,
    /// The client said `:exit`.
    Exit,
    /// The client said nothing for [`WAIT_LIMIT`], or the connection failed.
    Broken,
}

// ANCHOR: serve
/// Serve one connection as child `n`: answer each line, until end of file or `:exit`.
/// Every `read` result is looked at: 0 is end of file, an error ends the conversation.
pub fn serve(conn: &OwnedFd, n: usize) -> Ended {
    let fd = conn.as_fd();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; MAX_LINE];
    loop {
        // A complete line, up to and including its '\n'? Answer it.
        if let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            if text == ":exit" {
                trace::step(&format!("got {text:?}: answers \"bye\" and ends"));
                let _ = send_all(fd, b"bye\n");
                return Ended::Exit;
            }
            let reply = format!("child {n} (pid {}): {text}\n", std::process::id());
            trace::step(&format!("got {text:?}, answers {:?}", reply.trim_end()));
            if send_all(fd, reply.as_bytes()).is_err() {
                return Ended::Broken;
            }
            continue;
        }
        if pending.len() >= MAX_LINE {
            trace::problem("a line longer than 1024 bytes: ends the conversation");
            return Ended::Broken;
        }
        let ready = sys::wait_one(fd, false, WAIT_LIMIT).unwrap_or_default();
        if !ready.readable {
            trace::problem("the client said nothing: ends the conversation");
            return Ended::Broken;
        }
        match sys::read(fd, &mut buf) {
            Ok(0) => {
                let args = format!("{}, ...", fd.as_raw_fd());
                let eof = "0 (end of file: the client is done)".to_string();
                sys::trace_call(&trace::Syscall::new("read", &args), Ok(eof));
                return Ended::Eof;
            }
            Ok(len) => pending.extend_from_slice(&buf[..len]),
            Err(sys::Errno::EAGAIN) => continue,
            Err(e) => {
                let args = format!("{}, ...", fd.as_raw_fd());
                sys::trace_call(&trace::Syscall::new("read", &args), Err(e));
                return Ended::Broken;
            }
        }
    }
}
// ANCHOR_END: serve

/// Send all of `bytes` on a non-blocking socket, waiting (bounded) while it is full.
fn send_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), sys::Errno> {
    while !bytes.is_empty() {
        match sys::send(fd, bytes) {
            Ok(sent) => bytes = &bytes[sent..],
            Err(sys::Errno::EAGAIN) => {
                let ready = sys::wait_one(fd, true, WAIT_LIMIT)?;
                if !ready.writable {
                    return Err(sys::Errno::ETIMEDOUT);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Who answered a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The child's number, from `child N (pid P): ...`.
    pub child: usize,
    pub pid: u32,
}

impl Answer {
    /// Read `child 2 (pid 4711): hello 1`.
    fn parse(reply: &str) -> Option<Answer> {
        let rest = reply.strip_prefix("child ")?;
        let (child, rest) = rest.split_once(" (pid ")?;
        let (pid, _) = rest.split_once("):")?;
        Some(Answer {
            child: child.parse().ok()?,
            pid: pid.parse().ok()?,
        })
    }
}

/// One client connection, with a time limit on every step.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connect to `addr` (at most [`WAIT_LIMIT`] for the connect and for every read and write).
    pub fn connect(addr: SocketAddr) -> Result<Client, ModelError> {
        let stream = TcpStream::connect_timeout(&addr, WAIT_LIMIT)
            .map_err(|e| client_err(format!("connect to {addr}"), e))?;
        stream
            .set_read_timeout(Some(WAIT_LIMIT))
            .and_then(|()| stream.set_write_timeout(Some(WAIT_LIMIT)))
            .map_err(|e| client_err("set timeouts", e))?;
        Ok(Client { stream })
    }

    /// The socket, to `poll` it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Send one line (the `\n` is added).
    pub fn send_line(&mut self, line: &str) -> Result<(), ModelError> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| client_err("send", e))
    }

    /// Read one reply line (without its `\n`); an error if the server closed first.
    pub fn read_line(&mut self) -> Result<String, std::io::Error> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte)? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "end of file before a whole line",
                    ));
                }
                _ if byte[0] == b'\n' => return Ok(String::from_utf8_lossy(&line).into_owned()),
                _ => line.push(byte[0]),
            }
        }
    }

    /// Send `line` and read who answered it.
    pub fn ask(&mut self, line: &str) -> Result<(Answer, String), ModelError> {
        self.send_line(line)?;
        let reply = self.read_line().map_err(|e| client_err("read", e))?;
        let answer = Answer::parse(&reply)
            .ok_or_else(|| ModelError::Failed(format!("client: unexpected reply {reply:?}")))?;
        Ok((answer, reply))
    }

    /// End our side (`shutdown(SHUT_WR)`: the server reads end of file), then wait for the
    /// server to close its side.
    pub fn finish(mut self) -> Result<(), ModelError> {
        self.stream
            .shutdown(Shutdown::Write)
            .map_err(|e| client_err("shutdown", e))?;
        self.wait_for_close()
    }

    /// Read until the server closes (end of file), discarding anything else.
    pub fn wait_for_close(&mut self) -> Result<(), ModelError> {
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .map(|_| ())
            .map_err(|e| client_err("wait for the server to close", e))
    }
}

fn client_err(what: impl Into<String>, source: std::io::Error) -> ModelError {
    ModelError::Client {
        what: what.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_answer_line() {
        assert_eq!(
            Answer::parse("child 2 (pid 4711): hello 1"),
            Some(Answer {
                child: 2,
                pid: 4711
            })
        );
        assert_eq!(Answer::parse("bye"), None);
    }
}
