//! One way to start a helper process: this very program again in another role (chapter 1's
//! process B, a benchmark's server, the lab under strace), or another program (strace, node).
//! Every helper is started, waited for and read the same way:
//!
//! - **It dies with us.** Between fork and exec it asks the kernel for `SIGKILL` when the thread
//!   that started it ends (`PR_SET_PDEATHSIG`). A parent killed with `SIGKILL` runs no
//!   destructor, so this is the only thing that stops its helpers then.
//! - **It is waited for with a deadline**, and killed and reaped when it outlives it; a
//!   [`Running`] that is dropped unwaited (an early `?`) is killed and reaped too.
//! - **What it writes to a pipe is read in a thread as it comes**, so it never blocks on a full
//!   pipe, and what it said so far can be looked at while it runs.
//!
//! Nothing here mirrors Node. Node's cluster workers are not helpers: `cluster::primary` forks
//! them, and they leave on their channel's end of file, as Node's do (see
//! `sys::prepare_worker_child`).

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sys::Signal;

use crate::sys;

/// How long a helper's pipes may stay open after it ended: its own children (a worker, a
/// traced program) may hold them a moment longer.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How often the wait looks again.
const POLL: Duration = Duration::from_millis(5);

/// Why a helper gave us nothing to use.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot find this program's own path: {0}")]
    NoPath(#[source] std::io::Error),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for {what}: {source}")]
    Wait {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} did not finish within {limit:?} and was killed")]
    Timeout { what: String, limit: Duration },
    #[error("interrupted; {what} was stopped")]
    Interrupted { what: String },
}

/// How to start a copy of this program that plays a role: its path, and the words that lead
/// to the role (`chapter 10` in `cluster-walkthrough chapter 10 lab ...`; none in
/// `ch10-against-node lab ...`, nor for the tour's own `cluster-walkthrough chapter 10`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisProgram {
    prefix: Vec<OsString>,
}

impl ThisProgram {
    /// This program, where every role's words come after `prefix`.
    pub fn new<I, S>(prefix: I) -> ThisProgram
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        ThisProgram {
            prefix: prefix.into_iter().map(Into::into).collect(),
        }
    }

    /// `std::env::current_exe()` with the prefix and `args` (a hidden subcommand and its
    /// arguments, usually): ready for [`spawn`].
    pub fn command<I, S>(&self, args: I) -> Result<Command, HelperError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let exe = std::env::current_exe().map_err(HelperError::NoPath)?;
        let mut cmd = Command::new(exe);
        cmd.args(&self.prefix).args(args);
        Ok(cmd)
    }
}

/// Make the process `cmd` starts receive `SIGKILL` when the thread calling this ends, and
/// exit at once if we are already gone by the time it runs. Start helpers from a thread that
/// outlives them (the main thread, or the one that waits for them).
pub fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec; it allocates nothing and only calls
    // prctl and getppid (sys::die_with_parent), which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            sys::die_with_parent(parent);
            Ok(())
        });
    }
    cmd
}

/// Which of a helper's outputs we read; the others go where ours go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    Nothing,
    Stdout,
    Both,
}

/// Start `cmd` as a helper (see the module's doc): no stdin, dies with us, never a cluster
/// worker (only `cluster.fork()` makes those, and it sets `NODE_UNIQUE_ID` itself).
pub fn spawn(cmd: &mut Command, capture: Capture) -> Result<Running, HelperError> {
    let what = describe(cmd);
    dies_with_parent(cmd)
        .stdin(Stdio::null())
        .env_remove("NODE_UNIQUE_ID")
        .env_remove("NODE_CHANNEL_FD");
    if capture != Capture::Nothing {
        cmd.stdout(Stdio::piped());
    }
    if capture == Capture::Both {
        cmd.stderr(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|source| HelperError::Spawn {
        what: what.clone(),
        source,
    })?;
    Ok(Running {
        stdout: Pipe::read(child.stdout.take()),
        stderr: Pipe::read(child.stderr.take()),
        child,
        what,
        status: None,
    })
}

/// Start `cmd`, wait for it at most `limit`, and return what it wrote.
pub fn run(cmd: &mut Command, capture: Capture, limit: Duration) -> Result<Finished, HelperError> {
    spawn(cmd, capture)?.finish(limit)
}

/// `strace -f ...`: the program's file name and its first few words, for messages.
fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program()).file_name();
    let program = program.unwrap_or(cmd.get_program()).to_string_lossy();
    let words: Vec<String> = std::iter::once(program.into_owned())
        .chain(
            cmd.get_args()
                .take(3)
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    format!("`{}`", words.join(" "))
}

/// A helper that finished.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// What it wrote, if it was captured (else empty).
    pub stdout: String,
    pub stderr: String,
}

/// A helper that runs. Dropping it kills and reaps it, if nothing else did.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// How messages name it: `` `strace -f -qq -e` ``.
    what: String,
    stdout: Option<Pipe>,
    stderr: Option<Pipe>,
    /// Set once it has been reaped: its pid may then belong to someone else.
    status: Option<ExitStatus>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it has written to stdout so far (empty unless captured).
    pub fn stdout_so_far(&self) -> String {
        self.stdout.as_ref().map(Pipe::text).unwrap_or_default()
    }

    /// Everything it has written to stderr so far (empty unless captured).
    pub fn stderr_so_far(&self) -> String {
        self.stderr.as_ref().map(Pipe::text).unwrap_or_default()
    }

    /// The first line it writes to stdout, waiting at most `limit`; `None` if it closed its
    /// stdout (or ended) without one, or took too long.
    pub fn first_line(&self, limit: Duration) -> Option<String> {
        let pipe = self.stdout.as_ref()?;
        let start = Instant::now();
        loop {
            let text = pipe.text();
            if let Some((line, _)) = text.split_once('\n') {
                return Some(line.to_string());
            }
            if pipe.ended() || start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// The one wait-with-deadline: until it ends (its status), `limit` passes or `give_up`
    /// says so (`None`, and it runs on).
    fn wait_unless(
        &mut self,
        limit: Duration,
        give_up: impl Fn() -> bool,
    ) -> Result<Option<ExitStatus>, HelperError> {
        let start = Instant::now();
        while self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if start.elapsed() < limit && !give_up() => std::thread::sleep(POLL),
                Ok(None) => return Ok(None),
                Err(source) => {
                    let what = self.what.clone();
                    return Err(HelperError::Wait { what, source });
                }
            }
        }
        Ok(self.status)
    }

    /// Wait at most `limit`; `None` if it still runs.
    pub fn wait(&mut self, limit: Duration) -> Result<Option<ExitStatus>, HelperError> {
        self.wait_unless(limit, || false)
    }

    /// Wait at most `limit` and return what it wrote. A helper that outlives `limit` is
    /// killed and reaped (an error); so is one still running when Ctrl-C arrives (once
    /// `sys::install_interrupt_handler` runs).
    pub fn finish(self, limit: Duration) -> Result<Finished, HelperError> {
        self.finish_or(limit, |_| {})
    }

    /// [`Running::finish`], with `before_kill` run first on a timeout: strace's whole traced
    /// tree must be killed, since killing strace alone would only detach it.
    pub fn finish_or(
        mut self,
        limit: Duration,
        before_kill: impl FnOnce(&Running),
    ) -> Result<Finished, HelperError> {
        let Some(status) = self.wait_unless(limit, sys::interrupted)? else {
            let what = self.what.clone();
            if sys::interrupted() {
                self.kill();
                return Err(HelperError::Interrupted { what });
            }
            before_kill(&self);
            self.kill();
            return Err(HelperError::Timeout { what, limit });
        };
        let deadline = Instant::now() + PIPE_GRACE;
        Ok(Finished {
            status,
            stdout: self
                .stdout
                .take()
                .map(|p| p.finish(deadline))
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|p| p.finish(deadline))
                .unwrap_or_default(),
        })
    }

    /// `SIGTERM`, up to `grace` for it to stop itself (and whatever it started), then
    /// `SIGKILL`; always reaped.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.wait(Duration::ZERO), Ok(None)) {
            sys::kill(self.pid(), Signal::SIGTERM);
            let _ = self.wait(grace);
        }
        self.kill();
    }

    /// `SIGKILL` and reap, unless it was reaped already.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A pipe read to its end in a thread, as it comes.
#[derive(Debug)]
struct Pipe {
    bytes: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Pipe {
    fn read(pipe: Option<impl Read + Send + 'static>) -> Option<Pipe> {
        let mut pipe = pipe?;
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let keep = bytes.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => lock(&keep).extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        });
        Some(Pipe { bytes, thread })
    }

    /// What came so far (invalid UTF-8 replaced, never a reason to stop reading).
    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.bytes)).into_owned()
    }

    /// Whether the writer closed it.
    fn ended(&self) -> bool {
        self.thread.is_finished()
    }

    /// Everything, once the pipe ends or `deadline` passes (whichever comes first).
    fn finish(self, deadline: Instant) -> String {
        while !self.ended() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        self.text()
    }
}

fn lock(bytes: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    bytes.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn output_is_captured_and_the_status_kept() {
        let done = run(
            &mut sh("echo out; echo err >&2; exit 3"),
            Capture::Both,
            Duration::from_secs(10),
        )
        .expect("sh runs");
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn a_helper_past_its_deadline_is_killed_and_reaped() {
        let started = Instant::now();
        let err = run(
            &mut sh("sleep 30"),
            Capture::Both,
            Duration::from_millis(200),
        )
        .expect_err("a timeout");
        assert!(matches!(err, HelperError::Timeout { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("`sh -c sleep 30` did not finish within")
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_first_line_comes_while_it_runs() {
        let mut running = spawn(&mut sh("echo ready; sleep 30"), Capture::Stdout).expect("sh");
        let line = running.first_line(Duration::from_secs(10));
        assert_eq!(line.as_deref(), Some("ready"));
        running.stop(Duration::from_secs(5));
        assert!(running.status.is_some(), "reaped");
    }
}
