//! Chapter 1: `listen` twice on one port, without cluster, gives `EADDRINUSE`.
//!
//! Four experiments: four servers in one process, two processes, the kernel rule underneath
//! (what `SO_REUSEADDR` allows on Linux), and the same two servers in real Node 24 under
//! `strace` (skipped, in one line, without them). Run it with
//! `cargo run --bin ch01-listen-twice`.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use cluster_walkthrough::chapter::{self, Chapter, ChapterError, Ctx, HelperRole};
use cluster_walkthrough::loopback::{LOOPBACK, free_port};
use cluster_walkthrough::net::{self, ListenOptions, ListenStep, Server};
use cluster_walkthrough::node_source::{Want, find_node};
use cluster_walkthrough::strace::{self, SocketCall};
use cluster_walkthrough::sys::{self, Errno, Transport};
use cluster_walkthrough::trace::{self, Returned, Syscall};

pub static CHAPTER: Chapter = Chapter {
    number: 1,
    slug: "listen-twice",
    title: "Listening twice: EADDRINUSE",
    intro: "Without cluster, every listen() binds its own socket. We start four servers on one port in one\n\
            process, then a second process on the same port, and watch which syscall fails and what\n\
            error Node would report. Then the kernel rule behind it: what SO_REUSEADDR allows. Last,\n\
            real Node 24 under strace, listening twice.",
    outro: "bind(2) fails with EADDRINUSE, libuv keeps the error until listen, and Node reports it as `listen EADDRINUSE`.",
    run,
    role: Some(role),
};

#[allow(dead_code)]
fn main() -> ExitCode {
    chapter::main(&CHAPTER)
}

fn run(ctx: &Ctx) -> Result<(), ChapterError> {
    let port = ctx.pick_port()?;
    // The lines the book shows before its folds (see `trace::keys`). 1a: servers 1 and 2,
    // whole (3 and 4 repeat 2); 1b is short enough to show whole; 1c: what B gets, per case.
    let keys = trace::keys(&["process A"; 12]);
    one_process_four_servers(port)?;
    drop(keys);
    two_processes(ctx, port)?;
    let keys = trace::keys(&[
        "socket B bind(",
        "socket B bind(",
        "socket B bind(",
        "socket B bind(",
        "socket B listen(",
        "socket B listen(",
        "socket B #",
        "socket B #",
        "socket B #",
        "socket B #",
    ]);
    reuseaddr_rules()?;
    drop(keys);
    node_under_strace(port)
}

// ANCHOR: four_servers
/// One process, four `net.createServer().listen(port, '127.0.0.1')` calls.
fn one_process_four_servers(port: u16) -> Result<(), ChapterError> {
    trace::heading("1a. One process, four servers on one port");
    trace::set_label("process A");
    let mut servers = Vec::new();
    for i in 1..=4 {
        let mut server = Server::new(&format!("server {i}"));
        let opts = ListenOptions::new(LOOPBACK, port);
        net::trace_listen_call(&server, &opts);
        match server.listen(&opts) {
            ListenStep::Listening(addr) => trace::ok(&format!("listening on {addr}")),
            ListenStep::Failed(err) if i == 1 => {
                let (syscall, errno) = (err.syscall(), err.raw_errno());
                return Err(first_server_failed(port, syscall, errno, &err.to_string()));
            }
            ListenStep::Failed(err) => err.trace(),
            ListenStep::AskPrimary(_) => unreachable!("not a cluster worker"),
        }
        servers.push(server);
    }
    Ok(())
}
// ANCHOR_END: four_servers

/// The first listen failed: a port taken or forbidden is the user's `--port` (one clear
/// line); anything else is told as Node tells it.
fn first_server_failed(port: u16, syscall: &'static str, errno: Errno, err: &str) -> ChapterError {
    match errno {
        Errno::EADDRINUSE | Errno::EACCES => ChapterError::port(LOOPBACK, port, syscall, errno),
        _ => ChapterError::Failed(format!("the first server could not listen: {err}")),
    }
}

// ANCHOR: two_processes
/// Process A listens, then starts process B (this same program again, in the helper role
/// `second-process`), which tries too.
fn two_processes(ctx: &Ctx, port: u16) -> Result<(), ChapterError> {
    trace::heading("1b. Two processes, one port");
    trace::set_label("process A");
    let mut server = Server::new("server");
    let opts = ListenOptions::new(LOOPBACK, port);
    net::trace_listen_call(&server, &opts);
    match server.listen(&opts) {
        ListenStep::Listening(addr) => trace::ok(&format!("listening on {addr}")),
        ListenStep::Failed(err) => {
            let (syscall, errno) = (err.syscall(), err.raw_errno());
            return Err(first_server_failed(port, syscall, errno, &err.to_string()));
        }
        ListenStep::AskPrimary(_) => unreachable!("not a cluster worker"),
    }
    trace::step("starts process B: the same program, a separate process");
    let role = ["second-process", "--port", &port.to_string()];
    let status = ctx.spawn_role(&role, Duration::from_secs(10))?;
    trace::set_label("process A");
    let code = status.code().unwrap_or(-1);
    trace::step(&format!(
        "process B exited with code {code} (an unhandled 'error' event ends a Node process with 1)"
    ));
    drop(server);
    Ok(())
}

/// Process B: listen on the port process A holds.
fn process_b(port: u16) -> ExitCode {
    trace::set_label("process B");
    let mut server = Server::new("server");
    let opts = ListenOptions::new(LOOPBACK, port);
    net::trace_listen_call(&server, &opts);
    match server.listen(&opts) {
        ListenStep::Listening(addr) => {
            trace::ok(&format!("listening on {addr}"));
            ExitCode::SUCCESS
        }
        ListenStep::Failed(err) => {
            err.trace();
            ExitCode::FAILURE
        }
        ListenStep::AskPrimary(_) => ExitCode::FAILURE,
    }
}
// ANCHOR_END: two_processes

/// The one helper role of this chapter.
fn role(role: HelperRole) -> ExitCode {
    match role {
        HelperRole::SecondProcess { port } => process_b(port),
        other => chapter::unknown_role(&CHAPTER, &other),
    }
}

/// A port nobody uses, whatever the user chose: each kernel case needs its own.
fn fresh_port() -> Result<u16, ChapterError> {
    free_port().map_err(|e| ChapterError::io("find a free port", e))
}

/// A socket for the kernel experiments, with or without the options under test.
fn raw_socket(reuseaddr: bool, reuseport: bool) -> Result<OwnedFd, ChapterError> {
    let fd = sys::socket(LOOPBACK, Transport::Tcp).map_err(errno)?;
    if reuseaddr {
        sys::set_reuseaddr(fd.as_fd()).map_err(errno)?;
    }
    if reuseport {
        sys::set_reuseport(fd.as_fd()).map_err(errno)?;
    }
    Ok(fd)
}

fn errno(e: sys::Errno) -> ChapterError {
    ChapterError::Failed(format!("unexpected error from the kernel: {e}"))
}

// ANCHOR: reuseaddr_rules
/// The four cases of Linux's rule, each on a fresh port: two sockets, A then B.
fn reuseaddr_rules() -> Result<(), ChapterError> {
    trace::heading("1c. What SO_REUSEADDR allows on Linux");
    kernel_case(
        "1: both SO_REUSEADDR, A listening, then B binds",
        true,
        false,
        true,
    )?;
    kernel_case(
        "2: both SO_REUSEADDR, A only bound, then B binds",
        true,
        false,
        false,
    )?;
    kernel_case(
        "3: no SO_REUSEADDR, A only bound, then B binds",
        false,
        false,
        false,
    )?;
    kernel_case(
        "4: both SO_REUSEADDR + SO_REUSEPORT, A listening",
        true,
        true,
        true,
    )?;
    Ok(())
}

fn kernel_case(title: &str, addr: bool, port: bool, a_listens: bool) -> Result<(), ChapterError> {
    let at = SocketAddr::new(LOOPBACK, fresh_port()?);
    trace::heading(&format!("case {title}"));
    trace::set_label("socket A");
    let a = raw_socket(addr, port)?;
    sys::bind(a.as_fd(), at).map_err(errno)?;
    if a_listens {
        sys::listen(a.as_fd(), 511).map_err(errno)?;
    }
    trace::set_label("socket B");
    let b = raw_socket(addr, port)?;
    if sys::bind(b.as_fd(), at).is_err() {
        trace::note("B cannot even bind");
        return Ok(());
    }
    if !a_listens {
        trace::set_label("socket A");
        sys::listen(a.as_fd(), 511).map_err(errno)?;
        trace::set_label("socket B");
    }
    match sys::listen(b.as_fd(), 511) {
        Ok(()) => trace::note("both listen: the kernel spreads connections over A and B"),
        Err(_) => trace::note("B could bind, but only one socket may listen"),
    }
    Ok(())
}
// ANCHOR_END: reuseaddr_rules

/// The Node script of part 1d, relative to the crate's root.
const SCRIPT: &str = "tests/node/listen-twice.js";

/// The longest Node's run may take under strace (it takes well under a second).
const LIMIT: Duration = Duration::from_secs(30);

/// Real Node 24 listens twice on one port, in one process, under `strace -f`: its TCP
/// sockets' `socket`, `setsockopt`, `bind` and `listen`, printed as our trace prints ours.
fn node_under_strace(port: u16) -> Result<(), ChapterError> {
    trace::heading("1d. The same in Node 24, under strace");
    let node = match (strace::missing_strace(), find_node(Want::Major(24))) {
        (None, Ok(node)) => node,
        (Some(why), _) => return skipped(&why),
        (None, Err(_)) => {
            return skipped("node 24 is not installed (scripts/install-node-versions 24)");
        }
    };
    trace::set_label("node 24");
    trace::step(&format!(
        "PORT={port} node {SCRIPT}: server 1 listens, then server 2 on its port"
    ));
    let mut cmd = Command::new(&node.path);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT))
        .env("PORT", port.to_string());
    let run = strace::run(&cmd, LIMIT)
        .map_err(|e| ChapterError::Failed(format!("node under strace: {e}")))?;
    let calls = strace::listen_calls(&run.text);
    for (at, call) in calls.iter().enumerate() {
        show(call);
        if strace::bind_failed_alone(&calls, at) {
            trace::note(&format!(
                "no listen({}, ...) follows: strace saw none for this socket",
                call.fd
            ));
        }
    }
    for line in run.stdout.lines() {
        trace::error(line, serde_json::Value::Null);
    }
    if !run.status.success() || calls.is_empty() {
        return Err(ChapterError::Failed(format!(
            "node under strace ended with {} and {} socket calls: {}",
            run.status,
            calls.len(),
            run.stderr.trim()
        )));
    }
    Ok(())
}

/// One of Node's calls, as our trace prints a call.
fn show(call: &SocketCall) {
    let syscall = Syscall::new(&call.name, &call.args);
    match &call.result {
        Ok(value) => trace::syscall(&syscall, Returned::Value(&value.to_string())),
        Err((errno, desc)) => trace::syscall(&syscall, Returned::Error { errno, desc }),
    }
}

/// Part 1d cannot run here: one line that says why.
fn skipped(why: &str) -> Result<(), ChapterError> {
    trace::raw(&format!(
        "skipped: {why}; this part runs real Node under strace"
    ));
    Ok(())
}
