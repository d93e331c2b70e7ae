//! Node's socket errors, with Node's exact texts.
//!
//! Mirrors the two constructors in
//! [`lib/internal/errors.js`](https://github.com/nodejs/node/blob/v24.22.3/lib/internal/errors.js#L685)
//! that the listen path uses. They differ in a way a reader can see:
//!
//! * `UVExceptionWithHostPort` (line 683): `listen EADDRINUSE: address already in use 127.0.0.1:8000`
//!   — colon, then libuv's text. Used when *this* process's listen failed.
//! * `ExceptionWithHostPort` (line 759): `bind EADDRINUSE 127.0.0.1:8000` — no colon, no text.
//!   Used by a cluster worker when the *primary* reported the failure.
//!
//! Both carry `code`, `errno` (negative, as libuv reports it), `syscall`, `address`, `port`,
//! exactly the properties Node puts on the error object.

use crate::sys::Errno;
use serde_json::{Value, json};

/// Which of Node's two error constructors made the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `UVExceptionWithHostPort`: `syscall CODE: uv message address:port`.
    Uv,
    /// `ExceptionWithHostPort`: `syscall CODE address:port`.
    Plain,
}

/// A failed socket operation, as Node reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct NetError {
    shape: Shape,
    syscall: &'static str,
    errno: Errno,
    /// `None` is JavaScript's `null`: a `listen(port)` with no host, in a worker.
    address: Option<String>,
    /// `-1` for a pipe (a unix socket path), as Node has it.
    port: i32,
}

impl NetError {
    /// Print it as Node would show it, with the properties Node attaches to it.
    pub fn trace(&self) {
        let text = format!(
            "{self} (code {}, syscall {}, errno {})",
            self.code(),
            self.syscall(),
            self.errno()
        );
        crate::trace::error(&text, self.to_json());
    }

    /// `UVExceptionWithHostPort(err, syscall, address, port)`.
    pub fn uv(syscall: &'static str, errno: Errno, address: Option<&str>, port: u16) -> Self {
        Self::new(Shape::Uv, syscall, errno, address, i32::from(port))
    }

    /// `ExceptionWithHostPort(err, syscall, address, port)`.
    pub fn plain(syscall: &'static str, errno: Errno, address: Option<&str>, port: u16) -> Self {
        Self::new(Shape::Plain, syscall, errno, address, i32::from(port))
    }

    /// The same constructors for a pipe: the address is its path, the port `-1`, and the
    /// message names the path alone (`bind EADDRINUSE /dir/app.sock`).
    pub fn pipe(shape: Shape, syscall: &'static str, errno: Errno, path: &str) -> Self {
        Self::new(shape, syscall, errno, Some(path), -1)
    }

    fn new(
        shape: Shape,
        syscall: &'static str,
        errno: Errno,
        address: Option<&str>,
        port: i32,
    ) -> Self {
        Self {
            shape,
            syscall,
            errno,
            address: address.map(str::to_string),
            port,
        }
    }

    /// `err.code`: `EADDRINUSE`.
    pub fn code(&self) -> String {
        format!("{:?}", self.errno)
    }

    /// `err.errno`: negative, as libuv reports it (`-98` for EADDRINUSE on Linux).
    pub fn errno(&self) -> i32 {
        -(self.errno as i32)
    }

    /// The errno as a value.
    pub fn raw_errno(&self) -> Errno {
        self.errno
    }

    /// `err.syscall`: the label Node chose, which is not always the call that failed.
    pub fn syscall(&self) -> &'static str {
        self.syscall
    }

    /// `err.port` (`-1` for a pipe).
    pub fn port(&self) -> i32 {
        self.port
    }

    /// `err.address`, with JavaScript's `null` spelled out.
    pub fn address(&self) -> &str {
        self.address.as_deref().unwrap_or("null")
    }

    /// Which constructor made it.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The `message`, built the way the two constructors build it.
    pub fn message(&self) -> String {
        // Both constructors add ` address:port` when port > 0, else ` address` if there is one.
        let details = if self.port > 0 {
            format!(" {}:{}", self.address(), self.port)
        } else if let Some(a) = &self.address {
            format!(" {a}")
        } else {
            String::new()
        };
        match self.shape {
            Shape::Uv => format!(
                "{} {}: {}{details}",
                self.syscall,
                self.code(),
                uv_message(self.errno)
            ),
            Shape::Plain => format!("{} {}{details}", self.syscall, self.code()),
        }
    }

    /// The error as the `--json` output shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "message": self.message(),
            "code": self.code(),
            "syscall": self.syscall,
            "errno": self.errno(),
            "address": self.address,
            "port": self.port,
        })
    }
}

/// libuv's text for an errno (`uv_strerror`), from the `UV_ERRNO_MAP` table in `include/uv.h`.
/// Only the errors our listen paths can meet are listed; anything else falls back to the
/// C library's text in lower case, which is what libuv does for unknown codes on Linux.
pub(crate) fn uv_message(errno: Errno) -> String {
    let known = match errno {
        Errno::EADDRINUSE => "address already in use",
        Errno::EADDRNOTAVAIL => "address not available",
        Errno::EACCES => "permission denied",
        Errno::EINVAL => "invalid argument",
        Errno::ECONNREFUSED => "connection refused",
        Errno::ECONNRESET => "connection reset by peer",
        Errno::EAFNOSUPPORT => "address family not supported",
        Errno::EMFILE => "too many open files",
        Errno::ENOTSOCK => "socket operation on non-socket",
        Errno::EPIPE => "broken pipe",
        Errno::EAGAIN => "resource temporarily unavailable",
        Errno::ENOTCONN => "socket is not connected",
        Errno::EBADF => "bad file descriptor",
        _ => return errno.desc().to_lowercase(),
    };
    known.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_eaddrinuse_with_host() {
        let e = NetError::uv("listen", Errno::EADDRINUSE, Some("127.0.0.1"), 8000);
        assert_eq!(
            e.to_string(),
            "listen EADDRINUSE: address already in use 127.0.0.1:8000"
        );
        assert_eq!(e.code(), "EADDRINUSE");
        assert_eq!(e.syscall(), "listen");
        assert_eq!(e.errno(), -98);
    }

    #[test]
    fn listen_eaddrinuse_without_host_binds_ipv6_any() {
        let e = NetError::uv("listen", Errno::EADDRINUSE, Some("::"), 8000);
        assert_eq!(
            e.to_string(),
            "listen EADDRINUSE: address already in use :::8000"
        );
    }

    #[test]
    fn worker_bind_error_has_no_colon_and_no_text() {
        let e = NetError::plain("bind", Errno::EADDRINUSE, Some("127.0.0.1"), 8000);
        assert_eq!(e.to_string(), "bind EADDRINUSE 127.0.0.1:8000");
        assert_eq!(e.syscall(), "bind");
        assert_eq!(e.errno(), -98);
    }

    #[test]
    fn worker_bind_error_without_host_says_null() {
        let e = NetError::plain("bind", Errno::EADDRINUSE, None, 8000);
        assert_eq!(e.to_string(), "bind EADDRINUSE null:8000");
        assert_eq!(e.address(), "null");
    }

    #[test]
    fn port_zero_shows_only_the_address() {
        let e = NetError::plain("bind", Errno::EACCES, Some("0.0.0.0"), 0);
        assert_eq!(e.to_string(), "bind EACCES 0.0.0.0");
        let e = NetError::uv("listen", Errno::EADDRINUSE, None, 0);
        assert_eq!(e.to_string(), "listen EADDRINUSE: address already in use");
    }

    #[test]
    fn a_pipe_error_names_the_path_alone() {
        let e = NetError::pipe(Shape::Plain, "bind", Errno::EADDRINUSE, "/tmp/d/app.sock");
        assert_eq!(e.to_string(), "bind EADDRINUSE /tmp/d/app.sock");
        assert_eq!(e.to_json()["port"], -1);
    }

    #[test]
    fn json_carries_node_properties() {
        let e = NetError::uv("listen", Errno::EADDRINUSE, Some("127.0.0.1"), 8000);
        let j = e.to_json();
        assert_eq!(j["code"], "EADDRINUSE");
        assert_eq!(j["syscall"], "listen");
        assert_eq!(j["errno"], -98);
        assert_eq!(j["port"], 8000);
        assert_eq!(j["address"], "127.0.0.1");
    }
}
