//! Processes: what a worker does between `fork` and `exec`, signals, reaping, and the
//! fork-without-exec of chapter 9's models.
//!
//! Node starts a worker the way libuv's `uv_spawn` (`src/unix/process.c`) does: fork, set
//! up the child's fds, exec a fresh `node`. Our primary does the same through
//! `std::process::Command`; the parts that must run in the child before the exec are here.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag};
use nix::sys::signal::Signal;

use super::{retry, trace_call, zero};
use crate::trace;

/// Runs in a freshly forked worker, between `fork` and `exec`: put the channel on `target`
/// (Node's fd 3) without `FD_CLOEXEC`, and let no other fd through the exec.
///
/// No parent-death signal, as libuv's `uv_spawn` sets none: a worker whose primary dies
/// learns it from the channel's end of file, and leaves as it chooses (a Node worker exits 0
/// through its `'disconnect'` handler, running its `'exit'` handlers). A `SIGKILL` from the
/// kernel would come first and take that away. The safety nets are elsewhere: the primary's
/// `Drop` (closes the channels, waits, then kills), and our own worker arming
/// [`die_with_parent`] once it serves without a channel.
///
/// Only async-signal-safe calls are allowed here.
pub fn prepare_worker_child(channel: RawFd, target: RawFd) -> std::io::Result<()> {
    put_channel_at(channel, target)?;
    cloexec_above(target);
    Ok(())
}

/// The channel at `target`, and kept across the exec (libuv's `uv__process_child_init`
/// does the same with `dup2`, or clears `FD_CLOEXEC` when the fd is already in place).
fn put_channel_at(channel: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: fcntl and dup2 take plain integers (the kernel checks them) and are
    // async-signal-safe.
    let res = unsafe {
        match channel == target {
            true => libc::fcntl(target, libc::F_SETFD, 0),
            false => libc::dup2(channel, target),
        }
    };
    Errno::result(res).map(drop)
}

/// Nothing but stdio and the channel may reach the worker, not even fds our own parent
/// forgot to mark close-on-exec: mark everything above `fd` (Linux >= 5.11; older kernels
/// just skip this).
fn cloexec_above(fd: RawFd) {
    // SAFETY: close_range takes plain integers, touches none of our memory, and is
    // async-signal-safe.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            fd + 1,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// Ask the kernel to `SIGKILL` us when our parent dies (`PR_SET_PDEATHSIG`), and exit at
/// once if it already has: then we were handed to another parent before we could ask.
/// Both calls are async-signal-safe, so this may run between `fork` and `exec`.
fn tie_to_parent(parent: u32) -> Result<(), Errno> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        exit_now(0);
    }
    Ok(())
}

/// `kill(2)`; a process that is already gone is not an error here.
pub fn kill(pid: u32, signal: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
}

/// `SIGKILL` for 9.
pub fn signal_name(signo: i32) -> String {
    nix::sys::signal::Signal::try_from(signo)
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|_| signo.to_string())
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM set a flag (and interrupt `poll`) instead of killing the primary at
/// once, so it can stop its workers and reap them before it exits.
pub fn install_interrupt_handler() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Whether Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Processes without exec, for chapter 9's models of what lies beneath Node
// (`src/os_models/`). Node itself never does this: it forks *and* execs a fresh `node`.

/// What `fork(2)` returned, seen from the process that is reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// This is the new process.
    Child,
    /// This is the old process; the new one has this pid.
    Parent(u32),
}

/// How many threads this process has (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// `fork(2)` without `exec`, and only from a process that has exactly one thread: in a
/// threaded process the child may inherit a lock that another thread held, and deadlock.
/// Refuses with `EDEADLK` otherwise (or when `/proc` cannot say). The parent prints the
/// syscall line; the child prints nothing, and its trace role becomes
/// [`trace::Role::Child`].
pub fn fork_single_threaded() -> Result<Forked, Errno> {
    let call = trace::Syscall::new("fork", "");
    if thread_count() != Some(1) {
        trace::syscall_skipped(&call, "this process has more than one thread");
        return Err(Errno::EDEADLK);
    }
    // SAFETY: the process has one thread (checked just above), so the child's copy of
    // memory holds no lock that some other thread was in the middle of using.
    let res = unsafe { nix::unistd::fork() };
    match res {
        Ok(nix::unistd::ForkResult::Child) => {
            trace::set_role(trace::Role::Child);
            Ok(Forked::Child)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            trace_call(&call, Ok(child.as_raw().to_string()));
            Ok(Forked::Parent(child.as_raw() as u32))
        }
        Err(e) => {
            trace_call(&call, Err(e));
            Err(e)
        }
    }
}

/// `_exit(2)`: end a forked child at once, without running the destructors and exit hooks
/// of the parent's state that the child merely copied.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// In a forked child: ask the kernel to `SIGKILL` us if the parent dies, so no child can
/// outlive a parent that crashed (and exit at once if it is already gone). A kernel that
/// refuses leaves the child as it was: it still ends when its parent closes on it.
pub fn die_with_parent(parent: u32) {
    let _ = tie_to_parent(parent);
}

/// This process's parent's pid (`getppid(2)`).
pub fn parent_pid() -> u32 {
    nix::unistd::getppid().as_raw() as u32
}

/// Take ownership of an fd this process inherited by number (a worker's channel, which the
/// primary put at fd 3 as Node's `NODE_CHANNEL_FD` says): check that it is open
/// (`F_GETFD`), and mark it close-on-exec, as libuv's `uv_pipe_open` leaves it, so that the
/// channel does not leak into the worker's own children.
///
/// # Safety
///
/// Nothing else in this process may own `raw`: the `OwnedFd` closes it on drop.
pub unsafe fn adopt_inherited_fd(raw: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: fcntl takes a plain integer; for a number that is not open it says EBADF.
    Errno::result(unsafe { libc::fcntl(raw, libc::F_GETFD) })?;
    // SAFETY: `raw` is open (just checked), and the caller promises nobody else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
    let _ = nix::fcntl::fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    Ok(owned)
}

/// How a child ended, as `waitpid(2)` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(String),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exited with code {c}"),
            ChildExit::Signal(s) => write!(f, "killed by {s}"),
        }
    }
}

/// `waitpid(pid, WNOHANG)` until the child has ended or `limit` has passed (`Ok(None)`).
/// Reaping is what frees a dead child's entry in the process table: without it, a zombie.
pub fn waitpid_limit(pid: u32, limit: Duration, traced: bool) -> Result<Option<ChildExit>, Errno> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let start = std::time::Instant::now();
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let args = pid.to_string();
    let call = trace::Syscall::new("waitpid", &args);
    loop {
        let status = match retry(|| waitpid(target, Some(WaitPidFlag::WNOHANG))) {
            Err(e) => {
                if traced {
                    trace_call(&call, Err(e));
                }
                return Err(e);
            }
            Ok(s) => s,
        };
        let exit = match status {
            WaitStatus::Exited(_, code) => ChildExit::Code(code),
            WaitStatus::Signaled(_, sig, _) => ChildExit::Signal(format!("{sig:?}")),
            _ if start.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            _ => return Ok(None),
        };
        if traced {
            trace_call(&call, Ok(format!("{pid} ({exit})")));
        }
        return Ok(Some(exit));
    }
}

/// `kill(2)`, printed as a syscall line.
pub fn kill_traced(pid: u32, signal: Signal) -> Result<(), Errno> {
    let res = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    let args = format!("{pid}, {signal:?}");
    trace_call(&trace::Syscall::new("kill", &args), zero(&res));
    res
}

/// `waitpid(pid, WUNTRACED)` until the child has actually stopped (a `SIGSTOP` is only
/// queued when `kill` returns), at most `limit`. Returns whether it stopped. A syscall line.
pub fn wait_until_stopped(pid: u32, limit: Duration) -> Result<bool, Errno> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let start = std::time::Instant::now();
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let flags = WaitPidFlag::WUNTRACED | WaitPidFlag::WNOHANG;
    let args = format!("{pid}, WUNTRACED");
    let call = trace::Syscall::new("waitpid", &args);
    loop {
        match retry(|| waitpid(target, Some(flags))) {
            Err(e) => {
                trace_call(&call, Err(e));
                return Err(e);
            }
            Ok(WaitStatus::Stopped(_, sig)) => {
                trace_call(&call, Ok(format!("{pid} (stopped by {sig:?})")));
                return Ok(true);
            }
            Ok(_) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => return Ok(false),
        }
    }
}

/// `waitpid(-1, WNOHANG)`: collect one child that has ended, if there is one; its pid.
pub fn reap_any() -> Option<u32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    match retry(|| waitpid(None, Some(WaitPidFlag::WNOHANG))) {
        Ok(WaitStatus::StillAlive) | Err(_) => None,
        Ok(status) => status.pid().map(|p| p.as_raw() as u32),
    }
}

/// How many clock ticks a second the CPU times in `/proc/PID/stat` count
/// (`sysconf(_SC_CLK_TCK)`, almost always 100).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer and returns one; it touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}
