//! The referee: run a program under `strace -f`, read what it wrote, and count who made which
//! socket call. Chapter 10 and `tests/strace_compare.rs` use it to put real Node v20 and our
//! mirror side by side, scenario by scenario (see [`scenarios`]).
//!
//! Nothing here mirrors Node. The reading is pure (text in, counts out: [`parse`],
//! [`processes`], [`summarize`], [`table`]) and unit-tested on strace's own lines; [`run`] is
//! the one part that starts processes.
//!
//! How strace's output is read:
//! - With `-f` each line starts with the *thread* id: `1234 bind(...)` when it writes to a file
//!   (`-o`), `[pid 1234] bind(...)` on stderr, and nothing at all for the first process while it
//!   is alone.
//! - A Node process has several threads. A `clone`/`clone3` whose flags hold `CLONE_THREAD`
//!   makes a thread of the caller's process; one without it makes a new process; `execve` says
//!   which program a process runs.
//! - A call cut off by another thread's line comes in two halves, `... <unfinished ...>` and
//!   `<... name resumed> ...`; [`parse`] joins them.
//!
//! Roles: the first process is the **primary**; a process it forked that then ran a program
//! (`execve`) is a **worker**; anything else is ignored. The workers are counted together,
//! because under SCHED_NONE and UDP which worker gets a connection is the kernel's choice.
//!
//! Both primaries are also the *client* (the lab's client lives in the primary process, and the
//! Node scripts make their requests from the primary too). A socket that the process itself
//! created and then used to `connect` or to send a datagram to an address is a client socket:
//! its calls are left out of the listening-side rows and counted on a row of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::helper::{self, Capture, HelperError};
use crate::sys;

/// The system calls we ask strace for (`-e trace=...`).
pub const SYSCALLS: &str = "socket,bind,listen,accept,accept4,connect,setsockopt,\
                            sendmsg,recvmsg,sendto,recvfrom,clone,clone3,fork,vfork,execve";

/// Which side of the cluster a process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Primary,
    /// All workers together.
    Workers,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Workers => "workers",
        }
    }
}

/// One row of the comparison: a kind of call, counted per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Row {
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

impl Row {
    /// Every row, in the order of the table.
    pub const ALL: [Row; 11] = [
        Row::Fork,
        Row::Socket,
        Row::ReuseAddr,
        Row::Bind,
        Row::BindFailed,
        Row::Listen,
        Row::Accept,
        Row::FdSent,
        Row::FdReceived,
        Row::DatagramIn,
        Row::ClientSocket,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Row::Fork => "fork + execve",
            Row::Socket => "socket (not a client's)",
            Row::ReuseAddr => "setsockopt SO_REUSEADDR",
            Row::Bind => "bind",
            Row::BindFailed => "bind or listen fails",
            Row::Listen => "listen (succeeded)",
            Row::Accept => "accept4: a connection",
            Row::FdSent => "sendmsg + SCM_RIGHTS",
            Row::FdReceived => "recvmsg + SCM_RIGHTS",
            Row::DatagramIn => "datagram received",
            Row::ClientSocket => "client sockets",
        }
    }
}

/// One system call, its two halves joined if strace split it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The thread that made it; `None` when strace printed no pid (the first process, alone).
    pub tid: Option<u32>,
    pub name: String,
    /// Everything between the parentheses, as strace printed it.
    pub args: String,
    /// The return value, or the errno's name (`"EAGAIN"`), or `"?"` when strace could not tell.
    pub result: Result<i64, String>,
}

impl Call {
    fn ok(&self) -> Option<i64> {
        self.result.as_ref().ok().copied()
    }

    /// The first argument as a number: the fd of every socket call.
    fn fd(&self) -> Option<i64> {
        self.args.split(',').next()?.trim().parse().ok()
    }
}

/// `1234 rest`, `[pid 1234] rest` or just `rest`.
fn split_pid(line: &str) -> (Option<u32>, &str) {
    if let Some(rest) = line.strip_prefix("[pid")
        && let Some(end) = rest.find(']')
        && let Ok(tid) = rest[..end].trim().parse()
    {
        return (Some(tid), rest[end + 1..].trim_start());
    }
    let digits = line
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(line.len());
    if digits > 0
        && line[digits..].starts_with(' ')
        && let Ok(tid) = line[..digits].parse()
    {
        return (Some(tid), line[digits..].trim_start());
    }
    (None, line)
}

/// `name(args) = result`; `None` for anything else (signals, exits, strace's own notes).
fn parse_call(tid: Option<u32>, text: &str) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // The result comes last, so the last ` = ` is its: argument strings are escaped by strace.
    let eq = text.rfind(" = ")?;
    let args = text[..eq].trim_end().strip_suffix(')')?.get(open + 1..)?;
    let mut words = text[eq + 3..].split_whitespace();
    let first = words.next()?;
    let result = if first == "-1" {
        Err(words.next().unwrap_or("?").to_string())
    } else if let Some(hex) = first.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).map_err(|_| first.to_string())
    } else {
        first.parse().map_err(|_| first.to_string())
    };
    Some(Call {
        tid,
        name: name.to_string(),
        args: args.to_string(),
        result,
    })
}

/// Every system call in strace's output, in the order they finished.
pub fn parse(text: &str) -> Vec<Call> {
    let mut pending: HashMap<Option<u32>, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let (tid, rest) = split_pid(line);
        let rest = rest.trim_end();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, head.trim_end().to_string());
            continue;
        }
        let joined;
        let text = match rest.strip_prefix("<... ") {
            Some(after) => {
                let Some(at) = after.find(" resumed>") else {
                    continue;
                };
                let Some(head) = pending.remove(&tid) else {
                    continue;
                };
                let tail = after[at + " resumed>".len()..].trim_start();
                let gap = if head.ends_with(',') { " " } else { "" };
                joined = format!("{head}{gap}{tail}");
                joined.as_str()
            }
            None => rest,
        };
        calls.extend(parse_call(tid, text));
    }
    calls
}

/// Which process each thread belongs to, who forked whom, and what each process runs.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    /// The first process: the program strace started.
    pub root: u32,
    /// A thread or process id → the call that made it: (its maker, a thread?, the syscall).
    made: HashMap<u32, (Option<u32>, bool, String)>,
    /// Process → the program of its last successful `execve`.
    program: HashMap<u32, String>,
}

impl Processes {
    /// The process a thread belongs to (a process's main thread has the process's id).
    pub fn process_of(&self, tid: Option<u32>) -> u32 {
        let mut t = tid.unwrap_or(self.root);
        for _ in 0..1000 {
            match self.made.get(&t) {
                Some((maker, true, _)) => t = maker.unwrap_or(self.root),
                _ => return t,
            }
        }
        t
    }

    /// The process that forked `pid` (`None` for the root).
    pub fn parent(&self, pid: u32) -> Option<u32> {
        match self.made.get(&pid) {
            Some((maker, false, _)) => Some(self.process_of(*maker)),
            _ => None,
        }
    }

    /// What the process runs, from its `execve` (`None` if it never ran a program).
    pub fn program(&self, pid: u32) -> Option<&str> {
        self.program.get(&pid).map(String::as_str)
    }

    /// Primary, worker, or `None` (a thread's id gives its process's role).
    pub fn role(&self, pid: u32) -> Option<Role> {
        if pid == self.root {
            Some(Role::Primary)
        } else if self.parent(pid) == Some(self.root) && self.program.contains_key(&pid) {
            Some(Role::Workers)
        } else {
            None
        }
    }

    /// Every process (not thread): the root and each one forked.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .made
            .iter()
            .filter(|(_, (_, thread, _))| !thread)
            .map(|(pid, _)| *pid)
            .collect();
        pids.push(self.root);
        pids.sort_unstable();
        pids
    }
}

// ANCHOR: processes
/// Build the process tree from the `clone`/`fork` and `execve` calls.
pub fn processes(calls: &[Call]) -> Processes {
    let mut p = Processes::default();
    for c in calls {
        if matches!(c.name.as_str(), "clone" | "clone3" | "fork" | "vfork")
            && let Some(child) = c.ok().filter(|n| *n > 0)
        {
            let thread = c.args.contains("CLONE_THREAD");
            p.made.insert(child as u32, (c.tid, thread, c.name.clone()));
        }
    }
    // The root is the one thread nobody traced made (its lines may carry no pid at all).
    p.root = calls
        .iter()
        .filter_map(|c| c.tid)
        .find(|t| !p.made.contains_key(t))
        .unwrap_or(0);
    for c in calls {
        if c.name == "execve" && c.ok() == Some(0) {
            let program = c.args.split('"').nth(1).unwrap_or("").to_string();
            p.program.insert(p.process_of(c.tid), program);
        }
    }
    p
}
// ANCHOR_END: processes

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

/// The fds in a `recvmsg`'s `cmsg_data=[4, 5]`.
fn received_fds(args: &str) -> Vec<i64> {
    let Some(start) = args.find("cmsg_data=[") else {
        return Vec::new();
    };
    let rest = &args[start + "cmsg_data=[".len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// What one run did, per role and row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    counts: BTreeMap<(Role, Row), u32>,
    /// The syscalls behind each count (`recvmsg` or `recvfrom` for a datagram, say).
    names: BTreeMap<(Role, Row), BTreeSet<String>>,
    /// `accept4` calls that found no connection (`EAGAIN`), per role.
    pub accept_eagain: BTreeMap<Role, u32>,
    /// Every process seen (not threads), to check that none outlived the run.
    pub pids: Vec<u32>,
    /// Threads per role, beyond each process's main thread.
    pub threads: BTreeMap<Role, u32>,
}

impl Summary {
    /// How many times `row` happened in `role`.
    pub fn count(&self, role: Role, row: Row) -> u32 {
        self.counts.get(&(role, row)).copied().unwrap_or(0)
    }

    /// The rows that happened at least once in `role`.
    pub fn present(&self, role: Role) -> BTreeSet<Row> {
        Row::ALL
            .into_iter()
            .filter(|r| self.count(role, *r) > 0)
            .collect()
    }

    /// The syscalls that made up `row` in `role`, joined with `/`.
    pub fn syscalls(&self, role: Role, row: Row) -> String {
        self.names
            .get(&(role, row))
            .map(|n| n.iter().cloned().collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    fn add(&mut self, role: Role, row: Row, syscall: &str) {
        // Which of the two fails is timing (see `Row::BindFailed`), not a difference of flavour.
        let syscall = if row == Row::BindFailed {
            "bind or listen"
        } else {
            syscall
        };
        *self.counts.entry((role, row)).or_insert(0) += 1;
        self.names
            .entry((role, row))
            .or_default()
            .insert(syscall.to_string());
    }
}

/// Whether the arguments hold an IPv4/IPv6 address (`{sa_family=AF_INET, ...}`).
fn has_inet_address(args: &str) -> bool {
    args.contains("{sa_family=AF_INET")
}

/// Read strace's whole output and count, per role, the calls of every [`Row`].
pub fn summarize(text: &str) -> Summary {
    let calls = parse(text);
    let procs = processes(&calls);
    let mut socks = Sockets::default();
    // (role, row, socket, syscall), kept until we know which sockets were clients.
    let mut seen: Vec<(Role, Row, Option<usize>, &str)> = Vec::new();
    let mut out = Summary {
        pids: procs.pids(),
        ..Summary::default()
    };
    for c in &calls {
        let pid = procs.process_of(c.tid);
        let Some(role) = procs.role(pid) else {
            continue;
        };
        let name = c.name.as_str();
        let mut see = |row, sock| seen.push((role, row, sock, name));
        match name {
            "socket" => {
                if let Some(fd) = c.ok() {
                    let id = socks.open(pid, fd, true);
                    if c.args.starts_with("AF_INET") {
                        see(Row::Socket, Some(id));
                    }
                }
            }
            "setsockopt" if c.args.contains("SOL_SOCKET, SO_REUSEADDR") => {
                see(Row::ReuseAddr, socks.at(pid, c.fd()));
            }
            "bind" => {
                let id = socks.at(pid, c.fd());
                see(Row::Bind, id);
                if c.result.is_err() {
                    see(Row::BindFailed, id);
                }
            }
            "listen" if c.result.is_err() => see(Row::BindFailed, socks.at(pid, c.fd())),
            "listen" => see(Row::Listen, socks.at(pid, c.fd())),
            "accept" | "accept4" => match &c.result {
                Ok(conn) => {
                    see(Row::Accept, socks.at(pid, c.fd()));
                    socks.open(pid, *conn, false);
                }
                Err(e) if e == "EAGAIN" => *out.accept_eagain.entry(role).or_insert(0) += 1,
                Err(_) => {}
            },
            "connect" | "sendto" if has_inet_address(&c.args) => {
                let id = socks.at(pid, c.fd());
                socks.mark_client(id);
            }
            "sendmsg" => {
                if c.args.contains("SCM_RIGHTS") && c.ok().is_some() {
                    see(Row::FdSent, None);
                }
                if c.args.contains("msg_name={sa_family=AF_INET") {
                    let id = socks.at(pid, c.fd());
                    socks.mark_client(id);
                }
            }
            "recvmsg" if c.ok().is_some_and(|n| n > 0) => {
                for fd in received_fds(&c.args) {
                    socks.open(pid, fd, false);
                    see(Row::FdReceived, None);
                }
                if c.args.contains("msg_name={sa_family=AF_INET") {
                    see(Row::DatagramIn, socks.at(pid, c.fd()));
                }
            }
            "recvfrom" if c.ok().is_some_and(|n| n > 0) && has_inet_address(&c.args) => {
                see(Row::DatagramIn, socks.at(pid, c.fd()));
            }
            _ => {}
        }
    }
    for (role, row, sock, name) in seen {
        if sock.is_some_and(|i| socks.list[i].client) {
            continue;
        }
        out.add(role, row, name);
    }
    for s in socks.list.iter().filter(|s| s.client) {
        if let Some(role) = procs.role(s.pid) {
            out.add(role, Row::ClientSocket, "socket");
        }
    }
    for pid in procs.pids() {
        let (Some(parent), Some(_)) = (procs.parent(pid), procs.program(pid)) else {
            continue;
        };
        if let (Some(role), Some((_, _, how))) = (procs.role(parent), procs.made.get(&pid)) {
            out.add(role, Row::Fork, how);
        }
    }
    for (maker, thread, _) in procs.made.values() {
        if *thread && let Some(role) = procs.role(procs.process_of(*maker)) {
            *out.threads.entry(role).or_insert(0) += 1;
        }
    }
    out
}

/// The side-by-side table: every row, per role, Node's count next to ours. A row whose counts
/// differ ends with `<- differs`; rows that agree but were made with different syscalls get a
/// note underneath.
pub fn table(node: &Summary, ours: &Summary) -> String {
    let mut t = String::new();
    let top = format!("{:27}{:^12}    {:^12}", "", "primary", "workers");
    let _ = writeln!(t, "{}", top.trim_end());
    let _ = writeln!(
        t,
        "{:27}{:>6}{:>6}    {:>6}{:>6}",
        "", "node", "ours", "node", "ours"
    );
    for row in Row::ALL {
        let (p, w) = (Role::Primary, Role::Workers);
        let cells = [
            node.count(p, row),
            ours.count(p, row),
            node.count(w, row),
            ours.count(w, row),
        ];
        let mark = if cells[0] != cells[1] || cells[2] != cells[3] {
            "   <- differs"
        } else {
            ""
        };
        let _ = writeln!(
            t,
            "  {:25}{:>6}{:>6}    {:>6}{:>6}{mark}",
            row.label(),
            cells[0],
            cells[1],
            cells[2],
            cells[3]
        );
    }
    for (role, row) in flavour_differences(node, ours) {
        let _ = writeln!(
            t,
            "  note: {}, {}: node uses {}, ours {}",
            role.name(),
            row.label(),
            node.syscalls(role, row),
            ours.syscalls(role, row)
        );
    }
    t
}

/// Rows where both made calls, with different syscalls (`recvmsg` against `recvfrom`).
pub fn flavour_differences(node: &Summary, ours: &Summary) -> Vec<(Role, Row)> {
    let mut found = Vec::new();
    for role in [Role::Primary, Role::Workers] {
        for row in Row::ALL {
            if node.count(role, row) > 0
                && ours.count(role, row) > 0
                && node.syscalls(role, row) != ours.syscalls(role, row)
            {
                found.push((role, row));
            }
        }
    }
    found
}

/// Rows whose counts differ between the two runs.
pub fn count_differences(node: &Summary, ours: &Summary) -> Vec<(Role, Row)> {
    let mut found = Vec::new();
    for role in [Role::Primary, Role::Workers] {
        for row in Row::ALL {
            if node.count(role, row) != ours.count(role, row) {
                found.push((role, row));
            }
        }
    }
    found
}

/// One thing to run both ways: a Node cluster script, and the same with our lab.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `round robin`, `SCHED_NONE`, ...
    pub title: &'static str,
    /// The script is `tests/node/scenario-<slug>.js`.
    pub slug: &'static str,
    /// Arguments for the script after its path.
    pub node_args: Vec<String>,
    /// Arguments for `cluster-walkthrough lab`.
    pub lab_args: Vec<String>,
    /// How many requests (connections or datagrams) the primary makes.
    pub requests: u32,
}

impl Scenario {
    /// The script's path relative to the crate root, as a reader would type it.
    pub fn script(&self) -> String {
        format!("tests/node/scenario-{}.js", self.slug)
    }

    /// The script's absolute path.
    pub fn script_path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(self.script())
    }

    /// Node's side: `node <script> [args]`, ready for [`run`].
    pub fn node_command(&self) -> Command {
        let mut cmd = Command::new("node");
        cmd.arg(self.script_path()).args(&self.node_args);
        cmd
    }

    /// The two commands as a reader would type them, one line each:
    /// `node: node tests/node/scenario-rr.js` and `ours: lab --workers 2 --connections 2`.
    pub fn commands(&self) -> String {
        let node = std::iter::once(self.script()).chain(self.node_args.iter().cloned());
        format!(
            "node: node {}\nours: lab {}\n",
            node.collect::<Vec<_>>().join(" "),
            self.lab_args.join(" ")
        )
    }
}

/// The four scenarios: 2 workers, 127.0.0.1, 2 requests each. `port` is for the exclusive one,
/// whose workers bind a fixed port themselves.
pub fn scenarios(port: u16) -> Vec<Scenario> {
    let lab = |extra: &[&str]| -> Vec<String> {
        ["--workers", "2", "--connections", "2"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let port = port.to_string();
    vec![
        Scenario {
            title: "round robin",
            slug: "rr",
            node_args: vec![],
            lab_args: lab(&[]),
            requests: 2,
        },
        Scenario {
            title: "SCHED_NONE",
            slug: "none",
            node_args: vec![],
            lab_args: lab(&["--policy", "none"]),
            requests: 2,
        },
        Scenario {
            title: "exclusive",
            slug: "exclusive",
            node_args: vec![port.clone()],
            lab_args: lab(&["--exclusive", "--port", &port]),
            requests: 2,
        },
        Scenario {
            title: "UDP",
            slug: "udp",
            node_args: vec![],
            lab_args: lab(&["--udp"]),
            requests: 2,
        },
    ]
}

/// Why a traced run gave us nothing to read.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Helper(HelperError),
    #[error("`{program}` did not finish within {limit:?} under strace; it was killed")]
    Timeout {
        program: String,
        limit: Duration,
        /// Every process of the run, each sent `SIGKILL`.
        killed: Vec<u32>,
    },
    #[error("cannot read strace's output: {0}")]
    Read(std::io::Error),
}

/// A finished traced run.
#[derive(Debug)]
pub struct Traced {
    /// What strace wrote (`-o`): one line per call, each with its thread id.
    pub text: String,
    pub stdout: String,
    pub stderr: String,
    /// The traced program's exit status (strace passes it on).
    pub status: ExitStatus,
}

/// `None` if `node` and a working `strace` are here; otherwise why not, in a few words.
pub fn missing_tools() -> Option<String> {
    let works = |program: &str, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args);
        helper::run(&mut cmd, Capture::Both, Duration::from_secs(10))
            .is_ok_and(|done| done.status.success())
    };
    if !works("node", &["--version"]) {
        return Some("`node` is not installed".into());
    }
    if !works("strace", &["-V"]) {
        return Some("`strace` is not installed".into());
    }
    if !works(
        "strace",
        &["-qq", "-o", "/dev/null", "-e", "trace=none", "true"],
    ) {
        return Some("`strace` cannot trace here (is ptrace allowed?)".into());
    }
    None
}

/// A file name for strace's output that no other run uses.
fn output_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "cluster-walkthrough-strace-{}-{n}.txt",
        std::process::id()
    ))
}

/// Run `target` under `strace -f -qq -e trace=`[`SYSCALLS`] and return what strace wrote.
/// Its program, arguments, environment and directory are taken over as they are.
///
/// On timeout every process in the trace so far is killed, not only strace: a killed strace
/// would merely detach, and leave the cluster running.
pub fn run(target: &Command, limit: Duration) -> Result<Traced, RunError> {
    let out = output_path();
    let mut cmd = strace_command(target, &out);
    let mut killed = Vec::new();
    let done = helper::spawn(&mut cmd, Capture::Both)
        .and_then(|strace| strace.finish_or(limit, |_| killed = kill_traced_tree(&out)));
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    let done = match done {
        Ok(done) => done,
        Err(HelperError::Timeout { limit, .. }) => {
            let program: OsString = target.get_program().to_owned();
            return Err(RunError::Timeout {
                program: program.to_string_lossy().into_owned(),
                limit,
                killed,
            });
        }
        Err(e) => return Err(RunError::Helper(e)),
    };
    Ok(Traced {
        text: text.map_err(RunError::Read)?,
        stdout: done.stdout,
        stderr: done.stderr,
        status: done.status,
    })
}

/// `strace ... -- <target>`, with the target's environment and directory.
fn strace_command(target: &Command, out: &Path) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e"])
        .arg(format!("trace={SYSCALLS}"))
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(dying_with_strace())
        .arg(target.get_program())
        .args(target.get_args())
        // Node's default policy unless a script says.
        .env_remove("NODE_CLUSTER_SCHED_POLICY");
    for (key, value) in target.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    if let Some(dir) = target.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

/// Words to put before the traced program so that it dies with strace: `setpriv --pdeathsig
/// KILL`, when `setpriv` (util-linux) runs here. strace itself dies with us (see
/// [`crate::helper`]), but the program it traces is strace's child, not ours, and a killed
/// strace only detaches it. Without `setpriv` the program runs on to its end (a scenario
/// takes well under a second). `setpriv` adds one `execve` to the root process and no other
/// traced call, so the counts do not change.
fn dying_with_strace() -> &'static [&'static str] {
    static WORDS: OnceLock<&'static [&'static str]> = OnceLock::new();
    WORDS.get_or_init(|| {
        let words: &'static [&'static str] = &["setpriv", "--pdeathsig", "KILL", "--"];
        let mut probe = Command::new(words[0]);
        probe.args(&words[1..]).arg("true");
        match helper::run(&mut probe, Capture::Both, Duration::from_secs(10)) {
            Ok(done) if done.status.success() => words,
            _ => &[],
        }
    })
}

/// SIGKILL every process named in a (partial) trace, the primary first; returns them.
fn kill_traced_tree(out: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let procs = processes(&parse(&text));
    let mut pids = procs.pids();
    pids.retain(|p| *p > 1);
    pids.sort_by_key(|p| *p != procs.root);
    for pid in &pids {
        sys::kill(*pid, sys::Signal::SIGKILL);
    }
    pids
}

/// A free port on 127.0.0.1 *below* the kernel's ephemeral range, so that no client socket
/// made meanwhile (by another test, say) can take it before our workers bind it.
pub fn quiet_port() -> Option<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let low: u16 = range.split_whitespace().next()?.parse().ok()?;
    let span = low.saturating_sub(10_000).max(1);
    let start = (std::process::id() as u16) % span;
    (0..span)
        .map(|i| low - 1 - (start + i) % span)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as strace 6.1 wrote them for `node tests/node/scenario-rr.js` (shortened where
    // strace itself shortens, `...`).
    const NODE_RR: &str = r#"100 execve("/usr/bin/node", ["node", "scenario-rr.js"], 0x7ffc /* 35 vars */) = 0
100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f46, parent_tid=0x7f46, exit_signal=0, stack=0x7f46, stack_size=0x7fff00, tls=0x7f46} => {parent_tid=[101]}, 88) = 101
101 recvmsg(7, {msg_namelen=0}, 0) = -1 EAGAIN (Resource temporarily unavailable)
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f46) = 200
200 execve("/usr/bin/node", ["/usr/bin/node", "/tmp/scenario-rr.js"], 0xf40a /* 38 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f46) = 300
300 execve("/usr/bin/node", ["/usr/bin/node", "/tmp/scenario-rr.js"], 0xf40a /* 38 vars */) = 0
301 listen(99, 1) = 0
300 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f06, parent_tid=0x7f06, exit_signal=0, stack=0x7f06, stack_size=0x7fff00, tls=0x7f06} => {parent_tid=[301]}, 88) = 301
100 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 21
100 setsockopt(21, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
100 bind(21, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
100 listen(21, 511)                   = 0
100 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 22
100 connect(22, {sa_family=AF_INET, sin_port=htons(36407), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
100 accept4(21, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 23
100 sendmsg(20, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"net"..., iov_len=129}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[23]}], msg_controllen=24, msg_flags=0}, 0) = 129
300 recvmsg(3,  <unfinished ...>
100 setsockopt(22, SOL_TCP, TCP_NODELAY, [1], 4 <unfinished ...>
300 <... recvmsg resumed>{msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"net"..., iov_len=65536}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[19]}], msg_controllen=24, msg_flags=MSG_CMSG_CLOEXEC}, MSG_CMSG_CLOEXEC) = 129
100 <... setsockopt resumed>)         = 0
100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=300, si_uid=0, si_status=0, si_utime=13 /* 0.13 s */, si_stime=2 /* 0.02 s */} ---
"#;

    #[test]
    fn a_line_with_a_pid_and_a_result() {
        let c = parse("100 listen(21, 511)                   = 0\n");
        assert_eq!(
            c,
            vec![Call {
                tid: Some(100),
                name: "listen".into(),
                args: "21, 511".into(),
                result: Ok(0),
            }]
        );
    }

    #[test]
    fn the_three_pid_forms_and_an_errno() {
        let text = "bind(4, {sa_family=AF_INET, sin_port=htons(80)}, 16) = -1 EACCES (Permission denied)\n\
                    [pid  4242] accept4(4, NULL, NULL, SOCK_CLOEXEC) = -1 EAGAIN (Resource temporarily unavailable)\n\
                    77 clone3({flags=CLONE_VM}, 88) = 0x10\n";
        let c = parse(text);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].tid, c[0].result.clone()),
            (None, Err("EACCES".into()))
        );
        assert_eq!(
            (c[1].tid, c[1].result.clone()),
            (Some(4242), Err("EAGAIN".into()))
        );
        assert_eq!((c[2].tid, c[2].result.clone()), (Some(77), Ok(16)));
    }

    #[test]
    fn unfinished_and_resumed_halves_are_joined() {
        let c = parse(NODE_RR);
        let got = c
            .iter()
            .find(|c| c.name == "recvmsg" && c.tid == Some(300))
            .expect("the joined recvmsg");
        assert!(got.args.starts_with("3, {msg_name=NULL"), "{}", got.args);
        assert_eq!(got.result, Ok(129));
        assert_eq!(received_fds(&got.args), vec![19]);
        let set = c
            .iter()
            .find(|c| c.name == "setsockopt" && c.args.contains("TCP_NODELAY"));
        assert_eq!(set.map(|c| c.result.clone()), Some(Ok(0)));
        assert!(c.iter().all(|c| !c.name.contains("SIGCHLD")));
    }

    #[test]
    fn threads_belong_to_their_process_even_when_seen_before_their_clone() {
        let p = processes(&parse(NODE_RR));
        assert_eq!(p.root, 100);
        assert_eq!(p.process_of(Some(101)), 100);
        // Thread 301 made a call before strace printed the clone3 that made it.
        assert_eq!(p.process_of(Some(301)), 300);
        assert_eq!(p.parent(300), Some(100));
        assert_eq!(p.program(300), Some("/usr/bin/node"));
        assert_eq!(p.role(100), Some(Role::Primary));
        assert_eq!(p.role(200), Some(Role::Workers));
        assert_eq!(p.role(p.process_of(Some(301))), Some(Role::Workers));
        assert_eq!(p.pids(), vec![100, 200, 300]);
    }

    #[test]
    fn a_child_that_never_runs_a_program_is_not_a_worker() {
        let text = "10 clone(child_stack=NULL, flags=SIGCHLD) = 11\n\
                    11 socket(AF_INET, SOCK_STREAM, IPPROTO_IP) = 3\n\
                    11 bind(3, {sa_family=AF_INET, sin_port=htons(0)}, 16) = 0\n";
        let s = summarize(text);
        assert_eq!(s.count(Role::Workers, Row::Bind), 0);
        assert_eq!(s.count(Role::Primary, Row::Fork), 0);
        assert_eq!(s.pids, vec![10, 11]);
    }

    #[test]
    fn round_robin_counts_and_the_client_socket_apart() {
        let s = summarize(NODE_RR);
        let p = Role::Primary;
        assert_eq!(s.count(p, Row::Fork), 2);
        assert_eq!(s.syscalls(p, Row::Fork), "clone");
        assert_eq!(
            s.count(p, Row::Socket),
            1,
            "the client's socket is not counted"
        );
        assert_eq!(s.count(p, Row::ReuseAddr), 1);
        assert_eq!(s.count(p, Row::Bind), 1);
        assert_eq!(s.count(p, Row::Listen), 1);
        assert_eq!(s.count(p, Row::Accept), 1);
        assert_eq!(s.count(p, Row::FdSent), 1);
        assert_eq!(s.count(p, Row::ClientSocket), 1);
        assert_eq!(s.count(Role::Workers, Row::FdReceived), 1);
        // Thread 301's listen belongs to worker process 300.
        assert_eq!(s.count(Role::Workers, Row::Listen), 1);
        assert_eq!(s.threads.get(&Role::Primary), Some(&1));
        assert_eq!(s.threads.get(&Role::Workers), Some(&1));
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
        let (p, w) = (Role::Primary, Role::Workers);
        assert_eq!(s.count(p, Row::Socket), 1);
        assert_eq!(s.count(p, Row::Bind), 1, "the client's bind is its own row");
        assert_eq!(s.count(p, Row::ReuseAddr), 0);
        assert_eq!(s.count(p, Row::FdSent), 1);
        assert_eq!(
            s.count(p, Row::DatagramIn),
            0,
            "the answer came to the client"
        );
        assert_eq!(s.count(p, Row::ClientSocket), 1);
        assert_eq!(s.count(w, Row::FdReceived), 1);
        assert_eq!(s.count(w, Row::ReuseAddr), 1);
        assert_eq!(s.count(w, Row::DatagramIn), 1);
        assert_eq!(s.syscalls(w, Row::DatagramIn), "recvfrom");
        assert_eq!(
            s.count(w, Row::ClientSocket),
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
        assert_eq!(s.count(Role::Primary, Row::Bind), 1);
        assert_eq!(s.count(Role::Primary, Row::BindFailed), 1);
        assert_eq!(s.count(Role::Primary, Row::Accept), 0);
        assert_eq!(s.accept_eagain.get(&Role::Primary), Some(&1));
    }

    #[test]
    fn the_table_marks_differences_and_flavours() {
        let mut node = Summary::default();
        let mut ours = Summary::default();
        node.add(Role::Workers, Row::DatagramIn, "recvmsg");
        ours.add(Role::Workers, Row::DatagramIn, "recvfrom");
        node.add(Role::Primary, Row::Listen, "listen");
        let t = table(&node, &ours);
        let listen = t
            .lines()
            .find(|l| l.trim_start().starts_with("listen ("))
            .expect("a listen row");
        assert!(listen.ends_with("<- differs"), "{t}");
        let bind = t
            .lines()
            .find(|l| l.trim_start().starts_with("bind "))
            .expect("bind");
        assert!(!bind.contains("differs"), "{t}");
        assert!(
            t.contains("note: workers, datagram received: node uses recvmsg, ours recvfrom"),
            "{t}"
        );
        assert_eq!(
            count_differences(&node, &ours),
            vec![(Role::Primary, Row::Listen)]
        );
    }
}
