//! Forked children that cannot be left behind: started one at a time, killed and reaped on
//! every path, and never able to outlive their parent.
//!
//! Node's `cluster.fork()` starts a fresh program (chapter 3); these children are bare
//! copies of the chapter's process, as in the C programs this chapter discusses. Each one
//! runs a closure and ends with `_exit`, so it never returns into the parent's code.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::sys::Signal;

use super::{ModelError, WAIT_LIMIT};
use crate::sys::{self, ChildExit, Forked};
use crate::trace;

/// One child, as the parent knows it.
#[derive(Debug)]
struct Kid {
    n: usize,
    pid: u32,
    /// Whether `waitpid` has collected it: a child that ended but is not reaped is a zombie.
    reaped: bool,
}

/// The children of one model. Dropping it kills (`SIGKILL`) and reaps every child that is
/// still there, so an early return or a panic in the parent leaves no process behind.
#[derive(Debug, Default)]
pub struct Children {
    kids: Vec<Kid>,
}

/// The child's half of the start-up handshake.
///
/// The C programs have nothing like it. It exists so that the trace of two processes comes
/// out in one fixed order: the parent prints `fork() = pid`, then the child prints its
/// first lines, then the parent goes on. Without it the lines of parent and child would
/// interleave differently from run to run.
pub struct Turn {
    fd: OwnedFd,
}

impl Turn {
    /// Tell the parent that this child's start-up lines are out: it may print again.
    pub fn ready(self) {
        let _ = sys::send(self.fd.as_fd(), b"r");
    }
}

/// Wait (at most [`WAIT_LIMIT`]) for one byte on the handshake socket; false on EOF or
/// timeout.
fn wait_byte(fd: BorrowedFd<'_>) -> bool {
    let ready = sys::wait_one(fd, false, WAIT_LIMIT).unwrap_or_default();
    if !ready.readable {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(sys::read(fd, &mut byte), Ok(1))
}

impl Children {
    pub fn new() -> Self {
        Children::default()
    }

    // ANCHOR: fork
    /// Fork child `n`, which runs `body` and then `_exit`s with the code it returns. Returns
    /// the child's pid once the child has called [`Turn::ready`].
    pub fn fork<F>(&mut self, n: usize, body: F) -> Result<u32, ModelError>
    where
        F: FnOnce(Turn) -> i32,
    {
        let (parent_end, child_end) =
            sys::socketpair().map_err(|e| ModelError::sys("socketpair", e))?;
        let parent = std::process::id();
        match sys::fork_single_threaded().map_err(|e| ModelError::sys("fork", e))? {
            Forked::Child => {
                drop(parent_end);
                sys::die_with_parent(parent);
                trace::set_label(&format!("child {n}"));
                let mut code = 1;
                if wait_byte(child_end.as_fd()) {
                    let turn = Turn { fd: child_end };
                    code = std::panic::catch_unwind(AssertUnwindSafe(|| body(turn))).unwrap_or(70);
                }
                // Never return into the parent's code, never run its destructors.
                sys::exit_now(code)
            }
            Forked::Parent(pid) => {
                drop(child_end);
                self.kids.push(Kid {
                    n,
                    pid,
                    reaped: false,
                });
                let _ = sys::send(parent_end.as_fd(), b"g");
                if !wait_byte(parent_end.as_fd()) {
                    return Err(ModelError::Failed(format!(
                        "child {n} (pid {pid}) ended before it was ready"
                    )));
                }
                Ok(pid)
            }
        }
    }
    // ANCHOR_END: fork

    /// Child `n`'s pid.
    pub fn pid(&self, n: usize) -> Option<u32> {
        self.kids.iter().find(|k| k.n == n).map(|k| k.pid)
    }

    /// How many children have not been reaped yet.
    pub fn unreaped(&self) -> usize {
        self.kids.iter().filter(|k| !k.reaped).count()
    }

    /// Send child `n` a signal (a syscall line).
    pub fn signal(&mut self, n: usize, sig: Signal) -> Result<(), ModelError> {
        let pid = self.pid(n).ok_or_else(|| no_child(n))?;
        sys::kill_traced(pid, sig).map_err(|e| ModelError::sys("kill", e))
    }

    /// Wait for child `n` to end and collect it (a syscall line). If it does not end within
    /// [`WAIT_LIMIT`], kill it: a model must never hang.
    pub fn reap(&mut self, n: usize) -> Result<ChildExit, ModelError> {
        let kid = self
            .kids
            .iter_mut()
            .find(|k| k.n == n && !k.reaped)
            .ok_or_else(|| no_child(n))?;
        let waited = sys::waitpid_limit(kid.pid, WAIT_LIMIT, true)
            .map_err(|e| ModelError::sys("waitpid", e))?;
        match waited {
            Some(exit) => {
                kid.reaped = true;
                Ok(exit)
            }
            None => {
                sys::kill(kid.pid, Signal::SIGKILL);
                let _ = sys::waitpid_limit(kid.pid, WAIT_LIMIT, true);
                kid.reaped = true;
                Err(ModelError::Failed(format!(
                    "child {n} did not end within {WAIT_LIMIT:?} and was killed"
                )))
            }
        }
    }

    // ANCHOR: stop
    /// Stop every child that is still running: `SIGTERM`, then `waitpid`, one at a time.
    pub fn stop_all(&mut self) -> Result<(), ModelError> {
        let running: Vec<usize> = self
            .kids
            .iter()
            .filter(|k| !k.reaped)
            .map(|k| k.n)
            .collect();
        for n in running {
            self.signal(n, Signal::SIGTERM)?;
            self.reap(n)?;
        }
        Ok(())
    }
    // ANCHOR_END: stop
}

fn no_child(n: usize) -> ModelError {
    ModelError::Failed(format!("there is no running child {n}"))
}

impl Drop for Children {
    fn drop(&mut self) {
        for kid in self.kids.iter_mut().filter(|k| !k.reaped) {
            sys::kill(kid.pid, Signal::SIGKILL);
            // SIGKILL cannot be caught or ignored, and it also ends a stopped process.
            let _ = sys::waitpid_limit(kid.pid, Duration::from_secs(10), false);
            kid.reaped = true;
        }
    }
}
