//! Running a program under `strace -f`: the one part of the referee that starts processes. It
//! starts strace as a helper (see [`crate::helper`]): under a deadline, dying with us.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::parse::parse;
use super::processes::processes;
use crate::helper::{self, Capture, HelperError};
use crate::loopback::LOOPBACK;
use crate::sys;

/// The system calls we ask strace for (`-e trace=...`).
pub const SYSCALLS: &str = "socket,bind,listen,accept,accept4,connect,setsockopt,\
                            sendmsg,recvmsg,sendto,recvfrom,clone,clone3,fork,vfork,execve";

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

/// Whether `program args` runs and exits with 0 (in at most 10 seconds).
fn works(program: &str, args: &[&str]) -> bool {
    let mut cmd = Command::new(program);
    cmd.args(args);
    helper::run(&mut cmd, Capture::Both, Duration::from_secs(10))
        .is_ok_and(|done| done.status.success())
}

/// `None` if `node` and a working `strace` are here; otherwise why not, in a few words.
pub fn missing_tools() -> Option<String> {
    if !works("node", &["--version"]) {
        return Some("`node` is not installed".into());
    }
    missing_strace()
}

/// `None` if a working `strace` is here (one that may trace); otherwise why not, in a few
/// words. For a run whose Node is not the one on `PATH`.
pub fn missing_strace() -> Option<String> {
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
    let trace = format!("trace={SYSCALLS}");
    let mut cmd = wrap(&["-f", "-qq", "-e", &trace], out, target);
    // Node's default policy unless a script says.
    if !target
        .get_envs()
        .any(|(k, _)| k == "NODE_CLUSTER_SCHED_POLICY")
    {
        cmd.env_remove("NODE_CLUSTER_SCHED_POLICY");
    }
    cmd
}

/// `strace <options> -o OUT -- [setpriv --pdeathsig KILL --] <target>`, with the target's
/// environment and directory: the one way this program puts another under strace (the
/// scenarios here, the benchmark's system-call counts).
pub(crate) fn wrap(options: &[&str], out: &Path, target: &Command) -> Command {
    let mut cmd = Command::new("strace");
    cmd.args(options)
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(dying_with_strace())
        .arg(target.get_program())
        .args(target.get_args());
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
    // Each call starts further on: tests in one process (one pid) run in parallel threads,
    // and two of them must not be handed the same port.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(97, std::sync::atomic::Ordering::Relaxed);
    let start = (std::process::id() as u16).wrapping_add(call) % span;
    (0..span)
        .map(|i| low - 1 - (start + i) % span)
        .find(|p| std::net::TcpListener::bind((LOOPBACK, *p)).is_ok())
}
