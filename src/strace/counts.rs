//! Counting: per side of the cluster, how often each kind of socket call happened, with the
//! client's sockets told apart from the listening side's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::parse::{Call, parse, received_fds};
use super::processes::{Processes, Side, processes};

/// One row of the comparison: a kind of call, counted per side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    /// A child process that ran a program (`clone` without `CLONE_THREAD`, then `execve`).
    Fork,
    /// `socket(AF_INET...)` for anything but a client.
    Socket,
    /// `setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, [1])`.
    ReuseAddr,
    /// Every `bind`, failed or not.
    Bind,
    /// A `bind` or a `listen` that failed. The loser of an `exclusive` race fails at `bind`
    /// when the winner already listens, but at `listen` when both bound first (chapter 1's
    /// second `SO_REUSEADDR` case): which one is timing, so they are counted together.
    BindFailed,
    /// A `listen` that succeeded.
    Listen,
    /// `accept4`/`accept` that returned a connection.
    Accept,
    /// `sendmsg` with an `SCM_RIGHTS` control message: an fd handed to another process.
    FdSent,
    /// An fd that arrived in a `recvmsg`'s `SCM_RIGHTS`.
    FdReceived,
    /// A datagram read together with its sender's address (`recvmsg` or `recvfrom`).
    DatagramIn,
    /// Sockets that connected or sent a datagram somewhere: the client's, not counted above.
    ClientSocket,
}

impl CallKind {
    /// Every row, in the order of the table.
    pub const ALL: [CallKind; 11] = [
        CallKind::Fork,
        CallKind::Socket,
        CallKind::ReuseAddr,
        CallKind::Bind,
        CallKind::BindFailed,
        CallKind::Listen,
        CallKind::Accept,
        CallKind::FdSent,
        CallKind::FdReceived,
        CallKind::DatagramIn,
        CallKind::ClientSocket,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallKind::Fork => "fork + execve",
            CallKind::Socket => "socket (not a client's)",
            CallKind::ReuseAddr => "setsockopt SO_REUSEADDR",
            CallKind::Bind => "bind",
            CallKind::BindFailed => "bind or listen fails",
            CallKind::Listen => "listen (succeeded)",
            CallKind::Accept => "accept4: a connection",
            CallKind::FdSent => "sendmsg + SCM_RIGHTS",
            CallKind::FdReceived => "recvmsg + SCM_RIGHTS",
            CallKind::DatagramIn => "datagram received",
            CallKind::ClientSocket => "client sockets",
        }
    }
}

/// A socket as one process sees it.
struct Sock {
    pid: u32,
    /// Made by `socket()` here (not accepted, not received).
    created: bool,
    /// Connected, or sent a datagram to an address: the client's.
    client: bool,
}

/// Sockets by (process, fd); a reused fd number is a new socket.
#[derive(Default)]
struct Sockets {
    list: Vec<Sock>,
    by_fd: HashMap<(u32, i64), usize>,
}

impl Sockets {
    fn open(&mut self, pid: u32, fd: i64, created: bool) -> usize {
        self.list.push(Sock {
            pid,
            created,
            client: false,
        });
        self.by_fd.insert((pid, fd), self.list.len() - 1);
        self.list.len() - 1
    }

    /// The socket at `fd`; one we did not see made (inherited, say) is made up on the spot.
    fn at(&mut self, pid: u32, fd: Option<i64>) -> Option<usize> {
        let fd = fd?;
        match self.by_fd.get(&(pid, fd)) {
            Some(i) => Some(*i),
            None => Some(self.open(pid, fd, false)),
        }
    }

    fn mark_client(&mut self, id: Option<usize>) {
        if let Some(s) = id.and_then(|i| self.list.get_mut(i))
            && s.created
        {
            s.client = true;
        }
    }
}

/// What one run did: how often each kind of call happened on each side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    counts: BTreeMap<(Side, CallKind), u32>,
    /// The syscalls behind each count (`recvmsg` or `recvfrom` for a datagram, say).
    names: BTreeMap<(Side, CallKind), BTreeSet<String>>,
    /// `accept4` calls that found no connection (`EAGAIN`), per side.
    pub accept_eagain: BTreeMap<Side, u32>,
    /// Every process seen (not threads), to check that none outlived the run.
    pub pids: Vec<u32>,
    /// Threads per side, beyond each process's main thread.
    pub threads: BTreeMap<Side, u32>,
}

impl CallCounts {
    /// How many times `kind` happened in `side`.
    pub fn count(&self, side: Side, kind: CallKind) -> u32 {
        self.counts.get(&(side, kind)).copied().unwrap_or(0)
    }

    /// The kinds of call that happened at least once in `side`.
    pub fn present(&self, side: Side) -> BTreeSet<CallKind> {
        CallKind::ALL
            .into_iter()
            .filter(|k| self.count(side, *k) > 0)
            .collect()
    }

    /// The syscalls that made up `kind` in `side`, joined with `/`.
    pub fn syscalls(&self, side: Side, kind: CallKind) -> String {
        self.names
            .get(&(side, kind))
            .map(|n| n.iter().cloned().collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    pub(super) fn add(&mut self, side: Side, kind: CallKind, syscall: &str) {
        // Which of the two fails is timing (see `CallKind::BindFailed`), not a difference of flavour.
        let syscall = if kind == CallKind::BindFailed {
            "bind or listen"
        } else {
            syscall
        };
        *self.counts.entry((side, kind)).or_insert(0) += 1;
        self.names
            .entry((side, kind))
            .or_default()
            .insert(syscall.to_string());
    }
}

/// Whether the arguments hold an IPv4/IPv6 address (`{sa_family=AF_INET, ...}`).
fn has_inet_address(args: &str) -> bool {
    args.contains("{sa_family=AF_INET")
}

/// Read strace's whole output and count, per side, the calls of every [`CallKind`].
pub fn summarize(text: &str) -> CallCounts {
    let calls = parse(text);
    let procs = processes(&calls);
    let mut tally = Tally {
        procs: &procs,
        socks: Sockets::default(),
        seen: Vec::new(),
        out: CallCounts {
            pids: procs.pids(),
            ..CallCounts::default()
        },
    };
    for c in &calls {
        tally.call(c);
    }
    tally.finish()
}

/// The counting as it goes.
struct Tally<'a> {
    procs: &'a Processes,
    socks: Sockets,
    /// (side, kind, socket, syscall) of every call counted, kept until we know which sockets
    /// were clients.
    seen: Vec<(Side, CallKind, Option<usize>, &'a str)>,
    out: CallCounts,
}

impl<'a> Tally<'a> {
    /// One call: which kind it is, and on which socket.
    fn call(&mut self, c: &'a Call) {
        let pid = self.procs.process_of(c.tid);
        let Some(side) = self.procs.side(pid) else {
            return;
        };
        match c.name.as_str() {
            "socket" | "setsockopt" | "bind" | "listen" | "accept" | "accept4" => {
                self.listening_call(side, pid, c)
            }
            _ => self.traffic_call(side, pid, c),
        }
    }

    /// The calls that make a socket listen, and take connections from it.
    fn listening_call(&mut self, side: Side, pid: u32, c: &'a Call) {
        let (socks, seen) = (&mut self.socks, &mut self.seen);
        let mut see = |kind, sock| seen.push((side, kind, sock, c.name.as_str()));
        match c.name.as_str() {
            "socket" => {
                if let Some(fd) = c.ok() {
                    let id = socks.open(pid, fd, true);
                    if c.args.starts_with("AF_INET") {
                        see(CallKind::Socket, Some(id));
                    }
                }
            }
            "setsockopt" if c.args.contains("SOL_SOCKET, SO_REUSEADDR") => {
                see(CallKind::ReuseAddr, socks.at(pid, c.fd()));
            }
            "bind" => {
                let id = socks.at(pid, c.fd());
                see(CallKind::Bind, id);
                if c.result.is_err() {
                    see(CallKind::BindFailed, id);
                }
            }
            "listen" if c.result.is_err() => see(CallKind::BindFailed, socks.at(pid, c.fd())),
            "listen" => see(CallKind::Listen, socks.at(pid, c.fd())),
            "accept" | "accept4" => match &c.result {
                Ok(conn) => {
                    see(CallKind::Accept, socks.at(pid, c.fd()));
                    socks.open(pid, *conn, false);
                }
                Err(e) if e == "EAGAIN" => *self.out.accept_eagain.entry(side).or_insert(0) += 1,
                Err(_) => {}
            },
            _ => {}
        }
    }

    /// The calls that carry something: fds between processes, datagrams, and the client's
    /// connects and sends (which make its sockets clients').
    fn traffic_call(&mut self, side: Side, pid: u32, c: &'a Call) {
        let (socks, seen) = (&mut self.socks, &mut self.seen);
        let mut see = |kind, sock| seen.push((side, kind, sock, c.name.as_str()));
        let to_an_address = c.args.contains("msg_name={sa_family=AF_INET");
        match c.name.as_str() {
            "connect" | "sendto" if has_inet_address(&c.args) => {
                let id = socks.at(pid, c.fd());
                socks.mark_client(id);
            }
            "sendmsg" => {
                if c.args.contains("SCM_RIGHTS") && c.ok().is_some() {
                    see(CallKind::FdSent, None);
                }
                if to_an_address {
                    let id = socks.at(pid, c.fd());
                    socks.mark_client(id);
                }
            }
            "recvmsg" if c.ok().is_some_and(|n| n > 0) => {
                for fd in received_fds(&c.args) {
                    socks.open(pid, fd, false);
                    see(CallKind::FdReceived, None);
                }
                if to_an_address {
                    see(CallKind::DatagramIn, socks.at(pid, c.fd()));
                }
            }
            "recvfrom" if c.ok().is_some_and(|n| n > 0) && has_inet_address(&c.args) => {
                see(CallKind::DatagramIn, socks.at(pid, c.fd()));
            }
            _ => {}
        }
    }

    /// Every call seen but the clients', a row for the client sockets, then the forks and
    /// the threads.
    fn finish(mut self) -> CallCounts {
        let procs = self.procs;
        for (side, kind, sock, name) in std::mem::take(&mut self.seen) {
            if !sock.is_some_and(|i| self.socks.list[i].client) {
                self.out.add(side, kind, name);
            }
        }
        for s in self.socks.list.iter().filter(|s| s.client) {
            if let Some(side) = procs.side(s.pid) {
                self.out.add(side, CallKind::ClientSocket, "socket");
            }
        }
        for pid in procs.pids() {
            let (Some(parent), Some(_)) = (procs.parent(pid), procs.program(pid)) else {
                continue;
            };
            if let (Some(side), Some(how)) = (procs.side(parent), procs.made_with(pid)) {
                self.out.add(side, CallKind::Fork, how);
            }
        }
        for maker in procs.thread_makers() {
            if let Some(side) = procs.side(procs.process_of(maker)) {
                *self.out.threads.entry(side).or_insert(0) += 1;
            }
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strace::fixtures::NODE_RR;

    #[test]
    fn a_child_that_never_runs_a_program_is_not_a_worker() {
        let text = "10 clone(child_stack=NULL, flags=SIGCHLD) = 11\n\
                    11 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3\n\
                    11 bind(3, {sa_family=AF_INET, sin_port=htons(0)}, 16) = 0\n";
        let s = summarize(text);
        assert_eq!(s.count(Side::Workers, CallKind::Bind), 0);
        assert_eq!(s.count(Side::Primary, CallKind::Fork), 0);
        assert_eq!(s.pids, vec![10, 11]);
    }

    #[test]
    fn round_robin_counts_and_the_client_socket_apart() {
        let s = summarize(NODE_RR);
        let p = Side::Primary;
        assert_eq!(s.count(p, CallKind::Fork), 2);
        assert_eq!(s.syscalls(p, CallKind::Fork), "clone");
        assert_eq!(
            s.count(p, CallKind::Socket),
            1,
            "the client's socket is not counted"
        );
        assert_eq!(s.count(p, CallKind::ReuseAddr), 1);
        assert_eq!(s.count(p, CallKind::Bind), 1);
        assert_eq!(s.count(p, CallKind::Listen), 1);
        assert_eq!(s.count(p, CallKind::Accept), 1);
        assert_eq!(s.count(p, CallKind::FdSent), 1);
        assert_eq!(s.count(p, CallKind::ClientSocket), 1);
        assert_eq!(s.count(Side::Workers, CallKind::FdReceived), 1);
        // Thread 301's listen belongs to worker process 300.
        assert_eq!(s.count(Side::Workers, CallKind::Listen), 1);
        assert_eq!(s.threads.get(&Side::Primary), Some(&1));
        assert_eq!(s.threads.get(&Side::Workers), Some(&1));
        assert!(
            s.accept_eagain.is_empty(),
            "thread 101's EAGAIN was a recvmsg"
        );
    }

    #[test]
    fn udp_client_sockets_are_told_apart_from_the_shared_one() {
        let text = r#"1 clone(child_stack=NULL, flags=SIGCHLD) = 2
2 execve("/bin/w", ["w"], 0x1 /* 1 vars */) = 0
1 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 4
1 bind(4, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
1 sendmsg(3, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgr"..., iov_len=141}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[4]}], msg_controllen=24, msg_flags=0}, MSG_NOSIGNAL) = 141
2 recvmsg(3, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgr"..., iov_len=65536}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[4]}], msg_controllen=24, msg_flags=MSG_CMSG_CLOEXEC}, MSG_CMSG_CLOEXEC) = 141
2 setsockopt(4, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
1 socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC, IPPROTO_IP) = 6
1 bind(6, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
1 sendto(6, "ping", 4, MSG_NOSIGNAL, {sa_family=AF_INET, sin_port=htons(53203), sin_addr=inet_addr("127.0.0.1")}, 16) = 4
2 recvfrom(4, "ping", 512, 0, {sa_family=AF_INET, sin_port=htons(38156), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 4
2 sendto(4, "worker 1\n", 9, 0, {sa_family=AF_INET, sin_port=htons(38156), sin_addr=inet_addr("127.0.0.1")}, 16) = 9
2 recvfrom(4, 0x7ffe, 512, 0, 0x7ffe, [128]) = -1 EAGAIN (Resource temporarily unavailable)
1 recvfrom(6, "worker 1\n", 256, 0, {sa_family=AF_INET, sin_port=htons(53203), sin_addr=inet_addr("127.0.0.1")}, [128 => 16]) = 9
1 sendto(3, "{\"cmd\":\"NODE_CLUSTER\",\"act\":\"dis"..., 50, MSG_NOSIGNAL, NULL, 0) = 50
"#;
        let s = summarize(text);
        let (p, w) = (Side::Primary, Side::Workers);
        assert_eq!(s.count(p, CallKind::Socket), 1);
        assert_eq!(
            s.count(p, CallKind::Bind),
            1,
            "the client's bind is its own row"
        );
        assert_eq!(s.count(p, CallKind::ReuseAddr), 0);
        assert_eq!(s.count(p, CallKind::FdSent), 1);
        assert_eq!(
            s.count(p, CallKind::DatagramIn),
            0,
            "the answer came to the client"
        );
        assert_eq!(s.count(p, CallKind::ClientSocket), 1);
        assert_eq!(s.count(w, CallKind::FdReceived), 1);
        assert_eq!(s.count(w, CallKind::ReuseAddr), 1);
        assert_eq!(s.count(w, CallKind::DatagramIn), 1);
        assert_eq!(s.syscalls(w, CallKind::DatagramIn), "recvfrom");
        assert_eq!(
            s.count(w, CallKind::ClientSocket),
            0,
            "replying does not make a client"
        );
    }

    #[test]
    fn a_failed_bind_counts_twice_and_eagain_is_kept_apart() {
        let text = "5 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3\n\
                    5 bind(3, {sa_family=AF_INET, sin_port=htons(8000)}, 16) = -1 EADDRINUSE (Address already in use)\n\
                    5 accept4(9, NULL, NULL, SOCK_CLOEXEC) = -1 EAGAIN (Resource temporarily unavailable)\n";
        let s = summarize(text);
        assert_eq!(s.count(Side::Primary, CallKind::Bind), 1);
        assert_eq!(s.count(Side::Primary, CallKind::BindFailed), 1);
        assert_eq!(s.count(Side::Primary, CallKind::Accept), 0);
        assert_eq!(s.accept_eagain.get(&Side::Primary), Some(&1));
    }
}
