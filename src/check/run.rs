//! Running what the reader wrote: which `node` runs it, and one run under a deadline, on
//! 127.0.0.1, after which nothing it started is left running.
//!
//! A reader's script may hang (a server that never closes), crash half-way, or leave
//! workers and children behind. Every run therefore carries a mark in its environment,
//! which `cluster.fork()` and `child_process.fork()` pass on, and when the run ends (by
//! itself or killed at its deadline) every process still carrying that mark is killed too.
//! Our own child is reaped by [`helper`]; its children, once orphaned, by init.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::Verdict;
use crate::helper::{self, Capture};
use crate::loopback;
use crate::node_source::{self, Version, Want};
use crate::strace;
use crate::sys;

/// The variable that marks every process of one run (`<our pid>-<run>`).
const MARK: &str = "CLUSTER_WALKTHROUGH_CHECK_RUN";

/// The oldest Node the exercises are written for (`cluster.isPrimary`, `??`, `?.`).
const OLDEST: Version = Version {
    major: 18,
    minor: 0,
    patch: 0,
};

/// The first Node with `reusePort` for `net` servers (v22.12.0, also in v23.1.0).
pub(super) const REUSE_PORT: Version = Version {
    major: 22,
    minor: 12,
    patch: 0,
};

/// A Node binary that runs the reader's scripts.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) path: PathBuf,
    pub(super) version: Version,
}

impl Node {
    /// `node <file> <args>`, with round robin as the platform's default (the reader's own
    /// `NODE_CLUSTER_SCHED_POLICY` would change what a check sees).
    pub(super) fn script(&self, file: &Path) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg(file).env_remove("NODE_CLUSTER_SCHED_POLICY");
        cmd
    }

    /// How a reader would type the run of `file`: `node exercises/ch01/1_listen_twice.js`
    /// (with the path of a Node that is not the one on `PATH`).
    pub(super) fn typed(&self, file: &Path) -> String {
        format!("{} {}", super::typed(&self.path), super::typed(file))
    }

    /// The mirror's `--node`: this Node's line if the mirror follows it, else the default.
    pub(super) fn line(&self) -> u32 {
        match self.version.major {
            m @ (20 | 22 | 24 | 26) => m,
            _ => 24,
        }
    }
}

/// A Node of at least `min`: the `node` on `PATH`, else one that
/// `scripts/install-node-versions` installed (24, 26, then 22). None: a skip that says so.
pub(super) fn node(min: Version) -> Result<Node, Verdict> {
    let on_path = version_of(Path::new("node")).map(|version| Node {
        path: PathBuf::from("node"),
        version,
    });
    let installed = [24, 26, 22].into_iter().filter_map(|major| {
        node_source::find_node(Want::Major(major))
            .ok()
            .map(|b| Node {
                path: b.path,
                version: b.version,
            })
    });
    on_path
        .into_iter()
        .chain(installed)
        .find(|n| n.version >= min)
        .ok_or_else(|| {
            Verdict::Skipped(if min == OLDEST {
                "no `node` (18 or later) on PATH or in .node-versions/".to_string()
            } else {
                format!(
                    "this exercise needs Node {min} or later, and neither the `node` on PATH \
                     nor .node-versions/ has it (scripts/install-node-versions 24)"
                )
            })
        })
}

/// Any Node the exercises run on.
pub(super) fn any_node() -> Result<Node, Verdict> {
    node(OLDEST)
}

/// A free ephemeral port on 127.0.0.1, for the reader's program to use.
pub(super) fn free_port() -> Result<u16, Verdict> {
    loopback::free_port()
        .map_err(|e| Verdict::Fail(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// What `bin --version` says, if it runs.
fn version_of(bin: &Path) -> Option<Version> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version").env_remove("NODE_OPTIONS");
    let done = helper::run(&mut cmd, Capture::Both, Duration::from_secs(10)).ok()?;
    done.status
        .success()
        .then(|| Version::parse(&done.stdout))
        .flatten()
}

/// `strace` works here; else the skip that says why.
pub(super) fn strace_works() -> Result<(), Verdict> {
    match strace::missing_tools() {
        None => Ok(()),
        Some(why) => Err(Verdict::Skipped(format!("{why}; this check needs it"))),
    }
}

/// How one run ended, and what it printed.
#[derive(Debug)]
pub(super) struct Ran {
    pub(super) stdout: String,
    pub(super) stderr: String,
    /// Its exit code; `None` if a signal ended it (or we did).
    pub(super) code: Option<i32>,
    /// It was still running at its deadline, and was killed.
    pub(super) timed_out: bool,
    /// What ran, as the reader would type it (`node 1_listen_twice.js`).
    what: String,
    limit: Duration,
}

impl Ran {
    /// Its stdout, line by line, each trimmed.
    pub(super) fn lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().map(str::trim)
    }

    /// Whether one of its lines is exactly `line`.
    pub(super) fn has_line(&self, line: &str) -> bool {
        self.lines().any(|l| l == line)
    }

    /// The lines that start with `prefix`, the prefix cut off.
    pub(super) fn after<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.lines()
            .filter_map(move |l| l.strip_prefix(prefix).map(str::trim))
    }

    /// What a `fail:` line says it saw: how it ended, and the end of what it printed.
    pub(super) fn seen(&self) -> String {
        let ended = match (self.timed_out, self.code) {
            (true, _) => format!(
                "`{}` was still running after {} s and was killed",
                self.what,
                self.limit.as_secs()
            ),
            (false, Some(0)) => format!("`{}` ended with code 0", self.what),
            (false, Some(code)) => format!("`{}` ended with code {code}", self.what),
            (false, None) => format!("`{}` was ended by a signal", self.what),
        };
        format!("{ended}{}", shown(&self.stdout, &self.stderr))
    }
}

/// The last lines a program printed, indented under a heading; stderr only when it says
/// something other than Node's stack lines.
pub(super) fn shown(stdout: &str, stderr: &str) -> String {
    const LAST: usize = 12;
    let mut out = String::new();
    for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("at "))
            .collect();
        if lines.is_empty() {
            continue;
        }
        out.push_str(&format!("\n  its {name}:"));
        if lines.len() > LAST {
            out.push_str(&format!(
                "\n    ({} lines before these)",
                lines.len() - LAST
            ));
        }
        for line in &lines[lines.len().saturating_sub(LAST)..] {
            out.push_str(&format!("\n    {line}"));
        }
    }
    if out.is_empty() {
        out.push_str(", and printed nothing");
    }
    out
}

/// A new mark for one run.
fn next_mark() -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Run `cmd` (its stdin empty, its output read), at most `limit`; then kill whatever of it
/// is left. `what` names it in messages.
pub(super) fn run(mut cmd: Command, what: &str, limit: Duration) -> Result<Ran, Verdict> {
    let mark = next_mark();
    cmd.env(MARK, &mark).env("NO_COLOR", "1");
    let started = helper::spawn(&mut cmd, Capture::Both);
    let mut running = started.map_err(|e| Verdict::Fail(format!("cannot run `{what}`: {e}")))?;
    let waited = running.wait(limit);
    running.kill();
    kill_marked(&mark);
    let timed_out = matches!(waited, Ok(None));
    let done = running
        .finish(Duration::ZERO)
        .map_err(|e| Verdict::Fail(format!("cannot wait for `{what}`: {e}")))?;
    Ok(Ran {
        stdout: done.stdout,
        stderr: done.stderr,
        code: done.status.code(),
        timed_out,
        what: what.to_string(),
        limit,
    })
}

/// Run `cmd` under `strace -f` (see [`strace::run`]), at most `limit`; then kill whatever of
/// it is left. Returns what strace wrote, and the run.
pub(super) fn run_traced(
    mut cmd: Command,
    what: &str,
    limit: Duration,
) -> Result<(String, Ran), Verdict> {
    let mark = next_mark();
    cmd.env(MARK, &mark).env("NO_COLOR", "1");
    let traced = strace::run(&cmd, limit);
    kill_marked(&mark);
    match traced {
        Ok(t) => Ok((
            t.text,
            Ran {
                stdout: t.stdout,
                stderr: t.stderr,
                code: t.status.code(),
                timed_out: false,
                what: what.to_string(),
                limit,
            },
        )),
        Err(strace::RunError::Timeout { .. }) => Err(Verdict::Fail(format!(
            "`{what}` was still running under strace after {} s and was killed",
            limit.as_secs()
        ))),
        Err(e) => Err(Verdict::Fail(format!(
            "cannot run `{what}` under strace: {e}"
        ))),
    }
}

/// `SIGKILL` every process whose environment holds `MARK=mark`, until none is left (at most
/// 2 s: a process that is gone but not yet reaped has an empty environment, so it no
/// longer counts).
fn kill_marked(mark: &str) {
    let needle = format!("{MARK}={mark}");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = marked(&needle);
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        for pid in left {
            sys::kill(pid, sys::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids whose environment holds `needle` (`KEY=value`).
fn marked(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_past_its_deadline_is_killed_with_what_it_started() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo started; wait"]);
        let started = Instant::now();
        let ran = run(cmd, "sh", Duration::from_millis(300)).expect("sh runs");
        assert!(ran.timed_out);
        assert_eq!(ran.stdout, "started\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the pipe closed"
        );
        assert!(ran.seen().contains("was still running after 0 s"));
    }

    #[test]
    fn what_was_seen_leaves_out_stack_lines() {
        let seen = shown("", "Error: boom\n    at foo (x.js:1:1)\n");
        assert_eq!(seen, "\n  its stderr:\n    Error: boom");
        assert_eq!(shown("", ""), ", and printed nothing");
    }
}
