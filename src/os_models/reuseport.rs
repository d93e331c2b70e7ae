//! Model 3, `SO_REUSEPORT`: one listening socket *per child*, all bound to the same port.
//!
//! Each child makes its own socket, sets `SO_REUSEADDR` and `SO_REUSEPORT`, binds the port
//! and listens. Linux puts sockets that share a port this way (same user, all with the
//! option) into one group. For each new connection it picks one socket of the group by a
//! hash of the connection's addresses and ports, and queues the connection there. No
//! process accepts on behalf of another, and nothing is shared after `bind`.
//!
//! Node ≥ 22.12 offers this as `server.listen({port, reusePort: true})`: that option also
//! makes the listen exclusive, so each cluster worker binds its own socket and the primary
//! is not involved (nodejs/node PR #55408; it needs libuv ≥ 1.49). Node v20, the version
//! this book mirrors, silently ignores the option.
//!
//! What it gives up is shown by [`dead_child`]: a connection is assigned to a socket when
//! it arrives, not when someone is free to accept it. A child that is busy keeps its queue
//! waiting while the others are idle, and when it dies, the connections in its queue are
//! reset.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Instant;

use crate::sys::Signal;

use super::children::{Children, Turn};
use super::echo::Client;
use super::{ModelError, Split, WAIT_LIMIT, accept_loop, listen_socket, sequential_clients};
use crate::loopback::LOOPBACK;
use crate::sys;
use crate::trace;

// ANCHOR: reuseport
/// Fork `workers` children that each bind their own `SO_REUSEPORT` socket on `port`, make
/// `connections` connections, then stop the children.
pub fn run(port: u16, workers: usize, connections: usize) -> Result<Split, ModelError> {
    let addr = SocketAddr::new(LOOPBACK, port);
    trace::set_label("parent");
    trace::note("no socket in the parent: each child makes its own");
    let mut children = Children::new();
    for n in 1..=workers {
        children.fork(n, |turn| reuseport_child(addr, n, turn))?;
    }
    let split = sequential_clients(addr, 1, connections, workers)?;
    trace::set_label("parent");
    children.stop_all()?;
    Ok(split)
}

/// A child: its own socket in the port's group, then the same accept loop as pre-fork.
fn reuseport_child(addr: SocketAddr, n: usize, turn: Turn) -> i32 {
    let listener = match listen_socket(addr, true) {
        Ok(listener) => listener,
        Err(e) => {
            trace::problem(&e.to_string());
            return 1;
        }
    };
    trace::ok(&format!("listening on {addr} with a socket of its own"));
    turn.ready();
    accept_loop(listener.as_fd(), n)
}
// ANCHOR_END: reuseport

/// What happened when a child died with connections in its queue.
#[derive(Debug, Clone, Default)]
pub struct DeadChild {
    /// Connections the other children answered while the victim was stopped.
    pub answered_meanwhile: usize,
    /// Connections that sat in the victim's queue and were reset when it died.
    pub reset: usize,
    /// Connections that sat in the victim's queue but were answered after all (only when
    /// the kernel migrates them: `net.ipv4.tcp_migrate_req = 1`).
    pub answered_late: usize,
    /// The connections made after the victim died.
    pub after: Split,
}

// ANCHOR: dead_child
/// Stop child `victim` (`SIGSTOP`), connect until `held` connections wait in its queue,
/// kill it, and see what becomes of them; then connect `after` more times.
pub fn dead_child(
    port: u16,
    workers: usize,
    victim: usize,
    held: usize,
    after: usize,
) -> Result<DeadChild, ModelError> {
    let addr = SocketAddr::new(LOOPBACK, port);
    let (mut children, queue) = fork_and_stop(addr, workers, victim)?;
    let mut out = DeadChild::default();
    let waiting = fill_queue(addr, &queue, victim, held, &mut out)?;
    let next = waiting.last().map_or(1, |(i, _)| i + 1);

    trace::set_label("parent");
    trace::note(&format!("child {victim} dies; {}", migrate_req_note()));
    children.signal(victim, Signal::SIGKILL)?;
    children.reap(victim)?;

    read_late_answers(waiting, &mut out);
    out.after = sequential_clients(addr, next, after, workers)?;
    if out.after.count(victim) == 0 {
        trace::step(&format!(
            "child {victim} answered none: the group has {} sockets now",
            workers - 1
        ));
    }
    trace::set_label("parent");
    children.stop_all()?;
    Ok(out)
}
// ANCHOR_END: dead_child

/// `workers` fresh children on one `SO_REUSEPORT` port, quiet; child `victim` stopped
/// (`SIGSTOP`) with its socket still in the group. Returns them and the victim's accept queue.
fn fork_and_stop(
    addr: SocketAddr,
    workers: usize,
    victim: usize,
) -> Result<(Children, AcceptQueue), ModelError> {
    trace::set_label("parent");
    trace::step(&format!(
        "{workers} fresh children, each with its own SO_REUSEPORT socket (quiet this time)"
    ));
    let mut children = Children::new();
    for n in 1..=workers {
        children.fork(n, |turn| {
            trace::init(trace::Format::Off, false, false);
            reuseport_child(addr, n, turn)
        })?;
    }
    let pid = children.pid(victim).expect("just forked");
    let queue = AcceptQueue::of(pid, addr.port())?;
    trace::note(&format!(
        "child {victim} stops, as if busy with a long request: its socket stays in the group"
    ));
    children.signal(victim, Signal::SIGSTOP)?;
    // `kill` only queues the signal: connect before the child has stopped, and it might
    // accept one more connection and stop before answering it.
    if !sys::wait_until_stopped(pid, WAIT_LIMIT).map_err(|e| ModelError::sys("waitpid", e))? {
        return Err(ModelError::Failed(format!("child {victim} did not stop")));
    }
    Ok((children, queue))
}

/// What became of the connections that waited in the dead child's queue: answered after all
/// (by another child), or reset.
fn read_late_answers(waiting: Vec<(usize, Client)>, out: &mut DeadChild) {
    trace::set_label("client");
    for (i, mut client) in waiting {
        match client.read_line() {
            Ok(reply) => {
                out.answered_late += 1;
                trace::ok(&format!("connection {i} answered after all: {reply:?}"));
            }
            Err(e) => {
                out.reset += 1;
                trace::problem(&format!("connection {i}: {e}"));
            }
        }
    }
}

/// Connect (and send a line) until `held` connections wait in the stopped child's queue.
/// The others are answered by the running children; they are counted, not printed, since
/// how many there are is the hash's choice.
fn fill_queue(
    addr: SocketAddr,
    queue: &AcceptQueue,
    victim: usize,
    held: usize,
    out: &mut DeadChild,
) -> Result<Vec<(usize, Client)>, ModelError> {
    trace::set_label("client");
    trace::step(&format!(
        "connects until {held} connections wait in child {victim}'s accept queue"
    ));
    let mut waiting = Vec::new();
    for i in 1..=200 {
        let mut client = Client::connect(addr)?;
        client.send_line(&format!("hello {i}"))?;
        match fate(&client, queue, waiting.len())? {
            Fate::Answered => {
                client.read_line().map_err(|e| ModelError::Client {
                    what: "read".into(),
                    source: e,
                })?;
                client.finish()?;
                out.answered_meanwhile += 1;
            }
            Fate::Queued(len) => {
                trace::step(&format!(
                    "connection {i}: no answer; child {victim}'s accept queue holds {len}"
                ));
                waiting.push((i, client));
                if waiting.len() == held {
                    trace::step(&format!(
                        "meanwhile, connections answered by the other children: {}",
                        out.answered_meanwhile
                    ));
                    return Ok(waiting);
                }
            }
        }
    }
    Err(ModelError::Failed(format!(
        "200 connections and fewer than {held} went to child {victim}'s socket"
    )))
}

/// Where a new connection went.
enum Fate {
    /// A running child answered it.
    Answered,
    /// It sits in the stopped child's accept queue, which now holds this many.
    Queued(usize),
}

/// Wait until the connection is either answered or seen in the stopped child's queue.
fn fate(client: &Client, queue: &AcceptQueue, before: usize) -> Result<Fate, ModelError> {
    let deadline = Instant::now() + WAIT_LIMIT;
    while Instant::now() < deadline {
        let ready = sys::wait_one(client.fd(), false, std::time::Duration::from_millis(5))
            .map_err(|e| ModelError::sys("epoll_pwait", e))?;
        if ready.readable {
            return Ok(Fate::Answered);
        }
        let len = queue.len()?;
        if len > before {
            return Ok(Fate::Queued(len));
        }
    }
    Err(ModelError::Failed(format!(
        "a connection was neither answered nor queued within {WAIT_LIMIT:?}"
    )))
}

/// One listening socket's accept queue, read from `/proc/net/tcp`: for a socket in the
/// LISTEN state, the `rx_queue` column is the number of connections waiting to be
/// accepted (what `ss -lnt` shows as `Recv-Q`).
struct AcceptQueue {
    /// The socket's inode: the number in `/proc/PID/fd/N -> socket:[inode]`.
    inode: u64,
}

impl AcceptQueue {
    /// The listening socket on `port` that process `pid` holds.
    fn of(pid: u32, port: u16) -> Result<AcceptQueue, ModelError> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| proc_err(format!("/proc/{pid}/fd"), e))?;
        let inodes: HashSet<u64> = fds
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|t| {
                let t = t.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
            })
            .collect();
        listeners(port)?
            .into_iter()
            .find(|row| inodes.contains(&row.inode))
            .map(|row| AcceptQueue { inode: row.inode })
            .ok_or_else(|| {
                ModelError::Failed(format!("process {pid} has no socket listening on {port}"))
            })
    }

    /// How many connections wait in the queue now.
    fn len(&self) -> Result<usize, ModelError> {
        let tcp = std::fs::read_to_string("/proc/net/tcp")
            .map_err(|e| proc_err("/proc/net/tcp".into(), e))?;
        Ok(tcp
            .lines()
            .filter_map(Row::parse)
            .find(|row| row.inode == self.inode)
            .map_or(0, |row| row.rx_queue))
    }
}

/// A row of `/proc/net/tcp`, the columns we need.
struct Row {
    port: u16,
    listening: bool,
    rx_queue: usize,
    inode: u64,
}

impl Row {
    /// `sl local_address rem_address st tx_queue:rx_queue tr:tm retrnsmt uid timeout inode ...`
    fn parse(line: &str) -> Option<Row> {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let port = u16::from_str_radix(cols.get(1)?.rsplit_once(':')?.1, 16).ok()?;
        let listening = *cols.get(3)? == "0A";
        let rx_queue = usize::from_str_radix(cols.get(4)?.split_once(':')?.1, 16).ok()?;
        let inode = cols.get(9)?.parse().ok()?;
        Some(Row {
            port,
            listening,
            rx_queue,
            inode,
        })
    }
}

/// The rows of sockets listening on `port`.
fn listeners(port: u16) -> Result<Vec<Row>, ModelError> {
    let tcp = std::fs::read_to_string("/proc/net/tcp")
        .map_err(|e| proc_err("/proc/net/tcp".into(), e))?;
    Ok(tcp
        .lines()
        .filter_map(Row::parse)
        .filter(|row| row.listening && row.port == port)
        .collect())
}

fn proc_err(what: String, e: std::io::Error) -> ModelError {
    ModelError::Failed(format!("cannot read {what}: {e}"))
}

/// What the kernel does with a dead socket's queue: `net.ipv4.tcp_migrate_req` (Linux
/// 5.14+) moves the connections to another socket of the group when it is 1.
pub fn migrate_req() -> Option<bool> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .ok()
        .map(|v| v.trim() == "1")
}

fn migrate_req_note() -> String {
    match migrate_req() {
        Some(false) => {
            "net.ipv4.tcp_migrate_req = 0: its queue is not moved to another socket".to_string()
        }
        Some(true) => {
            "net.ipv4.tcp_migrate_req = 1: the kernel moves its queue to another socket".to_string()
        }
        None => "this kernel has no net.ipv4.tcp_migrate_req: its queue is not moved".to_string(),
    }
}
