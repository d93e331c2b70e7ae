//! The tiniest HTTP a worker needs: answer any request with a body that names the worker, so
//! that any client (`curl`, a browser, our own) shows who answered.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::sys::Errno;

use crate::sys;

/// The response body: `worker 2 (pid 1234)`.
pub fn body(worker: u32, pid: u32) -> String {
    format!("worker {worker} (pid {pid})\n")
}

/// A whole response, `Connection: close`.
pub fn response(worker: u32, pid: u32) -> Vec<u8> {
    let body = body(worker, pid);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Which worker a response (or UDP reply) names, if any.
pub fn answered_by(text: &str) -> Option<u32> {
    who_answered(text).and_then(|a| a.worker())
}

/// The longest text shown for an answer that names no worker nor pid.
pub const ANSWER_TEXT: usize = 60;

/// Who answered a request, as far as the answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It says `worker N` (ours do, and `tests/node/http-worker.js`).
    Worker(u32),
    /// It names a pid (`pid 1234`, `"pid":1234`): the lab turns it into a worker when it
    /// knows that pid.
    Pid(u32),
    /// Neither: the body's first line (the status line if the body is empty), cut to
    /// [`ANSWER_TEXT`] characters.
    Text(String),
}

impl Answer {
    /// The worker it names, if it names one.
    pub fn worker(&self) -> Option<u32> {
        match self {
            Answer::Worker(id) => Some(*id),
            _ => None,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Worker(id) => write!(f, "worker {id}"),
            Answer::Pid(pid) => write!(f, "pid {pid}"),
            Answer::Text(text) => write!(f, "{text:?}"),
        }
    }
}

// ANCHOR: who_answered
/// Who answered, read from a whole HTTP response or a UDP reply: `worker N` anywhere, else
/// a pid in the body, else the body's first line. `None` for no answer at all.
pub fn who_answered(text: &str) -> Option<Answer> {
    if text.is_empty() {
        return None;
    }
    if let Some(id) = number_after(text, "worker ") {
        return Some(Answer::Worker(id));
    }
    let (status, body) = match text.starts_with("HTTP/") {
        true => text.split_once("\r\n\r\n").unwrap_or((text, "")),
        false => ("", text),
    };
    if let Some(pid) = pid_in(body) {
        return Some(Answer::Pid(pid));
    }
    // A chunked body's size lines (hexadecimal) are not what the server said.
    let chunked = status.to_ascii_lowercase().contains("chunked");
    let size_line = |l: &str| chunked && u64::from_str_radix(l, 16).is_ok();
    let first = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !size_line(l));
    let line = first.unwrap_or_else(|| status.lines().next().unwrap_or_default());
    Some(Answer::Text(line.chars().take(ANSWER_TEXT).collect()))
}
// ANCHOR_END: who_answered

/// The number right after the first `word` in `text`.
fn number_after(text: &str, word: &str) -> Option<u32> {
    let at = text.find(word)?;
    let digits: String = text[at + word.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A pid in `text`: `pid` (any case), then spaces, quotes, `:` or `=`, then the number.
fn pid_in(text: &str) -> Option<u32> {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("pid").find_map(|(at, _)| {
        let rest = lower[at + 3..].trim_start_matches([' ', '"', ':', '=']);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// One server-side connection being served: read the request, answer, close.
#[derive(Debug)]
pub struct Conn {
    pub fd: OwnedFd,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            buf: Vec::new(),
        }
    }

    /// Read what is there. True once the request is complete (or the client stopped
    /// sending, or the connection broke): time to [`Conn::respond`].
    pub fn on_readable(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match sys::read(self.fd.as_fd(), &mut chunk) {
                Ok(0) => return true,
                // The whole request in one read (the usual case): nothing to keep.
                Ok(n) if self.buf.is_empty() && ends_headers(&chunk[..n]) => return true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if ends_headers(&self.buf) || self.buf.len() > 16 * 1024 {
                        return true;
                    }
                }
                Err(Errno::EAGAIN) => return false,
                Err(_) => return true,
            }
        }
    }

    /// Write the response; the connection is done (drop it to close).
    pub fn respond(&mut self, worker: u32, pid: u32) {
        self.respond_with(&response(worker, pid));
    }

    /// Write a response rendered beforehand (a server answers the same each time), then
    /// end our side at once, as Node's `socket.end()` does (`shutdown(SHUT_WR)`): under round
    /// robin the primary still holds a copy of this socket until it reads our `{accepted}`,
    /// and without the shutdown the client's end of file would wait for that copy's close.
    pub fn respond_with(&mut self, response: &[u8]) {
        let _ = sys::write(self.fd.as_fd(), response);
        let _ = sys::shutdown_write(self.fd.as_fd());
    }
}

/// Whether `bytes` hold the blank line that ends a request's headers.
fn ends_headers(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n")
}

/// A client request, made blocking with time limits: connect, send `GET /`, read to EOF.
pub fn get(addr: SocketAddr, limit: Duration) -> Result<String, std::io::Error> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Start a request over a unix socket (Node's spelling of the name: a path, or `\0name`;
/// `pad` as [`sys::UnixName`] says) without waiting for the answer.
pub fn start_get_unix(
    path: &str,
    pad: bool,
    limit: Duration,
) -> Result<std::os::unix::net::UnixStream, std::io::Error> {
    use std::io::Write;
    let name = sys::UnixName::from_node(path);
    let fd = sys::connect_unix_with_limit(&name, pad, limit)?;
    let mut s = std::os::unix::net::UnixStream::from(fd);
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Start a request without waiting for the answer (the primary's event loop waits).
pub fn start_get(addr: SocketAddr, limit: Duration) -> Result<std::net::TcpStream, std::io::Error> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit)?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn who_answered_says_a_worker_a_pid_or_the_first_line() {
        assert_eq!(
            who_answered(&http("worker 3 (pid 77)\n")),
            Some(Answer::Worker(3))
        );
        assert_eq!(
            who_answered(&http("{\"pid\":4242}")),
            Some(Answer::Pid(4242))
        );
        assert_eq!(
            who_answered(&http("served by PID 17")),
            Some(Answer::Pid(17))
        );
        let hello = who_answered(&http("\nHello, World!\nmore"));
        assert_eq!(hello, Some(Answer::Text("Hello, World!".into())));
        let empty = "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n";
        assert_eq!(
            who_answered(empty),
            Some(Answer::Text("HTTP/1.1 204 No Content".into()))
        );
        let long = who_answered(&http(&"z".repeat(500)));
        assert_eq!(long, Some(Answer::Text("z".repeat(ANSWER_TEXT))));
        assert_eq!(who_answered(""), None);
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nHello, World!\r\n0\r\n\r\n";
        assert_eq!(
            who_answered(chunked),
            Some(Answer::Text("Hello, World!".into()))
        );
        assert_eq!(answered_by("worker 2 (pid 9)\n"), Some(2), "a UDP reply");
    }
}
