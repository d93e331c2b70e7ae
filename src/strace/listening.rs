//! A TCP socket's way to listening, read out of a trace: each `socket` and the `setsockopt`,
//! `bind` and `listen` calls made on its fd, with addresses written short as our own trace
//! writes them (`127.0.0.1:8000`). Chapter 1 prints real Node's calls this way, next to the
//! mirror's.

use super::parse::{Call, parse};

/// One `socket`, `setsockopt`, `bind` or `listen` of a TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketCall {
    pub name: String,
    /// Its arguments as strace wrote them, a socket address written short.
    pub args: String,
    /// The socket's fd (for `socket`, the one it returned).
    pub fd: i64,
    /// What it returned, or its errno's name and strace's words for it.
    pub result: Result<i64, (String, String)>,
}

impl SocketCall {
    fn from(call: &Call, fd: i64) -> SocketCall {
        let result = match &call.result {
            Ok(n) => Ok(*n),
            Err(errno) => Err((errno.clone(), call.desc.clone().unwrap_or_default())),
        };
        SocketCall {
            name: call.name.clone(),
            args: short_addresses(&call.args),
            fd,
            result,
        }
    }
}

/// Every TCP socket's calls on its way to listening, in the order they finished: a
/// `socket(AF_INET..., SOCK_STREAM...)` (or `AF_INET6`), then the `setsockopt`, `bind` and
/// `listen` on the fd it returned, until another `socket` returns that number again.
pub fn listen_calls(text: &str) -> Vec<SocketCall> {
    let mut tcp: Vec<i64> = Vec::new();
    let mut out = Vec::new();
    for call in parse(text) {
        match call.name.as_str() {
            "socket" => {
                let Ok(fd) = call.result else { continue };
                tcp.retain(|f| *f != fd);
                if call.args.starts_with("AF_INET") && call.args.contains("SOCK_STREAM") {
                    tcp.push(fd);
                    out.push(SocketCall::from(&call, fd));
                }
            }
            "setsockopt" | "bind" | "listen" => {
                if let Some(fd) = call.fd().filter(|fd| tcp.contains(fd)) {
                    out.push(SocketCall::from(&call, fd));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `calls[at]` is a failed `bind` that no `listen` on its socket follows.
pub fn bind_failed_alone(calls: &[SocketCall], at: usize) -> bool {
    let Some(bind) = calls.get(at) else {
        return false;
    };
    if bind.name != "bind" || bind.result.is_ok() {
        return false;
    }
    let same_socket = calls[at + 1..]
        .iter()
        .take_while(|c| !(c.name == "socket" && c.fd == bind.fd));
    !same_socket
        .filter(|c| c.fd == bind.fd)
        .any(|c| c.name == "listen")
}

/// strace's socket addresses written as our trace writes them:
/// `{sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("127.0.0.1")}` becomes
/// `127.0.0.1:8000`, an IPv6 one `[::1]:8000`. Anything else is left as it is.
pub fn short_addresses(args: &str) -> String {
    let mut out = String::with_capacity(args.len());
    let mut rest = args;
    while let Some(at) = rest.find("{sa_family=AF_INET") {
        let Some(len) = rest[at..].find('}') else {
            break;
        };
        let sockaddr = &rest[at..at + len + 1];
        out.push_str(&rest[..at]);
        out.push_str(&short_address(sockaddr).unwrap_or_else(|| sockaddr.to_string()));
        rest = &rest[at + len + 1..];
    }
    out.push_str(rest);
    out
}

/// One `{sa_family=AF_INET...}` as `address:port`.
fn short_address(sockaddr: &str) -> Option<String> {
    let between = |open: &str, close: &str| -> Option<&str> {
        let from = sockaddr.find(open)? + open.len();
        let len = sockaddr[from..].find(close)?;
        Some(&sockaddr[from..from + len])
    };
    let port: u16 = between("_port=htons(", ")")?.parse().ok()?;
    if sockaddr.starts_with("{sa_family=AF_INET6") {
        Some(format!(
            "[{}]:{port}",
            between("inet_pton(AF_INET6, \"", "\"")?
        ))
    } else {
        Some(format!("{}:{port}", between("inet_addr(\"", "\"")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 24 listening twice on one port, as `strace -f` wrote it (other calls between).
    const TWICE: &str = "\
7600  execve(\"/usr/bin/node\", [\"node\", \"listen-twice.js\"], 0x7ffe7ed61280 /* 39 vars */) = 0
7600  socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 20
7600  bind(20, {sa_family=AF_UNIX, sun_path=\"/tmp/x\"}, 110) = 0
7600  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 22
7600  setsockopt(22, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
7600  bind(22, {sa_family=AF_INET, sin_port=htons(41234), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = 0
7600  listen(22, 511)                   = 0
7601  clone3({flags=CLONE_VM|CLONE_THREAD}, 88) = 7602
7600  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 23
7600  setsockopt(23, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
7600  bind(23, {sa_family=AF_INET, sin_port=htons(41234), sin_addr=inet_addr(\"127.0.0.1\")}, 16) = -1 EADDRINUSE (Address already in use)
";

    #[test]
    fn the_tcp_sockets_calls_with_short_addresses() {
        let calls = listen_calls(TWICE);
        let shown: Vec<(&str, &str, i64)> = calls
            .iter()
            .map(|c| (c.name.as_str(), c.args.as_str(), c.fd))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "socket",
                    "AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP",
                    22
                ),
                ("setsockopt", "22, SOL_SOCKET, SO_REUSEADDR, [1], 4", 22),
                ("bind", "22, 127.0.0.1:41234, 16", 22),
                ("listen", "22, 511", 22),
                (
                    "socket",
                    "AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP",
                    23
                ),
                ("setsockopt", "23, SOL_SOCKET, SO_REUSEADDR, [1], 4", 23),
                ("bind", "23, 127.0.0.1:41234, 16", 23),
            ]
        );
        assert_eq!(calls[0].result, Ok(22));
        assert_eq!(
            calls[6].result,
            Err(("EADDRINUSE".into(), "Address already in use".into()))
        );
        assert!(bind_failed_alone(&calls, 6));
        assert!(!bind_failed_alone(&calls, 2), "a bind that worked");
        assert!(!bind_failed_alone(&calls, 3), "not a bind");
    }

    #[test]
    fn a_listen_on_the_same_socket_counts_and_one_on_a_reused_number_does_not() {
        let then = |more: &str| format!("{TWICE}{more}");
        let listened = listen_calls(&then("7600  listen(23, 511) = -1 EADDRINUSE (x)\n"));
        assert!(!bind_failed_alone(&listened, 6));
        let reused = listen_calls(&then(
            "7600  socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 23\n7600  listen(23, 511) = 0\n",
        ));
        assert!(bind_failed_alone(&reused, 6));
    }

    #[test]
    fn ipv6_and_unknown_addresses() {
        let v6 = "3, {sa_family=AF_INET6, sin6_port=htons(8000), sin6_flowinfo=htonl(0), \
                  inet_pton(AF_INET6, \"::1\", &sin6_addr), sin6_scope_id=0}, 28";
        assert_eq!(short_addresses(v6), "3, [::1]:8000, 28");
        let odd = "3, {sa_family=AF_INET, sin_port=htons(x)}, 16";
        assert_eq!(short_addresses(odd), odd);
    }
}
